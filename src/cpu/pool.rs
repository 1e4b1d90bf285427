//! Pooling: max, average (zero padding counted, PyTorch's default) and adaptive average.

use crate::error::{Error, Result};
use crate::graph::Pool2dSpec;
use crate::tensor::Tensor;

fn pool(x: &Tensor, p: &Pool2dSpec, op: &str, max: bool) -> Result<Tensor> {
    let [b, c, h, w] = x.dims4(op)?;
    let [oh, ow] = p.out_hw(h, w).ok_or_else(|| {
        Error::tensor_shape(
            op,
            format!("an input of at least {:?}", p.kernel),
            x.shape(),
        )
    })?;
    let mut out = Tensor::zeros(&[b, c, oh, ow]);
    let count = (p.kernel[0] * p.kernel[1]) as f32;
    for plane in 0..b * c {
        let xin = &x.data()[plane * h * w..(plane + 1) * h * w];
        for y in 0..oh {
            for xo in 0..ow {
                let mut acc = if max { f32::NEG_INFINITY } else { 0.0 };
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
                        let v = xin[iy as usize * w + ix as usize];
                        acc = if max { acc.max(v) } else { acc + v };
                    }
                }
                out.data_mut()[(plane * oh + y) * ow + xo] = if max { acc } else { acc / count };
            }
        }
    }
    Ok(out)
}

/// Max pooling (padding acts as −∞).
pub fn max_pool2d(x: &Tensor, p: &Pool2dSpec) -> Result<Tensor> {
    pool(x, p, "max_pool", true)
}

/// Average pooling; padded zeros count in the divisor (`count_include_pad=True`).
pub fn avg_pool2d(x: &Tensor, p: &Pool2dSpec) -> Result<Tensor> {
    pool(x, p, "avg_pool", false)
}

/// Adaptive average pooling with PyTorch's bin edges: bin `i` of `o` over `n` inputs spans
/// `floor(i·n/o) .. ceil((i+1)·n/o)`.
pub fn adaptive_avg_pool2d(x: &Tensor, output: [usize; 2]) -> Result<Tensor> {
    let [b, c, h, w] = x.dims4("adaptive_avg_pool")?;
    let [oh, ow] = output;
    let mut out = Tensor::zeros(&[b, c, oh, ow]);
    for plane in 0..b * c {
        let xin = &x.data()[plane * h * w..(plane + 1) * h * w];
        for y in 0..oh {
            let (y0, y1) = (y * h / oh, ((y + 1) * h).div_ceil(oh));
            for xo in 0..ow {
                let (x0, x1) = (xo * w / ow, ((xo + 1) * w).div_ceil(ow));
                let mut acc = 0.0;
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        acc += xin[iy * w + ix];
                    }
                }
                out.data_mut()[(plane * oh + y) * ow + xo] = acc / ((y1 - y0) * (x1 - x0)) as f32;
            }
        }
    }
    Ok(out)
}
