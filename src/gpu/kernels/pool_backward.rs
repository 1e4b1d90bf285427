//! Launcher for `shaders/pool_backward.wgsl`: backward of max, average and adaptive average
//! pooling (`train::backward::{max_pool2d_backward, avg_pool2d_backward,
//! adaptive_avg_pool2d_backward}`), one invocation per input element.

use super::{check_dims, check_tensor, checked_len, element_grid, make_dispatch};
use crate::error::{Error, Result};
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;
use crate::graph::Pool2dSpec;

/// `shaders/pool_backward.wgsl`: params, x, grad_out, grad_in.
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "pool_backward",
    source: include_str!("../../../shaders/pool_backward.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
    ],
    trusted: false,
};

/// Invocations per workgroup (one input element each).
pub const WG: u32 = 64;

/// Mirror of the WGSL `Params` of `pool_backward.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PoolBackwardParams {
    /// `batch · channels`.
    pub planes: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Window height (unused by adaptive pooling).
    pub kh: u32,
    /// Window width.
    pub kw: u32,
    /// Stride (rows).
    pub sh: u32,
    /// Stride (columns).
    pub sw: u32,
    /// Padding (rows).
    pub ph: u32,
    /// Padding (columns).
    pub pw: u32,
    /// Input elements (one invocation each).
    pub len: u32,
    /// 1: `grad_in += ·`; 0: `grad_in = ·`.
    pub accumulate: u32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 3],
}
super::uniform_params!(PoolBackwardParams);

#[allow(clippy::too_many_arguments)]
fn prepare(
    ctx: &GpuContext,
    label: &str,
    entry: &'static str,
    batch: usize,
    channels: usize,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
    spec: Pool2dSpec,
    x: Option<TensorRef<'_>>,
    grad_out: TensorRef<'_>,
    grad_in: TensorRef<'_>,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    check_dims(
        label,
        &[
            ("batch", batch),
            ("channels", channels),
            ("input height", in_hw[0]),
            ("input width", in_hw[1]),
            ("output height", out_hw[0]),
            ("output width", out_hw[1]),
        ],
    )?;
    let len = checked_len(label, "grad_in", &[batch, channels, in_hw[0], in_hw[1]])?;
    let out_len = checked_len(label, "grad_out", &[batch, channels, out_hw[0], out_hw[1]])?;
    // Index arithmetic in the shader (o·n, (i+1)·o, o·s + k) stays far below u32::MAX.
    let big = in_hw
        .iter()
        .chain(&out_hw)
        .chain(&spec.kernel)
        .chain(&spec.stride)
        .chain(&spec.padding)
        .any(|&v| v > 1 << 15);
    if big {
        return Err(Error::shape(
            label,
            format!("pooling sizes {in_hw:?} -> {out_hw:?} with {spec:?} exceed 32768 on a side"),
        ));
    }
    if let Some(x) = &x {
        check_tensor(ctx, label, "x", x, len as u64)?;
    }
    check_tensor(ctx, label, "grad_out", &grad_out, out_len as u64)?;
    check_tensor(ctx, label, "grad_in", &grad_in, len as u64)?;
    let params = PoolBackwardParams {
        planes: (batch * channels) as u32,
        h: in_hw[0] as u32,
        w: in_hw[1] as u32,
        oh: out_hw[0] as u32,
        ow: out_hw[1] as u32,
        kh: spec.kernel[0] as u32,
        kw: spec.kernel[1] as u32,
        sh: spec.stride[0] as u32,
        sw: spec.stride[1] as u32,
        ph: spec.padding[0] as u32,
        pw: spec.padding[1] as u32,
        len: len as u32,
        accumulate: u32::from(accumulate),
        _pad: [0; 3],
    };
    let u = ctx.uniform(&format!("{label} params"), &params);
    Ok(vec![make_dispatch(
        ctx,
        label,
        &SHADER,
        entry,
        vec![("WG", WG)],
        &[
            u.as_entire_binding(),
            // Average pools do not read `x`: grad_out fills the slot (read-only twice is fine).
            x.unwrap_or(grad_out).binding(),
            grad_out.binding(),
            grad_in.binding(),
        ],
        element_grid(ctx, label, len, WG)?,
    )?])
}

fn window_out(label: &str, spec: &Pool2dSpec, in_hw: [usize; 2]) -> Result<[usize; 2]> {
    check_dims(
        label,
        &[
            ("window height", spec.kernel[0]),
            ("window width", spec.kernel[1]),
            ("stride", spec.stride[0]),
            ("stride", spec.stride[1]),
        ],
    )?;
    spec.out_hw(in_hw[0], in_hw[1]).ok_or_else(|| {
        Error::shape(
            label,
            format!(
                "input {in_hw:?} padded by {:?} is smaller than the window {:?}",
                spec.padding, spec.kernel
            ),
        )
    })
}

/// Backward of max pooling (`cpu::max_pool2d`, padding = −∞, floor mode): each output
/// gradient goes to the FIRST maximum of its window in row-major scan order, as
/// `train::backward::max_pool2d_backward`. `x` is the forward input `[B, C, H, W]`,
/// `grad_out` `[B, C, OH, OW]`; `grad_in` (`[B, C, H, W]`) is written or, with
/// `accumulate`, added to.
#[allow(clippy::too_many_arguments)]
pub fn prepare_max_pool_backward(
    ctx: &GpuContext,
    label: &str,
    batch: usize,
    channels: usize,
    in_hw: [usize; 2],
    spec: &Pool2dSpec,
    x: TensorRef<'_>,
    grad_out: TensorRef<'_>,
    grad_in: TensorRef<'_>,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    let o = window_out(label, spec, in_hw)?;
    prepare(
        ctx,
        label,
        "max_pool_backward",
        batch,
        channels,
        in_hw,
        o,
        *spec,
        Some(x),
        grad_out,
        grad_in,
        accumulate,
    )
}

/// Backward of average pooling (`cpu::avg_pool2d`, `count_include_pad`): every in-bounds
/// position of a window receives `dy / (kh·kw)`. `grad_in` is written or added to.
#[allow(clippy::too_many_arguments)]
pub fn prepare_avg_pool_backward(
    ctx: &GpuContext,
    label: &str,
    batch: usize,
    channels: usize,
    in_hw: [usize; 2],
    spec: &Pool2dSpec,
    grad_out: TensorRef<'_>,
    grad_in: TensorRef<'_>,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    let o = window_out(label, spec, in_hw)?;
    prepare(
        ctx,
        label,
        "avg_pool_backward",
        batch,
        channels,
        in_hw,
        o,
        *spec,
        None,
        grad_out,
        grad_in,
        accumulate,
    )
}

/// Backward of adaptive average pooling (`cpu::adaptive_avg_pool2d`, PyTorch's bins
/// `floor(i·n/o) .. ceil((i+1)·n/o)`, which may overlap): each bin spreads its gradient
/// evenly over its inputs. `grad_in` is written or added to.
#[allow(clippy::too_many_arguments)]
pub fn prepare_adaptive_avg_pool_backward(
    ctx: &GpuContext,
    label: &str,
    batch: usize,
    channels: usize,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
    grad_out: TensorRef<'_>,
    grad_in: TensorRef<'_>,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    prepare(
        ctx,
        label,
        "adaptive_avg_pool_backward",
        batch,
        channels,
        in_hw,
        out_hw,
        Pool2dSpec::square(1, 1, 0),
        None,
        grad_out,
        grad_in,
        accumulate,
    )
}
