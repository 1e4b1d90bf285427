//! FLGC (Wang et al. §2): selection matrices → one-hot groups → mask → masked convolution.

use super::conv::conv2d;
use crate::error::{Error, Result};
use crate::graph::Conv2dSpec;
use crate::tensor::Tensor;

/// Row softmax of a `[R, G]` matrix (Eqs. 10, 13): `Ŝ(i,:) = softmax(S̄(i,:))`.
pub fn row_softmax(m: &Tensor) -> Result<Tensor> {
    let [r, g] = m.dims2("row_softmax")?;
    let mut out = m.clone();
    for i in 0..r {
        let row = &mut out.data_mut()[i * g..(i + 1) * g];
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
    Ok(out)
}

/// Group of every row (Eqs. 11, 12): the argmax of the row, ties to the lowest index.
///
/// Softmax is monotonic, so this is taken on the meta matrix itself: the same answer as on
/// `Ŝ`, without rounding making near-ties in `Ŝ` that are not ties in `S̄`.
pub fn row_argmax(m: &Tensor) -> Result<Vec<usize>> {
    let [r, g] = m.dims2("row_argmax")?;
    if g == 0 {
        return Err(Error::tensor_shape(
            "row_argmax",
            "at least one group",
            m.shape(),
        ));
    }
    Ok((0..r)
        .map(|i| {
            let row = &m.data()[i * g..(i + 1) * g];
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best
        })
        .collect())
}

/// The mask `M = T·Sᵀ` (`[N, C]`, Eq. 14): 1 where filter n and input channel c are in the
/// same group.
pub fn flgc_mask(select_in: &Tensor, select_out: &Tensor) -> Result<Tensor> {
    let [c, g_in] = select_in.dims2("flgc select_in")?;
    let [n, g_out] = select_out.dims2("flgc select_out")?;
    if g_in != g_out {
        return Err(Error::tensor_shape(
            "flgc select_out",
            format!("[N, {g_in}] (the same G as select_in)"),
            select_out.shape(),
        ));
    }
    let s = row_argmax(select_in)?;
    let t = row_argmax(select_out)?;
    let mut m = Tensor::zeros(&[n, c]);
    for (o, &tg) in t.iter().enumerate() {
        for (i, &sg) in s.iter().enumerate() {
            if tg == sg {
                m.data_mut()[o * c + i] = 1.0;
            }
        }
    }
    Ok(m)
}

/// `W ⊙ M`, the mask broadcast over the kernel window.
pub fn masked_weight(weight: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let [n, c] = mask.dims2("flgc mask")?;
    let [wn, wc, kh, kw] = weight.dims4("flgc weight")?;
    if (wn, wc) != (n, c) {
        return Err(Error::tensor_shape(
            "flgc weight",
            format!("[{n}, {c}, kh, kw]"),
            weight.shape(),
        ));
    }
    let kk = kh * kw;
    let mut out = weight.clone();
    for (i, chunk) in out.data_mut().chunks_mut(kk).enumerate() {
        let m = mask.data()[i];
        chunk.iter_mut().for_each(|v| *v *= m);
    }
    Ok(out)
}

/// FLGC forward: `conv(x, W ⊙ M) + b` with `M` from the selection matrices (`spec.groups` = G).
pub fn flgc_conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&[f32]>,
    select_in: &Tensor,
    select_out: &Tensor,
    spec: &Conv2dSpec,
) -> Result<Tensor> {
    let mask = flgc_mask(select_in, select_out)?;
    let w = masked_weight(weight, &mask)?;
    conv2d(
        x,
        &w,
        bias,
        &Conv2dSpec {
            groups: 1,
            ..spec.clone()
        },
    )
}
