//! The cooperative-matrix tier of fully connected layers (`linear_coop`) on lavapipe, which
//! has no cooperative matrices: its soft twin (`linear_coop_soft`, the same generated kernel
//! with the three matrix operations in plain WGSL) on every variant — matrix sizes 16 and 8,
//! each tile — over batches 1 to 33, widths that are not a multiple of the K step, several
//! weight row chunks, split-K, with and without bias, against the CPU reference on the same
//! f16-rounded operands; a whole f16 MLP keeping f16 activations; and the choice: taken for
//! weights stored as halves above `gemv_wide`'s batches on an adapter with the matrices,
//! never for f32 weights, never the soft twin by default.

mod common;

use common::tier::input;

use gconv::gpu::choice::{self, Adapter, AdapterClass, Family, KernelChoice, LinearKernel};
use gconv::gpu::family::LinearRun;
use gconv::gpu::geometry::LinearShape;
use gconv::gpu::kernels::gemv_wide::{self, pack_f16};
use gconv::gpu::kernels::linear_coop::{grid_of, LINEAR_COOP_SOFT};
use gconv::gpu::launch::bind_all;
use gconv::gpu::tune::TuneCache;
use gconv::gpu::tune::{self, adapter_key, candidates, CachedChoice, Kernel, LayerProblem};
use gconv::gpu::{run_dispatches, Arg, GpuContext, GpuModel, Precision};
use gconv::graph::{Graph, GraphBuilder, Op};
use gconv::ops::Activation;
use gconv::testing::{assert_close, Tolerance};
use gconv::{cpu, Tensor, Weights};

fn halves(n: usize, seed: u32) -> Vec<f32> {
    input(&[n], seed)
        .data()
        .iter()
        .map(|&v| half::f16::from_f32(v).to_f32())
        .collect()
}

fn soft(variant: Option<&str>) -> LinearKernel {
    let name = match variant {
        Some(v) => format!("linear_coop_soft[{v}]"),
        None => "linear_coop_soft".to_string(),
    };
    choice::linear_named(&name).unwrap()
}

/// One case: `out = act(x·Wᵀ + b)` with the weight in row chunks of `chunks` rows, run
/// directly by `kernel` with `compute_units` forced (split-K when few tiles), against the
/// CPU on the f16-rounded weight and input (what is left is summation order: F32_OP).
/// Returns whether K was split.
fn check(
    ctx: &GpuContext,
    (batch, inf, outf): (usize, usize, usize),
    chunks: &[usize],
    bias: bool,
    kernel: LinearKernel,
    compute_units: u32,
) -> bool {
    let x = Tensor::new(vec![batch, inf], halves(batch * inf, 3)).unwrap();
    let w = Tensor::new(vec![outf, inf], halves(outf * inf, 5)).unwrap();
    let b = bias.then(|| input(&[outf], 7).data().to_vec());
    let want = cpu::relu(&cpu::linear(&x, &w, b.as_deref()).unwrap());
    let packed = pack_f16("fc", w.data()).unwrap();
    let words = inf / 2;
    let mut row = 0;
    let bufs: Vec<Arg> = chunks
        .iter()
        .map(|&r| {
            let slice = &packed[row * words..(row + r) * words];
            row += r;
            Arg::whole(&ctx.upload("w chunk", slice).unwrap())
        })
        .collect();
    assert_eq!(row, outf, "chunks cover the rows");
    let xb = ctx.upload("x", x.data()).unwrap();
    let bb = b.as_ref().map(|v| Arg::whole(&ctx.upload("b", v).unwrap()));
    let ob = ctx
        .storage_buffer("out", (batch * outf * 4) as u64)
        .unwrap();
    let s = LinearShape {
        batch,
        in_features: inf,
        out_features: outf,
    };
    let (x_arg, out) = (Arg::whole(&xb), Arg::whole(&ob));
    let mut scratch = |label: &str, n: usize| {
        let b = ctx.storage_buffer(label, (n * 4) as u64)?;
        Ok(Arg::prefix(&b, n))
    };
    let run = LinearRun {
        label: "fc",
        shape: &s,
        x: &x_arg,
        chunks: &bufs,
        bias: bb.as_ref(),
        out: &out,
        act: Activation::Relu,
        weight_f16: true,
    };
    std::env::set_var("GCONV_COMPUTE_UNITS", compute_units.to_string());
    let calls = kernel
        .family
        .forward(ctx, run, kernel.variant, &mut scratch);
    std::env::remove_var("GCONV_COMPUTE_UNITS");
    let calls = calls.expect("calls");
    let split = chunks
        .iter()
        .filter(|&&r| grid_of(r, &s, 16, None, compute_units).3 > 1)
        .count();
    let size = if kernel.name().contains("[8_") { 8 } else { 16 };
    if size == 16 && kernel.variant.is_none() {
        assert_eq!(
            calls.len(),
            chunks.len() + split,
            "a reduce per split chunk"
        );
    }
    run_dispatches(ctx, &bind_all(ctx, &calls).expect("bind")).expect("run");
    let got = ctx.read_f32(&ob, 0, batch * outf).expect("read back");
    let what = format!("{kernel} b{batch} {inf}->{outf} chunks {chunks:?} units {compute_units}");
    assert_close(&what, &got, want.data(), Tolerance::F32_OP);
    split > 0
}

#[test]
fn every_soft_variant_matches_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    for v in LINEAR_COOP_SOFT.variants() {
        let k = soft(Some(v));
        // Wider than one tile along M, K not a multiple of 64, batch past one block column.
        check(ctx, (9, 200, 70), &[70], true, k, 1);
        check(ctx, (33, 68, 17), &[17], false, k, 1);
    }
}

#[test]
fn chunks_split_k_and_small_batches_match_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let k = soft(None);
    // Several row chunks (each its own call), with and without bias.
    assert!(!check(ctx, (12, 132, 40), &[24, 16], true, k, 1));
    // Few tiles and a long K: split-K and its reduce (bias and ReLU there).
    assert!(check(ctx, (3, 1028, 24), &[24], true, k, 8));
    assert!(check(ctx, (20, 2048, 50), &[30, 20], false, k, 16));
    // Batch 1 and the smallest K (forced: by default gemv_wide runs these).
    check(ctx, (1, 4, 3), &[3], true, k, 1);
    check(ctx, (2, 64, 1), &[1], true, k, 4);
}

/// Two fully connected layers of a model loaded with `Precision::F16`, both forced to the
/// soft twin at batch 10: the weights are stored as halves, the activations stay halves
/// (its half-activation twin), the output is within `F16_MODEL` of the f32 CPU.
#[test]
fn an_f16_mlp_on_the_soft_twin_keeps_f16_activations_and_matches_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let _class = common::force_class("discrete");
    let g = mlp();
    let w = Weights::random_for_tests(&g, 4);
    let x = input(&[10, 96, 1, 1], 2);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let forced = KernelChoice::new()
        .with_precision(Precision::F16)
        .linear("fc1", soft(Some("16_lin_m1n2")))
        .linear("fc2", soft(None));
    let mut m = GpuModel::with_choice(ctx.clone(), g, &w, forced).unwrap();
    assert_eq!(m.f16_linears(), [2, 2]);
    let labels = m.dispatch_labels(10).unwrap();
    let on_coop = labels
        .iter()
        .filter(|l| l.contains("linear_coop16_soft") && l.contains("::lin_"))
        .count();
    assert_eq!(on_coop, 2, "{labels:?}");
    let (activations, why) = m.activation_precision(10).unwrap();
    assert_eq!(activations, Precision::F16, "{why:?}");
    let got = m.run(&x).unwrap();
    assert_close(
        "mlp on linear_coop_soft, f16",
        got.data(),
        want.data(),
        Tolerance::F16_MODEL,
    );
}

/// `[96, 1, 1]` → flatten → fc1 (96 → 40, bias) → ReLU → fc2 (40 → 12).
fn mlp() -> Graph {
    let mut b = GraphBuilder::new("mlp", [96, 1, 1]);
    let f = b.push("flat", Op::flatten(), &[b.input()]).unwrap();
    let y = b.push("fc1", Op::linear(96, 40, true), &[f]).unwrap();
    let y = b.push("relu", Op::relu(), &[y]).unwrap();
    let y = b.push("fc2", Op::linear(40, 12, false), &[y]).unwrap();
    b.finish(y)
}

/// A model loaded in f32 that forces the tier is refused at load, naming the layer.
#[test]
fn f32_weights_forced_onto_the_tier_are_an_error_naming_the_layer() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let g = mlp();
    let w = Weights::random_for_tests(&g, 4);
    let forced = KernelChoice::new().linear("fc1", soft(None));
    let e = GpuModel::with_choice(ctx.clone(), g, &w, forced)
        .err()
        .expect("f32 weights on linear_coop_soft")
        .to_string();
    assert!(e.contains("fc1") && e.contains("halves"), "{e}");
}

/// `linear_coop` is the f16 default above batch 8 where the adapter has the matrices (16 on
/// Vulkan, 8 on Metal), `gemv_wide` at batch ≤ 8 and without matrices, never the f32 default;
/// the soft twin is listed nowhere; f16 tuning times its other tiles.
#[test]
fn linear_coop_is_chosen_only_for_halves_on_an_adapter_with_matrices() {
    let limits = wgpu::Limits {
        max_compute_workgroup_storage_size: 32 << 10,
        ..wgpu::Limits::default()
    };
    let plain = Adapter::new(AdapterClass::Discrete, &limits, 132).with_features(true, None);
    let h100 = plain.with_features(true, Some(16));
    let metal = plain.with_features(true, Some(8));
    let b32 = LinearShape {
        batch: 32,
        in_features: 25088,
        out_features: 4096,
    };
    let b4 = LinearShape { batch: 4, ..b32 };
    let f16 = |s: &LinearShape, a: &Adapter| choice::linear_default_f16(s, a).unwrap().name();
    assert_eq!(f16(&b32, &h100), "linear_coop");
    assert_eq!(f16(&b32, &metal), "linear_coop");
    assert_eq!(f16(&b32, &plain), "gemv_wide", "no matrices");
    assert_eq!(
        f16(&b4, &h100),
        "gemv_wide",
        "batch ≤ 8 stays bandwidth-bound"
    );
    assert_ne!(choice::linear_default(&b32, &h100).name(), "linear_coop");
    let odd = LinearShape {
        in_features: 30,
        ..b32
    };
    assert!(
        !LinearKernel::of(&gconv::gpu::kernels::linear_coop::LINEAR_COOP)
            .family
            .can_run(&odd, &h100, None)
    );
    let v16 = choice::linear_named("linear_coop[16_lin_m4n2]").unwrap();
    let v8 = choice::linear_named("linear_coop[8_lin_m1n2]").unwrap();
    assert!(v16.family.can_run(&b32, &h100, v16.variant));
    assert!(!v16.family.can_run(&b32, &metal, v16.variant));
    assert!(v8.family.can_run(&b32, &metal, v8.variant));
    let no_f16 = Adapter::new(AdapterClass::Discrete, &limits, 132);
    assert!(!soft(None).family.can_run(&b32, &no_f16, None));
    for class in [
        AdapterClass::Cpu,
        AdapterClass::Integrated,
        AdapterClass::Discrete,
    ] {
        let listed = choice::linear_forward_list(class);
        assert!(listed.iter().all(|f| f.name() != "linear_coop_soft"));
    }
    // The classifier at batch 32 on 132 units: 4096 rows fill 2 × 132 workgroups only with
    // the narrowest tile (256 tiles), and K is split until 8 × 132 run.
    let (t, tm, tn, ksplit, kchunk) = grid_of(4096, &b32, 16, None, 132);
    assert_eq!((t.name, tm, tn), ("lin_m1n2", 256, 1));
    assert!(ksplit * tm * tn >= 8 * 132 && kchunk % 64 == 0 && ksplit * kchunk >= 25088);
    // f16 tuning times the default and its other tiles of the adapter's size.
    let timed = candidates(&LayerProblem::Linear(b32), &h100, Precision::F16);
    let names: Vec<String> = timed.iter().map(|k| Kernel::name(*k)).collect();
    assert_eq!(names[0], "linear_coop", "{names:?}");
    assert!(
        names
            .iter()
            .filter(|n| n.starts_with("linear_coop[16_"))
            .count()
            >= 2,
        "{names:?}"
    );
    assert!(names.iter().all(|n| !n.contains("[8_")), "{names:?}");
    assert!(names.iter().any(|n| n == "gemv_wide"), "{names:?}");
    let f32_timed = candidates(&LayerProblem::Linear(b32), &h100, Precision::F32);
    assert!(f32_timed
        .iter()
        .all(|k| !k.name().starts_with("linear_coop")));
}

/// On an adapter with cooperative matrices (a real GPU, in the device run): the hardware
/// kernel, each tile of its size, matches the CPU as the soft twin does. Elsewhere (CI's
/// lavapipe) it cannot run and a model forcing it is an error naming the family.
#[test]
fn hardware_linear_coop_matches_the_cpu_where_the_adapter_has_it() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    match ctx.cooperative_matrix {
        Some(size) => {
            let prefix = format!("{size}_");
            for v in LINEAR_COOP_SOFT.variants() {
                if v.starts_with(&prefix) {
                    let k = choice::linear_named(&format!("linear_coop[{v}]")).unwrap();
                    check(ctx, (9, 200, 70), &[70], true, k, 1);
                    check(ctx, (33, 1028, 24), &[24], false, k, 8);
                }
            }
            eprintln!("linear_coop ran on {size}×{size} cooperative matrices");
        }
        None => {
            let s = LinearShape {
                batch: 16,
                in_features: 96,
                out_features: 40,
            };
            let k = choice::linear_named("linear_coop").unwrap();
            assert!(!k.family.can_run(&s, &Adapter::of(ctx), None));
            assert!(gemv_wide::fits(&s));
            let forced = KernelChoice::new()
                .with_precision(Precision::F16)
                .linear("fc1", k);
            let err = GpuModel::with_choice(
                ctx.clone(),
                mlp(),
                &Weights::random_for_tests(&mlp(), 1),
                forced,
            )
            .err()
            .expect("no cooperative matrices here")
            .to_string();
            assert!(err.contains("fc1") && err.contains("linear_coop"), "{err}");
        }
    }
}

/// As for `conv_coop`: an f16 model above batch 8 on a device with the matrices keeps
/// `linear_coop` over an f32-timed fully connected entry (which never saw the tier), an f32
/// model takes that entry, and an f16-timed entry decides over the tier. Played on lavapipe
/// by a context claiming 16 × 16 matrices (the choice only, nothing runs).
#[test]
fn f16_models_keep_linear_coop_over_f32_tuned_entries() {
    let Some(_) = common::gpu() else { return };
    let _g = common::serial();
    let _class = common::force_class("discrete");
    let mut ctx = GpuContext::new().unwrap();
    ctx.cooperative_matrix = Some(16);
    let g = mlp();
    let batch = 16;
    let entry = |kernel: &str| CachedChoice {
        kernel: kernel.into(),
        default: "linear".into(),
        speedup: 1.5,
        times_ms: vec![("linear".into(), 3.0), (kernel.into(), 2.0)],
    };
    let dir = std::env::temp_dir().join(format!("gconv-lincoop-{}", std::process::id()));
    let mut cache = TuneCache::empty(dir.join("kernels.json"));
    let key = adapter_key(&ctx.info);
    let f32_layers = tune::tunable_layers(&g, batch);
    let fc1 = f32_layers
        .iter()
        .find(|l| l.node == "fc1")
        .expect("fc1 tunable");
    cache.insert(&key, &fc1.key, entry("gemv"));
    let at = |c: &TuneCache, p: Precision| {
        tune::choice_at(c, &ctx, (&g, batch), (false, p))
            .linear_of("fc1")
            .map(|k| k.name())
    };
    assert_eq!(at(&cache, Precision::F32).as_deref(), Some("gemv"));
    assert_eq!(
        at(&cache, Precision::F16),
        None,
        "linear_coop stays the default"
    );
    let half = tune::tunable_layers_in(&g, batch, Precision::F16);
    let fc1_half = half.iter().find(|l| l.node == "fc1").expect("fc1 tunable");
    cache.insert(&key, &fc1_half.key, entry("gemv_wide"));
    assert_eq!(at(&cache, Precision::F16).as_deref(), Some("gemv_wide"));
}
