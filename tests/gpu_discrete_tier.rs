//! The discrete-GPU tier on lavapipe: every family of the real-GPU candidate lists
//! (`conv_dw`, `conv_igemm` with each of its tiles, `gemv_wide`) forced on layers of every
//! kind — G ∈ {1, 2, 3, 4, C}, narrow groups, odd sizes, stride 2, padding, dilation,
//! batch 1 and 3, index-addressed FLGC tables — against the CPU reference, with weights
//! prepared at load (inference) and as they are (training's path), split-K included; and
//! whole models with `GCONV_ADAPTER_CLASS=discrete`, so the tier's default choices run.

mod common;

use common::tier::{fc_graph, graph, igemm, input, uneven_table};

use gconv::gpu::choice::{self, Adapter, AdapterClass, ConvKernel, KernelChoice};
use gconv::gpu::kernels::conv_igemm::{self, IgemmConv, IgemmIo, IgemmWeight, TILES};
use gconv::gpu::launch::bind_all;
use gconv::gpu::{run_dispatches, Arg, GpuContext, GpuModel};
use gconv::graph::{Conv2dSpec, Op};
use gconv::testing::{assert_close, Tolerance};
use gconv::{cpu, Weights};
use proptest::prelude::*;

/// Runs `op` on the GPU with `kernel` forced and compares with the CPU.
fn check_forced(
    ctx: &std::sync::Arc<GpuContext>,
    op: Op,
    chw: [usize; 3],
    batch: usize,
    kernel: ConvKernel,
) {
    let g = graph(op, chw);
    let w = Weights::random_for_tests(&g, 5);
    let x = input(&[batch, chw[0], chw[1], chw[2]], 7);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let forced = KernelChoice::new().conv("layer", kernel);
    let mut m = GpuModel::with_choice(ctx.clone(), g, &w, forced).unwrap();
    let family = kernel.family.name();
    let labels = m.dispatch_labels(batch).unwrap();
    assert!(
        labels.iter().any(|l| l.contains(&format!("[{family}::"))),
        "forced {kernel} but ran {labels:?}"
    );
    let got = m.run(&x).unwrap();
    assert_close(
        &format!("{kernel} {chw:?} b{batch}"),
        got.data(),
        want.data(),
        Tolerance::F32_OP,
    );
}

#[test]
fn every_igemm_tile_matches_the_cpu_on_every_kind_of_layer() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let layers: Vec<(Op, [usize; 3])> = vec![
        (
            Op::Conv2d(Conv2dSpec::square(16, 24, 3, 1, 1).groups(4).bias(true)),
            [16, 9, 11],
        ),
        (
            Op::Conv2d(Conv2dSpec::square(12, 12, 3, 2, 1).groups(3)),
            [12, 11, 7],
        ),
        (
            Op::Conv2d(Conv2dSpec::square(6, 9, 1, 1, 0).groups(3).bias(true)),
            [6, 5, 7],
        ),
        (
            Op::Conv2d(Conv2dSpec::square(8, 8, 3, 1, 1).groups(8)),
            [8, 6, 6],
        ),
        (Op::GroupedConvTable(uneven_table()), [10, 8, 9]),
    ];
    for (op, chw) in layers {
        for tile in 0..TILES.len() {
            for batch in [1, 3] {
                check_forced(ctx, op.clone(), chw, batch, igemm(tile));
            }
        }
    }
}

#[test]
fn conv_dw_matches_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let dw = choice::conv_named("conv_dw").unwrap();
    let mut dilated = Conv2dSpec::square(5, 5, 3, 1, 2).groups(5).bias(true);
    dilated.dilation = [2, 2];
    for (spec, chw) in [
        (
            Conv2dSpec::square(8, 8, 3, 1, 1).groups(8).bias(true),
            [8, 19, 23],
        ),
        (Conv2dSpec::square(6, 6, 3, 2, 1).groups(6), [6, 17, 33]),
        (Conv2dSpec::square(4, 4, 5, 1, 2).groups(4), [4, 9, 7]),
        (dilated, [5, 12, 10]),
    ] {
        for batch in [1, 3] {
            check_forced(ctx, Op::Conv2d(spec.clone()), chw, batch, dw);
        }
    }
}

/// `conv_igemm` on natural weights (the training path: `igemm_pack` on the GPU) and with
/// split-K forced by a large slot count, against the CPU.
fn igemm_direct(
    ctx: &GpuContext,
    spec: &Conv2dSpec,
    hw: [usize; 2],
    batch: usize,
    (tile, slots, natural): (usize, usize, bool),
) {
    let g = graph(Op::Conv2d(spec.clone()), [spec.in_channels, hw[0], hw[1]]);
    let w = Weights::random_for_tests(&g, 3);
    let x = input(&[batch, spec.in_channels, hw[0], hw[1]], 11);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let plan = IgemmConv::conv2d(spec, Some(TILES[tile])).unwrap();
    let layer = plan.upload(ctx, "layer").unwrap();
    let up = |l: &str, d: &[f32]| Arg::whole(&ctx.upload(l, d).unwrap());
    let natural_w = w.get("layer.weight").unwrap().data();
    let weight = if natural {
        IgemmWeight::Natural(up("w", natural_w))
    } else {
        IgemmWeight::Packed(up("wp", &plan.pack(natural_w).unwrap()))
    };
    let [oh, ow] = spec.out_hw(hw[0], hw[1]).unwrap();
    let out = ctx
        .storage_buffer("out", (batch * spec.out_channels * oh * ow * 4) as u64)
        .unwrap();
    let io = IgemmIo {
        x: up("x", x.data()),
        out: Arg::whole(&out),
        weight,
        bias: spec
            .bias
            .then(|| up("b", w.get("layer.bias").unwrap().data())),
    };
    let run = gconv::gpu::geometry::ConvGeom {
        batch,
        in_hw: hw,
        act: gconv::ops::Activation::Relu6,
    };
    let mut scratch = |l: &str, n: usize| Ok(Arg::whole(&ctx.storage_buffer(l, (n * 4) as u64)?));
    let calls = conv_igemm::forward(ctx, "layer", (&layer, slots), io, run, &mut scratch).unwrap();
    let split = plan.split(batch * oh * ow, slots).ksplit;
    assert_eq!(
        calls.len(),
        1 + usize::from(natural) + usize::from(split > 1)
    );
    run_dispatches(ctx, &bind_all(ctx, &calls).unwrap()).unwrap();
    let got = ctx.read_f32(&out, 0, want.numel()).unwrap();
    let what = format!(
        "igemm {} {spec:?} {hw:?} b{batch} slots {slots} natural {natural} split {split}",
        TILES[tile].name
    );
    assert_close(&what, &got, want.data(), Tolerance::F32_OP);
}

#[test]
fn igemm_split_k_and_natural_weights_match_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    // A deep 3×3 layer on a small plane: many K steps, few tiles — split-K's case.
    let deep = Conv2dSpec::square(64, 32, 3, 1, 1).bias(true);
    let mut splits = 0;
    for (tile, slots, natural) in [
        (1, 1, false),
        (1, 512, false),
        (1, 512, true),
        (0, 512, true),
        (3, 64, false),
    ] {
        igemm_direct(ctx, &deep, [7, 5], 1, (tile, slots, natural));
        let plan = IgemmConv::conv2d(&deep, Some(TILES[tile])).unwrap();
        splits += usize::from(plan.split(35, slots).ksplit > 1);
    }
    assert!(splits >= 3, "split-K must be exercised");
    igemm_direct(
        ctx,
        &Conv2dSpec::square(8, 12, 3, 2, 1).groups(2),
        [9, 11],
        3,
        (2, 256, true),
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    /// Property-generated layers: G from {1, 2, 3, 4, C}, 1–3 filters... per group,
    /// kernel 1 or 3, stride 1 or 2, padding, dilation, odd sizes, batch 1 or 3, every tile,
    /// split or not, packed or natural weights.
    #[test]
    fn igemm_matches_the_cpu_on_generated_layers(
        cg in 1usize..5, ng in 1usize..7, gsel in 0usize..5, k in prop::sample::select(vec![1usize, 3]),
        s in 1usize..3, pad in 0usize..2, dil in 1usize..3, h in 3usize..10, w in 3usize..10,
        batch in prop::sample::select(vec![1usize, 3]), tile in 0usize..4, slots in prop::sample::select(vec![1usize, 300]),
        natural in any::<bool>(), bias in any::<bool>(),
    ) {
        let Some(ctx) = common::gpu() else { return Ok(()) };
        let _g = common::serial();
        let g = [1, 2, 3, 4, 6][gsel];
        let mut spec = Conv2dSpec::square(cg * g, ng * g, k, s, pad.min(k / 2)).groups(g).bias(bias);
        spec.dilation = [dil, dil];
        prop_assume!(spec.out_hw(h, w).is_some());
        igemm_direct(ctx, &spec, [h, w], batch, (tile, slots, natural));
    }
}

#[test]
fn gemv_wide_matches_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    for (inf, outf, batch) in [(36, 20, 1), (64, 7, 3), (128, 33, 5), (8, 1, 8)] {
        let g = fc_graph(inf, outf);
        let w = Weights::random_for_tests(&g, 9);
        let x = input(&[batch, inf, 1, 1], 4);
        let want = cpu::run_graph(&g, &w, &x).unwrap();
        let forced = KernelChoice::new().linear("fc", choice::linear_named("gemv_wide").unwrap());
        let mut m = GpuModel::with_choice(ctx.clone(), g, &w, forced).unwrap();
        let labels = m.dispatch_labels(batch).unwrap();
        assert!(
            labels.iter().any(|l| l.contains("[gemv_wide::")),
            "{labels:?}"
        );
        let got = m.run(&x).unwrap();
        assert_close(
            &format!("gemv_wide {inf}->{outf} b{batch}"),
            got.data(),
            want.data(),
            Tolerance::F32_OP,
        );
    }
}

/// With the discrete class forced, whole models take the tier's kernels by default and
/// match the CPU: a grouped VGG stack with its classifier, a ResNet-DSC-SGC block stack and
/// MobileNetV2 (depthwise, narrow 1×1 groups, ReLU6).
#[test]
fn whole_models_on_the_discrete_tier_match_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    std::env::set_var("GCONV_ADAPTER_CLASS", "discrete");
    let a = Adapter::of(ctx);
    assert_eq!(a.class, AdapterClass::Discrete);
    use gconv::zoo::{Arch, ModelSpec, Scheme};
    use gconv::{LoadOptions, Runtime};
    let reduced = |name: &str, scheme: Option<&str>, width: f32| {
        let mut s = ModelSpec::load(name).unwrap();
        if let Some(sc) = scheme {
            s = s.with_scheme(&Scheme::load(sc).unwrap()).unwrap();
        }
        s.input = [3, 32, 32];
        s.width = width;
        s.num_classes = 10;
        if let Arch::Vgg { classifier, .. } = &mut s.arch {
            *classifier = vec![64, 32];
        }
        s
    };
    let rt = Runtime::with_context(ctx.clone());
    for spec in [
        // Width 0.5 keeps scheme E's 32 groups dividing stage 2's input channels.
        reduced("vgg11bn", Some("E"), 0.5),
        reduced("resnet50-dsc-sgc", None, 0.25),
        reduced("mobilenetv2", None, 0.25),
    ] {
        let g = spec.build().unwrap();
        let w = Weights::random_for_tests(&g, 1);
        let x = input(&[2, 3, 32, 32], 3);
        let want = cpu::run_graph(&g, &w, &x).unwrap();
        let mut m = rt.load_graph(g, w, &LoadOptions::default()).unwrap();
        let got = m.run(&x).unwrap();
        assert_close(&spec.name, got.data(), want.data(), Tolerance::F32_MODEL);
        let labels = m.gpu_model().unwrap().dispatch_labels(2).unwrap().join(" ");
        assert!(labels.contains("[conv_igemm::"), "{}: {labels}", spec.name);
        if spec.name.starts_with("mobilenet") {
            assert!(labels.contains("[conv_dw::"), "{}: {labels}", spec.name);
        }
    }
    std::env::remove_var("GCONV_ADAPTER_CLASS");
}

/// A training step with the discrete class forced: the forward runs `conv_igemm` and
/// `conv_dw` on weights that change every step (packed on the GPU by `igemm_pack`), the
/// gradients the real-GPU lists' kernels; losses and weights equal the CPU trainer's.
#[test]
fn training_steps_on_the_discrete_tier_match_the_cpu() {
    use gconv::train::{GpuTrainer, Train, TrainConfig, Trainer};
    use gconv::zoo::{Arch, ModelSpec, StemKind};
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    std::env::set_var("GCONV_ADAPTER_CLASS", "discrete");
    let mut spec = ModelSpec::load("resnet50-dsc-sgc").unwrap();
    spec.input = [1, 12, 12];
    spec.width = 0.125;
    spec.num_classes = 4;
    if let Arch::Resnet { stem, layers, .. } = &mut spec.arch {
        *stem = StemKind::Small;
        *layers = [1, 1, 1, 1];
    }
    let graph = spec.build().unwrap();
    let w = Weights::init(&graph, 2);
    let cfg = TrainConfig {
        lr: 0.05,
        seed: 1,
        ..TrainConfig::default()
    };
    let mut cpu_t = Trainer::new(graph.clone(), w.clone(), cfg).unwrap();
    let mut gpu_t = GpuTrainer::new(ctx.clone(), graph, w, cfg).unwrap();
    let tol = Tolerance {
        atol: 2e-3,
        rtol: 1e-2,
    };
    for s in 0..2 {
        let x = input(&[3, 1, 12, 12], 20 + s);
        let labels = [0, 1, 3];
        let a = cpu_t.train_step(&x, &labels).unwrap();
        let b = gpu_t.train_step(&x, &labels).unwrap();
        gconv::testing::check_close("loss", &[b.loss], &[a.loss], tol).unwrap();
    }
    let got = gpu_t.weights().unwrap();
    for (k, want) in cpu_t.weights().iter() {
        let g = got.get(k).unwrap();
        gconv::testing::check_close(k, g.data(), want.data(), tol).unwrap();
    }
    let profile = gpu_t
        .profile_step(&input(&[3, 1, 12, 12], 30), &[1, 2, 0])
        .unwrap();
    std::env::remove_var("GCONV_ADAPTER_CLASS");
    let labels: Vec<&str> = profile.iter().map(|(l, _)| l.as_str()).collect();
    assert!(
        labels
            .iter()
            .any(|l| l.contains("[conv_igemm::igemm_pack]")),
        "{labels:?}"
    );
    assert!(
        labels.iter().any(|l| l.contains("[conv_dw::")),
        "{labels:?}"
    );
}

/// An index-addressed layer whose every group is dead (no input channel; what the permutation
/// fold leaves of an exported table of zero-weight groups): every kernel that runs tables packs
/// no weight and stores the bias, as the CPU does (found by the property run: `conv_igemm`,
/// `conv_tiled` and `conv_wgmem` refused the empty packing).
#[test]
fn every_table_kernel_runs_a_table_whose_every_group_is_dead() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let r = |in_start, in_len, out_start, out_len| gconv::graph::GroupRange {
        in_start,
        in_len,
        out_start,
        out_len,
    };
    let table = gconv::ops::GroupedConvTable {
        spec: Conv2dSpec::square(1, 4, 1, 2, 0).groups(2).bias(true),
        table: vec![r(0, 0, 0, 2), r(0, 0, 2, 2)],
        in_index: vec![0],
        out_index: vec![0, 1, 2, 3],
    };
    let others = ["conv_fast", "conv_tiled", "conv_wgmem"].map(|n| choice::conv_named(n).unwrap());
    for kernel in (0..TILES.len()).map(igemm).chain(others) {
        check_forced(
            ctx,
            Op::GroupedConvTable(table.clone()),
            [1, 3, 5],
            2,
            kernel,
        );
    }
}
