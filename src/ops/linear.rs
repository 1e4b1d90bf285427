//! Fully connected layer `y = x·Wᵀ + b`: shape rule, cost, CPU forward and backward.

use super::{flat, same_shape, Backward, Init, OpCost, OpDef, ParamDecl, ParamRole, Params};
use super::{prod_u64, Saved};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Fully connected layer, weight `[out, in]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linear {
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl OpDef for Linear {
    fn kind(&self) -> &'static str {
        "linear"
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        let f = flat(layer, self.kind(), ins[0])?;
        if f != self.in_features {
            return Err(Error::shape(
                layer,
                format!(
                    "linear expects {} input features, got {f}",
                    self.in_features
                ),
            ));
        }
        if self.out_features == 0 {
            return Err(Error::shape(layer, "out_features must be at least 1"));
        }
        Ok(vec![self.out_features])
    }
    fn params(&self) -> Vec<ParamDecl> {
        let mut v = vec![ParamDecl::new(
            "weight",
            vec![self.out_features, self.in_features],
            Init::Normal(0.01),
            ParamRole::Decayed,
        )];
        if self.bias {
            v.push(ParamDecl::new(
                "bias",
                vec![self.out_features],
                Init::Zeros,
                ParamRole::Decayed,
            ));
        }
        v
    }
    fn cost(&self, _ins: &[&[usize]], _out: &[usize]) -> OpCost {
        let w = prod_u64(&[self.in_features, self.out_features]);
        OpCost {
            macs: w,
            params: w + if self.bias {
                self.out_features as u64
            } else {
                0
            },
            train_only_params: 0,
        }
    }
    fn forward(&self, p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        linear(ins[0], p.get("weight")?, p.opt("bias", self.bias)?)
    }
    fn backward(
        &self,
        p: &Params<'_>,
        ins: &[&Tensor],
        _out: &Tensor,
        _saved: &Saved,
        gy: Tensor,
    ) -> Result<Backward> {
        let (dx, dw, db) = linear_backward(ins[0], p.get("weight")?, &gy, self.bias)?;
        let mut params = vec![("weight", dw)];
        if let Some(db) = db {
            params.push(("bias", db));
        }
        Ok(Backward {
            inputs: vec![dx],
            params,
        })
    }
}

/// `y = x·Wᵀ + b` with `x`: `[B, F]`, `W`: `[O, F]`, `b`: `[O]`.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&[f32]>) -> Result<Tensor> {
    let [b, f] = x.dims2("linear")?;
    let [o, wf] = weight.dims2("linear weight")?;
    if wf != f {
        return Err(Error::tensor_shape(
            "linear weight",
            format!("[{o}, {f}]"),
            weight.shape(),
        ));
    }
    super::check_bias("linear bias", bias, o)?;
    let mut out = Tensor::zeros(&[b, o]);
    out.data_mut()
        .par_chunks_mut(o)
        .enumerate()
        .for_each(|(n, row)| {
            let xr = &x.data()[n * f..(n + 1) * f];
            for (j, v) in row.iter_mut().enumerate() {
                let wr = &weight.data()[j * f..(j + 1) * f];
                let dot: f32 = xr.iter().zip(wr).map(|(a, b)| a * b).sum();
                *v = dot + bias.map_or(0.0, |bb| bb[j]);
            }
        });
    Ok(out)
}

/// Backward of [`linear`]: returns `(∂L/∂x = dy·W, ∂L/∂W = dyᵀ·x, ∂L/∂b = Σ_batch dy)` (the
/// bias gradient only when `has_bias`).
pub fn linear_backward(
    x: &Tensor,
    weight: &Tensor,
    grad_out: &Tensor,
    has_bias: bool,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let op = "linear backward";
    let [b, f] = x.dims2(op)?;
    let [o, wf] = weight.dims2(op)?;
    if wf != f {
        return Err(Error::tensor_shape(
            op,
            format!("weight [{o}, {f}]"),
            weight.shape(),
        ));
    }
    same_shape(op, &[b, o], grad_out)?;
    let (xd, wd, gy) = (x.data(), weight.data(), grad_out.data());
    let mut dx = Tensor::zeros(&[b, f]);
    dx.data_mut()
        .par_chunks_mut(f)
        .enumerate()
        .for_each(|(n, row)| {
            for j in 0..o {
                let g = gy[n * o + j];
                let wr = &wd[j * f..(j + 1) * f];
                row.iter_mut().zip(wr).for_each(|(d, &wv)| *d += g * wv);
            }
        });
    let mut dw = Tensor::zeros(&[o, f]);
    dw.data_mut()
        .par_chunks_mut(f)
        .enumerate()
        .for_each(|(j, row)| {
            for n in 0..b {
                let g = gy[n * o + j];
                let xr = &xd[n * f..(n + 1) * f];
                row.iter_mut().zip(xr).for_each(|(d, &xv)| *d += g * xv);
            }
        });
    let db = has_bias.then(|| Tensor::from_fn(&[o], |j| (0..b).map(|n| gy[n * o + j]).sum()));
    Ok((dx, dw, db))
}
