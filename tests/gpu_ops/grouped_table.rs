//! Uneven grouped convolution (FLGC export, `grouped_conv_table`) against the CPU.

use super::{arg, direct_conv, direct_kernels, random, run_read, up, vals, with_gpu};
use gconv::cpu;
use gconv::gpu::kernels::conv;
use gconv::gpu::GpuContext;
use gconv::graph::{Conv2dSpec, GroupRange};
use gconv::testing::{assert_close, Tolerance};
use proptest::prelude::*;

#[allow(clippy::too_many_arguments)]
fn check_table(
    ctx: &GpuContext,
    batch: usize,
    groups: &[(usize, usize)],
    k: usize,
    s: usize,
    p: usize,
    hw: [usize; 2],
    bias: bool,
    relu: bool,
    seed: u64,
) {
    let mut table = Vec::new();
    let (mut ci, mut co) = (0, 0);
    for &(in_len, out_len) in groups {
        table.push(GroupRange {
            in_start: ci,
            in_len,
            out_start: co,
            out_len,
        });
        ci += in_len;
        co += out_len;
    }
    let spec = Conv2dSpec::square(ci, co, k, s, p)
        .groups(table.len())
        .bias(bias);
    let kk = k * k;
    let wlen: usize = groups.iter().map(|&(i, o)| i * o * kk).sum();
    let x = random(&[batch, ci, hw[0], hw[1]], seed);
    let wt = vals(wlen, seed + 1);
    let b = bias.then(|| vals(co, seed + 2));
    let mut want = cpu::grouped_conv_table(&x, &wt, b.as_deref(), &spec, &table).unwrap();
    if relu {
        want = cpu::relu(&want);
    }
    let xb = up(ctx, "x", x.data());
    let wb = up(ctx, "w", &wt);
    let bb = b.as_ref().map(|v| up(ctx, "b", v));
    let ob = ctx
        .storage_buffer("out", (want.numel() * 4) as u64)
        .unwrap();
    let tg = conv::table_groups("table", &spec, &table).expect("groups");
    for kernel in direct_kernels(&spec) {
        let geo = (kernel, &spec, batch, hw, relu);
        let d = direct_conv(ctx, "table", geo, &tg, arg(&xb), &wb, bb.as_ref(), arg(&ob))
            .expect("prepare");
        assert_eq!(d.iter().filter(|d| d.label.contains("::conv_")).count(), 1);
        let got = run_read(ctx, &d, &ob, want.numel());
        assert_close(
            &format!("{kernel:?} table {groups:?} k{k} s{s} p{p} {hw:?}"),
            &got,
            want.data(),
            Tolerance::F32_OP,
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn grouped_conv_table_matches_cpu(
        groups in prop::collection::vec((1usize..=5, 0usize..=11), 1..=5),
        k in prop::sample::select(vec![1usize, 3]),
        s in 1usize..=2,
        p in 0usize..=1,
        hw in (3usize..=9, 3usize..=9),
        batch in prop::sample::select(vec![1usize, 3]),
        bias in any::<bool>(),
        relu in any::<bool>(),
        seed in 0u64..1000,
    ) {
        // At least one output channel overall.
        prop_assume!(groups.iter().any(|g| g.1 > 0));
        with_gpu(|ctx| check_table(ctx, batch, &groups, k, s, p, [hw.0, hw.1], bias, relu, seed));
    }
}

#[test]
fn grouped_conv_table_regressions() {
    with_gpu(|ctx| {
        // An empty group in the middle, uneven sizes around it (a typical FLGC export).
        check_table(
            ctx,
            1,
            &[(3, 5), (2, 0), (4, 11)],
            3,
            1,
            1,
            [7, 7],
            true,
            true,
            1,
        );
        // An empty first group and a single-channel group.
        check_table(
            ctx,
            3,
            &[(1, 0), (5, 1), (2, 9)],
            3,
            2,
            1,
            [9, 8],
            false,
            false,
            2,
        );
    });
}
