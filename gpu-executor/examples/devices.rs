//! Lists CPU and GPU devices with their properties, then self-tests each GPU
//! (`cargo run --example devices --features cuda,opencl`).
use gpu_executor::device::{self, open_device};

fn main() {
    print!("{}", gpu_executor::cli::devices_report());
    for info in device::list_devices() {
        let result = open_device(info.backend, info.index, 1).and_then(|d| {
            device::self_test(&d)?;
            gpu_executor::GpuHasher::new(d, None).map(|_| ())
        });
        match result {
            Ok(()) => println!(
                "{}:{} self-test ok, hash kernels built",
                info.backend, info.index
            ),
            Err(e) => println!("{}:{} FAILED: {e}", info.backend, info.index),
        }
    }
}
