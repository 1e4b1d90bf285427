//! Launcher for `shaders/loss.wgsl`: mean softmax cross-entropy of the logits against the
//! labels (`train::backward::softmax_cross_entropy`): the logits' gradient, and each sample's
//! loss and hit for the host.

use super::{check_arg, check_dims, checked_len, element_grid, Call, WG};
use crate::error::Result;
use crate::gpu::context::GpuContext;

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `loss.wgsl`.
    pub struct LossParams = "Params" {
        /// Batch B.
        pub batch: u32,
        /// Classes K.
        pub classes: u32,
        /// `f32::NAN`, the loss of a sample with an out-of-range label.
        pub nan: f32,
        /// Padding.
        pub _pad0: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/loss.wgsl`.
    pub static SHADER = "loss" {
        params: LossParams,
        trusted: false,
        /// Arguments of `softmax_cross_entropy`.
        args: LossArgs {
            /// `[B, K]` logits.
            logits: read array<f32>,
            /// `[B]` labels as `u32`.
            labels: read array<u32>,
            /// `[B, K]` gradient of the mean loss.
            grad_logits: write array<f32>,
            /// `[B, 2]`: each sample's loss and 1.0 when its argmax is its label.
            per_sample: write array<f32>,
        }
    }
}

/// The loss head over `batch` samples of `classes` logits.
pub fn softmax_cross_entropy(
    ctx: &GpuContext,
    label: &str,
    [batch, classes]: [usize; 2],
    args: LossArgs,
) -> Result<Call> {
    check_dims(label, &[("batch", batch), ("classes", classes)])?;
    let len = checked_len(label, "logits", &[batch, classes])? as u64;
    check_arg(ctx, label, "logits", &args.logits, len)?;
    check_arg(ctx, label, "labels", &args.labels, batch as u64)?;
    check_arg(ctx, label, "grad_logits", &args.grad_logits, len)?;
    check_arg(ctx, label, "per_sample", &args.per_sample, 2 * batch as u64)?;
    let params = LossParams {
        batch: batch as u32,
        classes: classes as u32,
        nan: f32::NAN,
        _pad0: 0,
    };
    let entry = SHADER.entry("softmax_cross_entropy", &[("WG", WG)]);
    let grid = element_grid(ctx, label, batch, WG)?;
    Call::new(ctx, label, entry, &params, args.into_vec(), grid)
}
