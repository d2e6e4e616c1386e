//! Host side of the signature kernels on one device: packing a chunk of signatures into
//! flat buffers, one launch per chunk, unpacking the per-signature results. Scratch buffers
//! are kept between calls. Nothing here names CUDA or OpenCL.

use rayon::prelude::*;
use rayon::ThreadPool;

use super::kernels::{self, RECOVER_OUT_BYTES};
use super::{EcrecoverItem, Ed25519Item, RecoveredKey, Secp256k1Item};
use crate::device::{BackendKind, DeviceBuffer, GpuDevice, KernelArg, KernelSource, LaunchDims};
use crate::error::{GpuError, Result};

/// Most message bytes in one Ed25519 launch (offsets are 32-bit in the kernel).
const MAX_CHUNK_MESSAGE_BYTES: usize = 1 << 30;

/// Items per parallel packing task.
const PACK_GRAIN: usize = 4096;

/// Host staging buffers, kept between calls: refilling warm memory is several times cheaper
/// than first-touching a fresh allocation of a few hundred MiB.
#[derive(Default)]
struct Host {
    a: Vec<u8>,
    b: Vec<u8>,
    c: Vec<u8>,
    d: Vec<u8>,
    offsets: Vec<u32>,
    out: Vec<u8>,
}

/// Sets `v` to `len` bytes (contents to be overwritten), reusing its memory.
fn staging(v: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if v.len() != len {
        v.resize(len, 0);
    }
    v
}

/// Fills `dst` (`width` bytes per item) from `items` in parallel on `pool`.
fn pack<T: Sync>(
    pool: &ThreadPool,
    dst: &mut Vec<u8>,
    items: &[T],
    width: usize,
    f: impl Fn(&T, &mut [u8]) + Sync,
) {
    let dst = staging(dst, width * items.len());
    pool.install(|| {
        dst.par_chunks_mut(width * PACK_GRAIN)
            .zip(items.par_chunks(PACK_GRAIN))
            .for_each(|(d, src)| {
                for (slot, item) in d.chunks_exact_mut(width).zip(src) {
                    f(item, slot);
                }
            })
    });
}

#[derive(Default)]
struct Scratch {
    a: Option<DeviceBuffer>,
    b: Option<DeviceBuffer>,
    c: Option<DeviceBuffer>,
    d: Option<DeviceBuffer>,
    out: Option<DeviceBuffer>,
}

/// The messages of `items`, back to back, into `dst` (never empty: zero-byte device buffers
/// cannot be kernel arguments); `offsets` are their start offsets plus the total. Each group
/// of `PACK_GRAIN` items fills its own disjoint slice, in parallel on `pool`.
fn pack_messages(pool: &ThreadPool, dst: &mut Vec<u8>, offsets: &[u32], items: &[Ed25519Item<'_>]) {
    let total = offsets.last().map_or(0, |&t| t as usize);
    let msgs = staging(dst, total.max(1));
    let mut groups = Vec::with_capacity(items.len().div_ceil(PACK_GRAIN));
    let mut rest: &mut [u8] = msgs;
    for (g, chunk) in items.chunks(PACK_GRAIN).enumerate() {
        let start = offsets[g * PACK_GRAIN] as usize;
        let end = offsets[g * PACK_GRAIN + chunk.len()] as usize;
        let (mine, tail) = std::mem::take(&mut rest).split_at_mut(end - start);
        rest = tail;
        groups.push((mine, chunk));
    }
    pool.install(|| {
        groups.into_par_iter().for_each(|(dst, chunk)| {
            let mut at = 0;
            for it in chunk {
                dst[at..at + it.message.len()].copy_from_slice(it.message);
                at += it.message.len();
            }
        })
    });
}

/// The signature kernels on one device.
pub(crate) struct GpuSig {
    dev: GpuDevice,
    scratch: Scratch,
    host: Host,
    group_size: u32,
    ed25519: &'static KernelSource,
    secp256k1: &'static KernelSource,
}

fn buf(b: &Option<DeviceBuffer>) -> Result<&DeviceBuffer> {
    b.as_ref()
        .ok_or_else(|| GpuError::Launch("signature scratch buffer missing".into()))
}

fn buf_mut(b: &mut Option<DeviceBuffer>) -> Result<&mut DeviceBuffer> {
    b.as_mut()
        .ok_or_else(|| GpuError::Launch("signature scratch buffer missing".into()))
}

fn count_u32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| GpuError::InvalidInput(format!("chunk of {n} items too large")))
}

impl GpuSig {
    /// `ptx`: use the PTX field multiplication (only on CUDA; ignored elsewhere).
    pub(crate) fn new(dev: GpuDevice, group_size: u32, ptx: bool) -> Self {
        let group_size = group_size.clamp(1, dev.info().max_group_size.max(1));
        let ptx = ptx && dev.backend() == BackendKind::Cuda;
        Self {
            dev,
            scratch: Scratch::default(),
            host: Host::default(),
            group_size,
            ed25519: if ptx {
                &kernels::ED25519_PTX
            } else {
                &kernels::ED25519
            },
            secp256k1: if ptx {
                &kernels::SECP256K1_PTX
            } else {
                &kernels::SECP256K1
            },
        }
    }

    pub(crate) fn device(&self) -> &GpuDevice {
        &self.dev
    }

    /// Compiles both programs now.
    pub(crate) fn prepare(&self) -> Result<()> {
        self.dev.prepare(self.ed25519)?;
        self.dev.prepare(self.secp256k1)
    }

    fn dims(&self, n: usize) -> LaunchDims {
        LaunchDims::with_group(n as u64, self.group_size)
    }

    /// Splits `items` into chunks of at most `chunk_items` and `MAX_CHUNK_MESSAGE_BYTES`.
    pub(crate) fn ed25519_chunks(
        items: &[Ed25519Item<'_>],
        chunk_items: usize,
    ) -> Vec<(usize, usize)> {
        let chunk_items = chunk_items.max(1);
        let mut out = Vec::new();
        let mut start = 0;
        while start < items.len() {
            let mut end = start;
            let mut bytes = 0usize;
            while end < items.len() && end - start < chunk_items {
                let len = items[end].message.len();
                if end > start && bytes + len > MAX_CHUNK_MESSAGE_BYTES {
                    break;
                }
                bytes += len;
                end += 1;
            }
            out.push((start, end));
            start = end;
        }
        out
    }

    /// One launch over `items` (a chunk: the caller bounds its size); packing on `pool`.
    pub(crate) fn ed25519(
        &mut self,
        pool: &ThreadPool,
        items: &[Ed25519Item<'_>],
    ) -> Result<Vec<bool>> {
        let n = items.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let too_big = || GpuError::InvalidInput("chunk messages exceed 4 GiB".into());
        let h = &mut self.host;
        h.offsets.clear();
        let mut total = 0usize;
        for item in items {
            h.offsets.push(u32::try_from(total).map_err(|_| too_big())?);
            total += item.message.len();
        }
        h.offsets.push(u32::try_from(total).map_err(|_| too_big())?);
        pack(pool, &mut h.a, items, 32, |it, d| {
            d.copy_from_slice(&it.public_key)
        });
        pack(pool, &mut h.b, items, 64, |it, d| {
            d.copy_from_slice(&it.signature)
        });
        pack_messages(pool, &mut h.c, &h.offsets, items);
        let s = &mut self.scratch;
        self.dev.ensure_capacity(&mut s.a, h.a.len())?;
        self.dev.ensure_capacity(&mut s.b, h.b.len())?;
        self.dev.ensure_capacity(&mut s.c, h.c.len())?;
        self.dev.ensure_capacity(&mut s.d, h.offsets.len() * 4)?;
        self.dev.ensure_capacity(&mut s.out, n)?;
        let q = self.dev.queue(0);
        q.upload(buf_mut(&mut s.a)?, 0, &h.a)?;
        q.upload(buf_mut(&mut s.b)?, 0, &h.b)?;
        q.upload(buf_mut(&mut s.c)?, 0, &h.c)?;
        q.upload(buf_mut(&mut s.d)?, 0, &h.offsets)?;
        q.launch_dims(
            self.ed25519,
            kernels::ED25519_VERIFY,
            LaunchDims::with_group(n as u64, self.group_size),
            &[
                KernelArg::Buffer(buf(&s.a)?),
                KernelArg::Buffer(buf(&s.b)?),
                KernelArg::Buffer(buf(&s.c)?),
                KernelArg::Buffer(buf(&s.d)?),
                KernelArg::Buffer(buf(&s.out)?),
                KernelArg::U32(count_u32(n)?),
            ],
        )?;
        let out = staging(&mut h.out, n);
        q.download(buf(&s.out)?, 0, out)?;
        decode_flags(out)
    }

    pub(crate) fn secp256k1(
        &mut self,
        pool: &ThreadPool,
        items: &[Secp256k1Item],
        require_low_s: bool,
    ) -> Result<Vec<bool>> {
        let n = items.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let dims = self.dims(n);
        let h = &mut self.host;
        pack(pool, &mut h.a, items, 65, |it, d| {
            let key = it.public_key.as_bytes();
            d[..key.len()].copy_from_slice(key);
            d[key.len()..].fill(0);
        });
        pack(pool, &mut h.b, items, 1, |it, d| {
            d[0] = it.public_key.as_bytes().len() as u8;
        });
        pack(pool, &mut h.c, items, 32, |it, d| {
            d.copy_from_slice(&it.hash)
        });
        pack(pool, &mut h.d, items, 64, |it, d| {
            d.copy_from_slice(&it.signature)
        });
        let s = &mut self.scratch;
        self.dev.ensure_capacity(&mut s.a, h.a.len())?;
        self.dev.ensure_capacity(&mut s.b, h.b.len())?;
        self.dev.ensure_capacity(&mut s.c, h.c.len())?;
        self.dev.ensure_capacity(&mut s.d, h.d.len())?;
        self.dev.ensure_capacity(&mut s.out, n)?;
        let q = self.dev.queue(0);
        q.upload(buf_mut(&mut s.a)?, 0, &h.a)?;
        q.upload(buf_mut(&mut s.b)?, 0, &h.b)?;
        q.upload(buf_mut(&mut s.c)?, 0, &h.c)?;
        q.upload(buf_mut(&mut s.d)?, 0, &h.d)?;
        q.launch_dims(
            self.secp256k1,
            kernels::SECP256K1_VERIFY,
            dims,
            &[
                KernelArg::Buffer(buf(&s.a)?),
                KernelArg::Buffer(buf(&s.b)?),
                KernelArg::Buffer(buf(&s.c)?),
                KernelArg::Buffer(buf(&s.d)?),
                KernelArg::Buffer(buf(&s.out)?),
                KernelArg::U32(count_u32(n)?),
                KernelArg::U32(u32::from(require_low_s)),
            ],
        )?;
        let out = staging(&mut h.out, n);
        q.download(buf(&s.out)?, 0, out)?;
        decode_flags(out)
    }

    pub(crate) fn ecrecover(
        &mut self,
        pool: &ThreadPool,
        items: &[EcrecoverItem],
        require_low_s: bool,
    ) -> Result<Vec<Option<RecoveredKey>>> {
        let n = items.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let dims = self.dims(n);
        let h = &mut self.host;
        pack(pool, &mut h.a, items, 32, |it, d| {
            d.copy_from_slice(&it.hash)
        });
        pack(pool, &mut h.b, items, 65, |it, d| {
            d.copy_from_slice(&it.signature)
        });
        let s = &mut self.scratch;
        self.dev.ensure_capacity(&mut s.a, h.a.len())?;
        self.dev.ensure_capacity(&mut s.b, h.b.len())?;
        self.dev
            .ensure_capacity(&mut s.out, RECOVER_OUT_BYTES * n)?;
        let q = self.dev.queue(0);
        q.upload(buf_mut(&mut s.a)?, 0, &h.a)?;
        q.upload(buf_mut(&mut s.b)?, 0, &h.b)?;
        q.launch_dims(
            self.secp256k1,
            kernels::SECP256K1_RECOVER,
            dims,
            &[
                KernelArg::Buffer(buf(&s.a)?),
                KernelArg::Buffer(buf(&s.b)?),
                KernelArg::Buffer(buf(&s.out)?),
                KernelArg::U32(count_u32(n)?),
                KernelArg::U32(u32::from(require_low_s)),
            ],
        )?;
        let out = staging(&mut h.out, RECOVER_OUT_BYTES * n);
        q.download(buf(&s.out)?, 0, out)?;
        out.chunks_exact(RECOVER_OUT_BYTES)
            .map(|rec| match rec[0] {
                0 => Ok(None),
                1 => {
                    let mut public_key = [0u8; 64];
                    public_key.copy_from_slice(&rec[1..65]);
                    let mut address = [0u8; 20];
                    address.copy_from_slice(&rec[65..85]);
                    Ok(Some(RecoveredKey {
                        public_key,
                        address,
                    }))
                }
                other => Err(GpuError::Launch(format!(
                    "recovery kernel returned flag {other}"
                ))),
            })
            .collect()
    }
}

/// 0/1 bytes -> bools; anything else means the kernel misbehaved.
fn decode_flags(out: &[u8]) -> Result<Vec<bool>> {
    out.iter()
        .map(|&b| match b {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(GpuError::Launch(format!(
                "verification kernel returned flag {other}"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_packing_matches_sequential() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool");
        let msgs: Vec<Vec<u8>> = (0..3 * PACK_GRAIN + 17)
            .map(|i| (0..(i * 7) % 300).map(|j| (i + j) as u8).collect())
            .collect();
        let items: Vec<Ed25519Item<'_>> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| Ed25519Item {
                public_key: [i as u8; 32],
                message: m,
                signature: [(i >> 8) as u8; 64],
            })
            .collect();
        let mut offsets = Vec::new();
        let mut total = 0u32;
        for m in &msgs {
            offsets.push(total);
            total += m.len() as u32;
        }
        offsets.push(total);
        let mut dst = vec![0xaa; 5]; // stale contents are overwritten
        pack_messages(&pool, &mut dst, &offsets, &items);
        assert_eq!(dst, msgs.concat());
        let mut keys = Vec::new();
        pack(&pool, &mut keys, &items, 32, |it, d| {
            d.copy_from_slice(&it.public_key)
        });
        let want: Vec<u8> = items.iter().flat_map(|i| i.public_key).collect();
        assert_eq!(keys, want);
        // empty messages only: one placeholder byte
        let empty: Vec<Ed25519Item<'_>> = items[..3]
            .iter()
            .map(|i| Ed25519Item { message: &[], ..*i })
            .collect();
        pack_messages(&pool, &mut dst, &[0, 0, 0, 0], &empty);
        assert_eq!(dst.len(), 1);
    }
}
