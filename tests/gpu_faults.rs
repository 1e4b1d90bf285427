//! GPU faults surface as `gconv::Error`, never as a panic or an abort: buffers beyond the
//! adapter's limits, running out of (lavapipe's host) memory, errors that escaped every error
//! scope, and a lost device. Each test opens its own context (one of them destroys its device)
//! and holds the serial lock (one of them caps the process's address space for a moment).
//!
//! Lavapipe allocates device memory with the host's allocator and the kernel overcommits: 400
//! untouched 128 MiB buffers (50 GiB, the allocator report agreeing) were accepted on a 23 GiB
//! machine without an error. So the out-of-memory test caps the address space
//! (`RLIMIT_AS` = current size + 1 GiB) while it allocates, which makes lavapipe's allocation
//! fail within a few buffers, quickly and without touching the machine's memory.

mod common;

use gconv::gpu::GpuContext;
use gconv::zoo::{Arch, ModelSpec, StemKind};
use gconv::{Error, LoadOptions, Model, Runtime, Tensor};
use std::sync::Arc;

fn context() -> Option<Arc<GpuContext>> {
    // Through common::gpu() for its adapter checks (GCONV_REQUIRE_GPU, XDG_RUNTIME_DIR).
    common::gpu()?;
    Some(Arc::new(GpuContext::new().expect("second context")))
}

/// ResNet-50-DSC at width 1/8, one block per stage, small stem, 1×28×28 (as in the README).
fn small_model(rt: &Runtime) -> gconv::Result<Model> {
    let mut spec = ModelSpec::load("resnet50-dsc").unwrap();
    spec.input = [1, 28, 28];
    spec.width = 0.125;
    spec.num_classes = 10;
    if let Arch::Resnet { layers, stem, .. } = &mut spec.arch {
        *layers = [1, 1, 1, 1];
        *stem = StemKind::Small;
    }
    rt.load(&spec, None, &LoadOptions::default())
}

fn input(batch: usize) -> Tensor {
    Tensor::from_fn(&[batch, 1, 28, 28], |i| {
        ((i * 37 % 101) as f32 - 50.0) / 50.0
    })
}

fn is_gpu_error(r: &gconv::Result<impl std::fmt::Debug>, needle: &str) -> bool {
    matches!(r, Err(Error::Gpu(m)) if m.contains(needle))
}

#[test]
fn buffers_beyond_the_adapter_limits_are_errors_and_the_context_stays_usable() {
    let _guard = common::serial();
    let Some(ctx) = context() else { return };
    let l = ctx.limits.clone();
    let too_big = ctx.storage_buffer("huge", l.max_buffer_size + 4);
    assert!(
        matches!(&too_big, Err(Error::AdapterLimit { limit_name: "max_buffer_size", layer, .. }) if layer == "huge"),
        "{too_big:?}"
    );
    if l.max_storage_buffer_binding_size < l.max_buffer_size {
        let r = ctx.storage_buffer("wide", l.max_storage_buffer_binding_size + 4);
        assert!(
            matches!(
                &r,
                Err(Error::AdapterLimit {
                    limit_name: "max_storage_buffer_binding_size",
                    ..
                })
            ),
            "{r:?}"
        );
    }
    // Straight to wgpu, outside every scope: logged, then reported once by check().
    let _raw = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("raw"),
        size: 1 << 40,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let escaped = ctx.check();
    assert!(is_gpu_error(&escaped, "maximum buffer size"), "{escaped:?}");
    assert!(ctx.check().is_ok(), "an escaped error is reported once");
    // Still usable.
    let b = ctx.upload("after", &[1.0, 2.0, 3.0]).unwrap();
    assert_eq!(ctx.read_f32(&b, 0, 3).unwrap(), [1.0, 2.0, 3.0]);
    let r = ctx.read_f32(&b, 2, 2);
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    assert!(ctx.read_f32(&b, u64::MAX / 2, 2).is_err());
}

#[cfg(all(target_os = "linux", feature = "app"))]
#[test]
fn running_out_of_memory_is_an_error_and_the_context_recovers() {
    let _guard = common::serial();
    let Some(ctx) = context() else { return };
    let rt = Runtime::with_context(ctx.clone());
    // Pipelines compiled and buffers planned before the cap (LLVM must not run out).
    let mut model = small_model(&rt).unwrap();
    let x = input(2);
    let before = model.run(&x).unwrap();
    let host = vec![0.5f32; 24 << 20]; // 96 MiB to upload under the cap

    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
    let cap = pages * 4096 + (1 << 30);
    let set = |bytes: u64| {
        let lim = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit reads one plain struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
    };
    set(cap);
    let mut held = Vec::new();
    let mut failed = None;
    for i in 0..64 {
        match ctx.storage_buffer(&format!("fill {i}"), 128 << 20) {
            Ok(b) => held.push(b),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let upload = ctx.upload("host data", &host);
    set(libc::RLIM_INFINITY);

    let e = failed.expect("a 1 GiB address-space cap never refused a 128 MiB buffer");
    assert!(
        matches!(&e, Error::Gpu(m) if m.contains("fill") && m.contains("Out of Memory")),
        "{e:?}"
    );
    assert!(
        held.len() < 9,
        "{} buffers of 128 MiB under a 1 GiB cap",
        held.len()
    );
    assert!(is_gpu_error(&upload, "Out of Memory"), "{:?}", upload.err());
    drop(held);
    // The context and the model work again, with the same answer.
    assert_eq!(model.run(&x).unwrap().data(), before.data());
    let b = ctx.upload("after", &host[..4]).unwrap();
    assert_eq!(ctx.read_f32(&b, 0, 4).unwrap(), [0.5; 4]);
    assert!(ctx.check().is_ok());
}

#[test]
fn a_lost_device_makes_every_later_call_an_error() {
    let _guard = common::serial();
    let Some(ctx) = context() else { return };
    let rt = Runtime::with_context(ctx.clone());
    let mut model = small_model(&rt).unwrap();
    let x = input(1);
    model.run(&x).unwrap();
    let kept = ctx.upload("kept", &[1.0; 4]).unwrap();
    assert!(ctx.lost().is_none());

    ctx.device.destroy();
    let why = ctx.lost().expect("destroy() loses the device");
    assert!(why.starts_with("Destroyed"), "{why}");
    for r in [
        ctx.storage_buffer("b", 16).map(drop),
        ctx.upload("u", &[1.0]).map(drop),
        ctx.read_f32(&kept, 0, 4).map(drop),
        ctx.check(),
        model.run(&x).map(drop),
        model.run(&input(3)).map(drop),
        small_model(&rt).map(drop),
    ] {
        assert!(is_gpu_error(&r, "lost"), "{r:?}");
    }
}
