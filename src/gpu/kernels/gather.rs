//! Launcher for `shaders/gather.wgsl`: channel gather (output channel `c` = input channel
//! `indices[c]`), used by channel re-orderings.

use super::{check_buffer, check_dims, check_tensor, fold_workgroups, make_dispatch};
use crate::error::{Error, Result};
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;

/// `shaders/gather.wgsl`: params, x, indices (u32), out.
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "gather",
    source: include_str!("../../../shaders/gather.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
    ],
    trusted: false,
};

/// Invocations per workgroup (one output element each).
pub const WG: u32 = 64;

/// Mirror of the WGSL `Params` of `gather.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GatherParams {
    /// Batch size.
    pub batch: u32,
    /// Input channels.
    pub c_in: u32,
    /// Output channels (= number of indices).
    pub c_out: u32,
    /// Pixels per channel plane.
    pub hw: u32,
    /// Output elements.
    pub len: u32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 3],
}
super::uniform_params!(GatherParams);

/// Uploads gather indices as `u32`, checking each is below `c_in` (the shader clamps, so
/// this is where a bad index becomes an error).
pub fn upload_indices(
    ctx: &GpuContext,
    label: &str,
    indices: &[usize],
    c_in: usize,
) -> Result<wgpu::Buffer> {
    if let Some(&bad) = indices.iter().find(|&&i| i >= c_in) {
        return Err(Error::shape(
            label,
            format!("gather index {bad} is not below {c_in} input channels"),
        ));
    }
    let v: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
    ctx.upload_u32(&format!("{label} indices"), &v)
}

/// `out[n, c] = x[n, indices[c]]` for `x`: `[batch, c_in, hw]`, `out`: `[batch, c_out, hw]`;
/// `indices` holds exactly `c_out` `u32`s (see [`upload_indices`]).
#[allow(clippy::too_many_arguments)]
pub fn prepare_gather(
    ctx: &GpuContext,
    label: &str,
    x: TensorRef<'_>,
    indices: &wgpu::Buffer,
    out: TensorRef<'_>,
    batch: usize,
    c_in: usize,
    c_out: usize,
    hw: usize,
) -> Result<Vec<Dispatch>> {
    check_dims(
        label,
        &[
            ("batch", batch),
            ("c_in", c_in),
            ("c_out", c_out),
            ("hw", hw),
        ],
    )?;
    check_tensor(ctx, label, "x", &x, (batch * c_in * hw) as u64)?;
    let len = batch * c_out * hw;
    check_tensor(ctx, label, "out", &out, len as u64)?;
    check_buffer(ctx, label, "indices", indices, c_out as u64)?;
    let params = GatherParams {
        batch: batch as u32,
        c_in: c_in as u32,
        c_out: c_out as u32,
        hw: hw as u32,
        len: len as u32,
        _pad: [0; 3],
    };
    let u = ctx.uniform(&format!("{label} params"), &params);
    let wgs = fold_workgroups(ctx, label, (len as u64).div_ceil(u64::from(WG)))?;
    Ok(vec![make_dispatch(
        ctx,
        label,
        &SHADER,
        "gather",
        vec![("WG", WG)],
        &[
            u.as_entire_binding(),
            x.binding(),
            indices.as_entire_binding(),
            out.binding(),
        ],
        wgs,
    )?])
}
