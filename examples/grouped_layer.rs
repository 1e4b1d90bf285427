//! One grouped convolution layer on the GPU, checked against the CPU reference.
//!
//! ```text
//! cargo run --release --example grouped_layer
//! ```
//! Shows the lower-level API: build a graph by hand with `GraphBuilder`, give it weights,
//! and run it on both devices.

use gconv::graph::{Conv2dSpec, GraphBuilder, Op};
use gconv::testing::{check_close, Tolerance};
use gconv::{Device, LoadOptions, Runtime, Tensor, Weights};

fn main() -> Result<(), gconv::Error> {
    // 64 → 64 channels, 3×3, stride 1, padding 1, 8 groups, on 32×32 images.
    let mut b = GraphBuilder::new("one-grouped-conv", [64, 32, 32]);
    let spec = Conv2dSpec::square(64, 64, 3, 1, 1).groups(8).bias(true);
    let y = b.push("conv", Op::Conv2d(spec), &[b.input()])?;
    let graph = b.finish(y);
    let weights = Weights::init(&graph, 42);
    let x = Tensor::from_fn(&[2, 64, 32, 32], |i| (i % 17) as f32 / 17.0 - 0.5);

    let cpu = Runtime::new(Device::Cpu)?;
    let want = cpu
        .load_graph(graph.clone(), weights.clone(), &LoadOptions::default())?
        .run(&x)?;

    let gpu = Runtime::new(Device::Auto)?;
    println!("device: {}", gpu.describe());
    let got = gpu
        .load_graph(graph, weights, &LoadOptions::default())?
        .run(&x)?;
    match check_close("grouped conv", got.data(), want.data(), Tolerance::F32_OP) {
        Ok(()) => println!(
            "GPU == CPU within {:?} for output {:?}",
            Tolerance::F32_OP,
            got.shape()
        ),
        Err(m) => println!("{m}"),
    }
    Ok(())
}
