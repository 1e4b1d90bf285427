//! Launcher for `shaders/softmax.wgsl`: softmax over the rows of `[batch, features]`.

use super::{check_dims, check_tensor, fold_workgroups, make_dispatch};
use crate::error::Result;
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;

/// `shaders/softmax.wgsl`: params, x, out.
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "softmax",
    source: include_str!("../../../shaders/softmax.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
    ],
    trusted: false,
};

/// Invocations per workgroup (one row each).
pub const WG: u32 = 64;

/// Mirror of the WGSL `Params` of `softmax.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SoftmaxParams {
    /// Rows.
    pub batch: u32,
    /// Row length.
    pub features: u32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 2],
}
super::uniform_params!(SoftmaxParams);

/// Row-wise softmax of `x`: `[batch, features]` into `out` (same shape, not overlapping).
pub fn prepare_softmax(
    ctx: &GpuContext,
    label: &str,
    x: TensorRef<'_>,
    out: TensorRef<'_>,
    batch: usize,
    features: usize,
) -> Result<Vec<Dispatch>> {
    check_dims(label, &[("batch", batch), ("features", features)])?;
    check_tensor(ctx, label, "x", &x, (batch * features) as u64)?;
    check_tensor(ctx, label, "out", &out, (batch * features) as u64)?;
    let params = SoftmaxParams {
        batch: batch as u32,
        features: features as u32,
        _pad: [0; 2],
    };
    let u = ctx.uniform(&format!("{label} params"), &params);
    let wgs = fold_workgroups(ctx, label, (batch as u64).div_ceil(u64::from(WG)))?;
    Ok(vec![make_dispatch(
        ctx,
        label,
        &SHADER,
        "softmax",
        vec![("WG", WG)],
        &[u.as_entire_binding(), x.binding(), out.binding()],
        wgs,
    )?])
}
