//! Prints Block-STM statistics and wall times for synthetic blocks (a quick look at overhead;
//! the criterion bench `blockstm` gives the careful numbers).
//!
//! `cargo run --release -p vm-state --example blockstm_stats -- [threads] [txs] [work]`

use std::time::Instant;

use vm_state::testing::{generate_block, genesis, SyntheticExecutor};
use vm_state::{execute_block_sequential, BlockEnv, ParallelExecutor};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2);
    let len: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let work: u32 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0);
    let exec = SyntheticExecutor {
        work,
        declare: false,
    };
    let env = BlockEnv::default();
    let pe = ParallelExecutor::new(threads)?;
    println!("threads {threads}, {len} txs, work {work}");
    for (name, pct) in [("transfers", 100u32), ("mixed", 50)] {
        for universe in [2u32, 100, 10_000] {
            let base = genesis(universe, 1_000_000);
            let txs = generate_block(7, universe, len, pct);
            let reps = 5;
            let t = Instant::now();
            for _ in 0..reps {
                execute_block_sequential(&exec, &txs, &env, &base)?;
            }
            let seq = t.elapsed().as_secs_f64() / reps as f64;
            let t = Instant::now();
            let mut stats = None;
            for _ in 0..reps {
                stats = Some(pe.execute_block(&exec, &txs, &env, &base)?.stats);
            }
            let par = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{name:9} keys {universe:5}: seq {:8.2} ms ({:7.0} tx/s)  par {:8.2} ms ({:7.0} tx/s)  speed-up {:5.2}  {:?}",
                seq * 1e3,
                len as f64 / seq,
                par * 1e3,
                len as f64 / par,
                seq / par,
                stats
            );
        }
    }
    Ok(())
}
