//! Zero-copy channel permutations: folds channel gathers (shuffles, splits, slices) and
//! concats into the index lists of the convolutions around them.
//!
//! A [`Op::Gather`] is a permutation (or selection) of channels; a [`Op::GroupedConvTable`]
//! reads its input channels through `in_index` and writes its filters through `out_index`,
//! so it absorbs any permutation on either side without touching memory:
//!
//! - **into consumers**: a conv reading a gather reads the gather's input through the
//!   composed `in_index` (a plain [`Op::Conv2d`] becomes a table conv with its own groups);
//!   a gather reading a gather composes; a concat reading a gather takes the channels from
//!   the gather's input directly;
//! - **into producers**: a gather that is the only reader of a conv re-orders (or selects, or
//!   duplicates) the conv's filters; the only reader of a concat re-orders its sources;
//! - **concats of convs**: a concat whose inputs are all convs reading the same tensor with
//!   the same window (and read by nothing else) becomes one table conv, whose `out_index`
//!   places every filter where the concat put it — the concat disappears.
//!
//! A group of a conv the fold turned into a table (a merged concat, a conv reading a gather)
//! whose weights are all zero becomes a group without input channels: how `gconv export`
//! writes an FLGC layer's dead filters in ONNX (a zero-weight conv on one sliced channel).
//!
//! What cannot be folded stays: a gather then copies its channels once (the GPU gather
//! kernel), a concat its inputs. [`FoldReport`] counts both.

use super::passes::remove_nodes;
use super::{Conv2dSpec, Graph, GroupRange, GroupedConvTable, NodeId, Op};
use crate::error::{Error, Result};
use crate::ops::Concat;
use crate::tensor::Tensor;
use crate::weights::Weights;
use serde::Serialize;

/// What [`fold_permutations`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FoldReport {
    /// Gathers in the graph before the pass.
    pub gathers_before: usize,
    /// Concats in the graph before the pass.
    pub concats_before: usize,
    /// Gather → conv edges folded into the conv's `in_index`.
    pub into_consumers: usize,
    /// Gathers folded into the conv or concat that produced their input.
    pub into_producers: usize,
    /// Gather → concat edges folded into the concat's sources.
    pub into_concats: usize,
    /// Gather → gather edges composed into one.
    pub composed: usize,
    /// Concats of convolutions merged into one table convolution.
    pub concats_merged: usize,
    /// Gathers left (each copies channels at run time).
    pub gathers_left: usize,
    /// Concats left (each copies its inputs).
    pub concats_left: usize,
}

impl FoldReport {
    /// Gathers removed by the pass.
    pub fn gathers_folded(&self) -> usize {
        self.gathers_before.saturating_sub(self.gathers_left)
    }
}

/// A convolution in table form with its parameters (what a [`GroupedConvTable`] stores).
struct TableConv {
    t: GroupedConvTable,
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
}

/// The table form of a plain or table convolution node.
fn to_table(op: &Op, name: &str, w: &Weights) -> Result<Option<TableConv>> {
    let t = match op {
        Op::GroupedConvTable(t) => t.clone(),
        Op::Conv2d(s) => {
            let (g, c, n) = (s.groups.max(1), s.in_channels, s.out_channels);
            let ranges: Vec<GroupRange> = (0..g)
                .map(|k| GroupRange {
                    in_start: k * (c / g),
                    in_len: c / g,
                    out_start: k * (n / g),
                    out_len: n / g,
                })
                .collect();
            GroupedConvTable::from_ranges(s.clone(), &ranges)
        }
        _ => return Ok(None),
    };
    let weight = w.require(&format!("{name}.weight"))?.data().to_vec();
    let bias = if t.spec.bias {
        Some(w.require(&format!("{name}.bias"))?.data().to_vec())
    } else {
        None
    };
    Ok(Some(TableConv { t, weight, bias }))
}

/// Stores a table conv's parameters under `name` and returns its op.
fn store(tc: TableConv, name: &str, w: &mut Weights) -> Result<Op> {
    w.insert(
        format!("{name}.weight"),
        Tensor::new(vec![tc.weight.len()], tc.weight)?,
    );
    match tc.bias {
        Some(b) => w.insert(format!("{name}.bias"), Tensor::new(vec![b.len()], b)?),
        None => {
            w.remove(&format!("{name}.bias"));
        }
    }
    Ok(Op::GroupedConvTable(tc.t))
}

/// Re-targets the filters of `convs` (each with the output channels `outs_of(k, o)` its
/// physical output `o` goes to) into one table conv with `n_out` outputs; filters going
/// nowhere are dropped, filters going to several channels duplicated.
fn merge_outputs(
    convs: &[TableConv],
    in_channels: usize,
    n_out: usize,
    outs_of: impl Fn(usize, usize) -> Vec<usize>,
) -> TableConv {
    let spec0 = &convs[0].t.spec;
    let kk = spec0.window();
    let any_bias = convs.iter().any(|c| c.bias.is_some());
    let (mut table, mut in_index, mut out_index) = (vec![], vec![], vec![]);
    let (mut weight, mut bias) = (vec![], vec![0.0; n_out]);
    for (k, c) in convs.iter().enumerate() {
        let mut off = 0;
        for g in &c.t.table {
            let mut out_len = 0;
            for j in 0..g.out_len {
                let o = c.t.out_index[g.out_start + j];
                let filt = &c.weight[off + j * g.in_len * kk..off + (j + 1) * g.in_len * kk];
                for dst in outs_of(k, o) {
                    weight.extend_from_slice(filt);
                    out_index.push(dst);
                    bias[dst] = c.bias.as_ref().map_or(0.0, |b| b[o]);
                    out_len += 1;
                }
            }
            off += g.out_len * g.in_len * kk;
            if out_len > 0 {
                table.push(GroupRange {
                    in_start: in_index.len(),
                    in_len: g.in_len,
                    out_start: out_index.len() - out_len,
                    out_len,
                });
                in_index.extend_from_slice(&c.t.in_index[g.in_start..g.in_start + g.in_len]);
            }
        }
    }
    let spec = Conv2dSpec {
        in_channels,
        out_channels: n_out,
        groups: table.len().max(1),
        bias: any_bias,
        ..spec0.clone()
    };
    TableConv {
        t: GroupedConvTable {
            spec,
            table,
            in_index,
            out_index,
        },
        weight,
        bias: any_bias.then_some(bias),
    }
}

/// Folds channel gathers and concats into the convolutions around them (see the module
/// docs). The result computes the same function; [`FoldReport`] says what was folded.
pub fn fold_permutations(graph: &Graph, weights: &Weights) -> Result<(Graph, Weights, FoldReport)> {
    let mut g = graph.clone();
    let mut w = weights.clone();
    let n = g.nodes.len();
    let mut dead = vec![false; n];
    let mut rep = FoldReport::default();
    let count = |g: &Graph, dead: &[bool], f: fn(&Op) -> bool| {
        (0..g.nodes.len())
            .filter(|&i| !dead[i] && f(&g.nodes[i].op))
            .count()
    };
    let is_gather = |op: &Op| matches!(op, Op::Gather(_));
    let is_concat = |op: &Op| matches!(op, Op::Concat(_));
    rep.gathers_before = count(&g, &dead, is_gather);
    rep.concats_before = count(&g, &dead, is_concat);
    let mut changed = true;
    let mut rounds = 0;
    while changed && rounds <= n {
        changed = false;
        rounds += 1;
        for i in 1..n {
            if dead[i] {
                continue;
            }
            let step = match g.nodes[i].op {
                Op::Gather(_) => fold_gather(&mut g, &mut w, &mut dead, &mut rep, i)?,
                Op::Concat(_) => merge_concat(&mut g, &mut w, &mut dead, &mut rep, i)?,
                _ => false,
            };
            changed |= step;
        }
    }
    rep.gathers_left = count(&g, &dead, is_gather);
    rep.concats_left = count(&g, &dead, is_concat);
    let replace: Vec<NodeId> = (0..n).collect();
    for (i, d) in dead.iter().enumerate() {
        if *d {
            for s in ["weight", "bias"] {
                w.remove(&format!("{}.{s}", g.nodes[i].name));
            }
        }
    }
    let out = remove_nodes(&g, &dead, &replace)?;
    w.validate(&out)?;
    Ok((out, w, rep))
}

/// The live nodes reading node `i`.
fn readers(g: &Graph, dead: &[bool], i: NodeId) -> Vec<NodeId> {
    (i + 1..g.nodes.len())
        .filter(|&c| !dead[c] && g.nodes[c].inputs.contains(&i))
        .collect()
}

fn fold_gather(
    g: &mut Graph,
    w: &mut Weights,
    dead: &mut [bool],
    rep: &mut FoldReport,
    i: NodeId,
) -> Result<bool> {
    let Op::Gather(gather) = &g.nodes[i].op else {
        return Ok(false);
    };
    let idx = gather.indices.clone();
    let p = g.nodes[i].inputs[0];
    let c_p = g.nodes[p].shape[0];
    let mut changed = false;
    // Into consumers.
    for c in readers(g, dead, i) {
        let node = &mut g.nodes[c];
        match &mut node.op {
            Op::Gather(h) => {
                h.indices = h.indices.iter().map(|&k| idx[k]).collect();
                rep.composed += 1;
            }
            Op::Concat(cat) => {
                let old = std::mem::take(&mut node.inputs);
                let mut slot = Vec::with_capacity(old.len());
                for &inp in &old {
                    let src = if inp == i { p } else { inp };
                    slot.push(match node.inputs.iter().position(|&x| x == src) {
                        Some(s) => s,
                        None => {
                            node.inputs.push(src);
                            node.inputs.len() - 1
                        }
                    });
                }
                let sources = cat
                    .sources
                    .iter()
                    .map(|&[k, ch]| [slot[k], if old[k] == i { idx[ch] } else { ch }])
                    .collect();
                *cat = Concat {
                    inputs: node.inputs.len(),
                    sources,
                };
                rep.into_concats += 1;
                changed = true;
                continue;
            }
            op @ (Op::Conv2d(_) | Op::GroupedConvTable(_)) => {
                let Some(mut tc) = to_table(op, &node.name, w)? else {
                    continue;
                };
                tc.t.in_index = tc.t.in_index.iter().map(|&k| idx[k]).collect();
                tc.t.spec.in_channels = c_p;
                drop_zero_groups(&mut tc);
                *op = store(tc, &node.name, w)?;
                rep.into_consumers += 1;
            }
            _ => continue,
        }
        node.inputs[0] = p;
        changed = true;
    }
    if readers(g, dead, i).is_empty() && i != g.output {
        dead[i] = true;
        return Ok(true);
    }
    // Into the producer, when this gather is its only reader.
    if readers(g, dead, p) != [i] || p == g.output {
        return Ok(changed);
    }
    let pname = g.nodes[p].name.clone();
    match &mut g.nodes[p].op {
        Op::Concat(cat) => {
            cat.sources = idx.iter().map(|&k| cat.sources[k]).collect();
        }
        op @ (Op::Conv2d(_) | Op::GroupedConvTable(_)) => {
            let Some(tc) = to_table(op, &pname, w)? else {
                return Ok(changed);
            };
            let c_in = tc.t.spec.in_channels;
            let merged = merge_outputs(&[tc], c_in, idx.len(), |_, o| {
                (0..idx.len()).filter(|&j| idx[j] == o).collect()
            });
            *op = store(merged, &pname, w)?;
        }
        _ => return Ok(changed),
    }
    g.nodes[p].shape[0] = idx.len();
    for c in readers(g, dead, i) {
        for inp in &mut g.nodes[c].inputs {
            if *inp == i {
                *inp = p;
            }
        }
    }
    if g.output == i {
        g.output = p;
    }
    dead[i] = true;
    rep.into_producers += 1;
    Ok(true)
}

/// Turns every group whose weights are all zero into a group without input channels (its
/// filters output their bias): how an exported FLGC layer writes its dead filters in ONNX (a
/// zero-weight conv on one channel), read back as what it was. Such a group computed
/// `0 · x + b = b` already, except on non-finite inputs.
fn drop_zero_groups(tc: &mut TableConv) {
    let kk = tc.t.spec.window();
    let (mut in_index, mut weight) = (Vec::new(), Vec::new());
    let mut off = 0;
    for g in &mut tc.t.table {
        let len = g.out_len * g.in_len * kk;
        let w = &tc.weight[off..off + len];
        off += len;
        let start = in_index.len();
        if g.in_len > 0 && g.out_len > 0 && w.iter().all(|&v| v == 0.0) {
            g.in_len = 0;
        } else {
            in_index.extend_from_slice(&tc.t.in_index[g.in_start..g.in_start + g.in_len]);
            weight.extend_from_slice(w);
        }
        g.in_start = start;
    }
    tc.t.in_index = in_index;
    tc.weight = weight;
}

/// Merges a concat of convolutions that read the same tensor with the same window (and feed
/// nothing else) into one table convolution at the concat's place.
fn merge_concat(
    g: &mut Graph,
    w: &mut Weights,
    dead: &mut [bool],
    rep: &mut FoldReport,
    i: NodeId,
) -> Result<bool> {
    let Op::Concat(cat) = g.nodes[i].op.clone() else {
        return Ok(false);
    };
    let ins = g.nodes[i].inputs.clone();
    let mut convs = Vec::with_capacity(ins.len());
    let mut x = None;
    for (k, &p) in ins.iter().enumerate() {
        let node = &g.nodes[p];
        let single = readers(g, dead, p) == [i] && !ins[k + 1..].contains(&p) && p != g.output;
        let same_input = x.is_none_or(|x| node.inputs.first() == Some(&x));
        if !single || !same_input {
            return Ok(false);
        }
        x = node.inputs.first().copied();
        match to_table(&node.op, &node.name, w)? {
            Some(tc) => convs.push(tc),
            None => return Ok(false),
        }
    }
    let window = |t: &TableConv| {
        let s = &t.t.spec;
        (s.kernel, s.stride, s.padding, s.dilation)
    };
    let Some(x) = x else { return Ok(false) };
    if convs.iter().any(|c| window(c) != window(&convs[0])) {
        return Ok(false);
    }
    let c_in = g.nodes[x].shape[0];
    let mut merged = merge_outputs(&convs, c_in, cat.sources.len(), |k, o| {
        (0..cat.sources.len())
            .filter(|&c| cat.sources[c] == [k, o])
            .collect()
    });
    drop_zero_groups(&mut merged);
    if merged.t.spec.out_channels == 0 {
        return Err(Error::shape(&g.nodes[i].name, "concat of nothing"));
    }
    let name = g.nodes[i].name.clone();
    g.nodes[i].op = store(merged, &name, w)?;
    g.nodes[i].inputs = vec![x];
    for &p in &ins {
        dead[p] = true;
    }
    rep.concats_merged += 1;
    Ok(true)
}
