//! ReLU backward, copy / accumulation (folded grid included) and dropout.

use super::{coarse, expect, grad_buf, random, read, run, t, up, vals, with_gpu};
use gconv::gpu::kernels::elementwise::{self, Elementwise};
use gconv::gpu::GpuContext;
use gconv::ops::Activation;
use gconv::testing::{assert_close, Tolerance};
use gconv::train::backward as bw;
use proptest::prelude::*;

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
