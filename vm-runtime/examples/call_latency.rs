//! Latency of one contract call on a reused (reset) instance and on a fresh instance.
//!
//! ```text
//! cargo run --release -p vm-runtime --example call_latency [-- ITERATIONS]
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use vm_runtime::bench::TRIVIAL_WAT;
use vm_runtime::{contracts, CallRequest, StateKey, StateValue, StateView, Vm, VmConfig, VmWorker};

struct View(BTreeMap<StateKey, StateValue>);

impl StateView for View {
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, vm_runtime::ReadError> {
        Ok(self.0.get(key).cloned())
    }
    fn write(&mut self, _key: StateKey, _value: Option<StateValue>) {}
}

fn main() -> anyhow::Result<()> {
    let iters: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let vm = Arc::new(Vm::new(VmConfig::default())?);
    let trivial = vm.compile(&contracts::wat(TRIVIAL_WAT).map_err(anyhow::Error::msg)?)?;
    let token = vm.compile(&contracts::token_wasm())?;
    let mut view = View(BTreeMap::new());
    let transfer = contracts::token_transfer_input(&[2; 20], 0);
    let req = |input| CallRequest {
        caller: [1; 20],
        contract: [7; 20],
        value: 0,
        input,
        gas_limit: 1_000_000,
        block_number: 1,
        timestamp: 0,
    };
    let mut w = VmWorker::new();
    for (name, c, input) in [
        ("trivial, reused instance", &trivial, &[][..]),
        ("token transfer, reused instance", &token, &transfer[..]),
    ] {
        let r = req(input);
        w.run(&vm, c, &r, &mut view)?;
        let t = Instant::now();
        for _ in 0..iters {
            w.run(&vm, c, &r, &mut view)?;
        }
        println!(
            "{name:<36} {:>8.3} us/call",
            t.elapsed().as_secs_f64() * 1e6 / f64::from(iters)
        );
    }
    let r = req(&[]);
    let n = iters / 10;
    let t = Instant::now();
    for _ in 0..n {
        VmWorker::new().run(&vm, &trivial, &r, &mut view)?;
    }
    println!(
        "{:<36} {:>8.3} us/call",
        "trivial, fresh instance",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
    Ok(())
}
