//! Bad arguments to the convolution-backward and FLGC kernels are errors, never panics.

use super::{gi, gw, sg, t, with_gpu, zeros};
use gconv::gpu::kernels::conv_backward as cb;
use gconv::gpu::kernels::flgc::{self, FlgcShape};
use gconv::graph::Conv2dSpec;

#[test]
fn conv_backward_rejects_bad_arguments() {
    with_gpu(|ctx| {
        let s = Conv2dSpec::square(4, 6, 3, 1, 1).groups(2);
        let (b, hw) = (2, [5, 5]);
        let x = zeros(ctx, "x", 2 * 4 * 25);
        let w = zeros(ctx, "w", 6 * 2 * 9);
        let dy = zeros(ctx, "dy", 2 * 6 * 25);
        let short = zeros(ctx, "short", 7);
        let dx = zeros(ctx, "dx", 2 * 4 * 25);
        let dw = zeros(ctx, "dw", 6 * 2 * 9);
        // Wrong lengths.
        assert!(gi(ctx, "l", (&s, b, hw, false), t(&short), t(&w), t(&dx)).is_err());
        assert!(gi(ctx, "l", (&s, b, hw, false), t(&dy), t(&short), t(&dx)).is_err());
        assert!(gi(ctx, "l", (&s, b, hw, true), t(&dy), t(&w), t(&short)).is_err());
        assert!(gw(ctx, "l", (None, &s, b, hw), t(&short), t(&dy), t(&dw)).is_err());
        assert!(gw(ctx, "l", (None, &s, b, hw), t(&x), t(&dy), t(&short)).is_err());
        assert!(cb::channel_sum(ctx, "l", [b, 6, 25], &t(&dy), &t(&short))
            .map(|c| vec![c])
            .is_err());
        assert!(cb::channel_sum(ctx, "l", [b, 6, 24], &t(&dy), &t(&dw))
            .map(|c| vec![c])
            .is_err());
        // The same sizes are accepted.
        assert!(gi(ctx, "l", (&s, b, hw, false), t(&dy), t(&w), t(&dx)).is_ok());
        assert!(gw(ctx, "l", (None, &s, b, hw), t(&x), t(&dy), t(&dw)).is_ok());
        // Groups that do not divide the channels, zero groups, zero stride.
        let bad_g = Conv2dSpec::square(4, 6, 3, 1, 1).groups(4);
        assert!(gi(ctx, "l", (&bad_g, b, hw, false), t(&dy), t(&w), t(&dx)).is_err());
        let zero_g = Conv2dSpec::square(4, 6, 3, 1, 1).groups(0);
        assert!(gw(ctx, "l", (None, &zero_g, b, hw), t(&x), t(&dy), t(&dw)).is_err());
        let zero_s = Conv2dSpec::square(4, 6, 3, 0, 1).groups(2);
        assert!(gw(ctx, "l", (None, &zero_s, b, hw), t(&x), t(&dy), t(&dw)).is_err());
        // Kernel larger than the (padded) input.
        let big_k = Conv2dSpec::square(4, 6, 9, 1, 0).groups(2);
        assert!(gi(ctx, "l", (&big_k, b, hw, false), t(&dy), t(&w), t(&dx)).is_err());
        // Output sharing a buffer with an input (disjoint ranges): refused, wgpu forbids it.
        let align = u64::from(ctx.limits.min_storage_buffer_offset_alignment);
        let off = (2 * 4 * 25 * 4u64).div_ceil(align) * align;
        let both = zeros(ctx, "x and dw", (off / 4) as usize + 6 * 2 * 9);
        let xs = t(&both).slice(0, 2 * 4 * 25);
        let dws = t(&both).slice((off / 4) as usize, 6 * 2 * 9);
        assert!(gw(ctx, "l", (None, &s, b, hw), xs, t(&dy), dws).is_err());
    });
}

#[test]
fn flgc_rejects_bad_arguments() {
    with_gpu(|ctx| {
        let (n, c, g, kk) = (4, 6, 2, 9);
        let sel = zeros(ctx, "S", c * g);
        let probs = zeros(ctx, "P", c * g);
        let idx = zeros(ctx, "idx", c);
        let short = zeros(ctx, "short", 3);
        assert!(
            flgc::select(ctx, "s", [c, g], &t(&sel), [&t(&probs), &t(&idx)])
                .map(|c| vec![c])
                .is_ok()
        );
        assert!(
            flgc::select(ctx, "s", [c, g], &t(&short), [&t(&probs), &t(&idx)])
                .map(|c| vec![c])
                .is_err()
        );
        assert!(
            flgc::select(ctx, "s", [c, g], &t(&sel), [&t(&short), &t(&idx)])
                .map(|c| vec![c])
                .is_err()
        );
        assert!(
            flgc::select(ctx, "s", [c, g], &t(&sel), [&t(&probs), &t(&short)])
                .map(|c| vec![c])
                .is_err()
        );
        assert!(
            flgc::select(ctx, "s", [c, 0], &t(&sel), [&t(&probs), &t(&idx)])
                .map(|c| vec![c])
                .is_err()
        );
        // Index written into the logits' buffer: an alias, refused.
        assert!(flgc::select(
            ctx,
            "s",
            [c, g],
            &t(&sel),
            [&t(&probs), &t(&sel).slice(0, c)]
        )
        .map(|c| vec![c])
        .is_err());

        let w = zeros(ctx, "w", n * c * kk);
        let wm = zeros(ctx, "wm", n * c * kk);
        let oidx = zeros(ctx, "oidx", n);
        assert!(flgc::masked_weight(
            ctx,
            "m",
            &FlgcShape {
                n,
                c,
                groups: 1,
                kk
            },
            &t(&w),
            [&t(&idx), &t(&oidx)],
            &t(&wm)
        )
        .map(|c| vec![c])
        .is_ok());
        assert!(flgc::masked_weight(
            ctx,
            "m",
            &FlgcShape {
                n,
                c,
                groups: 1,
                kk
            },
            &t(&w),
            [&t(&oidx), &t(&oidx)],
            &t(&wm)
        )
        .map(|c| vec![c])
        .is_err());
        assert!(flgc::masked_weight(
            ctx,
            "m",
            &FlgcShape {
                n,
                c,
                groups: 1,
                kk
            },
            &t(&w),
            [&t(&idx), &t(&idx)],
            &t(&wm)
        )
        .map(|c| vec![c])
        .is_err());
        assert!(flgc::masked_weight(
            ctx,
            "m",
            &FlgcShape {
                n,
                c,
                groups: 1,
                kk
            },
            &t(&short),
            [&t(&idx), &t(&oidx)],
            &t(&wm)
        )
        .map(|c| vec![c])
        .is_err());
        assert!(flgc::masked_weight(
            ctx,
            "m",
            &FlgcShape {
                n,
                c,
                groups: 1,
                kk
            },
            &t(&w),
            [&t(&idx), &t(&oidx)],
            &t(&short)
        )
        .map(|c| vec![c])
        .is_err());

        let d = zeros(ctx, "D", n * c * kk);
        let pout = zeros(ctx, "Pout", n * g);
        let (gi, go) = (zeros(ctx, "gi", c * g), zeros(ctx, "go", n * g));
        let ok = sg(
            ctx,
            "g",
            [n, c, g, kk],
            [t(&d), t(&w), t(&idx), t(&oidx), t(&probs), t(&pout)],
            [t(&gi), t(&go)],
        );
        assert_eq!(ok.expect("valid sizes").len(), 4);
        // probs_in and probs_out swapped (sizes differ): refused.
        assert!(sg(
            ctx,
            "g",
            [n, c, g, kk],
            [t(&d), t(&w), t(&idx), t(&oidx), t(&pout), t(&probs)],
            [t(&gi), t(&go)]
        )
        .is_err());
        assert!(sg(
            ctx,
            "g",
            [n, c, g, kk],
            [t(&d), t(&w), t(&idx), t(&oidx), t(&probs), t(&pout)],
            [t(&go), t(&gi)]
        )
        .is_err());
        assert!(sg(
            ctx,
            "g",
            [n, c, g, kk],
            [t(&short), t(&w), t(&idx), t(&oidx), t(&probs), t(&pout)],
            [t(&gi), t(&go)]
        )
        .is_err());
        assert!(sg(
            ctx,
            "g",
            [n, c, g, 4],
            [t(&d), t(&w), t(&idx), t(&oidx), t(&probs), t(&pout)],
            [t(&gi), t(&go)]
        )
        .is_err());
    });
}
