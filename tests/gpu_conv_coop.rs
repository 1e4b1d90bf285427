//! The cooperative-matrix tier (`conv_coop`) on lavapipe, which has no cooperative matrices:
//! its soft twin (`conv_coop_soft`, the same generated kernel with the three matrix
//! operations written out in plain WGSL) forced on every variant — matrix sizes 16 and 8,
//! each tile — over layers of every kind (G ∈ {1, 2, 3, 4, C}, narrow groups, odd sizes,
//! stride 2, padding, batch 1 and 3, index-addressed FLGC tables, split-K, weights packed at
//! load and on the GPU), against the CPU reference run on the same f16-rounded operands. And
//! the choice: `conv_coop` is preferred only for a model stored as halves on an adapter that
//! has the matrices, never offered where the size differs, never the soft twin by default.

mod common;

use common::tier::{graph, input, uneven_table};

use gconv::gpu::choice::{
    self, Adapter, AdapterClass, ConvKernel, ConvProblem, Family, KernelChoice,
};
use gconv::gpu::kernels::conv_coop::{plan, CONV_COOP, CONV_COOP_SOFT};
use gconv::gpu::{GpuModel, Precision};
use gconv::graph::{Conv2dSpec, Op};
use gconv::ops::GroupedConvTable;
use gconv::testing::{assert_close, Tolerance};
use gconv::{cpu, Weights};
use proptest::prelude::*;

/// `v` rounded to the nearest half, as the kernel rounds its operands.
fn round_half(v: &mut [f32]) {
    for x in v {
        *x = half::f16::from_f32(*x).to_f32();
    }
}

fn soft(variant: &str) -> ConvKernel {
    choice::conv_named(&format!("conv_coop_soft[{variant}]")).unwrap()
}

/// Every variant: each matrix size × each tile (`16_coop_m4n4` … `8_coop_m1n4`).
fn variants() -> &'static [&'static str] {
    CONV_COOP_SOFT.variants()
}

/// `op` (then ReLU6) with `kernel` forced, weights prepared at load, against the CPU on the
/// f16-rounded weights and input: what is left is summation order, so the f32 tolerance.
fn check(op: Op, chw: [usize; 3], batch: usize, kernel: ConvKernel, compute_units: &str) {
    let Some(ctx) = common::gpu() else { return };
    let g = graph(op, chw);
    let mut w = Weights::random_for_tests(&g, 5);
    if let Some(t) = w.get_mut("layer.weight") {
        round_half(t.data_mut());
    }
    let mut x = input(&[batch, chw[0], chw[1], chw[2]], 7);
    round_half(x.data_mut());
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    std::env::set_var("GCONV_COMPUTE_UNITS", compute_units);
    let forced = KernelChoice::new().conv("layer", kernel);
    let mut m = GpuModel::with_choice(ctx.clone(), g, &w, forced).unwrap();
    std::env::remove_var("GCONV_COMPUTE_UNITS");
    let labels = m.dispatch_labels(batch).unwrap();
    let soft = kernel.family.name().ends_with("_soft");
    assert!(
        labels
            .iter()
            .any(|l| l.contains("::coop_") && l.contains("_soft::") == soft),
        "forced {kernel} but ran {labels:?}"
    );
    let got = m.run(&x).unwrap();
    let what = format!("{kernel} {chw:?} b{batch} units {compute_units} ({labels:?})");
    assert_close(&what, got.data(), want.data(), Tolerance::F32_OP);
}

#[test]
fn every_soft_variant_matches_the_cpu_on_every_kind_of_layer() {
    let Some(_) = common::gpu() else { return };
    let _g = common::serial();
    let layers: Vec<(Op, [usize; 3])> = vec![
        // Dense, wider than one block row of 16 (two tiles along M for the narrow tiles).
        (
            Op::Conv2d(Conv2dSpec::square(24, 40, 3, 1, 1).bias(true)),
            [24, 9, 11],
        ),
        // Narrow groups (3 filters each: a block row padded), stride 2, odd plane.
        (
            Op::Conv2d(Conv2dSpec::square(12, 12, 3, 2, 1).groups(4)),
            [12, 11, 7],
        ),
        // 1×1 (the pointwise im2col), G = 3, bias.
        (
            Op::Conv2d(Conv2dSpec::square(6, 9, 1, 1, 0).groups(3).bias(true)),
            [6, 5, 7],
        ),
        // G = 2 with 20 filters per group (segments of 32: two groups in a 64-row tile).
        (
            Op::Conv2d(Conv2dSpec::square(8, 40, 3, 1, 1).groups(2)),
            [8, 6, 5],
        ),
        // Uneven index-addressed groups (exported FLGC), one without inputs or filters.
        (Op::GroupedConvTable(uneven_table()), [10, 8, 9]),
    ];
    assert_eq!(variants().len(), 6, "2 sizes × 3 tiles: {:?}", variants());
    for (op, chw) in layers {
        for &v in variants() {
            for batch in [1, 3] {
                check(op.clone(), chw, batch, soft(v), "1");
            }
        }
    }
}

/// Split-K: a deep layer on a small plane with a large compute-unit count splits K (each
/// split's partial sums reduced by `igemm_reduce`); training's path packs the natural
/// weights on the GPU (`igemm_pack` as halves).
#[test]
fn split_k_and_natural_weights_match_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let deep = Conv2dSpec::square(64, 32, 3, 1, 1).bias(true);
    let p = plan(gconv::gpu::family::ConvOp::Conv2d(&deep), 16, None).unwrap();
    assert!(p.split(7 * 5, 2 * 256).ksplit > 1, "the layer splits K");
    for v in ["16_coop_m2n4", "8_coop_m4n4"] {
        check(Op::Conv2d(deep.clone()), [64, 7, 5], 1, soft(v), "256");
    }
    // Natural weights (training's path): the family's own forward, `igemm_pack` as halves.
    use gconv::gpu::family::ConvRun;
    use gconv::gpu::launch::bind_all;
    use gconv::gpu::{run_dispatches, Arg};
    let spec = Conv2dSpec::square(4, 20, 3, 1, 1).bias(true);
    let g = graph(Op::Conv2d(spec.clone()), [4, 6, 6]);
    let mut w = Weights::random_for_tests(&g, 2);
    round_half(w.get_mut("layer.weight").unwrap().data_mut());
    let mut x = input(&[2, 4, 6, 6], 3);
    round_half(x.data_mut());
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let up = |l: &str, d: &[f32]| Arg::whole(&ctx.upload(l, d).unwrap());
    let out = ctx
        .storage_buffer("out", (want.numel() * 4) as u64)
        .unwrap();
    let k = soft("16_coop_m2n4");
    let run = ConvRun {
        label: "layer",
        spec: &spec,
        batch: 2,
        in_hw: [6, 6],
        x: up("x", x.data()),
        out: Arg::whole(&out),
        weight: Some(up("w", w.get("layer.weight").unwrap().data())),
        bias: Some(up("b", w.get("layer.bias").unwrap().data())),
        act: gconv::ops::Activation::Relu6,
    };
    let mut scratch = |l: &str, n: usize| Ok(Arg::whole(&ctx.storage_buffer(l, (n * 4) as u64)?));
    let calls = k.family.forward(ctx, run, k.variant, &mut scratch).unwrap();
    assert_eq!(calls.len(), 2, "igemm_pack, then the tile");
    run_dispatches(ctx, &bind_all(ctx, &calls).unwrap()).unwrap();
    let got = ctx.read_f32(&out, 0, want.numel()).unwrap();
    assert_close("natural weights", &got, want.data(), Tolerance::F32_OP);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, failure_persistence: None, ..ProptestConfig::default() })]

    /// Generated layers: G from {1, 2, 3, 4, C}, 1–20 filters per group, kernel 1 or 3,
    /// stride 1 or 2, padding, odd sizes, batch 1 or 3, every variant.
    #[test]
    fn soft_coop_matches_the_cpu_on_generated_layers(
        cg in 1usize..5, ng in 1usize..21, gsel in 0usize..5, k in prop::sample::select(vec![1usize, 3]),
        s in 1usize..3, pad in 0usize..2, h in 3usize..10, w in 3usize..10,
        batch in prop::sample::select(vec![1usize, 3]), v in 0usize..6, bias in any::<bool>(),
    ) {
        let Some(_) = common::gpu() else { return Ok(()) };
        let _g = common::serial();
        let g = [1, 2, 3, 4, cg * 2][gsel];
        let c = if gsel == 4 { g } else { cg * g };
        let n = if gsel == 4 { g } else { ng * g };
        let spec = Conv2dSpec::square(c, n, k, s, pad.min(k / 2)).groups(g).bias(bias);
        prop_assume!(spec.out_hw(h, w).is_some());
        check(Op::Conv2d(spec), [c, h, w], batch, soft(variants()[v]), "1");
    }
}

/// `conv_coop` is the default only for a model stored as halves on an adapter opened with
/// cooperative matrices, on non-depthwise layers, with a variant of the adapter's size; the
/// soft twin never is, and is listed in no class.
#[test]
fn conv_coop_is_chosen_only_for_halves_on_an_adapter_with_matrices() {
    let limits = wgpu::Limits {
        max_compute_workgroup_storage_size: 32 << 10,
        ..wgpu::Limits::default()
    };
    let plain = Adapter::new(AdapterClass::Discrete, &limits, 132).with_features(true, None);
    let h100 = plain.with_features(true, Some(16));
    let metal = plain.with_features(true, Some(8));
    let dense = Conv2dSpec::square(64, 64, 3, 1, 1);
    let mut p = ConvProblem::conv2d(&dense, 1, [14, 14], true);
    let name = |p: &ConvProblem, a: &Adapter| choice::conv_default(p, a).name();
    assert_eq!(
        name(&p, &h100),
        "conv_igemm",
        "f32 weights stay on conv_igemm"
    );
    p.half_weights = true;
    assert_eq!(name(&p, &h100), "conv_coop");
    assert_eq!(name(&p, &metal), "conv_coop");
    assert_eq!(name(&p, &plain), "conv_igemm", "no matrices");
    let dw = ConvProblem {
        half_weights: true,
        ..ConvProblem::conv2d(&dense.clone().groups(64), 1, [14, 14], true)
    };
    assert_eq!(name(&dw, &h100), "conv_dw");
    let v16 = choice::conv_named("conv_coop[16_coop_m4n4]").unwrap();
    let v8 = choice::conv_named("conv_coop[8_coop_m1n4]").unwrap();
    assert!(choice::conv_can_run(v16, &p, &h100) && !choice::conv_can_run(v16, &p, &metal));
    assert!(choice::conv_can_run(v8, &p, &metal) && !choice::conv_can_run(v8, &p, &h100));
    let no_f16 = Adapter::new(AdapterClass::Discrete, &limits, 132);
    assert!(!choice::conv_can_run(soft("16_coop_m4n4"), &p, &no_f16));
    assert!(choice::conv_can_run(soft("16_coop_m4n4"), &p, &plain));
    for class in [
        AdapterClass::Cpu,
        AdapterClass::Integrated,
        AdapterClass::Discrete,
    ] {
        let listed = choice::conv_forward_list(class);
        assert!(listed.iter().all(|f| f.name() != CONV_COOP_SOFT_NAME));
    }
    assert_eq!(CONV_COOP.name(), "conv_coop");
    // A model loaded with Precision::F16 here (lavapipe: no matrices) does not take it.
    if let Some(ctx) = common::gpu() {
        let _g = common::serial();
        let _class = common::force_class("discrete");
        assert_eq!(
            ctx.cooperative_matrix, None,
            "lavapipe has no cooperative matrices"
        );
        let g = graph(Op::Conv2d(dense.clone()), [64, 8, 8]);
        let w = Weights::random_for_tests(&g, 1);
        let forced = KernelChoice::new().with_precision(Precision::F16);
        let mut m = GpuModel::with_choice(ctx.clone(), g, &w, forced).unwrap();
        let labels = m.dispatch_labels(1).unwrap().join(" ");
        assert!(
            labels.contains("[conv_igemm") && !labels.contains("conv_coop"),
            "{labels}"
        );
    }
}

const CONV_COOP_SOFT_NAME: &str = "conv_coop_soft";

/// The plan keeps a block row inside one group: a segment is at least the matrix size, so a
/// group of 3 filters pads its rows and every segment of a tile fits its block rows.
#[test]
fn the_plan_keeps_every_block_row_in_one_group() {
    use gconv::gpu::family::ConvOp;
    let narrow = Conv2dSpec::square(32, 24, 3, 1, 1).groups(8);
    for size in [16, 8] {
        let p = plan(ConvOp::Conv2d(&narrow), size, None).unwrap();
        assert!(p.ms >= size as usize && p.ms % size as usize == 0, "{p:?}");
        assert_eq!(p.bk, 16);
        assert!(p.s * p.ms <= p.tile.bm);
    }
    let t: GroupedConvTable = uneven_table();
    let p = plan(ConvOp::Table(&t), 16, None).unwrap();
    assert_eq!(p.tile.bm % 16, 0);
    assert_eq!(CONV_COOP_SOFT.name(), CONV_COOP_SOFT_NAME);
}

/// On an adapter with cooperative matrices (a real GPU, in the device run): the hardware
/// kernel, each tile of its size, matches the CPU as the soft twin does. Elsewhere (CI's
/// lavapipe) forcing it is an error naming the family: it is never offered there.
#[test]
fn hardware_coop_matches_the_cpu_where_the_adapter_has_it() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let dense = Op::Conv2d(Conv2dSpec::square(24, 40, 3, 1, 1).bias(true));
    match ctx.cooperative_matrix {
        Some(size) => {
            let prefix = format!("{size}_");
            for v in variants().iter().filter(|v| v.starts_with(&prefix)) {
                let k = choice::conv_named(&format!("conv_coop[{v}]")).unwrap();
                check(dense.clone(), [24, 9, 11], 3, k, "1");
                check(Op::GroupedConvTable(uneven_table()), [10, 8, 9], 1, k, "1");
            }
            eprintln!("conv_coop ran on {size}×{size} cooperative matrices");
        }
        None => {
            let g = graph(dense, [24, 9, 11]);
            let w = Weights::random_for_tests(&g, 1);
            let k = choice::conv_named("conv_coop").unwrap();
            let forced = KernelChoice::new().conv("layer", k);
            let err = GpuModel::with_choice(ctx.clone(), g, &w, forced)
                .err()
                .expect("no cooperative matrices here")
                .to_string();
            assert!(err.contains("conv_coop cannot run"), "{err}");
        }
    }
}

/// A whole grouped VGG stack loaded with `Precision::F16` and every convolution forced to the
/// soft twin (the discrete class for the rest): activations stay halves through the soft
/// twin's own half-activation twin, and the output is within `F16_MODEL` of the f32 CPU.
#[test]
fn a_whole_model_on_the_soft_twin_keeps_f16_activations_and_matches_the_cpu() {
    use gconv::zoo::{Arch, ModelSpec, Scheme};
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let _class = common::force_class("discrete");
    let mut spec = ModelSpec::load("vgg11bn")
        .unwrap()
        .with_scheme(&Scheme::load("E").unwrap())
        .unwrap();
    spec.input = [3, 32, 32];
    spec.width = 0.5;
    spec.num_classes = 10;
    if let Arch::Vgg { classifier, .. } = &mut spec.arch {
        *classifier = vec![64, 32];
    }
    let g = spec.build().unwrap();
    let w = Weights::random_for_tests(&g, 1);
    let x = input(&[2, 3, 32, 32], 3);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let mut forced = KernelChoice::new().with_precision(Precision::F16);
    let mut convs = 0;
    for n in &g.nodes {
        if matches!(n.op, Op::Conv2d(_)) {
            forced = forced.conv(&n.name, choice::conv_named("conv_coop_soft").unwrap());
            convs += 1;
        }
    }
    assert!(convs >= 8, "{convs} convolutions");
    let mut m = GpuModel::with_choice(ctx.clone(), g, &w, forced).unwrap();
    let labels = m.dispatch_labels(2).unwrap();
    let on_coop = labels.iter().filter(|l| l.contains("_soft::coop_")).count();
    assert_eq!(on_coop, convs, "{labels:?}");
    let (activations, why) = m.activation_precision(2).unwrap();
    assert_eq!(activations, Precision::F16, "{why:?}");
    let got = m.run(&x).unwrap();
    assert_close(
        "vgg11bn-E on conv_coop_soft, f16",
        got.data(),
        want.data(),
        Tolerance::F16_MODEL,
    );
}

/// Which adapters the tier opens a device for: square f16 × f16 + f32 shapes, 16 preferred
/// over 8, with `SHADER_F16` and 32-wide subgroups only (what NVIDIA's Vulkan driver and
/// Metal report would get 16 and 8; an AMD adapter with 32–64-wide subgroups, an f16 → f16
/// shape only or a rectangular one get none).
#[test]
fn the_cooperative_matrix_size_follows_the_adapters_report() {
    use gconv::gpu::context::cooperative_size_of;
    use wgpu::{CooperativeMatrixProperties as Shape, CooperativeScalarType as T, Features};
    let shape = |m: u32, n: u32, k: u32, ab: T, cr: T| Shape {
        m_size: m,
        n_size: n,
        k_size: k,
        ab_type: ab,
        cr_type: cr,
        saturating_accumulation: false,
    };
    let all = Features::EXPERIMENTAL_COOPERATIVE_MATRIX | Features::SHADER_F16;
    let nvidia = [
        shape(16, 8, 16, T::F16, T::F32),
        shape(16, 16, 16, T::F16, T::F16),
        shape(16, 16, 16, T::F16, T::F32),
        shape(8, 8, 8, T::F16, T::F32),
    ];
    let metal = [
        shape(8, 8, 8, T::F32, T::F32),
        shape(8, 8, 8, T::F16, T::F16),
        shape(8, 8, 8, T::F16, T::F32),
    ];
    assert_eq!(cooperative_size_of(all, [32, 32], &nvidia), Some(16));
    assert_eq!(cooperative_size_of(all, [32, 32], &metal), Some(8));
    assert_eq!(
        cooperative_size_of(all, [32, 64], &nvidia),
        None,
        "64-wide subgroups"
    );
    assert_eq!(cooperative_size_of(all, [8, 8], &nvidia), None);
    let no_f16 = Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
    assert_eq!(cooperative_size_of(no_f16, [32, 32], &nvidia), None);
    assert_eq!(
        cooperative_size_of(Features::SHADER_F16, [32, 32], &nvidia),
        None
    );
    let odd = [
        shape(16, 8, 16, T::F16, T::F32),
        shape(16, 16, 16, T::F16, T::F16),
        shape(8, 8, 8, T::F32, T::F32),
    ];
    assert_eq!(cooperative_size_of(all, [32, 32], &odd), None);
    assert_eq!(cooperative_size_of(all, [32, 32], &[]), None);
}

/// A device that reports cooperative matrices but does not compile `conv_coop`'s shader
/// (wgpu's support is experimental) runs `conv_igemm` on f16 weights instead of failing the
/// load. Played on lavapipe by a context that claims 16 × 16 matrices it was not opened with:
/// the probe fails, the layers fall back, the output is the f16 one.
#[test]
fn a_device_that_rejects_the_shader_falls_back_to_conv_igemm() {
    use gconv::gpu::kernels::conv_coop::hardware_compiles;
    use gconv::gpu::GpuContext;
    let Some(_) = common::gpu() else { return };
    let _g = common::serial();
    let _class = common::force_class("discrete");
    let mut ctx = GpuContext::new().unwrap();
    assert_eq!(ctx.cooperative_matrix, None);
    ctx.cooperative_matrix = Some(16);
    let ctx = std::sync::Arc::new(ctx);
    let why = hardware_compiles(&ctx, 16).unwrap_err();
    assert!(why.contains("conv_coop16"), "{why}");
    assert_eq!(
        ctx.check().map_err(|e| e.to_string()),
        Ok(()),
        "the probe's error was caught"
    );
    let dense = Conv2dSpec::square(24, 40, 3, 1, 1).bias(true);
    let g = graph(Op::Conv2d(dense), [24, 9, 11]);
    let w = Weights::random_for_tests(&g, 1);
    let x = input(&[2, 24, 9, 11], 2);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let forced = KernelChoice::new().with_precision(Precision::F16);
    let mut m = GpuModel::with_choice(ctx.clone(), g, &w, forced).unwrap();
    assert_eq!(m.f16_convs(), [1, 1]);
    let labels = m.dispatch_labels(2).unwrap().join(" ");
    assert!(
        labels.contains("[conv_igemm_f16") && !labels.contains("coop"),
        "{labels}"
    );
    let got = m.run(&x).unwrap();
    assert_close("fallback", got.data(), want.data(), Tolerance::F16_OP);
}
