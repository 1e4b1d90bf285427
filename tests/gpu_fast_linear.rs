//! The fully connected kernels (`gemv`: batch-1 GEMV, small GEMMs, split-K, weights in
//! several row chunks, widths that are not a multiple of 4) and the roofline GEMM
//! candidates against the CPU reference. Runs on lavapipe; skips loudly without an adapter.

mod common;

use gconv::cpu;
use gconv::gpu::choice::{self, Adapter};
use gconv::gpu::family::LinearRun;
use gconv::gpu::geometry::LinearShape;
use gconv::gpu::launch::bind_all;
use gconv::gpu::{run_dispatches, Arg, GpuContext};
use gconv::ops::Activation;
use gconv::testing::{assert_close, Tolerance};
use gconv::Tensor;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn with_gpu(body: impl FnOnce(&GpuContext)) {
    let _g = common::serial();
    if let Some(ctx) = common::gpu() {
        body(ctx);
    }
}

fn vals(n: usize, seed: u64) -> Vec<f32> {
    let mut r = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

fn up(ctx: &GpuContext, name: &str, data: &[f32]) -> wgpu::Buffer {
    ctx.upload(name, data).expect("upload")
}

// ---------------------------------------------------------------------------------------
// fully connected: GEMV (batch 1), small GEMMs, split-K, chunked weights

use gconv::gpu::kernels::gemv::{self, GemvShape};

/// `rows` of the weight in consecutive chunks of the given sizes (must sum to out).
#[allow(clippy::too_many_arguments)]
fn check_linear(
    ctx: &GpuContext,
    batch: usize,
    inf: usize,
    outf: usize,
    chunks: &[usize],
    bias: bool,
    relu: bool,
    shape: Option<GemvShape>,
    seed: u64,
) {
    let x = Tensor::new(vec![batch, inf], vals(batch * inf, seed)).unwrap();
    let w = Tensor::new(vec![outf, inf], vals(outf * inf, seed + 1)).unwrap();
    let b = bias.then(|| vals(outf, seed + 2));
    let mut want = cpu::linear(&x, &w, b.as_deref()).unwrap();
    if relu {
        want = cpu::relu(&want);
    }
    let mut row = 0;
    let bufs: Vec<Arg> = chunks
        .iter()
        .map(|&r| {
            let buf = up(ctx, "w chunk", &w.data()[row * inf..(row + r) * inf]);
            row += r;
            Arg::whole(&buf)
        })
        .collect();
    let xb = up(ctx, "x", x.data());
    let bb = b.as_ref().map(|v| Arg::whole(&up(ctx, "b", v)));
    let ob = ctx
        .storage_buffer("out", (batch * outf * 4) as u64)
        .unwrap();
    let s = LinearShape {
        batch,
        in_features: inf,
        out_features: outf,
    };
    let act = if relu {
        Activation::Relu
    } else {
        Activation::None
    };
    let (x, out) = (Arg::whole(&xb), Arg::whole(&ob));
    let mut scratch = |label: &str, n: usize| {
        let b = ctx.storage_buffer(label, (n * 4) as u64)?;
        Ok(Arg::prefix(&b, n))
    };
    // gemv (forced with the tile under test), or the linear kernel for widths gemv cannot
    // read.
    let named = |n: &str| choice::linear_named(n).expect("a linear kernel");
    let kernel = match shape {
        Some(t) if gemv::fits(&s) => named(&format!("gemv[{}]", t.entry().unwrap())),
        _ if gemv::fits(&s) => named("gemv"),
        _ => named("linear"),
    };
    let listed = choice::linear_default(&s, &Adapter::of(ctx));
    assert_eq!(listed.family.name() == "gemv", gemv::fits(&s));
    let run = LinearRun {
        label: kernel.family.name(),
        shape: &s,
        x: &x,
        chunks: &bufs,
        bias: bb.as_ref(),
        out: &out,
        act,
        weight_f16: false,
    };
    let calls = kernel
        .family
        .forward(ctx, run, kernel.variant, &mut scratch)
        .expect("calls");
    assert_eq!(kernel.family.name() == "linear", inf % 4 != 0);
    assert!(calls.len() >= chunks.len(), "a call per chunk at least");
    run_dispatches(ctx, &bind_all(ctx, &calls).expect("bind")).expect("run");
    let got = ctx.read_f32(&ob, 0, batch * outf).expect("read back");
    assert_close(
        &format!("linear b{batch} {inf}->{outf} chunks {chunks:?} {shape:?}"),
        &got,
        want.data(),
        Tolerance::F32_OP,
    );
}

/// Splits `outf` rows into 1..=3 chunks at `cuts` (fractions of 1000).
fn chunking(outf: usize, cuts: &[usize]) -> Vec<usize> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| c * outf / 1000)
        .filter(|&c| c > 0 && c < outf)
        .collect();
    at.sort_unstable();
    at.dedup();
    let mut v = Vec::new();
    let mut prev = 0;
    for c in at.into_iter().chain([outf]) {
        v.push(c - prev);
        prev = c;
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn gemv_matches_cpu(
        batch in prop::sample::select(vec![1usize, 2, 3, 5, 8, 9]),
        in4 in 1usize..=300,
        odd in any::<bool>(),
        outf in 1usize..=200,
        cuts in prop::collection::vec(1usize..1000, 0..=2),
        bias in any::<bool>(),
        relu in any::<bool>(),
        shape in prop_oneof![Just(None), prop::sample::select(gemv::SHAPES.to_vec()).prop_map(Some)],
        seed in 0u64..1000,
    ) {
        // `odd`: a width that is not a multiple of 4 (delegated to the old kernel).
        let inf = if odd { 4 * in4 + 3 } else { 4 * in4 };
        let chunks = chunking(outf, &cuts);
        with_gpu(|ctx| check_linear(ctx, batch, inf, outf, &chunks, bias, relu, shape, seed));
    }
}

#[test]
fn gemv_named_shapes() {
    with_gpu(|ctx| {
        // Few rows, long K: split-K with a reduce pass; every tile shape.
        for (i, s) in gemv::SHAPES.iter().enumerate() {
            check_linear(ctx, 3, 4096, 10, &[10], true, true, Some(*s), 60 + i as u64);
        }
        // VGG-like classifier tail at batch 1 and 8, in three uneven chunks.
        check_linear(ctx, 1, 2048, 1000, &[333, 600, 67], true, false, None, 70);
        check_linear(ctx, 8, 2048, 1000, &[500, 500], true, true, None, 71);
        // One output feature, batch 9 (partial sample tile).
        check_linear(ctx, 9, 64, 1, &[1], false, false, None, 72);
    });
}

// ---------------------------------------------------------------------------------------
// roofline

#[test]
fn roofline_gemms_compute_a_product_and_measure_reports_the_best() {
    use gconv::gpu::roofline;
    with_gpu(|ctx| {
        let (m, n, k) = (32usize, 128usize, 37usize);
        let at = vals(k * m, 80);
        let b = vals(k * n, 81);
        let mut want = vec![0.0f32; m * n];
        for r in 0..m {
            for c in 0..n {
                want[r * n + c] = (0..k).map(|i| at[i * m + r] * b[i * n + c]).sum();
            }
        }
        for (entry, _, _) in roofline::GEMM_KERNELS {
            let got = roofline::gemm(ctx, entry, &at, &b, [m, n, k]).expect("gemm");
            assert_close(entry, &got, &want, Tolerance::F32_OP);
        }
        assert!(roofline::gemm(ctx, "gemm_m8_n8", &at, &b, [m, n + 1, k]).is_err());
        assert!(roofline::gemm(ctx, "nope", &at, &b, [m, n, k]).is_err());
        let roof = roofline::measure(ctx).expect("measure");
        assert!(roof.read_gbps > 0.0 && roof.gemm_gflops > 0.0, "{roof:?}");
        assert!(roofline::READ_KERNELS.contains(&roof.read_kernel.as_str()));
        assert!(roofline::GEMM_KERNELS
            .iter()
            .any(|g| g.0 == roof.gemm_kernel));
        let best = roof.all.iter().map(|c| c.1).fold(0.0, f64::max);
        assert_eq!(best, roof.read_gbps.max(roof.gemm_gflops));
    });
}
