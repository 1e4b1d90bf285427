//! Bad arguments to the fast kernels are `Err`, never panics: planning errors (groups,
//! strides, entries that do not fit, malformed group tables) and launch-time size checks of
//! `conv_fast` and `gemv`.

mod common;

use gconv::gpu::family::LinearRun;
use gconv::gpu::geometry::ConvGeom;
use gconv::gpu::geometry::LinearShape;
use gconv::gpu::kernels::conv_fast::{self, ConvIo, FastConv, Weight, ENTRIES};
use gconv::gpu::kernels::gemv::{self, GemvShape};
use gconv::gpu::{Arg, GpuContext};
use gconv::graph::{Conv2dSpec, GroupRange};
use gconv::ops::Activation;
use gconv::Error;

/// Fresh buffers for the kernels' scratch requests.
fn scratch(ctx: &GpuContext) -> impl FnMut(&str, usize) -> gconv::Result<Arg> + '_ {
    |label, n| Ok(Arg::prefix(&ctx.storage_buffer(label, (n * 4) as u64)?, n))
}

fn with_gpu(body: impl FnOnce(&GpuContext)) {
    let _g = common::serial();
    if let Some(ctx) = common::gpu() {
        body(ctx);
    }
}

#[test]
fn conv_fast_rejects_bad_arguments() {
    // Planning errors need no GPU.
    let bad_groups = Conv2dSpec::square(6, 8, 3, 1, 1).groups(4);
    assert!(matches!(
        FastConv::conv2d(&bad_groups, [5, 5], None),
        Err(Error::Shape { .. })
    ));
    let zero_stride = Conv2dSpec::square(4, 4, 3, 0, 1);
    assert!(FastConv::conv2d(&zero_stride, [5, 5], None).is_err());
    let spec = Conv2dSpec::square(4, 4, 3, 1, 1);
    let one_by_one = ENTRIES
        .iter()
        .find(|e| e.geom == Some([1, 1, 1, 1, 1, 1]))
        .unwrap();
    assert!(matches!(
        FastConv::conv2d(&spec, [5, 5], Some(*one_by_one)),
        Err(Error::InvalidArgument(_))
    ));
    let plan = FastConv::conv2d(&spec, [5, 5], None).unwrap();
    assert!(plan.pack(&[0.0; 5]).is_err());
    // Table: channel written twice, index out of range, group past its list.
    let t = |a, b, c, d| GroupRange {
        in_start: a,
        in_len: b,
        out_start: c,
        out_len: d,
    };
    let spec2 = Conv2dSpec::square(4, 4, 1, 1, 0).groups(2);
    let ins = [0, 1, 2, 3];
    assert!(FastConv::grouped_table(
        &spec2,
        &[t(0, 2, 0, 2), t(2, 2, 0, 2)],
        &ins,
        &[0, 1, 2, 3],
        [3, 3],
        None
    )
    .is_err());
    assert!(FastConv::grouped_table(
        &spec2,
        &[t(0, 2, 0, 2), t(2, 2, 2, 2)],
        &[0, 1, 2, 9],
        &[0, 1, 2, 3],
        [3, 3],
        None
    )
    .is_err());
    assert!(FastConv::grouped_table(
        &spec2,
        &[t(0, 2, 0, 2), t(3, 2, 2, 2)],
        &ins,
        &[0, 1, 2, 3],
        [3, 3],
        None
    )
    .is_err());
    assert!(FastConv::grouped_table(
        &spec2,
        &[t(0, 2, 0, 0), t(2, 2, 0, 0)],
        &ins,
        &[0, 1, 2, 3],
        [3, 3],
        None
    )
    .is_err());
    with_gpu(|ctx| {
        let layer = plan.upload(ctx, "bad").unwrap();
        let buf = |name, bytes| Arg::whole(&ctx.storage_buffer(name, bytes).unwrap());
        let x = buf("x", 4 * 4 * 5 * 5);
        let out = buf("out", 4 * 4 * 5 * 5);
        let wp = buf("wp", (plan.packed_len() * 4) as u64);
        let short = buf("short", 8);
        let geom = ConvGeom {
            batch: 1,
            in_hw: [5, 5],
            act: Activation::None,
        };
        let run = |x: &Arg, w: Weight, bias: Option<Arg>, geom| -> gconv::Result<()> {
            let io = ConvIo {
                x: x.clone(),
                out: out.clone(),
                weight: w,
                bias,
            };
            conv_fast::forward(ctx, "bad", &layer, io, geom, &mut scratch(ctx)).map(|_| ())
        };
        assert!(run(&x, Weight::Packed(wp.clone()), None, geom).is_ok());
        assert!(
            run(&short, Weight::Packed(wp.clone()), None, geom).is_err(),
            "input too small"
        );
        assert!(
            run(&x, Weight::Packed(short.clone()), None, geom).is_err(),
            "packed weight too small"
        );
        assert!(
            run(&x, Weight::Natural(short.clone()), None, geom).is_err(),
            "natural weight too small"
        );
        assert!(
            run(&x, Weight::Packed(wp.clone()), Some(short.clone()), geom).is_err(),
            "bias too small"
        );
        let tiny = ConvGeom {
            in_hw: [1, 1],
            ..geom
        };
        assert!(run(&x, Weight::Packed(wp.clone()), None, tiny).is_err());
        let e = run(&out, Weight::Packed(wp.clone()), None, geom).unwrap_err();
        assert!(e.to_string().contains("same buffer"), "{e}");
    });
}

#[test]
fn gemv_rejects_bad_arguments() {
    with_gpu(|ctx| {
        let buf = |name, bytes| Arg::whole(&ctx.storage_buffer(name, bytes).unwrap());
        let x = buf("x", 2 * 8 * 4);
        let out = buf("out", 2 * 3 * 4);
        let w = [buf("w", 3 * 8 * 4)];
        let w2 = [buf("w2", 2 * 8 * 4)];
        let s = LinearShape {
            batch: 2,
            in_features: 8,
            out_features: 3,
        };
        let run = |s: LinearShape, tile, w: &[Arg], bias: Option<&Arg>| {
            let run = LinearRun {
                label: "bad",
                shape: &s,
                x: &x,
                chunks: w,
                bias,
                out: &out,
                act: Activation::None,
                weight_f16: false,
            };
            gemv::forward(ctx, run, tile, &mut scratch(ctx))
        };
        assert!(run(s, None, &w, None).is_ok());
        assert!(run(s, None, &w2, None).is_err(), "chunk size");
        let rows = LinearShape {
            out_features: 4,
            ..s
        };
        assert!(run(rows, None, &w, None).is_err(), "rows");
        assert!(run(LinearShape { batch: 3, ..s }, None, &w, None).is_err());
        assert!(run(LinearShape { batch: 0, ..s }, None, &w, None).is_err());
        let odd = GemvShape {
            rows: 3,
            samples: 3,
        };
        assert!(matches!(
            run(s, Some(odd), &w, None),
            Err(Error::InvalidArgument(_))
        ));
        let short_bias = buf("b", 8);
        assert!(run(s, None, &w, Some(&short_bias)).is_err(), "bias");
        let width = LinearShape {
            in_features: 6,
            ..s
        };
        assert!(
            matches!(run(width, None, &w, None), Err(Error::Shape { .. })),
            "in_features not a multiple of 4"
        );
    });
}
