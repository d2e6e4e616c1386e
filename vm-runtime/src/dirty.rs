//! Which parts of a contract's linear memory a call wrote: deploy-time instrumentation.
//!
//! A reused instance must start every call from its initial memory image
//! (`crate::instance`). Scanning and comparing all of memory after each call costs 0.4-0.8 us
//! for a single 64 KiB page on the dev machine, a large part of a token transfer. So at
//! compile time every memory write of the module is made to record where it wrote, and the
//! reset puts back only those chunks:
//!
//! - a mutable `i64` global is appended (exported as [`DIRTY_EXPORT`]); bit `b` set means a
//!   chunk `c` of [`CHUNK`] bytes with `c % 64 == b` may have been written (chunks alias
//!   modulo 64, so the mask is a superset for memories above 256 KiB);
//! - every store (`i32.store`, `i64.store8`, ...) first sets the bit of the chunk of its
//!   effective address (`addr + offset`); a store of up to 8 bytes can spill into the next
//!   chunk, so the reset also restores the chunk after every marked one;
//! - `memory.fill` and `memory.copy` set the bits of every chunk of their destination range;
//! - host functions that write into memory mark their range in the host state
//!   ([`range_mask`]).
//!
//! No other instruction can change linear memory (`memory.init` is refused at deploy;
//! `memory.grow` makes the instance be replaced). The added instructions are ordinary wasm:
//! they are deterministic and charged as fuel like any other (13 or 15 per store, 39 per bulk
//! operation), so a contract's gas use includes them (`docs/CONTRACT_ABI.md`).

use wasm_encoder::reencode::{utils, Reencode, RoundtripReencoder};
use wasm_encoder::{
    ConstExpr, ExportKind, ExportSection, Function, GlobalSection, GlobalType, Instruction as I,
    ValType,
};
use wasmparser::{FunctionBody, Operator, Parser, Payload, TypeRef};

/// The export name of the appended dirty-chunk global.
pub(crate) const DIRTY_EXPORT: &str = "__supervm_dirty_chunks";

/// Bytes per tracked chunk (log2 in [`CHUNK_SHIFT`]).
pub(crate) const CHUNK: usize = 1 << CHUNK_SHIFT;
const CHUNK_SHIFT: u32 = 12;
/// [`CHUNK_SHIFT`] as a wasm `i64` operand.
const SHIFT: i64 = CHUNK_SHIFT as i64;

fn emit(f: &mut Function, ins: &[I<'_>]) {
    for i in ins {
        f.instruction(i);
    }
}

/// The mask bits of the chunks that the byte range `[start, start + len)` touches.
pub(crate) fn range_mask(start: u64, len: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    let first = start >> CHUNK_SHIFT;
    let last = start.saturating_add(len - 1) >> CHUNK_SHIFT;
    let count = last - first + 1;
    let bits = if count >= 64 {
        u64::MAX
    } else {
        (1u64 << count) - 1
    };
    bits.rotate_left((first & 63) as u32)
}

/// The chunks the reset must look at for `mask`: every marked chunk and the one after it.
pub(crate) fn restore_mask(mask: u64) -> u64 {
    mask | mask.rotate_left(1)
}

/// What the rewrite needs to know of the module before it starts.
#[derive(Default)]
struct Layout {
    /// Parameter count per type index (`None` for non-function types).
    type_params: Vec<Option<u32>>,
    /// Type index of each defined function, in order.
    func_types: Vec<u32>,
    imported_globals: u32,
    defined_globals: u32,
}

fn layout(code: &[u8]) -> Result<Layout, String> {
    let mut l = Layout::default();
    for payload in Parser::new(0).parse_all(code) {
        match payload.map_err(|e| e.to_string())? {
            Payload::TypeSection(s) => {
                for group in s {
                    for ty in group.map_err(|e| e.to_string())?.into_types() {
                        l.type_params.push(match &ty.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => {
                                u32::try_from(f.params().len()).ok()
                            }
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(s) => {
                for import in s {
                    if let TypeRef::Global(_) = import.map_err(|e| e.to_string())?.ty {
                        l.imported_globals += 1;
                    }
                }
            }
            Payload::FunctionSection(s) => {
                for t in s {
                    l.func_types.push(t.map_err(|e| e.to_string())?);
                }
            }
            Payload::GlobalSection(s) => l.defined_globals = s.count(),
            _ => {}
        }
    }
    Ok(l)
}

struct Instrument {
    layout: Layout,
    /// Index of the dirty global.
    global: u32,
    /// Whether the global section (with the dirty global) was written.
    global_written: bool,
    /// Index of the next defined function body.
    next_func: usize,
}

impl Instrument {
    fn dirty_global(globals: &mut GlobalSection) {
        globals.global(
            GlobalType {
                val_type: ValType::I64,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i64_const(0),
        );
    }
}

/// Locals appended to every function (indices from the function's first free local).
struct Temps {
    addr: u32,
    i32v: u32,
    i64v: u32,
    f32v: u32,
    f64v: u32,
    dst: u32,
    len: u32,
    count: u32,
}

/// For a store operator: the temporary local that holds its value while the chunk is
/// marked, and its static offset. `None` for every other operator.
fn store(op: &Operator<'_>, t: &Temps) -> Option<(u32, u64)> {
    Some(match op {
        Operator::I32Store { memarg }
        | Operator::I32Store8 { memarg }
        | Operator::I32Store16 { memarg } => (t.i32v, memarg.offset),
        Operator::I64Store { memarg }
        | Operator::I64Store8 { memarg }
        | Operator::I64Store16 { memarg }
        | Operator::I64Store32 { memarg } => (t.i64v, memarg.offset),
        Operator::F32Store { memarg } => (t.f32v, memarg.offset),
        Operator::F64Store { memarg } => (t.f64v, memarg.offset),
        _ => return None,
    })
}

impl Instrument {
    fn body(&mut self, func: FunctionBody<'_>) -> Result<Function, String> {
        let ty = *self
            .layout
            .func_types
            .get(self.next_func)
            .ok_or("more function bodies than functions")?;
        self.next_func += 1;
        let params = self
            .layout
            .type_params
            .get(ty as usize)
            .copied()
            .flatten()
            .ok_or("function of a non-function type")?;
        let mut locals: Vec<(u32, ValType)> = Vec::new();
        let mut declared: u32 = 0;
        let mut rt = RoundtripReencoder;
        for pair in func.get_locals_reader().map_err(|e| e.to_string())? {
            let (n, vt) = pair.map_err(|e| e.to_string())?;
            declared = declared.checked_add(n).ok_or("too many locals")?;
            locals.push((n, rt.val_type(vt).map_err(|e| e.to_string())?));
        }
        let base = params.checked_add(declared).ok_or("too many locals")?;
        let t = Temps {
            addr: base,
            i32v: base + 1,
            i64v: base + 2,
            f32v: base + 3,
            f64v: base + 4,
            dst: base + 5,
            len: base + 6,
            count: base + 7,
        };
        locals.extend([
            (2, ValType::I32),
            (1, ValType::I64),
            (1, ValType::F32),
            (1, ValType::F64),
            (2, ValType::I32),
            (1, ValType::I64),
        ]);
        let g = self.global;
        let mut f = Function::new(locals);
        let mut reader = func.get_operators_reader().map_err(|e| e.to_string())?;
        while !reader.eof() {
            let op = reader.read().map_err(|e| e.to_string())?;
            if let Some((v, offset)) = store(&op, &t) {
                // [addr, value] -> mark the chunk of addr + offset, then store as before.
                let offset = offset as i64;
                emit(
                    &mut f,
                    &[I::LocalSet(v), I::LocalSet(t.addr), I::GlobalGet(g)],
                );
                emit(
                    &mut f,
                    &[I::I64Const(1), I::LocalGet(t.addr), I::I64ExtendI32U],
                );
                if offset != 0 {
                    emit(&mut f, &[I::I64Const(offset), I::I64Add]);
                }
                emit(
                    &mut f,
                    &[I::I64Const(SHIFT), I::I64ShrU, I::I64Shl, I::I64Or],
                );
                emit(
                    &mut f,
                    &[I::GlobalSet(g), I::LocalGet(t.addr), I::LocalGet(v)],
                );
            } else if matches!(
                op,
                Operator::MemoryFill { .. } | Operator::MemoryCopy { .. }
            ) {
                // [dst, value|src, len] -> mark every chunk of [dst, dst + len).
                let first_chunk = [
                    I::LocalGet(t.dst),
                    I::I64ExtendI32U,
                    I::I64Const(SHIFT),
                    I::I64ShrU,
                ];
                emit(
                    &mut f,
                    &[I::LocalSet(t.len), I::LocalSet(t.i32v), I::LocalSet(t.dst)],
                );
                // count = ((dst + len + CHUNK - 1) >> SHIFT) - (dst >> SHIFT)
                emit(&mut f, &[I::LocalGet(t.dst), I::I64ExtendI32U]);
                emit(&mut f, &[I::LocalGet(t.len), I::I64ExtendI32U, I::I64Add]);
                emit(&mut f, &[I::I64Const(CHUNK as i64 - 1), I::I64Add]);
                emit(&mut f, &[I::I64Const(SHIFT), I::I64ShrU]);
                emit(&mut f, &first_chunk);
                emit(&mut f, &[I::I64Sub, I::LocalSet(t.count)]);
                // dirty |= rotl(count >= 64 ? -1 : (1 << count) - 1, dst >> SHIFT)
                emit(&mut f, &[I::GlobalGet(g), I::I64Const(-1)]);
                emit(&mut f, &[I::I64Const(1), I::LocalGet(t.count), I::I64Shl]);
                emit(&mut f, &[I::I64Const(1), I::I64Sub]);
                emit(&mut f, &[I::LocalGet(t.count), I::I64Const(64), I::I64GeU]);
                emit(&mut f, &[I::Select]);
                emit(&mut f, &first_chunk);
                emit(&mut f, &[I::I64Rotl, I::I64Or, I::GlobalSet(g)]);
                emit(
                    &mut f,
                    &[I::LocalGet(t.dst), I::LocalGet(t.i32v), I::LocalGet(t.len)],
                );
            }
            let ins = rt.instruction(op).map_err(|e| e.to_string())?;
            f.instruction(&ins);
        }
        Ok(f)
    }
}

impl Reencode for Instrument {
    type Error = String;

    fn parse_global_section(
        &mut self,
        globals: &mut GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<String>> {
        utils::parse_global_section(self, globals, section)?;
        Self::dirty_global(globals);
        self.global_written = true;
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<wasm_encoder::SectionId>,
        before: Option<wasm_encoder::SectionId>,
    ) -> Result<(), wasm_encoder::reencode::Error<String>> {
        use wasm_encoder::SectionId as S;
        let past_globals = matches!(
            before,
            None | Some(S::Export | S::Start | S::Element | S::DataCount | S::Code | S::Data)
        );
        if past_globals && !self.global_written {
            let mut globals = GlobalSection::new();
            Self::dirty_global(&mut globals);
            module.section(&globals);
            self.global_written = true;
        }
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<String>> {
        utils::parse_export_section(self, exports, section)?;
        exports.export(DIRTY_EXPORT, ExportKind::Global, self.global);
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        func: FunctionBody<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<String>> {
        match self.body(func) {
            Ok(f) => {
                code.function(&f);
                Ok(())
            }
            Err(e) => Err(wasm_encoder::reencode::Error::UserError(e)),
        }
    }
}

/// Rewrites a validated module so that its memory writes record their chunks (module docs).
/// The module must have an export section (every contract exports `memory` and `call`).
pub(crate) fn instrument(code: &[u8]) -> Result<Vec<u8>, String> {
    let layout = layout(code)?;
    let global = layout
        .imported_globals
        .checked_add(layout.defined_globals)
        .ok_or("too many globals")?;
    let mut ins = Instrument {
        layout,
        global,
        global_written: false,
        next_func: 0,
    };
    let mut module = wasm_encoder::Module::new();
    ins.parse_core_module(&mut module, Parser::new(0), code)
        .map_err(|e| format!("instrumenting memory writes: {e}"))?;
    Ok(module.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random valid modules (wasm-smith, limited to what deploy accepts: one 32-bit memory,
    /// no SIMD, threads, GC, exceptions or tail calls) stay valid once instrumented, and
    /// export the dirty global.
    #[test]
    fn instrumented_random_modules_stay_valid() {
        let mut data = vec![0u8; 4096];
        let mut seed = vm_state::testing::rng(0xd1_27);
        let mut done = 0;
        for _ in 0..300 {
            for b in data.iter_mut() {
                *b = seed() as u8;
            }
            let mut u = arbitrary::Unstructured::new(&data);
            let cfg = wasm_smith::Config {
                simd_enabled: false,
                relaxed_simd_enabled: false,
                threads_enabled: false,
                memory64_enabled: false,
                gc_enabled: false,
                exceptions_enabled: false,
                tail_call_enabled: false,
                max_memories: 1,
                min_memories: 1,
                export_everything: true,
                ..Default::default()
            };
            let Ok(m) = wasm_smith::Module::new(cfg, &mut u) else {
                continue;
            };
            let bytes = m.to_bytes();
            if !wasmparser::Parser::new(0)
                .parse_all(&bytes)
                .any(|p| matches!(p, Ok(Payload::ExportSection(_))))
            {
                continue;
            }
            let out = instrument(&bytes).expect("instrumentation of a valid module");
            wasmparser::Validator::new()
                .validate_all(&out)
                .unwrap_or_else(|e| panic!("instrumented module invalid: {e}"));
            let exported = wasmparser::Parser::new(0).parse_all(&out).any(|p| match p {
                Ok(Payload::ExportSection(s)) => s
                    .into_iter()
                    .any(|e| e.map(|e| e.name == DIRTY_EXPORT).unwrap_or(false)),
                _ => false,
            });
            assert!(exported, "dirty global not exported");
            done += 1;
        }
        assert!(done > 100, "only {done} modules generated");
    }

    #[test]
    fn range_mask_marks_every_touched_chunk() {
        assert_eq!(range_mask(0, 0), 0);
        assert_eq!(range_mask(0, 1), 1);
        assert_eq!(range_mask(CHUNK as u64 - 1, 2), 0b11);
        assert_eq!(range_mask(3 * CHUNK as u64, CHUNK as u64), 0b1000);
        assert_eq!(
            range_mask(63 * CHUNK as u64, CHUNK as u64 + 1),
            (1 << 63) | 1
        );
        assert_eq!(range_mask(0, 64 * CHUNK as u64), u64::MAX);
        assert_eq!(range_mask(u64::MAX - 1, 10), 1 << 63);
        assert_eq!(restore_mask(1 << 63), (1 << 63) | 1);
    }
}
