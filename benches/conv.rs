//! Conv kernels on the GPU: dense vs grouped (G=4, G=32) vs depthwise 3×3 at 256 channels
//! and 56×56, plus a 1×1 layer, batch 1. Each iteration records the layer's dispatches in
//! one pass, submits and waits for the device (`poll(wait)`) before the clock is read.
//! Throughput is reported as elements = FLOPs (2 per multiply-add), so criterion's
//! `Gelem/s` reads as GFLOP/s.
//!
//! `GCONV_BENCH_QUICK=1` shrinks the layers to 64 channels at 28×28 and the sampling, for CI.
//! Run: `cargo bench --bench conv`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gconv::gpu::kernels::conv;
use gconv::gpu::{run_dispatches, GpuContext, TensorRef};
use gconv::graph::Conv2dSpec;
use std::time::Duration;

fn bench_conv(c: &mut Criterion) {
    let ctx = match GpuContext::new() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("SKIPPING GPU BENCH: no adapter ({e}) — install mesa-vulkan-drivers");
            return;
        }
    };
    eprintln!("GPU: {}", ctx.describe());
    let quick = std::env::var("GCONV_BENCH_QUICK").as_deref() == Ok("1");
    let (ch, hw) = if quick { (64, 28) } else { (256, 56) };
    let cases: Vec<(String, Conv2dSpec)> = vec![
        (
            format!("dense_3x3_{ch}ch_{hw}"),
            Conv2dSpec::square(ch, ch, 3, 1, 1),
        ),
        (
            format!("g4_3x3_{ch}ch_{hw}"),
            Conv2dSpec::square(ch, ch, 3, 1, 1).groups(4),
        ),
        (
            format!("g32_3x3_{ch}ch_{hw}"),
            Conv2dSpec::square(ch, ch, 3, 1, 1).groups(32),
        ),
        (
            format!("depthwise_3x3_{ch}ch_{hw}"),
            Conv2dSpec::square(ch, ch, 3, 1, 1).groups(ch),
        ),
        (
            format!("pointwise_1x1_{ch}ch_{hw}"),
            Conv2dSpec::square(ch, ch, 1, 1, 0),
        ),
    ];
    let mut group = c.benchmark_group("conv");
    if quick {
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
    } else {
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
    }
    let x: Vec<f32> = (0..ch * hw * hw).map(|i| (i % 17) as f32 * 0.01).collect();
    let xb = ctx.upload("x", &x).expect("upload x");
    let ob = ctx
        .storage_buffer("out", (ch * hw * hw * 4) as u64)
        .expect("out");
    for (name, spec) in &cases {
        let wlen: usize = spec.weight_shape().iter().product();
        let w: Vec<f32> = (0..wlen).map(|i| (i % 13) as f32 * 0.01 - 0.06).collect();
        let wb = ctx.upload("w", &w).expect("upload w");
        let d = conv::prepare_conv2d(
            &ctx,
            name,
            TensorRef::whole(&xb),
            &wb,
            None,
            TensorRef::whole(&ob),
            1,
            spec,
            [hw, hw],
            true,
        )
        .expect("prepare");
        let flops = 2 * (ch * hw * hw) as u64 * wlen as u64 / ch as u64;
        group.throughput(Throughput::Elements(flops));
        group.bench_function(name.as_str(), |b| {
            b.iter(|| run_dispatches(&ctx, &d).expect("run"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_conv);
criterion_main!(benches);
