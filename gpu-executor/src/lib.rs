//! SuperVM L3 GPU executor: batch kernels on CUDA and OpenCL with a rayon CPU backend that is
//! both the reference and the fallback.
