//! Launcher for `shaders/norm.wgsl`: inference batch norm as a per-channel affine map.

use super::{check_buffer, check_dims, check_tensor, fold_workgroups, make_dispatch};
use crate::error::{Error, Result};
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;

/// `shaders/norm.wgsl`: params, x, scale_shift, out.
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "norm",
    source: include_str!("../../../shaders/norm.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
    ],
    trusted: false,
};

/// Invocations per workgroup (one element each).
pub const WG: u32 = 64;

/// Mirror of the WGSL `Params` of `norm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct NormParams {
    /// Elements, `batch · channels · hw`.
    pub len: u32,
    /// Channels C.
    pub channels: u32,
    /// Pixels per channel plane.
    pub hw: u32,
    /// 1 when ReLU is fused.
    pub relu: u32,
}
super::uniform_params!(NormParams);

/// The `2·C` values `[scale; C] ++ [shift; C]` with `scale = γ / √(var + ε)` and
/// `shift = β − mean·scale`: what [`prepare_batch_norm`] expects in `scale_shift`.
pub fn scale_shift(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
) -> Result<Vec<f32>> {
    let c = gamma.len();
    if beta.len() != c || mean.len() != c || var.len() != c {
        return Err(Error::shape(
            "batch_norm",
            format!(
                "weight/bias/running_mean/running_var lengths {c}/{}/{}/{} differ",
                beta.len(),
                mean.len(),
                var.len()
            ),
        ));
    }
    let scale: Vec<f32> = (0..c).map(|i| gamma[i] / (var[i] + eps).sqrt()).collect();
    let shift: Vec<f32> = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
    Ok([scale, shift].concat())
}

/// `out = x·scale[c] + shift[c]` (then `max(·, 0)` when `relu`) over a
/// `[batch, channels, hw]` tensor; `scale_shift` holds exactly `2·channels` floats
/// (see [`scale_shift`]).
#[allow(clippy::too_many_arguments)]
pub fn prepare_batch_norm(
    ctx: &GpuContext,
    label: &str,
    x: TensorRef<'_>,
    scale_shift: &wgpu::Buffer,
    out: TensorRef<'_>,
    batch: usize,
    channels: usize,
    hw: usize,
    relu: bool,
) -> Result<Vec<Dispatch>> {
    check_dims(
        label,
        &[("batch", batch), ("channels", channels), ("hw", hw)],
    )?;
    let len = batch * channels * hw;
    check_tensor(ctx, label, "x", &x, len as u64)?;
    check_tensor(ctx, label, "out", &out, len as u64)?;
    check_buffer(ctx, label, "scale_shift", scale_shift, 2 * channels as u64)?;
    let wgs = fold_workgroups(ctx, label, (len as u64).div_ceil(u64::from(WG)))?;
    let params = NormParams {
        len: len as u32,
        channels: channels as u32,
        hw: hw as u32,
        relu: u32::from(relu),
    };
    let u = ctx.uniform(&format!("{label} params"), &params);
    Ok(vec![make_dispatch(
        ctx,
        label,
        &SHADER,
        "batch_norm",
        vec![("WG", WG)],
        &[
            u.as_entire_binding(),
            x.binding(),
            scale_shift.as_entire_binding(),
            out.binding(),
        ],
        wgs,
    )?])
}
