//! The FLGC selection kernels (`gpu::kernels::flgc`) against `gconv::cpu` and the CPU backward.

use super::{gi, gw, random, read, read_u32, run, sg, t, up, with_gpu, zeros};
use gconv::cpu::{flgc_mask, masked_weight, row_argmax, row_softmax};
use gconv::gpu::kernels::flgc::{self, FlgcShape};
use gconv::gpu::GpuContext;
use gconv::graph::Conv2dSpec;
use gconv::testing::{assert_close, Tolerance};
use gconv::train::backward::flgc_conv2d_backward;
use gconv::Tensor;
use proptest::prelude::*;

/// Logits `[rows, g]` with row 0 tied between columns 1 and `g − 1` (when g ≥ 3) above the
/// rest, so the tie goes to column 1.
fn logits(rows: usize, g: usize, seed: u64) -> Tensor {
    let mut l = random(&[rows, g], seed);
    if g >= 3 {
        let row = &mut l.data_mut()[..g];
        row.iter_mut().for_each(|v| *v = -0.5);
        row[1] = 0.75;
        row[g - 1] = 0.75;
    } else {
        l.data_mut()[..g].iter_mut().for_each(|v| *v = 0.25);
    }
    l
}

#[derive(Clone, Debug)]
struct FlgcCase {
    batch: usize,
    c: usize,
    n: usize,
    g: usize,
    k: usize,
    s: usize,
    p: usize,
    hw: [usize; 2],
}

fn check_flgc(ctx: &GpuContext, fc: &FlgcCase, seed: u64) {
    let FlgcCase {
        batch,
        c,
        n,
        g,
        k,
        s,
        p,
        hw,
    } = *fc;
    let spec = Conv2dSpec::square(c, n, k, s, p).groups(g);
    let dense = Conv2dSpec {
        groups: 1,
        ..spec.clone()
    };
    let [oh, ow] = spec.out_hw(hw[0], hw[1]).expect("window fits");
    let kk = k * k;
    let sel_in = logits(c, g, seed);
    let sel_out = logits(n, g, seed + 1);
    let x = random(&[batch, c, hw[0], hw[1]], seed + 2);
    let wt = random(&[n, c, k, k], seed + 3);
    let dy = random(&[batch, n, oh, ow], seed + 4);
    let what = format!("{fc:?}");

    let (sib, sob) = (up(ctx, "S", sel_in.data()), up(ctx, "T", sel_out.data()));
    let (pib, pob) = (zeros(ctx, "P_in", c * g), zeros(ctx, "P_out", n * g));
    let (iib, oib) = (zeros(ctx, "idx_in", c), zeros(ctx, "idx_out", n));
    let (xb, wb, dyb) = (
        up(ctx, "x", x.data()),
        up(ctx, "w", wt.data()),
        up(ctx, "dy", dy.data()),
    );
    let wm = zeros(ctx, "W*M", wt.numel());
    let dmask = zeros(ctx, "D", wt.numel());
    let dx = zeros(ctx, "dx", x.numel());
    let (gsi, gso) = (zeros(ctx, "dS", c * g), zeros(ctx, "dT", n * g));

    let mut d = flgc::select(ctx, "sel in", [c, g], &t(&sib), [&t(&pib), &t(&iib)])
        .map(|c| vec![c])
        .unwrap();
    d.extend(
        flgc::select(ctx, "sel out", [n, g], &t(&sob), [&t(&pob), &t(&oib)])
            .map(|c| vec![c])
            .unwrap(),
    );
    d.extend(
        flgc::masked_weight(
            ctx,
            "wm",
            &FlgcShape {
                n,
                c,
                groups: 1,
                kk,
            },
            &t(&wb),
            [&t(&iib), &t(&oib)],
            &t(&wm),
        )
        .map(|c| vec![c])
        .unwrap(),
    );
    d.extend(
        gw(
            ctx,
            "D",
            (None, &dense, batch, hw),
            t(&xb),
            t(&dyb),
            t(&dmask),
        )
        .unwrap(),
    );
    d.extend(
        gi(
            ctx,
            "dx",
            (&dense, batch, hw, false),
            t(&dyb),
            t(&wm),
            t(&dx),
        )
        .unwrap(),
    );
    d.extend(
        sg(
            ctx,
            "sel grad",
            [n, c, g, kk],
            [t(&dmask), t(&wb), t(&iib), t(&oib), t(&pib), t(&pob)],
            [t(&gsi), t(&gso)],
        )
        .unwrap(),
    );
    run(ctx, &d);

    assert_close(
        &format!("P_in {what}"),
        &read(ctx, &pib, c * g),
        row_softmax(&sel_in).unwrap().data(),
        Tolerance::F32_OP,
    );
    assert_close(
        &format!("P_out {what}"),
        &read(ctx, &pob, n * g),
        row_softmax(&sel_out).unwrap().data(),
        Tolerance::F32_OP,
    );
    assert_eq!(
        read_u32(ctx, &iib, c),
        row_argmax(&sel_in).unwrap(),
        "idx_in {what}"
    );
    assert_eq!(
        read_u32(ctx, &oib, n),
        row_argmax(&sel_out).unwrap(),
        "idx_out {what}"
    );
    if g >= 3 {
        assert_eq!(read_u32(ctx, &iib, 1)[0], 1, "tie goes to the lowest index");
    }
    let mask = flgc_mask(&sel_in, &sel_out).unwrap();
    let want_wm = masked_weight(&wt, &mask).unwrap();
    assert_close(
        &format!("W*M {what}"),
        &read(ctx, &wm, wt.numel()),
        want_wm.data(),
        Tolerance::F32_OP,
    );

    let want =
        flgc_conv2d_backward(&x, &wt, &sel_in, &sel_out, &dy, &spec).expect("cpu flgc backward");
    assert_close(
        &format!("D {what}"),
        &read(ctx, &dmask, wt.numel()),
        want.weight.data(),
        Tolerance::F32_OP,
    );
    assert_close(
        &format!("dx {what}"),
        &read(ctx, &dx, x.numel()),
        want.input.data(),
        Tolerance::F32_OP,
    );
    assert_close(
        &format!("dS {what}"),
        &read(ctx, &gsi, c * g),
        want.select_in.data(),
        Tolerance::F32_OP,
    );
    assert_close(
        &format!("dT {what}"),
        &read(ctx, &gso, n * g),
        want.select_out.data(),
        Tolerance::F32_OP,
    );
}

fn flgc_strategy() -> impl Strategy<Value = FlgcCase> {
    (
        (1usize..=4, 1usize..=8, 1usize..=8),
        (
            prop::sample::select(vec![1usize, 3]),
            1usize..=2,
            0usize..=1,
        ),
        (2usize..=3, 2usize..=3, 1usize..=2),
    )
        .prop_map(|((g, c, n), (k, s, p), (hh, ww, batch))| FlgcCase {
            batch,
            c: c.max(g),
            n: n.max(g),
            g,
            k,
            s,
            p,
            hw: [2 * hh + 1, 2 * ww + 1],
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn flgc_matches_cpu(fc in flgc_strategy(), seed in 0u64..1000) {
        with_gpu(|ctx| check_flgc(ctx, &fc, seed));
    }
}

#[test]
fn flgc_named_cases() {
    with_gpu(|ctx| {
        let cases = [
            FlgcCase {
                batch: 2,
                c: 8,
                n: 12,
                g: 4,
                k: 3,
                s: 1,
                p: 1,
                hw: [5, 5],
            },
            // More groups than channels: many groups empty.
            FlgcCase {
                batch: 1,
                c: 5,
                n: 7,
                g: 64,
                k: 1,
                s: 1,
                p: 0,
                hw: [3, 3],
            },
            FlgcCase {
                batch: 3,
                c: 16,
                n: 16,
                g: 8,
                k: 3,
                s: 2,
                p: 1,
                hw: [7, 7],
            },
        ];
        for (i, fc) in cases.iter().enumerate() {
            check_flgc(ctx, fc, 500 + i as u64);
        }
    });
}

/// `masked_weight` on hand-written indices (including a value outside `0..G`).
#[test]
fn flgc_masked_weight_from_indices() {
    with_gpu(|ctx| {
        let (n, c, kk) = (3, 4, 2);
        let w = random(&[n, c, 1, kk], 600);
        let (ii, oi) = ([0u32, 1, 1, 7], [1u32, 0, 7]);
        let wb = up(ctx, "w", w.data());
        let iib = ctx.upload_u32("in", &ii).unwrap();
        let oib = ctx.upload_u32("out", &oi).unwrap();
        let out = zeros(ctx, "wm", n * c * kk);
        run(
            ctx,
            &flgc::masked_weight(
                ctx,
                "wm",
                &FlgcShape {
                    n,
                    c,
                    groups: 1,
                    kk,
                },
                &t(&wb),
                [&t(&iib), &t(&oib)],
                &t(&out),
            )
            .map(|c| vec![c])
            .unwrap(),
        );
        let want = Tensor::from_fn(&[n * c * kk], |i| {
            let (o, ci) = (i / (c * kk), (i / kk) % c);
            if oi[o] == ii[ci] {
                w.data()[i]
            } else {
                0.0
            }
        });
        assert_close(
            "masked weight",
            &read(ctx, &out, n * c * kk),
            want.data(),
            Tolerance::F32_OP,
        );
    });
}
