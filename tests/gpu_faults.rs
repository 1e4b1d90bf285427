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
use gconv::{Error, LoadOptions, Model, Runtime, Tensor, Weights};
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
fn a_lost_device_fails_its_context_and_the_models_recreate_it() {
    let _guard = common::serial();
    let Some(ctx) = context() else { return };
    let rt = Runtime::with_context(ctx.clone());
    let mut model = small_model(&rt).unwrap();
    let mut other = small_model(&rt).unwrap();
    let (x, x3) = (input(1), input(3));
    let want = model.run(&x).unwrap();
    let want3 = other.run(&x3).unwrap();
    let kept = ctx.upload("kept", &[1.0; 4]).unwrap();
    assert!(ctx.lost().is_none());
    assert!(!rt.recover().unwrap(), "nothing to recover");

    ctx.device.destroy();
    let why = ctx.lost().expect("destroy() loses the device");
    assert!(why.starts_with("Destroyed"), "{why}");
    // The lost context itself: every call is an error saying so.
    for r in [
        ctx.storage_buffer("b", 16).map(drop),
        ctx.upload("u", &[1.0]).map(drop),
        ctx.read_f32(&kept, 0, 4).map(drop),
        ctx.check(),
    ] {
        assert!(
            matches!(&r, Err(Error::DeviceLost(m)) if m.contains("lost")),
            "{r:?}"
        );
    }
    // So is a run straight on the executor (what a loss during a run looks like).
    let r = model.gpu_model().unwrap().run(&x).map(drop);
    assert!(r.is_err(), "{r:?}");
    // The models' next run recreates the device, once for the runtime, and gives the same
    // outputs; the runtime's context is the new one, and loading works again.
    assert_eq!(model.run(&x).unwrap().data(), want.data());
    assert_eq!(rt.recoveries(), 1);
    let new = rt.gpu().unwrap().clone();
    assert!(!Arc::ptr_eq(&new, &ctx) && new.lost().is_none());
    assert_eq!(other.run(&x3).unwrap().data(), want3.data());
    assert_eq!(
        rt.recoveries(),
        1,
        "one new device for all models of the runtime"
    );
    assert_eq!(
        small_model(&rt).unwrap().run(&x).unwrap().data(),
        want.data()
    );

    // Explicitly, before the next run.
    new.device.destroy();
    assert!(rt.recover().unwrap());
    assert_eq!(rt.recoveries(), 2);
    assert!(
        other.recover().unwrap(),
        "the model moves to the new device"
    );
    assert!(!other.recover().unwrap(), "and stays there");
    assert_eq!(other.run(&x3).unwrap().data(), want3.data());
    assert_eq!(model.run(&x).unwrap().data(), want.data());
    assert_eq!(rt.recoveries(), 2);
}

/// `gconv train` on the GPU, 2 epochs of a tiny VGG on a generated image folder; with
/// `lose_at`, the device is destroyed after that step.
#[cfg(feature = "app")]
fn train_cli(dir: &std::path::Path, lose_at: Option<usize>) -> (std::process::Output, Weights) {
    let model = dir.join("two.toml");
    std::fs::write(
        &model,
        "name = \"two\"\ndescription = \"t\"\nnum_classes = 2\ninput = [1, 8, 8]\n\
         [arch]\nfamily = \"vgg\"\nstages = [[4], [8]]\nclassifier = [8]\ndropout = 0.0\n",
    )
    .unwrap();
    let data = dir.join("data");
    for (k, class) in ["a", "b"].iter().enumerate() {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..12u32 {
            let img = image::GrayImage::from_fn(8, 8, |x, y| {
                image::Luma([((x * 29 + y * 13 + i * 31 + k as u32 * 97) % 256) as u8])
            });
            img.save(data.join(class).join(format!("{i:02}.png")))
                .unwrap();
        }
    }
    let ck = dir.join(format!("ck-{lose_at:?}.safetensors"));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gconv"));
    cmd.args(["train", "--device", "gpu", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .args([
            "--input", "1x8x8", "--width", "1", "--conv", "sgc", "--groups", "2",
        ])
        .args([
            "--epochs",
            "2",
            "--batch",
            "4",
            "--val",
            "4",
            "--json",
            "--checkpoint",
        ])
        .arg(&ck)
        .env("RUST_LOG", "error");
    if let Some(s) = lose_at {
        cmd.env("GCONV_FAULT_LOSE_DEVICE_AT_STEP", s.to_string());
    }
    let o = cmd.output().unwrap();
    let w = gconv::train::read_checkpoint(&ck).map(|c| c.weights);
    (o, w.unwrap_or_default())
}

#[cfg(feature = "app")]
#[test]
fn training_goes_on_from_its_last_checkpoint_after_a_device_loss() {
    let _guard = common::serial();
    if context().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("gconv-loss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (clean, want) = train_cli(&dir, None);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    // 20 training images at batch 4: 5 steps per epoch; lost in the second epoch's third.
    for lose_at in [8, 2] {
        let (o, got) = train_cli(&dir, Some(lose_at));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        let from = if lose_at > 5 {
            "ck-Some(8).safetensors (epoch 1)"
        } else {
            "the start of the run"
        };
        assert!(
            err.contains("lost") && err.contains("resuming from"),
            "{err}"
        );
        assert!(err.contains(from), "{err}");
        let epochs = String::from_utf8_lossy(&o.stdout)
            .matches("\"epoch\":")
            .count();
        assert_eq!(epochs, 2, "each epoch reported once");
        // The same run as without the loss.
        let names: Vec<&String> = want.iter().map(|(k, _)| k).collect();
        assert_eq!(names, got.iter().map(|(k, _)| k).collect::<Vec<_>>());
        for (k, t) in want.iter() {
            let c = gconv::testing::compare(
                got.get(k).unwrap().data(),
                t.data(),
                gconv::testing::Tolerance::F32_MODEL,
            );
            assert_eq!(c.mismatches, 0, "{k}: {c:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
