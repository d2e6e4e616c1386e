//! The backend layer on every device present: discovery, self-test of `kernels/common.h`,
//! build errors, allocation faults. Devices that are absent are reported on stderr.
use gpu_executor::device::{self, open_device, BackendKind, KernelArg, KernelSource};
/// Says on the real stderr (not captured by the test harness) that something was skipped.
macro_rules! skip {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

use gpu_executor::GpuError;

fn devices_or_skip(kind: BackendKind) -> Vec<gpu_executor::GpuDevice> {
    if let Some(why) = device::backend_status(kind) {
        skip!("SKIP {kind}: {why}");
        return Vec::new();
    }
    let infos: Vec<_> = device::list_devices()
        .into_iter()
        .filter(|d| d.backend == kind)
        .collect();
    infos
        .iter()
        .map(|d| open_device(kind, d.index, 2).expect("open listed device"))
        .collect()
}

fn all_devices() -> Vec<gpu_executor::GpuDevice> {
    let mut v = devices_or_skip(BackendKind::Cuda);
    v.extend(devices_or_skip(BackendKind::Opencl));
    v
}

#[test]
fn discovery_reports_real_properties() {
    for d in device::list_devices() {
        eprintln!("found {d}");
        assert!(!d.name.is_empty());
        assert!(d.total_memory > 0);
        assert!(d.compute_units > 0);
        assert!(d.max_group_size >= 1);
    }
}

#[test]
fn common_header_self_test() {
    for d in all_devices() {
        device::self_test(&d).unwrap_or_else(|e| panic!("{}: {e}", d.info()));
    }
}

#[test]
fn broken_kernel_reports_compiler_log() {
    const BROKEN: KernelSource = KernelSource::new(
        "broken",
        "KERNEL void broken(GLOBAL u32* x { x[0] = undefined_thing; }",
    );
    for d in all_devices() {
        match d.prepare(&BROKEN) {
            Err(GpuError::Build {
                log, source_name, ..
            }) => {
                assert_eq!(source_name, "broken");
                assert!(!log.trim().is_empty(), "empty build log on {}", d.info());
            }
            other => panic!("expected a build error on {}, got {other:?}", d.info()),
        }
        // Cached: the second attempt reports the same error without a panic.
        assert!(matches!(d.prepare(&BROKEN), Err(GpuError::Build { .. })));
        // The device stays usable.
        device::self_test(&d).unwrap();
    }
}

#[test]
fn unknown_kernel_name_is_an_error() {
    for d in all_devices() {
        let buf = d.alloc(16).unwrap();
        let r = d.queue(0).launch(
            &device::SELFTEST_SOURCE,
            "no_such_kernel",
            1,
            &[KernelArg::Buffer(&buf)],
        );
        assert!(matches!(r, Err(GpuError::Launch(_))), "{r:?}");
    }
}

#[test]
fn impossible_allocation_is_out_of_memory() {
    for d in all_devices() {
        let r = d.alloc(1usize << 52);
        assert!(matches!(r, Err(GpuError::OutOfMemory { .. })), "{r:?}");
    }
}

#[test]
fn upload_copy_download_roundtrip_and_range_checks() {
    for d in all_devices() {
        let data: Vec<u32> = (0..1000).collect();
        let mut a = d.alloc(4000).unwrap();
        let mut b = d.alloc(8000).unwrap();
        let q = d.queue(1);
        q.upload(&mut a, 0, &data).unwrap();
        q.copy(&a, 400, &mut b, 4000, 3600).unwrap();
        let mut out = vec![0u32; 900];
        q.download(&b, 4000, &mut out).unwrap();
        assert_eq!(out, data[100..]);
        assert!(matches!(
            q.upload(&mut a, 1, &data),
            Err(GpuError::InvalidInput(_))
        ));
        let other = d.alloc(4).unwrap();
        let mut out = [0u8; 8];
        assert!(q.download(&other, 0, &mut out).is_err());
    }
}

#[test]
fn cuda_missing_library_is_unavailable_not_a_panic() {
    // Here (no NVIDIA driver) this exercises the missing-library path; on the GPU machine it
    // opens the device.
    match open_device(BackendKind::Cuda, 0, 1) {
        Ok(d) => eprintln!("CUDA present: {}", d.info()),
        Err(e) => {
            eprintln!("CUDA unavailable as expected here: {e}");
            assert!(matches!(e, GpuError::Unavailable(_)), "{e:?}");
        }
    }
    assert!(open_device(BackendKind::Opencl, 10_000, 1).is_err());
}
