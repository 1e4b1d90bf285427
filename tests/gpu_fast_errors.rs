//! Bad arguments to the fast kernels are `Err`, never panics: planning errors (groups,
//! strides, entries that do not fit, malformed group tables) and launch-time size checks of
//! `conv_fast` and `gemv`.

mod common;

use gconv::gpu::kernels::conv_fast::{self, ConvGeom, ConvIo, FastConv, Weight, ENTRIES};
use gconv::gpu::kernels::gemv::{self, GemvShape, LinearGeom, LinearIo};
use gconv::gpu::{GpuContext, TensorRef};
use gconv::graph::{Conv2dSpec, GroupRange};
use gconv::Error;

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
        let x = ctx.storage_buffer("x", 4 * 4 * 5 * 5).unwrap();
        let out = ctx.storage_buffer("out", 4 * 4 * 5 * 5).unwrap();
        let wp = ctx
            .storage_buffer("wp", (plan.packed_len() * 4) as u64)
            .unwrap();
        let short = ctx.storage_buffer("short", 8).unwrap();
        let geom = ConvGeom {
            batch: 1,
            in_hw: [5, 5],
            relu: false,
        };
        let io = |x: &wgpu::Buffer, w: Weight<'_>| -> gconv::Result<()> {
            conv_fast::prepare(
                ctx,
                "bad",
                &layer,
                ConvIo {
                    x: TensorRef::whole(x),
                    out: TensorRef::whole(&out),
                    weight: w,
                    bias: None,
                },
                geom,
            )
            .map(|_| ())
        };
        assert!(io(&x, Weight::Packed(&wp)).is_ok());
        assert!(io(&short, Weight::Packed(&wp)).is_err(), "input too small");
        assert!(
            io(&x, Weight::Packed(&short)).is_err(),
            "packed weight too small"
        );
        assert!(
            io(&x, Weight::Natural(&short)).is_err(),
            "natural weight too small"
        );
        let tiny = ConvGeom {
            in_hw: [1, 1],
            ..geom
        };
        let e = conv_fast::prepare(
            ctx,
            "tiny",
            &layer,
            ConvIo {
                x: TensorRef::whole(&x),
                out: TensorRef::whole(&out),
                weight: Weight::Packed(&wp),
                bias: Some(&short),
            },
            tiny,
        );
        assert!(e.is_err());
    });
}

#[test]
fn gemv_rejects_bad_arguments() {
    with_gpu(|ctx| {
        let x = ctx.storage_buffer("x", 2 * 8 * 4).unwrap();
        let out = ctx.storage_buffer("out", 2 * 3 * 4).unwrap();
        let w = ctx.storage_buffer("w", 3 * 8 * 4).unwrap();
        let w2 = ctx.storage_buffer("w2", 2 * 8 * 4).unwrap();
        let chunks = [(w, 3usize)];
        let geom = LinearGeom {
            batch: 2,
            in_features: 8,
            out_features: 3,
            relu: false,
            shape: None,
        };
        let io = LinearIo {
            x: TensorRef::whole(&x),
            out: TensorRef::whole(&out),
            weight_chunks: &chunks,
            bias: None,
        };
        assert!(gemv::prepare(ctx, "ok", io, geom).is_ok());
        let bad_chunks = [(w2, 3usize)];
        assert!(gemv::prepare(
            ctx,
            "chunk size",
            LinearIo {
                weight_chunks: &bad_chunks,
                ..io
            },
            geom
        )
        .is_err());
        assert!(gemv::prepare(
            ctx,
            "rows",
            io,
            LinearGeom {
                out_features: 4,
                ..geom
            }
        )
        .is_err());
        assert!(gemv::prepare(ctx, "batch", io, LinearGeom { batch: 3, ..geom }).is_err());
        assert!(gemv::prepare(ctx, "zero", io, LinearGeom { batch: 0, ..geom }).is_err());
        let odd = GemvShape {
            rows: 3,
            samples: 3,
        };
        assert!(matches!(
            gemv::prepare(
                ctx,
                "shape",
                io,
                LinearGeom {
                    shape: Some(odd),
                    ..geom
                }
            ),
            Err(Error::InvalidArgument(_))
        ));
        let short_bias = ctx.storage_buffer("b", 8).unwrap();
        assert!(gemv::prepare(
            ctx,
            "bias",
            LinearIo {
                bias: Some(&short_bias),
                ..io
            },
            geom
        )
        .is_err());
    });
}
