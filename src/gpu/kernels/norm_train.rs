//! Launcher for `shaders/norm_train.wgsl`: training batch norm (batch statistics, PyTorch's
//! running-statistics update, the activation fused into the output) and its backward, as
//! `ops::{batch_norm_train, update_running_stats, batch_norm_train_backward}`.

use super::norm::BnShape;
use super::{check_arg, element_grid, fold_workgroups, Arg, Call, WG};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::prelude::Epilogue;
use crate::ops::Activation;

/// Invocations per workgroup of the per-channel reductions (the shader's `RWG`).
pub const RWG: u32 = 256;

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `norm_train.wgsl`.
    pub struct NormTrainParams = "Params" {
        /// Bias and activation ([`Epilogue`]).
        pub epi: Epilogue,
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
}

crate::gpu::declare::shader! {
    /// `shaders/norm_train.wgsl`: one layout serves both directions (roles in the shader).
    pub static SHADER = "norm_train" {
        params: NormTrainParams,
        trusted: false,
        /// The bindings by position; [`BnTrainArgs`] and [`BnGradArgs`] name them per direction.
        args: NormTrainBindings {
            /// x.
            r1: read array<f32>,
            /// γ.
            r2: read array<f32>,
            /// forward: β; backward: stats.
            r3: read array<f32>,
            /// forward: x again; backward: dy.
            r4: read array<f32>,
            /// forward: y; backward: dx.
            w5: write array<f32>,
            /// forward: stats; backward: dγ.
            w6: write array<f32>,
            /// forward: running mean; backward: dβ.
            w7: write array<f32>,
            /// forward: running variance; backward: unused scratch.
            w8: write array<f32>,
        }
    }
}

/// Tensors of the training forward.
#[derive(Clone, Debug)]
pub struct BnTrainArgs {
    /// Input `[batch, channels, hw]`.
    pub x: Arg,
    /// γ, `[C]`.
    pub gamma: Arg,
    /// β, `[C]`.
    pub beta: Arg,
    /// Output, shaped like `x`.
    pub y: Arg,
    /// `[mean; C] ++ [invstd; C]`, kept for the backward.
    pub stats: Arg,
    /// Running mean, updated in place.
    pub running_mean: Arg,
    /// Running variance, updated in place.
    pub running_var: Arg,
}

/// Tensors of the backward.
#[derive(Clone, Debug)]
pub struct BnGradArgs {
    /// The forward input.
    pub x: Arg,
    /// γ.
    pub gamma: Arg,
    /// The forward's `stats`.
    pub stats: Arg,
    /// `∂L/∂y`.
    pub dy: Arg,
    /// `∂L/∂x`, written or accumulated.
    pub dx: Arg,
    /// `∂L/∂γ`.
    pub dgamma: Arg,
    /// `∂L/∂β`.
    pub dbeta: Arg,
    /// A scratch buffer of at least one value (the layout's unused slot).
    pub scratch: Arg,
}

/// The training batch norm's hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub struct BnTrain {
    /// ε.
    pub eps: f32,
    /// Running-statistics momentum.
    pub momentum: f32,
    /// The activation fused into `y`.
    pub act: Activation,
}

fn params(label: &str, s: &BnShape) -> Result<NormTrainParams> {
    let len = s.len(label)?;
    let n = s.batch * s.hw;
    if n < 2 {
        return Err(Error::shape(
            label,
            "batch norm in training needs more than one value per channel (batch·hw ≥ 2)",
        ));
    }
    Ok(NormTrainParams {
        batch: s.batch as u32,
        channels: s.channels as u32,
        hw: s.hw as u32,
        n: n as u32,
        len: len as u32,
        ..NormTrainParams::default()
    })
}

fn two_calls(
    ctx: &GpuContext,
    label: &str,
    entries: [&'static str; 2],
    p: &NormTrainParams,
    bindings: NormTrainBindings,
) -> Result<Vec<Call>> {
    let args = bindings.into_vec();
    Ok(vec![
        Call::new(
            ctx,
            label,
            SHADER.entry(entries[0], &[]),
            p,
            args.clone(),
            fold_workgroups(ctx, label, u64::from(p.channels))?,
        )?,
        Call::new(
            ctx,
            label,
            SHADER.entry(entries[1], &[("WG", WG)]),
            p,
            args,
            element_grid(ctx, label, p.len as usize, WG)?,
        )?,
    ])
}

/// Training batch norm: per-channel batch mean and biased variance (one workgroup per
/// channel), `y = act((x − mean)·invstd·γ + β)`, `stats = [mean; C] ++ [invstd; C]`, and
/// PyTorch's running update in place (unbiased variance `n/(n−1)`, `n = batch·hw ≥ 2`).
/// Two calls (statistics, then normalisation).
pub fn forward(
    ctx: &GpuContext,
    label: &str,
    (s, h): (&BnShape, BnTrain),
    a: BnTrainArgs,
) -> Result<Vec<Call>> {
    if !(h.eps.is_finite() && h.eps >= 0.0 && h.momentum.is_finite()) {
        return Err(Error::shape(
            label,
            format!(
                "eps {} must be finite and ≥ 0, momentum {} finite",
                h.eps, h.momentum
            ),
        ));
    }
    let p = NormTrainParams {
        eps: h.eps,
        momentum: h.momentum,
        epi: Epilogue::new(h.act, false),
        ..params(label, s)?
    };
    let (len, c) = (u64::from(p.len), s.channels as u64);
    for (name, t, n) in [
        ("x", &a.x, len),
        ("gamma", &a.gamma, c),
        ("beta", &a.beta, c),
        ("y", &a.y, len),
        ("stats", &a.stats, 2 * c),
        ("running_mean", &a.running_mean, c),
        ("running_var", &a.running_var, c),
    ] {
        check_arg(ctx, label, name, t, n)?;
    }
    let b = NormTrainBindings {
        r1: a.x.clone(),
        r2: a.gamma,
        r3: a.beta,
        r4: a.x,
        w5: a.y,
        w6: a.stats,
        w7: a.running_mean,
        w8: a.running_var,
    };
    two_calls(ctx, label, ["bn_stats", "bn_normalize"], &p, b)
}

/// Backward of [`forward`] (without its activation): `dβ = Σ dy`, `dγ = Σ dy·x̂`, and
/// `dx (+)= γ·invstd·(dy − dβ/n − x̂·dγ/n)`. Two calls.
pub fn backward(
    ctx: &GpuContext,
    label: &str,
    (s, accumulate): (&BnShape, bool),
    a: BnGradArgs,
) -> Result<Vec<Call>> {
    let p = NormTrainParams {
        accumulate: u32::from(accumulate),
        ..params(label, s)?
    };
    let (len, c) = (u64::from(p.len), s.channels as u64);
    for (name, t, n) in [
        ("x", &a.x, len),
        ("gamma", &a.gamma, c),
        ("stats", &a.stats, 2 * c),
        ("grad_out", &a.dy, len),
        ("grad_in", &a.dx, len),
        ("grad_gamma", &a.dgamma, c),
        ("grad_beta", &a.dbeta, c),
    ] {
        check_arg(ctx, label, name, t, n)?;
    }
    let b = NormTrainBindings {
        r1: a.x,
        r2: a.gamma,
        r3: a.stats,
        r4: a.dy,
        w5: a.dx,
        w6: a.dgamma,
        w7: a.dbeta,
        w8: a.scratch,
    };
    two_calls(ctx, label, ["bn_grad_params", "bn_grad_input"], &p, b)
}
