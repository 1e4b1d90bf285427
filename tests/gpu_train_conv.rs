//! Training-time convolution kernels (`gpu::kernels::conv_backward`) and the FLGC selection
//! kernels (`gpu::kernels::flgc`) against the CPU specification (`gconv::train::backward`,
//! `gconv::cpu`), over property-generated shapes and named cases, plus bad arguments.
//! Runs on lavapipe; skips loudly without an adapter (see `common`).

mod common;

use gconv::cpu::{flgc_mask, masked_weight, row_argmax, row_softmax};
use gconv::gpu::choice::{self, WeightGradKernel};
use gconv::gpu::kernels::conv::ConvShape;
use gconv::gpu::kernels::conv_backward as cb;
use gconv::gpu::kernels::flgc::{self, FlgcShape, SelectGradArgs};
use gconv::gpu::launch::bind_all;
use gconv::gpu::{run_dispatches, Arg, Call, GpuContext};
use gconv::graph::Conv2dSpec;
use gconv::testing::{assert_close, Tolerance};
use gconv::train::backward::{conv2d_backward, flgc_conv2d_backward};
use gconv::Tensor;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Weight gradients summed over `batch·OH·OW ≈ 10⁴` products: the CPU adds them in one
/// sequential f32 chain, the GPU in 64 strided chains and a tree, so an entry that cancels
/// to near zero may differ by a few 1e-4 in absolute terms (partial sums reach ~30; the
/// largest difference seen on lavapipe was 4.3e-4, beyond `F32_OP`'s atol of 1e-4).
const BIG_REDUCTION: Tolerance = Tolerance {
    atol: 2e-3,
    rtol: 5e-4,
};

/// Runs `body` with the shared context while holding the GPU lock; skips without a GPU.
fn with_gpu(body: impl FnOnce(&GpuContext)) {
    let _g = common::serial();
    if let Some(ctx) = common::gpu() {
        body(ctx);
    }
}

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut r = SmallRng::seed_from_u64(seed);
    Tensor::from_fn(shape, |_| r.random_range(-1.0f32..1.0))
}

fn up(ctx: &GpuContext, name: &str, data: &[f32]) -> wgpu::Buffer {
    ctx.upload(name, data).expect("upload")
}

fn zeros(ctx: &GpuContext, name: &str, len: usize) -> wgpu::Buffer {
    ctx.storage_buffer(name, (len * 4) as u64).expect("buffer")
}

fn run(ctx: &GpuContext, d: &[Call]) {
    run_dispatches(ctx, &bind_all(ctx, d).expect("bind")).expect("run");
}

fn read(ctx: &GpuContext, b: &wgpu::Buffer, len: usize) -> Vec<f32> {
    ctx.read_f32(b, 0, len).expect("read back")
}

fn read_u32(ctx: &GpuContext, b: &wgpu::Buffer, len: usize) -> Vec<usize> {
    read(ctx, b, len)
        .into_iter()
        .map(|v| v.to_bits() as usize)
        .collect()
}

fn t(b: &wgpu::Buffer) -> Arg {
    Arg::whole(b)
}

/// The input gradient with the kernel the adapter would choose.
fn gi(
    ctx: &GpuContext,
    label: &str,
    (s, batch, hw, acc): (&Conv2dSpec, usize, [usize; 2], bool),
    dy: Arg,
    w: Arg,
    dx: Arg,
) -> gconv::Result<Vec<Call>> {
    let shape = ConvShape {
        spec: s,
        batch,
        in_hw: hw,
    };
    let kernel = choice::conv_input_grad(ctx, s);
    cb::grad_input(ctx, label, (kernel, &shape, acc), &dy, &w, &dx).map(|c| vec![c])
}

/// The weight gradient with `kernel`, or the one the adapter would choose.
fn gw(
    ctx: &GpuContext,
    label: &str,
    (kernel, s, batch, hw): (Option<WeightGradKernel>, &Conv2dSpec, usize, [usize; 2]),
    x: Arg,
    dy: Arg,
    dw: Arg,
) -> gconv::Result<Vec<Call>> {
    let shape = ConvShape {
        spec: s,
        batch,
        in_hw: hw,
    };
    let kernel = kernel.unwrap_or_else(|| choice::conv_weight_grad(ctx, s));
    cb::grad_weight(ctx, label, (kernel, &shape), &x, &dy, &dw).map(|c| vec![c])
}

/// The FLGC selection gradients, with a scratch buffer for `Gm`.
fn sg(
    ctx: &GpuContext,
    label: &str,
    [n, c, groups, kk]: [usize; 4],
    [d_masked, weight, in_index, out_index, probs_in, probs_out]: [Arg; 6],
    [d_select_in, d_select_out]: [Arg; 2],
) -> gconv::Result<Vec<Call>> {
    let gm = Arg::whole(&zeros(ctx, "Gm", (n * c).max(1)));
    let args = SelectGradArgs {
        d_masked,
        weight,
        in_index,
        out_index,
        probs_in,
        probs_out,
        gm,
        d_select_in,
        d_select_out,
    };
    flgc::select_grad(ctx, label, &FlgcShape { n, c, groups, kk }, &args)
}

// ---------------------------------------------------------------------------------------
// convolution backward

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
    let kernels: Vec<choice::WeightGradKernel> = [
        choice::WeightGradKernel::Reduce,
        choice::WeightGradKernel::Serial,
        choice::WeightGradKernel::Pointwise4,
    ]
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
    use gconv::gpu::choice::SERIAL_MIN_WEIGHTS;
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

#[test]
fn conv_backward_rejects_bad_arguments() {
    with_gpu(|ctx| {
        let s = Conv2dSpec::square(4, 6, 3, 1, 1).groups(2);
        let (b, hw) = (2, [5, 5]);
        let x = zeros(ctx, "x", 2 * 4 * 25);
        let w = zeros(ctx, "w", 6 * 2 * 9);
        let dy = zeros(ctx, "dy", 2 * 6 * 25);
        let short = zeros(ctx, "short", 7);
        let dx = zeros(ctx, "dx", 2 * 4 * 25);
        let dw = zeros(ctx, "dw", 6 * 2 * 9);
        // Wrong lengths.
        assert!(gi(ctx, "l", (&s, b, hw, false), t(&short), t(&w), t(&dx)).is_err());
        assert!(gi(ctx, "l", (&s, b, hw, false), t(&dy), t(&short), t(&dx)).is_err());
        assert!(gi(ctx, "l", (&s, b, hw, true), t(&dy), t(&w), t(&short)).is_err());
        assert!(gw(ctx, "l", (None, &s, b, hw), t(&short), t(&dy), t(&dw)).is_err());
        assert!(gw(ctx, "l", (None, &s, b, hw), t(&x), t(&dy), t(&short)).is_err());
        assert!(cb::channel_sum(ctx, "l", [b, 6, 25], &t(&dy), &t(&short))
            .map(|c| vec![c])
            .is_err());
        assert!(cb::channel_sum(ctx, "l", [b, 6, 24], &t(&dy), &t(&dw))
            .map(|c| vec![c])
            .is_err());
        // The same sizes are accepted.
        assert!(gi(ctx, "l", (&s, b, hw, false), t(&dy), t(&w), t(&dx)).is_ok());
        assert!(gw(ctx, "l", (None, &s, b, hw), t(&x), t(&dy), t(&dw)).is_ok());
        // Groups that do not divide the channels, zero groups, zero stride.
        let bad_g = Conv2dSpec::square(4, 6, 3, 1, 1).groups(4);
        assert!(gi(ctx, "l", (&bad_g, b, hw, false), t(&dy), t(&w), t(&dx)).is_err());
        let zero_g = Conv2dSpec::square(4, 6, 3, 1, 1).groups(0);
        assert!(gw(ctx, "l", (None, &zero_g, b, hw), t(&x), t(&dy), t(&dw)).is_err());
        let zero_s = Conv2dSpec::square(4, 6, 3, 0, 1).groups(2);
        assert!(gw(ctx, "l", (None, &zero_s, b, hw), t(&x), t(&dy), t(&dw)).is_err());
        // Kernel larger than the (padded) input.
        let big_k = Conv2dSpec::square(4, 6, 9, 1, 0).groups(2);
        assert!(gi(ctx, "l", (&big_k, b, hw, false), t(&dy), t(&w), t(&dx)).is_err());
        // Output sharing a buffer with an input (disjoint ranges): refused, wgpu forbids it.
        let align = u64::from(ctx.limits.min_storage_buffer_offset_alignment);
        let off = (2 * 4 * 25 * 4u64).div_ceil(align) * align;
        let both = zeros(ctx, "x and dw", (off / 4) as usize + 6 * 2 * 9);
        let xs = t(&both).slice(0, 2 * 4 * 25);
        let dws = t(&both).slice((off / 4) as usize, 6 * 2 * 9);
        assert!(gw(ctx, "l", (None, &s, b, hw), xs, t(&dy), dws).is_err());
    });
}

// ---------------------------------------------------------------------------------------
// FLGC

/// Logits `[rows, g]` with row 0 tied between columns 1 and `g − 1` (when g ≥ 3) above the
/// rest, so the tie goes to column 1.
fn logits(rows: usize, g: usize, seed: u64) -> Tensor {
    let mut l = random(&[rows, g], seed);
    if g >= 3 {
        let row = &mut l.data_mut()[..g];
        row.iter_mut().for_each(|v| *v = -0.5);
        row[1] = 0.75;
        row[g - 1] = 0.75;
    } else {
        l.data_mut()[..g].iter_mut().for_each(|v| *v = 0.25);
    }
    l
}

#[derive(Clone, Debug)]
struct FlgcCase {
    batch: usize,
    c: usize,
    n: usize,
    g: usize,
    k: usize,
    s: usize,
    p: usize,
    hw: [usize; 2],
}

fn check_flgc(ctx: &GpuContext, fc: &FlgcCase, seed: u64) {
    let FlgcCase {
        batch,
        c,
        n,
        g,
        k,
        s,
        p,
        hw,
    } = *fc;
    let spec = Conv2dSpec::square(c, n, k, s, p).groups(g);
    let dense = Conv2dSpec {
        groups: 1,
        ..spec.clone()
    };
    let [oh, ow] = spec.out_hw(hw[0], hw[1]).expect("window fits");
    let kk = k * k;
    let sel_in = logits(c, g, seed);
    let sel_out = logits(n, g, seed + 1);
    let x = random(&[batch, c, hw[0], hw[1]], seed + 2);
    let wt = random(&[n, c, k, k], seed + 3);
    let dy = random(&[batch, n, oh, ow], seed + 4);
    let what = format!("{fc:?}");

    let (sib, sob) = (up(ctx, "S", sel_in.data()), up(ctx, "T", sel_out.data()));
    let (pib, pob) = (zeros(ctx, "P_in", c * g), zeros(ctx, "P_out", n * g));
    let (iib, oib) = (zeros(ctx, "idx_in", c), zeros(ctx, "idx_out", n));
    let (xb, wb, dyb) = (
        up(ctx, "x", x.data()),
        up(ctx, "w", wt.data()),
        up(ctx, "dy", dy.data()),
    );
    let wm = zeros(ctx, "W*M", wt.numel());
    let dmask = zeros(ctx, "D", wt.numel());
    let dx = zeros(ctx, "dx", x.numel());
    let (gsi, gso) = (zeros(ctx, "dS", c * g), zeros(ctx, "dT", n * g));

    let mut d = flgc::select(ctx, "sel in", [c, g], &t(&sib), [&t(&pib), &t(&iib)])
        .map(|c| vec![c])
        .unwrap();
    d.extend(
        flgc::select(ctx, "sel out", [n, g], &t(&sob), [&t(&pob), &t(&oib)])
            .map(|c| vec![c])
            .unwrap(),
    );
    d.extend(
        flgc::masked_weight(
            ctx,
            "wm",
            &FlgcShape {
                n,
                c,
                groups: 1,
                kk,
            },
            &t(&wb),
            [&t(&iib), &t(&oib)],
            &t(&wm),
        )
        .map(|c| vec![c])
        .unwrap(),
    );
    d.extend(
        gw(
            ctx,
            "D",
            (None, &dense, batch, hw),
            t(&xb),
            t(&dyb),
            t(&dmask),
        )
        .unwrap(),
    );
    d.extend(
        gi(
            ctx,
            "dx",
            (&dense, batch, hw, false),
            t(&dyb),
            t(&wm),
            t(&dx),
        )
        .unwrap(),
    );
    d.extend(
        sg(
            ctx,
            "sel grad",
            [n, c, g, kk],
            [t(&dmask), t(&wb), t(&iib), t(&oib), t(&pib), t(&pob)],
            [t(&gsi), t(&gso)],
        )
        .unwrap(),
    );
    run(ctx, &d);

    assert_close(
        &format!("P_in {what}"),
        &read(ctx, &pib, c * g),
        row_softmax(&sel_in).unwrap().data(),
        Tolerance::F32_OP,
    );
    assert_close(
        &format!("P_out {what}"),
        &read(ctx, &pob, n * g),
        row_softmax(&sel_out).unwrap().data(),
        Tolerance::F32_OP,
    );
    assert_eq!(
        read_u32(ctx, &iib, c),
        row_argmax(&sel_in).unwrap(),
        "idx_in {what}"
    );
    assert_eq!(
        read_u32(ctx, &oib, n),
        row_argmax(&sel_out).unwrap(),
        "idx_out {what}"
    );
    if g >= 3 {
        assert_eq!(read_u32(ctx, &iib, 1)[0], 1, "tie goes to the lowest index");
    }
    let mask = flgc_mask(&sel_in, &sel_out).unwrap();
    let want_wm = masked_weight(&wt, &mask).unwrap();
    assert_close(
        &format!("W*M {what}"),
        &read(ctx, &wm, wt.numel()),
        want_wm.data(),
        Tolerance::F32_OP,
    );

    let want =
        flgc_conv2d_backward(&x, &wt, &sel_in, &sel_out, &dy, &spec).expect("cpu flgc backward");
    assert_close(
        &format!("D {what}"),
        &read(ctx, &dmask, wt.numel()),
        want.weight.data(),
        Tolerance::F32_OP,
    );
    assert_close(
        &format!("dx {what}"),
        &read(ctx, &dx, x.numel()),
        want.input.data(),
        Tolerance::F32_OP,
    );
    assert_close(
        &format!("dS {what}"),
        &read(ctx, &gsi, c * g),
        want.select_in.data(),
        Tolerance::F32_OP,
    );
    assert_close(
        &format!("dT {what}"),
        &read(ctx, &gso, n * g),
        want.select_out.data(),
        Tolerance::F32_OP,
    );
}

fn flgc_strategy() -> impl Strategy<Value = FlgcCase> {
    (
        (1usize..=4, 1usize..=8, 1usize..=8),
        (
            prop::sample::select(vec![1usize, 3]),
            1usize..=2,
            0usize..=1,
        ),
        (2usize..=3, 2usize..=3, 1usize..=2),
    )
        .prop_map(|((g, c, n), (k, s, p), (hh, ww, batch))| FlgcCase {
            batch,
            c: c.max(g),
            n: n.max(g),
            g,
            k,
            s,
            p,
            hw: [2 * hh + 1, 2 * ww + 1],
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn flgc_matches_cpu(fc in flgc_strategy(), seed in 0u64..1000) {
        with_gpu(|ctx| check_flgc(ctx, &fc, seed));
    }
}

#[test]
fn flgc_named_cases() {
    with_gpu(|ctx| {
        let cases = [
            FlgcCase {
                batch: 2,
                c: 8,
                n: 12,
                g: 4,
                k: 3,
                s: 1,
                p: 1,
                hw: [5, 5],
            },
            // More groups than channels: many groups empty.
            FlgcCase {
                batch: 1,
                c: 5,
                n: 7,
                g: 64,
                k: 1,
                s: 1,
                p: 0,
                hw: [3, 3],
            },
            FlgcCase {
                batch: 3,
                c: 16,
                n: 16,
                g: 8,
                k: 3,
                s: 2,
                p: 1,
                hw: [7, 7],
            },
        ];
        for (i, fc) in cases.iter().enumerate() {
            check_flgc(ctx, fc, 500 + i as u64);
        }
    });
}

/// `masked_weight` on hand-written indices (including a value outside `0..G`).
#[test]
fn flgc_masked_weight_from_indices() {
    with_gpu(|ctx| {
        let (n, c, kk) = (3, 4, 2);
        let w = random(&[n, c, 1, kk], 600);
        let (ii, oi) = ([0u32, 1, 1, 7], [1u32, 0, 7]);
        let wb = up(ctx, "w", w.data());
        let iib = ctx.upload_u32("in", &ii).unwrap();
        let oib = ctx.upload_u32("out", &oi).unwrap();
        let out = zeros(ctx, "wm", n * c * kk);
        run(
            ctx,
            &flgc::masked_weight(
                ctx,
                "wm",
                &FlgcShape {
                    n,
                    c,
                    groups: 1,
                    kk,
                },
                &t(&wb),
                [&t(&iib), &t(&oib)],
                &t(&out),
            )
            .map(|c| vec![c])
            .unwrap(),
        );
        let want = Tensor::from_fn(&[n * c * kk], |i| {
            let (o, ci) = (i / (c * kk), (i / kk) % c);
            if oi[o] == ii[ci] {
                w.data()[i]
            } else {
                0.0
            }
        });
        assert_close(
            "masked weight",
            &read(ctx, &out, n * c * kk),
            want.data(),
            Tolerance::F32_OP,
        );
    });
}

#[test]
fn flgc_rejects_bad_arguments() {
    with_gpu(|ctx| {
        let (n, c, g, kk) = (4, 6, 2, 9);
        let sel = zeros(ctx, "S", c * g);
        let probs = zeros(ctx, "P", c * g);
        let idx = zeros(ctx, "idx", c);
        let short = zeros(ctx, "short", 3);
        assert!(
            flgc::select(ctx, "s", [c, g], &t(&sel), [&t(&probs), &t(&idx)])
                .map(|c| vec![c])
                .is_ok()
        );
        assert!(
            flgc::select(ctx, "s", [c, g], &t(&short), [&t(&probs), &t(&idx)])
                .map(|c| vec![c])
                .is_err()
        );
        assert!(
            flgc::select(ctx, "s", [c, g], &t(&sel), [&t(&short), &t(&idx)])
                .map(|c| vec![c])
                .is_err()
        );
        assert!(
            flgc::select(ctx, "s", [c, g], &t(&sel), [&t(&probs), &t(&short)])
                .map(|c| vec![c])
                .is_err()
        );
        assert!(
            flgc::select(ctx, "s", [c, 0], &t(&sel), [&t(&probs), &t(&idx)])
                .map(|c| vec![c])
                .is_err()
        );
        // Index written into the logits' buffer: an alias, refused.
        assert!(flgc::select(
            ctx,
            "s",
            [c, g],
            &t(&sel),
            [&t(&probs), &t(&sel).slice(0, c)]
        )
        .map(|c| vec![c])
        .is_err());

        let w = zeros(ctx, "w", n * c * kk);
        let wm = zeros(ctx, "wm", n * c * kk);
        let oidx = zeros(ctx, "oidx", n);
        assert!(flgc::masked_weight(
            ctx,
            "m",
            &FlgcShape {
                n,
                c,
                groups: 1,
                kk
            },
            &t(&w),
            [&t(&idx), &t(&oidx)],
            &t(&wm)
        )
        .map(|c| vec![c])
        .is_ok());
        assert!(flgc::masked_weight(
            ctx,
            "m",
            &FlgcShape {
                n,
                c,
                groups: 1,
                kk
            },
            &t(&w),
            [&t(&oidx), &t(&oidx)],
            &t(&wm)
        )
        .map(|c| vec![c])
        .is_err());
        assert!(flgc::masked_weight(
            ctx,
            "m",
            &FlgcShape {
                n,
                c,
                groups: 1,
                kk
            },
            &t(&w),
            [&t(&idx), &t(&idx)],
            &t(&wm)
        )
        .map(|c| vec![c])
        .is_err());
        assert!(flgc::masked_weight(
            ctx,
            "m",
            &FlgcShape {
                n,
                c,
                groups: 1,
                kk
            },
            &t(&short),
            [&t(&idx), &t(&oidx)],
            &t(&wm)
        )
        .map(|c| vec![c])
        .is_err());
        assert!(flgc::masked_weight(
            ctx,
            "m",
            &FlgcShape {
                n,
                c,
                groups: 1,
                kk
            },
            &t(&w),
            [&t(&idx), &t(&oidx)],
            &t(&short)
        )
        .map(|c| vec![c])
        .is_err());

        let d = zeros(ctx, "D", n * c * kk);
        let pout = zeros(ctx, "Pout", n * g);
        let (gi, go) = (zeros(ctx, "gi", c * g), zeros(ctx, "go", n * g));
        let ok = sg(
            ctx,
            "g",
            [n, c, g, kk],
            [t(&d), t(&w), t(&idx), t(&oidx), t(&probs), t(&pout)],
            [t(&gi), t(&go)],
        );
        assert_eq!(ok.expect("valid sizes").len(), 4);
        // probs_in and probs_out swapped (sizes differ): refused.
        assert!(sg(
            ctx,
            "g",
            [n, c, g, kk],
            [t(&d), t(&w), t(&idx), t(&oidx), t(&pout), t(&probs)],
            [t(&gi), t(&go)]
        )
        .is_err());
        assert!(sg(
            ctx,
            "g",
            [n, c, g, kk],
            [t(&d), t(&w), t(&idx), t(&oidx), t(&probs), t(&pout)],
            [t(&go), t(&gi)]
        )
        .is_err());
        assert!(sg(
            ctx,
            "g",
            [n, c, g, kk],
            [t(&short), t(&w), t(&idx), t(&oidx), t(&probs), t(&pout)],
            [t(&gi), t(&go)]
        )
        .is_err());
        assert!(sg(
            ctx,
            "g",
            [n, c, g, 4],
            [t(&d), t(&w), t(&idx), t(&oidx), t(&probs), t(&pout)],
            [t(&gi), t(&go)]
        )
        .is_err());
    });
}
