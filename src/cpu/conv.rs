//! Convolutions, written the obvious way: explicit loops over batch, group, filter,
//! output pixel, input channel of the group, and kernel window.

use crate::error::{Error, Result};
use crate::graph::{Conv2dSpec, GroupRange};
use crate::tensor::Tensor;
use rayon::prelude::*;

fn check_bias(op: &str, bias: Option<&[f32]>, n: usize) -> Result<()> {
    match bias {
        Some(b) if b.len() != n => Err(Error::tensor_shape(
            op,
            format!("a bias of {n} values"),
            &[b.len()],
        )),
        _ => Ok(()),
    }
}

/// One output plane of a convolution: `acc(oh, ow) = bias + Σ_ic Σ_kh Σ_kw x[c0+ic] · w[ic]`.
/// `x_group` starts at the group's first input channel; `w_filter` is this filter's
/// `[cin_group, kh, kw]` weights.
#[allow(clippy::too_many_arguments)]
fn conv_plane(
    out: &mut [f32],
    x_group: &[f32],
    w_filter: &[f32],
    bias: f32,
    cin_group: usize,
    [h, w]: [usize; 2],
    [oh, ow]: [usize; 2],
    s: &Conv2dSpec,
) {
    let [kh, kw] = s.kernel;
    for y in 0..oh {
        for x in 0..ow {
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
            out[y * ow + x] = acc;
        }
    }
}

/// Grouped 2-D convolution, PyTorch semantics (`torch.nn.functional.conv2d`).
///
/// `x`: `[B, C, H, W]`; `weight`: `[N, C/G, kh, kw]`; `bias`: `[N]`.
/// Filter `o` belongs to group `g = o / (N/G)` and reads input channels
/// `g·(C/G) .. (g+1)·(C/G)`.
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&[f32]>, s: &Conv2dSpec) -> Result<Tensor> {
    let op = "conv2d";
    let [b, c, h, w] = x.dims4(op)?;
    let g = s.groups;
    if c != s.in_channels || g == 0 || c % g != 0 || s.out_channels % g != 0 {
        return Err(Error::tensor_shape(
            op,
            format!(
                "{} input channels divisible by groups {g} (out {})",
                s.in_channels, s.out_channels
            ),
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
    check_bias(op, bias, s.out_channels)?;
    let [oh, ow] = s.out_hw(h, w).ok_or_else(|| {
        Error::tensor_shape(op, "an input at least as large as the kernel", x.shape())
    })?;
    let (cin_g, cout_g) = (c / g, s.out_channels / g);
    let plane = oh * ow;
    let wlen = cin_g * s.kernel[0] * s.kernel[1];
    let mut out = Tensor::zeros(&[b, s.out_channels, oh, ow]);
    out.data_mut()
        .par_chunks_mut(plane)
        .enumerate()
        .for_each(|(idx, out_plane)| {
            let (n, o) = (idx / s.out_channels, idx % s.out_channels);
            let group = o / cout_g;
            let c0 = group * cin_g;
            let x_group = &x.data()[((n * c + c0) * h) * w..((n * c + c0 + cin_g) * h) * w];
            let w_filter = &weight.data()[o * wlen..(o + 1) * wlen];
            let bv = bias.map_or(0.0, |bb| bb[o]);
            conv_plane(out_plane, x_group, w_filter, bv, cin_g, [h, w], [oh, ow], s);
        });
    Ok(out)
}

/// Grouped convolution with uneven contiguous groups (the exported FLGC layer).
///
/// `weight` is packed group after group: group `g` stores its `out_len` filters of
/// `[in_len, kh, kw]` one after another.
pub fn grouped_conv_table(
    x: &Tensor,
    weight: &[f32],
    bias: Option<&[f32]>,
    s: &Conv2dSpec,
    table: &[GroupRange],
) -> Result<Tensor> {
    let op = "grouped_conv_table";
    let [b, c, h, w] = x.dims4(op)?;
    if c != s.in_channels {
        return Err(Error::tensor_shape(
            op,
            format!("{} channels", s.in_channels),
            x.shape(),
        ));
    }
    let kk = s.kernel[0] * s.kernel[1];
    let need: usize = table.iter().map(|g| g.out_len * g.in_len * kk).sum();
    if weight.len() != need {
        return Err(Error::tensor_shape(
            op,
            format!("a packed weight of {need} values"),
            &[weight.len()],
        ));
    }
    check_bias(op, bias, s.out_channels)?;
    let [oh, ow] = s.out_hw(h, w).ok_or_else(|| {
        Error::tensor_shape(op, "an input at least as large as the kernel", x.shape())
    })?;
    // Where each output channel's filter starts in the packed weight, and its group.
    // The table is checked here too (not only by graph building): a group outside the
    // channels would index out of bounds, and an output channel in no group would silently
    // reuse filter 0.
    let mut filter_of = vec![None; s.out_channels];
    let mut off = 0;
    for (gi, g) in table.iter().enumerate() {
        if g.in_start + g.in_len > c
            || g.out_start + g.out_len > s.out_channels
            || (g.out_len > 0 && g.in_len == 0)
        {
            return Err(Error::tensor_shape(
                op,
                format!(
                    "group {gi} {g:?} within {c} input and {} output channels, with inputs",
                    s.out_channels
                ),
                x.shape(),
            ));
        }
        for j in 0..g.out_len {
            if filter_of[g.out_start + j].is_some() {
                return Err(Error::tensor_shape(
                    op,
                    format!("output channel {} in one group only", g.out_start + j),
                    x.shape(),
                ));
            }
            filter_of[g.out_start + j] = Some((off + j * g.in_len * kk, gi));
        }
        off += g.out_len * g.in_len * kk;
    }
    let filter_of = filter_of
        .into_iter()
        .enumerate()
        .map(|(o, f)| {
            f.ok_or_else(|| {
                Error::tensor_shape(op, format!("output channel {o} in a group"), x.shape())
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = Tensor::zeros(&[b, s.out_channels, oh, ow]);
    out.data_mut()
        .par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(idx, out_plane)| {
            let (n, o) = (idx / s.out_channels, idx % s.out_channels);
            let (woff, gi) = filter_of[o];
            let grp = &table[gi];
            let x_group = &x.data()
                [((n * c + grp.in_start) * h) * w..((n * c + grp.in_start + grp.in_len) * h) * w];
            let w_filter = &weight[woff..woff + grp.in_len * kk];
            let bv = bias.map_or(0.0, |bb| bb[o]);
            conv_plane(
                out_plane,
                x_group,
                w_filter,
                bv,
                grp.in_len,
                [h, w],
                [oh, ow],
                s,
            );
        });
    Ok(out)
}
