//! Launcher for `shaders/loss.wgsl`: the training loss head, mean softmax cross-entropy
//! (`train::backward::softmax_cross_entropy`).

use super::{check_dims, check_tensor, checked_len, element_grid, make_dispatch};
use crate::error::Result;
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;

/// `shaders/loss.wgsl`: params, logits, labels (u32), grad_logits, per_sample.
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "loss",
    source: include_str!("../../../shaders/loss.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
        BindingKind::ReadWrite,
    ],
    trusted: false,
};

/// Invocations per workgroup (one sample each).
pub const WG: u32 = 64;

/// Mirror of the WGSL `Params` of `loss.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LossParams {
    /// Batch B.
    pub batch: u32,
    /// Classes K.
    pub classes: u32,
    /// `f32::NAN`, the loss reported for an out-of-range label.
    pub nan: f32,
    /// Padding to 16 bytes.
    pub _pad: u32,
}
super::uniform_params!(LossParams);

/// Mean softmax cross-entropy of `logits` `[batch, classes]` against `labels` (a `u32`
/// array of `batch` values; its `TensorRef::len` counts 4-byte values, so `batch`), as the
/// CPU `softmax_cross_entropy` with a stable log-sum-exp:
/// `grad_logits[b, k] = (softmax − onehot)/batch`, `per_sample[2b]` = loss of sample `b`
/// (the batch loss is the mean of these), `per_sample[2b+1]` = 1.0 when the argmax logit
/// (ties → lowest index) is the label, else 0.0 (`per_sample` holds `2·batch` floats).
///
/// A label ≥ `classes` does not fault the GPU: that sample reports loss NaN, flag 0.0 and
/// a zero gradient row (so the mean loss is NaN and the caller can notice). Labels are
/// data; they are not checked on the host.
#[allow(clippy::too_many_arguments)]
pub fn prepare_softmax_cross_entropy(
    ctx: &GpuContext,
    label: &str,
    batch: usize,
    classes: usize,
    logits: TensorRef<'_>,
    labels: TensorRef<'_>,
    grad_logits: TensorRef<'_>,
    per_sample: TensorRef<'_>,
) -> Result<Vec<Dispatch>> {
    check_dims(label, &[("batch", batch), ("classes", classes)])?;
    let len = checked_len(label, "logits", &[batch, classes])?;
    let flags = checked_len(label, "per_sample", &[batch, 2])?;
    check_tensor(ctx, label, "logits", &logits, len as u64)?;
    check_tensor(ctx, label, "labels", &labels, batch as u64)?;
    check_tensor(ctx, label, "grad_logits", &grad_logits, len as u64)?;
    check_tensor(ctx, label, "per_sample", &per_sample, flags as u64)?;
    let params = LossParams {
        batch: batch as u32,
        classes: classes as u32,
        nan: f32::NAN,
        _pad: 0,
    };
    let u = ctx.uniform(&format!("{label} params"), &params);
    Ok(vec![make_dispatch(
        ctx,
        label,
        &SHADER,
        "softmax_cross_entropy",
        vec![("WG", WG)],
        &[
            u.as_entire_binding(),
            logits.binding(),
            labels.binding(),
            grad_logits.binding(),
            per_sample.binding(),
        ],
        element_grid(ctx, label, batch, WG)?,
    )?])
}
