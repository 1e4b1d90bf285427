//! The workgroup-memory convolution for discrete GPUs (`conv_wgmem`) against the CPU
//! reference, for correctness only on lavapipe: grouped (G ∈ {1, 2, 3, 4, C}), several groups
//! per workgroup tile, tiles wider than 64 filters and longer than one K step, strides,
//! padding, dilation, uneven index-addressed groups; and a bad argument.

mod common;

use gconv::cpu;
use gconv::gpu::geometry::ConvGeom;
use gconv::gpu::launch::bind_all;
use gconv::gpu::{run_dispatches, Arg, GpuContext};
use gconv::graph::{Conv2dSpec, GroupRange};
use gconv::ops::Activation;
use gconv::ops::GroupedConvTable;
use gconv::testing::{assert_close, Tolerance};
use gconv::Tensor;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

fn with_gpu(body: impl FnOnce(&GpuContext)) {
    let _g = common::serial();
    if let Some(ctx) = common::gpu() {
        body(ctx);
    }
}

fn vals(n: usize, seed: u64) -> Vec<f32> {
    let mut r = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

fn up(ctx: &GpuContext, name: &str, data: &[f32]) -> wgpu::Buffer {
    ctx.upload(name, data).expect("upload")
}

#[derive(Clone, Debug)]
struct ConvCase {
    batch: usize,
    spec: Conv2dSpec,
    hw: [usize; 2],
    relu: bool,
}

/// G from {1, 2, 3, 4, C}; kernel 1/3; stride 1/2; padding 0..2; dilation 1/2; batch 1/3.
fn conv_strategy() -> impl Strategy<Value = ConvCase> {
    (
        (0usize..5, 2usize..=4, 1usize..=11, 1usize..=3),
        (
            prop::sample::select(vec![1usize, 3]),
            1usize..=2,
            0usize..=2,
            1usize..=2,
        ),
        (
            3usize..=13,
            3usize..=21,
            prop::sample::select(vec![1usize, 3]),
        ),
        any::<bool>(),
    )
        .prop_filter_map(
            "kernel must fit the padded input",
            |((gi, cin_g, cout_g, mult), (k, s, p, d), (h, w, batch), relu)| {
                let (g, cin_g, cout_g) = match gi {
                    4 => (cin_g * 2, 1, mult),
                    _ => ([1, 2, 3, 4][gi], cin_g, cout_g),
                };
                let mut spec = Conv2dSpec::square(g * cin_g, g * cout_g, k, s, p).groups(g);
                spec.dilation = [d, d];
                spec.out_hw(h, w)?;
                Some(ConvCase {
                    batch,
                    spec,
                    hw: [h, w],
                    relu,
                })
            },
        )
}

use gconv::gpu::kernels::conv_wgmem::{self, WgmemConv, WgmemIo};

fn run_wgmem(
    ctx: &GpuContext,
    plan: &WgmemConv,
    x: &Tensor,
    natural: &[f32],
    bias: &[f32],
    geom: ConvGeom,
    out_len: usize,
) -> Vec<f32> {
    let xb = up(ctx, "x", x.data());
    let wb = up(ctx, "w", natural);
    let bb = up(ctx, "b", bias);
    let ob = ctx.storage_buffer("out", (out_len * 4) as u64).unwrap();
    let layer = plan.upload(ctx, "wgmem").expect("upload plan");
    let io = WgmemIo {
        x: Arg::whole(&xb),
        out: Arg::whole(&ob),
        weight: Arg::whole(&wb),
        bias: Some(Arg::whole(&bb)),
    };
    let call = conv_wgmem::forward(ctx, "wgmem", &layer, io, geom).expect("call");
    run_dispatches(ctx, &bind_all(ctx, &[call]).expect("bind")).expect("run");
    ctx.read_f32(&ob, 0, out_len).expect("read back")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn conv_wgmem_matches_cpu(case in conv_strategy(), seed in 0u64..1000) {
        with_gpu(|ctx| {
            let s = &case.spec;
            let [h, w] = case.hw;
            let x = Tensor::new(vec![case.batch, s.in_channels, h, w], vals(case.batch * s.in_channels * h * w, seed)).unwrap();
            let wlen: usize = s.weight_shape().iter().product();
            let wt = Tensor::new(s.weight_shape(), vals(wlen, seed + 1)).unwrap();
            let b = vals(s.out_channels, seed + 2);
            let mut want = cpu::conv2d(&x, &wt, Some(&b), s).unwrap();
            if case.relu {
                want = cpu::relu(&want);
            }
            let plan = WgmemConv::conv2d(s).expect("plan");
            let act = if case.relu { Activation::Relu6 } else { Activation::None };
            if case.relu {
                want = Tensor::new(want.shape().to_vec(), want.data().iter().map(|v| v.min(6.0)).collect()).unwrap();
            }
            let geom = ConvGeom { batch: case.batch, in_hw: case.hw, act };
            let got = run_wgmem(ctx, &plan, &x, wt.data(), &b, geom, want.numel());
            assert_close(&format!("wgmem {case:?} {:?}", plan.tiling()), &got, want.data(), Tolerance::F32_OP);
        });
    }
}

#[test]
fn conv_wgmem_groups_tables_and_wide_layers() {
    with_gpu(|ctx| {
        // Multiple groups per tile (4, 2 and 1 filters per group), a tile wider than 64
        // filters, more than 64 pixels (several pixel blocks), K longer than one step.
        for (c, n, g, hw) in [
            (16, 16, 4, [9, 8]),
            (8, 16, 8, [5, 7]),
            (12, 12, 12, [6, 13]),
            (24, 80, 1, [11, 9]),
            (64, 64, 64, [3, 5]),
        ] {
            let spec = Conv2dSpec::square(c, n, 3, 1, 1).groups(g);
            let x = Tensor::new(vec![2, c, hw[0], hw[1]], vals(2 * c * hw[0] * hw[1], 90)).unwrap();
            let wlen: usize = spec.weight_shape().iter().product();
            let wt = Tensor::new(spec.weight_shape(), vals(wlen, 91)).unwrap();
            let b = vals(n, 92);
            let want = cpu::conv2d(&x, &wt, Some(&b), &spec).unwrap();
            let plan = WgmemConv::conv2d(&spec).unwrap();
            let geom = ConvGeom {
                batch: 2,
                in_hw: hw,
                act: Activation::None,
            };
            let got = run_wgmem(ctx, &plan, &x, wt.data(), &b, geom, want.numel());
            assert_close(
                &format!("wgmem G={g} {c}->{n} {:?}", plan.tiling()),
                &got,
                want.data(),
                Tolerance::F32_OP,
            );
        }
        // Uneven index-addressed groups with an empty group and a bias-only group.
        let groups = [(3usize, 5usize), (2, 0), (0, 3), (4, 11), (1, 1)];
        let mut table = Vec::new();
        let (mut ci, mut co) = (0, 0);
        for &(i, o) in &groups {
            table.push(GroupRange {
                in_start: ci,
                in_len: i,
                out_start: co,
                out_len: o,
            });
            ci += i;
            co += o;
        }
        let mut rng = SmallRng::seed_from_u64(5);
        let mut in_index: Vec<usize> = (0..ci).collect();
        in_index.shuffle(&mut rng);
        let mut out_index: Vec<usize> = (0..co).collect();
        out_index.shuffle(&mut rng);
        let spec = Conv2dSpec::square(ci, co, 3, 2, 1).groups(groups.len());
        let wlen: usize = groups.iter().map(|&(i, o)| i * o * 9).sum();
        let x = Tensor::new(vec![1, ci, 9, 10], vals(ci * 90, 93)).unwrap();
        let wt = vals(wlen, 94);
        let b = vals(co, 95);
        let want = cpu::grouped_conv_indexed(
            &x,
            &wt,
            Some(&b),
            &GroupedConvTable {
                spec: spec.clone(),
                table: table.clone(),
                in_index: in_index.clone(),
                out_index: out_index.clone(),
            },
        )
        .unwrap();
        let plan = WgmemConv::grouped_table(&spec, &table, &in_index, &out_index).unwrap();
        let geom = ConvGeom {
            batch: 1,
            in_hw: [9, 10],
            act: Activation::None,
        };
        let got = run_wgmem(ctx, &plan, &x, &wt, &b, geom, want.numel());
        assert_close("wgmem table", &got, want.data(), Tolerance::F32_OP);
        // Bad arguments.
        let layer = plan.upload(ctx, "bad").unwrap();
        let xb = up(ctx, "x", x.data());
        let short = ctx.storage_buffer("short", 8).unwrap();
        let ob = ctx
            .storage_buffer("out", (want.numel() * 4) as u64)
            .unwrap();
        let io = WgmemIo {
            x: Arg::whole(&xb),
            out: Arg::whole(&ob),
            weight: Arg::whole(&short),
            bias: None,
        };
        assert!(
            conv_wgmem::forward(ctx, "bad", &layer, io, geom).is_err(),
            "weight too small"
        );
    });
}
