//! The element-wise product of squeeze-excitation blocks, with channel broadcasting (an SE
//! block's `x · gate[c]`): CPU forward and backward. (Their sigmoid / hard sigmoid gates are
//! activations, `super::activation`.)

use super::{same_shape, Backward, OpDef, Params, Saved};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Element-wise product of two inputs of equal shape, or of a `[C, H, W]` input and a
/// `[C, 1, 1]` one broadcast over the plane (either order): a squeeze-excitation gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mul;

/// How the two inputs of [`Mul`] line up: `None` for equal shapes, `Some(i)` when input `i`
/// is the `[C, 1, 1]` one broadcast over the other's plane.
fn mul_broadcast(a: &[usize], b: &[usize]) -> Option<Option<usize>> {
    if a == b {
        return Some(None);
    }
    match (a, b) {
        ([c, _, _], [cb, 1, 1]) if c == cb => Some(Some(1)),
        ([c, 1, 1], [cb, _, _]) if c == cb => Some(Some(0)),
        _ => None,
    }
}

impl OpDef for Mul {
    fn kind(&self) -> &'static str {
        "mul"
    }
    fn arity(&self) -> usize {
        2
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        match mul_broadcast(ins[0], ins[1]) {
            Some(Some(0)) => Ok(ins[1].to_vec()),
            Some(_) => Ok(ins[0].to_vec()),
            None => Err(Error::shape(
                layer,
                format!(
                    "mul needs equal shapes or [C, H, W] and [C, 1, 1], got {:?} and {:?}",
                    ins[0], ins[1]
                ),
            )),
        }
    }
    fn forward(&self, _p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        mul(ins[0], ins[1])
    }
    fn backward(
        &self,
        _p: &Params<'_>,
        ins: &[&Tensor],
        _out: &Tensor,
        _saved: &Saved,
        gy: Tensor,
    ) -> Result<Backward> {
        let (a, b) = (ins[0], ins[1]);
        if a.shape().is_empty() || b.shape().is_empty() {
            return Err(mul_shape_error(a, b));
        }
        let (small, big) = match mul_broadcast(&a.shape()[1..], &b.shape()[1..]) {
            Some(None) => {
                same_shape("mul backward", a.shape(), &gy)?;
                let da = product(&gy, b);
                let db = product(&gy, a);
                return Ok(Backward::inputs(vec![da, db]));
            }
            Some(Some(i)) => (i, 1 - i),
            None => return Err(mul_shape_error(a, b)),
        };
        same_shape("mul backward", ins[big].shape(), &gy)?;
        // ∂/∂big = gy · small[c] broadcast; ∂/∂small[c] = Σ_plane gy · big.
        let d_big = broadcast_product(&gy, ins[small]);
        let plane = gy.shape()[2] * gy.shape()[3];
        let mut d_small = Tensor::zeros(ins[small].shape());
        let prod = product(&gy, ins[big]);
        for (s, chunk) in d_small.data_mut().iter_mut().zip(prod.data().chunks(plane)) {
            *s = chunk.iter().sum();
        }
        let mut grads = vec![Tensor::zeros(&[0]), Tensor::zeros(&[0])];
        grads[big] = d_big;
        grads[small] = d_small;
        Ok(Backward::inputs(grads))
    }
}

fn mul_shape_error(a: &Tensor, b: &Tensor) -> Error {
    Error::tensor_shape(
        "mul",
        format!(
            "{:?} or [B, C, 1, 1] (the first input's shape {:?})",
            a.shape(),
            a.shape()
        ),
        b.shape(),
    )
}

/// `a ⊙ b` for equal shapes.
fn product(a: &Tensor, b: &Tensor) -> Tensor {
    let mut y = a.clone();
    y.data_mut()
        .iter_mut()
        .zip(b.data())
        .for_each(|(v, w)| *v *= w);
    y
}

/// `x[n, c, ·] · s[n, c]` for `x` `[B, C, H, W]` and `s` `[B, C, 1, 1]`.
fn broadcast_product(x: &Tensor, s: &Tensor) -> Tensor {
    let plane = x.shape()[2] * x.shape()[3];
    let mut y = x.clone();
    y.data_mut()
        .chunks_mut(plane.max(1))
        .zip(s.data())
        .for_each(|(chunk, &g)| chunk.iter_mut().for_each(|v| *v *= g));
    y
}

/// Element-wise product of `[B, …]` tensors of equal shape, or of `[B, C, H, W]` and
/// `[B, C, 1, 1]` (either order).
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.shape().is_empty() || a.shape().first() != b.shape().first() {
        return Err(mul_shape_error(a, b));
    }
    match mul_broadcast(&a.shape()[1..], &b.shape()[1..]) {
        Some(None) => Ok(product(a, b)),
        Some(Some(1)) => Ok(broadcast_product(a, b)),
        Some(Some(_)) => Ok(broadcast_product(b, a)),
        None => Err(mul_shape_error(a, b)),
    }
}
