//! Every candidate of `gpu::choice::CONV_FORWARD`, forced on a layer through
//! `GpuModel::with_choice`, matches the CPU reference on a grouped, a depthwise, a strided
//! and an index-addressed (exported FLGC table) layer, wherever it can run; a forced kernel
//! that cannot run the layer is an error naming it. Also: the default choice per adapter
//! class, and forced linear kernels.

mod common;

use gconv::gpu::choice::{self, Adapter, AdapterClass, ConvKernel, ConvProblem, KernelChoice};
use gconv::gpu::geometry::LinearShape;
use gconv::gpu::kernels::gemv::GemvShape;
use gconv::gpu::GpuModel;
use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, GroupRange, Op};
use gconv::ops::{Flatten, GroupedConvTable, Linear};
use gconv::testing::{assert_close, Tolerance};
use gconv::{cpu, Tensor, Weights};

fn input(shape: &[usize], seed: u32) -> Tensor {
    Tensor::from_fn(shape, |i| {
        (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2000) as f32 / 1000.0 - 1.0
    })
}

/// A one-layer graph: the op at node "layer", then ReLU6 (fused into its epilogue).
fn graph(op: Op, chw: [usize; 3]) -> Graph {
    let mut b = GraphBuilder::new("candidates", chw);
    let y = b.push("layer", op, &[b.input()]).unwrap();
    let y = b.push("relu6", Op::relu6(), &[y]).unwrap();
    b.finish(y)
}

/// The layers: (name, op, input [C, H, W]).
fn layers() -> Vec<(&'static str, Op, [usize; 3])> {
    let table = GroupedConvTable {
        spec: Conv2dSpec::square(10, 14, 3, 1, 1).groups(4).bias(true),
        table: vec![
            GroupRange {
                in_start: 0,
                in_len: 4,
                out_start: 0,
                out_len: 9,
            },
            GroupRange {
                in_start: 4,
                in_len: 0,
                out_start: 9,
                out_len: 2,
            },
            GroupRange {
                in_start: 4,
                in_len: 3,
                out_start: 11,
                out_len: 0,
            },
            GroupRange {
                in_start: 7,
                in_len: 3,
                out_start: 11,
                out_len: 3,
            },
        ],
        in_index: vec![7, 2, 9, 0, 4, 1, 8, 3, 6, 5],
        out_index: vec![12, 0, 5, 3, 9, 1, 11, 7, 2, 10, 4, 8, 6, 13],
    };
    vec![
        (
            "grouped",
            Op::Conv2d(Conv2dSpec::square(16, 24, 3, 1, 1).groups(4).bias(true)),
            [16, 9, 11],
        ),
        (
            "depthwise",
            Op::Conv2d(Conv2dSpec::square(12, 12, 3, 1, 1).groups(12)),
            [12, 10, 7],
        ),
        (
            "strided",
            Op::Conv2d(Conv2dSpec::square(8, 16, 3, 2, 1).groups(2).bias(true)),
            [8, 11, 13],
        ),
        ("flgc table", Op::GroupedConvTable(table), [10, 8, 9]),
    ]
}

fn problem(op: &Op, chw: [usize; 3], batch: usize) -> ConvProblem {
    let hw = [chw[1], chw[2]];
    match op {
        Op::Conv2d(s) => ConvProblem::conv2d(s, batch, hw, true),
        Op::GroupedConvTable(t) => ConvProblem::table(t, batch, hw),
        _ => unreachable!("conv layers only"),
    }
}

/// The shader each forward kernel runs.
fn shader_of(k: ConvKernel) -> &'static str {
    match k.family.name() {
        "conv_fast" => "[conv_fast::",
        "conv_wgmem" => "[conv_wgmem::",
        "conv_tiled" => "[conv_tiled::",
        "conv_igemm" => "[conv_igemm::",
        "conv_dw" => "[conv_dw::",
        "conv_coop_soft" => "_soft::coop_",
        "conv_coop" => "::coop_",
        _ => "[conv::",
    }
}

#[test]
fn every_conv_candidate_matches_the_cpu_when_forced() {
    let Some(ctx) = common::gpu() else { return };
    let _guard = common::serial();
    let adapter = Adapter::of(ctx);
    let batch = 2;
    for (name, op, chw) in layers() {
        let g = graph(op.clone(), chw);
        let w = Weights::random_for_tests(&g, 11);
        let x = input(&[batch, chw[0], chw[1], chw[2]], 3);
        let want = cpu::run_graph(&g, &w, &x).unwrap();
        let p = problem(&op, chw, batch);
        let mut ran = 0;
        for f in choice::conv_forward_families() {
            let kernel = ConvKernel::of(f);
            let forced = KernelChoice::new().conv("layer", kernel);
            let model = GpuModel::with_choice(ctx.clone(), g.clone(), &w, forced);
            if !choice::conv_can_run(kernel, &p, &adapter) {
                let e = model.and_then(|mut m| m.run(&x)).unwrap_err();
                assert!(e.to_string().contains("layer"), "{name} {kernel}: {e}");
                continue;
            }
            let mut model = model.unwrap();
            let labels = model.dispatch_labels(batch).unwrap();
            assert!(
                labels.iter().any(|l| l.contains(shader_of(kernel))),
                "{name}: forced {kernel} but ran {labels:?}"
            );
            let got = model.run(&x).unwrap();
            let what = format!("{name} forced {kernel}");
            // The cooperative-matrix tier multiplies halves (both operands rounded).
            let tol = if kernel.family.name().starts_with("conv_coop") {
                Tolerance::F16_OP
            } else {
                Tolerance::F32_OP
            };
            assert_close(&what, got.data(), want.data(), tol);
            ran += 1;
        }
        // conv_fast, conv_tiled and (with enough workgroup memory) conv_igemm and conv_wgmem
        // run every layer.
        assert!(ran >= 2, "{name}: only {ran} candidates ran");
    }
}

#[test]
fn default_choice_per_adapter_class() {
    let spec = Conv2dSpec::square(16, 16, 3, 1, 1);
    let cpu = Adapter {
        class: AdapterClass::Cpu,
        max_binding: 128 << 20,
        workgroup_storage: 32 << 10,
        invocations: 1024,
        compute_units: 8,
        shader_f16: true,
        cooperative_matrix: None,
    };
    let gpu = Adapter {
        class: AdapterClass::Discrete,
        ..cpu
    };
    let small_gpu = Adapter {
        workgroup_storage: 8 << 10,
        ..gpu
    };
    let first = |p: &ConvProblem, a: &Adapter| choice::conv_default(p, a).name();
    for static_weights in [true, false] {
        let p = ConvProblem::conv2d(&spec, 1, [8, 8], static_weights);
        assert_eq!(first(&p, &cpu), "conv_fast");
        assert_eq!(first(&p, &gpu), "conv_igemm");
        assert!(!["conv_igemm", "conv_wgmem"].contains(&first(&p, &small_gpu).as_str()));
        let dw = ConvProblem::conv2d(&spec.clone().groups(16), 1, [8, 8], static_weights);
        assert_eq!(first(&dw, &gpu), "conv_dw");
    }
    // A geometry without a specialised conv_fast entry: today's kernels on a CPU adapter.
    let mut dilated = spec.clone();
    dilated.dilation = [2, 2];
    let p = ConvProblem::conv2d(&dilated, 1, [8, 8], true);
    assert_eq!(first(&p, &cpu), "conv_tiled");
    let p = ConvProblem::conv2d(&dilated, 1, [8, 8], false);
    assert!(first(&p, &cpu).starts_with("conv_co") || first(&p, &cpu) == "conv_pk8");
    // A padded input larger than a binding rules conv_fast out.
    let tiny = Adapter {
        max_binding: 1024,
        ..cpu
    };
    let p = ConvProblem::conv2d(&spec, 4, [64, 64], true);
    let fast = choice::conv_named("conv_fast").unwrap();
    assert!(!choice::conv_can_run(fast, &p, &tiny));
    // Linear: gemv where rows are vec4-readable, the linear kernel elsewhere.
    let s = LinearShape {
        batch: 1,
        in_features: 64,
        out_features: 10,
    };
    let first = |s: &LinearShape, a: &Adapter| choice::linear_default(s, a).name();
    assert_eq!(first(&s, &cpu), "gemv");
    let odd = LinearShape {
        in_features: 63,
        ..s
    };
    assert_eq!(first(&odd, &cpu), "linear");
    let gemv = choice::linear_named("gemv").unwrap();
    assert!(!gemv.family.can_run(&odd, &cpu, None));
    // gemv's batched GEMM tiles on CPU adapters too (the soak finds no growth with them).
    let b4 = LinearShape { batch: 4, ..s };
    assert_eq!(first(&b4, &cpu), "gemv");
    assert!(gemv.family.can_run(&b4, &cpu, None));
    // Real GPUs: the bandwidth-bound GEMV up to batch 8, gemv's GEMM tiles beyond.
    assert_eq!(first(&b4, &gpu), "gemv_wide");
    let b16 = LinearShape { batch: 16, ..s };
    assert_eq!(first(&b16, &gpu), "gemv");
}

#[test]
fn forced_linear_kernels_match_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let _guard = common::serial();
    let lin = Linear {
        in_features: 36,
        out_features: 20,
        bias: true,
    };
    let mut b = GraphBuilder::new("fc", [36, 1, 1]);
    let f = b.push("flat", Op::Flatten(Flatten), &[b.input()]);
    let y = b.push("fc", Op::Linear(lin), &[f.unwrap()]).unwrap();
    let y = b.push("relu", Op::relu(), &[y]).unwrap();
    let g = b.finish(y);
    let w = Weights::random_for_tests(&g, 5);
    let x = input(&[3, 36, 1, 1], 9);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let tile = GemvShape {
        rows: 8,
        samples: 4,
    };
    let named = |n: &str| choice::linear_named(n).unwrap();
    for k in [
        named("linear"),
        named("gemv"),
        named(&format!("gemv[{}]", tile.entry().unwrap())),
    ] {
        let forced = KernelChoice::new().linear("fc", k);
        let mut m = GpuModel::with_choice(ctx.clone(), g.clone(), &w, forced).unwrap();
        let labels = m.dispatch_labels(3).unwrap();
        let shader = if k.family.name() == "linear" {
            "[linear::"
        } else {
            "[gemv::"
        };
        assert!(
            labels.iter().any(|l| l.contains(shader)),
            "{k:?}: {labels:?}"
        );
        let got = m.run(&x).unwrap();
        assert_close(
            &format!("{k:?}"),
            got.data(),
            want.data(),
            Tolerance::F32_OP,
        );
    }
    // A variant the family does not have.
    let bad = choice::LinearKernel {
        variant: Some(99),
        ..named("gemv")
    };
    let forced = KernelChoice::new().linear("fc", bad);
    let e = GpuModel::with_choice(ctx.clone(), g, &w, forced)
        .and_then(|mut m| m.run(&x))
        .unwrap_err();
    assert!(e.to_string().contains("fc"), "{e}");
}

#[test]
fn one_shot_rule_takes_the_gpu_tier_for_small_convolutions_on_cpu_adapters() {
    let cpu = Adapter {
        class: AdapterClass::Cpu,
        max_binding: 128 << 20,
        workgroup_storage: 32 << 10,
        invocations: 1024,
        compute_units: 8,
        shader_f16: true,
        cooperative_matrix: None,
    };
    let gpu = Adapter {
        class: AdapterClass::Discrete,
        ..cpu
    };
    let spec = Conv2dSpec::square(16, 16, 3, 1, 1);
    // 8×8×16×16×9 = 147,456 MACs: the integrated class's lists.
    let small = ConvProblem::conv2d(&spec, 1, [8, 8], true);
    assert_eq!(
        choice::one_shot_tier(&small, &cpu).class,
        AdapterClass::Integrated
    );
    assert_eq!(
        choice::conv_default(&small, &choice::one_shot_tier(&small, &cpu)).name(),
        "conv_igemm"
    );
    // The batch counts: 100 such samples are 14.7 M MACs, past the limit.
    let batched = ConvProblem::conv2d(&spec, 100, [8, 8], true);
    assert_eq!(
        choice::one_shot_tier(&batched, &cpu).class,
        AdapterClass::Cpu
    );
    // A large layer keeps the CPU tier; a real GPU keeps its own class.
    let large = ConvProblem::conv2d(&Conv2dSpec::square(64, 64, 3, 1, 1), 1, [48, 48], true);
    assert_eq!(choice::one_shot_tier(&large, &cpu).class, AdapterClass::Cpu);
    assert_eq!(
        choice::one_shot_tier(&small, &gpu).class,
        AdapterClass::Discrete
    );
}

#[test]
fn a_one_shot_model_runs_small_convolutions_with_the_gpu_tier_and_matches_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let _guard = common::serial();
    let mut b = GraphBuilder::new("one-shot", [16, 48, 48]);
    let small = Op::Conv2d(Conv2dSpec::square(16, 16, 3, 2, 1).groups(2).bias(true));
    let y = b.push("small", small, &[b.input()]).unwrap();
    let large = Op::Conv2d(Conv2dSpec::square(16, 256, 3, 1, 1).bias(true));
    let y = b.push("large", large, &[y]).unwrap();
    let y = b.push("relu", Op::relu(), &[y]).unwrap();
    let g = b.finish(y);
    let w = Weights::random_for_tests(&g, 3);
    let x = input(&[1, 16, 48, 48], 4);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let class = AdapterClass::of(&ctx.info);
    for one_shot in [false, true] {
        let choice = KernelChoice::new().with_one_shot(one_shot);
        let mut m = GpuModel::with_choice(ctx.clone(), g.clone(), &w, choice).unwrap();
        let kernels = m.kernels(1).unwrap();
        let of = |n: &str| {
            kernels
                .iter()
                .find(|(l, _)| l == n)
                .map(|(_, k)| k.clone())
                .unwrap_or_default()
        };
        if class == AdapterClass::Cpu {
            // small: 24×24×16×8×9 = 663,552 MACs; large: 24×24×256×16×9 = 21.2 M.
            let want_small = if one_shot { "conv_igemm" } else { "conv_fast" };
            assert!(of("small").starts_with(want_small), "{kernels:?}");
            assert!(of("large").starts_with("conv_fast"), "{kernels:?}");
        }
        let got = m.run(&x).unwrap();
        assert_close(
            &format!("one_shot {one_shot}"),
            got.data(),
            want.data(),
            Tolerance::F32_OP,
        );
    }
}
