//! `supervm verify`: signatures from JSON lines, one JSON result line per input.
//!
//! Input lines (hex with or without `0x`; blank lines are skipped):
//! - ed25519:   `{"pk":hex32,"msg":hex,"sig":hex64}`
//! - secp256k1: `{"pk":hex33|hex65,"hash":hex32,"sig":hex64}` (r || s)
//! - ecrecover: `{"hash":hex32,"sig":hex65}` (r || s || v)
//!
//! Output lines: `{"valid":bool}`; ecrecover adds `"address":hex` (20 bytes) or `null`.
//! A malformed line (bad JSON, missing field, bad hex, wrong length) stops the run with an
//! error naming its line number; it never yields a result. Lines are verified in batches of
//! [`VerifyOptions::batch`], and each batch's results are written before the next is read.

use std::io::{BufRead, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{EcrecoverItem, Ed25519Item, Sec1PublicKey, Secp256k1Item, SigExecutor};
use crate::error::{GpuError, Result};

/// Which signatures the input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Ed25519,
    Secp256k1,
    Ecrecover,
}

impl FromStr for Scheme {
    type Err = GpuError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" => Ok(Self::Ed25519),
            "secp256k1" => Ok(Self::Secp256k1),
            "ecrecover" => Ok(Self::Ecrecover),
            other => Err(GpuError::Config(format!(
                "unknown scheme `{other}` (expected ed25519, secp256k1 or ecrecover)"
            ))),
        }
    }
}

/// Options of [`verify_json_lines`].
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    pub scheme: Scheme,
    /// Lines per verified batch. Default: 65536.
    pub batch: usize,
}

impl VerifyOptions {
    pub fn new(scheme: Scheme) -> Self {
        Self {
            scheme,
            batch: 1 << 16,
        }
    }
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifySummary {
    pub lines: usize,
    pub valid: usize,
}

fn bad_line(line: usize, what: impl std::fmt::Display) -> GpuError {
    GpuError::InvalidInput(format!("line {line}: {what}"))
}

fn field<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
    line: usize,
) -> Result<&'a str> {
    match obj.get(name) {
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(_) => Err(bad_line(line, format!("field `{name}` is not a string"))),
        None => Err(bad_line(line, format!("missing field `{name}`"))),
    }
}

fn hex_field(
    obj: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    line: usize,
) -> Result<Vec<u8>> {
    let s = field(obj, name, line)?;
    let s = s.strip_prefix("0x").unwrap_or(s);
    hex::decode(s).map_err(|e| bad_line(line, format!("field `{name}` is not hex: {e}")))
}

fn fixed<const N: usize>(bytes: Vec<u8>, name: &str, line: usize) -> Result<[u8; N]> {
    let len = bytes.len();
    <[u8; N]>::try_from(bytes).map_err(|_| {
        bad_line(
            line,
            format!("field `{name}` has {len} bytes, expected {N}"),
        )
    })
}

enum Parsed {
    Ed25519 {
        pk: [u8; 32],
        msg: Vec<u8>,
        sig: [u8; 64],
    },
    Secp256k1(Secp256k1Item),
    Ecrecover(EcrecoverItem),
}

fn parse_line(scheme: Scheme, text: &str, line: usize) -> Result<Parsed> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad_line(line, format!("not JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad_line(line, "not a JSON object"))?;
    Ok(match scheme {
        Scheme::Ed25519 => Parsed::Ed25519 {
            pk: fixed(hex_field(obj, "pk", line)?, "pk", line)?,
            msg: hex_field(obj, "msg", line)?,
            sig: fixed(hex_field(obj, "sig", line)?, "sig", line)?,
        },
        Scheme::Secp256k1 => {
            let pk = hex_field(obj, "pk", line)?;
            let len = pk.len();
            let public_key = Sec1PublicKey::from_slice(&pk).ok_or_else(|| {
                bad_line(
                    line,
                    format!("field `pk` has {len} bytes, expected 33 or 65"),
                )
            })?;
            Parsed::Secp256k1(Secp256k1Item {
                public_key,
                hash: fixed(hex_field(obj, "hash", line)?, "hash", line)?,
                signature: fixed(hex_field(obj, "sig", line)?, "sig", line)?,
            })
        }
        Scheme::Ecrecover => Parsed::Ecrecover(EcrecoverItem {
            hash: fixed(hex_field(obj, "hash", line)?, "hash", line)?,
            signature: fixed(hex_field(obj, "sig", line)?, "sig", line)?,
        }),
    })
}

fn io_err(e: std::io::Error) -> GpuError {
    GpuError::InvalidInput(format!("I/O error: {e}"))
}

fn flush_batch<W: Write>(
    exec: &SigExecutor,
    batch: &mut Vec<Parsed>,
    out: &mut W,
    summary: &mut VerifySummary,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut lines = Vec::with_capacity(batch.len());
    match batch.first() {
        Some(Parsed::Ed25519 { .. }) => {
            let items: Vec<Ed25519Item<'_>> = batch
                .iter()
                .filter_map(|p| match p {
                    Parsed::Ed25519 { pk, msg, sig } => Some(Ed25519Item {
                        public_key: *pk,
                        message: msg,
                        signature: *sig,
                    }),
                    _ => None,
                })
                .collect();
            for ok in exec.verify_ed25519(&items) {
                summary.valid += usize::from(ok);
                lines.push(format!("{{\"valid\":{ok}}}"));
            }
        }
        Some(Parsed::Secp256k1(_)) => {
            let items: Vec<Secp256k1Item> = batch
                .iter()
                .filter_map(|p| match p {
                    Parsed::Secp256k1(i) => Some(*i),
                    _ => None,
                })
                .collect();
            for ok in exec.verify_secp256k1(&items) {
                summary.valid += usize::from(ok);
                lines.push(format!("{{\"valid\":{ok}}}"));
            }
        }
        Some(Parsed::Ecrecover(_)) => {
            let items: Vec<EcrecoverItem> = batch
                .iter()
                .filter_map(|p| match p {
                    Parsed::Ecrecover(i) => Some(*i),
                    _ => None,
                })
                .collect();
            for r in exec.ecrecover(&items) {
                match r {
                    Some(k) => {
                        summary.valid += 1;
                        lines.push(format!(
                            "{{\"valid\":true,\"address\":\"{}\"}}",
                            hex::encode(k.address)
                        ));
                    }
                    None => lines.push("{\"valid\":false,\"address\":null}".to_string()),
                }
            }
        }
        None => {}
    }
    if lines.len() != batch.len() {
        return Err(GpuError::Launch(format!(
            "{} results for {} signatures",
            lines.len(),
            batch.len()
        )));
    }
    for l in lines {
        writeln!(out, "{l}").map_err(io_err)?;
    }
    summary.lines += batch.len();
    batch.clear();
    Ok(())
}

/// Reads JSON lines from `input`, verifies them on `exec` and writes one JSON line per input
/// to `output`. Stops at the first malformed line with an error naming it (1-based); the
/// results of the batches before it have been written, nothing for it or after it.
pub fn verify_json_lines<R: BufRead, W: Write>(
    exec: &SigExecutor,
    options: &VerifyOptions,
    input: R,
    mut output: W,
) -> Result<VerifySummary> {
    let mut summary = VerifySummary::default();
    let mut batch = Vec::new();
    let batch_size = options.batch.max(1);
    for (i, line) in input.lines().enumerate() {
        let line_no = i + 1;
        let text = line.map_err(|e| bad_line(line_no, format!("unreadable: {e}")))?;
        if text.trim().is_empty() {
            continue;
        }
        batch.push(parse_line(options.scheme, &text, line_no)?);
        if batch.len() >= batch_size {
            flush_batch(exec, &mut batch, &mut output, &mut summary)?;
        }
    }
    flush_batch(exec, &mut batch, &mut output, &mut summary)?;
    output.flush().map_err(io_err)?;
    Ok(summary)
}
