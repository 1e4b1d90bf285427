//! Convolution against `cpu::conv2d`: generated shapes, named regressions, the folded grid.

use super::{
    arg, conv_case, direct_conv, direct_kernels, random, run_read, up, vals, with_gpu, ConvCase,
};
use gconv::cpu;
use gconv::gpu::kernels::conv;
use gconv::gpu::GpuContext;
use gconv::testing::{assert_close, Tolerance};
use proptest::prelude::*;

fn check_conv(ctx: &GpuContext, case: &ConvCase, seed: u64) {
    let s = &case.spec;
    let [h, w] = case.hw;
    let x = random(&[case.batch, s.in_channels, h, w], seed);
    let wt = random(&s.weight_shape(), seed + 1);
    let bias = s.bias.then(|| vals(s.out_channels, seed + 2));
    let mut want = cpu::conv2d(&x, &wt, bias.as_deref(), s).expect("cpu conv");
    if case.relu {
        want = cpu::relu(&want);
    }
    let xb = up(ctx, "x", x.data());
    let wb = up(ctx, "w", wt.data());
    let bb = bias.as_ref().map(|b| up(ctx, "b", b));
    let ob = ctx
        .storage_buffer("out", (want.numel() * 4) as u64)
        .unwrap();
    let groups = conv::even_groups("conv", s).expect("groups");
    for kernel in direct_kernels(s) {
        let geo = (kernel, s, case.batch, case.hw, case.relu);
        let d = direct_conv(
            ctx,
            "conv",
            geo,
            &groups,
            arg(&xb),
            &wb,
            bb.as_ref(),
            arg(&ob),
        )
        .expect("prepare");
        assert_eq!(
            d.iter().filter(|d| d.label.contains("::conv_")).count(),
            1,
            "one conv dispatch whatever the groups"
        );
        let got = run_read(ctx, &d, &ob, want.numel());
        assert_close(
            &format!("{kernel:?} {case:?}"),
            &got,
            want.data(),
            Tolerance::F32_OP,
        );
    }
}

/// Group count choice: 0..5 → {1, 2, 3, 4, 8}, 5 → depthwise (G = C).
fn conv_strategy() -> impl Strategy<Value = ConvCase> {
    (
        (0usize..6, 2usize..=4, 1usize..=10, 1usize..=3),
        (
            prop::sample::select(vec![1usize, 3]),
            1usize..=2,
            0usize..=1,
            1usize..=2,
        ),
        (
            2usize..=7,
            2usize..=7,
            prop::sample::select(vec![1usize, 3]),
        ),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |((gi, cin_g, cout_g, mult), (k, s, p, d), (hh, ww, batch), (bias, relu))| {
                let (g, cin_g, cout_g) = match gi {
                    5 => (cin_g * 3, 1, mult), // depthwise, channel multiplier `mult`
                    _ => ([1, 2, 3, 4, 8][gi], cin_g, cout_g),
                };
                // Odd sizes, large enough for a dilated 3x3 without padding.
                let hw = [2 * hh + 1, 2 * ww + 1];
                conv_case(batch, g * cin_g, g * cout_g, g, k, s, p, d, hw, bias, relu)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_matches_cpu(case in conv_strategy(), seed in 0u64..1000) {
        with_gpu(|ctx| check_conv(ctx, &case, seed));
    }
}

/// Named shapes that once went wrong or sit on an edge of the tiling.
#[test]
fn conv2d_regressions() {
    with_gpu(|ctx| {
        let cases = [
            // ResNet stem: 7x7 stride 2 padding 3, 3 input channels, bias-free.
            conv_case(1, 3, 16, 1, 7, 2, 3, 1, [23, 23], false, true),
            // MobileNet depthwise 3x3 stride 2 with channel multiplier 2.
            conv_case(3, 6, 12, 6, 3, 2, 1, 1, [9, 11], true, true),
            // ResNet downsample: 1x1 stride 2.
            conv_case(1, 8, 16, 1, 1, 2, 0, 1, [7, 7], false, false),
            // 12 output channels per group: one full 8-channel tile and a partial one.
            conv_case(1, 6, 24, 2, 3, 1, 1, 1, [5, 6], true, false),
            // Output one pixel wide (partial 4-pixel tile of 1).
            conv_case(3, 4, 8, 1, 3, 1, 0, 1, [5, 3], true, false),
            // G=3 with 5 filters per group, dilation 2 and padding 2 ("same" output).
            {
                let mut c = conv_case(1, 9, 15, 3, 3, 1, 2, 2, [9, 9], true, true);
                c.spec.padding = [2, 2];
                c
            },
            // Rectangular kernel, stride and padding per axis.
            {
                let mut c = conv_case(1, 4, 8, 2, 1, 1, 0, 1, [8, 9], true, false);
                c.spec.kernel = [1, 3];
                c.spec.stride = [2, 1];
                c.spec.padding = [0, 1];
                c
            },
            // Pointwise grouped (ShuffleNet-like): 1x1, G=4.
            conv_case(3, 16, 32, 4, 1, 1, 0, 1, [5, 5], false, true),
            // A wide dense layer (several 8-channel tiles, many pixel blocks).
            conv_case(1, 32, 64, 1, 3, 1, 1, 1, [14, 14], true, true),
        ];
        for (i, c) in cases.iter().enumerate() {
            check_conv(ctx, c, 100 + i as u64);
        }
    });
}

/// More workgroups than one grid dimension holds: the grid is folded into 2-D.
#[test]
fn conv2d_folded_grid() {
    with_gpu(|ctx| {
        // Depthwise 512 channels (512 one-channel tiles) x 16x16 x batch 17 > 65535 workgroups.
        let case = conv_case(17, 512, 512, 512, 3, 1, 1, 1, [16, 16], true, false);
        check_conv(ctx, &case, 7);
    });
}
