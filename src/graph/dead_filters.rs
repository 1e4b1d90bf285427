//! Filters without input, folded away. An exported FLGC layer may give a group filters but no
//! input channel (Wang et al. do not rule it out; see `train::selection`): such a filter
//! computes no MACs and outputs a constant, its bias (BN folded in), through the activation
//! that follows. A 1×1 unpadded convolution reading that constant channel sees the same value
//! at every pixel, so it can add `W[o, c]·constant` to its bias and stop reading the channel;
//! [`fold_dead_filters`] does that for every index-addressed (`GroupedConvTable`) consumer,
//! directly or through a ReLU/ReLU6. A consumer with a wider or padded kernel sees zeros at the
//! border, not the constant, and keeps reading the channel; so do residual adds and plain
//! convolutions (whose input channels are not addressed by index). Folding cascades: a
//! consumer group left without input channels is itself a constant for the next layer.

use super::passes::consumers;
use super::{Graph, GroupRange, GroupedConvTable, Op};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::weights::Weights;
use std::collections::HashMap;

/// The constant channels of table conv `t`'s output (physical channel → value before any
/// activation): the filters of groups without input channels output their bias.
fn constant_channels(t: &GroupedConvTable, bias: Option<&[f32]>) -> HashMap<usize, f32> {
    t.table
        .iter()
        .filter(|g| g.in_len == 0)
        .flat_map(|g| g.out_start..g.out_start + g.out_len)
        .map(|pos| {
            let ch = t.out_index[pos];
            (ch, bias.map_or(0.0, |b| b[ch]))
        })
        .collect()
}

/// Whether a consumer sees a constant channel as the same value at every pixel.
fn foldable(t: &GroupedConvTable) -> bool {
    t.spec.kernel == [1, 1] && t.spec.padding == [0, 0]
}

/// Removes the reads of `consts`' channels from 1×1 table conv `t` (weights `w`, bias `b`,
/// both updated); returns how many (group, channel) reads went away.
fn fold_into(
    t: &mut GroupedConvTable,
    w: &[f32],
    b: &mut [f32],
    consts: &HashMap<usize, f32>,
) -> (Vec<f32>, usize) {
    let mut table = Vec::with_capacity(t.table.len());
    let mut in_index = Vec::with_capacity(t.in_index.len());
    let mut weights = Vec::with_capacity(w.len());
    let mut removed = 0;
    let mut at = 0; // start of the group's packed [out_len, in_len] block in `w`
    for g in &t.table {
        let cols = &t.in_index[g.in_start..g.in_start + g.in_len];
        let keep: Vec<bool> = cols.iter().map(|c| !consts.contains_key(c)).collect();
        let in_start = in_index.len();
        in_index.extend(cols.iter().zip(&keep).filter(|(_, &k)| k).map(|(&c, _)| c));
        for f in 0..g.out_len {
            let row = &w[at + f * g.in_len..at + (f + 1) * g.in_len];
            let o = t.out_index[g.out_start + f];
            for ((&c, &k), &v) in cols.iter().zip(&keep).zip(row) {
                if k {
                    weights.push(v);
                } else {
                    b[o] += v * consts[&c];
                }
            }
        }
        removed += keep.iter().filter(|&&k| !k).count();
        at += g.out_len * g.in_len;
        table.push(GroupRange {
            in_start,
            in_len: in_index.len() - in_start,
            ..*g
        });
    }
    t.table = table;
    t.in_index = in_index;
    (weights, removed)
}

/// Folds the constant outputs of filters without input into the 1×1 unpadded table convs
/// that read them (see the module doc); returns the new graph and weights and the number of
/// channel reads removed. The function is unchanged.
pub fn fold_dead_filters(graph: &Graph, weights: &Weights) -> Result<(Graph, Weights, usize)> {
    let mut g = graph.clone();
    let mut w = weights.clone();
    let cons = consumers(graph);
    let mut removed_total = 0;
    for p in 0..g.nodes.len() {
        let Op::GroupedConvTable(t) = &g.nodes[p].op else {
            continue;
        };
        let name = g.nodes[p].name.clone();
        let bias = match t.spec.bias {
            true => Some(w.require(&format!("{name}.bias"))?.data().to_vec()),
            false => None,
        };
        let consts = constant_channels(t, bias.as_deref());
        if consts.is_empty() {
            continue;
        }
        // The constant reaches its readers directly or through one activation.
        let mut sources = vec![(p, consts.clone())];
        for &a in &cons[p] {
            if let Some(act) = g.nodes[a].op.activation() {
                let v = consts.iter().map(|(&c, &v)| (c, act.apply(v))).collect();
                sources.push((a, v));
            }
        }
        for (src, values) in sources {
            for &q in &cons[src] {
                removed_total += fold_consumer(&mut g, &mut w, q, src, &values)?;
            }
        }
    }
    g.revalidate()?;
    Ok((g, w, removed_total))
}

/// Folds `values` (channels of node `src`) into consumer `q` when it is a foldable table conv.
fn fold_consumer(
    g: &mut Graph,
    w: &mut Weights,
    q: usize,
    src: usize,
    values: &HashMap<usize, f32>,
) -> Result<usize> {
    let node = &g.nodes[q];
    let Op::GroupedConvTable(t) = &node.op else {
        return Ok(0);
    };
    if !foldable(t) || node.inputs.first() != Some(&src) {
        return Ok(0);
    }
    let name = node.name.clone();
    let mut t = t.clone();
    let n = t.spec.out_channels;
    let mut bias = match t.spec.bias {
        true => w.require(&format!("{name}.bias"))?.data().to_vec(),
        false => vec![0.0; n],
    };
    let old = w.require(&format!("{name}.weight"))?.data().to_vec();
    let (packed, removed) = fold_into(&mut t, &old, &mut bias, values);
    if removed == 0 {
        return Ok(0);
    }
    if t.weight_len() != Some(packed.len()) {
        return Err(Error::shape(
            &name,
            "dead-filter fold: packed weight mismatch",
        ));
    }
    t.spec.bias = true;
    let len = packed.len();
    w.insert(format!("{name}.weight"), Tensor::new(vec![len], packed)?);
    w.insert(format!("{name}.bias"), Tensor::new(vec![n], bias)?);
    g.nodes[q].op = Op::GroupedConvTable(t);
    Ok(removed)
}
