//! The L1 engines: WasmEngine runs calls on its in-memory state; EvmEngine refuses.

use std::sync::Arc;

use vm_runtime::contracts::{self, decode_u64};
use vm_runtime::engine_api::{
    EngineError, EngineType, ExecutionContext, ExecutionEngine, SpeedupTable, TaskType,
};
use vm_runtime::{EvmEngine, Vm, VmConfig, WasmEngine};

fn engine() -> (WasmEngine, Arc<SpeedupTable>) {
    let table = Arc::new(SpeedupTable::new());
    let vm = Arc::new(Vm::new(VmConfig::default()).expect("engine"));
    (WasmEngine::new(vm, Arc::clone(&table)), table)
}

#[test]
fn wasm_engine_executes_and_keeps_state() {
    let (e, _) = engine();
    let code = contracts::counter_wasm();
    let ctx = ExecutionContext {
        contract: [3; 20],
        ..ExecutionContext::default()
    };
    for expect in 1..=2u64 {
        let r = e
            .execute(&code, &contracts::counter_increment_input(b"a"), &ctx)
            .expect("runs");
        assert!(r.success, "{r:?}");
        assert_eq!(decode_u64(&r.return_data), Some(expect));
        assert_eq!(r.state_changes.len(), 1);
        assert!(r.gas_used > 0);
    }
    // A state query sees the state but writes nothing.
    let q = ExecutionContext {
        task_type: TaskType::StateQuery,
        ..ctx.clone()
    };
    let r = e
        .execute(&code, &contracts::counter_increment_input(b"a"), &q)
        .expect("runs");
    assert_eq!(decode_u64(&r.return_data), Some(3));
    let r = e
        .execute(&code, &contracts::counter_get_input(b"a"), &ctx)
        .expect("runs");
    assert_eq!(decode_u64(&r.return_data), Some(2));
    // Failures are data.
    let r = e.execute(&code, &[9, 9], &ctx).expect("runs");
    assert!(!r.success);
    assert_eq!(r.failure.as_deref(), Some("revert"));
    let spin = contracts::wat(
        r#"(module (memory (export "memory") 1) (func (export "call") (loop $l (br $l))))"#,
    )
    .expect("wat");
    let r = e
        .execute(
            &spin,
            &[],
            &ExecutionContext {
                gas_limit: 10_000,
                ..ctx.clone()
            },
        )
        .expect("runs");
    assert_eq!(r.failure.as_deref(), Some("out of gas"));
    assert_eq!(r.gas_used, 10_000);
}

#[test]
fn wasm_engine_validates_and_reports_capabilities() {
    let (e, table) = engine();
    assert_eq!(e.engine_type(), EngineType::Wasm);
    assert!(e.validate_code(&contracts::token_wasm()).is_ok());
    assert!(matches!(
        e.validate_code(b"nope"),
        Err(EngineError::InvalidCode(_))
    ));
    assert!(matches!(
        e.execute(b"nope", &[], &ExecutionContext::default()),
        Err(EngineError::InvalidCode(_))
    ));
    for t in TaskType::ALL {
        let expected = matches!(
            t,
            TaskType::Transaction | TaskType::ContractCall | TaskType::StateQuery
        );
        assert_eq!(e.supports_task(t), expected, "{t:?}");
    }
    let zk = ExecutionContext {
        task_type: TaskType::ZkProofGeneration,
        ..ExecutionContext::default()
    };
    assert!(matches!(
        e.execute(&contracts::counter_wasm(), &[1, 1], &zk),
        Err(EngineError::Unsupported(_))
    ));
    // Speed-ups come from measurement only.
    assert_eq!(e.estimated_speedup(TaskType::Transaction), None);
    table.record(EngineType::Wasm, TaskType::Transaction, 11.5);
    assert_eq!(e.estimated_speedup(TaskType::Transaction), Some(11.5));
    table.record(EngineType::Wasm, TaskType::HashCompute, 2.0);
    assert_eq!(e.estimated_speedup(TaskType::HashCompute), None);
}

#[test]
fn evm_engine_refuses_everything() {
    let e = EvmEngine;
    assert_eq!(e.engine_type(), EngineType::Evm);
    let err = e
        .execute(&[0x60, 0x00], &[], &ExecutionContext::default())
        .expect_err("no EVM");
    assert!(matches!(err, EngineError::Unsupported(ref m) if m.contains("EVM")));
    assert!(e.validate_code(&[0x60]).is_err());
    assert!(TaskType::ALL.iter().all(|t| !e.supports_task(*t)));
    assert_eq!(e.estimated_speedup(TaskType::Transaction), None);
}
