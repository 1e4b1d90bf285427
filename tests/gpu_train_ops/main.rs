//! Every GPU training kernel (everything but convolution) against its CPU specification in
//! `gconv::train` over property-generated small shapes and named regression cases: training
//! batch norm and its backward, pooling backward, linear backward, the loss head, SGD,
//! ReLU backward, copy / accumulation, dropout; `accumulate = true` on every gradient
//! kernel; bad arguments are errors. Runs on lavapipe; skips loudly without an adapter.

#[path = "../common/mod.rs"]
mod common;

use gconv::gpu::launch::bind_all;
use gconv::gpu::{run_dispatches, Arg, Call, GpuContext};
use gconv::Tensor;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod batch_norm;
mod cross_entropy;
mod errors;
mod linear;
mod pointwise;
mod pooling;
mod sgd;

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

/// Values from {−1, −½, 0, ½, 1}: many ties for max pooling and argmax.
fn coarse(shape: &[usize], seed: u64) -> Tensor {
    let mut r = SmallRng::seed_from_u64(seed);
    Tensor::from_fn(shape, |_| r.random_range(-2i32..=2) as f32 * 0.5)
}

fn up(ctx: &GpuContext, name: &str, data: &[f32]) -> wgpu::Buffer {
    ctx.upload(name, data).expect("upload")
}

fn scratch1(ctx: &GpuContext) -> Arg {
    Arg::whole(&ctx.storage_buffer("scratch", 4).expect("buffer"))
}

fn t(b: &wgpu::Buffer) -> Arg {
    Arg::whole(b)
}

fn read(ctx: &GpuContext, b: &wgpu::Buffer) -> Vec<f32> {
    ctx.read_f32(b, 0, (b.size() / 4) as usize)
        .expect("read back")
}

fn run(ctx: &GpuContext, d: &[Call]) {
    run_dispatches(ctx, &bind_all(ctx, d).expect("bind")).expect("run");
}

/// The buffer a gradient is written into: zeros, or (accumulate) random values that the
/// kernel must add to. Returns the buffer and its initial contents.
fn grad_buf(ctx: &GpuContext, n: usize, accumulate: bool, seed: u64) -> (wgpu::Buffer, Vec<f32>) {
    let init = if accumulate {
        vals(n, seed)
    } else {
        vec![f32::NAN; n] // overwrite must not read it
    };
    (up(ctx, "grad", &init), init)
}

/// `init + want` when accumulating, else `want`.
fn expect(want: &[f32], init: &[f32], accumulate: bool) -> Vec<f32> {
    if accumulate {
        want.iter().zip(init).map(|(w, i)| w + i).collect()
    } else {
        want.to_vec()
    }
}

fn assert_err<T: std::fmt::Debug>(r: gconv::Result<T>, label: &str) {
    match r {
        Ok(v) => panic!("expected an error for {label}, got {v:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(label), "error `{msg}` does not name `{label}`");
        }
    }
}
