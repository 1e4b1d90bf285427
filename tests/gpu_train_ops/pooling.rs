//! Pooling backward (max, average, adaptive) against `gconv::train`, ties included.

use super::{coarse, expect, grad_buf, random, read, run, t, up, with_gpu};
use gconv::gpu::kernels::pool::{self, PoolKind, PoolShape};
use gconv::gpu::GpuContext;
use gconv::graph::Pool2dSpec;
use gconv::testing::{assert_close, Tolerance};
use gconv::train::backward as bw;
use gconv::Tensor;
use proptest::prelude::*;

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
