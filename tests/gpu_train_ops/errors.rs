//! Bad arguments to the pooling, linear, loss, SGD and element-wise training kernels are
//! errors naming the layer, never panics (batch norm's: `batch_norm.rs`).

use super::{assert_err, t, with_gpu};
use gconv::gpu::geometry::LinearShape;
use gconv::gpu::kernels::elementwise::{self, Elementwise};
use gconv::gpu::kernels::linear_backward::{self, LinearGradArgs};
use gconv::gpu::kernels::loss::{self, LossArgs};
use gconv::gpu::kernels::optim::{self, SgdArgs};
use gconv::gpu::kernels::pool::{self, PoolKind, PoolShape};
use gconv::graph::Pool2dSpec;
use gconv::ops::Activation;
use gconv::train::SgdConfig;

#[test]
fn bad_arguments_are_errors() {
    with_gpu(|ctx| {
        let buf = |n: usize| ctx.storage_buffer("b", (n * 4) as u64).unwrap();
        // Wrong-sized buffers shared by several cases.
        let (x, c2, c3) = (buf(24), buf(2), buf(3));

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
