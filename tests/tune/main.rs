//! Autotuning (`gconv::gpu::tune`): the on-disk cache, the choices it yields, and the CLI
//! round trip `gconv tune` → `gconv infer` / `gconv bench` reporting the cached kernels. Tiny
//! shapes on lavapipe; no timing is asserted.

#![cfg(feature = "app")]

#[path = "../common/mod.rs"]
mod common;

mod f16;

use gconv::gpu::choice::{self, KernelChoice};
use gconv::gpu::tune::{self, adapter_key, CachedChoice, TuneCache, TuneOptions};
use gconv::gpu::{GpuModel, Precision};
use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, GroupRange, GroupedConvTable, Op};
use gconv::ops::{Flatten, Linear};
use gconv::testing::{assert_close, Tolerance};
use gconv::{Tensor, Weights};
use std::path::PathBuf;
use std::process::{Command, Output};

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("gconv-tune-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// conv 3×3 (ReLU fused) → an uneven exported group table 1×1 → flatten → linear.
fn tiny() -> Graph {
    let mut b = GraphBuilder::new("tiny", [8, 12, 12]);
    let conv = Conv2dSpec::square(8, 16, 3, 1, 1);
    let x = b.push("conv", Op::Conv2d(conv), &[b.input()]).unwrap();
    let x = b.push("relu", Op::relu(), &[x]).unwrap();
    let ranges = [
        GroupRange {
            in_start: 0,
            in_len: 4,
            out_start: 0,
            out_len: 5,
        },
        GroupRange {
            in_start: 4,
            in_len: 12,
            out_start: 5,
            out_len: 7,
        },
    ];
    let spec = Conv2dSpec::square(16, 12, 1, 1, 0).groups(2);
    let t = GroupedConvTable::from_ranges(spec, &ranges);
    let x = b.push("table", Op::GroupedConvTable(t), &[x]).unwrap();
    let x = b.push("flatten", Op::Flatten(Flatten), &[x]).unwrap();
    let lin = Linear {
        in_features: 12 * 12 * 12,
        out_features: 10,
        bias: true,
    };
    let y = b.push("fc", Op::Linear(lin), &[x]).unwrap();
    b.finish(y)
}

fn input(g: &Graph, batch: usize) -> Tensor {
    let [c, h, w] = g.input_shape();
    Tensor::from_fn(&[batch, c, h, w], |i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
}

fn entry(kernel: &str) -> CachedChoice {
    CachedChoice {
        kernel: kernel.into(),
        default: "conv_fast".into(),
        speedup: 1.5,
        times_ms: vec![("conv_fast".into(), 3.0), (kernel.into(), 2.0)],
    }
}

#[test]
fn cache_round_trips_and_misses_on_another_driver() {
    let dir = TempDir::new("roundtrip");
    let path = dir.path("sub/kernels.json");
    let Some(ctx) = common::gpu() else { return };
    let mut info = ctx.info.clone();
    let key = adapter_key(&info);
    let mut c = TuneCache::empty(&path);
    c.insert(&key, "conv k3x3 b1", entry("conv_co8"));
    c.save().unwrap();
    let back = TuneCache::load(&path);
    assert_eq!(back.get(&key, "conv k3x3 b1"), Some(&entry("conv_co8")));
    assert_eq!(back.get(&key, "conv k1x1 b1"), None);
    info.driver_info = "1.1".into();
    let updated = adapter_key(&info);
    assert_ne!(updated, key);
    assert_eq!(back.get(&updated, "conv k3x3 b1"), None);
    // No temporary file is left next to the cache (its advisory lock file stays, empty).
    let mut names: Vec<String> = std::fs::read_dir(dir.path("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["kernels.json", "kernels.json.lock"]);
}

#[test]
fn corrupt_or_foreign_cache_files_are_ignored() {
    let dir = TempDir::new("corrupt");
    let path = dir.path("kernels.json");
    for text in [
        "{ not json",
        "[1, 2, 3]",
        r#"{"format": 99, "adapters": {}}"#,
        "",
    ] {
        std::fs::write(&path, text).unwrap();
        let c = TuneCache::load(&path);
        assert_eq!(c.len_for("anything"), 0, "{text:?}");
        // And it is replaced by a good file on save.
        let mut c = c;
        c.insert("a", "k", entry("conv_co1"));
        c.save().unwrap();
        assert_eq!(TuneCache::load(&path).len_for("a"), 1);
    }
    let missing = TuneCache::load(dir.path("nothing/here.json"));
    assert_eq!(missing.len_for("a"), 0);
}

#[test]
fn kernel_names_round_trip() {
    for name in [
        "conv_fast",
        "conv_fast[conv_m4s1r4p8_k3x3s1x1d1x1]",
        "conv_wgmem",
        "conv_tiled",
        "conv_co8",
        "conv_co1",
        "conv_pk8",
    ] {
        let k = choice::conv_named(name).expect(name);
        assert_eq!(k.name(), name);
        assert_eq!(choice::conv_named(&k.name()), Some(k), "{name}");
    }
    for name in ["gemv", "gemv[gemm_r8_b4]", "linear"] {
        let k = choice::linear_named(name).expect(name);
        assert_eq!(k.name(), name);
    }
    for name in ["conv_grad_fast", "grad_input_pw4", "grad_input"] {
        assert_eq!(choice::input_grad_named(name).expect(name).name(), name);
    }
    for name in [
        "conv_grad_fast",
        "grad_weight_pw4",
        "grad_weight_serial",
        "grad_weight",
    ] {
        assert_eq!(choice::weight_grad_named(name).expect(name).name(), name);
    }
    assert_eq!(choice::conv_named("conv_fast[no_such_entry]"), None);
    assert_eq!(choice::linear_named("gemv[nope]"), None);
    assert_eq!(choice::conv_named("conv_fastest"), None);
}

#[test]
fn tuned_model_matches_untuned_and_cache_drives_the_kernels() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let dir = TempDir::new("model");
    let g = tiny();
    // Batch 1: on CPU adapters the fully connected layer has two candidates only there (the
    // batched gemv GEMMs are off on lavapipe, see gpu::choice).
    let w = Weights::init(&g, 3);
    let x = input(&g, 1);
    let mut cache = TuneCache::empty(dir.path("kernels.json"));
    let opts = TuneOptions {
        batch: 1,
        repeats: 1,
        ..Default::default()
    };
    let rows = tune::tune_graph(ctx, &g, &mut cache, &opts, &mut |_, _, _| {}).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(names, ["conv", "table", "fc"]);
    for r in &rows {
        assert!(r.candidates.len() >= 2, "{}: {:?}", r.node, r.candidates);
        assert!(r.candidates.len() <= tune::MAX_CANDIDATES);
        assert_eq!(r.candidates[0].kernel, r.default);
        assert!(r.candidates.iter().any(|c| c.kernel == r.chosen));
        assert!(r.candidates.iter().all(|c| c.half_weights != Some(true)));
    }
    // Tuned and untuned agree.
    let choice = tune::choice_from(&cache, ctx, &g, 1, false);
    assert_eq!(choice.len(), 3);
    let mut untuned = GpuModel::new(ctx.clone(), g.clone(), &w).unwrap();
    let mut tuned = GpuModel::with_choice(ctx.clone(), g.clone(), &w, choice).unwrap();
    let want = untuned.run(&x).unwrap();
    assert_close(
        "tuned",
        tuned.run(&x).unwrap().data(),
        want.data(),
        Tolerance::F32_OP,
    );
    // A second run reuses the cache instead of timing again.
    let again = tune::tune_graph(ctx, &g, &mut cache, &opts, &mut |_, _, _| {}).unwrap();
    assert!(again.iter().all(|r| r.source == "cached"));
    // Non-default kernels written into the cache are what runs, with the same output.
    let key = adapter_key(&ctx.info);
    let layers = tune::tunable_layers(&g, 1);
    cache.insert(&key, &layers[0].key, entry("conv_co1"));
    cache.insert(&key, &layers[2].key, entry("linear"));
    let mut forced = GpuModel::with_choice(
        ctx.clone(),
        g.clone(),
        &w,
        tune::choice_from(&cache, ctx, &g, 1, false),
    )
    .unwrap();
    let k = forced.kernels(1).unwrap();
    let of = |n: &str| k.iter().find(|(l, _)| l == n).unwrap().1.clone();
    assert_eq!(of("conv"), "conv_co1");
    assert_eq!(of("fc"), "linear");
    assert_close(
        "forced",
        forced.run(&x).unwrap().data(),
        want.data(),
        Tolerance::F32_OP,
    );
    // Another batch size has no entries; a kernel that cannot run trained weights
    // (conv_tiled) is left out of a training choice; an unknown name is skipped.
    assert!(tune::choice_from(&cache, ctx, &g, 3, false).is_empty());
    cache.insert(&key, &layers[0].key, entry("conv_tiled"));
    let train = tune::choice_from(&cache, ctx, &g, 1, true);
    assert_eq!(train.conv_of("conv"), None);
    cache.insert(&key, &layers[0].key, entry("conv_nonsense"));
    assert_eq!(
        tune::choice_from(&cache, ctx, &g, 1, false).conv_of("conv"),
        None
    );
}

#[test]
fn a_forced_kernel_that_cannot_run_names_the_layer() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let g = tiny();
    let w = Weights::init(&g, 3);
    // A direct kernel cannot read an index-addressed table.
    let co8 = choice::conv_named("conv_co8").unwrap();
    let bad = KernelChoice::new().conv("table", co8);
    let e = GpuModel::with_choice(ctx.clone(), g.clone(), &w, bad)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("table") && e.contains("cannot run"), "{e}");
    // A conv_fast entry of another geometry (1×1) on the 3×3 layer.
    let one_by_one = gconv::gpu::kernels::conv_fast::ENTRIES
        .iter()
        .find(|e| e.geom.is_some_and(|g| g[0] == 1))
        .unwrap();
    let entry = choice::conv_named(&format!("conv_fast[{}]", one_by_one.name)).unwrap();
    let bad = KernelChoice::new().conv("conv", entry);
    let e = GpuModel::with_choice(ctx.clone(), g, &w, bad)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("conv:"), "{e}");
}

fn gconv(args: &[&str], cache: &std::path::Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_gconv"))
        .args(args)
        .env("GCONV_CACHE_DIR", cache)
        .env_remove("GCONV_TUNE")
        .env("RUST_LOG", "error")
        .output()
        .expect("gconv runs");
    eprintln!(
        "gconv {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success());
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

/// A float32 `.npy` of `shape` (values in [0, 1)).
fn write_npy(path: &std::path::Path, shape: [usize; 4]) {
    let n: usize = shape.iter().product();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}, {}, {}), }}",
        shape[0], shape[1], shape[2], shape[3]
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for i in 0..n {
        bytes.extend((((i * 13) % 17) as f32 / 17.0).to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn cli_tune_then_infer_and_bench_report_the_cached_kernels() {
    if common::gpu().is_none() {
        return;
    }
    let _g = common::serial();
    let dir = TempDir::new("cli");
    let model = dir.path("tiny.toml");
    std::fs::write(
        &model,
        "name = \"tinyvgg\"\ndescription = \"tiny\"\nnum_classes = 10\ninput = [3, 16, 16]\n\n\
         [arch]\nfamily = \"vgg\"\nstages = [[8], [16]]\nclassifier = [32]\ndropout = 0.5\n",
    )
    .unwrap();
    let model = model.to_string_lossy().into_owned();
    let cache_dir = dir.path("cache");
    let t = json(&gconv(
        &["tune", &model, "--repeats", "1", "--json"],
        &cache_dir,
    ));
    let layers = t["layers"].as_array().unwrap();
    let nodes: Vec<&str> = layers.iter().map(|l| l["node"].as_str().unwrap()).collect();
    assert_eq!(
        nodes,
        ["features.0", "features.4", "classifier.0", "classifier.3"]
    );
    // Timed in f16 too: its entries join the f32 ones under their own keys.
    let t16 = json(&gconv(
        &[
            "tune",
            &model,
            "--repeats",
            "1",
            "--precision",
            "f16",
            "--json",
        ],
        &cache_dir,
    ));
    assert_eq!(t16["precision"], "f16");
    let keys16: Vec<&str> = t16["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys16.len(), layers.len());
    for (k16, l) in keys16.iter().zip(layers) {
        assert_eq!(*k16, format!("{} f16", l["key"].as_str().unwrap()));
    }
    let file = cache_dir.join("kernels.json");
    let both: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let stored: usize = both["adapters"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s.as_object().unwrap().len())
        .sum();
    let distinct: std::collections::HashSet<&str> =
        layers.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_eq!(stored, 2 * distinct.len());
    let mut cached: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    // Force recognisable non-default kernels through the cache itself.
    for (_, shapes) in cached["adapters"].as_object_mut().unwrap() {
        for (key, e) in shapes.as_object_mut().unwrap() {
            e["kernel"] = if key.starts_with("conv") {
                "conv_co1"
            } else {
                "linear"
            }
            .into();
        }
    }
    std::fs::write(&file, serde_json::to_vec(&cached).unwrap()).unwrap();
    let x = dir.path("x.npy");
    write_npy(&x, [1, 3, 16, 16]);
    let x = x.to_string_lossy().into_owned();
    let infer = ["infer", "--model", &model, "--input", &x, "--json"];
    let k = json(&gconv(&infer, &cache_dir))["kernels"].clone();
    let kernel = |k: &serde_json::Value, node: &str| {
        k.as_array()
            .unwrap()
            .iter()
            .find(|p| p[0] == node)
            .map(|p| p[1].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(kernel(&k, "features.0"), "conv_co1");
    assert_eq!(kernel(&k, "features.4"), "conv_co1");
    assert_eq!(kernel(&k, "classifier.0"), "linear");
    let mut untuned = infer.to_vec();
    untuned.push("--no-tune");
    let k = json(&gconv(&untuned, &cache_dir))["kernels"].clone();
    assert_ne!(kernel(&k, "features.0"), "conv_co1");
    // infer runs once: on a CPU adapter its small convolutions take the kernel that compiles
    // fast; --fast-kernels the one that runs fast (what bench times).
    let info = &common::gpu().unwrap().info;
    if gconv::gpu::choice::AdapterClass::of(info) == gconv::gpu::choice::AdapterClass::Cpu {
        assert!(kernel(&k, "features.0").starts_with("conv_igemm"), "{k}");
        let mut fast = untuned.clone();
        fast.push("--fast-kernels");
        let k = json(&gconv(&fast, &cache_dir))["kernels"].clone();
        assert!(kernel(&k, "features.0").starts_with("conv_fast"), "{k}");
    }
    let bench = [
        "bench",
        "--model",
        &model,
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--large-batch",
        "0",
        "--json",
    ];
    let b = json(&gconv(&bench, &cache_dir));
    let rows = b["models"][0]["per_layer"].as_array().unwrap();
    let row = rows.iter().find(|r| r["name"] == "features.0").unwrap();
    assert_eq!(row["kernel"], "conv_co1");
    assert!(row["roof_pct"].as_f64().unwrap() > 0.0);
    assert!(b["roofline"]["read_gbps"].as_f64().unwrap() > 0.0);
    // A corrupt cache is ignored: infer still runs, with the default kernels.
    std::fs::write(&file, "{{{").unwrap();
    let k = json(&gconv(&infer, &cache_dir))["kernels"].clone();
    assert_ne!(kernel(&k, "features.0"), "conv_co1");
}
