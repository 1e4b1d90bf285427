//! Launcher for `shaders/softmax.wgsl`: softmax over each row of a `[batch, features]` tensor.

use super::{check_arg, check_dims, checked_len, per_element, Call};
use crate::error::Result;
use crate::gpu::context::GpuContext;

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `softmax.wgsl`.
    pub struct SoftmaxParams = "Params" {
        /// Rows.
        pub batch: u32,
        /// Row length.
        pub features: u32,
        /// Padding.
        pub _pad0: u32,
        /// Padding.
        pub _pad1: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/softmax.wgsl`.
    pub static SHADER = "softmax" {
        params: SoftmaxParams,
        trusted: false,
        /// Arguments of `softmax`.
        args: SoftmaxArgs {
            /// `[batch, features]` input.
            x: read array<act_t>,
            /// The output, same shape.
            out: write array<act_t>,
        }
    }
}

/// Row-wise softmax of `[batch, features]`.
pub fn softmax(
    ctx: &GpuContext,
    label: &str,
    [batch, features]: [usize; 2],
    args: SoftmaxArgs,
) -> Result<Call> {
    check_dims(label, &[("batch", batch), ("features", features)])?;
    let len = checked_len(label, "x", &[batch, features])? as u64;
    check_arg(ctx, label, "x", &args.x, len)?;
    check_arg(ctx, label, "out", &args.out, len)?;
    let params = SoftmaxParams {
        batch: batch as u32,
        features: features as u32,
        ..SoftmaxParams::default()
    };
    per_element(
        ctx,
        label,
        (&SHADER, "softmax"),
        &params,
        args.into_vec(),
        batch,
    )
}
