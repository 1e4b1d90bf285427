//! Bad arguments are errors naming the layer, never panics; the adapter's limits are checked.

use super::{arg, assert_err, direct_conv, up, vals, with_gpu};
use gconv::gpu::geometry::LinearShape;
use gconv::gpu::kernels::conv;
use gconv::gpu::kernels::conv::DirectKernel;
use gconv::gpu::kernels::elementwise::{self, Elementwise};
use gconv::gpu::kernels::gather::{self, GatherArgs};
use gconv::gpu::kernels::linear;
use gconv::gpu::kernels::norm::{self, BnShape, NormArgs};
use gconv::gpu::kernels::pool::{self, PoolKind, PoolShape};
use gconv::gpu::kernels::softmax::{self, SoftmaxArgs};
use gconv::gpu::Arg;
use gconv::graph::{Conv2dSpec, GroupRange, Pool2dSpec};
use gconv::ops::Activation;
use gconv::Error;

#[test]
fn bad_arguments_are_errors() {
    with_gpu(|ctx| {
        let spec = Conv2dSpec::square(4, 8, 3, 1, 1).groups(2);
        let x = up(ctx, "x", &vals(4 * 25, 1));
        let short = up(ctx, "short", &vals(4 * 25 - 1, 1));
        let w = up(ctx, "w", &vals(8 * 2 * 9, 2));
        let w_bad = up(ctx, "w", &vals(8 * 4 * 9, 2));
        let o = ctx.storage_buffer("o", 8 * 25 * 4).unwrap();
        let (xr, or) = (arg(&x), arg(&o));
        let conv = |label, xr: Arg, w, b, or: Arg, spec: &Conv2dSpec, hw| {
            let groups = conv::even_groups(label, spec)?;
            direct_conv(
                ctx,
                label,
                (DirectKernel::Co8, spec, 1, hw, false),
                &groups,
                xr,
                w,
                b,
                or,
            )
        };
        assert!(conv("ok_layer", xr.clone(), &w, None, or.clone(), &spec, [5, 5]).is_ok());
        let e = conv(
            "features.3",
            arg(&short),
            &w,
            None,
            or.clone(),
            &spec,
            [5, 5],
        );
        assert!(matches!(e, Err(Error::TensorShape { .. })), "{e:?}");
        assert_err(e, "features.3");
        assert_err(
            conv(
                "features.4",
                xr.clone(),
                &w_bad,
                None,
                or.clone(),
                &spec,
                [5, 5],
            ),
            "features.4",
        );
        assert_err(
            conv(
                "features.5",
                xr.clone(),
                &w,
                Some(&w),
                or.clone(),
                &spec,
                [5, 5],
            ),
            "features.5",
        );
        assert_err(
            conv(
                "features.6",
                xr.clone(),
                &w,
                None,
                or.clone(),
                &spec.clone().groups(3),
                [5, 5],
            ),
            "features.6",
        );
        assert_err(
            conv(
                "features.7",
                xr.clone(),
                &w,
                None,
                or.clone(),
                &spec,
                [5, 4],
            ),
            "features.7",
        );
        let mut big = Conv2dSpec::square(4, 8, 7, 1, 0).groups(2);
        big.padding = [0, 0];
        assert_err(
            conv("features.8", xr.clone(), &w, None, or.clone(), &big, [5, 5]),
            "features.8",
        );
        let misaligned = arg(&o).slice(1, 8 * 25 - 1);
        assert_err(
            conv(
                "features.9",
                xr.clone(),
                &w,
                None,
                misaligned,
                &spec,
                [5, 5],
            ),
            "features.9",
        );
        let past_end = arg(&x).slice(0, 4 * 25 + 1);
        assert_err(
            conv("features.10", past_end, &w, None, or.clone(), &spec, [5, 5]),
            "features.10",
        );
        // The packed kernel needs stride 1.
        let strided = Conv2dSpec::square(4, 8, 3, 2, 1).groups(2);
        let g = conv::even_groups("features.11", &strided).unwrap();
        let geo = (DirectKernel::Pk8, &strided, 1, [5, 5], false);
        let o9 = ctx.storage_buffer("o9", 8 * 9 * 4).unwrap();
        assert_err(
            direct_conv(ctx, "features.11", geo, &g, xr.clone(), &w, None, arg(&o9)),
            "features.11",
        );

        // Table: not covering every output channel once.
        let table = [
            GroupRange {
                in_start: 0,
                in_len: 2,
                out_start: 0,
                out_len: 4,
            },
            GroupRange {
                in_start: 2,
                in_len: 2,
                out_start: 3,
                out_len: 4,
            },
        ];
        let tspec = Conv2dSpec::square(4, 8, 3, 1, 1).groups(2);
        assert_err(conv::table_groups("flgc.1", &tspec, &table), "flgc.1");
        // A table whose ranges wrap around usize.
        let wrap = [GroupRange {
            in_start: usize::MAX,
            in_len: 2,
            out_start: 0,
            out_len: 8,
        }];
        assert_err(conv::table_groups("flgc.2", &tspec, &wrap), "flgc.2");

        // Linear: chunks not summing to out_features, chunk of the wrong size.
        let fx = up(ctx, "fx", &vals(10, 1));
        let fo = ctx.storage_buffer("fo", 6 * 4).unwrap();
        let shape = LinearShape {
            batch: 1,
            in_features: 10,
            out_features: 6,
        };
        let fc = |label, chunks: &[Arg]| {
            linear::forward(
                ctx,
                label,
                (&shape, Activation::None),
                &arg(&fx),
                (chunks, None),
                &arg(&fo),
            )
        };
        assert_err(
            fc("classifier.0", &[arg(&up(ctx, "c", &vals(30, 1)))]),
            "classifier.0",
        );
        let c = [
            arg(&up(ctx, "c", &vals(30, 1))),
            arg(&up(ctx, "c", &vals(29, 1))),
        ];
        assert_err(fc("classifier.1", &c), "classifier.1");
        assert_err(
            linear::upload_weight(ctx, "classifier.2", &vals(59, 1), [6, 10]),
            "classifier.2",
        );

        // Others.
        let r = elementwise::add(
            ctx,
            "layer1.0.add",
            Elementwise::len(100).act(Activation::Relu),
            [&xr, &arg(&short)],
            &arg(&x),
        );
        assert_err(r, "layer1.0.add");
        let ss = up(ctx, "ss", &vals(7, 1));
        let bn = BnShape {
            batch: 1,
            channels: 4,
            hw: 25,
        };
        let args = NormArgs {
            x: xr.clone(),
            scale_shift: arg(&ss),
            out: or.clone(),
        };
        assert_err(
            norm::batch_norm(ctx, "bn1", (&bn, Activation::None), args),
            "bn1",
        );
        let pool = |kind| PoolShape {
            kind,
            batch: 1,
            channels: 4,
            in_hw: [5, 5],
        };
        let max7 = pool(PoolKind::Max(Pool2dSpec::square(7, 1, 0)));
        assert_err(pool::forward(ctx, "maxpool", &max7, &xr, &or), "maxpool");
        let aap = pool(PoolKind::Adaptive([3, 3]));
        assert_err(pool::forward(ctx, "avgpool", &aap, &xr, &or), "avgpool");
        let args = SoftmaxArgs {
            x: xr.clone(),
            out: or.clone(),
        };
        assert_err(softmax::softmax(ctx, "softmax", [2, 50], args), "softmax");
        assert_err(
            gather::upload_indices(ctx, "shuffle", &[0, 4], 4),
            "shuffle",
        );
        let ib = gather::upload_indices(ctx, "shuffle", &[0, 3], 4).unwrap();
        let args = GatherArgs {
            x: xr.clone(),
            indices: arg(&ib),
            out: or.clone(),
        };
        assert_err(
            gather::gather(ctx, "shuffle2", (1, [4, 3], 25), args),
            "shuffle2",
        );
        assert_err(ctx.read_f32(&x, 90, 20), "read_f32");
    });
}

#[test]
fn limits_are_checked() {
    with_gpu(|ctx| {
        let too_big = ctx.limits.max_storage_buffer_binding_size + 4;
        let e = ctx.storage_buffer("classifier.0.weight", too_big);
        assert!(matches!(e, Err(Error::AdapterLimit { .. })), "{e:?}");
        assert_err(e, "classifier.0.weight");
        assert!(!ctx.describe().is_empty());
    });
}
