//! Conv layers on the GPU: dense vs grouped (G=4, G=32) vs depthwise 3×3 at 256 channels
//! and 56×56, plus a 1×1 layer, batch 1, each run as a one-layer model (the kernel the
//! adapter's candidate lists choose, weights prepared at load). Each iteration records the
//! layer's dispatches in one pass, submits and waits for the device before the clock is read.
//! Throughput is reported as elements = FLOPs (2 per multiply-add), so criterion's
//! `Gelem/s` reads as GFLOP/s.
//!
//! `GCONV_BENCH_QUICK=1` shrinks the layers to 64 channels at 28×28 and the sampling, for CI.
//! Run: `cargo bench --bench conv`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gconv::gpu::GpuContext;
use gconv::graph::{Conv2dSpec, GraphBuilder, Op};
use gconv::{LoadOptions, Runtime, Tensor, Weights};
use std::sync::Arc;
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
    let rt = Runtime::with_context(Arc::new(ctx));
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
    let x = Tensor::from_fn(&[1, ch, hw, hw], |i| (i % 17) as f32 * 0.01);
    for (name, spec) in &cases {
        let mut b = GraphBuilder::new(name.as_str(), [ch, hw, hw]);
        let y = b
            .push("conv", Op::Conv2d(spec.clone()), &[b.input()])
            .expect("graph");
        let y = b.push("relu", Op::relu(), &[y]).expect("graph");
        let g = b.finish(y);
        let w = Weights::init(&g, 0);
        let mut model = rt.load_graph(g, w, &LoadOptions::default()).expect("load");
        let gpu = model.gpu_model().expect("a GPU model");
        let wlen: usize = spec.weight_shape().iter().product();
        let flops = 2 * (ch * hw * hw) as u64 * wlen as u64 / ch as u64;
        group.throughput(Throughput::Elements(flops));
        group.bench_function(name.as_str(), |b| {
            b.iter(|| gpu.run_no_readback(&x).expect("run"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_conv);
criterion_main!(benches);
