//! Launcher for `shaders/norm_train.wgsl`: training batch norm (batch statistics, running
//! statistics update) and its backward, as `crate::train::backward::batch_norm_train`,
//! `update_running_stats` and `batch_norm_train_backward`.

use super::{check_dims, check_tensor, checked_len, element_grid, fold_workgroups, make_dispatch};
use crate::error::{Error, Result};
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;

/// `shaders/norm_train.wgsl`: params, four read-only and four read-write tensors (their
/// roles per direction are listed at the top of the shader).
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "norm_train",
    source: include_str!("../../../shaders/norm_train.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
        BindingKind::ReadWrite,
        BindingKind::ReadWrite,
        BindingKind::ReadWrite,
    ],
    trusted: false,
};

/// Invocations per workgroup of the element-wise entry points.
pub const WG: u32 = 64;
/// Invocations per workgroup of the per-channel reductions (the shader's `RWG`).
pub const RWG: u32 = 256;

/// Mirror of the WGSL `Params` of `norm_train.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct NormTrainParams {
    /// Batch B.
    pub batch: u32,
    /// Channels C.
    pub channels: u32,
    /// Pixels per channel plane.
    pub hw: u32,
    /// Values per channel, `B·HW`.
    pub n: u32,
    /// Elements, `B·C·HW`.
    pub len: u32,
    /// 1: `grad_in += dx`; 0: `grad_in = dx` (backward only).
    pub accumulate: u32,
    /// ε added to the biased variance.
    pub eps: f32,
    /// Running-statistics momentum.
    pub momentum: f32,
}
super::uniform_params!(NormTrainParams);

fn sizes(label: &str, batch: usize, channels: usize, hw: usize) -> Result<(usize, usize)> {
    check_dims(
        label,
        &[("batch", batch), ("channels", channels), ("hw", hw)],
    )?;
    let len = checked_len(label, "x", &[batch, channels, hw])?;
    let n = batch * hw;
    if n < 2 {
        return Err(Error::shape(
            label,
            "batch norm in training needs more than one value per channel (batch·hw ≥ 2)",
        ));
    }
    Ok((len, n))
}

/// Training batch norm on `x` `[batch, channels, hw]`: per-channel batch mean and biased
/// variance (one workgroup per channel), `y = (x − mean)·invstd·γ + β`,
/// `stats[0..C] = mean`, `stats[C..2C] = invstd = 1/√(var + eps)`, and PyTorch's running
/// update in place: `running_mean = (1−m)·rm + m·mean`,
/// `running_var = (1−m)·rv + m·var·n/(n−1)` with `n = batch·hw` (as
/// `train::backward::update_running_stats`). Needs `n ≥ 2`.
///
/// Two dispatches (statistics, then normalisation). `y`, `stats`, `running_mean` and
/// `running_var` must each live in a buffer bound nowhere else in the call.
#[allow(clippy::too_many_arguments)]
pub fn prepare_batch_norm_train(
    ctx: &GpuContext,
    label: &str,
    batch: usize,
    channels: usize,
    hw: usize,
    eps: f32,
    momentum: f32,
    x: TensorRef<'_>,
    gamma: TensorRef<'_>,
    beta: TensorRef<'_>,
    y: TensorRef<'_>,
    stats: TensorRef<'_>,
    running_mean: TensorRef<'_>,
    running_var: TensorRef<'_>,
) -> Result<Vec<Dispatch>> {
    let (len, n) = sizes(label, batch, channels, hw)?;
    if !(eps.is_finite() && eps >= 0.0 && momentum.is_finite()) {
        return Err(Error::shape(
            label,
            format!("eps {eps} must be finite and ≥ 0, momentum {momentum} finite"),
        ));
    }
    let c = channels as u64;
    check_tensor(ctx, label, "x", &x, len as u64)?;
    check_tensor(ctx, label, "gamma", &gamma, c)?;
    check_tensor(ctx, label, "beta", &beta, c)?;
    check_tensor(ctx, label, "y", &y, len as u64)?;
    check_tensor(ctx, label, "stats", &stats, 2 * c)?;
    check_tensor(ctx, label, "running_mean", &running_mean, c)?;
    check_tensor(ctx, label, "running_var", &running_var, c)?;
    let params = NormTrainParams {
        batch: batch as u32,
        channels: channels as u32,
        hw: hw as u32,
        n: n as u32,
        len: len as u32,
        accumulate: 0,
        eps,
        momentum,
    };
    let u = ctx.uniform(&format!("{label} params"), &params);
    let resources = [
        u.as_entire_binding(),
        x.binding(),
        gamma.binding(),
        beta.binding(),
        x.binding(),
        y.binding(),
        stats.binding(),
        running_mean.binding(),
        running_var.binding(),
    ];
    let consts = || vec![("WG", WG)];
    Ok(vec![
        make_dispatch(
            ctx,
            label,
            &SHADER,
            "bn_stats",
            vec![],
            &resources,
            fold_workgroups(ctx, label, c)?,
        )?,
        make_dispatch(
            ctx,
            label,
            &SHADER,
            "bn_normalize",
            consts(),
            &resources,
            element_grid(ctx, label, len, WG)?,
        )?,
    ])
}

/// Backward of [`prepare_batch_norm_train`] with its batch statistics `stats`
/// (`[mean; C] ++ [invstd; C]`): `dβ = Σ dy`, `dγ = Σ dy·x̂` (overwritten), and
/// `dx = γ·invstd·(dy − dβ/n − x̂·dγ/n)`, written (`accumulate = false`) or added
/// (`accumulate = true`) to `grad_in`. `n = batch·hw ≥ 2`.
///
/// Two dispatches (per-channel reductions, then `dx` one invocation per element).
#[allow(clippy::too_many_arguments)]
pub fn prepare_batch_norm_backward(
    ctx: &GpuContext,
    label: &str,
    batch: usize,
    channels: usize,
    hw: usize,
    x: TensorRef<'_>,
    gamma: TensorRef<'_>,
    stats: TensorRef<'_>,
    grad_out: TensorRef<'_>,
    grad_in: TensorRef<'_>,
    grad_gamma: TensorRef<'_>,
    grad_beta: TensorRef<'_>,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    let (len, n) = sizes(label, batch, channels, hw)?;
    let c = channels as u64;
    check_tensor(ctx, label, "x", &x, len as u64)?;
    check_tensor(ctx, label, "gamma", &gamma, c)?;
    check_tensor(ctx, label, "stats", &stats, 2 * c)?;
    check_tensor(ctx, label, "grad_out", &grad_out, len as u64)?;
    check_tensor(ctx, label, "grad_in", &grad_in, len as u64)?;
    check_tensor(ctx, label, "grad_gamma", &grad_gamma, c)?;
    check_tensor(ctx, label, "grad_beta", &grad_beta, c)?;
    let params = NormTrainParams {
        batch: batch as u32,
        channels: channels as u32,
        hw: hw as u32,
        n: n as u32,
        len: len as u32,
        accumulate: u32::from(accumulate),
        eps: 0.0,
        momentum: 0.0,
    };
    let u = ctx.uniform(&format!("{label} params"), &params);
    // The layout's fourth read-write slot is unused by the backward entry points.
    let scratch = ctx.storage_buffer(&format!("{label} scratch"), 4)?;
    let resources = [
        u.as_entire_binding(),
        x.binding(),
        gamma.binding(),
        stats.binding(),
        grad_out.binding(),
        grad_in.binding(),
        grad_gamma.binding(),
        grad_beta.binding(),
        scratch.as_entire_binding(),
    ];
    let consts = || vec![("WG", WG)];
    Ok(vec![
        make_dispatch(
            ctx,
            label,
            &SHADER,
            "bn_grad_params",
            vec![],
            &resources,
            fold_workgroups(ctx, label, c)?,
        )?,
        make_dispatch(
            ctx,
            label,
            &SHADER,
            "bn_grad_input",
            consts(),
            &resources,
            element_grid(ctx, label, len, WG)?,
        )?,
    ])
}
