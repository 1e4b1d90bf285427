//! Every GPU launcher against the CPU reference (`gconv::cpu`), over property-generated
//! shapes and named regression cases, plus the split-weight and folded-grid paths and
//! bad arguments. Runs on lavapipe; skips loudly without an adapter (see `common`).

#[path = "../common/mod.rs"]
mod common;

use gconv::gpu::geometry::ConvShape;
use gconv::gpu::kernels::conv::DirectKernel;
use gconv::gpu::kernels::conv::{self, DirectArgs};
use gconv::gpu::launch::bind_all;
use gconv::gpu::{run_dispatches, Arg, Call, GpuContext};
use gconv::graph::Conv2dSpec;
use gconv::ops::Activation;
use gconv::Tensor;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod convolution;
mod errors;
mod grouped_table;
mod ops;

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

fn assert_err<T: std::fmt::Debug>(r: gconv::Result<T>, label: &str) {
    match r {
        Ok(v) => panic!("expected an error for {label}, got {v:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(label), "error `{msg}` does not name `{label}`");
        }
    }
}
