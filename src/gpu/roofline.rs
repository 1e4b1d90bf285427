//! The roof of the adapter in use: its streaming read bandwidth and the best fp32 GEMM rate
//! among a few register-tiled candidates ([`crate::gpu::kernels::roofline`]). A few seconds
//! on lavapipe.
//!
//! Kernels are judged against these two numbers: memory-bound ones (GEMV, depthwise conv)
//! against [`Roofline::read_gbps`], compute-bound ones (dense conv, GEMM) against
//! [`Roofline::gemm_gflops`].

use super::context::{run_dispatches, GpuContext};
use super::kernels::roofline::{self as kernel, READ_CHUNK};
pub use super::kernels::roofline::{GEMM_KERNELS, READ_KERNELS};
use super::launch::{bind_all, Arg, Dispatch};
use crate::error::Result;
use std::time::Instant;

/// What [`measure`] found.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Roofline {
    /// Adapter description.
    pub adapter: String,
    /// Best streaming read bandwidth, GB/s (10⁹ bytes per second).
    pub read_gbps: f64,
    /// The read kernel that achieved it.
    pub read_kernel: String,
    /// Best fp32 GEMM rate, GFLOP/s.
    pub gemm_gflops: f64,
    /// The GEMM candidate that achieved it.
    pub gemm_kernel: String,
    /// Every candidate: (kernel, GB/s or GFLOP/s).
    pub all: Vec<(String, f64)>,
}

/// Median wall-clock seconds of `reps` runs (after one warm-up run).
fn time(ctx: &GpuContext, d: &[Dispatch], reps: usize) -> Result<f64> {
    run_dispatches(ctx, d)?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps {
        let s = Instant::now();
        run_dispatches(ctx, d)?;
        t.push(s.elapsed().as_secs_f64());
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[t.len() / 2])
}

/// The dispatch of streaming-read kernel `entry` (one of [`READ_KERNELS`]) over a buffer of
/// the adapter's binding limit (at most 128 MiB) that it owns, and the bytes one run reads:
/// for timing it next to other kernels (`examples/kernel_lab.rs` interleaves it with GEMV).
pub fn read_dispatch(ctx: &GpuContext, entry: &str) -> Result<(Vec<Dispatch>, u64)> {
    let lim = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size);
    let bytes = (128u64 << 20).min(lim) / (1 << 20) * (1 << 20);
    let n_vec4 = (bytes / 16) as usize;
    let wgs = (n_vec4 / READ_CHUNK).max(1);
    let a = ctx.upload(
        "roofline read buffer",
        &(0..n_vec4 * 4)
            .map(|i| (i % 1024) as f32 * 1e-3)
            .collect::<Vec<f32>>(),
    )?;
    let b = ctx.storage_buffer("roofline b", 16)?;
    let sink = ctx.storage_buffer("roofline out", (wgs * 8 * 16) as u64)?;
    let (call, read) = kernel::read(ctx, entry, [&(&a).into(), &(&b).into(), &(&sink).into()])?;
    Ok((bind_all(ctx, &[call])?, read))
}

/// Measures the streaming read bandwidth and the best GEMM rate of `ctx`'s adapter.
pub fn measure(ctx: &GpuContext) -> Result<Roofline> {
    let mut all = Vec::new();
    // ---- streaming read: the whole buffer once per run.
    let (mut read_gbps, mut read_kernel) = (0.0, String::new());
    for entry in READ_KERNELS {
        let (d, bytes) = read_dispatch(ctx, entry)?;
        let gbps = bytes as f64 / time(ctx, &d, 5)? / 1e9;
        all.push((entry.to_string(), gbps));
        if gbps > read_gbps {
            (read_gbps, read_kernel) = (gbps, entry.to_string());
        }
    }
    // ---- GEMM: 512³ (A stored transposed).
    let (m, n, k) = (512usize, 512usize, 512usize);
    let at = ctx.upload(
        "roofline A",
        &(0..k * m)
            .map(|i| (i % 7) as f32 * 0.1)
            .collect::<Vec<f32>>(),
    )?;
    let bm = ctx.upload(
        "roofline B",
        &(0..k * n)
            .map(|i| (i % 5) as f32 * 0.1)
            .collect::<Vec<f32>>(),
    )?;
    let c = ctx.storage_buffer("roofline C", (m * n * 4) as u64)?;
    let (mut gemm_gflops, mut gemm_kernel) = (0.0, String::new());
    for (entry, _, _) in GEMM_KERNELS {
        let args = [&Arg::whole(&at), &Arg::whole(&bm), &Arg::whole(&c)];
        let d = bind_all(ctx, &[kernel::gemm(ctx, entry, args, [m, n, k])?])?;
        let gflops = 2.0 * (m * n * k) as f64 / time(ctx, &d, 3)? / 1e9;
        all.push((entry.to_string(), gflops));
        if gflops > gemm_gflops {
            (gemm_gflops, gemm_kernel) = (gflops, entry.to_string());
        }
    }
    Ok(Roofline {
        adapter: ctx.describe(),
        read_gbps,
        read_kernel,
        gemm_gflops,
        gemm_kernel,
        all,
    })
}

/// Runs GEMM candidate `entry`: `C = A·B` for `at` = Aᵀ (`k × m`, row-major) and `b`
/// (`k × n`); returns C (`m × n`). `m` must be a multiple of the candidate's rows per
/// invocation and `n` of 8 × its columns (the roofline only dispatches whole tiles).
pub fn gemm(
    ctx: &GpuContext,
    entry: &str,
    at: &[f32],
    b: &[f32],
    [m, n, k]: [usize; 3],
) -> Result<Vec<f32>> {
    let ab = ctx.upload("gemm A", at)?;
    let bb = ctx.upload("gemm B", b)?;
    let cb = ctx.storage_buffer("gemm C", (m * n * 4) as u64)?;
    let args = [&Arg::whole(&ab), &Arg::whole(&bb), &Arg::prefix(&cb, m * n)];
    let call = kernel::gemm(ctx, entry, args, [m, n, k])?;
    run_dispatches(ctx, &bind_all(ctx, &[call])?)?;
    ctx.read_f32(&cb, 0, m * n)
}
