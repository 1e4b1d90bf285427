//! The on-disk pipeline cache (`gpu::pipeline_cache`): a second context loads what the first
//! saved and its pipelines still compute what the CPU does; a truncated, corrupt, foreign or
//! stranger's file is ignored with a notice and replaced, never a crash; off means no file.
//! Each test opens its own contexts on a temporary cache folder and holds the serial lock.

mod common;

use gconv::gpu::pipeline_cache::{self, GpuOptions};
use gconv::gpu::GpuContext;
use gconv::zoo::{Arch, ModelSpec, StemKind};
use gconv::{Device, LoadOptions, Runtime, Tensor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gconv-pc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn open(dir: &Path) -> Option<Arc<GpuContext>> {
    common::gpu()?;
    let opts = GpuOptions {
        pipeline_cache: Some(dir.to_path_buf()),
    };
    Some(Arc::new(GpuContext::with_options(&opts).expect("context")))
}

/// A small ResNet-50-DSC-SGC (G = 2, width 1/8, one block per stage, 1×20×20) on `ctx`,
/// against the CPU reference.
fn check_against_cpu(ctx: &Arc<GpuContext>) {
    let mut spec = ModelSpec::load("resnet50-dsc-sgc").unwrap();
    spec.input = [1, 20, 20];
    spec.width = 0.125;
    spec.num_classes = 10;
    if let Arch::Resnet { layers, stem, .. } = &mut spec.arch {
        *layers = [1, 1, 1, 1];
        *stem = StemKind::Small;
    }
    let x = Tensor::from_fn(&[1, 1, 20, 20], |i| ((i * 37 % 101) as f32 - 50.0) / 50.0);
    let opts = LoadOptions::default();
    let gpu = Runtime::with_context(ctx.clone()).load(&spec, None, &opts);
    let y = gpu.unwrap().run(&x).unwrap();
    let cpu = Runtime::new(Device::Cpu).unwrap().load(&spec, None, &opts);
    let want = cpu.unwrap().run(&x).unwrap();
    let diff = y
        .data()
        .iter()
        .zip(want.data())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-3, "GPU differs from the CPU by {diff}");
}

#[test]
fn a_second_context_loads_the_saved_cache_and_still_matches_the_cpu() {
    let _guard = common::serial();
    let dir = temp_dir("round-trip");
    let Some(first) = open(&dir) else { return };
    let Some(cache) = first.pipeline_cache() else {
        eprintln!("SKIPPING: {} has no pipeline cache", first.describe());
        return;
    };
    let path = cache.path().to_path_buf();
    assert_eq!(cache.loaded_bytes(), 0, "a new folder starts empty");
    assert!(cache.notice().is_none(), "no file is not a notice");
    check_against_cpu(&first);
    let identity = pipeline_cache::identity(&first.info);
    drop(first);
    let bytes = std::fs::read(&path).expect("the first context saved its cache");
    let data = pipeline_cache::decode(&identity, &bytes).expect("a whole, valid file");
    assert!(!data.is_empty());

    let second = open(&dir).unwrap();
    let cache = second.pipeline_cache().unwrap();
    assert_eq!(
        cache.loaded_bytes(),
        data.len(),
        "the second context loads it"
    );
    assert!(cache.notice().is_none(), "{:?}", cache.notice());
    check_against_cpu(&second);
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unusable_cache_files_are_ignored_with_a_notice_and_replaced() {
    let _guard = common::serial();
    let dir = temp_dir("bad-files");
    let Some(ctx) = open(&dir) else { return };
    let Some(path) = ctx.pipeline_cache().map(|c| c.path().to_path_buf()) else {
        return;
    };
    let identity = pipeline_cache::identity(&ctx.info);
    check_against_cpu(&ctx);
    drop(ctx);
    let good = std::fs::read(&path).unwrap();
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 0x5a;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty-ish", b"gconv".to_vec(), "not a gconv pipeline cache"),
        ("truncated", good[..good.len() - 3].to_vec(), "truncated"),
        ("corrupt", flipped, "corrupt"),
        (
            "foreign",
            pipeline_cache::encode("another GPU | Vulkan | x | y | gconv 0", b"data"),
            "another adapter",
        ),
        (
            "random",
            (0..4096u32)
                .map(|i| i.wrapping_mul(2654435761) as u8)
                .collect(),
            "not a gconv",
        ),
    ];
    for (what, bytes, needle) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let ctx = open(&dir).unwrap();
        let cache = ctx.pipeline_cache().unwrap();
        let notice = cache
            .notice()
            .unwrap_or_else(|| panic!("{what}: no notice"));
        assert!(notice.contains(needle), "{what}: {notice}");
        assert!(
            notice.contains(&*path.to_string_lossy()),
            "{what}: names the file: {notice}"
        );
        assert_eq!(cache.loaded_bytes(), 0, "{what}");
        check_against_cpu(&ctx);
        drop(ctx);
        let replaced = std::fs::read(&path).unwrap();
        assert!(
            pipeline_cache::decode(&identity, &replaced).is_ok(),
            "{what}: replaced by a valid file"
        );
    }
    // Our header intact but the driver data a stranger's: wgpu's own check falls back to an
    // empty cache.
    std::fs::write(&path, pipeline_cache::encode(&identity, &[7u8; 512])).unwrap();
    let ctx = open(&dir).unwrap();
    assert_eq!(ctx.pipeline_cache().unwrap().loaded_bytes(), 512);
    check_against_cpu(&ctx);
    drop(ctx);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_cache_can_be_turned_off() {
    let _guard = common::serial();
    if common::gpu().is_none() {
        return;
    }
    let ctx = Arc::new(
        GpuContext::with_options(&GpuOptions {
            pipeline_cache: None,
        })
        .unwrap(),
    );
    assert!(ctx.pipeline_cache().is_none());
    assert!(!ctx.features.contains(wgpu::Features::PIPELINE_CACHE));
    check_against_cpu(&ctx);
    assert!(!ctx.save_pipeline_cache().unwrap());
}
