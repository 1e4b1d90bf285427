//! Launcher for `shaders/norm.wgsl`: inference batch norm as a per-channel affine map with its
//! activation fused. [`BnShape`] is shared with the training kernels of
//! [`super::norm_train`].

use super::{check_arg, check_dims, checked_len, per_element, Call};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::prelude::Epilogue;
use crate::ops::Activation;

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `norm.wgsl`.
    pub struct NormParams = "Params" {
        /// Bias and activation ([`Epilogue`]).
        pub epi: Epilogue,
        /// Elements, `batch · channels · hw`.
        pub len: u32,
        /// Channels C.
        pub channels: u32,
        /// Pixels per channel plane.
        pub hw: u32,
        /// Padding.
        pub _pad0: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/norm.wgsl`.
    pub static SHADER = "norm" {
        params: NormParams,
        trusted: false,
        /// Arguments of `batch_norm`.
        args: NormArgs {
            /// `[batch, channels, hw]` input.
            x: read array<act_t>,
            /// `[scale; C] ++ [shift; C]` (see [`scale_shift`]).
            scale_shift: read array<f32>,
            /// The output, shaped like `x`.
            out: write array<act_t>,
        }
    }
}

/// The geometry of a batch norm: `[batch, channels, hw]`.
#[derive(Clone, Copy, Debug)]
pub struct BnShape {
    /// Batch size.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Pixels per channel plane.
    pub hw: usize,
}

impl BnShape {
    /// Elements, checked.
    pub fn len(&self, label: &str) -> Result<usize> {
        check_dims(
            label,
            &[
                ("batch", self.batch),
                ("channels", self.channels),
                ("hw", self.hw),
            ],
        )?;
        checked_len(label, "x", &[self.batch, self.channels, self.hw])
    }
}

/// The `2·C` values `[scale; C] ++ [shift; C]` with `scale = γ / √(var + ε)` and
/// `shift = β − mean·scale`: what [`batch_norm`] expects in `scale_shift`.
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

/// `out = act(x·scale[c] + shift[c])` over `[batch, channels, hw]`.
pub fn batch_norm(
    ctx: &GpuContext,
    label: &str,
    (s, act): (&BnShape, Activation),
    args: NormArgs,
) -> Result<Call> {
    let len = s.len(label)?;
    check_arg(ctx, label, "x", &args.x, len as u64)?;
    check_arg(ctx, label, "out", &args.out, len as u64)?;
    check_arg(
        ctx,
        label,
        "scale_shift",
        &args.scale_shift,
        2 * s.channels as u64,
    )?;
    let params = NormParams {
        epi: Epilogue::new(act, false),
        len: len as u32,
        channels: s.channels as u32,
        hw: s.hw as u32,
        ..NormParams::default()
    };
    per_element(
        ctx,
        label,
        (&SHADER, "batch_norm"),
        &params,
        args.into_vec(),
        len,
    )
}
