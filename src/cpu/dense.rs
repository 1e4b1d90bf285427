//! Linear layer, element-wise ops, softmax and channel gather.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rayon::prelude::*;

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
    if let Some(bb) = bias {
        if bb.len() != o {
            return Err(Error::tensor_shape(
                "linear bias",
                format!("{o} values"),
                &[bb.len()],
            ));
        }
    }
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

/// `max(x, 0)`.
pub fn relu(x: &Tensor) -> Tensor {
    let mut out = x.clone();
    out.data_mut().iter_mut().for_each(|v| *v = v.max(0.0));
    out
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
    super::flgc::row_softmax(x)
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
