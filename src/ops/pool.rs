//! Pooling: max, average (zero padding counted, PyTorch's default) and adaptive average;
//! shape rules, CPU forward and backward.

use super::{chw, same_shape, Backward, OpDef, Params, Saved};
use crate::error::{Error, Result};
use crate::limits;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Hyper-parameters of a 2-D pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool2dSpec {
    /// Window `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride `[sh, sw]`.
    pub stride: [usize; 2],
    /// Padding `[ph, pw]` (max: padded with −∞; avg: zeros, counted like PyTorch's default).
    pub padding: [usize; 2],
}

impl Pool2dSpec {
    /// A square window.
    pub fn square(k: usize, s: usize, p: usize) -> Self {
        Self {
            kernel: [k, k],
            stride: [s, s],
            padding: [p, p],
        }
    }

    /// Output spatial size (floor mode), None if the window does not fit or a size overflows.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<[usize; 2]> {
        let o = |x: usize, i: usize| {
            let padded = x.checked_add(self.padding[i].checked_mul(2)?)?;
            (padded >= self.kernel[i] && self.stride[i] > 0)
                .then(|| (padded - self.kernel[i]) / self.stride[i] + 1)
        };
        Some([o(h, 0)?, o(w, 1)?])
    }

    fn infer(&self, layer: &str, kind: &str, s: &[usize]) -> Result<Vec<usize>> {
        let [c, h, w] = chw(layer, kind, s)?;
        if self.kernel.contains(&0) || self.stride.contains(&0) {
            return Err(Error::shape(
                layer,
                "pool kernel and stride must be at least 1",
            ));
        }
        if self.padding[0] > self.kernel[0] / 2 || self.padding[1] > self.kernel[1] / 2 {
            return Err(Error::shape(
                layer,
                "pool padding must be at most half the kernel",
            ));
        }
        let [oh, ow] = self.out_hw(h, w).ok_or_else(|| {
            Error::shape(
                layer,
                format!("pool window {:?} does not fit a {h}×{w} input", self.kernel),
            )
        })?;
        Ok(vec![c, oh, ow])
    }
}

/// Max pooling (padding acts as −∞).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MaxPool(pub Pool2dSpec);

/// Average pooling (zero padding counted in the divisor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AvgPool(pub Pool2dSpec);

/// Adaptive average pooling to a fixed output size (PyTorch's bin edges).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdaptiveAvgPool {
    /// `[oh, ow]`.
    pub output: [usize; 2],
}

impl OpDef for MaxPool {
    fn kind(&self) -> &'static str {
        "max_pool"
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        self.0.infer(layer, self.kind(), ins[0])
    }
    fn forward(&self, _p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        max_pool2d(ins[0], &self.0)
    }
    fn backward(
        &self,
        _p: &Params<'_>,
        ins: &[&Tensor],
        _out: &Tensor,
        _saved: &Saved,
        gy: Tensor,
    ) -> Result<Backward> {
        Ok(Backward::inputs(vec![max_pool2d_backward(
            ins[0], &self.0, &gy,
        )?]))
    }
}

impl OpDef for AvgPool {
    fn kind(&self) -> &'static str {
        "avg_pool"
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        self.0.infer(layer, self.kind(), ins[0])
    }
    fn forward(&self, _p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        avg_pool2d(ins[0], &self.0)
    }
    fn backward(
        &self,
        _p: &Params<'_>,
        ins: &[&Tensor],
        _out: &Tensor,
        _saved: &Saved,
        gy: Tensor,
    ) -> Result<Backward> {
        Ok(Backward::inputs(vec![avg_pool2d_backward(
            ins[0].shape(),
            &self.0,
            &gy,
        )?]))
    }
}

impl OpDef for AdaptiveAvgPool {
    fn kind(&self) -> &'static str {
        "adaptive_avg_pool"
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        let [c, h, w] = chw(layer, self.kind(), ins[0])?;
        if self.output.contains(&0) || h == 0 || w == 0 {
            return Err(Error::shape(
                layer,
                "adaptive pool sizes must be at least 1",
            ));
        }
        let [oh, ow] = self.output;
        if oh
            .checked_mul(ow)
            .is_none_or(|n| n > limits::MAX_PLANE.as_usize())
        {
            let what = format!("adaptive pool output {oh}×{ow}");
            return Err(Error::shape(
                layer,
                limits::MAX_PLANE.exceeded(&what, "more"),
            ));
        }
        Ok(vec![c, oh, ow])
    }
    fn forward(&self, _p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        adaptive_avg_pool2d(ins[0], self.output)
    }
    fn backward(
        &self,
        _p: &Params<'_>,
        ins: &[&Tensor],
        _out: &Tensor,
        _saved: &Saved,
        gy: Tensor,
    ) -> Result<Backward> {
        Ok(Backward::inputs(vec![adaptive_avg_pool2d_backward(
            ins[0].shape(),
            self.output,
            &gy,
        )?]))
    }
}

/// The `[B, C, H, W]` of an input and the pooled size, or an error naming `op`.
fn pool_dims(op: &str, x_shape: &[usize], p: &Pool2dSpec) -> Result<([usize; 4], [usize; 2])> {
    let [b, c, h, w] = match *x_shape {
        [b, c, h, w] => [b, c, h, w],
        _ => return Err(Error::tensor_shape(op, "a 4-D NCHW input", x_shape)),
    };
    let ohw = p.out_hw(h, w).ok_or_else(|| {
        Error::tensor_shape(op, format!("an input of at least {:?}", p.kernel), x_shape)
    })?;
    Ok(([b, c, h, w], ohw))
}

/// Calls `f(oy, ox, flat input index)` for every in-bounds position of every window.
fn for_each_window(
    p: &Pool2dSpec,
    [h, w]: [usize; 2],
    [oh, ow]: [usize; 2],
    mut f: impl FnMut(usize, usize, usize),
) {
    for y in 0..oh {
        for xo in 0..ow {
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
                    f(y, xo, iy as usize * w + ix as usize);
                }
            }
        }
    }
}

/// Max pooling (padding acts as −∞); NaN propagates as in PyTorch.
pub fn max_pool2d(x: &Tensor, p: &Pool2dSpec) -> Result<Tensor> {
    let ([b, c, h, w], [oh, ow]) = pool_dims("max_pool", x.shape(), p)?;
    let mut out = Tensor::from_fn(&[b, c, oh, ow], |_| f32::NEG_INFINITY);
    for plane in 0..b * c {
        let xin = &x.data()[plane * h * w..(plane + 1) * h * w];
        let o = &mut out.data_mut()[plane * oh * ow..(plane + 1) * oh * ow];
        for_each_window(p, [h, w], [oh, ow], |y, xo, i| {
            let (acc, v) = (&mut o[y * ow + xo], xin[i]);
            if v > *acc || v.is_nan() {
                *acc = v;
            }
        });
    }
    Ok(out)
}

/// Average pooling; padded zeros count in the divisor (`count_include_pad=True`).
pub fn avg_pool2d(x: &Tensor, p: &Pool2dSpec) -> Result<Tensor> {
    let ([b, c, h, w], [oh, ow]) = pool_dims("avg_pool", x.shape(), p)?;
    let count = (p.kernel[0] * p.kernel[1]) as f32;
    let mut out = Tensor::zeros(&[b, c, oh, ow]);
    for plane in 0..b * c {
        let xin = &x.data()[plane * h * w..(plane + 1) * h * w];
        let o = &mut out.data_mut()[plane * oh * ow..(plane + 1) * oh * ow];
        for_each_window(p, [h, w], [oh, ow], |y, xo, i| o[y * ow + xo] += xin[i]);
        o.iter_mut().for_each(|v| *v /= count);
    }
    Ok(out)
}

/// PyTorch's adaptive bin edges: bin `i` of `o` over `n` inputs spans
/// `floor(i·n/o) .. ceil((i+1)·n/o)`.
fn bin(i: usize, n: usize, o: usize) -> std::ops::Range<usize> {
    i * n / o..((i + 1) * n).div_ceil(o)
}

/// Adaptive average pooling with PyTorch's bin edges.
pub fn adaptive_avg_pool2d(x: &Tensor, output: [usize; 2]) -> Result<Tensor> {
    let [b, c, h, w] = x.dims4("adaptive_avg_pool")?;
    let [oh, ow] = output;
    let mut out = Tensor::zeros(&[b, c, oh, ow]);
    for plane in 0..b * c {
        let xin = &x.data()[plane * h * w..(plane + 1) * h * w];
        for y in 0..oh {
            let ys = bin(y, h, oh);
            for xo in 0..ow {
                let xs = bin(xo, w, ow);
                let mut acc = 0.0;
                for iy in ys.clone() {
                    for ix in xs.clone() {
                        acc += xin[iy * w + ix];
                    }
                }
                out.data_mut()[(plane * oh + y) * ow + xo] = acc / (ys.len() * xs.len()) as f32;
            }
        }
    }
    Ok(out)
}

/// Backward of max pooling: each output gradient goes to the FIRST maximum of its window in
/// row-major scan order (PyTorch's choice for ties); padding never wins (it acts as −∞).
pub fn max_pool2d_backward(x: &Tensor, p: &Pool2dSpec, grad_out: &Tensor) -> Result<Tensor> {
    let op = "max_pool backward";
    let ([b, c, h, w], [oh, ow]) = pool_dims(op, x.shape(), p)?;
    same_shape(op, &[b, c, oh, ow], grad_out)?;
    let mut dx = Tensor::zeros(x.shape());
    let mut best: Vec<Option<(usize, f32)>> = vec![None; oh * ow];
    for plane in 0..b * c {
        let xin = &x.data()[plane * h * w..(plane + 1) * h * w];
        best.fill(None);
        for_each_window(p, [h, w], [oh, ow], |y, xo, i| {
            let (slot, v) = (&mut best[y * ow + xo], xin[i]);
            // Strictly greater (or NaN, as PyTorch): the first maximum wins ties.
            if slot.is_none_or(|(_, bv)| v > bv || v.is_nan()) {
                *slot = Some((i, v));
            }
        });
        for (k, b) in best.iter().enumerate() {
            if let Some((i, _)) = b {
                dx.data_mut()[plane * h * w + i] += grad_out.data()[plane * oh * ow + k];
            }
        }
    }
    Ok(dx)
}

/// Backward of average pooling with padded zeros counted (`count_include_pad=True`): every
/// in-bounds position of a window receives `dy / (kh·kw)`.
pub fn avg_pool2d_backward(x_shape: &[usize], p: &Pool2dSpec, grad_out: &Tensor) -> Result<Tensor> {
    let op = "avg_pool backward";
    let ([b, c, h, w], [oh, ow]) = pool_dims(op, x_shape, p)?;
    same_shape(op, &[b, c, oh, ow], grad_out)?;
    let count = (p.kernel[0] * p.kernel[1]) as f32;
    let mut dx = Tensor::zeros(x_shape);
    for plane in 0..b * c {
        let g = &grad_out.data()[plane * oh * ow..(plane + 1) * oh * ow];
        let d = &mut dx.data_mut()[plane * h * w..(plane + 1) * h * w];
        for_each_window(p, [h, w], [oh, ow], |y, xo, i| {
            d[i] += g[y * ow + xo] / count
        });
    }
    Ok(dx)
}

/// Backward of adaptive average pooling: each bin spreads its gradient evenly over its inputs
/// (bins may overlap).
pub fn adaptive_avg_pool2d_backward(
    x_shape: &[usize],
    output: [usize; 2],
    grad_out: &Tensor,
) -> Result<Tensor> {
    let op = "adaptive_avg_pool backward";
    let [b, c, h, w] = match *x_shape {
        [b, c, h, w] => [b, c, h, w],
        _ => return Err(Error::tensor_shape(op, "a 4-D NCHW input shape", x_shape)),
    };
    let [oh, ow] = output;
    same_shape(op, &[b, c, oh, ow], grad_out)?;
    let mut dx = Tensor::zeros(x_shape);
    for plane in 0..b * c {
        for y in 0..oh {
            let ys = bin(y, h, oh);
            for xo in 0..ow {
                let xs = bin(xo, w, ow);
                let g = grad_out.data()[(plane * oh + y) * ow + xo] / (ys.len() * xs.len()) as f32;
                for iy in ys.clone() {
                    for ix in xs.clone() {
                        dx.data_mut()[(plane * h + iy) * w + ix] += g;
                    }
                }
            }
        }
    }
    Ok(dx)
}
