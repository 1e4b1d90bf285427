//! Convolution backward against `conv2d_backward`: named, big-reduction, serial, folded-grid cases.

use super::{gi, gw, random, read, run, t, up, with_gpu, zeros, BIG_REDUCTION};
use gconv::gpu::kernels::conv_backward as cb;
use gconv::gpu::kernels::conv_backward::DwEntry;
use gconv::gpu::GpuContext;
use gconv::graph::Conv2dSpec;
use gconv::testing::{assert_close, Tolerance};
use gconv::train::backward::conv2d_backward;
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Case {
    batch: usize,
    spec: Conv2dSpec,
    hw: [usize; 2],
}

#[allow(clippy::too_many_arguments)]
fn case(
    batch: usize,
    c: usize,
    n: usize,
    g: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    hw: [usize; 2],
) -> Case {
    let mut spec = Conv2dSpec::square(c, n, k, s, p).groups(g).bias(true);
    spec.dilation = [d, d];
    Case { batch, spec, hw }
}

/// Input gradient (overwrite and accumulate), weight gradient and bias gradient of `c`
/// against `conv2d_backward`; `wtol` for the weight and bias gradients.
fn check_backward(ctx: &GpuContext, c: &Case, seed: u64, wtol: Tolerance) {
    let s = &c.spec;
    let [h, w] = c.hw;
    let [oh, ow] = s.out_hw(h, w).expect("window fits");
    let x = random(&[c.batch, s.in_channels, h, w], seed);
    let wt = random(&s.weight_shape(), seed + 1);
    let dy = random(&[c.batch, s.out_channels, oh, ow], seed + 2);
    let want = conv2d_backward(&x, &wt, &dy, s).expect("cpu backward");

    let (xb, wb, dyb) = (
        up(ctx, "x", x.data()),
        up(ctx, "w", wt.data()),
        up(ctx, "dy", dy.data()),
    );
    let dx = zeros(ctx, "dx", x.numel());
    let prior = random(x.shape(), seed + 3);
    let dx_acc = up(ctx, "dx acc", prior.data());
    let dw = zeros(ctx, "dw", wt.numel());
    let db = zeros(ctx, "db", s.out_channels);

    let mut d = gi(
        ctx,
        "dx",
        (s, c.batch, c.hw, false),
        t(&dyb),
        t(&wb),
        t(&dx),
    )
    .expect("prepare dx");
    d.extend(
        gi(
            ctx,
            "dx+",
            (s, c.batch, c.hw, true),
            t(&dyb),
            t(&wb),
            t(&dx_acc),
        )
        .expect("prepare dx accumulate"),
    );
    d.extend(gw(ctx, "dw", (None, s, c.batch, c.hw), t(&xb), t(&dyb), t(&dw)).expect("prepare dw"));
    // Every weight-gradient kernel that fits this layer, whatever the adapter would pick.
    let kernels: Vec<DwEntry> = [DwEntry::Reduce, DwEntry::Serial, DwEntry::Pointwise4]
        .into_iter()
        .filter(|&k| k.fits(s))
        .collect();
    let dws: Vec<wgpu::Buffer> = kernels
        .iter()
        .map(|k| zeros(ctx, &format!("dw {k:?}"), wt.numel()))
        .collect();
    let mut dk = Vec::new();
    for (k, buf) in kernels.iter().zip(&dws) {
        dk.extend(
            gw(
                ctx,
                "dw k",
                (Some(*k), s, c.batch, c.hw),
                t(&xb),
                t(&dyb),
                t(buf),
            )
            .expect("prepare dw with kernel"),
        );
    }
    d.extend(
        cb::channel_sum(
            ctx,
            "db",
            [c.batch, s.out_channels, oh * ow],
            &t(&dyb),
            &t(&db),
        )
        .map(|c| vec![c])
        .expect("prepare db"),
    );
    assert_eq!(d.len(), 4, "one dispatch per op whatever the groups");
    run(ctx, &d);
    run(ctx, &dk);
    for (k, buf) in kernels.iter().zip(&dws) {
        assert_close(
            &format!("dw ({k:?}) {c:?}"),
            &read(ctx, buf, wt.numel()),
            want.weight.data(),
            wtol,
        );
    }

    let what = format!("{c:?}");
    assert_close(
        &format!("dx {what}"),
        &read(ctx, &dx, x.numel()),
        want.input.data(),
        Tolerance::F32_OP,
    );
    let acc_want: Vec<f32> = prior
        .data()
        .iter()
        .zip(want.input.data())
        .map(|(a, b)| a + b)
        .collect();
    assert_close(
        &format!("dx += {what}"),
        &read(ctx, &dx_acc, x.numel()),
        &acc_want,
        Tolerance::F32_OP,
    );
    assert_close(
        &format!("dw {what}"),
        &read(ctx, &dw, wt.numel()),
        want.weight.data(),
        wtol,
    );
    let bias = want.bias.expect("bias grad");
    assert_close(
        &format!("db {what}"),
        &read(ctx, &db, s.out_channels),
        bias.data(),
        wtol,
    );
}

/// G ∈ {1, 2, 3, 4} with 1–3 channels and filters per group, or depthwise (G = C) with
/// channel multiplier 1–2; 1×1 or 3×3, stride 1–2, padding 0–1, dilation 1–2, odd sizes.
fn case_strategy() -> impl Strategy<Value = Case> {
    (
        (0usize..5, 1usize..=3, 1usize..=3, 1usize..=2),
        (
            prop::sample::select(vec![1usize, 3]),
            1usize..=2,
            0usize..=1,
            1usize..=2,
        ),
        (2usize..=4, 2usize..=4, 1usize..=3),
    )
        .prop_map(
            |((gi, cin_g, cout_g, mult), (k, s, p, d), (hh, ww, batch))| {
                let (g, cin_g, cout_g) = match gi {
                    4 => (cin_g + 2, 1, mult), // depthwise, multiplier `mult`
                    _ => (gi + 1, cin_g, cout_g),
                };
                let hw = [2 * hh + 1, 2 * ww + 1];
                case(batch, g * cin_g, g * cout_g, g, k, s, p, d, hw)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn conv_backward_matches_cpu(c in case_strategy(), seed in 0u64..1000) {
        with_gpu(|ctx| check_backward(ctx, &c, seed, Tolerance::F32_OP));
    }
}

/// Named shapes: each kind of grouping, per-axis stride/padding, and a big reduction.
#[test]
fn conv_backward_named_cases() {
    with_gpu(|ctx| {
        let cases = [
            // Dense 3x3 stride 2 padding 1 on an odd image.
            case(2, 3, 5, 1, 3, 2, 1, 1, [7, 9]),
            // Grouped G=3, 2 in / 3 out per group, dilation 2 ("same" padding 2).
            {
                let mut c = case(1, 6, 9, 3, 3, 1, 2, 2, [7, 7]);
                c.spec.padding = [2, 2];
                c
            },
            // Depthwise with multiplier 2, stride 2.
            case(3, 4, 8, 4, 3, 2, 1, 1, [9, 7]),
            // Pointwise grouped (ShuffleNet-like) 1x1, G=4.
            case(2, 8, 12, 4, 1, 1, 0, 1, [5, 5]),
            // Pointwise stride 2 (ResNet downsample).
            case(1, 4, 6, 1, 1, 2, 0, 1, [7, 7]),
            // Rectangular kernel, per-axis stride and padding.
            {
                let mut c = case(2, 4, 4, 2, 1, 1, 0, 1, [6, 9]);
                c.spec.kernel = [1, 3];
                c.spec.stride = [2, 1];
                c.spec.padding = [0, 1];
                c
            },
            // Stride larger than the kernel (some inputs read by no window).
            case(1, 2, 2, 1, 1, 3, 0, 1, [7, 8]),
            // Pointwise 4×4-tile kernels: C/G = 4 (input tiles only), C/G = 8 and N/G = 4
            // with a pixel tail (15 pixels), a 1×1 image, dense 16 → 12.
            case(2, 8, 12, 2, 1, 1, 0, 1, [5, 5]),
            case(3, 16, 8, 2, 1, 1, 0, 1, [3, 5]),
            case(2, 4, 4, 1, 1, 1, 0, 1, [1, 1]),
            case(2, 16, 12, 1, 1, 1, 0, 1, [6, 7]),
        ];
        for (i, c) in cases.iter().enumerate() {
            check_backward(ctx, c, 200 + i as u64, Tolerance::F32_OP);
        }
    });
}

/// Weight and bias gradients reduced over batch 16 × 28×28 = 12544 products.
#[test]
fn conv_backward_big_reduction() {
    with_gpu(|ctx| {
        check_backward(
            ctx,
            &case(16, 8, 8, 1, 3, 1, 1, 1, [28, 28]),
            300,
            BIG_REDUCTION,
        );
        check_backward(
            ctx,
            &case(16, 8, 8, 4, 3, 1, 1, 1, [28, 28]),
            301,
            BIG_REDUCTION,
        );
    });
}

/// Layers with at least `SERIAL_MIN_WEIGHTS` weights take the one-invocation-per-weight
/// kernel (`grad_weight_serial`): dense 1×1 stride 2 (a downsample), grouped 3×3 with padding
/// and dilation, and depthwise ×2 with stride 2 on odd sizes.
#[test]
fn conv_backward_serial_weight_kernel() {
    use gconv::gpu::kernels::conv_backward::SERIAL_MIN_WEIGHTS;
    with_gpu(|ctx| {
        let mut dil = case(2, 48, 48, 2, 3, 1, 2, 2, [7, 9]);
        dil.spec.padding = [2, 2];
        let cases = [
            case(2, 64, 96, 1, 1, 2, 0, 1, [7, 7]),
            dil,
            case(3, 512, 1024, 512, 3, 2, 1, 1, [5, 7]),
        ];
        for (i, c) in cases.iter().enumerate() {
            let nw = c.spec.weight_shape().iter().product::<usize>();
            assert!(
                nw >= SERIAL_MIN_WEIGHTS,
                "case {i} must take the serial kernel"
            );
            check_backward(ctx, c, 400 + i as u64, Tolerance::F32_OP);
        }
    });
}

/// More than 65535 workgroups: weight gradient of a wide depthwise layer (one workgroup per
/// weight element) and channel sums of many channels fold the grid into 2-D.
#[test]
fn conv_backward_folded_grid() {
    with_gpu(|ctx| {
        let c = 8192;
        check_backward(
            ctx,
            &case(1, c, c, c, 3, 1, 0, 1, [3, 3]),
            400,
            Tolerance::F32_OP,
        );
        let (b, ch, hw) = (2, 70_000, 1);
        let g = random(&[b, ch, hw], 401);
        let gb = up(ctx, "g", g.data());
        let out = zeros(ctx, "sum", ch);
        run(
            ctx,
            &cb::channel_sum(ctx, "sum", [b, ch, hw], &t(&gb), &t(&out))
                .map(|c| vec![c])
                .unwrap(),
        );
        let want: Vec<f32> = (0..ch).map(|i| g.data()[i] + g.data()[ch + i]).collect();
        assert_close(
            "channel_sum folded",
            &read(ctx, &out, ch),
            &want,
            Tolerance::F32_OP,
        );
    });
}
