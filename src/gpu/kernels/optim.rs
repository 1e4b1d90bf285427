//! Launcher for `shaders/optim.wgsl`: the SGD update (`train::optim::Sgd::step`) on the GPU.

use super::{check_dims, check_tensor, check_tensor_min, element_grid, make_dispatch};
use crate::error::{Error, Result};
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;

/// `shaders/optim.wgsl`: params, grad, hyper, param, velocity.
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "optim",
    source: include_str!("../../../shaders/optim.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
        BindingKind::ReadWrite,
    ],
    trusted: false,
};

/// Invocations per workgroup (one parameter each).
pub const WG: u32 = 64;

/// Mirror of the WGSL `Params` of `optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SgdParams {
    /// Number of parameters.
    pub len: u32,
    /// Momentum μ.
    pub momentum: f32,
    /// Weight decay (0 for parameters without decay).
    pub weight_decay: f32,
    /// Padding to 16 bytes.
    pub _pad: u32,
}
super::uniform_params!(SgdParams);

/// SGD with momentum and weight decay, in place, as the CPU `Sgd::step`:
/// `d = g + wd·p; v = μ·v + d; p −= lr·v` over `len` values of `param`, `grad` and
/// `velocity` (zeros before the first step). The learning rate is read from `hyper[0]`
/// (`hyper` holds at least one f32, the rest is ignored): rewrite it with
/// `queue.write_buffer` before each step, the dispatch is built once.
/// `param` and `velocity` must each be in a buffer bound nowhere else in the call.
#[allow(clippy::too_many_arguments)]
pub fn prepare_sgd(
    ctx: &GpuContext,
    label: &str,
    len: usize,
    momentum: f32,
    weight_decay: f32,
    param: TensorRef<'_>,
    grad: TensorRef<'_>,
    velocity: TensorRef<'_>,
    hyper: TensorRef<'_>,
) -> Result<Vec<Dispatch>> {
    check_dims(label, &[("len", len)])?;
    if !momentum.is_finite() || !weight_decay.is_finite() {
        return Err(Error::shape(
            label,
            format!("momentum {momentum} and weight decay {weight_decay} must be finite"),
        ));
    }
    check_tensor(ctx, label, "param", &param, len as u64)?;
    check_tensor(ctx, label, "grad", &grad, len as u64)?;
    check_tensor(ctx, label, "velocity", &velocity, len as u64)?;
    check_tensor_min(ctx, label, "hyper", &hyper, 1)?;
    let params = SgdParams {
        len: len as u32,
        momentum,
        weight_decay,
        _pad: 0,
    };
    let u = ctx.uniform(&format!("{label} params"), &params);
    Ok(vec![make_dispatch(
        ctx,
        label,
        &SHADER,
        "sgd",
        vec![("WG", WG)],
        &[
            u.as_entire_binding(),
            grad.binding(),
            hyper.binding(),
            param.binding(),
            velocity.binding(),
        ],
        element_grid(ctx, label, len, WG)?,
    )?])
}
