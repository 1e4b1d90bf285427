//! Launcher for `shaders/linear_backward.wgsl`: backward of a fully connected layer
//! (`train::backward::linear_backward`).

use super::{check_dims, check_tensor, checked_len, element_grid, make_dispatch};
use crate::error::Result;
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;

/// `shaders/linear_backward.wgsl`: params, a, b, out (roles per entry point in the shader).
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "linear_backward",
    source: include_str!("../../../shaders/linear_backward.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
    ],
    trusted: false,
};

/// Invocations per workgroup (one gradient element each).
pub const WG: u32 = 64;

/// Mirror of the WGSL `Params` of `linear_backward.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LinearBackwardParams {
    /// Batch B.
    pub batch: u32,
    /// Input features.
    pub in_features: u32,
    /// Output features.
    pub out_features: u32,
    /// 1: `grad_in += dx`; 0: `grad_in = dx`.
    pub accumulate: u32,
}
super::uniform_params!(LinearBackwardParams);

/// Backward of `y = x·Wᵀ + b` with `x` `[batch, in]`, `weight` `[out, in]` (row-major) and
/// `grad_out` `[batch, out]`: `grad_in = dy·W` (written, or added with `accumulate`),
/// `grad_weight = dyᵀ·x` (overwritten), `grad_bias = Σ_b dy` (overwritten, when `Some`).
///
/// Two or three independent dispatches, one invocation per gradient element each.
#[allow(clippy::too_many_arguments)]
pub fn prepare_linear_backward(
    ctx: &GpuContext,
    label: &str,
    batch: usize,
    in_features: usize,
    out_features: usize,
    x: TensorRef<'_>,
    weight: TensorRef<'_>,
    grad_out: TensorRef<'_>,
    grad_in: TensorRef<'_>,
    accumulate: bool,
    grad_weight: TensorRef<'_>,
    grad_bias: Option<TensorRef<'_>>,
) -> Result<Vec<Dispatch>> {
    check_dims(
        label,
        &[
            ("batch", batch),
            ("in_features", in_features),
            ("out_features", out_features),
        ],
    )?;
    let x_len = checked_len(label, "x", &[batch, in_features])?;
    let w_len = checked_len(label, "weight", &[out_features, in_features])?;
    let y_len = checked_len(label, "grad_out", &[batch, out_features])?;
    check_tensor(ctx, label, "x", &x, x_len as u64)?;
    check_tensor(ctx, label, "weight", &weight, w_len as u64)?;
    check_tensor(ctx, label, "grad_out", &grad_out, y_len as u64)?;
    check_tensor(ctx, label, "grad_in", &grad_in, x_len as u64)?;
    check_tensor(ctx, label, "grad_weight", &grad_weight, w_len as u64)?;
    if let Some(gb) = &grad_bias {
        check_tensor(ctx, label, "grad_bias", gb, out_features as u64)?;
    }
    let params = LinearBackwardParams {
        batch: batch as u32,
        in_features: in_features as u32,
        out_features: out_features as u32,
        accumulate: u32::from(accumulate),
    };
    let u = ctx.uniform(&format!("{label} params"), &params);
    let dispatch = |entry, b: &TensorRef<'_>, out: &TensorRef<'_>, len| {
        make_dispatch(
            ctx,
            label,
            &SHADER,
            entry,
            vec![("WG", WG)],
            &[
                u.as_entire_binding(),
                grad_out.binding(),
                b.binding(),
                out.binding(),
            ],
            element_grid(ctx, label, len, WG)?,
        )
    };
    let mut out = vec![
        dispatch("linear_grad_input", &weight, &grad_in, x_len)?,
        dispatch("linear_grad_weight", &x, &grad_weight, w_len)?,
    ];
    if let Some(gb) = &grad_bias {
        out.push(dispatch("linear_grad_bias", &grad_out, gb, out_features)?);
    }
    Ok(out)
}
