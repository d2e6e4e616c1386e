//! Host side of the signature kernels on one device: packing a chunk of signatures into
//! flat buffers, one launch per chunk, unpacking the per-signature results. Scratch buffers
//! are kept between calls. Nothing here names CUDA or OpenCL.

use super::kernels::{self, RECOVER_OUT_BYTES};
use super::{EcrecoverItem, Ed25519Item, RecoveredKey, Secp256k1Item};
use crate::device::{BackendKind, DeviceBuffer, GpuDevice, KernelArg, KernelSource, LaunchDims};
use crate::error::{GpuError, Result};

/// Most message bytes in one Ed25519 launch (offsets are 32-bit in the kernel).
const MAX_CHUNK_MESSAGE_BYTES: usize = 1 << 30;

#[derive(Default)]
struct Scratch {
    a: Option<DeviceBuffer>,
    b: Option<DeviceBuffer>,
    c: Option<DeviceBuffer>,
    d: Option<DeviceBuffer>,
    out: Option<DeviceBuffer>,
}

/// The signature kernels on one device.
pub(crate) struct GpuSig {
    dev: GpuDevice,
    scratch: Scratch,
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

    /// One launch over `items` (a chunk: the caller bounds its size).
    pub(crate) fn ed25519(&mut self, items: &[Ed25519Item<'_>]) -> Result<Vec<bool>> {
        let n = items.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let total: usize = items.iter().map(|i| i.message.len()).sum();
        if total > u32::MAX as usize {
            return Err(GpuError::InvalidInput("chunk messages exceed 4 GiB".into()));
        }
        let mut keys = Vec::with_capacity(32 * n);
        let mut sigs = Vec::with_capacity(64 * n);
        let mut msgs = Vec::with_capacity(total.max(1));
        let mut offsets = Vec::with_capacity(n + 1);
        for item in items {
            keys.extend_from_slice(&item.public_key);
            sigs.extend_from_slice(&item.signature);
            offsets.push(msgs.len() as u32);
            msgs.extend_from_slice(item.message);
        }
        offsets.push(msgs.len() as u32);
        if msgs.is_empty() {
            msgs.push(0); // never read; keeps the buffer non-empty
        }
        let s = &mut self.scratch;
        self.dev.ensure_capacity(&mut s.a, keys.len())?;
        self.dev.ensure_capacity(&mut s.b, sigs.len())?;
        self.dev.ensure_capacity(&mut s.c, msgs.len())?;
        self.dev.ensure_capacity(&mut s.d, offsets.len() * 4)?;
        self.dev.ensure_capacity(&mut s.out, n)?;
        let q = self.dev.queue(0);
        q.upload(buf_mut(&mut s.a)?, 0, &keys)?;
        q.upload(buf_mut(&mut s.b)?, 0, &sigs)?;
        q.upload(buf_mut(&mut s.c)?, 0, &msgs)?;
        q.upload(buf_mut(&mut s.d)?, 0, &offsets)?;
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
        let mut out = vec![0u8; n];
        q.download(buf(&s.out)?, 0, &mut out)?;
        decode_flags(&out)
    }

    pub(crate) fn secp256k1(
        &mut self,
        items: &[Secp256k1Item],
        require_low_s: bool,
    ) -> Result<Vec<bool>> {
        let n = items.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut keys = vec![0u8; 65 * n];
        let mut key_lens = Vec::with_capacity(n);
        let mut hashes = Vec::with_capacity(32 * n);
        let mut sigs = Vec::with_capacity(64 * n);
        for (i, item) in items.iter().enumerate() {
            let key = item.public_key.as_bytes();
            keys[65 * i..65 * i + key.len()].copy_from_slice(key);
            key_lens.push(key.len() as u8);
            hashes.extend_from_slice(&item.hash);
            sigs.extend_from_slice(&item.signature);
        }
        let dims = self.dims(n);
        let s = &mut self.scratch;
        self.dev.ensure_capacity(&mut s.a, keys.len())?;
        self.dev.ensure_capacity(&mut s.b, key_lens.len())?;
        self.dev.ensure_capacity(&mut s.c, hashes.len())?;
        self.dev.ensure_capacity(&mut s.d, sigs.len())?;
        self.dev.ensure_capacity(&mut s.out, n)?;
        let q = self.dev.queue(0);
        q.upload(buf_mut(&mut s.a)?, 0, &keys)?;
        q.upload(buf_mut(&mut s.b)?, 0, &key_lens)?;
        q.upload(buf_mut(&mut s.c)?, 0, &hashes)?;
        q.upload(buf_mut(&mut s.d)?, 0, &sigs)?;
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
        let mut out = vec![0u8; n];
        q.download(buf(&s.out)?, 0, &mut out)?;
        decode_flags(&out)
    }

    pub(crate) fn ecrecover(
        &mut self,
        items: &[EcrecoverItem],
        require_low_s: bool,
    ) -> Result<Vec<Option<RecoveredKey>>> {
        let n = items.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut hashes = Vec::with_capacity(32 * n);
        let mut sigs = Vec::with_capacity(65 * n);
        for item in items {
            hashes.extend_from_slice(&item.hash);
            sigs.extend_from_slice(&item.signature);
        }
        let dims = self.dims(n);
        let s = &mut self.scratch;
        self.dev.ensure_capacity(&mut s.a, hashes.len())?;
        self.dev.ensure_capacity(&mut s.b, sigs.len())?;
        self.dev.ensure_capacity(&mut s.out, RECOVER_OUT_BYTES * n)?;
        let q = self.dev.queue(0);
        q.upload(buf_mut(&mut s.a)?, 0, &hashes)?;
        q.upload(buf_mut(&mut s.b)?, 0, &sigs)?;
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
        let mut out = vec![0u8; RECOVER_OUT_BYTES * n];
        q.download(buf(&s.out)?, 0, &mut out)?;
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
