//! The register-tiled conv kernel (`shaders/conv_tiled.wgsl`) against the CPU reference,
//! through the executor: ordinary grouped convs over property-generated shapes, and
//! index-addressed uneven groups (exported FLGC) with empty and input-less groups.

mod common;

use gconv::gpu::choice::{self, KernelChoice};
use gconv::gpu::GpuModel;
use gconv::graph::{Conv2dSpec, GraphBuilder, GroupRange, Op};
use gconv::testing::{assert_close, Tolerance};
use gconv::{cpu, Tensor, Weights};
use proptest::prelude::*;

fn input(shape: &[usize], seed: u32) -> Tensor {
    Tensor::from_fn(shape, |i| {
        (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2000) as f32 / 1000.0 - 1.0
    })
}

/// Runs a one-node graph on the GPU (the tiled kernel forced) and the CPU.
fn check_single(name: &str, op: Op, chw: [usize; 3], batch: usize, relu: bool) {
    let Some(ctx) = common::gpu() else { return };
    let _guard = common::serial();
    let mut b = GraphBuilder::new(name, chw);
    let mut y = b.push("conv", op, &[b.input()]).unwrap();
    if relu {
        y = b.push("relu", Op::relu(), &[y]).unwrap();
    }
    let g = b.finish(y);
    let w = Weights::random_for_tests(&g, 17);
    let x = input(&[batch, chw[0], chw[1], chw[2]], 5);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    // conv_fast is the default for most of these geometries on a CPU adapter: force the
    // tiled kernel (it is what every static layer without a specialised entry runs).
    let forced = KernelChoice::new().conv("conv", choice::conv_named("conv_tiled").unwrap());
    let mut model = GpuModel::with_choice(ctx.clone(), g, &w, forced).unwrap();
    let labels = model.dispatch_labels(batch).unwrap();
    assert!(
        labels.iter().any(|l| l.contains("[conv_tiled::")),
        "{labels:?}"
    );
    let got = model.run(&x).unwrap();
    assert_close(name, got.data(), want.data(), Tolerance::F32_OP);
}

fn group_counts(c: usize) -> Vec<usize> {
    [1, 2, 3, 4, 8, c]
        .into_iter()
        .filter(|g| c % g == 0)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn grouped_conv_matches_cpu(
        cpg in 1usize..5, gi in 0usize..6, npg in 1usize..13,
        k in prop::sample::select(vec![1usize, 3]), stride in 1usize..3, pad in 0usize..2,
        dil in 1usize..3, h in 3usize..12, w in 3usize..20, batch in prop::sample::select(vec![1usize, 3]),
        bias in any::<bool>(), relu in any::<bool>(),
    ) {
        let gs = group_counts(cpg * 8);
        let g = gs[gi % gs.len()];
        let c = cpg * 8;
        // Partial 8-filter tiles for npg not a multiple of 8.
        let n = g * npg;
        let spec = Conv2dSpec {
            in_channels: c,
            out_channels: n,
            kernel: [k, k],
            stride: [stride, stride],
            padding: [pad, pad],
            dilation: [dil, dil],
            groups: g,
            bias,
        };
        prop_assume!(spec.out_hw(h, w).is_some());
        check_single("grouped conv", Op::Conv2d(spec), [c, h, w], batch, relu);
    }
}

#[test]
fn named_cases() {
    // VGG 3x3, ResNet stem 7x7/2, pointwise with stride 2, G=32 of a 256-channel layer,
    // non-square kernel, output narrower than one 8-pixel tile.
    let cases = [
        (Conv2dSpec::square(16, 32, 3, 1, 1).bias(true), [16, 9, 13]),
        (Conv2dSpec::square(3, 16, 7, 2, 3), [3, 23, 21]),
        (Conv2dSpec::square(32, 64, 1, 2, 0).groups(4), [32, 7, 9]),
        (
            Conv2dSpec::square(256, 256, 3, 1, 1).groups(32),
            [256, 6, 6],
        ),
        (
            Conv2dSpec {
                kernel: [3, 1],
                padding: [1, 0],
                ..Conv2dSpec::square(8, 12, 1, 1, 0)
            },
            [8, 5, 3],
        ),
    ];
    for (spec, chw) in cases {
        check_single("named", Op::Conv2d(spec), chw, 2, true);
    }
}

#[test]
fn index_addressed_uneven_groups() {
    // 10 inputs, 13 outputs in 4 groups: one with 9 filters (two tiles), one with filters but
    // no inputs (bias only), one empty, channels in a learnt (shuffled) order.
    let spec = Conv2dSpec::square(10, 13, 1, 1, 0).bias(true);
    let in_index = vec![7, 2, 9, 0, 4, 1, 8, 3, 6, 5];
    let out_index = vec![12, 0, 5, 3, 9, 1, 11, 7, 2, 10, 4, 8, 6];
    let table = vec![
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
            out_len: 2,
        },
    ];
    let op = Op::GroupedConvTable(gconv::ops::GroupedConvTable {
        spec: Conv2dSpec {
            groups: 4,
            ..spec.clone()
        },
        table,
        in_index,
        out_index,
    });
    check_single("uneven table 1x1", op, [10, 5, 11], 3, false);
    // and a 3x3 one with padding
    let spec3 = Conv2dSpec::square(6, 9, 3, 1, 1).groups(2);
    let op = Op::GroupedConvTable(gconv::ops::GroupedConvTable {
        spec: spec3,
        table: vec![
            GroupRange {
                in_start: 0,
                in_len: 2,
                out_start: 0,
                out_len: 4,
            },
            GroupRange {
                in_start: 2,
                in_len: 4,
                out_start: 4,
                out_len: 5,
            },
        ],
        in_index: vec![5, 0, 1, 2, 3, 4],
        out_index: vec![8, 7, 6, 5, 4, 3, 2, 1, 0],
    });
    check_single("uneven table 3x3", op, [6, 7, 9], 2, true);
}
