//! Graph rewrites applied at load time. Each takes a graph and its weights and returns an
//! equivalent pair; `tests/passes.rs` checks the outputs are unchanged.

use super::{Graph, GroupRange, GroupedConvTable, NodeId, Op};
use crate::error::Result;
use crate::ops::{flgc_mask, masked_weight, row_argmax};
use crate::tensor::Tensor;
use crate::weights::Weights;

/// Removes the nodes marked in `drop`, each replaced by `replace[id]` wherever it was read.
pub(crate) fn remove_nodes(graph: &Graph, drop: &[bool], replace: &[NodeId]) -> Result<Graph> {
    let resolve = |mut id: NodeId| {
        while drop[id] {
            id = replace[id];
        }
        id
    };
    let mut new_index = vec![usize::MAX; graph.nodes.len()];
    let mut nodes = Vec::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        if drop[i] {
            continue;
        }
        let mut n = n.clone();
        n.inputs = n.inputs.iter().map(|&p| new_index[resolve(p)]).collect();
        new_index[i] = nodes.len();
        nodes.push(n);
    }
    let mut g = Graph {
        name: graph.name.clone(),
        nodes,
        output: new_index[resolve(graph.output)],
    };
    g.revalidate()?;
    Ok(g)
}

pub(crate) fn consumers(graph: &Graph) -> Vec<Vec<NodeId>> {
    let mut c = vec![Vec::new(); graph.nodes.len()];
    for (i, n) in graph.nodes.iter().enumerate() {
        for &p in &n.inputs {
            c[p].push(i);
        }
    }
    c
}

/// Folds every batch norm that directly follows a convolution (its only consumer) into the
/// convolution's weight and bias: `W'[o] = W[o]·s[o]`, `b'[o] = b[o]·s[o] + t[o]` with
/// `s = γ/√(var+ε)`, `t = β − mean·s`. The BN nodes disappear; the convs gain a bias.
pub fn fold_batch_norm(graph: &Graph, weights: &Weights) -> Result<(Graph, Weights)> {
    let cons = consumers(graph);
    let mut g = graph.clone();
    let mut w = weights.clone();
    let mut drop = vec![false; g.nodes.len()];
    let mut replace: Vec<NodeId> = (0..g.nodes.len()).collect();
    for i in 0..g.nodes.len() {
        let Op::BatchNorm(crate::ops::BatchNorm { eps, .. }) = g.nodes[i].op else {
            continue;
        };
        let p = g.nodes[i].inputs[0];
        let foldable = g.nodes[p].op.conv_spec().is_some() && cons[p] == [i] && p != g.output;
        if !foldable {
            continue;
        }
        let bn = g.nodes[i].name.clone();
        let conv = g.nodes[p].name.clone();
        let get = |k: &str| w.require(&format!("{bn}.{k}")).map(|t| t.data().to_vec());
        let (gamma, beta, mean, var) = (
            get("weight")?,
            get("bias")?,
            get("running_mean")?,
            get("running_var")?,
        );
        let scale: Vec<f32> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + eps).sqrt())
            .collect();
        let shift: Vec<f32> = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        let wkey = format!("{conv}.weight");
        let mut wt = w.require(&wkey)?.clone();
        // Per-output-channel weight ranges.
        let ranges: Vec<(usize, usize)> = match &g.nodes[p].op {
            Op::GroupedConvTable(t) => {
                let kk = t.spec.window();
                let mut r = vec![(0, 0); t.spec.out_channels];
                let mut off = 0;
                for grp in &t.table {
                    for j in 0..grp.out_len {
                        let len = grp.in_len * kk;
                        r[t.out_index[grp.out_start + j]] = (off + j * len, len);
                    }
                    off += grp.out_len * grp.in_len * kk;
                }
                r
            }
            _ => {
                let per = wt.numel() / scale.len();
                (0..scale.len()).map(|o| (o * per, per)).collect()
            }
        };
        for (o, &(start, len)) in ranges.iter().enumerate() {
            wt.data_mut()[start..start + len]
                .iter_mut()
                .for_each(|v| *v *= scale[o]);
        }
        w.insert(wkey, wt);
        let bkey = format!("{conv}.bias");
        let old_b = w
            .get(&bkey)
            .map(|t| t.data().to_vec())
            .unwrap_or(vec![0.0; scale.len()]);
        let nb: Vec<f32> = (0..scale.len())
            .map(|o| old_b[o] * scale[o] + shift[o])
            .collect();
        w.insert(bkey, Tensor::new(vec![nb.len()], nb)?);
        match &mut g.nodes[p].op {
            Op::Conv2d(s) | Op::FlgcConv2d(crate::ops::FlgcSpec(s)) => s.bias = true,
            Op::GroupedConvTable(t) => t.spec.bias = true,
            _ => unreachable!("foldable producers are convolutions"),
        }
        for k in ["weight", "bias", "running_mean", "running_var"] {
            w.remove(&format!("{bn}.{k}"));
        }
        drop[i] = true;
        replace[i] = p;
    }
    Ok((remove_nodes(&g, &drop, &replace)?, w))
}

/// Replaces every FLGC layer by the dense convolution it computes, `W ⊙ M` with the mask of
/// its current selection matrices (the "masked" reference path of inference).
pub fn materialize_flgc(graph: &Graph, weights: &Weights) -> Result<(Graph, Weights)> {
    let mut g = graph.clone();
    let mut w = weights.clone();
    for n in &mut g.nodes {
        let Op::FlgcConv2d(s) = &n.op else { continue };
        let key = |k: &str| format!("{}.{k}", n.name);
        let mask = flgc_mask(
            w.require(&key("select_in"))?,
            w.require(&key("select_out"))?,
        )?;
        let masked = masked_weight(w.require(&key("weight"))?, &mask)?;
        w.insert(key("weight"), masked);
        w.remove(&key("select_in"));
        w.remove(&key("select_out"));
        n.op = Op::Conv2d(s.dense());
    }
    g.revalidate()?;
    Ok((g, w))
}

/// Compiles every FLGC layer into an uneven group convolution by index re-ordering
/// (Wang et al. §2.3): the learnt one-hot `S`, `T` give each input channel and filter a group;
/// filters are re-ordered so each group's are contiguous in the packed weight, and the
/// layer reads its group's input channels and writes its filters' outputs through index lists
/// merged into its addressing ([`Op::GroupedConvTable`]). Activations keep their order, so
/// no gather is ever needed, whatever the producers and consumers are (residual adds included).
/// Weights outside the learnt grouping (masked to zero in training) are dropped.
pub fn export_flgc(graph: &Graph, weights: &Weights) -> Result<(Graph, Weights)> {
    let mut g = graph.clone();
    let mut w = weights.clone();
    for n in &mut g.nodes {
        let Op::FlgcConv2d(spec) = &n.op else {
            continue;
        };
        let key = |k: &str| format!("{}.{k}", n.name);
        let s = row_argmax(w.require(&key("select_in"))?)?;
        let t = row_argmax(w.require(&key("select_out"))?)?;
        let dense = w.require(&key("weight"))?;
        let (c, kk) = (spec.in_channels, spec.kernel[0] * spec.kernel[1]);
        let (mut table, mut in_index, mut out_index, mut packed) = (vec![], vec![], vec![], vec![]);
        for grp in 0..spec.groups {
            let ins: Vec<usize> = (0..c).filter(|&i| s[i] == grp).collect();
            let outs: Vec<usize> = (0..spec.out_channels).filter(|&o| t[o] == grp).collect();
            table.push(GroupRange {
                in_start: in_index.len(),
                in_len: ins.len(),
                out_start: out_index.len(),
                out_len: outs.len(),
            });
            for &o in &outs {
                for &i in &ins {
                    let at = (o * c + i) * kk;
                    packed.extend_from_slice(&dense.data()[at..at + kk]);
                }
            }
            in_index.extend(ins);
            out_index.extend(outs);
        }
        w.insert(key("weight"), Tensor::new(vec![packed.len()], packed)?);
        w.remove(&key("select_in"));
        w.remove(&key("select_out"));
        n.op = Op::GroupedConvTable(GroupedConvTable {
            spec: spec.0.clone(),
            table,
            in_index,
            out_index,
        });
    }
    g.revalidate()?;
    Ok((g, w))
}
