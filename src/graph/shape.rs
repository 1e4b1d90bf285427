//! Shape inference and hyper-parameter checks, one arm per op.

use super::op::{Conv2dSpec, Op};
use crate::error::{Error, Result};

fn chw(layer: &str, op: &Op, s: &[usize]) -> Result<[usize; 3]> {
    match *s {
        [c, h, w] => Ok([c, h, w]),
        _ => Err(Error::shape(
            layer,
            format!("{} needs a [C, H, W] input, got {s:?}", op.kind()),
        )),
    }
}

fn check_conv(layer: &str, s: &Conv2dSpec, c: usize, flgc: bool) -> Result<()> {
    if c != s.in_channels {
        return Err(Error::shape(
            layer,
            format!("expects {} input channels, got {c}", s.in_channels),
        ));
    }
    if s.groups == 0 {
        return Err(Error::shape(layer, "groups must be at least 1"));
    }
    if s.in_channels == 0 || s.out_channels == 0 {
        return Err(Error::shape(layer, "channels must be at least 1"));
    }
    if s.kernel.contains(&0) || s.stride.contains(&0) || s.dilation.contains(&0) {
        return Err(Error::shape(
            layer,
            "kernel, stride and dilation must be at least 1",
        ));
    }
    if !flgc {
        if s.in_channels % s.groups != 0 {
            return Err(Error::shape(
                layer,
                format!(
                    "in_channels {} not divisible by groups {}",
                    s.in_channels, s.groups
                ),
            ));
        }
        if s.out_channels % s.groups != 0 {
            return Err(Error::shape(
                layer,
                format!(
                    "out_channels {} not divisible by groups {}",
                    s.out_channels, s.groups
                ),
            ));
        }
    }
    Ok(())
}

fn conv_out(layer: &str, s: &Conv2dSpec, h: usize, w: usize) -> Result<Vec<usize>> {
    let [oh, ow] = s.out_hw(h, w).ok_or_else(|| {
        Error::shape(
            layer,
            format!(
                "kernel {:?} (dilation {:?}) does not fit a {h}×{w} input padded by {:?}",
                s.kernel, s.dilation, s.padding
            ),
        )
    })?;
    Ok(vec![s.out_channels, oh, ow])
}

/// Infers the per-sample output shape of `op` applied to inputs of shapes `ins`.
pub(crate) fn infer(layer: &str, op: &Op, ins: &[&[usize]]) -> Result<Vec<usize>> {
    match op {
        Op::Input { shape } => Ok(shape.to_vec()),
        Op::Conv2d(s) => {
            let [c, h, w] = chw(layer, op, ins[0])?;
            check_conv(layer, s, c, false)?;
            conv_out(layer, s, h, w)
        }
        Op::FlgcConv2d(s) => {
            let [c, h, w] = chw(layer, op, ins[0])?;
            check_conv(layer, s, c, true)?;
            conv_out(layer, s, h, w)
        }
        Op::GroupedConvTable {
            spec,
            table,
            in_index,
            out_index,
        } => {
            let [c, h, w] = chw(layer, op, ins[0])?;
            if c != spec.in_channels {
                return Err(Error::shape(
                    layer,
                    format!("expects {} input channels, got {c}", spec.in_channels),
                ));
            }
            if let Some(&bad) = in_index.iter().find(|&&i| i >= c) {
                return Err(Error::shape(
                    layer,
                    format!("in_index names channel {bad} of {c}"),
                ));
            }
            if out_index.len() != spec.out_channels {
                return Err(Error::shape(
                    layer,
                    format!(
                        "out_index has {} entries for {} outputs",
                        out_index.len(),
                        spec.out_channels
                    ),
                ));
            }
            let mut covered = vec![false; spec.out_channels];
            for &o in out_index {
                if o >= spec.out_channels || covered[o] {
                    return Err(Error::shape(
                        layer,
                        format!("out_index is not a permutation (channel {o})"),
                    ));
                }
                covered[o] = true;
            }
            let mut next_out = 0;
            for (gi, g) in table.iter().enumerate() {
                if g.in_start + g.in_len > in_index.len() || g.out_start != next_out {
                    return Err(Error::shape(
                        layer,
                        format!("group {gi} {g:?} does not fit the index lists (or leaves a gap)"),
                    ));
                }
                next_out += g.out_len;
            }
            if next_out != spec.out_channels {
                return Err(Error::shape(
                    layer,
                    format!(
                        "the groups cover {next_out} of {} outputs",
                        spec.out_channels
                    ),
                ));
            }
            conv_out(layer, spec, h, w)
        }
        Op::BatchNorm { channels, eps } => {
            let [c, _, _] = chw(layer, op, ins[0])?;
            if c != *channels {
                return Err(Error::shape(
                    layer,
                    format!("batch norm over {channels} channels got {c}"),
                ));
            }
            if eps.is_nan() || *eps <= 0.0 {
                return Err(Error::shape(layer, "eps must be positive"));
            }
            Ok(ins[0].to_vec())
        }
        Op::Relu | Op::Dropout { .. } => Ok(ins[0].to_vec()),
        Op::MaxPool(p) | Op::AvgPool(p) => {
            let [c, h, w] = chw(layer, op, ins[0])?;
            if p.kernel.contains(&0) || p.stride.contains(&0) {
                return Err(Error::shape(
                    layer,
                    "pool kernel and stride must be at least 1",
                ));
            }
            if p.padding[0] * 2 > p.kernel[0] || p.padding[1] * 2 > p.kernel[1] {
                return Err(Error::shape(
                    layer,
                    "pool padding must be at most half the kernel",
                ));
            }
            let [oh, ow] = p.out_hw(h, w).ok_or_else(|| {
                Error::shape(
                    layer,
                    format!("pool window {:?} does not fit a {h}×{w} input", p.kernel),
                )
            })?;
            Ok(vec![c, oh, ow])
        }
        Op::AdaptiveAvgPool { output } => {
            let [c, h, w] = chw(layer, op, ins[0])?;
            if output.contains(&0) || h == 0 || w == 0 {
                return Err(Error::shape(
                    layer,
                    "adaptive pool sizes must be at least 1",
                ));
            }
            Ok(vec![c, output[0], output[1]])
        }
        Op::Linear {
            in_features,
            out_features,
            ..
        } => {
            let f = match ins[0] {
                [f] => *f,
                s => {
                    return Err(Error::shape(
                        layer,
                        format!("linear needs a flat [F] input, got {s:?} (add a flatten)"),
                    ))
                }
            };
            if f != *in_features {
                return Err(Error::shape(
                    layer,
                    format!("linear expects {in_features} input features, got {f}"),
                ));
            }
            if *out_features == 0 {
                return Err(Error::shape(layer, "out_features must be at least 1"));
            }
            Ok(vec![*out_features])
        }
        Op::Add => {
            if ins[0] != ins[1] {
                return Err(Error::shape(
                    layer,
                    format!("add of different shapes {:?} and {:?}", ins[0], ins[1]),
                ));
            }
            Ok(ins[0].to_vec())
        }
        Op::Flatten => Ok(vec![ins[0].iter().product()]),
        Op::Softmax => match ins[0] {
            [f] => Ok(vec![*f]),
            s => Err(Error::shape(
                layer,
                format!("softmax needs a flat [F] input, got {s:?}"),
            )),
        },
        Op::Gather { indices } => {
            let [c, h, w] = chw(layer, op, ins[0])?;
            if let Some(&bad) = indices.iter().find(|&&i| i >= c) {
                return Err(Error::shape(
                    layer,
                    format!("gather index {bad} out of range for {c} channels"),
                ));
            }
            Ok(vec![indices.len(), h, w])
        }
    }
}
