//! Launcher for `shaders/elementwise.wgsl`: ReLU and residual add (+ ReLU).

use super::{check_dims, check_tensor, fold_workgroups, make_dispatch};
use crate::error::Result;
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;

/// `shaders/elementwise.wgsl`: params, a, b, out.
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "elementwise",
    source: include_str!("../../../shaders/elementwise.wgsl"),
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

/// Mirror of the WGSL `Params` of `elementwise.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ElementwiseParams {
    /// Number of elements.
    pub len: u32,
    /// 1 to apply ReLU after the op (add only).
    pub relu: u32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 2],
}
super::uniform_params!(ElementwiseParams);

#[allow(clippy::too_many_arguments)]
fn prepare(
    ctx: &GpuContext,
    label: &str,
    entry: &'static str,
    a: TensorRef<'_>,
    b: TensorRef<'_>,
    out: TensorRef<'_>,
    len: usize,
    relu: bool,
) -> Result<Vec<Dispatch>> {
    check_dims(label, &[("len", len)])?;
    check_tensor(ctx, label, "a", &a, len as u64)?;
    check_tensor(ctx, label, "b", &b, len as u64)?;
    check_tensor(ctx, label, "out", &out, len as u64)?;
    let wgs = fold_workgroups(ctx, label, (len as u64).div_ceil(u64::from(WG)))?;
    let params = ElementwiseParams {
        len: len as u32,
        relu: u32::from(relu),
        _pad: [0; 2],
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
            a.binding(),
            b.binding(),
            out.binding(),
        ],
        wgs,
    )?])
}

/// `out = max(x, 0)` over `len` elements. `x` and `out` must not overlap.
pub fn prepare_relu(
    ctx: &GpuContext,
    label: &str,
    x: TensorRef<'_>,
    out: TensorRef<'_>,
    len: usize,
) -> Result<Vec<Dispatch>> {
    prepare(ctx, label, "relu", x, x, out, len, false)
}

/// `out = a + b` (then `max(·, 0)` when `relu`) over `len` elements. `out` must not
/// overlap the inputs.
pub fn prepare_add(
    ctx: &GpuContext,
    label: &str,
    a: TensorRef<'_>,
    b: TensorRef<'_>,
    out: TensorRef<'_>,
    len: usize,
    relu: bool,
) -> Result<Vec<Dispatch>> {
    prepare(ctx, label, "add", a, b, out, len, relu)
}
