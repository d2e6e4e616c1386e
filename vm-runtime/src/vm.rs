//! The deterministic wasmtime engine, deploy-time validation and the compiled-module cache.
//!
//! One [`Vm`] per process: one wasmtime `Engine` with deterministic settings, one `Linker`
//! with the host ABI, and a cache of compiled contracts keyed by code hash (SHA-256 of the
//! module bytes). A contract is validated and compiled once; every later call, on any thread,
//! instantiates from the cached `InstancePre` (see `instance.rs` for the per-worker instances).

use hashbrown::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use wasmparser::{Encoding, ExternalKind, Operator, Parser, Payload, TypeRef};
use wasmtime::{
    Config, Engine, ExternType, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig,
};

use crate::config::VmConfig;
use crate::error::{Result, VmError};
use crate::host::{self, HostState, HOST_FUNCTIONS, HOST_MODULE};

/// The export every contract must have: the call entry point, `() -> ()`.
pub const CALL_EXPORT: &str = "call";
/// The optional constructor export, `() -> ()`, run once by the deploy transaction.
pub const INIT_EXPORT: &str = "init";
/// The linear memory export every contract must have.
pub const MEMORY_EXPORT: &str = "memory";
/// Export names with this prefix are reserved for the VM.
pub const RESERVED_EXPORT_PREFIX: &str = "__supervm";

const WASM_PAGE: usize = 65_536;

/// A contract module, validated and compiled, ready to instantiate.
pub struct CompiledContract {
    pub(crate) code_hash: [u8; 32],
    pub(crate) pre: InstancePre<HostState>,
    pub(crate) has_init: bool,
    /// Export names of the module's mutable globals (reset before every call).
    pub(crate) mutable_globals: Vec<String>,
    /// Linear memory right after instantiation (the same for every instance: modules have
    /// no start function), taken from the first instance.
    pub(crate) image: OnceLock<Arc<crate::instance::MemoryImage>>,
}

impl CompiledContract {
    /// SHA-256 of the module bytes.
    pub fn code_hash(&self) -> [u8; 32] {
        self.code_hash
    }
    /// Whether the module exports the `init` constructor.
    pub fn has_init(&self) -> bool {
        self.has_init
    }
}

impl std::fmt::Debug for CompiledContract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledContract")
            .field("code_hash", &hex::encode(self.code_hash))
            .field("has_init", &self.has_init)
            .finish()
    }
}

/// The deterministic engine, its host ABI linker and the compiled-contract cache.
pub struct Vm {
    cfg: Arc<VmConfig>,
    engine: Engine,
    linker: Linker<HostState>,
    cache: RwLock<HashMap<[u8; 32], Arc<CompiledContract>>>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("cfg", &self.cfg)
            .field("cached_modules", &self.cache.read().len())
            .finish()
    }
}

impl Vm {
    /// Builds the engine: fuel metering on (fuel is gas), NaN canonicalization on, SIMD and
    /// relaxed SIMD off, threads, multi-memory and memory64 off, a fixed maximum wasm stack,
    /// the pooling instance allocator with a per-memory limit of
    /// [`VmConfig::memory_limit_bytes`], and no backtraces in trap messages.
    pub fn new(cfg: VmConfig) -> Result<Self> {
        if cfg.memory_limit_bytes < WASM_PAGE {
            return Err(VmError::Config(
                "memory_limit_bytes must be at least one 64 KiB page".into(),
            ));
        }
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(cfg.pool_slots)
            .total_memories(cfg.pool_slots)
            .total_tables(cfg.pool_slots)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .max_memory_size(cfg.memory_limit_bytes);
        let mut c = Config::new();
        // Compile each module on the calling thread: wasmtime's parallel compilation joins on
        // the caller's rayon pool, and a Block-STM worker (a long rayon job) that steals
        // another worker job while it waits deadlocks the pool (seen with 16 threads).
        c.parallel_compilation(false);
        c.consume_fuel(true)
            .cranelift_nan_canonicalization(true)
            .wasm_simd(false)
            .wasm_relaxed_simd(false)
            .wasm_multi_memory(false)
            .wasm_memory64(false)
            .wasm_tail_call(false)
            .wasm_custom_page_sizes(false)
            .wasm_backtrace(false)
            .max_wasm_stack(cfg.max_wasm_stack_bytes)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&c).map_err(|e| VmError::Config(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        host::define(&mut linker).map_err(|e| VmError::Config(format!("{e:#}")))?;
        Ok(Self {
            cfg: Arc::new(cfg),
            engine,
            linker,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// The configuration the engine was built with.
    pub fn config(&self) -> &VmConfig {
        &self.cfg
    }

    pub(crate) fn config_arc(&self) -> &Arc<VmConfig> {
        &self.cfg
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The cached compiled contract for `code_hash`, if this process compiled it already.
    pub fn cached(&self, code_hash: &[u8; 32]) -> Option<Arc<CompiledContract>> {
        self.cache.read().get(code_hash).cloned()
    }

    /// Number of compiled modules in the cache.
    pub fn cached_count(&self) -> usize {
        self.cache.read().len()
    }

    /// Validates and compiles `code`, or returns the cached compilation of the same bytes.
    pub fn compile(&self, code: &[u8]) -> Result<Arc<CompiledContract>> {
        let hash = crate::crypto::sha256(code);
        if let Some(c) = self.cached(&hash) {
            return Ok(c);
        }
        let compiled = Arc::new(self.compile_uncached(code, hash)?);
        Ok(self.cache.write().entry(hash).or_insert(compiled).clone())
    }

    /// Checks that `code` would deploy: the static rules of [`validate_module`] and a full
    /// compilation and link against the host ABI. Caches the result.
    pub fn validate(&self, code: &[u8]) -> Result<()> {
        self.compile(code).map(|_| ())
    }

    fn compile_uncached(&self, code: &[u8], code_hash: [u8; 32]) -> Result<CompiledContract> {
        let info = validate_module(&self.cfg, code)?;
        let rewritten;
        let bytes = if info.hidden_mutable_globals.is_empty() {
            code
        } else {
            rewritten = export_hidden_globals(code, &info.hidden_mutable_globals)
                .ok_or_else(|| VmError::InvalidModule("malformed export section".into()))?;
            &rewritten[..]
        };
        let instrumented = crate::dirty::instrument(bytes).map_err(VmError::InvalidModule)?;
        let module = Module::from_binary(&self.engine, &instrumented)
            .map_err(|e| VmError::InvalidModule(format!("{e:#}")))?;
        check_func_export(&module, CALL_EXPORT)?;
        let has_init = module.get_export(INIT_EXPORT).is_some();
        if has_init {
            check_func_export(&module, INIT_EXPORT)?;
        }
        match module.get_export(MEMORY_EXPORT) {
            Some(ExternType::Memory(_)) => {}
            _ => return Err(VmError::MissingExport(MEMORY_EXPORT.into())),
        }
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| VmError::InvalidModule(format!("{e:#}")))?;
        Ok(CompiledContract {
            code_hash,
            pre,
            has_init,
            mutable_globals: info.mutable_global_exports,
            image: OnceLock::new(),
        })
    }
}

fn check_func_export(module: &Module, name: &str) -> Result<()> {
    match module.get_export(name) {
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => Ok(()),
        _ => Err(VmError::MissingExport(format!("{name}: () -> ()"))),
    }
}

/// What deploy-time validation learned about a module.
#[derive(Clone, Debug, Default)]
pub struct ModuleInfo {
    /// Export names of the mutable globals (for globals the module does not export, the
    /// name the VM exports them under: `__supervm_global_N`).
    pub mutable_global_exports: Vec<String>,
    /// Indices of the mutable globals the module does not export.
    pub hidden_mutable_globals: Vec<u32>,
}

/// The static deploy rules, checked on the raw bytes before compilation (documented in
/// `docs/CONTRACT_ABI.md`, "Deploy rules"):
/// - a core module (not a component), at most [`VmConfig::max_code_bytes`];
/// - imports: functions of module `"env"` named in the host ABI only;
/// - no start function (instantiation must not run code);
/// - exactly one memory, 32-bit, not shared, whose initial size fits the memory limit;
/// - mutable globals are reset before each call: those the module does not export are
///   exported by the VM as `__supervm_global_N` (only the export section is rewritten);
/// - no instruction that changes instance state other than memory and globals:
///   `memory.init`, `data.drop`, `table.init`, `elem.drop`, `table.copy`, `table.set`,
///   `table.grow`, `table.fill`;
/// - no export name starting with `__supervm`.
pub fn validate_module(cfg: &VmConfig, code: &[u8]) -> Result<ModuleInfo> {
    if code.len() > cfg.max_code_bytes {
        return Err(VmError::CodeTooLarge {
            size: code.len(),
            limit: cfg.max_code_bytes,
        });
    }
    let invalid = |e: wasmparser::BinaryReaderError| VmError::InvalidModule(e.to_string());
    let mut mutable_globals: Vec<u32> = Vec::new();
    let mut global_index = 0u32;
    let mut exported_globals: HashMap<u32, String> = HashMap::new();
    let mut memories = 0usize;
    let mut saw_version = false;
    for payload in Parser::new(0).parse_all(code) {
        match payload.map_err(invalid)? {
            Payload::Version { encoding, .. } => {
                saw_version = true;
                if encoding != Encoding::Module {
                    return Err(VmError::InvalidModule(
                        "components are not accepted; deploy a core module".into(),
                    ));
                }
            }
            Payload::ImportSection(reader) => {
                for imp in reader {
                    let imp = imp.map_err(invalid)?;
                    if imp.module != HOST_MODULE || !HOST_FUNCTIONS.contains(&imp.name) {
                        return Err(VmError::UnknownImport {
                            module: imp.module.to_string(),
                            name: imp.name.to_string(),
                        });
                    }
                    if !matches!(imp.ty, TypeRef::Func(_)) {
                        return Err(VmError::InvalidModule(format!(
                            "import env.{} must be a function",
                            imp.name
                        )));
                    }
                }
            }
            Payload::StartSection { .. } => {
                return Err(VmError::InvalidModule(
                    "start functions are not allowed".into(),
                ))
            }
            Payload::MemorySection(reader) => {
                for mem in reader {
                    let mem = mem.map_err(invalid)?;
                    memories += 1;
                    if mem.memory64 || mem.shared {
                        return Err(VmError::InvalidModule(
                            "memory64 and shared memories are not allowed".into(),
                        ));
                    }
                    let initial = usize::try_from(mem.initial)
                        .ok()
                        .and_then(|p| p.checked_mul(WASM_PAGE));
                    if initial.is_none_or(|b| b > cfg.memory_limit_bytes) {
                        return Err(VmError::InvalidModule(format!(
                            "initial memory of {} pages exceeds the limit of {} bytes",
                            mem.initial, cfg.memory_limit_bytes
                        )));
                    }
                }
            }
            Payload::GlobalSection(reader) => {
                for g in reader {
                    let g = g.map_err(invalid)?;
                    if g.ty.mutable {
                        mutable_globals.push(global_index);
                    }
                    global_index += 1;
                }
            }
            Payload::ExportSection(reader) => {
                for exp in reader {
                    let exp = exp.map_err(invalid)?;
                    if exp.name.starts_with(RESERVED_EXPORT_PREFIX) {
                        return Err(VmError::InvalidModule(format!(
                            "export name {} is reserved",
                            exp.name
                        )));
                    }
                    if exp.kind == ExternalKind::Global {
                        exported_globals
                            .entry(exp.index)
                            .or_insert_with(|| exp.name.to_string());
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let mut ops = body.get_operators_reader().map_err(invalid)?;
                while !ops.eof() {
                    let op = ops.read().map_err(invalid)?;
                    if let Some(name) = forbidden_operator(&op) {
                        return Err(VmError::InvalidModule(format!(
                            "instruction {name} is not allowed in contracts"
                        )));
                    }
                }
            }
            _ => {}
        }
    }
    if !saw_version {
        return Err(VmError::InvalidModule("empty module".into()));
    }
    if memories != 1 {
        return Err(VmError::InvalidModule(format!(
            "a contract must define exactly one memory (found {memories})"
        )));
    }
    let mut mutable_global_exports = Vec::with_capacity(mutable_globals.len());
    let mut hidden_mutable_globals = Vec::new();
    for idx in mutable_globals {
        match exported_globals.get(&idx) {
            Some(name) => mutable_global_exports.push(name.clone()),
            None => {
                hidden_mutable_globals.push(idx);
                mutable_global_exports.push(hidden_global_export(idx));
            }
        }
    }
    Ok(ModuleInfo {
        mutable_global_exports,
        hidden_mutable_globals,
    })
}

/// The export name the VM gives a mutable global the module does not export.
fn hidden_global_export(index: u32) -> String {
    format!("{RESERVED_EXPORT_PREFIX}_global_{index}")
}

fn read_leb_u32(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let mut result: u64 = 0;
    for shift in (0..35).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        result |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return u32::try_from(result).ok();
        }
    }
    None
}

fn write_leb_u32(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Returns `code` with extra exports (`__supervm_global_N`) for the mutable globals the
/// module does not export, so that the VM can reset them between calls. Only the export
/// section changes; `None` if the module has no export section or is malformed (validation
/// has already accepted it, so neither happens for modules that reach here).
fn export_hidden_globals(code: &[u8], globals: &[u32]) -> Option<Vec<u8>> {
    const EXPORT_SECTION: u8 = 7;
    const GLOBAL_KIND: u8 = 3;
    let mut out = Vec::with_capacity(code.len() + 32 * globals.len());
    out.extend_from_slice(code.get(..8)?);
    let mut pos = 8;
    let mut done = false;
    while pos < code.len() {
        let id = code[pos];
        pos += 1;
        let size = read_leb_u32(code, &mut pos)? as usize;
        let payload = code.get(pos..pos.checked_add(size)?)?;
        pos += size;
        if id != EXPORT_SECTION || done {
            out.push(id);
            write_leb_u32(&mut out, size as u32);
            out.extend_from_slice(payload);
            continue;
        }
        let mut p = 0;
        let count = read_leb_u32(payload, &mut p)?;
        let mut body = Vec::with_capacity(payload.len() + 32 * globals.len());
        write_leb_u32(
            &mut body,
            count.checked_add(u32::try_from(globals.len()).ok()?)?,
        );
        body.extend_from_slice(&payload[p..]);
        for &g in globals {
            let name = hidden_global_export(g);
            write_leb_u32(&mut body, name.len() as u32);
            body.extend_from_slice(name.as_bytes());
            body.push(GLOBAL_KIND);
            write_leb_u32(&mut body, g);
        }
        out.push(EXPORT_SECTION);
        write_leb_u32(&mut out, u32::try_from(body.len()).ok()?);
        out.extend_from_slice(&body);
        done = true;
    }
    done.then_some(out)
}

fn forbidden_operator(op: &Operator<'_>) -> Option<&'static str> {
    Some(match op {
        Operator::MemoryInit { .. } => "memory.init",
        Operator::DataDrop { .. } => "data.drop",
        Operator::TableInit { .. } => "table.init",
        Operator::ElemDrop { .. } => "elem.drop",
        Operator::TableCopy { .. } => "table.copy",
        Operator::TableSet { .. } => "table.set",
        Operator::TableGrow { .. } => "table.grow",
        Operator::TableFill { .. } => "table.fill",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb_roundtrip() {
        for v in [0u32, 1, 127, 128, 300, 16_384, u32::MAX] {
            let mut out = Vec::new();
            write_leb_u32(&mut out, v);
            let mut pos = 0;
            assert_eq!(read_leb_u32(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
        assert_eq!(read_leb_u32(&[0x80, 0x80], &mut 0), None);
    }

    #[test]
    fn hidden_globals_get_exported() {
        let code = wat::parse_str(
            r#"(module (memory (export "memory") 1) (global (mut i32) (i32.const 4))
                (global $e (export "e") (mut i64) (i64.const 1)) (func (export "call")))"#,
        )
        .expect("wat");
        let info = validate_module(&VmConfig::default(), &code).expect("valid");
        assert_eq!(info.hidden_mutable_globals, vec![0]);
        assert_eq!(info.mutable_global_exports, vec!["__supervm_global_0", "e"]);
        let out = export_hidden_globals(&code, &info.hidden_mutable_globals).expect("rewrites");
        let mut names = Vec::new();
        for p in Parser::new(0).parse_all(&out) {
            if let Ok(Payload::ExportSection(r)) = p {
                for e in r.into_iter().flatten() {
                    names.push(e.name.to_string());
                }
            }
        }
        assert_eq!(names, vec!["memory", "e", "call", "__supervm_global_0"]);
    }
}
