//! `supervm verify` JSON-lines tool (`gpu_executor::sig::cli`), on the CPU backend.

use std::sync::Arc;

use ed25519_dalek::{Signer, SigningKey};
use gpu_executor::sig::cli::{verify_json_lines, Scheme, VerifyOptions};
use gpu_executor::sig::{SigConfig, SigExecutor};

fn exec() -> SigExecutor {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    SigExecutor::cpu(Arc::new(pool), SigConfig::default())
}

fn run(scheme: Scheme, input: &str) -> Result<String, String> {
    let mut out = Vec::new();
    verify_json_lines(
        &exec(),
        &VerifyOptions::new(scheme),
        input.as_bytes(),
        &mut out,
    )
    .map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

fn ed_line(valid: bool) -> String {
    let key = SigningKey::from_bytes(&[4u8; 32]);
    let msg = b"hello";
    let mut sig = key.sign(msg).to_bytes();
    if !valid {
        sig[5] ^= 1;
    }
    format!(
        r#"{{"pk":"{}","msg":"{}","sig":"0x{}"}}"#,
        hex::encode(key.verifying_key().to_bytes()),
        hex::encode(msg),
        hex::encode(sig)
    )
}

#[test]
fn ed25519_lines() {
    let input = format!("{}\n\n{}\n", ed_line(true), ed_line(false));
    assert_eq!(
        run(Scheme::Ed25519, &input).unwrap(),
        "{\"valid\":true}\n{\"valid\":false}\n"
    );
}

#[test]
fn malformed_lines_name_the_line_and_never_say_valid() {
    let good = ed_line(true);
    for (bad, what) in [
        ("not json", "not JSON"),
        ("[1,2]", "not a JSON object"),
        (
            r#"{"pk":"00","msg":"","sig":"00"}"#,
            "field `pk` has 1 bytes",
        ),
        (r#"{"msg":"","sig":"00"}"#, "missing field `pk`"),
        (r#"{"pk":"zz","msg":"","sig":"00"}"#, "not hex"),
        (r#"{"pk":5,"msg":"","sig":"00"}"#, "not a string"),
    ] {
        let input = format!("{good}\n{bad}\n{good}\n");
        let err = run(Scheme::Ed25519, &input).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains(what), "{err}");
    }
}

#[test]
fn secp256k1_and_ecrecover_lines() {
    let key = k256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
    let hash = [9u8; 32];
    let (sig, _) = key.sign_prehash_recoverable(&hash).unwrap();
    let sig = sig.normalize_s().unwrap_or(sig);
    let pk = key.verifying_key().to_encoded_point(true);
    let line = format!(
        r#"{{"pk":"{}","hash":"{}","sig":"{}"}}"#,
        hex::encode(pk.as_bytes()),
        hex::encode(hash),
        hex::encode(sig.to_bytes())
    );
    assert_eq!(run(Scheme::Secp256k1, &line).unwrap(), "{\"valid\":true}\n");
    let short = format!(
        r#"{{"pk":"{}","hash":"{}","sig":"{}"}}"#,
        hex::encode(&pk.as_bytes()[..32]),
        hex::encode(hash),
        hex::encode(sig.to_bytes())
    );
    assert!(run(Scheme::Secp256k1, &short)
        .unwrap_err()
        .contains("line 1"));

    let unc = key.verifying_key().to_encoded_point(false);
    let mut xy = [0u8; 64];
    xy.copy_from_slice(&unc.as_bytes()[1..]);
    let addr = hex::encode(gpu_executor::sig::cpu::eth_address(&xy));
    let mut lines = String::new();
    for v in [27u8, 28, 29] {
        let mut rec = sig.to_bytes().to_vec();
        rec.push(v);
        lines.push_str(&format!(
            "{{\"hash\":\"{}\",\"sig\":\"{}\"}}\n",
            hex::encode(hash),
            hex::encode(rec)
        ));
    }
    let out = run(Scheme::Ecrecover, &lines).unwrap();
    let outs: Vec<&str> = out.lines().collect();
    assert_eq!(outs.len(), 3);
    let expected = format!("{{\"valid\":true,\"address\":\"{addr}\"}}");
    assert_eq!(outs.iter().filter(|l| **l == expected).count(), 1, "{out}");
    assert_eq!(outs[2], "{\"valid\":false,\"address\":null}");
}
