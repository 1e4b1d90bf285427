//! Batch normalisation: inference (running statistics), training (batch statistics, PyTorch's
//! running update) and backward.

use super::{chw, same_shape, Backward, Init, OpCost, OpDef, ParamDecl, ParamRole, Params, Saved};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Batch normalisation over channels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchNorm {
    /// Channels.
    pub channels: usize,
    /// ε added to the variance.
    pub eps: f32,
}

impl OpDef for BatchNorm {
    fn kind(&self) -> &'static str {
        "batch_norm"
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        let [c, _, _] = chw(layer, self.kind(), ins[0])?;
        if c != self.channels {
            return Err(Error::shape(
                layer,
                format!("batch norm over {} channels got {c}", self.channels),
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::shape(layer, "eps must be positive and finite"));
        }
        Ok(ins[0].to_vec())
    }
    fn params(&self) -> Vec<ParamDecl> {
        let c = vec![self.channels];
        vec![
            ParamDecl::new("weight", c.clone(), Init::Ones, ParamRole::NotDecayed),
            ParamDecl::new("bias", c.clone(), Init::Zeros, ParamRole::NotDecayed),
            ParamDecl::new("running_mean", c.clone(), Init::Zeros, ParamRole::Buffer),
            ParamDecl::new("running_var", c, Init::Ones, ParamRole::Buffer),
        ]
    }
    fn cost(&self, _ins: &[&[usize]], _out: &[usize]) -> OpCost {
        OpCost {
            params: 2 * self.channels as u64,
            ..OpCost::default()
        }
    }
    fn forward(&self, p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        batch_norm(
            ins[0],
            p.get("weight")?.data(),
            p.get("bias")?.data(),
            p.get("running_mean")?.data(),
            p.get("running_var")?.data(),
            self.eps,
        )
    }
    fn forward_train(
        &self,
        p: &Params<'_>,
        ins: &[&Tensor],
        _seed: u64,
    ) -> Result<(Tensor, Saved)> {
        let (y, st) = batch_norm_train(
            ins[0],
            p.get("weight")?.data(),
            p.get("bias")?.data(),
            self.eps,
        )?;
        Ok((y, Saved::BatchStats(st)))
    }
    /// The training backward when the forward kept batch statistics; otherwise (eval mode) the
    /// affine backward with the running statistics.
    fn backward(
        &self,
        p: &Params<'_>,
        ins: &[&Tensor],
        _out: &Tensor,
        saved: &Saved,
        gy: Tensor,
    ) -> Result<Backward> {
        let gamma = p.get("weight")?.data();
        let eval_stats;
        let st = match saved {
            Saved::BatchStats(st) => st,
            _ => {
                let var = p.get("running_var")?.data();
                eval_stats = BatchStats {
                    mean: p.get("running_mean")?.data().to_vec(),
                    var: var.to_vec(),
                    var_unbiased: var.to_vec(),
                    invstd: var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect(),
                };
                &eval_stats
            }
        };
        let (dx, dgamma, dbeta) = match saved {
            Saved::BatchStats(_) => batch_norm_train_backward(ins[0], gamma, st, &gy)?,
            _ => affine_backward(ins[0], gamma, st, &gy)?,
        };
        Ok(Backward {
            inputs: vec![dx],
            params: vec![
                ("weight", Tensor::new(vec![self.channels], dgamma)?),
                ("bias", Tensor::new(vec![self.channels], dbeta)?),
            ],
        })
    }
}

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

/// Per-channel statistics of a batch, kept by the training forward of batch norm.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchStats {
    /// Batch mean per channel.
    pub mean: Vec<f32>,
    /// Biased batch variance per channel (divides by `m = B·H·W`; used to normalise).
    pub var: Vec<f32>,
    /// Unbiased batch variance per channel (divides by `m − 1`; fed to the running variance).
    pub var_unbiased: Vec<f32>,
    /// `1 / sqrt(var + eps)` per channel.
    pub invstd: Vec<f32>,
}

/// Batch norm in training mode (PyTorch semantics): normalises with the batch mean and the
/// biased batch variance. Statistics are summed in f64. Needs `B·H·W ≥ 2` (PyTorch refuses 1).
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Result<(Tensor, BatchStats)> {
    let op = "batch_norm (training)";
    let [b, c, h, w] = x.dims4(op)?;
    if gamma.len() != c || beta.len() != c {
        return Err(Error::tensor_shape(
            op,
            format!("γ and β of {c} values"),
            &[gamma.len(), beta.len()],
        ));
    }
    let hw = h * w;
    let m = b * hw;
    if m < 2 {
        return Err(Error::tensor_shape(
            op,
            "more than one value per channel in training",
            x.shape(),
        ));
    }
    let mut st = BatchStats {
        mean: vec![0.0; c],
        var: vec![0.0; c],
        var_unbiased: vec![0.0; c],
        invstd: vec![0.0; c],
    };
    for ch in 0..c {
        let planes =
            || (0..b).flat_map(move |n| &x.data()[(n * c + ch) * hw..(n * c + ch + 1) * hw]);
        let mean = planes().map(|&v| v as f64).sum::<f64>() / m as f64;
        let ss = planes().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>();
        st.mean[ch] = mean as f32;
        st.var[ch] = (ss / m as f64) as f32;
        st.var_unbiased[ch] = (ss / (m - 1) as f64) as f32;
        st.invstd[ch] = (1.0 / (ss / m as f64 + eps as f64).sqrt()) as f32;
    }
    let mut y = x.clone();
    for n in 0..b {
        for ch in 0..c {
            let (mu, is, ga, be) = (st.mean[ch], st.invstd[ch], gamma[ch], beta[ch]);
            y.data_mut()[(n * c + ch) * hw..(n * c + ch + 1) * hw]
                .iter_mut()
                .for_each(|v| *v = (*v - mu) * is * ga + be);
        }
    }
    Ok((y, st))
}

/// PyTorch's running-statistics update: `r ← (1 − momentum)·r + momentum·batch`, with the
/// UNBIASED batch variance for the running variance.
pub fn update_running_stats(
    running_mean: &mut [f32],
    running_var: &mut [f32],
    stats: &BatchStats,
    momentum: f32,
) {
    for (r, &v) in running_mean.iter_mut().zip(&stats.mean) {
        *r = (1.0 - momentum) * *r + momentum * v;
    }
    for (r, &v) in running_var.iter_mut().zip(&stats.var_unbiased) {
        *r = (1.0 - momentum) * *r + momentum * v;
    }
}

/// Backward of [`batch_norm_train`]: with `x̂ = (x − μ)·invstd` over the `m = B·H·W` values of
/// a channel, `∂L/∂x = γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂))`, `∂L/∂γ = Σ dy·x̂`,
/// `∂L/∂β = Σ dy`. Returns `(∂L/∂x, ∂L/∂γ, ∂L/∂β)`.
pub fn batch_norm_train_backward(
    x: &Tensor,
    gamma: &[f32],
    stats: &BatchStats,
    grad_out: &Tensor,
) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    let op = "batch_norm backward";
    let [b, c, h, w] = x.dims4(op)?;
    same_shape(op, x.shape(), grad_out)?;
    let hw = h * w;
    let m = (b * hw) as f64;
    let mut dx = Tensor::zeros(x.shape());
    let mut dgamma = vec![0.0f32; c];
    let mut dbeta = vec![0.0f32; c];
    for ch in 0..c {
        let (mu, is) = (stats.mean[ch], stats.invstd[ch]);
        let (mut sum_dy, mut sum_dy_xhat) = (0.0f64, 0.0f64);
        for n in 0..b {
            let r = (n * c + ch) * hw..(n * c + ch + 1) * hw;
            for (&xv, &dy) in x.data()[r.clone()].iter().zip(&grad_out.data()[r]) {
                sum_dy += dy as f64;
                sum_dy_xhat += dy as f64 * ((xv - mu) * is) as f64;
            }
        }
        dgamma[ch] = sum_dy_xhat as f32;
        dbeta[ch] = sum_dy as f32;
        let (mean_dy, mean_dy_xhat) = ((sum_dy / m) as f32, (sum_dy_xhat / m) as f32);
        let k = gamma[ch] * is;
        for n in 0..b {
            let r = (n * c + ch) * hw..(n * c + ch + 1) * hw;
            for ((d, &xv), &dy) in dx.data_mut()[r.clone()]
                .iter_mut()
                .zip(&x.data()[r.clone()])
                .zip(&grad_out.data()[r])
            {
                let xhat = (xv - mu) * is;
                *d = k * (dy - mean_dy - xhat * mean_dy_xhat);
            }
        }
    }
    Ok((dx, dgamma, dbeta))
}

/// Backward of batch norm with fixed statistics (eval mode): `∂L/∂x = dy·γ·invstd`,
/// `∂L/∂γ = Σ dy·x̂`, `∂L/∂β = Σ dy`.
fn affine_backward(
    x: &Tensor,
    gamma: &[f32],
    st: &BatchStats,
    gy: &Tensor,
) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    let [b, c, h, w] = x.dims4("batch_norm backward")?;
    same_shape("batch_norm backward", x.shape(), gy)?;
    let hw = h * w;
    let mut dx = gy.clone();
    let mut dgamma = vec![0.0f32; c];
    let mut dbeta = vec![0.0f32; c];
    for n in 0..b {
        for ch in 0..c {
            let r = (n * c + ch) * hw..(n * c + ch + 1) * hw;
            for (&xv, &dy) in x.data()[r.clone()].iter().zip(&gy.data()[r.clone()]) {
                dgamma[ch] += dy * (xv - st.mean[ch]) * st.invstd[ch];
                dbeta[ch] += dy;
            }
            let k = gamma[ch] * st.invstd[ch];
            dx.data_mut()[r].iter_mut().for_each(|d| *d *= k);
        }
    }
    Ok((dx, dgamma, dbeta))
}
