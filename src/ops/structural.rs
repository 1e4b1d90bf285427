//! Ops that move or combine values without parameters: the input, residual add, flatten,
//! dropout, softmax and channel gather.

use super::{chw, flat, row_softmax, row_softmax_backward, same_shape, Backward, OpCost, OpDef};
use super::{no_backward, ParamDecl, Params, Saved};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Implements the parameter-free, cost-free part of [`OpDef`].
macro_rules! no_params {
    () => {
        fn params(&self) -> Vec<ParamDecl> {
            Vec::new()
        }
        fn cost(&self, _ins: &[&[usize]], _out: &[usize]) -> OpCost {
            OpCost::default()
        }
    };
}

/// The network input, per-sample shape `[C, H, W]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// `[C, H, W]`.
    pub shape: [usize; 3],
}

impl OpDef for Input {
    fn kind(&self) -> &'static str {
        "input"
    }
    fn arity(&self) -> usize {
        0
    }
    fn infer_shape(&self, layer: &str, _ins: &[&[usize]]) -> Result<Vec<usize>> {
        if self.shape.contains(&0) {
            return Err(Error::shape(layer, "input sizes must be at least 1"));
        }
        Ok(self.shape.to_vec())
    }
    no_params!();
    fn forward(&self, _p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        ins.first()
            .map(|&t| t.clone())
            .ok_or_else(|| Error::InvalidArgument("input: no value given".into()))
    }
    fn backward(
        &self,
        _p: &Params<'_>,
        _ins: &[&Tensor],
        _out: &Tensor,
        _saved: &Saved,
        _gy: Tensor,
    ) -> Result<Backward> {
        Ok(Backward::inputs(Vec::new()))
    }
}

/// Element-wise sum of two inputs of equal shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Add;

impl OpDef for Add {
    fn kind(&self) -> &'static str {
        "add"
    }
    fn arity(&self) -> usize {
        2
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        if ins[0] != ins[1] {
            return Err(Error::shape(
                layer,
                format!("add of different shapes {:?} and {:?}", ins[0], ins[1]),
            ));
        }
        Ok(ins[0].to_vec())
    }
    no_params!();
    fn forward(&self, _p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        add(ins[0], ins[1])
    }
    fn backward(
        &self,
        _p: &Params<'_>,
        _ins: &[&Tensor],
        _out: &Tensor,
        _saved: &Saved,
        gy: Tensor,
    ) -> Result<Backward> {
        Ok(Backward::inputs(vec![gy.clone(), gy]))
    }
}

/// `[C, H, W]` → `[C·H·W]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flatten;

impl OpDef for Flatten {
    fn kind(&self) -> &'static str {
        "flatten"
    }
    fn infer_shape(&self, _layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        Ok(vec![ins[0].iter().product()])
    }
    no_params!();
    fn forward(&self, _p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        let x = ins[0];
        let b = x.shape()[0];
        x.clone().reshape(&[b, x.numel() / b.max(1)])
    }
    fn backward(
        &self,
        _p: &Params<'_>,
        ins: &[&Tensor],
        _out: &Tensor,
        _saved: &Saved,
        gy: Tensor,
    ) -> Result<Backward> {
        Ok(Backward::inputs(vec![gy.reshape(ins[0].shape())?]))
    }
}

/// Dropout: the identity at inference; in training an inverted-dropout mask.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dropout {
    /// Drop probability (used in training only).
    pub p: f32,
}

impl OpDef for Dropout {
    fn kind(&self) -> &'static str {
        "dropout"
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        if !(0.0..1.0).contains(&self.p) {
            return Err(Error::shape(
                layer,
                format!("dropout p {} not in [0, 1)", self.p),
            ));
        }
        Ok(ins[0].to_vec())
    }
    no_params!();
    fn forward(&self, _p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        Ok(ins[0].clone())
    }
    fn forward_train(
        &self,
        _p: &Params<'_>,
        ins: &[&Tensor],
        seed: u64,
    ) -> Result<(Tensor, Saved)> {
        let mask = dropout_mask(ins[0].numel(), self.p, seed)?;
        let mut y = ins[0].clone();
        y.data_mut()
            .iter_mut()
            .zip(&mask)
            .for_each(|(v, m)| *v *= m);
        Ok((y, Saved::Mask(mask)))
    }
    fn backward(
        &self,
        _p: &Params<'_>,
        _ins: &[&Tensor],
        _out: &Tensor,
        saved: &Saved,
        gy: Tensor,
    ) -> Result<Backward> {
        let mut dx = gy;
        if let Saved::Mask(mask) = saved {
            dx.data_mut()
                .iter_mut()
                .zip(mask)
                .for_each(|(d, m)| *d *= m);
        }
        Ok(Backward::inputs(vec![dx]))
    }
}

/// Softmax over the features of a `[F]` (per-sample) tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Softmax;

impl OpDef for Softmax {
    fn kind(&self) -> &'static str {
        "softmax"
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        Ok(vec![flat(layer, self.kind(), ins[0])?])
    }
    no_params!();
    fn forward(&self, _p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        softmax(ins[0])
    }
    fn backward(
        &self,
        _p: &Params<'_>,
        _ins: &[&Tensor],
        out: &Tensor,
        _saved: &Saved,
        gy: Tensor,
    ) -> Result<Backward> {
        Ok(Backward::inputs(vec![softmax_backward(out, &gy)?]))
    }
}

/// Channel gather: output channel `c` is input channel `indices[c]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gather {
    /// Source channel of each output channel.
    pub indices: Vec<usize>,
}

impl OpDef for Gather {
    fn kind(&self) -> &'static str {
        "gather"
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        let [c, h, w] = chw(layer, self.kind(), ins[0])?;
        if let Some(&bad) = self.indices.iter().find(|&&i| i >= c) {
            return Err(Error::shape(
                layer,
                format!("gather index {bad} out of range for {c} channels"),
            ));
        }
        if self.indices.is_empty() {
            return Err(Error::shape(layer, "gather of no channels"));
        }
        Ok(vec![self.indices.len(), h, w])
    }
    no_params!();
    fn forward(&self, _p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        gather_channels(ins[0], &self.indices)
    }
    fn backward(
        &self,
        _p: &Params<'_>,
        _ins: &[&Tensor],
        _out: &Tensor,
        _saved: &Saved,
        _gy: Tensor,
    ) -> Result<Backward> {
        Err(no_backward(self.kind()))
    }
}

/// Element-wise sum of two tensors of equal shape.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.shape() != b.shape() {
        return Err(Error::tensor_shape(
            "add",
            format!("{:?} (the first input's shape)", a.shape()),
            b.shape(),
        ));
    }
    let mut out = a.clone();
    out.data_mut()
        .iter_mut()
        .zip(b.data())
        .for_each(|(x, y)| *x += y);
    Ok(out)
}

/// Softmax over the last dimension of a `[B, F]` tensor.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    x.dims2("softmax")?;
    row_softmax(x)
}

/// Backward of softmax over the last dimension, from its OUTPUT `y` (`[B, F]`):
/// `∂L/∂x = y ⊙ (dy − ⟨dy, y⟩)` per row.
pub fn softmax_backward(y: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
    y.dims2("softmax backward")?;
    same_shape("softmax backward", y.shape(), grad_out)?;
    row_softmax_backward(y, grad_out)
}

/// Channel gather: output channel `c` of each sample is input channel `indices[c]`.
pub fn gather_channels(x: &Tensor, indices: &[usize]) -> Result<Tensor> {
    let [b, c, h, w] = x.dims4("gather")?;
    if let Some(&bad) = indices.iter().find(|&&i| i >= c) {
        return Err(Error::tensor_shape(
            "gather",
            format!("indices below {c}, got index {bad}"),
            x.shape(),
        ));
    }
    let hw = h * w;
    let k = indices.len();
    let mut out = Tensor::zeros(&[b, k, h, w]);
    for n in 0..b {
        for (oc, &ic) in indices.iter().enumerate() {
            out.data_mut()[(n * k + oc) * hw..(n * k + oc + 1) * hw]
                .copy_from_slice(&x.data()[(n * c + ic) * hw..(n * c + ic + 1) * hw]);
        }
    }
    Ok(out)
}

/// Inverted-dropout mask for `len` values: each kept with probability `1 − p` and then scaled
/// by `1 / (1 − p)`, dropped ones are 0. Seeded, so a step is reproducible. `p = 0` keeps all.
pub fn dropout_mask(len: usize, p: f32, seed: u64) -> Result<Vec<f32>> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::InvalidArgument(format!(
            "dropout p {p} not in [0, 1)"
        )));
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let scale = 1.0 / (1.0 - p);
    Ok((0..len)
        .map(|_| if rng.random::<f32>() < p { 0.0 } else { scale })
        .collect())
}
