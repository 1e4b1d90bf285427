//! The loss head, and the CPU backward of every trainable op (re-exported from its home in
//! [`crate::ops`], beside its forward): explicit loops over batch, group, filter, output pixel,
//! input channel and kernel window. Reductions run in a fixed order, so results are bit-for-bit
//! reproducible.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub use crate::ops::{
    adaptive_avg_pool2d_backward, avg_pool2d_backward, batch_norm_train, batch_norm_train_backward,
    conv2d_backward, dropout_mask, flgc_conv2d_backward, linear_backward, max_pool2d_backward,
    relu6_backward, relu_backward, row_softmax_backward, softmax_backward, update_running_stats,
    BatchStats, ConvGrads, FlgcGrads,
};

/// The loss head: mean softmax cross-entropy of `[B, K]` logits against `labels`.
///
/// Returns `(loss, ∂loss/∂logits = (softmax − onehot) / B, correct)` where `correct` counts the
/// samples whose argmax (ties to the lowest index) is the label. The loss is summed in f64
/// with log-sum-exp.
pub fn softmax_cross_entropy(logits: &Tensor, labels: &[usize]) -> Result<(f32, Tensor, usize)> {
    let op = "softmax_cross_entropy";
    let [b, k] = logits.dims2(op)?;
    if labels.len() != b || b == 0 {
        return Err(Error::InvalidArgument(format!(
            "{op}: {} labels for a batch of {b}",
            labels.len()
        )));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= k) {
        return Err(Error::InvalidArgument(format!(
            "{op}: label {bad} out of range for {k} classes"
        )));
    }
    let mut grad = Tensor::zeros(&[b, k]);
    let mut loss = 0.0f64;
    let mut correct = 0;
    for (n, &label) in labels.iter().enumerate() {
        let row = &logits.data()[n * k..(n + 1) * k];
        let mut best = 0;
        for (j, &v) in row.iter().enumerate() {
            if v > row[best] {
                best = j;
            }
        }
        correct += usize::from(best == label);
        let max = row[best] as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        let lse = max + sum.ln();
        loss += lse - row[label] as f64;
        let g = &mut grad.data_mut()[n * k..(n + 1) * k];
        for (j, gv) in g.iter_mut().enumerate() {
            let p = ((row[j] as f64 - lse).exp()) as f32;
            *gv = (p - f32::from(u8::from(j == label))) / b as f32;
        }
    }
    Ok(((loss / b as f64) as f32, grad, correct))
}
