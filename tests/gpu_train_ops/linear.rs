//! Linear backward against `gconv::train`.

use super::{expect, grad_buf, random, read, run, t, up, with_gpu};
use gconv::gpu::geometry::LinearShape;
use gconv::gpu::kernels::linear_backward::{self, LinearGradArgs};
use gconv::gpu::GpuContext;
use gconv::testing::{assert_close, Tolerance};
use gconv::train::backward as bw;
use proptest::prelude::*;

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
