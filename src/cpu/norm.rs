//! Batch normalisation (inference: running statistics).

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `y = (x − mean) / sqrt(var + eps) · γ + β`, per channel of a `[B, C, H, W]` tensor.
pub fn batch_norm(
    x: &Tensor,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
) -> Result<Tensor> {
    let [b, c, h, w] = x.dims4("batch_norm")?;
    for (name, p) in [
        ("weight", gamma),
        ("bias", beta),
        ("running_mean", mean),
        ("running_var", var),
    ] {
        if p.len() != c {
            return Err(Error::tensor_shape(
                format!("batch_norm {name}"),
                format!("{c} values"),
                &[p.len()],
            ));
        }
    }
    let mut out = x.clone();
    let hw = h * w;
    for n in 0..b {
        for ch in 0..c {
            let scale = gamma[ch] / (var[ch] + eps).sqrt();
            let shift = beta[ch] - mean[ch] * scale;
            let plane = &mut out.data_mut()[(n * c + ch) * hw..(n * c + ch + 1) * hw];
            plane.iter_mut().for_each(|v| *v = *v * scale + shift);
        }
    }
    Ok(out)
}
