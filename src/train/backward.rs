//! Explicit backward passes of the graph's trainable ops, written the obvious way like
//! `crate::cpu`: loops over batch, group, filter, output pixel, input channel and kernel window.
//!
//! Every function takes the forward inputs (not the outputs, except where PyTorch itself uses
//! the output) and `grad_out = ∂L/∂y`, and returns `∂L/∂x` and the parameter gradients.
//! Reductions are done in a fixed order (parallel only over independent output elements), so
//! results are bit-for-bit reproducible.

use crate::cpu;
use crate::error::{Error, Result};
use crate::graph::{Conv2dSpec, Pool2dSpec};
use crate::tensor::Tensor;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

fn same_shape(op: &str, expected: &[usize], got: &Tensor) -> Result<()> {
    if got.shape() != expected {
        return Err(Error::tensor_shape(
            op,
            format!("a gradient of shape {expected:?}"),
            got.shape(),
        ));
    }
    Ok(())
}

/// Gradients of a convolution.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvGrads {
    /// `∂L/∂x`, `[B, C, H, W]`.
    pub input: Tensor,
    /// `∂L/∂W`, `[N, C/G, kh, kw]`.
    pub weight: Tensor,
    /// `∂L/∂b`, `[N]` (None when the layer has no bias).
    pub bias: Option<Tensor>,
}

/// Backward of [`cpu::conv2d`] (grouped, depthwise, pointwise, dense; any stride, padding,
/// dilation). `x`: `[B, C, H, W]`; `weight`: `[N, C/G, kh, kw]`; `grad_out`: `[B, N, OH, OW]`.
pub fn conv2d_backward(
    x: &Tensor,
    weight: &Tensor,
    grad_out: &Tensor,
    s: &Conv2dSpec,
) -> Result<ConvGrads> {
    let op = "conv2d backward";
    let [b, c, h, w] = x.dims4(op)?;
    let g = s.groups;
    if c != s.in_channels || g == 0 || c % g != 0 || s.out_channels % g != 0 {
        return Err(Error::tensor_shape(
            op,
            format!("{} input channels divisible by groups {g}", s.in_channels),
            x.shape(),
        ));
    }
    if weight.shape() != s.weight_shape() {
        return Err(Error::tensor_shape(
            op,
            format!("weight {:?}", s.weight_shape()),
            weight.shape(),
        ));
    }
    let [oh, ow] = s.out_hw(h, w).ok_or_else(|| {
        Error::tensor_shape(op, "an input at least as large as the kernel", x.shape())
    })?;
    let n_out = s.out_channels;
    same_shape(op, &[b, n_out, oh, ow], grad_out)?;
    let (cin_g, cout_g) = (c / g, n_out / g);
    let [kh, kw] = s.kernel;
    let wlen = cin_g * kh * kw;
    let (xd, wd, gy) = (x.data(), weight.data(), grad_out.data());
    // Input position read by output pixel (y, x) through kernel tap (ky, kx), if inside.
    let iy_of = |y: usize, ky: usize| {
        let iy = (y * s.stride[0] + ky * s.dilation[0]) as isize - s.padding[0] as isize;
        (iy >= 0 && iy < h as isize).then_some(iy as usize)
    };
    let ix_of = |xo: usize, kx: usize| {
        let ix = (xo * s.stride[1] + kx * s.dilation[1]) as isize - s.padding[1] as isize;
        (ix >= 0 && ix < w as isize).then_some(ix as usize)
    };

    // ∂L/∂x: each sample independently; scatter every output gradient back through its window.
    let mut dx = Tensor::zeros(x.shape());
    dx.data_mut()
        .par_chunks_mut(c * h * w)
        .enumerate()
        .for_each(|(n, dxn)| {
            for grp in 0..g {
                let c0 = grp * cin_g;
                for oo in 0..cout_g {
                    let o = grp * cout_g + oo;
                    let gplane = &gy[(n * n_out + o) * oh * ow..(n * n_out + o + 1) * oh * ow];
                    let wf = &wd[o * wlen..(o + 1) * wlen];
                    for y in 0..oh {
                        for xo in 0..ow {
                            let go = gplane[y * ow + xo];
                            if go == 0.0 {
                                continue;
                            }
                            for ic in 0..cin_g {
                                for ky in 0..kh {
                                    let Some(iy) = iy_of(y, ky) else { continue };
                                    for kx in 0..kw {
                                        let Some(ix) = ix_of(xo, kx) else { continue };
                                        dxn[((c0 + ic) * h + iy) * w + ix] +=
                                            go * wf[(ic * kh + ky) * kw + kx];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });

    // ∂L/∂W: each filter independently; filter o of group o / (N/G) reads that group's channels.
    let mut dw = Tensor::zeros(weight.shape());
    dw.data_mut()
        .par_chunks_mut(wlen)
        .enumerate()
        .for_each(|(o, dwf)| {
            let c0 = (o / cout_g) * cin_g;
            for ic in 0..cin_g {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let mut acc = 0.0f32;
                        for n in 0..b {
                            let gplane = &gy[(n * n_out + o) * oh * ow..];
                            let xplane = &xd[(n * c + c0 + ic) * h * w..];
                            for y in 0..oh {
                                let Some(iy) = iy_of(y, ky) else { continue };
                                for xo in 0..ow {
                                    let Some(ix) = ix_of(xo, kx) else { continue };
                                    acc += gplane[y * ow + xo] * xplane[iy * w + ix];
                                }
                            }
                        }
                        dwf[(ic * kh + ky) * kw + kx] = acc;
                    }
                }
            }
        });

    let bias = s.bias.then(|| {
        Tensor::from_fn(&[n_out], |o| {
            (0..b)
                .map(|n| {
                    gy[(n * n_out + o) * oh * ow..(n * n_out + o + 1) * oh * ow]
                        .iter()
                        .sum::<f32>()
                })
                .sum()
        })
    });
    Ok(ConvGrads {
        input: dx,
        weight: dw,
        bias,
    })
}

/// Gradients of an FLGC layer (straight-through estimator, Wang et al. Eqs. 16–18).
#[derive(Clone, Debug, PartialEq)]
pub struct FlgcGrads {
    /// `∂L/∂x`, through the masked weight `W ⊙ M`.
    pub input: Tensor,
    /// `∂L/∂W = D = ∂L/∂(W ⊙ M)` on every entry (Eq. 16): weights outside today's grouping
    /// keep learning, so a channel that changes group brings trained weights with it.
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

/// Backward of [`cpu::flgc_conv2d`] with the straight-through estimator of Wang et al.
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
    let mask = cpu::flgc_mask(select_in, select_out)?;
    let wm = cpu::masked_weight(weight, &mask)?;
    let dense = Conv2dSpec {
        groups: 1,
        ..s.clone()
    };
    let ConvGrads {
        input,
        weight: d,
        bias,
    } = conv2d_backward(x, &wm, grad_out, &dense)?;
    let [n, c] = mask.dims2("flgc mask")?;
    let [_, g] = select_in.dims2("flgc select_in")?;
    let kk = s.kernel[0] * s.kernel[1];
    let gm = Tensor::from_fn(&[n, c], |i| {
        let dd = &d.data()[i * kk..(i + 1) * kk];
        let ww = &weight.data()[i * kk..(i + 1) * kk];
        dd.iter().zip(ww).map(|(a, b)| a * b).sum()
    });
    let s_grp = cpu::row_argmax(select_in)?;
    let t_grp = cpu::row_argmax(select_out)?;
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
    let select_in_grad = row_softmax_backward(&cpu::row_softmax(select_in)?, &gs_hat)?;
    let select_out_grad = row_softmax_backward(&cpu::row_softmax(select_out)?, &gt_hat)?;
    Ok(FlgcGrads {
        input,
        weight: d,
        bias,
        mask: gm,
        select_in: select_in_grad,
        select_out: select_out_grad,
    })
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

/// Backward of ReLU: `dy` where `x > 0`, else 0 (PyTorch's `threshold_backward`).
pub fn relu_backward(x: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
    same_shape("relu backward", x.shape(), grad_out)?;
    let mut dx = grad_out.clone();
    dx.data_mut().iter_mut().zip(x.data()).for_each(|(d, &xv)| {
        if xv <= 0.0 {
            *d = 0.0
        }
    });
    Ok(dx)
}

/// Backward of max pooling: each output gradient goes to the FIRST maximum of its window in
/// row-major scan order (PyTorch's choice for ties); padding never wins (it acts as −∞).
pub fn max_pool2d_backward(x: &Tensor, p: &Pool2dSpec, grad_out: &Tensor) -> Result<Tensor> {
    let op = "max_pool backward";
    let [b, c, h, w] = x.dims4(op)?;
    let [oh, ow] = p.out_hw(h, w).ok_or_else(|| {
        Error::tensor_shape(op, "an input at least as large as the window", x.shape())
    })?;
    same_shape(op, &[b, c, oh, ow], grad_out)?;
    let mut dx = Tensor::zeros(x.shape());
    for plane in 0..b * c {
        let xin = &x.data()[plane * h * w..(plane + 1) * h * w];
        for y in 0..oh {
            for xo in 0..ow {
                let mut best: Option<(usize, f32)> = None;
                for ky in 0..p.kernel[0] {
                    let iy = (y * p.stride[0] + ky) as isize - p.padding[0] as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    for kx in 0..p.kernel[1] {
                        let ix = (xo * p.stride[1] + kx) as isize - p.padding[1] as isize;
                        if ix < 0 || ix >= w as isize {
                            continue;
                        }
                        let i = iy as usize * w + ix as usize;
                        let v = xin[i];
                        // Strictly greater (or NaN, as PyTorch): the first maximum wins ties.
                        if best.is_none_or(|(_, bv)| v > bv || v.is_nan()) {
                            best = Some((i, v));
                        }
                    }
                }
                if let Some((i, _)) = best {
                    dx.data_mut()[plane * h * w + i] += grad_out.data()[(plane * oh + y) * ow + xo];
                }
            }
        }
    }
    Ok(dx)
}

/// Backward of average pooling with padded zeros counted (`count_include_pad=True`): every
/// in-bounds position of a window receives `dy / (kh·kw)`.
pub fn avg_pool2d_backward(x_shape: &[usize], p: &Pool2dSpec, grad_out: &Tensor) -> Result<Tensor> {
    let op = "avg_pool backward";
    let [b, c, h, w] = match x_shape {
        &[b, c, h, w] => [b, c, h, w],
        _ => return Err(Error::tensor_shape(op, "a 4-D NCHW input shape", x_shape)),
    };
    let [oh, ow] = p.out_hw(h, w).ok_or_else(|| {
        Error::tensor_shape(op, "an input at least as large as the window", x_shape)
    })?;
    same_shape(op, &[b, c, oh, ow], grad_out)?;
    let count = (p.kernel[0] * p.kernel[1]) as f32;
    let mut dx = Tensor::zeros(x_shape);
    for plane in 0..b * c {
        for y in 0..oh {
            for xo in 0..ow {
                let g = grad_out.data()[(plane * oh + y) * ow + xo] / count;
                for ky in 0..p.kernel[0] {
                    let iy = (y * p.stride[0] + ky) as isize - p.padding[0] as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    for kx in 0..p.kernel[1] {
                        let ix = (xo * p.stride[1] + kx) as isize - p.padding[1] as isize;
                        if ix < 0 || ix >= w as isize {
                            continue;
                        }
                        dx.data_mut()[(plane * h + iy as usize) * w + ix as usize] += g;
                    }
                }
            }
        }
    }
    Ok(dx)
}

/// Backward of adaptive average pooling (PyTorch's bin edges `floor(i·n/o) .. ceil((i+1)·n/o)`):
/// each bin spreads its gradient evenly over its inputs (bins may overlap).
pub fn adaptive_avg_pool2d_backward(
    x_shape: &[usize],
    output: [usize; 2],
    grad_out: &Tensor,
) -> Result<Tensor> {
    let op = "adaptive_avg_pool backward";
    let [b, c, h, w] = match x_shape {
        &[b, c, h, w] => [b, c, h, w],
        _ => return Err(Error::tensor_shape(op, "a 4-D NCHW input shape", x_shape)),
    };
    let [oh, ow] = output;
    same_shape(op, &[b, c, oh, ow], grad_out)?;
    let mut dx = Tensor::zeros(x_shape);
    for plane in 0..b * c {
        for y in 0..oh {
            let (y0, y1) = (y * h / oh, ((y + 1) * h).div_ceil(oh));
            for xo in 0..ow {
                let (x0, x1) = (xo * w / ow, ((xo + 1) * w).div_ceil(ow));
                let g =
                    grad_out.data()[(plane * oh + y) * ow + xo] / ((y1 - y0) * (x1 - x0)) as f32;
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        dx.data_mut()[(plane * h + iy) * w + ix] += g;
                    }
                }
            }
        }
    }
    Ok(dx)
}

/// Backward of [`cpu::linear`] (`y = x·Wᵀ + b`): returns `(∂L/∂x = dy·W, ∂L/∂W = dyᵀ·x,
/// ∂L/∂b = Σ_batch dy)` (the bias gradient only when `has_bias`).
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

/// Backward of softmax over the last dimension, from its OUTPUT `y` (`[B, F]`):
/// `∂L/∂x = y ⊙ (dy − ⟨dy, y⟩)` per row.
pub fn softmax_backward(y: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
    y.dims2("softmax backward")?;
    row_softmax_backward(y, grad_out)
}

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
