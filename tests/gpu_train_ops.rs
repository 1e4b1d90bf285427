//! Every GPU training kernel (everything but convolution) against its CPU specification in
//! `gconv::train` over property-generated small shapes and named regression cases: training
//! batch norm and its backward, pooling backward, linear backward, the loss head, SGD,
//! ReLU backward, copy / accumulation, dropout; `accumulate = true` on every gradient
//! kernel; bad arguments are errors. Runs on lavapipe; skips loudly without an adapter.

mod common;

use gconv::gpu::kernels::elementwise::{self, Elementwise};
use gconv::gpu::kernels::linear::LinearShape;
use gconv::gpu::kernels::linear_backward::{self, LinearGradArgs};
use gconv::gpu::kernels::loss::{self, LossArgs};
use gconv::gpu::kernels::norm::BnShape;
use gconv::gpu::kernels::norm_train::{self, BnGradArgs, BnTrain, BnTrainArgs};
use gconv::gpu::kernels::optim::{self, SgdArgs};
use gconv::gpu::kernels::pool::{self, PoolKind, PoolShape};
use gconv::gpu::launch::bind_all;
use gconv::gpu::{run_dispatches, Arg, Call, GpuContext};
use gconv::graph::{GraphBuilder, Op, Pool2dSpec};
use gconv::ops::Activation;
use gconv::testing::{assert_close, Tolerance};
use gconv::train::backward as bw;
use gconv::train::{Sgd, SgdConfig};
use gconv::{Tensor, Weights};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

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

fn vals(n: usize, seed: u64) -> Vec<f32> {
    random(&[n], seed).into_data()
}

/// Values from {−1, −½, 0, ½, 1}: many ties for max pooling and argmax.
fn coarse(shape: &[usize], seed: u64) -> Tensor {
    let mut r = SmallRng::seed_from_u64(seed);
    Tensor::from_fn(shape, |_| r.random_range(-2i32..=2) as f32 * 0.5)
}

fn up(ctx: &GpuContext, name: &str, data: &[f32]) -> wgpu::Buffer {
    ctx.upload(name, data).expect("upload")
}

fn scratch1(ctx: &GpuContext) -> Arg {
    Arg::whole(&ctx.storage_buffer("scratch", 4).expect("buffer"))
}

fn t(b: &wgpu::Buffer) -> Arg {
    Arg::whole(b)
}

fn read(ctx: &GpuContext, b: &wgpu::Buffer) -> Vec<f32> {
    ctx.read_f32(b, 0, (b.size() / 4) as usize)
        .expect("read back")
}

fn run(ctx: &GpuContext, d: &[Call]) {
    run_dispatches(ctx, &bind_all(ctx, d).expect("bind")).expect("run");
}

/// The buffer a gradient is written into: zeros, or (accumulate) random values that the
/// kernel must add to. Returns the buffer and its initial contents.
fn grad_buf(ctx: &GpuContext, n: usize, accumulate: bool, seed: u64) -> (wgpu::Buffer, Vec<f32>) {
    let init = if accumulate {
        vals(n, seed)
    } else {
        vec![f32::NAN; n] // overwrite must not read it
    };
    (up(ctx, "grad", &init), init)
}

/// `init + want` when accumulating, else `want`.
fn expect(want: &[f32], init: &[f32], accumulate: bool) -> Vec<f32> {
    if accumulate {
        want.iter().zip(init).map(|(w, i)| w + i).collect()
    } else {
        want.to_vec()
    }
}

// ---------------------------------------------------------------------------------------
// batch norm

fn check_bn(
    ctx: &GpuContext,
    [b, c, h, w]: [usize; 4],
    accumulate: bool,
    seed: u64,
    tol: Tolerance,
) {
    let what = format!("bn {b}x{c}x{h}x{w} acc={accumulate}");
    let x = random(&[b, c, h, w], seed);
    // Shifted and scaled per channel, so the mean and variance matter.
    let x = Tensor::from_fn(&[b, c, h, w], |i| {
        let ch = (i / (h * w)) % c;
        x.data()[i] * (0.5 + ch as f32) + ch as f32 * 0.3
    });
    let gamma = vals(c, seed + 1);
    let beta = vals(c, seed + 2);
    let rm0 = vals(c, seed + 3);
    let rv0: Vec<f32> = vals(c, seed + 4).iter().map(|v| v.abs() + 0.5).collect();
    let (eps, momentum) = (1e-5, 0.1);
    let (want_y, st) = bw::batch_norm_train(&x, &gamma, &beta, eps).unwrap();
    let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
    bw::update_running_stats(&mut rm, &mut rv, &st, momentum);

    let xb = up(ctx, "x", x.data());
    let gb = up(ctx, "gamma", &gamma);
    let bb = up(ctx, "beta", &beta);
    let yb = up(ctx, "y", &vec![f32::NAN; x.numel()]);
    let sb = ctx.storage_buffer("stats", (2 * c * 4) as u64).unwrap();
    let rmb = up(ctx, "rm", &rm0);
    let rvb = up(ctx, "rv", &rv0);
    let d = norm_train::forward(
        ctx,
        "bn",
        (
            &BnShape {
                batch: b,
                channels: c,
                hw: h * w,
            },
            BnTrain {
                eps,
                momentum,
                act: Activation::None,
            },
        ),
        BnTrainArgs {
            x: t(&xb),
            gamma: t(&gb),
            beta: t(&bb),
            y: t(&yb),
            stats: t(&sb),
            running_mean: t(&rmb),
            running_var: t(&rvb),
        },
    )
    .unwrap();
    run(ctx, &d);
    assert_close(&format!("{what} y"), &read(ctx, &yb), want_y.data(), tol);
    let want_stats = [st.mean.clone(), st.invstd.clone()].concat();
    assert_close(&format!("{what} stats"), &read(ctx, &sb), &want_stats, tol);
    assert_close(&format!("{what} running_mean"), &read(ctx, &rmb), &rm, tol);
    assert_close(&format!("{what} running_var"), &read(ctx, &rvb), &rv, tol);

    let dy = random(&[b, c, h, w], seed + 5);
    let (want_dx, want_dg, want_db) = bw::batch_norm_train_backward(&x, &gamma, &st, &dy).unwrap();
    // The CPU's own statistics, so the backward is compared on identical inputs.
    let sb = up(ctx, "stats", &want_stats);
    let dyb = up(ctx, "dy", dy.data());
    let (dxb, init) = grad_buf(ctx, x.numel(), accumulate, seed + 6);
    let dgb = up(ctx, "dgamma", &vec![f32::NAN; c]);
    let dbb = up(ctx, "dbeta", &vec![f32::NAN; c]);
    let d = norm_train::backward(
        ctx,
        "bn_bw",
        (
            &BnShape {
                batch: b,
                channels: c,
                hw: h * w,
            },
            accumulate,
        ),
        BnGradArgs {
            x: t(&xb),
            gamma: t(&gb),
            stats: t(&sb),
            dy: t(&dyb),
            dx: t(&dxb),
            dgamma: t(&dgb),
            dbeta: t(&dbb),
            scratch: scratch1(ctx),
        },
    )
    .unwrap();
    run(ctx, &d);
    assert_close(&format!("{what} dgamma"), &read(ctx, &dgb), &want_dg, tol);
    assert_close(&format!("{what} dbeta"), &read(ctx, &dbb), &want_db, tol);
    let want = expect(want_dx.data(), &init, accumulate);
    assert_close(&format!("{what} dx"), &read(ctx, &dxb), &want, tol);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn batch_norm_train_matches_cpu(b in 1usize..=3, c in 1usize..=6, h in 1usize..=7, w in 1usize..=7,
                                    accumulate in any::<bool>(), seed in 0u64..1000) {
        prop_assume!(b * h * w >= 2);
        with_gpu(|ctx| check_bn(ctx, [b, c, h, w], accumulate, seed, Tolerance::F32_OP));
    }
}

#[test]
fn batch_norm_train_regressions() {
    with_gpu(|ctx| {
        // Two values per channel (the minimum), one pixel per plane.
        check_bn(ctx, [2, 3, 1, 1], false, 1, Tolerance::F32_OP);
        check_bn(ctx, [1, 2, 1, 2], true, 2, Tolerance::F32_OP);
        // More values per channel than the 256 invocations of a reduction workgroup.
        check_bn(ctx, [4, 3, 20, 50], true, 3, Tolerance::F32_OP);
        check_bn(ctx, [3, 5, 17, 13], false, 4, Tolerance::F32_OP);
        // 16 384 values per channel (64 per reduction invocation).
        check_bn(ctx, [16, 2, 32, 32], true, 5, Tolerance::F32_OP);
    });
}

// ---------------------------------------------------------------------------------------
// pooling backward

fn check_pool(
    ctx: &GpuContext,
    [b, c, h, w]: [usize; 4],
    spec: &Pool2dSpec,
    accumulate: bool,
    seed: u64,
) {
    let what = format!("{b}x{c}x{h}x{w} {spec:?} acc={accumulate}");
    let x = coarse(&[b, c, h, w], seed);
    let [oh, ow] = spec.out_hw(h, w).unwrap();
    let dy = random(&[b, c, oh, ow], seed + 1);
    let xb = up(ctx, "x", x.data());
    let dyb = up(ctx, "dy", dy.data());

    let want = bw::max_pool2d_backward(&x, spec, &dy).unwrap();
    let (gb, init) = grad_buf(ctx, x.numel(), accumulate, seed + 2);
    let d = pool::backward(
        ctx,
        "maxpool_bw",
        &PoolShape {
            kind: PoolKind::Max(*spec),
            batch: b,
            channels: c,
            in_hw: [h, w],
        },
        Some(&t(&xb)),
        &t(&dyb),
        &t(&gb),
        accumulate,
    )
    .map(|c| vec![c])
    .unwrap();
    run(ctx, &d);
    let want = expect(want.data(), &init, accumulate);
    assert_close(
        &format!("max {what}"),
        &read(ctx, &gb),
        &want,
        Tolerance::F32_OP,
    );

    let want = bw::avg_pool2d_backward(x.shape(), spec, &dy).unwrap();
    let (gb, init) = grad_buf(ctx, x.numel(), accumulate, seed + 3);
    let d = pool::backward(
        ctx,
        "avgpool_bw",
        &PoolShape {
            kind: PoolKind::Avg(*spec),
            batch: b,
            channels: c,
            in_hw: [h, w],
        },
        None,
        &t(&dyb),
        &t(&gb),
        accumulate,
    )
    .map(|c| vec![c])
    .unwrap();
    run(ctx, &d);
    let want = expect(want.data(), &init, accumulate);
    assert_close(
        &format!("avg {what}"),
        &read(ctx, &gb),
        &want,
        Tolerance::F32_OP,
    );
}

fn check_adaptive(
    ctx: &GpuContext,
    [b, c, h, w]: [usize; 4],
    out: [usize; 2],
    accumulate: bool,
    seed: u64,
) {
    let dy = random(&[b, c, out[0], out[1]], seed);
    let want = bw::adaptive_avg_pool2d_backward(&[b, c, h, w], out, &dy).unwrap();
    let dyb = up(ctx, "dy", dy.data());
    let (gb, init) = grad_buf(ctx, b * c * h * w, accumulate, seed + 1);
    let d = pool::backward(
        ctx,
        "aap_bw",
        &PoolShape {
            kind: PoolKind::Adaptive(out),
            batch: b,
            channels: c,
            in_hw: [h, w],
        },
        None,
        &t(&dyb),
        &t(&gb),
        accumulate,
    )
    .map(|c| vec![c])
    .unwrap();
    run(ctx, &d);
    let want = expect(want.data(), &init, accumulate);
    assert_close(
        &format!("adaptive {h}x{w}->{out:?} acc={accumulate}"),
        &read(ctx, &gb),
        &want,
        Tolerance::F32_OP,
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn pool_backward_matches_cpu(b in 1usize..=2, c in 1usize..=3, h in 3usize..=11, w in 3usize..=11,
                                 k in 1usize..=3, s in 1usize..=3, p in 0usize..=1,
                                 accumulate in any::<bool>(), seed in 0u64..1000) {
        prop_assume!(p <= k / 2);
        with_gpu(|ctx| check_pool(ctx, [b, c, h, w], &Pool2dSpec::square(k, s, p), accumulate, seed));
    }

    #[test]
    fn adaptive_avg_pool_backward_matches_cpu(b in 1usize..=2, c in 1usize..=3, h in 1usize..=10, w in 1usize..=10,
                                              oh in 1usize..=9, ow in 1usize..=9,
                                              accumulate in any::<bool>(), seed in 0u64..1000) {
        with_gpu(|ctx| check_adaptive(ctx, [b, c, h, w], [oh, ow], accumulate, seed));
    }
}

#[test]
fn pool_backward_regressions() {
    with_gpu(|ctx| {
        // Overlapping 3×3 windows, stride 2, padding 1 (ResNet's stem), odd and even sizes.
        let s = Pool2dSpec::square(3, 2, 1);
        check_pool(ctx, [2, 3, 7, 7], &s, false, 1);
        check_pool(ctx, [1, 2, 8, 8], &s, true, 2);
        // 3×3 stride 2 without padding on an odd size; 2×2 stride 2 dropping the last row.
        check_pool(ctx, [1, 2, 9, 7], &Pool2dSpec::square(3, 2, 0), false, 3);
        check_pool(ctx, [2, 1, 5, 5], &Pool2dSpec::square(2, 2, 0), true, 4);
        // Rectangular window and stride.
        let r = Pool2dSpec {
            kernel: [2, 3],
            stride: [1, 2],
            padding: [1, 1],
        };
        check_pool(ctx, [1, 2, 6, 7], &r, false, 5);
        // Adaptive: to 1×1 (global average), non-divisible down and up, 1×1 input.
        check_adaptive(ctx, [2, 3, 7, 7], [1, 1], false, 6);
        check_adaptive(ctx, [2, 3, 7, 5], [3, 3], true, 7);
        check_adaptive(ctx, [1, 2, 3, 5], [5, 7], false, 8);
        check_adaptive(ctx, [1, 2, 1, 1], [2, 3], true, 9);
    });
}

/// Ties: all-equal windows send the whole gradient to the window's first element.
#[test]
fn max_pool_backward_ties_go_to_the_first_maximum() {
    with_gpu(|ctx| {
        let x = Tensor::from_fn(&[1, 1, 4, 4], |_| 1.0);
        let spec = Pool2dSpec::square(2, 2, 0);
        let dy = Tensor::new(vec![1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let want = bw::max_pool2d_backward(&x, &spec, &dy).unwrap();
        let (xb, dyb) = (up(ctx, "x", x.data()), up(ctx, "dy", dy.data()));
        let gb = ctx.storage_buffer("g", 16 * 4).unwrap();
        let d = pool::backward(
            ctx,
            "ties",
            &PoolShape {
                kind: PoolKind::Max(spec),
                batch: 1,
                channels: 1,
                in_hw: [4, 4],
            },
            Some(&t(&xb)),
            &t(&dyb),
            &t(&gb),
            false,
        )
        .map(|c| vec![c])
        .unwrap();
        run(ctx, &d);
        let got = read(ctx, &gb);
        assert_eq!(got, want.data());
        assert_eq!(got[0], 1.0);
        assert_eq!(got[10], 4.0);
    });
}

// ---------------------------------------------------------------------------------------
// linear backward

fn check_linear(
    ctx: &GpuContext,
    b: usize,
    fin: usize,
    fout: usize,
    bias: bool,
    accumulate: bool,
    seed: u64,
) {
    let x = random(&[b, fin], seed);
    let wt = random(&[fout, fin], seed + 1);
    let dy = random(&[b, fout], seed + 2);
    let (dx, dw, db) = bw::linear_backward(&x, &wt, &dy, bias).unwrap();
    let (xb, wb, dyb) = (
        up(ctx, "x", x.data()),
        up(ctx, "w", wt.data()),
        up(ctx, "dy", dy.data()),
    );
    let (dxb, init) = grad_buf(ctx, b * fin, accumulate, seed + 3);
    let dwb = up(ctx, "dw", &vec![f32::NAN; fout * fin]);
    let dbb = up(ctx, "db", &vec![f32::NAN; fout]);
    let d = linear_backward::backward(
        ctx,
        "fc_bw",
        (
            &LinearShape {
                batch: b,
                in_features: fin,
                out_features: fout,
            },
            accumulate,
        ),
        LinearGradArgs {
            x: &t(&xb),
            weight: &[t(&wb)],
            dy: &t(&dyb),
            dx: &t(&dxb),
            dw: &[t(&dwb)],
            db: bias.then(|| t(&dbb)).as_ref(),
        },
    )
    .unwrap();
    assert_eq!(d.len(), 2 + usize::from(bias));
    run(ctx, &d);
    let what = format!("linear b{b} {fin}->{fout} bias={bias} acc={accumulate}");
    let want = expect(dx.data(), &init, accumulate);
    assert_close(
        &format!("{what} dx"),
        &read(ctx, &dxb),
        &want,
        Tolerance::F32_OP,
    );
    assert_close(
        &format!("{what} dW"),
        &read(ctx, &dwb),
        dw.data(),
        Tolerance::F32_OP,
    );
    if let Some(db) = db {
        assert_close(
            &format!("{what} db"),
            &read(ctx, &dbb),
            db.data(),
            Tolerance::F32_OP,
        );
    } else {
        assert!(
            read(ctx, &dbb).iter().all(|v| v.is_nan()),
            "db written without a bias"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn linear_backward_matches_cpu(b in 1usize..=6, fin in 1usize..=50, fout in 1usize..=20,
                                   bias in any::<bool>(), accumulate in any::<bool>(), seed in 0u64..1000) {
        with_gpu(|ctx| check_linear(ctx, b, fin, fout, bias, accumulate, seed));
    }
}

#[test]
fn linear_backward_regressions() {
    with_gpu(|ctx| {
        check_linear(ctx, 1, 1, 1, true, true, 1);
        // A classifier head: 64 samples, 512 features, 10 classes (dW sums over the batch).
        check_linear(ctx, 64, 512, 10, true, false, 2);
    });
}

// ---------------------------------------------------------------------------------------
// loss

/// Per-sample CPU loss and correctness flag (the CPU function on a batch of one).
fn cpu_per_sample(logits: &Tensor, labels: &[usize]) -> Vec<f32> {
    let k = logits.shape()[1];
    labels
        .iter()
        .enumerate()
        .flat_map(|(n, &l)| {
            let row = Tensor::new(vec![1, k], logits.data()[n * k..(n + 1) * k].to_vec()).unwrap();
            let (loss, _, correct) = bw::softmax_cross_entropy(&row, &[l]).unwrap();
            [loss, correct as f32]
        })
        .collect()
}

fn check_loss(ctx: &GpuContext, b: usize, k: usize, seed: u64) {
    // Coarse logits (ties for the argmax) scaled up, so the softmax is far from uniform.
    let logits = coarse(&[b, k], seed);
    let logits = Tensor::from_fn(&[b, k], |i| logits.data()[i] * 6.0);
    let mut r = SmallRng::seed_from_u64(seed + 1);
    let labels: Vec<usize> = (0..b).map(|_| r.random_range(0..k)).collect();
    let (want_loss, want_grad, want_correct) = bw::softmax_cross_entropy(&logits, &labels).unwrap();
    let want_ps = cpu_per_sample(&logits, &labels);

    let lb = up(ctx, "logits", logits.data());
    let labels_u32: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let yb = ctx.upload_u32("labels", &labels_u32).unwrap();
    let gb = up(ctx, "grad", &vec![f32::NAN; b * k]);
    let pb = up(ctx, "per_sample", &vec![f32::NAN; 2 * b]);
    let d = loss::softmax_cross_entropy(
        ctx,
        "loss",
        [b, k],
        LossArgs {
            logits: t(&lb),
            labels: t(&yb),
            grad_logits: t(&gb),
            per_sample: t(&pb),
        },
    )
    .map(|c| vec![c])
    .unwrap();
    run(ctx, &d);
    let what = format!("loss b{b} k{k}");
    assert_close(
        &format!("{what} grad"),
        &read(ctx, &gb),
        want_grad.data(),
        Tolerance::F32_OP,
    );
    let ps = read(ctx, &pb);
    assert_close(
        &format!("{what} per_sample"),
        &ps,
        &want_ps,
        Tolerance::F32_OP,
    );
    let flags: Vec<f32> = ps.iter().skip(1).step_by(2).copied().collect();
    assert!(flags.iter().all(|&f| f == 0.0 || f == 1.0), "{flags:?}");
    assert_eq!(
        flags.iter().sum::<f32>() as usize,
        want_correct,
        "{what} correct count"
    );
    let mean = ps.iter().step_by(2).sum::<f32>() / b as f32;
    assert_close(
        &format!("{what} mean"),
        &[mean],
        &[want_loss],
        Tolerance::F32_OP,
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn softmax_cross_entropy_matches_cpu(b in 1usize..=9, k in 1usize..=12, seed in 0u64..1000) {
        with_gpu(|ctx| check_loss(ctx, b, k, seed));
    }
}

#[test]
fn softmax_cross_entropy_regressions() {
    with_gpu(|ctx| {
        check_loss(ctx, 70, 10, 1); // more samples than one workgroup
        check_loss(ctx, 3, 1000, 2);
        // Argmax ties go to the lowest index: row 0 = [2, 2, 0] labelled 0 is correct,
        // row 1 = [2, 2, 0] labelled 1 is not.
        let logits = [2.0f32, 2.0, 0.0, 2.0, 2.0, 0.0];
        let lb = up(ctx, "logits", &logits);
        let yb = ctx.upload_u32("labels", &[0, 1]).unwrap();
        let gb = ctx.storage_buffer("grad", 6 * 4).unwrap();
        let pb = ctx.storage_buffer("ps", 4 * 4).unwrap();
        let d = loss::softmax_cross_entropy(
            ctx,
            "ties",
            [2, 3],
            LossArgs {
                logits: t(&lb),
                labels: t(&yb),
                grad_logits: t(&gb),
                per_sample: t(&pb),
            },
        )
        .map(|c| vec![c])
        .unwrap();
        run(ctx, &d);
        let ps = read(ctx, &pb);
        assert_eq!((ps[1], ps[3]), (1.0, 0.0), "{ps:?}");
    });
}

/// A label ≥ classes: loss NaN, flag 0 and a zero gradient row for that sample only.
#[test]
fn softmax_cross_entropy_bad_label_is_reported_not_a_fault() {
    with_gpu(|ctx| {
        let (b, k) = (3, 4);
        let logits = vals(b * k, 1);
        let lb = up(ctx, "logits", &logits);
        let yb = ctx.upload_u32("labels", &[1, 4, u32::MAX]).unwrap();
        let gb = up(ctx, "grad", &vec![f32::NAN; b * k]);
        let pb = up(ctx, "ps", &vec![0.5; 2 * b]);
        let d = loss::softmax_cross_entropy(
            ctx,
            "bad",
            [b, k],
            LossArgs {
                logits: t(&lb),
                labels: t(&yb),
                grad_logits: t(&gb),
                per_sample: t(&pb),
            },
        )
        .map(|c| vec![c])
        .unwrap();
        run(ctx, &d);
        let (g, ps) = (read(ctx, &gb), read(ctx, &pb));
        assert!(ps[0].is_finite() && ps[0] > 0.0, "{ps:?}");
        assert!(ps[2].is_nan() && ps[4].is_nan(), "{ps:?}");
        assert_eq!((ps[3], ps[5]), (0.0, 0.0));
        assert!(g[k..].iter().all(|&v| v == 0.0), "{g:?}");
        let row0 = Tensor::new(vec![1, k], logits[..k].to_vec()).unwrap();
        let (_, want, _) = bw::softmax_cross_entropy(&row0, &[1]).unwrap();
        let want: Vec<f32> = want.data().iter().map(|v| v / b as f32).collect();
        assert_close("bad-label batch row 0", &g[..k], &want, Tolerance::F32_OP);
    });
}

// ---------------------------------------------------------------------------------------
// SGD

/// Two steps (lr 0.1 then 0.05, rewritten into `hyper` between them; the dispatches are
/// built once) of a linear layer's weight (decayed) and bias, against `Sgd::step`.
#[test]
fn sgd_two_steps_match_cpu() {
    with_gpu(|ctx| {
        let (fin, fout) = (37, 5);
        let mut gb = GraphBuilder::new("sgd", [1, 1, fin]);
        let f = gb
            .push("flat", Op::Flatten(gconv::ops::Flatten), &[gb.input()])
            .unwrap();
        let fc = gb
            .push(
                "fc",
                Op::Linear(gconv::ops::Linear {
                    in_features: fin,
                    out_features: fout,
                    bias: true,
                }),
                &[f],
            )
            .unwrap();
        let graph = gb.finish(fc);
        let config = SgdConfig {
            momentum: 0.9,
            weight_decay: 5e-3,
        };
        let mut weights = Weights::new();
        weights.insert("fc.weight", random(&[fout, fin], 1));
        weights.insert("fc.bias", random(&[fout], 2));
        let mut grads = Weights::new();
        grads.insert("fc.weight", random(&[fout, fin], 3));
        grads.insert("fc.bias", random(&[fout], 4));
        let w0 = weights.clone();

        let hyper = up(ctx, "hyper", &[0.0, 123.0]); // extra values are ignored
        let mut bufs = Vec::new();
        for key in ["fc.weight", "fc.bias"] {
            let n = w0.require(key).unwrap().numel();
            let p = up(ctx, key, w0.require(key).unwrap().data());
            let g = up(ctx, "grad", grads.require(key).unwrap().data());
            let v = ctx.storage_buffer("velocity", (n * 4) as u64).unwrap();
            bufs.push((key, n, p, g, v));
        }
        let mut dispatches = Vec::new();
        for (key, n, p, g, v) in &bufs {
            // Both are decayed (conv / linear weights and biases), as `trainable_params`.
            dispatches.extend(
                optim::sgd(
                    ctx,
                    key,
                    (
                        *n,
                        &SgdConfig {
                            momentum: config.momentum,
                            weight_decay: config.weight_decay,
                        },
                        true,
                    ),
                    SgdArgs {
                        grad: t(g),
                        hyper: t(&hyper),
                        param: t(p),
                        velocity: t(v),
                    },
                )
                .map(|c| vec![c])
                .unwrap(),
            );
        }
        let mut opt = Sgd::new(config);
        for lr in [0.1f32, 0.05] {
            opt.step(&graph, &mut weights, &grads, lr).unwrap();
            ctx.queue
                .write_buffer(&hyper, 0, bytemuck::cast_slice(&[lr]));
            run(ctx, &dispatches);
        }
        for (key, _, p, _, v) in &bufs {
            assert_close(
                key,
                &read(ctx, p),
                weights.require(key).unwrap().data(),
                Tolerance::F32_OP,
            );
            let m = opt.state().require(&format!("{key}.momentum")).unwrap();
            assert_close(
                &format!("{key} velocity"),
                &read(ctx, v),
                m.data(),
                Tolerance::F32_OP,
            );
        }
    });
}

// ---------------------------------------------------------------------------------------
// element-wise

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn relu_backward_copy_mul_match_cpu(n in 1usize..=3000, accumulate in any::<bool>(), seed in 0u64..1000) {
        with_gpu(|ctx| check_elementwise(ctx, n, accumulate, seed));
    }
}

fn check_elementwise(ctx: &GpuContext, n: usize, accumulate: bool, seed: u64) {
    let x = coarse(&[n], seed); // exact zeros: x ≤ 0 blocks the gradient
    let dy = random(&[n], seed + 1);
    let (xb, dyb) = (up(ctx, "x", x.data()), up(ctx, "dy", dy.data()));

    let want = bw::relu_backward(&x, &dy).unwrap();
    let (gb, init) = grad_buf(ctx, n, accumulate, seed + 2);
    run(
        ctx,
        &elementwise::activation_backward(
            ctx,
            "relu_bw",
            Elementwise::len(n)
                .act(Activation::Relu)
                .accumulate(accumulate),
            &t(&xb),
            &t(&dyb),
            &t(&gb),
        )
        .map(|c| vec![c])
        .unwrap(),
    );
    let want = expect(want.data(), &init, accumulate);
    assert_close(
        &format!("relu_backward n{n} acc={accumulate}"),
        &read(ctx, &gb),
        &want,
        Tolerance::F32_OP,
    );

    let (gb, init) = grad_buf(ctx, n, accumulate, seed + 3);
    run(
        ctx,
        &elementwise::copy(
            ctx,
            "copy",
            Elementwise::len(n).accumulate(accumulate),
            &t(&dyb),
            &t(&gb),
        )
        .map(|c| vec![c])
        .unwrap(),
    );
    let want = expect(dy.data(), &init, accumulate);
    assert_close(
        &format!("copy n{n} acc={accumulate}"),
        &read(ctx, &gb),
        &want,
        Tolerance::F32_OP,
    );

    let (gb, init) = grad_buf(ctx, n, accumulate, seed + 4);
    run(
        ctx,
        &elementwise::mul(
            ctx,
            "mul",
            Elementwise::len(n).accumulate(accumulate),
            [&t(&dyb), &t(&xb)],
            &t(&gb),
        )
        .map(|c| vec![c])
        .unwrap(),
    );
    let prod: Vec<f32> = dy.data().iter().zip(x.data()).map(|(a, b)| a * b).collect();
    let want = expect(&prod, &init, accumulate);
    assert_close(
        &format!("mul n{n} acc={accumulate}"),
        &read(ctx, &gb),
        &want,
        Tolerance::F32_OP,
    );
}

/// Copy with accumulation over more than 65535 workgroups: the folded grid is exact.
#[test]
fn copy_accumulate_folded_grid() {
    with_gpu(|ctx| {
        let n: usize = 65_535 * gconv::gpu::kernels::WG as usize + 777;
        let (src, dst0) = (vals(n, 1), vals(n, 2));
        let (sb, db) = (up(ctx, "src", &src), up(ctx, "dst", &dst0));
        let d = elementwise::copy(
            ctx,
            "copy_big",
            Elementwise::len(n).accumulate(true),
            &t(&sb),
            &t(&db),
        )
        .map(|c| vec![c])
        .unwrap();
        assert!(d[0].grid[1] > 1, "grid {:?} not folded", d[0].grid);
        run(ctx, &d);
        let want: Vec<f32> = src.iter().zip(&dst0).map(|(a, b)| a + b).collect();
        assert_close("copy folded", &read(ctx, &db), &want, Tolerance::F32_OP);
    });
}

fn dropout(ctx: &GpuContext, n: usize, p: f32, seed: [u32; 2], x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let xb = up(ctx, "x", x);
    let sb = ctx.upload_u32("seed", &seed).unwrap();
    let mb = ctx.storage_buffer("mask", (n * 4) as u64).unwrap();
    let yb = ctx.storage_buffer("y", (n * 4) as u64).unwrap();
    run(
        ctx,
        &elementwise::dropout(ctx, "dropout", (n, p), &t(&sb), &t(&xb), [&t(&mb), &t(&yb)])
            .unwrap(),
    );
    (read(ctx, &mb), read(ctx, &yb))
}

#[test]
fn dropout_statistics_and_seeding() {
    with_gpu(|ctx| {
        let n = 50_000;
        let x = vals(n, 1);
        for p in [0.1f32, 0.5, 0.8] {
            let scale = 1.0 / (1.0 - p);
            let (mask, y) = dropout(ctx, n, p, [7, 11], &x);
            let dropped = mask.iter().filter(|&&m| m == 0.0).count() as f64 / n as f64;
            // Binomial standard deviation at n = 50 000 is ≤ 0.0023; allow ~4σ.
            assert!(
                (dropped - f64::from(p)).abs() < 0.01,
                "p {p}: dropped {dropped}"
            );
            assert!(
                mask.iter().all(|&m| m == 0.0 || m == scale),
                "p {p}: mask values"
            );
            for i in 0..n {
                let want = if mask[i] == 0.0 { 0.0 } else { x[i] * scale };
                assert!(
                    (y[i] - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "p {p} i {i}"
                );
            }
            // No long-range structure: each half drops about p too.
            let half = mask[..n / 2].iter().filter(|&&m| m == 0.0).count() as f64 / (n / 2) as f64;
            assert!(
                (half - f64::from(p)).abs() < 0.015,
                "p {p}: first half {half}"
            );
            // Same seed → same mask; changing either word → a different one.
            assert_eq!(dropout(ctx, n, p, [7, 11], &x).0, mask);
            for other in [[8, 11], [7, 12]] {
                let m2 = dropout(ctx, n, p, other, &x).0;
                let same = mask.iter().zip(&m2).filter(|(a, b)| a == b).count() as f64 / n as f64;
                // Independent masks agree on p² + (1−p)² of the entries.
                let indep = f64::from(p * p + (1.0 - p) * (1.0 - p));
                assert!(
                    (same - indep).abs() < 0.02,
                    "p {p} seed {other:?}: agreement {same} vs {indep}"
                );
            }
        }
        // p = 0 keeps everything (mask 1, y = x).
        let (mask, y) = dropout(ctx, 1000, 0.0, [1, 2], &x[..1000]);
        assert!(mask.iter().all(|&m| m == 1.0));
        assert_eq!(y, x[..1000]);
    });
}

// ---------------------------------------------------------------------------------------
// bad arguments: errors naming the layer, never panics

fn assert_err<T: std::fmt::Debug>(r: gconv::Result<T>, label: &str) {
    match r {
        Ok(v) => panic!("expected an error for {label}, got {v:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(label), "error `{msg}` does not name `{label}`");
        }
    }
}

#[test]
fn bad_arguments_are_errors() {
    with_gpu(|ctx| {
        let buf = |n: usize| ctx.storage_buffer("b", (n * 4) as u64).unwrap();
        // batch norm: [2, 3, 4]
        let (x, x_short, c3, c2, c6, c6b, c3b, c3c) = (
            buf(24),
            buf(23),
            buf(3),
            buf(2),
            buf(6),
            buf(6),
            buf(3),
            buf(3),
        );
        let (y, rm, rv) = (buf(24), buf(3), buf(3));
        let bn = |label, xr: &wgpu::Buffer, gamma: &wgpu::Buffer, stats: &wgpu::Buffer, b, hw| {
            norm_train::forward(
                ctx,
                label,
                (
                    &BnShape {
                        batch: b,
                        channels: 3,
                        hw,
                    },
                    BnTrain {
                        eps: 1e-5,
                        momentum: 0.1,
                        act: Activation::None,
                    },
                ),
                BnTrainArgs {
                    x: t(xr),
                    gamma: t(gamma),
                    beta: t(&c3b),
                    y: t(&y),
                    stats: t(stats),
                    running_mean: t(&rm),
                    running_var: t(&rv),
                },
            )
        };
        assert!(bn("bn_ok", &x, &c3, &c6, 2, 4).is_ok());
        assert_err(bn("bn.short_x", &x_short, &c3, &c6, 2, 4), "bn.short_x");
        assert_err(bn("bn.gamma", &x, &c2, &c6, 2, 4), "bn.gamma");
        assert_err(bn("bn.stats", &x, &c3, &c3c, 2, 4), "bn.stats");
        assert_err(bn("bn.zero", &x, &c3, &c6, 0, 4), "bn.zero");
        // One value per channel: no batch statistics in training.
        let one = buf(3);
        assert_err(
            norm_train::forward(
                ctx,
                "bn.single",
                (
                    &BnShape {
                        batch: 1,
                        channels: 3,
                        hw: 1,
                    },
                    BnTrain {
                        eps: 1e-5,
                        momentum: 0.1,
                        act: Activation::None,
                    },
                ),
                BnTrainArgs {
                    x: t(&one),
                    gamma: t(&c3),
                    beta: t(&c3b),
                    y: t(&c3c),
                    stats: t(&c6),
                    running_mean: t(&rm),
                    running_var: t(&rv),
                },
            ),
            "bn.single",
        );
        // The output aliasing an input buffer.
        assert_err(
            norm_train::forward(
                ctx,
                "bn.alias",
                (
                    &BnShape {
                        batch: 2,
                        channels: 3,
                        hw: 4,
                    },
                    BnTrain {
                        eps: 1e-5,
                        momentum: 0.1,
                        act: Activation::None,
                    },
                ),
                BnTrainArgs {
                    x: t(&x),
                    gamma: t(&c3),
                    beta: t(&c3b),
                    y: t(&x),
                    stats: t(&c6),
                    running_mean: t(&rm),
                    running_var: t(&rv),
                },
            ),
            "bn.alias",
        );
        let (dy, dx, dg, db) = (buf(24), buf(24), buf(3), buf(3));
        let bnb = |label, dxr: &wgpu::Buffer, dgr: &wgpu::Buffer| {
            norm_train::backward(
                ctx,
                label,
                (
                    &BnShape {
                        batch: 2,
                        channels: 3,
                        hw: 4,
                    },
                    true,
                ),
                BnGradArgs {
                    x: t(&x),
                    gamma: t(&c3),
                    stats: t(&c6),
                    dy: t(&dy),
                    dx: t(dxr),
                    dgamma: t(dgr),
                    dbeta: t(&db),
                    scratch: scratch1(ctx),
                },
            )
        };
        assert!(bnb("bnb_ok", &dx, &dg).is_ok());
        assert_err(bnb("bnb.dx", &x_short, &dg), "bnb.dx");
        assert_err(bnb("bnb.dg", &dx, &c6b), "bnb.dg");

        // pooling: [1, 2, 5, 5], 3×3 s2 → 2×2
        let spec = Pool2dSpec::square(3, 2, 0);
        let (px, pdy, pdx, pdy_bad) = (buf(50), buf(8), buf(50), buf(9));
        assert!(pool::backward(
            ctx,
            "mp_ok",
            &PoolShape {
                kind: PoolKind::Max(spec),
                batch: 1,
                channels: 2,
                in_hw: [5, 5]
            },
            Some(&t(&px)),
            &t(&pdy),
            &t(&pdx),
            false
        )
        .map(|c| vec![c])
        .is_ok());
        assert_err(
            pool::backward(
                ctx,
                "mp.dy",
                &PoolShape {
                    kind: PoolKind::Max(spec),
                    batch: 1,
                    channels: 2,
                    in_hw: [5, 5],
                },
                Some(&t(&px)),
                &t(&pdy_bad),
                &t(&pdx),
                false,
            )
            .map(|c| vec![c]),
            "mp.dy",
        );
        assert_err(
            pool::backward(
                ctx,
                "mp.x",
                &PoolShape {
                    kind: PoolKind::Max(spec),
                    batch: 1,
                    channels: 2,
                    in_hw: [5, 5],
                },
                Some(&t(&x)),
                &t(&pdy),
                &t(&pdx),
                false,
            )
            .map(|c| vec![c]),
            "mp.x",
        );
        assert_err(
            pool::backward(
                ctx,
                "ap.window",
                &PoolShape {
                    kind: PoolKind::Avg(spec),
                    batch: 1,
                    channels: 2,
                    in_hw: [2, 2],
                },
                None,
                &t(&pdy),
                &t(&pdx),
                false,
            )
            .map(|c| vec![c]),
            "ap.window",
        );
        assert_err(
            pool::backward(
                ctx,
                "ap.stride0",
                &PoolShape {
                    kind: PoolKind::Avg(Pool2dSpec::square(3, 0, 0)),
                    batch: 1,
                    channels: 2,
                    in_hw: [5, 5],
                },
                None,
                &t(&pdy),
                &t(&pdx),
                false,
            )
            .map(|c| vec![c]),
            "ap.stride0",
        );
        assert_err(
            pool::backward(
                ctx,
                "aap.dx",
                &PoolShape {
                    kind: PoolKind::Adaptive([2, 2]),
                    batch: 1,
                    channels: 2,
                    in_hw: [5, 5],
                },
                None,
                &t(&pdy),
                &t(&pdy_bad),
                true,
            )
            .map(|c| vec![c]),
            "aap.dx",
        );
        assert_err(
            pool::backward(
                ctx,
                "aap.zero",
                &PoolShape {
                    kind: PoolKind::Adaptive([0, 2]),
                    batch: 1,
                    channels: 2,
                    in_hw: [5, 5],
                },
                None,
                &t(&pdy),
                &t(&pdx),
                true,
            )
            .map(|c| vec![c]),
            "aap.zero",
        );

        // linear: b 2, 4 → 3
        let (lx, lw, ldy, ldx, ldw, ldb) = (buf(8), buf(12), buf(6), buf(8), buf(12), buf(3));
        let lin = |label, w: &wgpu::Buffer, db: Option<&wgpu::Buffer>| {
            linear_backward::backward(
                ctx,
                label,
                (
                    &LinearShape {
                        batch: 2,
                        in_features: 4,
                        out_features: 3,
                    },
                    false,
                ),
                LinearGradArgs {
                    x: &t(&lx),
                    weight: &[t(w)],
                    dy: &t(&ldy),
                    dx: &t(&ldx),
                    dw: &[t(&ldw)],
                    db: db.map(t).as_ref(),
                },
            )
        };
        assert!(lin("fc_ok", &lw, Some(&ldb)).is_ok());
        assert_err(lin("fc.w", &ldx, Some(&ldb)), "fc.w");
        assert_err(lin("fc.b", &lw, Some(&c2)), "fc.b");

        // loss: b 2, k 3
        let (lg, lab, gg, ps) = (
            buf(6),
            ctx.upload_u32("l", &[0, 1]).unwrap(),
            buf(6),
            buf(4),
        );
        let ce = |label, lab: &wgpu::Buffer, ps: &wgpu::Buffer| {
            loss::softmax_cross_entropy(
                ctx,
                label,
                [2, 3],
                LossArgs {
                    logits: t(&lg),
                    labels: t(lab),
                    grad_logits: t(&gg),
                    per_sample: t(ps),
                },
            )
            .map(|c| vec![c])
        };
        assert!(ce("ce_ok", &lab, &ps).is_ok());
        assert_err(ce("ce.labels", &c3, &ps), "ce.labels");
        assert_err(ce("ce.per_sample", &lab, &c2), "ce.per_sample");

        // SGD
        let (p, g, v, h0) = (buf(5), buf(5), buf(5), buf(1));
        assert!(optim::sgd(
            ctx,
            "sgd_ok",
            (
                5,
                &SgdConfig {
                    momentum: 0.9,
                    weight_decay: 0.0
                },
                true
            ),
            SgdArgs {
                grad: t(&g),
                hyper: t(&h0),
                param: t(&p),
                velocity: t(&v)
            }
        )
        .map(|c| vec![c])
        .is_ok());
        assert_err(
            optim::sgd(
                ctx,
                "sgd.v",
                (
                    5,
                    &SgdConfig {
                        momentum: 0.9,
                        weight_decay: 0.0,
                    },
                    true,
                ),
                SgdArgs {
                    grad: t(&g),
                    hyper: t(&h0),
                    param: t(&p),
                    velocity: t(&c3),
                },
            )
            .map(|c| vec![c]),
            "sgd.v",
        );
        assert_err(
            optim::sgd(
                ctx,
                "sgd.nan",
                (
                    5,
                    &SgdConfig {
                        momentum: f32::NAN,
                        weight_decay: 0.0,
                    },
                    true,
                ),
                SgdArgs {
                    grad: t(&g),
                    hyper: t(&h0),
                    param: t(&p),
                    velocity: t(&v),
                },
            )
            .map(|c| vec![c]),
            "sgd.nan",
        );
        assert_err(
            optim::sgd(
                ctx,
                "sgd.alias",
                (
                    5,
                    &SgdConfig {
                        momentum: 0.9,
                        weight_decay: 0.0,
                    },
                    true,
                ),
                SgdArgs {
                    grad: t(&g),
                    hyper: t(&h0),
                    param: t(&p),
                    velocity: t(&p),
                },
            )
            .map(|c| vec![c]),
            "sgd.alias",
        );

        // element-wise
        let (e5, e4, s1) = (buf(5), buf(4), buf(1));
        assert_err(
            elementwise::activation_backward(
                ctx,
                "relu.dy",
                Elementwise::len(5).act(Activation::Relu).accumulate(false),
                &t(&p),
                &t(&e4),
                &t(&e5),
            )
            .map(|c| vec![c]),
            "relu.dy",
        );
        assert_err(
            elementwise::copy(
                ctx,
                "copy.len0",
                Elementwise::len(0).accumulate(false),
                &t(&p),
                &t(&e5),
            )
            .map(|c| vec![c]),
            "copy.len0",
        );
        assert_err(
            elementwise::copy(
                ctx,
                "copy.alias",
                Elementwise::len(5).accumulate(true),
                &t(&p),
                &t(&p),
            )
            .map(|c| vec![c]),
            "copy.alias",
        );
        assert_err(
            elementwise::mul(
                ctx,
                "mul.mask",
                Elementwise::len(5).accumulate(false),
                [&t(&p), &t(&e4)],
                &t(&e5),
            )
            .map(|c| vec![c]),
            "mul.mask",
        );
        let seed2 = buf(2);
        assert!(elementwise::dropout(
            ctx,
            "drop_ok",
            (5, 0.5),
            &t(&seed2),
            &t(&p),
            [&t(&e5), &t(&g)]
        )
        .is_ok());
        assert_err(
            elementwise::dropout(
                ctx,
                "drop.p1",
                (5, 1.0),
                &t(&seed2),
                &t(&p),
                [&t(&e5), &t(&g)],
            ),
            "drop.p1",
        );
        assert_err(
            elementwise::dropout(
                ctx,
                "drop.pneg",
                (5, -0.1),
                &t(&seed2),
                &t(&p),
                [&t(&e5), &t(&g)],
            ),
            "drop.pneg",
        );
        assert_err(
            elementwise::dropout(
                ctx,
                "drop.seed",
                (5, 0.5),
                &t(&s1),
                &t(&p),
                [&t(&e5), &t(&g)],
            ),
            "drop.seed",
        );
    });
}
