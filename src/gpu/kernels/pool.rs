//! Launcher for `shaders/pool.wgsl`: max, average and adaptive average pooling.

use super::{check_dims, check_tensor, fold_workgroups, make_dispatch};
use crate::error::{Error, Result};
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;
use crate::graph::Pool2dSpec;

/// `shaders/pool.wgsl`: params, x, out.
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "pool",
    source: include_str!("../../../shaders/pool.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
    ],
    trusted: false,
};

/// Invocations per workgroup (one output element each).
pub const WG: u32 = 64;

/// Mirror of the WGSL `Params` of `pool.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PoolParams {
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
    /// Output elements.
    pub len: u32,
    /// `f32::NEG_INFINITY`, the value of an empty max window.
    pub neg_inf: f32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 3],
}
super::uniform_params!(PoolParams);

#[allow(clippy::too_many_arguments)]
fn prepare(
    ctx: &GpuContext,
    label: &str,
    entry: &'static str,
    x: TensorRef<'_>,
    out: TensorRef<'_>,
    batch: usize,
    channels: usize,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
    spec: Pool2dSpec,
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
    let planes = batch * channels;
    check_tensor(ctx, label, "x", &x, (planes * in_hw[0] * in_hw[1]) as u64)?;
    let len = planes * out_hw[0] * out_hw[1];
    check_tensor(ctx, label, "out", &out, len as u64)?;
    let wgs = fold_workgroups(ctx, label, (len as u64).div_ceil(u64::from(WG)))?;
    let params = PoolParams {
        planes: planes as u32,
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
        neg_inf: f32::NEG_INFINITY,
        _pad: [0; 3],
    };
    let u = ctx.uniform(&format!("{label} params"), &params);
    Ok(vec![make_dispatch(
        ctx,
        label,
        &SHADER,
        entry,
        vec![("WG", WG)],
        &[u.as_entire_binding(), x.binding(), out.binding()],
        wgs,
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

/// Max pooling (`cpu::max_pool2d`): padding acts as −∞, floor mode.
#[allow(clippy::too_many_arguments)]
pub fn prepare_max_pool(
    ctx: &GpuContext,
    label: &str,
    x: TensorRef<'_>,
    out: TensorRef<'_>,
    batch: usize,
    channels: usize,
    in_hw: [usize; 2],
    spec: &Pool2dSpec,
) -> Result<Vec<Dispatch>> {
    let o = window_out(label, spec, in_hw)?;
    prepare(
        ctx, label, "max_pool", x, out, batch, channels, in_hw, o, *spec,
    )
}

/// Average pooling (`cpu::avg_pool2d`): padded zeros count in the divisor
/// (`count_include_pad=True`, PyTorch's default), floor mode.
#[allow(clippy::too_many_arguments)]
pub fn prepare_avg_pool(
    ctx: &GpuContext,
    label: &str,
    x: TensorRef<'_>,
    out: TensorRef<'_>,
    batch: usize,
    channels: usize,
    in_hw: [usize; 2],
    spec: &Pool2dSpec,
) -> Result<Vec<Dispatch>> {
    let o = window_out(label, spec, in_hw)?;
    prepare(
        ctx, label, "avg_pool", x, out, batch, channels, in_hw, o, *spec,
    )
}

/// Adaptive average pooling (`cpu::adaptive_avg_pool2d`) with PyTorch's bin edges
/// `floor(i·n/o) .. ceil((i+1)·n/o)`; the output may be larger than the input.
#[allow(clippy::too_many_arguments)]
pub fn prepare_adaptive_avg_pool(
    ctx: &GpuContext,
    label: &str,
    x: TensorRef<'_>,
    out: TensorRef<'_>,
    batch: usize,
    channels: usize,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
) -> Result<Vec<Dispatch>> {
    let spec = Pool2dSpec::square(1, 1, 0);
    prepare(
        ctx,
        label,
        "adaptive_avg_pool",
        x,
        out,
        batch,
        channels,
        in_hw,
        out_hw,
        spec,
    )
}
