//! Grouped 2-D convolution (dense, grouped, depthwise, pointwise): hyper-parameters, shape
//! rule, cost, and the CPU forward and backward, written the obvious way — explicit loops over
//! batch, group, filter, output pixel, input channel of the group, and kernel window.

use super::{check_bias, chw, prod_u64, same_shape, Backward, Init, OpCost, OpDef, ParamDecl};
use super::{ParamRole, Params};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Hyper-parameters of a 2-D convolution (`groups` = 1 dense, = C depthwise).
///
/// Weight layout is PyTorch's: `[out_channels, in_channels / groups, kh, kw]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conv2dSpec {
    /// Input channels C.
    pub in_channels: usize,
    /// Output channels (filters) N.
    pub out_channels: usize,
    /// Kernel `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride `[sh, sw]`.
    pub stride: [usize; 2],
    /// Zero padding `[ph, pw]` on each side.
    pub padding: [usize; 2],
    /// Dilation `[dh, dw]`.
    pub dilation: [usize; 2],
    /// Number of groups G; C and N must both be divisible by G.
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Conv2dSpec {
    /// A square `k×k` convolution with stride `s`, padding `p`, dilation 1.
    pub fn square(in_channels: usize, out_channels: usize, k: usize, s: usize, p: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel: [k, k],
            stride: [s, s],
            padding: [p, p],
            dilation: [1, 1],
            groups: 1,
            bias: false,
        }
    }

    /// Builder: set the number of groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    /// Builder: set whether there is a bias.
    pub fn bias(mut self, b: bool) -> Self {
        self.bias = b;
        self
    }

    /// Output spatial size for an `h × w` input (None if the window does not fit or a size
    /// overflows).
    pub fn out_hw(&self, h: usize, w: usize) -> Option<[usize; 2]> {
        let o = |x: usize, i: usize| {
            let span = self.dilation[i]
                .checked_mul(self.kernel[i].checked_sub(1)?)?
                .checked_add(1)?;
            let padded = x.checked_add(self.padding[i].checked_mul(2)?)?;
            (padded >= span && self.stride[i] > 0).then(|| (padded - span) / self.stride[i] + 1)
        };
        Some([o(h, 0)?, o(w, 1)?])
    }

    /// Shape of the weight tensor, `[N, C/G, kh, kw]`.
    pub fn weight_shape(&self) -> Vec<usize> {
        vec![
            self.out_channels,
            self.in_channels / self.groups.max(1),
            self.kernel[0],
            self.kernel[1],
        ]
    }

    /// `kh · kw`.
    pub fn window(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    /// The Kaiming-normal (fan-out, ReLU) standard deviation torchvision initialises with.
    pub(crate) fn kaiming_std(&self) -> f32 {
        let fan_out = self.out_channels * self.window() / self.groups.max(1);
        (2.0 / fan_out.max(1) as f32).sqrt()
    }

    /// Checks the hyper-parameters against `c` input channels (FLGC layers need not divide
    /// their channels by G).
    pub(crate) fn check(&self, layer: &str, c: usize, divisible: bool) -> Result<()> {
        if c != self.in_channels {
            return Err(Error::shape(
                layer,
                format!("expects {} input channels, got {c}", self.in_channels),
            ));
        }
        if self.groups == 0 {
            return Err(Error::shape(layer, "groups must be at least 1"));
        }
        if self.in_channels == 0 || self.out_channels == 0 {
            return Err(Error::shape(layer, "channels must be at least 1"));
        }
        if self.kernel.contains(&0) || self.stride.contains(&0) || self.dilation.contains(&0) {
            return Err(Error::shape(
                layer,
                "kernel, stride and dilation must be at least 1",
            ));
        }
        if divisible {
            for (what, n) in [
                ("in_channels", self.in_channels),
                ("out_channels", self.out_channels),
            ] {
                if n % self.groups != 0 {
                    return Err(Error::shape(
                        layer,
                        format!("{what} {n} not divisible by groups {}", self.groups),
                    ));
                }
            }
        } else if self.groups > self.in_channels.max(self.out_channels) {
            return Err(Error::shape(
                layer,
                format!(
                    "groups {} exceed both channel counts ({} in, {} out)",
                    self.groups, self.in_channels, self.out_channels
                ),
            ));
        }
        Ok(())
    }

    /// The per-sample output shape `[N, OH, OW]` for an `h × w` input.
    pub(crate) fn out_shape(&self, layer: &str, h: usize, w: usize) -> Result<Vec<usize>> {
        let [oh, ow] = self.window_out_hw(layer, [h, w])?;
        Ok(vec![self.out_channels, oh, ow])
    }

    /// The output `[oh, ow]` if the dilated window fits the padded `[h, w]` input.
    fn window_out_hw(&self, layer: &str, [h, w]: [usize; 2]) -> Result<[usize; 2]> {
        self.out_hw(h, w).ok_or_else(|| {
            Error::shape(
                layer,
                format!(
                    "kernel {:?} (dilation {:?}) does not fit a {h}×{w} input padded by {:?}",
                    self.kernel, self.dilation, self.padding
                ),
            )
        })
    }

    /// **The** check of a convolution's geometry — the op's shape rule, the CPU reference and
    /// every GPU kernel call it: positive channels, groups, kernel, stride and dilation; when
    /// `even`, groups that divide both channel counts (an exported FLGC table's groups are
    /// uneven and need not); a dilated window that fits the padded `[h, w]` input. Returns
    /// the output `[oh, ow]`; errors name `layer`.
    pub fn checked_out_hw(&self, layer: &str, in_hw: [usize; 2], even: bool) -> Result<[usize; 2]> {
        if even {
            self.check(layer, self.in_channels, true)?;
        } else if self.groups == 0 || self.in_channels == 0 || self.out_channels == 0 {
            return Err(Error::shape(
                layer,
                "groups and channels must be at least 1",
            ));
        }
        if self.kernel.contains(&0) || self.stride.contains(&0) || self.dilation.contains(&0) {
            return Err(Error::shape(
                layer,
                "kernel, stride and dilation must be at least 1",
            ));
        }
        self.window_out_hw(layer, in_hw)
    }

    /// Weight and optional bias declarations for a weight of `shape`.
    pub(crate) fn weight_params(&self, shape: Vec<usize>) -> Vec<ParamDecl> {
        let mut v = vec![ParamDecl::new(
            "weight",
            shape,
            Init::Normal(self.kaiming_std()),
            ParamRole::Decayed,
        )];
        if self.bias {
            v.push(ParamDecl::new(
                "bias",
                vec![self.out_channels],
                Init::Zeros,
                ParamRole::Decayed,
            ));
        }
        v
    }

    /// Cost of a conv with `weights` filter values per sample-independent weight tensor.
    pub(crate) fn cost_of(&self, weights: u64, out: &[usize]) -> OpCost {
        OpCost {
            macs: weights.saturating_mul(prod_u64(&out[1..])),
            params: weights
                + if self.bias {
                    self.out_channels as u64
                } else {
                    0
                },
            train_only_params: 0,
        }
    }
}

impl OpDef for Conv2dSpec {
    fn kind(&self) -> &'static str {
        "conv2d"
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        let [c, h, w] = chw(layer, self.kind(), ins[0])?;
        self.check(layer, c, true)?;
        self.out_shape(layer, h, w)
    }
    fn params(&self) -> Vec<ParamDecl> {
        self.weight_params(self.weight_shape())
    }
    fn cost(&self, _ins: &[&[usize]], out: &[usize]) -> OpCost {
        let per_filter = (self.in_channels / self.groups.max(1) * self.window()) as u64;
        self.cost_of(self.out_channels as u64 * per_filter, out)
    }
    fn forward(&self, p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        conv2d(ins[0], p.get("weight")?, p.opt("bias", self.bias)?, self)
    }
    fn backward(
        &self,
        p: &Params<'_>,
        ins: &[&Tensor],
        _out: &Tensor,
        _saved: &super::Saved,
        gy: Tensor,
    ) -> Result<Backward> {
        let g = conv2d_backward(ins[0], p.get("weight")?, &gy, self)?;
        let mut params = vec![("weight", g.weight)];
        if let Some(b) = g.bias {
            params.push(("bias", b));
        }
        Ok(Backward {
            inputs: vec![g.input],
            params,
        })
    }
}

/// One output plane of a convolution: `acc(oh, ow) = bias + Σ_ic Σ_kh Σ_kw x[ic] · w[ic]`.
/// `x_group` holds the group's input planes (`[cin_group, h, w]`); `w_filter` is this
/// filter's `[cin_group, kh, kw]` weights.
pub(crate) fn conv_plane(
    out: &mut [f32],
    x_group: &[f32],
    w_filter: &[f32],
    bias: f32,
    [h, w]: [usize; 2],
    s: &Conv2dSpec,
) {
    let [kh, kw] = s.kernel;
    let cin_group = w_filter.len() / (kh * kw);
    let ow = s.out_hw(h, w).map_or(0, |[_, ow]| ow);
    for (y, row) in out.chunks_mut(ow.max(1)).enumerate() {
        for (x, o) in row.iter_mut().enumerate() {
            let mut acc = bias;
            for ic in 0..cin_group {
                for ky in 0..kh {
                    let iy =
                        (y * s.stride[0] + ky * s.dilation[0]) as isize - s.padding[0] as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    for kx in 0..kw {
                        let ix =
                            (x * s.stride[1] + kx * s.dilation[1]) as isize - s.padding[1] as isize;
                        if ix < 0 || ix >= w as isize {
                            continue;
                        }
                        let xv = x_group[(ic * h + iy as usize) * w + ix as usize];
                        let wv = w_filter[(ic * kh + ky) * kw + kx];
                        acc += xv * wv;
                    }
                }
            }
            *o = acc;
        }
    }
}

/// `[B, C, H, W]` input checked against `s`, and the output size.
fn check_input(op: &str, x: &Tensor, s: &Conv2dSpec) -> Result<([usize; 4], [usize; 2])> {
    let [b, c, h, w] = x.dims4(op)?;
    if c != s.in_channels {
        return Err(Error::tensor_shape(
            op,
            format!("{} input channels", s.in_channels),
            x.shape(),
        ));
    }
    // The one geometry check, reported as this tensor's shape error.
    let ohw = s.checked_out_hw(op, [h, w], true).map_err(|e| {
        let why = match e {
            Error::Shape { msg, .. } => msg,
            e => e.to_string(),
        };
        Error::tensor_shape(
            op,
            format!("an input this layer can run ({why})"),
            x.shape(),
        )
    })?;
    Ok(([b, c, h, w], ohw))
}

fn check_weight(op: &str, weight: &Tensor, s: &Conv2dSpec) -> Result<()> {
    if weight.shape() != s.weight_shape() {
        return Err(Error::tensor_shape(
            op,
            format!("weight {:?}", s.weight_shape()),
            weight.shape(),
        ));
    }
    Ok(())
}

/// Grouped 2-D convolution, PyTorch semantics (`torch.nn.functional.conv2d`).
///
/// `x`: `[B, C, H, W]`; `weight`: `[N, C/G, kh, kw]`; `bias`: `[N]`.
/// Filter `o` belongs to group `g = o / (N/G)` and reads input channels
/// `g·(C/G) .. (g+1)·(C/G)`.
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&[f32]>, s: &Conv2dSpec) -> Result<Tensor> {
    let op = "conv2d";
    let ([b, c, h, w], [oh, ow]) = check_input(op, x, s)?;
    check_weight(op, weight, s)?;
    check_bias(op, bias, s.out_channels)?;
    let g = s.groups;
    let (cin_g, cout_g) = (c / g, s.out_channels / g);
    let wlen = cin_g * s.window();
    let mut out = Tensor::zeros(&[b, s.out_channels, oh, ow]);
    out.data_mut()
        .par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(idx, out_plane)| {
            let (n, o) = (idx / s.out_channels, idx % s.out_channels);
            let c0 = (o / cout_g) * cin_g;
            let x_group = &x.data()[((n * c + c0) * h) * w..((n * c + c0 + cin_g) * h) * w];
            let w_filter = &weight.data()[o * wlen..(o + 1) * wlen];
            let bv = bias.map_or(0.0, |bb| bb[o]);
            conv_plane(out_plane, x_group, w_filter, bv, [h, w], s);
        });
    Ok(out)
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

/// Backward of [`conv2d`] (grouped, depthwise, pointwise, dense; any stride, padding,
/// dilation). `x`: `[B, C, H, W]`; `weight`: `[N, C/G, kh, kw]`; `grad_out`: `[B, N, OH, OW]`.
/// Reductions run in a fixed order, so results are bit-for-bit reproducible.
pub fn conv2d_backward(
    x: &Tensor,
    weight: &Tensor,
    grad_out: &Tensor,
    s: &Conv2dSpec,
) -> Result<ConvGrads> {
    let op = "conv2d backward";
    let ([b, c, h, w], [oh, ow]) = check_input(op, x, s)?;
    check_weight(op, weight, s)?;
    let (g, n_out) = (s.groups, s.out_channels);
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
            for o in 0..n_out {
                let c0 = (o / cout_g) * cin_g;
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
