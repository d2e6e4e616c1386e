//! zk-privacy integration tests (one binary).

mod common;
mod privacy;
mod prover;
mod service;
