//! The L1 engines of this crate: [`WasmEngine`] (real) and [`EvmEngine`] (refuses every
//! request: SuperVM has no EVM).

use std::collections::BTreeMap;
use std::sync::Arc;

use engine_api::{
    ContractResult, EngineError, EngineType, ExecutionContext, ExecutionEngine, SpeedupTable,
    StateChange, TaskType,
};
use parking_lot::Mutex;
use vm_state::{ReadError, StateKey, StateValue, StateView, TxStatus};

use crate::instance::{CallRequest, VmWorker};
use crate::vm::Vm;

/// The WASM engine behind the L1 trait: runs one contract call at a time on an in-memory
/// state that it keeps between calls (a call's writes are applied when it succeeds, except
/// for [`TaskType::StateQuery`], which never writes). Native balances are not involved:
/// `ctx.value` is only what the contract's `value()` reports. Block execution goes through
/// [`crate::VmExecutor`] and vm-state's block executors instead.
pub struct WasmEngine {
    vm: Arc<Vm>,
    speedups: Arc<SpeedupTable>,
    state: Mutex<BTreeMap<StateKey, StateValue>>,
    workers: Mutex<Vec<VmWorker>>,
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEngine")
            .field("vm", &self.vm)
            .field("state_entries", &self.state.lock().len())
            .finish()
    }
}

struct MapView<'a> {
    base: &'a BTreeMap<StateKey, StateValue>,
}

impl StateView for MapView<'_> {
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, ReadError> {
        Ok(self.base.get(key).cloned())
    }
    fn write(&mut self, _key: StateKey, _value: Option<StateValue>) {
        // Direct calls return their writes; nothing is written through the view.
    }
}

impl WasmEngine {
    /// An engine on `vm` reporting speed-ups from `speedups` (filled by calibration).
    pub fn new(vm: Arc<Vm>, speedups: Arc<SpeedupTable>) -> Self {
        Self {
            vm,
            speedups,
            state: Mutex::new(BTreeMap::new()),
            workers: Mutex::new(Vec::new()),
        }
    }

    /// The VM behind the engine.
    pub fn vm(&self) -> &Arc<Vm> {
        &self.vm
    }

    /// A copy of the engine's in-memory state.
    pub fn state(&self) -> BTreeMap<StateKey, StateValue> {
        self.state.lock().clone()
    }

    /// Replaces the engine's in-memory state.
    pub fn set_state(&self, state: BTreeMap<StateKey, StateValue>) {
        *self.state.lock() = state;
    }
}

impl ExecutionEngine for WasmEngine {
    fn execute(
        &self,
        code: &[u8],
        input: &[u8],
        ctx: &ExecutionContext,
    ) -> engine_api::Result<ContractResult> {
        if !self.supports_task(ctx.task_type) {
            return Err(EngineError::Unsupported(format!(
                "the WASM engine does not run {:?} tasks",
                ctx.task_type
            )));
        }
        if input.len() > self.vm.config().max_input_bytes {
            return Err(EngineError::InvalidInput(format!(
                "input of {} bytes exceeds {}",
                input.len(),
                self.vm.config().max_input_bytes
            )));
        }
        let contract = self
            .vm
            .compile(code)
            .map_err(|e| EngineError::InvalidCode(e.to_string()))?;
        let mut worker = self.workers.lock().pop().unwrap_or_default();
        let req = CallRequest {
            caller: ctx.caller,
            contract: ctx.contract,
            value: ctx.value,
            input,
            gas_limit: ctx.gas_limit,
            block_number: ctx.block_number,
            timestamp: ctx.timestamp,
        };
        let mut state = self.state.lock();
        let report = worker.run(&self.vm, &contract, &req, &mut MapView { base: &state });
        self.workers.lock().push(worker);
        let report = report.map_err(|e| EngineError::Internal(e.to_string()))?;
        let success = report.status == TxStatus::Success;
        if success && ctx.task_type != TaskType::StateQuery {
            for (k, v) in &report.writes {
                match v {
                    Some(v) => {
                        state.insert(k.clone(), v.clone());
                    }
                    None => {
                        state.remove(k);
                    }
                }
            }
        }
        let failure = match &report.status {
            TxStatus::Success => None,
            TxStatus::Revert => Some("revert".to_string()),
            TxStatus::OutOfGas => Some("out of gas".to_string()),
            TxStatus::Trap(m) => Some(m.clone()),
            TxStatus::Rejected(m) => Some(m.clone()),
        };
        Ok(ContractResult {
            success,
            return_data: report.return_data,
            gas_used: report.gas_used,
            logs: report.events,
            state_changes: report
                .writes
                .into_iter()
                .map(|(k, v)| StateChange {
                    key: k.0,
                    value: v.map(|v| v.to_vec()),
                })
                .collect(),
            failure,
        })
    }

    fn engine_type(&self) -> EngineType {
        EngineType::Wasm
    }

    fn validate_code(&self, code: &[u8]) -> engine_api::Result<()> {
        self.vm
            .validate(code)
            .map_err(|e| EngineError::InvalidCode(e.to_string()))
    }

    fn supports_task(&self, task: TaskType) -> bool {
        matches!(
            task,
            TaskType::Transaction | TaskType::ContractCall | TaskType::StateQuery
        )
    }

    fn estimated_speedup(&self, task: TaskType) -> Option<f64> {
        if !self.supports_task(task) {
            return None;
        }
        self.speedups.get(EngineType::Wasm, task)
    }
}

/// The message of every [`EvmEngine`] error.
pub const EVM_UNSUPPORTED: &str =
    "EVM bytecode is not supported: SuperVM has no EVM implementation; deploy a WebAssembly contract to the WASM engine";

/// The EVM slot of the L1 interface. There is no EVM: every request is refused with
/// [`EngineError::Unsupported`] rather than faked.
#[derive(Clone, Copy, Debug, Default)]
pub struct EvmEngine;

impl ExecutionEngine for EvmEngine {
    fn execute(
        &self,
        _code: &[u8],
        _input: &[u8],
        _ctx: &ExecutionContext,
    ) -> engine_api::Result<ContractResult> {
        Err(EngineError::Unsupported(EVM_UNSUPPORTED.into()))
    }

    fn engine_type(&self) -> EngineType {
        EngineType::Evm
    }

    fn validate_code(&self, _code: &[u8]) -> engine_api::Result<()> {
        Err(EngineError::Unsupported(EVM_UNSUPPORTED.into()))
    }

    fn supports_task(&self, _task: TaskType) -> bool {
        false
    }

    fn estimated_speedup(&self, _task: TaskType) -> Option<f64> {
        None
    }
}
