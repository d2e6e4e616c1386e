//! SuperVM L4 node: the hybrid scheduler, the block pipeline, config and metrics.
