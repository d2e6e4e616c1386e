//! Blocks and the block file format (`docs/BLOCK_FORMAT.md`).
//!
//! A block is a header and a list of encoded transactions; the transactions are decoded by
//! the pipeline's first stage ([`crate::tx::NodeTx::decode`]). A block file is a magic, a
//! genesis frame and block frames, each frame length-prefixed and checksummed so a torn or
//! corrupt file is detected, never half-applied.

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use crate::error::{NodeError, Result};

/// File magic: `SVMBLK` + format version `01`.
pub const FILE_MAGIC: &[u8; 8] = b"SVMBLK01";
/// Version byte of block and genesis bodies.
pub const BODY_VERSION: u8 = 1;
/// Largest frame accepted (256 MiB).
pub const MAX_FRAME: usize = 256 << 20;
/// Largest encoded transaction accepted (4 MiB).
pub const MAX_TX: usize = 4 << 20;

const FRAME_GENESIS: u8 = b'G';
const FRAME_BLOCK: u8 = b'B';

/// A block header. The block hash is `SHA-256` of its encoding ([`BlockHeader::hash`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    pub chain_id: u64,
    pub height: u64,
    /// Seconds since the Unix epoch (given to contracts; not checked against a clock).
    pub timestamp: u64,
    /// Hash of the previous block's header (the genesis hash for height 1).
    pub parent_hash: [u8; 32],
    /// Merkle root (`docs/MERKLE.md`, SHA-256) over the transaction ids, `SHA-256(tx bytes)`.
    pub tx_root: [u8; 32],
}

impl BlockHeader {
    pub const ENCODED_LEN: usize = 1 + 8 + 8 + 8 + 32 + 32;

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::ENCODED_LEN);
        v.push(BODY_VERSION);
        v.extend_from_slice(&self.chain_id.to_le_bytes());
        v.extend_from_slice(&self.height.to_le_bytes());
        v.extend_from_slice(&self.timestamp.to_le_bytes());
        v.extend_from_slice(&self.parent_hash);
        v.extend_from_slice(&self.tx_root);
        v
    }

    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }
}

/// A block: header and encoded transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: Vec<Vec<u8>>,
}

/// The genesis state: the chain id and every initial `(key, value)` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Genesis {
    pub chain_id: u64,
    pub timestamp: u64,
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Genesis {
    /// The genesis hash: `SHA-256` of the genesis body.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        v.push(BODY_VERSION);
        v.extend_from_slice(&self.chain_id.to_le_bytes());
        v.extend_from_slice(&self.timestamp.to_le_bytes());
        v.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (k, val) in &self.entries {
            v.extend_from_slice(&(k.len() as u32).to_le_bytes());
            v.extend_from_slice(k);
            v.extend_from_slice(&(val.len() as u32).to_le_bytes());
            v.extend_from_slice(val);
        }
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "genesis");
        r.version()?;
        let chain_id = r.u64()?;
        let timestamp = r.u64()?;
        let n = r.u32()? as usize;
        let mut entries = Vec::with_capacity(n.min(1 << 20));
        for i in 0..n {
            let k = r.bytes(MAX_TX, &format!("genesis entry {i} key"))?.to_vec();
            let v = r
                .bytes(MAX_FRAME, &format!("genesis entry {i} value"))?
                .to_vec();
            entries.push((k, v));
        }
        r.finish()?;
        Ok(Self {
            chain_id,
            timestamp,
            entries,
        })
    }
}

impl Block {
    /// Encodes the block body (header then `u32` count and `u32`-prefixed transactions).
    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self.txs.iter().map(|t| t.len() + 4).sum();
        let mut v = Vec::with_capacity(BlockHeader::ENCODED_LEN + 4 + size);
        v.extend_from_slice(&self.header.encode());
        v.extend_from_slice(&(self.txs.len() as u32).to_le_bytes());
        for t in &self.txs {
            v.extend_from_slice(&(t.len() as u32).to_le_bytes());
            v.extend_from_slice(t);
        }
        v
    }

    /// Decodes a block body; every length is checked.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "block");
        r.version()?;
        let chain_id = r.u64()?;
        let height = r.u64()?;
        let timestamp = r.u64()?;
        let parent_hash = r.hash32()?;
        let tx_root = r.hash32()?;
        let n = r.u32()? as usize;
        let mut txs = Vec::with_capacity(n.min(1 << 20));
        for i in 0..n {
            txs.push(r.bytes(MAX_TX, &format!("transaction {i}"))?.to_vec());
        }
        r.finish()?;
        Ok(Self {
            header: BlockHeader {
                chain_id,
                height,
                timestamp,
                parent_hash,
                tx_root,
            },
            txs,
        })
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8], what: &'static str) -> Self {
        Self { b, pos: 0, what }
    }
    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8]> {
        if self.b.len() - self.pos < n {
            return Err(NodeError::Malformed(format!(
                "{}: truncated at byte {} reading {field} ({n} bytes wanted, {} left)",
                self.what,
                self.pos,
                self.b.len() - self.pos
            )));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn version(&mut self) -> Result<()> {
        let v = self.take(1, "version")?[0];
        if v != BODY_VERSION {
            return Err(NodeError::Malformed(format!(
                "{}: unknown version {v} (expected {BODY_VERSION})",
                self.what
            )));
        }
        Ok(())
    }
    fn u32(&mut self) -> Result<u32> {
        let s = self.take(4, "u32")?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let s = self.take(8, "u64")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn hash32(&mut self) -> Result<[u8; 32]> {
        let s = self.take(32, "hash")?;
        let mut a = [0u8; 32];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn bytes(&mut self, max: usize, field: &str) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(NodeError::Malformed(format!(
                "{}: {field} is {n} bytes, more than {max}",
                self.what
            )));
        }
        self.take(n, field)
    }
    fn finish(&self) -> Result<()> {
        if self.pos != self.b.len() {
            return Err(NodeError::Malformed(format!(
                "{}: {} trailing bytes",
                self.what,
                self.b.len() - self.pos
            )));
        }
        Ok(())
    }
}

fn checksum(kind: u8, body: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update([kind]);
    h.update(body);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Writes a block file: magic, genesis frame, then block frames.
pub struct BlockFileWriter<W: Write> {
    w: W,
}

impl<W: Write> BlockFileWriter<W> {
    pub fn new(mut w: W, genesis: &Genesis) -> std::io::Result<Self> {
        w.write_all(FILE_MAGIC)?;
        let mut s = Self { w };
        s.frame(FRAME_GENESIS, &genesis.encode())?;
        Ok(s)
    }
    fn frame(&mut self, kind: u8, body: &[u8]) -> std::io::Result<()> {
        self.w.write_all(&[kind])?;
        self.w.write_all(&(body.len() as u32).to_le_bytes())?;
        self.w.write_all(&checksum(kind, body))?;
        self.w.write_all(body)
    }
    pub fn write_block(&mut self, block: &Block) -> std::io::Result<()> {
        self.frame(FRAME_BLOCK, &block.encode())
    }
    pub fn finish(mut self) -> std::io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Reads a block file frame by frame.
pub struct BlockFileReader<R: Read> {
    r: R,
    index: u64,
}

impl<R: Read> BlockFileReader<R> {
    /// Checks the magic and reads the genesis frame.
    pub fn open(mut r: R) -> Result<(Self, Genesis)> {
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)
            .map_err(|e| NodeError::Malformed(format!("block file: cannot read magic: {e}")))?;
        if &magic != FILE_MAGIC {
            return Err(NodeError::Malformed(format!(
                "block file: bad magic {:?} (expected {:?})",
                String::from_utf8_lossy(&magic),
                String::from_utf8_lossy(FILE_MAGIC)
            )));
        }
        let mut s = Self { r, index: 0 };
        match s.frame()? {
            Some((FRAME_GENESIS, body)) => Ok((s, Genesis::decode(&body)?)),
            Some((k, _)) => Err(NodeError::Malformed(format!(
                "block file: first frame is {:?}, expected the genesis frame",
                k as char
            ))),
            None => Err(NodeError::Malformed("block file: no genesis frame".into())),
        }
    }

    fn frame(&mut self) -> Result<Option<(u8, Vec<u8>)>> {
        let mut head = [0u8; 9];
        let mut got = 0;
        while got < head.len() {
            match self.r.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(NodeError::Malformed(format!(
                        "block file frame {}: {e}",
                        self.index
                    )))
                }
            }
        }
        if got == 0 {
            return Ok(None);
        }
        if got < head.len() {
            return Err(NodeError::Malformed(format!(
                "block file frame {}: truncated frame header",
                self.index
            )));
        }
        let kind = head[0];
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_FRAME {
            return Err(NodeError::Malformed(format!(
                "block file frame {}: length {len} exceeds {MAX_FRAME}",
                self.index
            )));
        }
        let mut body = vec![0u8; len];
        self.r.read_exact(&mut body).map_err(|e| {
            NodeError::Malformed(format!(
                "block file frame {}: truncated body ({len} bytes): {e}",
                self.index
            ))
        })?;
        if checksum(kind, &body) != head[5..9] {
            return Err(NodeError::Malformed(format!(
                "block file frame {}: checksum mismatch",
                self.index
            )));
        }
        self.index += 1;
        Ok(Some((kind, body)))
    }

    /// The next block, `None` at the end of the file.
    pub fn next_block(&mut self) -> Result<Option<Block>> {
        match self.frame()? {
            None => Ok(None),
            Some((FRAME_BLOCK, body)) => Block::decode(&body).map(Some),
            Some((k, _)) => Err(NodeError::Malformed(format!(
                "block file frame {}: unexpected frame kind {:?}",
                self.index, k as char
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Genesis, Vec<Block>) {
        let g = Genesis {
            chain_id: 5,
            timestamp: 1,
            entries: vec![(b"bkey".to_vec(), vec![1, 2, 3])],
        };
        let blocks = (1..4)
            .map(|h| Block {
                header: BlockHeader {
                    chain_id: 5,
                    height: h,
                    timestamp: 100 + h,
                    parent_hash: [h as u8; 32],
                    tx_root: [7; 32],
                },
                txs: vec![vec![1, 2], vec![], vec![9; 100]],
            })
            .collect();
        (g, blocks)
    }

    #[test]
    fn file_round_trip() {
        let (g, blocks) = sample();
        let mut w = BlockFileWriter::new(Vec::new(), &g).unwrap();
        for b in &blocks {
            w.write_block(b).unwrap();
        }
        let bytes = w.finish().unwrap();
        let (mut r, g2) = BlockFileReader::open(&bytes[..]).unwrap();
        assert_eq!(g2, g);
        let mut got = Vec::new();
        while let Some(b) = r.next_block().unwrap() {
            got.push(b);
        }
        assert_eq!(got, blocks);
    }

    #[test]
    fn corruption_and_truncation_are_errors() {
        let (g, blocks) = sample();
        let mut w = BlockFileWriter::new(Vec::new(), &g).unwrap();
        w.write_block(&blocks[0]).unwrap();
        let bytes = w.finish().unwrap();
        for cut in [bytes.len() - 1, bytes.len() - 50] {
            let (mut r, _) = BlockFileReader::open(&bytes[..cut]).unwrap();
            assert!(r.next_block().is_err());
        }
        let mut bad = bytes.clone();
        let last = bad.len() - 3;
        bad[last] ^= 1;
        let (mut r, _) = BlockFileReader::open(&bad[..]).unwrap();
        let e = r.next_block().unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        assert!(BlockFileReader::open(&b"NOTABLOCKFILE"[..]).is_err());
        assert!(Block::decode(&[1, 2, 3]).is_err());
    }
}
