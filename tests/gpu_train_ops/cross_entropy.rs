//! The softmax cross-entropy head against the CPU; a bad label is reported, not a fault.

use super::{coarse, read, run, t, up, vals, with_gpu};
use gconv::gpu::kernels::loss::{self, LossArgs};
use gconv::gpu::GpuContext;
use gconv::testing::{assert_close, Tolerance};
use gconv::train::backward as bw;
use gconv::Tensor;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

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
