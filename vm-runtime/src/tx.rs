//! Transactions: the canonical binary encoding, signing and signature checks.
//!
//! The encoding is hand-written and documented byte by byte in `docs/TRANSACTIONS.md`;
//! [`Transaction::decode`] accepts exactly the bytes [`Transaction::encode`] produces (one
//! encoding per transaction, no trailing bytes) and never panics on malformed input.
//!
//! Signatures are Ed25519 over [`Transaction::signing_hash`]; the sender's address is the
//! first 20 bytes of SHA-256 of its public key ([`address_of`]). Signatures are verified by
//! the node's pipeline before execution ([`verify_batch`], which the node may route to a
//! GPU), never inside the executor.

use ed25519_dalek::{Signer, SigningKey};
use vm_state::Address;

use crate::crypto::sha256;
use crate::error::{Result, VmError};

/// Version byte of the current encoding.
pub const TX_VERSION: u8 = 1;
/// Largest code, call input or privacy payload a transaction may carry when decoded (the
/// executor applies the smaller limits of `VmConfig`).
pub const MAX_TX_PAYLOAD: usize = 1 << 20;
/// Domain tag of the signing hash.
pub const SIGNING_DOMAIN: &[u8] = b"SUPERVM-TX-SIG-V1";

/// An Ed25519 public key (32 bytes).
pub type PublicKey = [u8; 32];

/// The address of a public key: the first 20 bytes of `SHA-256(public_key)`.
pub fn address_of(public_key: &PublicKey) -> Address {
    let h = sha256(public_key);
    let mut a = [0u8; 20];
    a.copy_from_slice(&h[..20]);
    a
}

/// The address of the contract deployed by `sender` with nonce `nonce`: the first 20 bytes
/// of `SHA-256("SUPERVM-CONTRACT" || sender || u64_le(nonce))`.
pub fn contract_address(sender: &Address, nonce: u64) -> Address {
    let mut buf = Vec::with_capacity(16 + 20 + 8);
    buf.extend_from_slice(b"SUPERVM-CONTRACT");
    buf.extend_from_slice(sender);
    buf.extend_from_slice(&nonce.to_le_bytes());
    let h = sha256(&buf);
    let mut a = [0u8; 20];
    a.copy_from_slice(&h[..20]);
    a
}

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxKind {
    /// Moves native units.
    Transfer { to: Address, amount: u128 },
    /// Deploys a WebAssembly contract; its address is
    /// [`contract_address`]`(sender, nonce)`.
    Deploy { code: Vec<u8> },
    /// Calls a contract's `call` export with `input`, moving `value` native units to it.
    Call {
        contract: Address,
        input: Vec<u8>,
        value: u128,
        /// The contract storage slots the call may touch ([`AccessList`]), or `None`: any.
        /// With a list, a storage access outside it traps the call (status `Trap`, in every
        /// execution mode), and a block whose transactions all declare their keys runs on
        /// the dependency graph of those keys instead of Block-STM (`docs/ARCHITECTURE.md`).
        /// Signed like every field.
        access: Option<AccessList>,
    },
    /// A privacy transaction (shielded transfer); the payload is interpreted by the node's
    /// privacy pipeline, which executes it. The WASM executor rejects it.
    Privacy(Vec<u8>),
}

/// The contract storage slots a call declares: the contract-side key bytes the contract
/// passes to the storage host calls. A slot in `write` may be read, written and deleted; a
/// slot only in `read` may only be read. Read-only slots let calls that read the same slot
/// (a price, a configuration) run side by side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessList {
    pub write: Vec<Vec<u8>>,
    pub read: Vec<Vec<u8>>,
}

impl AccessList {
    /// A list of writable slots only.
    pub fn writes(slots: Vec<Vec<u8>>) -> Self {
        Self {
            write: slots,
            read: Vec::new(),
        }
    }

    /// Slots declared, both kinds.
    pub fn len(&self) -> usize {
        self.write.len() + self.read.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every slot with whether it is writable, writable ones first.
    pub fn slots(&self) -> impl Iterator<Item = (&[u8], bool)> {
        self.write
            .iter()
            .map(|s| (&s[..], true))
            .chain(self.read.iter().map(|s| (&s[..], false)))
    }
}

/// A signed transaction. Equality compares the fields (the cached sender address is left
/// out).
#[derive(Clone, Debug)]
pub struct Transaction {
    pub chain_id: u64,
    /// The sender's Ed25519 public key.
    pub sender: PublicKey,
    pub nonce: u64,
    pub gas_limit: u64,
    /// Native units per unit of gas.
    pub gas_price: u64,
    pub kind: TxKind,
    /// Ed25519 signature over [`Transaction::signing_hash`].
    pub signature: [u8; 64],
    /// A public key and its address, computed when the transaction was made or decoded: the
    /// address is needed several times per transaction (declaring its keys, executing it),
    /// and each time costs a SHA-256. Used only while it names the current `sender`, so
    /// changing `sender` afterwards stays correct.
    sender_cache: (PublicKey, Address),
}

impl PartialEq for Transaction {
    fn eq(&self, o: &Self) -> bool {
        self.chain_id == o.chain_id
            && self.sender == o.sender
            && self.nonce == o.nonce
            && self.gas_limit == o.gas_limit
            && self.gas_price == o.gas_price
            && self.kind == o.kind
            && self.signature == o.signature
    }
}

impl Eq for Transaction {}

const KIND_TRANSFER: u8 = 0;
const KIND_DEPLOY: u8 = 1;
const KIND_CALL: u8 = 2;
const KIND_PRIVACY: u8 = 3;
/// A call with a declared access list (`TxKind::Call` with `access: Some`).
const KIND_CALL_DECLARED: u8 = 4;
/// Most storage slots a call may declare.
pub const MAX_DECLARED_SLOTS: usize = 256;

impl Transaction {
    /// An unsigned transaction (zero signature) from the public key of `sender`.
    pub fn new_unsigned(
        chain_id: u64,
        sender: PublicKey,
        nonce: u64,
        gas_limit: u64,
        gas_price: u64,
        kind: TxKind,
    ) -> Self {
        Self {
            chain_id,
            sender,
            nonce,
            gas_limit,
            gas_price,
            kind,
            signature: [0; 64],
            sender_cache: (sender, address_of(&sender)),
        }
    }

    /// The sender's address ([`address_of`] its public key).
    pub fn sender_address(&self) -> Address {
        if self.sender_cache.0 == self.sender {
            self.sender_cache.1
        } else {
            address_of(&self.sender)
        }
    }

    /// Encodes everything but the signature.
    fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(TX_VERSION);
        out.extend_from_slice(&self.chain_id.to_le_bytes());
        out.extend_from_slice(&self.sender);
        out.extend_from_slice(&self.nonce.to_le_bytes());
        out.extend_from_slice(&self.gas_limit.to_le_bytes());
        out.extend_from_slice(&self.gas_price.to_le_bytes());
        match &self.kind {
            TxKind::Transfer { to, amount } => {
                out.push(KIND_TRANSFER);
                out.extend_from_slice(to);
                out.extend_from_slice(&amount.to_le_bytes());
            }
            TxKind::Deploy { code } => {
                out.push(KIND_DEPLOY);
                put_bytes(out, code);
            }
            TxKind::Call {
                contract,
                input,
                value,
                access,
            } => {
                out.push(if access.is_some() {
                    KIND_CALL_DECLARED
                } else {
                    KIND_CALL
                });
                out.extend_from_slice(contract);
                out.extend_from_slice(&value.to_le_bytes());
                put_bytes(out, input);
                if let Some(list) = access {
                    for slots in [&list.write, &list.read] {
                        out.extend_from_slice(&(slots.len() as u32).to_le_bytes());
                        for slot in slots {
                            put_bytes(out, slot);
                        }
                    }
                }
            }
            TxKind::Privacy(payload) => {
                out.push(KIND_PRIVACY);
                put_bytes(out, payload);
            }
        }
    }

    /// The canonical encoding (body, then the 64-byte signature).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.encode_body(&mut out);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes the canonical encoding; any other bytes are an error (never a panic).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { buf: bytes };
        let version = r.u8()?;
        if version != TX_VERSION {
            return Err(VmError::Decode(format!("unknown version {version}")));
        }
        let chain_id = r.u64()?;
        let sender = r.array::<32>()?;
        let nonce = r.u64()?;
        let gas_limit = r.u64()?;
        let gas_price = r.u64()?;
        let kind = match r.u8()? {
            KIND_TRANSFER => TxKind::Transfer {
                to: r.array::<20>()?,
                amount: u128::from_le_bytes(r.array::<16>()?),
            },
            KIND_DEPLOY => TxKind::Deploy { code: r.bytes()? },
            kind @ (KIND_CALL | KIND_CALL_DECLARED) => {
                let contract = r.array::<20>()?;
                let value = u128::from_le_bytes(r.array::<16>()?);
                let input = r.bytes()?;
                let access = if kind == KIND_CALL_DECLARED {
                    let mut lists = [Vec::new(), Vec::new()];
                    let mut total = 0usize;
                    for list in &mut lists {
                        let count = u32::from_le_bytes(r.array::<4>()?) as usize;
                        total = total.saturating_add(count);
                        if total > MAX_DECLARED_SLOTS {
                            return Err(VmError::Decode(format!(
                                "more declared slots than {MAX_DECLARED_SLOTS}"
                            )));
                        }
                        *list = (0..count).map(|_| r.bytes()).collect::<Result<Vec<_>>>()?;
                    }
                    let [write, read] = lists;
                    Some(AccessList { write, read })
                } else {
                    None
                };
                TxKind::Call {
                    contract,
                    input,
                    value,
                    access,
                }
            }
            KIND_PRIVACY => TxKind::Privacy(r.bytes()?),
            k => return Err(VmError::Decode(format!("unknown kind {k}"))),
        };
        let signature = r.array::<64>()?;
        if !r.buf.is_empty() {
            return Err(VmError::Decode(format!("{} trailing bytes", r.buf.len())));
        }
        Ok(Self {
            chain_id,
            sender,
            nonce,
            gas_limit,
            gas_price,
            kind,
            signature,
            sender_cache: (sender, address_of(&sender)),
        })
    }

    /// `SHA-256(SIGNING_DOMAIN || body)`: what the sender signs.
    pub fn signing_hash(&self) -> [u8; 32] {
        let mut buf = Vec::with_capacity(160);
        buf.extend_from_slice(SIGNING_DOMAIN);
        self.encode_body(&mut buf);
        sha256(&buf)
    }

    /// `SHA-256` of the canonical encoding: the transaction's identifier.
    pub fn hash(&self) -> [u8; 32] {
        sha256(&self.encode())
    }

    /// Sets `sender` to `key`'s public key and signs.
    pub fn sign(&mut self, key: &SigningKey) {
        self.sender = key.verifying_key().to_bytes();
        self.sender_cache = (self.sender, address_of(&self.sender));
        self.signature = key.sign(&self.signing_hash()).to_bytes();
    }

    /// Checks the signature (Ed25519, strict: canonical encodings, no weak keys).
    pub fn verify_signature(&self) -> Result<()> {
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&self.sender)
            .map_err(|e| VmError::Signature(e.to_string()))?;
        let sig = ed25519_dalek::Signature::from_bytes(&self.signature);
        vk.verify_strict(&self.signing_hash(), &sig)
            .map_err(|e| VmError::Signature(e.to_string()))
    }
}

/// Verifies many transactions' signatures; `result[i]` says whether `txs[i]` verified with
/// [`Transaction::verify_signature`]. Runs Ed25519 batch verification first (about twice as
/// fast on the CPU); when the batch fails, or contains a weak key, each signature is checked
/// on its own, so the answer is always the single-signature answer.
pub fn verify_batch(txs: &[Transaction]) -> Vec<bool> {
    if txs.is_empty() {
        return Vec::new();
    }
    let fast = (|| {
        let mut keys = Vec::with_capacity(txs.len());
        let mut sigs = Vec::with_capacity(txs.len());
        let mut hashes = Vec::with_capacity(txs.len());
        for tx in txs {
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&tx.sender).ok()?;
            if vk.is_weak() {
                return None;
            }
            keys.push(vk);
            sigs.push(ed25519_dalek::Signature::from_bytes(&tx.signature));
            hashes.push(tx.signing_hash());
        }
        let msgs: Vec<&[u8]> = hashes.iter().map(|h| h.as_slice()).collect();
        ed25519_dalek::verify_batch(&msgs, &sigs, &keys).ok()
    })();
    // The batch equation accepts a few encodings the strict check rejects (non-canonical or
    // small-order R), so even a passing batch is confirmed one by one only when it could
    // matter: never for honest signatures, whose R is canonical and of large order.
    if fast.is_some() && txs.iter().all(|tx| r_is_strict(&tx.signature)) {
        return vec![true; txs.len()];
    }
    txs.iter().map(|tx| tx.verify_signature().is_ok()).collect()
}

/// Whether the `R` half of a signature is a canonical encoding of a point that is not of
/// small order (what `verify_strict` requires beyond the equation).
fn r_is_strict(signature: &[u8; 64]) -> bool {
    let mut r = [0u8; 32];
    r.copy_from_slice(&signature[..32]);
    // A verifying key is a compressed Edwards point with the same rules: reuse its parser
    // and weak-key (small order) check. A non-canonical encoding does not survive
    // decompression and recompression.
    match ed25519_dalek::VerifyingKey::from_bytes(&r) {
        Ok(p) => !p.is_weak() && p.to_edwards().compress().to_bytes() == r,
        Err(_) => false,
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(VmError::Decode(format!(
                "truncated: needed {n} more bytes, have {}",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array::<8>()?))
    }
    fn bytes(&mut self) -> Result<Vec<u8>> {
        let len = u32::from_le_bytes(self.array::<4>()?) as usize;
        if len > MAX_TX_PAYLOAD {
            return Err(VmError::Decode(format!(
                "payload of {len} bytes exceeds {MAX_TX_PAYLOAD}"
            )));
        }
        Ok(self.take(len)?.to_vec())
    }
}
