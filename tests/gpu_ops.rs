//! Every GPU launcher against the CPU reference (`gconv::cpu`), over property-generated
//! shapes and named regression cases, plus the split-weight and folded-grid paths and
//! bad arguments. Runs on lavapipe; skips loudly without an adapter (see `common`).

mod common;

use gconv::cpu;
use gconv::gpu::choice::{self, DirectKernel};
use gconv::gpu::kernels::conv::{self, ConvShape, DirectArgs};
use gconv::gpu::kernels::elementwise::{self, Elementwise};
use gconv::gpu::kernels::gather::{self, GatherArgs};
use gconv::gpu::kernels::linear::{self, LinearShape};
use gconv::gpu::kernels::norm::{self, BnShape, NormArgs};
use gconv::gpu::kernels::pool::{self, PoolKind, PoolShape};
use gconv::gpu::kernels::softmax::{self, SoftmaxArgs};
use gconv::gpu::launch::bind_all;
use gconv::gpu::{run_dispatches, Arg, Call, GpuContext};
use gconv::graph::{Conv2dSpec, GroupRange, Pool2dSpec};
use gconv::ops::Activation;
use gconv::testing::{assert_close, Tolerance};
use gconv::{Error, Tensor};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Runs `body` with the shared context while holding the GPU lock; skips without a GPU.
fn with_gpu(body: impl FnOnce(&GpuContext)) {
    let _g = common::serial();
    if let Some(ctx) = common::gpu() {
        body(ctx);
    }
}

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut r = SmallRng::seed_from_u64(seed);
    Tensor::from_fn(shape, |_| r.random_range(-1.0f32..1.0))
}

fn vals(n: usize, seed: u64) -> Vec<f32> {
    random(&[n], seed).into_data()
}

fn up(ctx: &GpuContext, name: &str, data: &[f32]) -> wgpu::Buffer {
    ctx.upload(name, data).expect("upload")
}

fn run_read(ctx: &GpuContext, calls: &[Call], out: &wgpu::Buffer, len: usize) -> Vec<f32> {
    run_dispatches(ctx, &bind_all(ctx, calls).expect("bind")).expect("run");
    ctx.read_f32(out, 0, len).expect("read back")
}

fn arg(b: &wgpu::Buffer) -> Arg {
    Arg::whole(b)
}

fn act(relu: bool) -> Activation {
    if relu {
        Activation::Relu
    } else {
        Activation::None
    }
}

/// Scratch buffers for the packed kernel, fresh for each call.
fn scratch(ctx: &GpuContext) -> impl FnMut(&str, usize) -> gconv::Result<Arg> + '_ {
    move |label, n| Ok(Arg::whole(&ctx.storage_buffer(label, (n * 4) as u64)?))
}

/// Every direct kernel that can run `spec` (the packed one needs stride 1).
fn direct_kernels(spec: &Conv2dSpec) -> Vec<DirectKernel> {
    let mut v = vec![DirectKernel::Co8, DirectKernel::Co1];
    if spec.stride == [1, 1] {
        v.push(DirectKernel::Pk8);
    }
    v
}

/// A direct convolution of `groups` with `kernel`.
#[allow(clippy::too_many_arguments)]
fn direct_conv(
    ctx: &GpuContext,
    label: &str,
    (kernel, spec, batch, hw, relu): (DirectKernel, &Conv2dSpec, usize, [usize; 2], bool),
    groups: &[conv::DirectGroup],
    x: Arg,
    w: &wgpu::Buffer,
    b: Option<&wgpu::Buffer>,
    out: Arg,
) -> gconv::Result<Vec<Call>> {
    let s = ConvShape {
        spec,
        batch,
        in_hw: hw,
    };
    let args = DirectArgs {
        x,
        weight: arg(w),
        bias: b.map(arg),
        out,
    };
    conv::forward(
        ctx,
        label,
        (kernel, &s, act(relu)),
        groups,
        args,
        &mut scratch(ctx),
    )
}

// ---------------------------------------------------------------------------------------
// convolution

#[derive(Clone, Debug)]
struct ConvCase {
    batch: usize,
    spec: Conv2dSpec,
    hw: [usize; 2],
    relu: bool,
}

#[allow(clippy::too_many_arguments)]
fn conv_case(
    batch: usize,
    c: usize,
    n: usize,
    g: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    hw: [usize; 2],
    bias: bool,
    relu: bool,
) -> ConvCase {
    let mut spec = Conv2dSpec::square(c, n, k, s, p).groups(g).bias(bias);
    spec.dilation = [d, d];
    ConvCase {
        batch,
        spec,
        hw,
        relu,
    }
}

fn check_conv(ctx: &GpuContext, case: &ConvCase, seed: u64) {
    let s = &case.spec;
    let [h, w] = case.hw;
    let x = random(&[case.batch, s.in_channels, h, w], seed);
    let wt = random(&s.weight_shape(), seed + 1);
    let bias = s.bias.then(|| vals(s.out_channels, seed + 2));
    let mut want = cpu::conv2d(&x, &wt, bias.as_deref(), s).expect("cpu conv");
    if case.relu {
        want = cpu::relu(&want);
    }
    let xb = up(ctx, "x", x.data());
    let wb = up(ctx, "w", wt.data());
    let bb = bias.as_ref().map(|b| up(ctx, "b", b));
    let ob = ctx
        .storage_buffer("out", (want.numel() * 4) as u64)
        .unwrap();
    let groups = conv::even_groups("conv", s).expect("groups");
    for kernel in direct_kernels(s) {
        let geo = (kernel, s, case.batch, case.hw, case.relu);
        let d = direct_conv(
            ctx,
            "conv",
            geo,
            &groups,
            arg(&xb),
            &wb,
            bb.as_ref(),
            arg(&ob),
        )
        .expect("prepare");
        assert_eq!(
            d.iter().filter(|d| d.label.contains("::conv_")).count(),
            1,
            "one conv dispatch whatever the groups"
        );
        let got = run_read(ctx, &d, &ob, want.numel());
        assert_close(
            &format!("{kernel:?} {case:?}"),
            &got,
            want.data(),
            Tolerance::F32_OP,
        );
    }
}

/// Group count choice: 0..5 → {1, 2, 3, 4, 8}, 5 → depthwise (G = C).
fn conv_strategy() -> impl Strategy<Value = ConvCase> {
    (
        (0usize..6, 2usize..=4, 1usize..=10, 1usize..=3),
        (
            prop::sample::select(vec![1usize, 3]),
            1usize..=2,
            0usize..=1,
            1usize..=2,
        ),
        (
            2usize..=7,
            2usize..=7,
            prop::sample::select(vec![1usize, 3]),
        ),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |((gi, cin_g, cout_g, mult), (k, s, p, d), (hh, ww, batch), (bias, relu))| {
                let (g, cin_g, cout_g) = match gi {
                    5 => (cin_g * 3, 1, mult), // depthwise, channel multiplier `mult`
                    _ => ([1, 2, 3, 4, 8][gi], cin_g, cout_g),
                };
                // Odd sizes, large enough for a dilated 3x3 without padding.
                let hw = [2 * hh + 1, 2 * ww + 1];
                conv_case(batch, g * cin_g, g * cout_g, g, k, s, p, d, hw, bias, relu)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_matches_cpu(case in conv_strategy(), seed in 0u64..1000) {
        with_gpu(|ctx| check_conv(ctx, &case, seed));
    }
}

/// Named shapes that once went wrong or sit on an edge of the tiling.
#[test]
fn conv2d_regressions() {
    with_gpu(|ctx| {
        let cases = [
            // ResNet stem: 7x7 stride 2 padding 3, 3 input channels, bias-free.
            conv_case(1, 3, 16, 1, 7, 2, 3, 1, [23, 23], false, true),
            // MobileNet depthwise 3x3 stride 2 with channel multiplier 2.
            conv_case(3, 6, 12, 6, 3, 2, 1, 1, [9, 11], true, true),
            // ResNet downsample: 1x1 stride 2.
            conv_case(1, 8, 16, 1, 1, 2, 0, 1, [7, 7], false, false),
            // 12 output channels per group: one full 8-channel tile and a partial one.
            conv_case(1, 6, 24, 2, 3, 1, 1, 1, [5, 6], true, false),
            // Output one pixel wide (partial 4-pixel tile of 1).
            conv_case(3, 4, 8, 1, 3, 1, 0, 1, [5, 3], true, false),
            // G=3 with 5 filters per group, dilation 2 and padding 2 ("same" output).
            {
                let mut c = conv_case(1, 9, 15, 3, 3, 1, 2, 2, [9, 9], true, true);
                c.spec.padding = [2, 2];
                c
            },
            // Rectangular kernel, stride and padding per axis.
            {
                let mut c = conv_case(1, 4, 8, 2, 1, 1, 0, 1, [8, 9], true, false);
                c.spec.kernel = [1, 3];
                c.spec.stride = [2, 1];
                c.spec.padding = [0, 1];
                c
            },
            // Pointwise grouped (ShuffleNet-like): 1x1, G=4.
            conv_case(3, 16, 32, 4, 1, 1, 0, 1, [5, 5], false, true),
            // A wide dense layer (several 8-channel tiles, many pixel blocks).
            conv_case(1, 32, 64, 1, 3, 1, 1, 1, [14, 14], true, true),
        ];
        for (i, c) in cases.iter().enumerate() {
            check_conv(ctx, c, 100 + i as u64);
        }
    });
}

/// More workgroups than one grid dimension holds: the grid is folded into 2-D.
#[test]
fn conv2d_folded_grid() {
    with_gpu(|ctx| {
        // Depthwise 512 channels (512 one-channel tiles) x 16x16 x batch 17 > 65535 workgroups.
        let case = conv_case(17, 512, 512, 512, 3, 1, 1, 1, [16, 16], true, false);
        check_conv(ctx, &case, 7);
    });
}

// ---------------------------------------------------------------------------------------
// uneven grouped convolution (FLGC export)

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

// ---------------------------------------------------------------------------------------
// the other ops

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn batch_norm_matches_cpu(b in 1usize..=3, c in 1usize..=9, h in 1usize..=9, w in 1usize..=9, relu in any::<bool>(), seed in 0u64..1000) {
        with_gpu(|ctx| {
            let x = random(&[b, c, h, w], seed);
            let gamma = vals(c, seed + 1);
            let beta = vals(c, seed + 2);
            let mean = vals(c, seed + 3);
            let var: Vec<f32> = vals(c, seed + 4).iter().map(|v| v.abs() + 0.1).collect();
            let mut want = cpu::batch_norm(&x, &gamma, &beta, &mean, &var, 1e-5).unwrap();
            if relu { want = cpu::relu(&want); }
            let ss = norm::scale_shift(&gamma, &beta, &mean, &var, 1e-5).unwrap();
            let (xb, sb) = (up(ctx, "x", x.data()), up(ctx, "ss", &ss));
            let ob = ctx.storage_buffer("o", (want.numel() * 4) as u64).unwrap();
            let shape = BnShape { batch: b, channels: c, hw: h * w };
            let args = NormArgs { x: arg(&xb), scale_shift: arg(&sb), out: arg(&ob) };
            let d = norm::batch_norm(ctx, "bn", (&shape, act(relu)), args).unwrap();
            assert_close("batch_norm", &run_read(ctx, &[d], &ob, want.numel()), want.data(), Tolerance::F32_OP);
        });
    }

    #[test]
    fn pools_match_cpu(b in 1usize..=3, c in 1usize..=4, h in 3usize..=12, w in 3usize..=12,
                       k in 1usize..=3, s in 1usize..=3, p in 0usize..=1, seed in 0u64..1000) {
        prop_assume!(p <= k / 2);
        with_gpu(|ctx| {
            let x = random(&[b, c, h, w], seed);
            let spec = Pool2dSpec::square(k, s, p);
            let xb = up(ctx, "x", x.data());
            for max in [true, false] {
                let want = if max { cpu::max_pool2d(&x, &spec) } else { cpu::avg_pool2d(&x, &spec) }.unwrap();
                let ob = ctx.storage_buffer("o", (want.numel() * 4) as u64).unwrap();
                let kind = if max { PoolKind::Max(spec) } else { PoolKind::Avg(spec) };
                let shape = PoolShape { kind, batch: b, channels: c, in_hw: [h, w] };
                let d = pool::forward(ctx, "pool", &shape, &arg(&xb), &arg(&ob)).unwrap();
                assert_close(&format!("pool max={max} k{k} s{s} p{p} {h}x{w}"), &run_read(ctx, &[d], &ob, want.numel()), want.data(), Tolerance::F32_OP);
            }
        });
    }

    #[test]
    fn adaptive_avg_pool_matches_cpu(b in 1usize..=3, c in 1usize..=4, h in 1usize..=10, w in 1usize..=10,
                                     oh in 1usize..=9, ow in 1usize..=9, seed in 0u64..1000) {
        with_gpu(|ctx| {
            let x = random(&[b, c, h, w], seed);
            let want = cpu::adaptive_avg_pool2d(&x, [oh, ow]).unwrap();
            let xb = up(ctx, "x", x.data());
            let ob = ctx.storage_buffer("o", (want.numel() * 4) as u64).unwrap();
            let shape = PoolShape { kind: PoolKind::Adaptive([oh, ow]), batch: b, channels: c, in_hw: [h, w] };
            let d = pool::forward(ctx, "aap", &shape, &arg(&xb), &arg(&ob)).unwrap();
            assert_close(&format!("adaptive {h}x{w}->{oh}x{ow}"), &run_read(ctx, &[d], &ob, want.numel()), want.data(), Tolerance::F32_OP);
        });
    }

    #[test]
    fn linear_matches_cpu(b in 1usize..=6, fin in 1usize..=70, fout in 1usize..=40, bias in any::<bool>(), relu in any::<bool>(), seed in 0u64..1000) {
        with_gpu(|ctx| check_linear(ctx, b, fin, fout, bias, relu, None, seed));
    }

    #[test]
    fn softmax_and_gather_match_cpu(b in 1usize..=4, f in 1usize..=50, c in 1usize..=6, hw in 1usize..=20, seed in 0u64..1000) {
        with_gpu(|ctx| {
            let x = random(&[b, f], seed).reshape(&[b, f]).unwrap();
            let x = Tensor::new(vec![b, f], x.data().iter().map(|v| v * 8.0).collect()).unwrap();
            let want = cpu::softmax(&x).unwrap();
            let xb = up(ctx, "x", x.data());
            let ob = ctx.storage_buffer("o", (want.numel() * 4) as u64).unwrap();
            let d = softmax::softmax(ctx, "softmax", [b, f], SoftmaxArgs { x: arg(&xb), out: arg(&ob) }).unwrap();
            assert_close("softmax", &run_read(ctx, &[d], &ob, want.numel()), want.data(), Tolerance::F32_OP);

            let x = random(&[b, c, hw, 1], seed + 1);
            let mut r = SmallRng::seed_from_u64(seed);
            let idx: Vec<usize> = (0..c + 2).map(|_| r.random_range(0..c)).collect();
            let want = cpu::gather_channels(&x, &idx).unwrap();
            let xb = up(ctx, "x", x.data());
            let ib = gather::upload_indices(ctx, "gather", &idx, c).unwrap();
            let ob = ctx.storage_buffer("o", (want.numel() * 4) as u64).unwrap();
            let args = GatherArgs { x: arg(&xb), indices: arg(&ib), out: arg(&ob) };
            let d = gather::gather(ctx, "gather", (b, [c, idx.len()], hw), args).unwrap();
            assert_close("gather", &run_read(ctx, &[d], &ob, want.numel()), want.data(), Tolerance::F32_OP);
        });
    }

    #[test]
    fn relu_and_add_match_cpu(n in 1usize..=5000, relu in any::<bool>(), seed in 0u64..1000) {
        with_gpu(|ctx| check_relu_add(ctx, n, relu, seed));
    }
}

#[allow(clippy::too_many_arguments)]
fn check_linear(
    ctx: &GpuContext,
    b: usize,
    fin: usize,
    fout: usize,
    bias: bool,
    relu: bool,
    chunks: Option<&[usize]>,
    seed: u64,
) {
    let x = random(&[b, fin], seed);
    let wt = random(&[fout, fin], seed + 1);
    let bv = bias.then(|| vals(fout, seed + 2));
    let mut want = cpu::linear(&x, &wt, bv.as_deref()).unwrap();
    if relu {
        want = cpu::relu(&want);
    }
    let xb = up(ctx, "x", x.data());
    let wchunks: Vec<Arg> = match chunks {
        None => linear::upload_weight(ctx, "fc", wt.data(), [fout, fin])
            .unwrap()
            .iter()
            .map(arg)
            .collect(),
        Some(rows) => {
            let mut r0 = 0;
            rows.iter()
                .map(|&r| {
                    let buf = up(ctx, "chunk", &wt.data()[r0 * fin..(r0 + r) * fin]);
                    r0 += r;
                    arg(&buf)
                })
                .collect()
        }
    };
    let bb = bv.as_ref().map(|v| arg(&up(ctx, "b", v)));
    let ob = ctx.storage_buffer("o", (want.numel() * 4) as u64).unwrap();
    let shape = LinearShape {
        batch: b,
        in_features: fin,
        out_features: fout,
    };
    let d = linear::forward(
        ctx,
        "fc",
        (&shape, act(relu)),
        &arg(&xb),
        (&wchunks, bb.as_ref()),
        &arg(&ob),
    )
    .unwrap();
    assert_eq!(d.len(), wchunks.len(), "one dispatch per weight chunk");
    assert_close(
        &format!("linear {b}x{fin}->{fout} chunks {chunks:?}"),
        &run_read(ctx, &d, &ob, want.numel()),
        want.data(),
        Tolerance::F32_OP,
    );
}

fn check_relu_add(ctx: &GpuContext, n: usize, relu: bool, seed: u64) {
    let a = random(&[n], seed);
    let b = random(&[n], seed + 1);
    let ab = up(ctx, "a", a.data());
    let bb = up(ctx, "b", b.data());
    let ob = ctx.storage_buffer("o", (n * 4) as u64).unwrap();
    let d = elementwise::activation(
        ctx,
        "relu",
        Elementwise::len(n).act(Activation::Relu),
        &arg(&ab),
        &arg(&ob),
    )
    .unwrap();
    assert_close(
        "relu",
        &run_read(ctx, &[d], &ob, n),
        cpu::relu(&a).data(),
        Tolerance::F32_OP,
    );
    let mut want = cpu::add(&a, &b).unwrap();
    if relu {
        want = cpu::relu(&want);
    }
    let d = elementwise::add(
        ctx,
        "add",
        Elementwise::len(n).act(act(relu)),
        [&arg(&ab), &arg(&bb)],
        &arg(&ob),
    )
    .unwrap();
    assert_close(
        "add",
        &run_read(ctx, &[d], &ob, n),
        want.data(),
        Tolerance::F32_OP,
    );
}

/// The split-weight path: rows spread over several buffers (as for VGG's classifier),
/// forced small here, and `split_rows` honouring the adapter's binding limit.
#[test]
fn linear_split_weight() {
    with_gpu(|ctx| {
        check_linear(ctx, 3, 37, 20, true, false, Some(&[3, 5, 1, 11]), 1);
        check_linear(ctx, 5, 64, 9, false, true, Some(&[9]), 2);
        let rows = linear::split_rows(ctx, 4096, 25088);
        assert_eq!(rows.iter().sum::<usize>(), 4096);
        let max = ctx.limits.max_storage_buffer_binding_size;
        assert!(
            rows.iter().all(|&r| (r * 25088 * 4) as u64 <= max),
            "{rows:?} vs {max}"
        );
        if max < 4096 * 25088 * 4 {
            assert!(
                rows.len() > 1,
                "VGG classifier.0 must be split on this adapter"
            );
        }
    });
}

/// More than 65535 workgroups of 64: the grid is folded into 2-D and still exact.
#[test]
fn elementwise_folded_grid() {
    with_gpu(|ctx| {
        let n: usize = 65_535 * 64 + 4_099;
        let wg = gconv::gpu::kernels::WG as usize;
        assert!(n.div_ceil(wg) > ctx.limits.max_compute_workgroups_per_dimension as usize);
        let x = up(ctx, "a", &vals(n, 3));
        let o = ctx.storage_buffer("o", (n * 4) as u64).unwrap();
        let e = Elementwise::len(n).act(Activation::Relu);
        let d = elementwise::activation(ctx, "relu", e, &arg(&x), &arg(&o)).unwrap();
        assert!(d.grid[1] > 1, "grid {:?} not folded", d.grid);
        check_relu_add(ctx, n, true, 3);
    });
}

#[test]
fn fold_workgroups_bounds() {
    with_gpu(|ctx| {
        use gconv::gpu::kernels::fold_workgroups;
        let max = u64::from(ctx.limits.max_compute_workgroups_per_dimension);
        for total in [1, 2, max - 1, max, max + 1, 3 * max + 7, max * 1000] {
            let [x, y, z] = fold_workgroups(ctx, "t", total).unwrap();
            assert!(u64::from(x) <= max && u64::from(y) <= max && z == 1);
            let cover = u64::from(x) * u64::from(y);
            assert!(
                cover >= total && cover - total < u64::from(x),
                "{total}: {x}x{y}"
            );
        }
        assert!(fold_workgroups(ctx, "t", max * max + 1).is_err());
    });
}

/// Tensors at an aligned offset inside a shared buffer (how an executor packs activations).
#[test]
fn tensors_at_offsets() {
    with_gpu(|ctx| {
        let align = ctx.limits.min_storage_buffer_offset_alignment as usize / 4;
        let case = conv_case(1, 4, 8, 2, 3, 1, 1, 1, [5, 5], true, false);
        let s = &case.spec;
        let x = random(&[1, 4, 5, 5], 9);
        let wt = random(&s.weight_shape(), 10);
        let bias = vals(8, 11);
        let want = cpu::conv2d(&x, &wt, Some(&bias), s).unwrap();
        // x at element `align` of a bigger buffer; out after it, also aligned.
        let mut arena = vec![7.0f32; align];
        arena.extend_from_slice(x.data());
        let out_at = (arena.len()).div_ceil(align) * align;
        arena.resize(out_at + want.numel(), -1.0);
        let ab = up(ctx, "arena", &arena);
        let xr = arg(&ab).slice(align, x.numel());
        let or = arg(&ab).slice(out_at, want.numel());
        // x and out in one buffer cannot be bound read + read_write in one dispatch (wgpu's
        // usage rules, even at disjoint offsets): an error at prepare time, not at submit.
        let wb = up(ctx, "w", wt.data());
        let bb = up(ctx, "b", &bias);
        let groups = conv::even_groups("conv", s).unwrap();
        let geo = (DirectKernel::Co8, s, 1, [5, 5], false);
        let r = direct_conv(
            ctx,
            "layer2.conv",
            geo,
            &groups,
            xr.clone(),
            &wb,
            Some(&bb),
            or,
        );
        assert_err(r, "layer2.conv");
        // Separate buffers, both at offsets.
        let ob = ctx
            .storage_buffer("o", ((out_at + want.numel()) * 4) as u64)
            .unwrap();
        let or = arg(&ob).slice(out_at, want.numel());
        let d = direct_conv(ctx, "conv", geo, &groups, xr, &wb, Some(&bb), or).unwrap();
        run_dispatches(ctx, &bind_all(ctx, &d).unwrap()).unwrap();
        let got = ctx.read_f32(&ob, out_at as u64, want.numel()).unwrap();
        assert_close("offset conv", &got, want.data(), Tolerance::F32_OP);
    });
}

/// The kernel choice on this (CPU) adapter: conv_fast wherever a specialised entry fits,
/// else the tiled kernel for static weights, the packed direct kernel for stride 1 and the
/// per-channel one for thin groups.
#[test]
fn kernel_choice_follows_the_candidate_lists() {
    with_gpu(|ctx| {
        use choice::{ConvKernel, ConvProblem};
        if !ctx.is_cpu() {
            return;
        }
        let kernel = |spec: &Conv2dSpec, static_weights: bool| {
            choice::conv_forward(ctx, &ConvProblem::conv2d(spec, 1, [8, 8], static_weights))
        };
        let dense = Conv2dSpec::square(16, 16, 3, 1, 1);
        let depthwise = Conv2dSpec::square(16, 16, 3, 1, 1).groups(16);
        for static_weights in [true, false] {
            assert_eq!(kernel(&dense, static_weights), ConvKernel::Fast(None));
            assert_eq!(kernel(&depthwise, static_weights), ConvKernel::Fast(None));
        }
        let mut dilated = dense.clone();
        dilated.dilation = [2, 2];
        assert_eq!(kernel(&dilated, true), ConvKernel::Tiled);
        assert_eq!(
            kernel(&dilated, false),
            ConvKernel::Direct(DirectKernel::Pk8)
        );
        let five = Conv2dSpec::square(16, 16, 5, 2, 2);
        assert_eq!(kernel(&five, false), ConvKernel::Direct(DirectKernel::Co8));
        let thin = Conv2dSpec::square(16, 16, 5, 1, 2).groups(16);
        for static_weights in [true, false] {
            assert_eq!(
                kernel(&thin, static_weights),
                ConvKernel::Direct(DirectKernel::Co1)
            );
        }
    });
}

// ---------------------------------------------------------------------------------------
// bad arguments: errors naming the layer, never panics

fn assert_err<T: std::fmt::Debug>(r: gconv::Result<T>, label: &str) {
    match r {
        Ok(v) => panic!("expected an error for {label}, got {v:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(label), "error `{msg}` does not name `{label}`");
        }
    }
}

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() })]

    /// The squeeze-excitation kernels and the concat copies (ONNX models) against the CPU:
    /// sigmoid, hard sigmoid (any α, β), hard swish, the channel-broadcast gate, and a concat
    /// taking channels from two inputs in any order.
    #[test]
    fn se_ops_and_concat_match_cpu(b in 1usize..=3, c in 1usize..=6, hw in 1usize..=30, seed in 0u64..1000) {
        with_gpu(|ctx| {
            use gconv::gpu::kernels::elementwise::Unary;
            use gconv::ops::{HardSigmoid, HardSwish, OpDef, Params, Sigmoid};
            let x = random(&[b, c, hw, 1], seed);
            let x4 = Tensor::new(x.shape().to_vec(), x.data().iter().map(|v| 6.0 * v).collect()).unwrap();
            let xb = up(ctx, "x", x4.data());
            let ob = ctx.storage_buffer("o", (x4.numel() * 4) as u64).unwrap();
            let w = gconv::Weights::new();
            let p = Params { layer: "se", weights: &w };
            let hs = HardSigmoid { alpha: 0.2, beta: 0.5 };
            let cases: [(&dyn OpDef, Unary); 3] = [
                (&Sigmoid, Unary::Sigmoid),
                (&hs, Unary::HardSigmoid { alpha: 0.2, beta: 0.5 }),
                (&HardSwish, Unary::HardSwish),
            ];
            for (op, f) in cases {
                let want = op.forward(&p, &[&x4]).unwrap();
                let d = elementwise::unary(ctx, op.kind(), (x4.numel(), f), &arg(&xb), &arg(&ob)).unwrap();
                assert_close(op.kind(), &run_read(ctx, &[d], &ob, want.numel()), want.data(), Tolerance::F32_OP);
            }
            let gate = random(&[b, c, 1, 1], seed + 1);
            let want = gconv::ops::mul(&x4, &gate).unwrap();
            let gb = up(ctx, "gate", gate.data());
            let d = elementwise::mul_channel(ctx, "se.mul", (x4.numel(), hw), [&arg(&xb), &arg(&gb)], &arg(&ob)).unwrap();
            assert_close("mul_channel", &run_read(ctx, &[d], &ob, want.numel()), want.data(), Tolerance::F32_OP);

            let y = random(&[b, c + 1, hw, 1], seed + 2);
            let mut sources: Vec<[usize; 2]> = (0..c).map(|ch| [0, ch]).chain((0..=c).map(|ch| [1, ch])).collect();
            sources.reverse();
            let want = gconv::ops::concat_channels(&[&x4, &y], &sources).unwrap();
            let yb = up(ctx, "y", y.data());
            let cat = ctx.storage_buffer("cat", (want.numel() * 4) as u64).unwrap();
            let c_out = sources.len();
            let mut calls = Vec::new();
            for (k, (buf, c_in)) in [(&xb, c), (&yb, c + 1)].into_iter().enumerate() {
                let pairs: Vec<[usize; 2]> = sources.iter().enumerate().filter(|(_, s)| s[0] == k).map(|(o, s)| [o, s[1]]).collect();
                let ib = gather::upload_pairs(ctx, "cat", &pairs, [c_out, c_in]).unwrap();
                let args = GatherArgs { x: arg(buf), indices: arg(&ib), out: arg(&cat) };
                calls.push(gather::gather_into(ctx, "cat", (b, [c_in, c_out], hw, pairs.len()), args).unwrap());
            }
            assert_close("concat", &run_read(ctx, &calls, &cat, want.numel()), want.data(), Tolerance::F32_OP);
        });
    }
}
