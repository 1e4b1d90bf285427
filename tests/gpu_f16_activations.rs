//! f16 activations (`Precision::F16` on a device with `SHADER_F16`; lavapipe has it): with the
//! discrete class forced, a pass whose every kernel stores activations as the prelude's
//! `act_t` runs their half-activation twins — the input rounded to halves, each kernel
//! converting as it loads and rounding as it stores, the output read back as halves — and
//! matches the f32 CPU reference within `Tolerance::F16_MODEL`, differing from the same model
//! with f32 activations (so the halves are really stored). Every kernel of the tier's
//! inference path is in one graph (conv_igemm dense, strided, grouped, pointwise and split-K;
//! conv_dw; max, average and adaptive pooling; a batch norm, a residual add, a sigmoid gate,
//! gathers and a concat; gemv_wide and linear; softmax). A pass with an f32-only kernel (the
//! CPU class's lists) keeps every activation f32 and says which kernel; so does
//! `GCONV_F16_ACTIVATIONS=off`. Own binary: it sets environment variables.

mod common;

use common::tier::input;

use gconv::gpu::choice::{Adapter, AdapterClass};
use gconv::gpu::{GpuContext, GpuModel, Precision};
use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, Op};
use gconv::ops::Pool2dSpec;
use gconv::testing::{assert_close, compare, Tolerance};
use gconv::{cpu, Weights};
use std::sync::Arc;

/// One graph with every op of the real-GPU tier's inference path.
fn every_op_graph() -> Graph {
    let conv =
        |c, n, k, s, g| Op::conv2d(Conv2dSpec::square(c, n, k, s, k / 2).groups(g).bias(true));
    let mut b = GraphBuilder::new("every_op", [3, 17, 15]);
    let x = b.input();
    let c1 = b.push("c1", conv(3, 12, 3, 2, 1), &[x]).unwrap();
    let n1 = b.push("bn1", Op::batch_norm(12, 1e-5), &[c1]).unwrap();
    let r1 = b.push("relu1", Op::relu(), &[n1]).unwrap();
    let dw = b.push("dw", conv(12, 12, 3, 1, 12), &[r1]).unwrap();
    let r6 = b.push("relu6", Op::relu6(), &[dw]).unwrap();
    let pw = b.push("pw", conv(12, 12, 1, 1, 3), &[r6]).unwrap();
    let perm = (0..12).map(|i| (i % 3) * 4 + i / 3).collect();
    let sh = b.push("shuffle", Op::gather(perm), &[pw]).unwrap();
    let add = b.push("add", Op::add(), &[sh, r1]).unwrap();
    let n2 = b.push("bn2", Op::batch_norm(12, 1e-5), &[add]).unwrap();
    let lo = b.push("lo", Op::gather((0..6).collect()), &[n2]).unwrap();
    let hi = b.push("hi", Op::gather((6..12).collect()), &[n2]).unwrap();
    let hs = b.push("hswish", Op::hard_swish(), &[hi]).unwrap();
    let cat = b.push("cat", Op::concat(&[6, 6]), &[hs, lo]).unwrap();
    let mp = b
        .push("maxpool", Op::max_pool(Pool2dSpec::square(2, 2, 0)), &[cat])
        .unwrap();
    let ap = b
        .push("avgpool", Op::avg_pool(Pool2dSpec::square(3, 1, 1)), &[mp])
        .unwrap();
    // K = 12·9 on a 4×4 plane: few tiles, so conv_igemm splits K (GCONV_COMPUTE_UNITS).
    let wide = b.push("wide", conv(12, 64, 3, 1, 1), &[ap]).unwrap();
    let deep = b.push("deep", conv(64, 16, 3, 1, 1), &[wide]).unwrap();
    let se = b
        .push("squeeze", Op::adaptive_avg_pool([1, 1]), &[deep])
        .unwrap();
    let gate = b.push("gate", Op::sigmoid(), &[se]).unwrap();
    let scaled = b
        .push("excite", Op::Mul(gconv::ops::Mul), &[deep, gate])
        .unwrap();
    let gp = b
        .push("pool", Op::adaptive_avg_pool([1, 1]), &[scaled])
        .unwrap();
    let fl = b.push("flatten", Op::flatten(), &[gp]).unwrap();
    let f1 = b.push("fc1", Op::linear(16, 6, true), &[fl]).unwrap();
    let r2 = b.push("relu2", Op::relu(), &[f1]).unwrap();
    // 6 inputs: not a multiple of 4, so gemv_wide cannot read it and `linear` runs.
    let f2 = b.push("fc2", Op::linear(6, 5, true), &[r2]).unwrap();
    b.finish(f2)
}

fn load(ctx: &Arc<GpuContext>, g: &Graph, w: &Weights, p: Precision) -> GpuModel {
    let choice = gconv::gpu::choice::KernelChoice::new().with_precision(p);
    GpuModel::with_choice(ctx.clone(), g.clone(), w, choice).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn every_tier_kernel_stores_half_activations_and_matches_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    assert!(
        ctx.features.contains(wgpu::Features::SHADER_F16),
        "lavapipe has SHADER_F16; the context must ask for it"
    );
    let _class = common::force_class("discrete");
    std::env::set_var("GCONV_COMPUTE_UNITS", "512");
    assert_eq!(Adapter::of(ctx).class, AdapterClass::Discrete);
    let g = every_op_graph();
    let w = Weights::random_for_tests(&g, 3);
    for batch in [1, 3] {
        let x = input(&[batch, 3, 17, 15], 5 + batch as u32);
        let want = cpu::run_graph(&g, &w, &x).unwrap();
        let mut half = load(ctx, &g, &w, Precision::F16);
        assert_eq!(
            half.activation_precision(batch).unwrap(),
            (Precision::F16, None),
            "batch {batch}"
        );
        let labels = half.dispatch_labels(batch).unwrap().join("\n");
        for kernel in [
            "[conv_igemm_f16::",
            "igemm_reduce]",
            "[conv_dw::",
            "[pool::max_pool]",
            "[pool::avg_pool]",
            "[pool::adaptive_avg_pool]",
            "[norm::batch_norm]",
            "[elementwise::add]",
            "[elementwise::activation]",
            "[elementwise::mul_channel]",
            "[gather::gather]",
            "[gather::gather_into]",
            "[gemv_wide_f16::",
            "[linear::",
        ] {
            assert!(labels.contains(kernel), "{kernel} not run:\n{labels}");
        }
        let got = half.run(&x).unwrap();
        let what = format!("every-op graph, f16 activations, batch {batch}");
        assert_close(&what, got.data(), want.data(), Tolerance::F16_MODEL);
        std::env::set_var("GCONV_F16_ACTIVATIONS", "off");
        let mut weights_only = load(ctx, &g, &w, Precision::F16);
        let (p, why) = weights_only.activation_precision(batch).unwrap();
        std::env::remove_var("GCONV_F16_ACTIVATIONS");
        assert_eq!(p, Precision::F32);
        assert!(why.unwrap().contains("GCONV_F16_ACTIVATIONS=off"));
        let f32_acts = weights_only.run(&x).unwrap();
        assert!(
            max_diff(got.data(), f32_acts.data()) > 0.0,
            "{what}: the same output as f32 activations bit for bit"
        );
        let e = compare(got.data(), want.data(), Tolerance::F16_MODEL);
        let e32 = compare(f32_acts.data(), want.data(), Tolerance::F16_MODEL);
        eprintln!(
            "{what}: max |err| {:.2e} (rel {:.2e}); f16 weights only {:.2e} (rel {:.2e})",
            e.max_abs, e.max_rel, e32.max_abs, e32.max_rel
        );
    }
    std::env::remove_var("GCONV_COMPUTE_UNITS");
}

/// Softmax at the end of a classifier, in halves.
#[test]
fn softmax_over_half_activations_matches_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let _class = common::force_class("discrete");
    let mut b = GraphBuilder::new("probs", [8, 1, 1]);
    let fl = b.push("flatten", Op::flatten(), &[b.input()]).unwrap();
    let fc = b.push("fc", Op::linear(8, 12, true), &[fl]).unwrap();
    let sm = b.push("softmax", Op::softmax(), &[fc]).unwrap();
    let g = b.finish(sm);
    let w = Weights::random_for_tests(&g, 9);
    let x = input(&[2, 8, 1, 1], 4);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let mut m = load(ctx, &g, &w, Precision::F16);
    assert_eq!(m.activation_precision(2).unwrap().0, Precision::F16);
    let got = m.run(&x).unwrap();
    assert_close("softmax f16", got.data(), want.data(), Tolerance::F16_OP);
    for row in got.data().chunks(12) {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-2, "a row sums to {s}");
    }
}

/// On the CPU class (lavapipe's own lists: `conv_fast` reads f32 activations) nothing is
/// halved: the activations stay f32, the reason names the kernel, and the output is the f32
/// model's bit for bit. An f32 model says f32 and gives no reason.
#[test]
fn a_pass_with_an_f32_only_kernel_keeps_every_activation_f32() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let _class = common::force_class("cpu");
    let g = every_op_graph();
    let w = Weights::random_for_tests(&g, 3);
    let x = input(&[2, 3, 17, 15], 1);
    let mut half = load(ctx, &g, &w, Precision::F16);
    let (p, why) = half.activation_precision(2).unwrap();
    assert_eq!(p, Precision::F32);
    let why = why.expect("a reason");
    assert!(why.contains("reads f32 activations only"), "{why}");
    let mut full = load(ctx, &g, &w, Precision::F32);
    assert_eq!(
        full.activation_precision(2).unwrap(),
        (Precision::F32, None)
    );
    let (a, b) = (half.run(&x).unwrap(), full.run(&x).unwrap());
    assert_eq!(a.data(), b.data());
}

/// An input beyond f16's range is refused naming the model's input, not turned into ∞.
#[test]
fn an_input_beyond_the_f16_range_is_an_error() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let _class = common::force_class("discrete");
    let g = every_op_graph();
    let w = Weights::random_for_tests(&g, 3);
    let mut m = load(ctx, &g, &w, Precision::F16);
    let mut x = input(&[1, 3, 17, 15], 2);
    x.data_mut()[7] = 1e6;
    let err = m.run(&x).unwrap_err().to_string();
    assert!(
        err.contains("every_op input") && err.contains("65504"),
        "{err}"
    );
}

/// The real-GPU list's other conv families (what `gconv tune` may pick on a GPU) store
/// halves too: each forced on every layer of the graph it can run (at least one), the pass
/// stays f16 and within `F16_MODEL`.
#[test]
fn every_gpu_conv_family_forced_keeps_half_activations() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let _class = common::force_class("discrete");
    let g = every_op_graph();
    let w = Weights::random_for_tests(&g, 4);
    let x = input(&[2, 3, 17, 15], 6);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    for name in [
        "conv_wgmem",
        "conv_tiled",
        "conv_pk8",
        "conv_co8",
        "conv_co1",
    ] {
        let k = gconv::gpu::choice::conv_named(name).unwrap();
        let mut ran = 0;
        for layer in ["c1", "pw", "wide", "deep"] {
            let choice = gconv::gpu::choice::KernelChoice::new()
                .conv(layer, k)
                .with_precision(Precision::F16);
            let mut m = match GpuModel::with_choice(ctx.clone(), g.clone(), &w, choice) {
                Ok(m) => m,
                Err(e) if e.to_string().contains("cannot run") => continue,
                Err(e) => panic!("{name} on {layer}: {e}"),
            };
            let what = format!("{name} on {layer}");
            assert_eq!(
                m.activation_precision(2).unwrap(),
                (Precision::F16, None),
                "{what}"
            );
            let labels = m.dispatch_labels(2).unwrap();
            assert!(
                labels
                    .iter()
                    .any(|l| l.starts_with(&format!("{layer} ")) && l.contains(name)),
                "{what} not run:\n{}",
                labels.join("\n")
            );
            let got = m.run(&x).unwrap();
            assert_close(&what, got.data(), want.data(), Tolerance::F16_MODEL);
            ran += 1;
        }
        assert!(ran > 0, "{name} ran no layer");
    }
}

/// `gconv infer --precision f16 --compare`: with the discrete class the tiny VGG runs with
/// half activations within the f16 tolerance and says so; with the CPU class's fast kernels
/// it says, in the same line, that they stay f32 and which kernel.
#[test]
fn the_cli_says_when_activations_stay_f32() {
    if common::gpu().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("gconv-f16act-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let npy = dir.join("x.npy");
    gconv::io::write_npy(&npy, &input(&[1, 3, 16, 16], 3)).unwrap();
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/search/tiny-vgg.toml"
    );
    let infer = |class: &str, extra: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_gconv"))
            .args(["infer", "--model", model, "--input", npy.to_str().unwrap()])
            .args(["--precision", "f16", "--compare"])
            .args(extra)
            .env("GCONV_ADAPTER_CLASS", class)
            .env("GCONV_CACHE_DIR", dir.join("cache"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{class}: {err}");
        err
    };
    let half = infer("discrete", &[]);
    assert!(half.contains("; activations f16"), "{half}");
    // Lavapipe has no tensor cores: the line says so (a GPU with them counts its layers).
    assert!(
        half.contains("; no cooperative matrices on this adapter"),
        "{half}"
    );
    let full = infer("cpu", &["--fast-kernels"]);
    assert!(
        full.contains("activations stay f32") && full.contains("reads f32 activations only"),
        "{full}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Half activations take half the memory: a conv chain with no kernel scratch plans 2 bytes
/// a value (each slot rounded up to a word) against f32's 4 — the f32 upload of the input
/// included — and still matches the CPU.
#[test]
fn half_activations_plan_half_the_memory() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let _class = common::force_class("discrete");
    let mut b = GraphBuilder::new("chain", [3, 33, 31]);
    let c1 = Op::conv2d(Conv2dSpec::square(3, 16, 3, 1, 1).bias(true));
    let c1 = b.push("c1", c1, &[b.input()]).unwrap();
    let r1 = b.push("r1", Op::relu(), &[c1]).unwrap();
    let c2 = Op::conv2d(Conv2dSpec::square(16, 16, 3, 1, 1).groups(4));
    let c2 = b.push("c2", c2, &[r1]).unwrap();
    let p = Op::max_pool(Pool2dSpec::square(2, 2, 0));
    let p = b.push("pool", p, &[c2]).unwrap();
    let g = b.finish(p);
    let w = Weights::random_for_tests(&g, 2);
    let x = input(&[2, 3, 33, 31], 8);
    let mut half = load(ctx, &g, &w, Precision::F16);
    let mut full = load(ctx, &g, &w, Precision::F32);
    let (p16, p32) = (half.plan_report(2).unwrap(), full.plan_report(2).unwrap());
    let got = half.run(&x).unwrap();
    assert_eq!(half.activation_precision(2).unwrap().0, Precision::F16);
    // One more dispatch: the input, uploaded as f32, is rounded to halves by the pass's first
    // call; its f32 buffer lives for that call only and shares a slot afterwards.
    assert_eq!(p16.dispatches, p32.dispatches + 1);
    assert_eq!(p16.slots, p32.slots);
    assert!(
        p16.planned_bytes * 2 <= p32.planned_bytes + 4 * p16.slots as u64
            && p16.planned_bytes < p32.planned_bytes,
        "planned {} bytes in halves against {} in f32",
        p16.planned_bytes,
        p32.planned_bytes
    );
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    assert_close("chain f16", got.data(), want.data(), Tolerance::F16_MODEL);
}

/// `gconv bench --precision f16` notes each model whose activations stayed f32: on the CPU
/// class (`conv_fast`) the sweep's layer and the paper1 model, naming the kernel; with the
/// discrete class none, and the JSON has no such key. An f32 bench notes nothing.
#[test]
fn bench_reports_models_whose_activations_stayed_f32() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    use gconv::bench::{run_bench, BenchConfig, LayerShape, Suite};
    let cfg = |p: Precision| BenchConfig {
        suites: vec![Suite::Paper1, Suite::Sweep],
        input_size: 32,
        width: 0.25,
        num_classes: 10,
        batch: 1,
        large_batch: 0,
        warmup: 0,
        repeats: 1,
        vgg: "vgg11bn".into(),
        schemes: vec![],
        sweep_layers: vec![LayerShape {
            channels: 32,
            size: 16,
            kernel: 3,
        }],
        sweep_groups: vec![2],
        precision: p,
        tuned: false,
        paper1_input_size: None,
        ..BenchConfig::default_for(true)
    };
    let rt = gconv::Runtime::with_context(ctx.clone());
    let bench = |class: &str, p: Precision| {
        let _class = common::force_class(class);
        let r = run_bench(&cfg(p), &rt, &mut |_, _, _| {});
        r.unwrap()
    };
    let cpu = bench("cpu", Precision::F16);
    assert!(cpu.f32_activations.len() >= 2, "{:?}", cpu.f32_activations);
    assert!(
        cpu.f32_activations
            .iter()
            .all(|n| n.contains("conv_fast") && n.contains("reads f32 activations only")),
        "{:?}",
        cpu.f32_activations
    );
    let discrete = bench("discrete", Precision::F16);
    assert!(
        discrete.f32_activations.is_empty(),
        "{:?}",
        discrete.f32_activations
    );
    let json = serde_json::to_value(&discrete).unwrap();
    assert!(json.get("f32_activations").is_none());
    assert!(bench("cpu", Precision::F32).f32_activations.is_empty());
}

/// An f16 pass uploads its input as f32 and rounds it on the device (`cast::from_f32`, the
/// pass's first call). A graph whose output is its input (a flatten: no call of its own)
/// reads that rounding back: every value the half nearest to it or (WGSL lets the device
/// round either way) the other neighbour — values in f16's subnormal range included — and
/// exactly itself where f16 holds it (±0, 1, ±65504, ±∞); NaN stays NaN. An odd length at
/// batch 3.
#[test]
fn the_input_is_rounded_to_halves_on_the_device() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let _class = common::force_class("discrete");
    let mut b = GraphBuilder::new("identity", [1, 7, 5]);
    let f = b.push("flat", Op::flatten(), &[b.input()]).unwrap();
    let g = b.finish(f);
    let w = Weights::random_for_tests(&g, 0);
    let special = [
        0.0,
        -0.0,
        1.0,
        65504.0,
        -65504.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        6.0e-8,
        -3.0e-5,
        1.0 + 1.0 / 2048.0, // a tie between two halves
        0.1,
    ];
    let x = gconv::Tensor::from_fn(&[3, 1, 7, 5], |i| match special.get(i) {
        Some(&v) => v,
        None => ((i as u32).wrapping_mul(2_654_435_761) % 20_000) as f32 / 97.0 - 100.0,
    });
    let mut m = load(ctx, &g, &w, Precision::F16);
    let got = m.run(&x).unwrap();
    assert_eq!(m.activation_precision(3).unwrap().0, Precision::F16);
    assert_eq!(got.numel(), x.numel());
    for (i, (&v, &y)) in x.data().iter().zip(got.data()).enumerate() {
        let near = half::f16::from_f32(v);
        if v.is_nan() {
            assert!(y.is_nan(), "value {i}: NaN became {y}");
            continue;
        }
        // Else the half on the other side of `v`, next to the nearest.
        let other_side =
            (f64::from(y) - f64::from(v)) * (f64::from(near.to_f32()) - f64::from(v)) < 0.0;
        let adjacent = half::f16::from_f32(y).to_bits().abs_diff(near.to_bits()) == 1;
        let ok = y == near.to_f32() || (other_side && adjacent);
        assert!(ok, "value {i}: {v} became {y}, its nearest half is {near}");
    }
}
