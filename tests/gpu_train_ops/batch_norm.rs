//! Training batch norm and its backward against `gconv::train`.

use super::{assert_err, expect, grad_buf, random, read, run, scratch1, t, up, vals, with_gpu};
use gconv::gpu::kernels::norm::BnShape;
use gconv::gpu::kernels::norm_train::{self, BnGradArgs, BnTrain, BnTrainArgs};
use gconv::gpu::GpuContext;
use gconv::ops::Activation;
use gconv::testing::{assert_close, Tolerance};
use gconv::train::backward as bw;
use gconv::Tensor;
use proptest::prelude::*;

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

/// Bad arguments to the batch-norm training kernels are errors naming the layer.
#[test]
fn bad_batch_norm_arguments_are_errors() {
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
    });
}
