//! The other launchers against the CPU; split weights, folded grids, offsets, kernel choice.

use super::{act, arg, assert_err, conv_case, direct_conv, random, run_read, up, vals, with_gpu};
use gconv::cpu;
use gconv::gpu::choice;
use gconv::gpu::geometry::LinearShape;
use gconv::gpu::kernels::conv;
use gconv::gpu::kernels::conv::DirectKernel;
use gconv::gpu::kernels::elementwise::{self, Elementwise};
use gconv::gpu::kernels::gather::{self, GatherArgs};
use gconv::gpu::kernels::linear;
use gconv::gpu::kernels::norm::{self, BnShape, NormArgs};
use gconv::gpu::kernels::pool::{self, PoolKind, PoolShape};
use gconv::gpu::kernels::softmax::{self, SoftmaxArgs};
use gconv::gpu::launch::bind_all;
use gconv::gpu::{run_dispatches, Arg, GpuContext};
use gconv::graph::{Conv2dSpec, Pool2dSpec};
use gconv::ops::Activation;
use gconv::testing::{assert_close, Tolerance};
use gconv::Tensor;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

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
        use choice::{Adapter, AdapterClass, ConvProblem};
        if Adapter::of(ctx).class != AdapterClass::Cpu {
            return;
        }
        let kernel = |spec: &Conv2dSpec, static_weights: bool| {
            choice::conv_forward(ctx, &ConvProblem::conv2d(spec, 1, [8, 8], static_weights)).name()
        };
        let dense = Conv2dSpec::square(16, 16, 3, 1, 1);
        let depthwise = Conv2dSpec::square(16, 16, 3, 1, 1).groups(16);
        for static_weights in [true, false] {
            assert_eq!(kernel(&dense, static_weights), "conv_fast");
            assert_eq!(kernel(&depthwise, static_weights), "conv_fast");
        }
        let mut dilated = dense.clone();
        dilated.dilation = [2, 2];
        assert_eq!(kernel(&dilated, true), "conv_tiled");
        assert_eq!(kernel(&dilated, false), "conv_pk8");
        let five = Conv2dSpec::square(16, 16, 5, 2, 2);
        assert_eq!(kernel(&five, false), "conv_co8");
        let thin = Conv2dSpec::square(16, 16, 5, 1, 2).groups(16);
        for static_weights in [true, false] {
            assert_eq!(kernel(&thin, static_weights), "conv_co1");
        }
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
            use gconv::gpu::kernels::elementwise::Elementwise;
            use gconv::ops::{Activation, OpDef, Params};
            let x = random(&[b, c, hw, 1], seed);
            let x4 = Tensor::new(x.shape().to_vec(), x.data().iter().map(|v| 6.0 * v).collect()).unwrap();
            let xb = up(ctx, "x", x4.data());
            let ob = ctx.storage_buffer("o", (x4.numel() * 4) as u64).unwrap();
            let w = gconv::Weights::new();
            let p = Params { layer: "se", weights: &w };
            let cases = [
                Activation::Sigmoid,
                Activation::HardSigmoid { alpha: 0.2, beta: 0.5 },
                Activation::HardSwish,
            ];
            for op in cases {
                let want = op.forward(&p, &[&x4]).unwrap();
                let e = Elementwise::len(x4.numel()).act(op);
                let d = elementwise::activation(ctx, op.kind(), e, &arg(&xb), &arg(&ob)).unwrap();
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
