//! FLGC, fully learnable group convolution (Wang et al. §2): selection matrices → one-hot
//! groups → mask → masked convolution, its straight-through backward (Eqs. 16–18), and the
//! selection math (row softmax, row argmax, mask) that the graph passes share.

use super::conv::{conv2d, conv2d_backward, ConvGrads};
use super::{chw, prod_u64, same_shape, Backward, Conv2dSpec, Init, OpCost, OpDef, ParamDecl};
use super::{ParamRole, Params, Saved};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Hyper-parameters of an FLGC layer: a convolution whose `groups` is the number of learnt
/// groups G (channels need not be divisible by G). The weight is dense, `[N, C, kh, kw]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FlgcSpec(pub Conv2dSpec);

impl std::ops::Deref for FlgcSpec {
    type Target = Conv2dSpec;
    fn deref(&self) -> &Conv2dSpec {
        &self.0
    }
}

impl FlgcSpec {
    /// The dense convolution the masked weight runs through.
    pub fn dense(&self) -> Conv2dSpec {
        Conv2dSpec {
            groups: 1,
            ..self.0.clone()
        }
    }
}

/// Σ n_g·c_g when `n` outputs and `c` inputs are split as evenly as possible into `g` groups
/// (the larger shares paired together).
pub fn even_split_pairs(n: usize, c: usize, g: usize) -> u64 {
    let g = g.max(1);
    let share = |total: usize, i: usize| total / g + usize::from(i < total % g);
    // Only the first max(n, c) mod g groups differ; the rest are all alike.
    let alike = (n % g).max(c % g);
    let head: u64 = (0..alike.min(g))
        .map(|i| (share(n, i) * share(c, i)) as u64)
        .sum();
    head + (g - alike.min(g)) as u64 * ((n / g) * (c / g)) as u64
}

impl OpDef for FlgcSpec {
    fn kind(&self) -> &'static str {
        "flgc_conv2d"
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        let [c, h, w] = chw(layer, self.kind(), ins[0])?;
        self.check(layer, c, false)?;
        self.out_shape(layer, h, w)
    }
    fn params(&self) -> Vec<ParamDecl> {
        let s = &self.0;
        let mut v = s.weight_params(vec![
            s.out_channels,
            s.in_channels,
            s.kernel[0],
            s.kernel[1],
        ]);
        for (suffix, rows) in [("select_in", s.in_channels), ("select_out", s.out_channels)] {
            v.push(ParamDecl::new(
                suffix,
                vec![rows, s.groups],
                Init::Normal(1.0),
                ParamRole::NotDecayed,
            ));
        }
        v
    }
    /// Counted as it runs at inference: a grouped conv with the channels split as evenly as
    /// possible over G groups (an exported graph is counted exactly from its table).
    fn cost(&self, _ins: &[&[usize]], out: &[usize]) -> OpCost {
        let s = &self.0;
        let w = even_split_pairs(s.out_channels, s.in_channels, s.groups) * s.window() as u64;
        OpCost {
            train_only_params: prod_u64(&[s.in_channels + s.out_channels, s.groups]),
            ..s.cost_of(w, out)
        }
    }
    fn forward(&self, p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        flgc_conv2d(
            ins[0],
            p.get("weight")?,
            p.opt("bias", self.bias)?,
            p.get("select_in")?,
            p.get("select_out")?,
            self,
        )
    }
    fn backward(
        &self,
        p: &Params<'_>,
        ins: &[&Tensor],
        _out: &Tensor,
        _saved: &Saved,
        gy: Tensor,
    ) -> Result<Backward> {
        let g = flgc_conv2d_backward(
            ins[0],
            p.get("weight")?,
            p.get("select_in")?,
            p.get("select_out")?,
            &gy,
            self,
        )?;
        let mut params = vec![("weight", g.weight)];
        if let Some(b) = g.bias {
            params.push(("bias", b));
        }
        params.push(("select_in", g.select_in));
        params.push(("select_out", g.select_out));
        Ok(Backward {
            inputs: vec![g.input],
            params,
        })
    }
}

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
    let dense = Conv2dSpec {
        groups: 1,
        ..spec.clone()
    };
    conv2d(x, &w, bias, &dense)
}

/// Gradients of an FLGC layer (straight-through estimator, Wang et al. Eqs. 16–18).
#[derive(Clone, Debug, PartialEq)]
pub struct FlgcGrads {
    /// `∂L/∂x`, through the masked weight `W ⊙ M`.
    pub input: Tensor,
    /// `∂L/∂W = D = ∂L/∂(W ⊙ M)` on every entry (Eq. 16): weights outside today's grouping
    /// keep learning, so a channel that changes group brings trained weights with it. Rows of
    /// dead filters (whose group has no input channel) are zero.
    pub weight: Tensor,
    /// `∂L/∂b`, `[N]`.
    pub bias: Option<Tensor>,
    /// `∂L/∂M`, `[N, C]`: `Gm[n,c] = Σ_{kh,kw} D[n,c,kh,kw]·W[n,c,kh,kw]`.
    pub mask: Tensor,
    /// `∂L/∂S̄`, `[C, G]`: `Gmᵀ·T` (STE through the argmax), then the row-softmax Jacobian.
    pub select_in: Tensor,
    /// `∂L/∂T̄`, `[N, G]`: `Gm·S`, then the row-softmax Jacobian.
    pub select_out: Tensor,
}

/// Row-softmax Jacobian applied to a gradient: for each row `i` with probabilities `p = Ŝ_i`
/// and upstream gradient `g`, `∂L/∂S̄_i = p ⊙ (g − ⟨g, p⟩)`.
pub fn row_softmax_backward(probs: &Tensor, grad: &Tensor) -> Result<Tensor> {
    let [r, g] = probs.dims2("row_softmax backward")?;
    same_shape("row_softmax backward", &[r, g], grad)?;
    let mut out = Tensor::zeros(&[r, g]);
    for i in 0..r {
        let p = &probs.data()[i * g..(i + 1) * g];
        let gi = &grad.data()[i * g..(i + 1) * g];
        let dot: f32 = p.iter().zip(gi).map(|(a, b)| a * b).sum();
        for j in 0..g {
            out.data_mut()[i * g + j] = p[j] * (gi[j] - dot);
        }
    }
    Ok(out)
}

/// Backward of [`flgc_conv2d`] with the straight-through estimator of Wang et al.
///
/// `D = ∂L/∂(W⊙M)` is the ordinary weight gradient of the dense convolution run with the masked
/// weight. Then `∂L/∂W = D` (not multiplied by `M`), `Gm = Σ_k D ⊙ W`, `∂L/∂Ŝ = Gmᵀ·T`,
/// `∂L/∂T̂ = Gm·S` (the argmax is passed straight through, `∂S/∂Ŝ ≈ I`), and the row-softmax
/// Jacobian gives `∂L/∂S̄`, `∂L/∂T̄`. The input gradient uses the masked weight.
pub fn flgc_conv2d_backward(
    x: &Tensor,
    weight: &Tensor,
    select_in: &Tensor,
    select_out: &Tensor,
    grad_out: &Tensor,
    s: &Conv2dSpec,
) -> Result<FlgcGrads> {
    let mask = flgc_mask(select_in, select_out)?;
    let wm = masked_weight(weight, &mask)?;
    let dense = Conv2dSpec {
        groups: 1,
        ..s.clone()
    };
    let ConvGrads {
        input,
        weight: mut d,
        bias,
    } = conv2d_backward(x, &wm, grad_out, &dense)?;
    let [n, c] = mask.dims2("flgc mask")?;
    let [_, g] = select_in.dims2("flgc select_in")?;
    let kk = s.window();
    // A filter whose group has no input channel outputs a constant that does not depend on W
    // or on its own selection: it gets no weight or mask gradient. (Its gradient from a
    // following BN is ~1/√eps times larger than anyone else's, since the channel has no
    // variance; letting it through inflates W, T̄ and S̄ updates.)
    for (o, row) in d.data_mut().chunks_mut(c * kk).enumerate() {
        if mask.data()[o * c..(o + 1) * c].iter().all(|&m| m == 0.0) {
            row.fill(0.0);
        }
    }
    let gm = Tensor::from_fn(&[n, c], |i| {
        let dd = &d.data()[i * kk..(i + 1) * kk];
        let ww = &weight.data()[i * kk..(i + 1) * kk];
        dd.iter().zip(ww).map(|(a, b)| a * b).sum()
    });
    let s_grp = row_argmax(select_in)?;
    let t_grp = row_argmax(select_out)?;
    // ∂L/∂Ŝ[c, j] = Σ_n Gm[n, c]·T[n, j] = Σ over filters n of group j of Gm[n, c].
    let mut gs_hat = Tensor::zeros(&[c, g]);
    // ∂L/∂T̂[n, j] = Σ_c Gm[n, c]·S[c, j] = Σ over input channels c of group j of Gm[n, c].
    let mut gt_hat = Tensor::zeros(&[n, g]);
    for (o, &tj) in t_grp.iter().enumerate() {
        for (ci, &sj) in s_grp.iter().enumerate() {
            let v = gm.data()[o * c + ci];
            gs_hat.data_mut()[ci * g + tj] += v;
            gt_hat.data_mut()[o * g + sj] += v;
        }
    }
    let select_in_grad = row_softmax_backward(&row_softmax(select_in)?, &gs_hat)?;
    let select_out_grad = row_softmax_backward(&row_softmax(select_out)?, &gt_hat)?;
    Ok(FlgcGrads {
        input,
        weight: d,
        bias,
        mask: gm,
        select_in: select_in_grad,
        select_out: select_out_grad,
    })
}

#[cfg(test)]
mod tests {
    use super::even_split_pairs;

    #[test]
    fn even_split_matches_exact_division() {
        assert_eq!(even_split_pairs(64, 32, 4), 4 * 16 * 8);
        // n splits 3 + 2, c splits 2 + 1: 3·2 + 2·1.
        assert_eq!(even_split_pairs(5, 3, 2), 8);
        // Brute force agrees on uneven splits.
        for (n, c, g) in [(7, 5, 3), (10, 3, 4), (3, 10, 4), (9, 9, 9)] {
            let share = |t: usize, i: usize| t / g + usize::from(i < t % g);
            let brute: u64 = (0..g).map(|i| (share(n, i) * share(c, i)) as u64).sum();
            assert_eq!(even_split_pairs(n, c, g), brute, "{n} {c} {g}");
        }
    }
}
