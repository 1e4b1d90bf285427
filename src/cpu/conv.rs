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

/// Grouped convolution with uneven contiguous groups and identity channel order
/// (see [`grouped_conv_indexed`]).
pub fn grouped_conv_table(
    x: &Tensor,
    weight: &[f32],
    bias: Option<&[f32]>,
    s: &Conv2dSpec,
    table: &[GroupRange],
) -> Result<Tensor> {
    let in_index: Vec<usize> = (0..s.in_channels).collect();
    let out_index: Vec<usize> = (0..s.out_channels).collect();
    grouped_conv_indexed(x, weight, bias, s, table, &in_index, &out_index)
}

/// Grouped convolution with uneven groups addressed through index lists (exported FLGC).
///
/// Group `g` reads input channels `in_index[in_start + i]` (`i < in_len`) and writes output
/// channels `out_index[out_start + j]` (`j < out_len`). `weight` is packed group after group:
/// group `g` stores its `out_len` filters of `[in_len, kh, kw]` one after another.
#[allow(clippy::too_many_arguments)]
pub fn grouped_conv_indexed(
    x: &Tensor,
    weight: &[f32],
    bias: Option<&[f32]>,
    s: &Conv2dSpec,
    table: &[GroupRange],
    in_index: &[usize],
    out_index: &[usize],
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
    let bad_in = table.iter().any(|g| g.in_start + g.in_len > in_index.len())
        || in_index.iter().any(|&i| i >= c);
    let bad_out = table
        .iter()
        .any(|g| g.out_start + g.out_len > out_index.len())
        || out_index.len() != s.out_channels
        || out_index.iter().any(|&o| o >= s.out_channels);
    if bad_in || bad_out {
        return Err(Error::tensor_shape(
            op,
            "a group table within its index lists",
            &[table.len()],
        ));
    }
    check_bias(op, bias, s.out_channels)?;
    let [oh, ow] = s.out_hw(h, w).ok_or_else(|| {
        Error::tensor_shape(op, "an input at least as large as the kernel", x.shape())
    })?;
    // For each physical output channel: its group and its filter's offset in the packed weight.
    // Every output channel must be written by exactly one group (a group may have filters
    // and no inputs: its outputs are then the bias alone).
    let mut filter_of = vec![None; s.out_channels];
    let mut off = 0;
    for (gi, g) in table.iter().enumerate() {
        for j in 0..g.out_len {
            let o = out_index[g.out_start + j];
            if filter_of[o].is_some() {
                return Err(Error::tensor_shape(
                    op,
                    format!("output channel {o} in one group only"),
                    &[table.len()],
                ));
            }
            filter_of[o] = Some((off + j * g.in_len * kk, gi));
        }
        off += g.out_len * g.in_len * kk;
    }
    if let Some(o) = filter_of.iter().position(|f| f.is_none()) {
        return Err(Error::tensor_shape(
            op,
            format!("output channel {o} in a group"),
            &[table.len()],
        ));
    }
    let mut out = Tensor::zeros(&[b, s.out_channels, oh, ow]);
    let plane = h * w;
    out.data_mut()
        .par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(idx, out_plane)| {
            let (n, o) = (idx / s.out_channels, idx % s.out_channels);
            let bv = bias.map_or(0.0, |bb| bb[o]);
            let (woff, gi) = filter_of[o].expect("every output channel checked above");
            let grp = &table[gi];
            // Gather the group's input planes in group order, then convolve them.
            let mut x_group = Vec::with_capacity(grp.in_len * plane);
            for i in 0..grp.in_len {
                let ch = in_index[grp.in_start + i];
                x_group
                    .extend_from_slice(&x.data()[(n * c + ch) * plane..(n * c + ch + 1) * plane]);
            }
            let w_filter = &weight[woff..woff + grp.in_len * kk];
            conv_plane(
                out_plane,
                &x_group,
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
