//! Library side of the node's command-line tools (`supervm hash`, `supervm merkle`,
//! `supervm devices`): read hex lines, run them through a [`GpuExecutor`], print hex.

use std::io::{BufRead, Write};

use crate::device::{backend_status, list_devices, BackendKind};
use crate::error::{GpuError, Result};
use crate::executor::GpuExecutor;
use crate::hash::{Digest, HashAlgo, MessageBatch};

fn parse_hex(line: &str, lineno: usize) -> Result<Vec<u8>> {
    let t = line.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    hex::decode(t).map_err(|e| GpuError::InvalidInput(format!("line {lineno}: not hex ({e})")))
}

/// Reads one hex message per line (optional `0x`; an empty line is the empty message).
/// Errors name the first malformed line (1-based).
pub fn read_hex_lines(input: impl BufRead) -> Result<MessageBatch> {
    let mut b = MessageBatch::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| GpuError::InvalidInput(format!("line {}: {e}", i + 1)))?;
        b.push(&parse_hex(&line, i + 1)?);
    }
    Ok(b)
}

/// Reads one 32-byte hex leaf per line (blank lines skipped).
pub fn read_hex_leaves(input: impl BufRead) -> Result<Vec<Digest>> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| GpuError::InvalidInput(format!("line {}: {e}", i + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let v = parse_hex(&line, i + 1)?;
        let d: Digest = v.as_slice().try_into().map_err(|_| {
            GpuError::InvalidInput(format!(
                "line {}: a leaf must be 32 bytes (64 hex digits), got {} bytes",
                i + 1,
                v.len()
            ))
        })?;
        out.push(d);
    }
    Ok(out)
}

/// `supervm hash`: hex messages in, one hex digest per line out.
pub fn hash_lines(
    ex: &GpuExecutor,
    algo: HashAlgo,
    input: impl BufRead,
    mut out: impl Write,
) -> Result<usize> {
    let batch = read_hex_lines(input)?;
    let digests = ex.hash(algo, &batch.as_messages())?;
    for d in &digests {
        writeln!(out, "{}", hex::encode(d))
            .map_err(|e| GpuError::InvalidInput(format!("write: {e}")))?;
    }
    Ok(digests.len())
}

/// `supervm merkle`: hex leaves in, the hex root out (one line). Returns the root.
pub fn merkle_lines(
    ex: &GpuExecutor,
    algo: HashAlgo,
    input: impl BufRead,
    mut out: impl Write,
) -> Result<Digest> {
    let leaves = read_hex_leaves(input)?;
    let root = ex.merkle(algo, &leaves, false)?.root;
    writeln!(out, "{}", hex::encode(root))
        .map_err(|e| GpuError::InvalidInput(format!("write: {e}")))?;
    Ok(root)
}

/// `supervm devices`: every device with its properties, and why a backend is absent.
pub fn devices_report() -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "cpu: {} ({} threads)\n",
        crate::hash::cpu_model_name(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    ));
    for kind in [BackendKind::Cuda, BackendKind::Opencl] {
        if let Some(why) = backend_status(kind) {
            s.push_str(&format!("{kind}: unavailable: {why}\n"));
        }
    }
    for d in list_devices() {
        s.push_str(&format!("{d}\n"));
    }
    s
}
