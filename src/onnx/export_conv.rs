//! Convolutions in ONNX: a plain, grouped or index-addressed (exported FLGC) convolution as
//! one ONNX `Conv` when its groups are even, else as per-group `Conv`s between a `Split`
//! (or one `Slice`/`Gather` per group) and a `Concat`. The input's and the planned output's
//! channel orders are folded into the weights: columns follow the input's order, filters the
//! output's.

use super::export::{attr_int, attr_ints, Emitter};
use super::export_order::{contiguous, inverse};
use crate::error::Result;
use crate::graph::{Conv2dSpec, GroupedConvTable, NodeId};

/// One group of a convolution as the exporter sees it.
pub(super) struct Group {
    /// gconv input channels, in the weight's column order.
    ins: Vec<usize>,
    /// gconv filters (output channels), in the packed weight's row order.
    outs: Vec<usize>,
    /// Offset of the group's first filter in the packed weight.
    w_off: usize,
}

/// The groups of a plain conv (PyTorch's weight layout `[N, C/G, kh, kw]`).
pub(super) fn plain_groups(s: &Conv2dSpec) -> Vec<Group> {
    let g = s.groups.max(1);
    let (a, b) = (s.in_channels / g, s.out_channels / g);
    (0..g)
        .map(|k| Group {
            ins: (k * a..(k + 1) * a).collect(),
            outs: (k * b..(k + 1) * b).collect(),
            w_off: k * b * a * s.window(),
        })
        .collect()
}

/// The groups of an index-addressed conv (weights packed group after group).
pub(super) fn table_groups(t: &GroupedConvTable) -> Vec<Group> {
    let mut off = 0;
    t.table
        .iter()
        .map(|r| {
            let g = Group {
                ins: t.in_index[r.in_start..r.in_start + r.in_len].to_vec(),
                outs: t.out_index[r.out_start..r.out_start + r.out_len].to_vec(),
                w_off: off,
            };
            off += r.in_len * r.out_len * t.spec.window();
            g
        })
        .collect()
}

/// The order in which `order` holds the groups `live` as contiguous blocks of their filters,
/// or `None` when it does not.
fn block_order(order: &[usize], groups: &[Group], live: &[usize]) -> Option<Vec<usize>> {
    let mut group_of = vec![usize::MAX; order.len()];
    for &k in live {
        for &o in &groups[k].outs {
            *group_of.get_mut(o)? = k;
        }
    }
    let mut seq: Vec<usize> = Vec::new();
    for &ch in order {
        let k = *group_of.get(ch)?;
        if seq.last() != Some(&k) {
            if seq.contains(&k) || k == usize::MAX {
                return None;
            }
            seq.push(k);
        }
    }
    Some(seq)
}

/// `[ph, pw, ph, pw]` and the other `Conv` attributes.
fn conv_attrs(s: &Conv2dSpec, group: usize) -> Vec<super::proto::AttributeProto> {
    let [ph, pw] = s.padding;
    vec![
        attr_ints("kernel_shape", &s.kernel),
        attr_ints("strides", &s.stride),
        attr_ints("pads", &[ph, pw, ph, pw]),
        attr_ints("dilations", &s.dilation),
        attr_int("group", group as i64),
    ]
}

/// Where one group's input comes from in ONNX.
enum Piece {
    /// Positions `start..start+len` of the input (a slice or a split output).
    Range(usize),
    /// A gather of the group's channels in column order.
    Gathered,
}

impl Emitter<'_> {
    /// Emits node `i`, a convolution with these groups, reading input 0.
    pub(super) fn conv_groups(
        &mut self,
        i: NodeId,
        s: &Conv2dSpec,
        groups: &[Group],
    ) -> Result<()> {
        let name = self.name(i);
        let p = self.g.nodes[i].inputs[0];
        let c = self.g.nodes[p].shape[0];
        let pos = inverse(&self.order_of(p));
        let ppos = inverse(&self.order_of(i));
        let weight = self.w.require(&format!("{name}.weight"))?.data().to_vec();
        let bias = match s.bias {
            true => Some(self.w.require(&format!("{name}.bias"))?.data().to_vec()),
            false => None,
        };
        let live: Vec<usize> = (0..groups.len())
            .filter(|&k| !groups[k].outs.is_empty())
            .collect();
        // Each group's filters in the planned output order.
        let inner: Vec<Vec<usize>> = groups
            .iter()
            .map(|gr| {
                let mut j: Vec<usize> = (0..gr.outs.len()).collect();
                j.sort_by_key(|&j| ppos[gr.outs[j]]);
                j
            })
            .collect();
        let sigma_out = block_order(&self.order_of(i), groups, &live);
        let (a, b) = live
            .first()
            .map_or((0, 0), |&k| (groups[k].ins.len(), groups[k].outs.len()));
        let even = a > 0
            && live
                .iter()
                .all(|&k| groups[k].ins.len() == a && groups[k].outs.len() == b);
        let contig = |k: usize| contiguous(&pos, &groups[k].ins);
        let start = |k: usize| groups[k].ins.iter().map(|&ch| pos[ch]).min().unwrap_or(0);
        // The live groups' inputs tile the input in `sigma` order, each a contiguous range.
        let tiles = |sigma: &[usize]| {
            let mut next = 0;
            for &k in sigma.iter().filter(|&&k| !groups[k].ins.is_empty()) {
                if !contig(k) || start(k) != next {
                    return false;
                }
                next += groups[k].ins.len();
            }
            next == c
        };
        let kk = s.window();
        let x = self.value[p].clone();
        let mut by_start = live.clone();
        by_start.sort_by_key(|&k| start(k));
        if even {
            // One ONNX Conv: the groups read consecutive blocks of a (possibly gathered) input.
            let (sigma, input, gathered) = if tiles(&by_start) {
                (by_start, x, false)
            } else {
                let sigma = sigma_out.unwrap_or(live);
                let idx: Vec<usize> = sigma
                    .iter()
                    .flat_map(|&k| groups[k].ins.iter().map(|&ch| pos[ch]))
                    .collect();
                let gname = format!("{name}.in_order");
                (sigma.clone(), self.gather(&gname, x, &idx, &gname), true)
            };
            let (mut wt, mut bs, mut natural) = (Vec::new(), Vec::new(), Vec::new());
            for &k in &sigma {
                let cols = columns(&groups[k], &pos, (!gathered).then(|| start(k)));
                push_filters(&mut wt, &weight, &groups[k], &inner[k], &cols, kk);
                for &j in &inner[k] {
                    let o = groups[k].outs[j];
                    natural.push(o);
                    bs.push(bias.as_ref().map_or(0.0, |bv| bv[o]));
                }
            }
            let n = natural.len();
            let wname = self.floats(
                &format!("{name}.weight"),
                &[n, a, s.kernel[0], s.kernel[1]],
                &wt,
            )?;
            let mut ins = vec![input, wname];
            if bias.is_some() {
                ins.push(self.floats(&format!("{name}.bias"), &[n], &bs)?);
            }
            let y = self.add("Conv", &name, ins, &name, conv_attrs(s, sigma.len()));
            self.report.convs += 1;
            return self.finish_value(i, y, &natural);
        }
        // Uneven groups: one Conv per group between a split and a concat.
        let sigma = sigma_out.unwrap_or(live);
        let reading: Vec<usize> = sigma
            .iter()
            .copied()
            .filter(|&k| !groups[k].ins.is_empty())
            .collect();
        let mut inputs: Vec<(String, Piece)> = Vec::with_capacity(sigma.len());
        if !reading.is_empty() && tiles(&sigma) {
            let sizes: Vec<i64> = reading
                .iter()
                .map(|&k| groups[k].ins.len() as i64)
                .collect();
            let split = self.ints(&format!("{name}.split"), &sizes);
            let outs: Vec<String> = (0..reading.len())
                .map(|j| format!("{name}.split.{j}"))
                .collect();
            let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
            let names = self.add_n(
                "Split",
                &format!("{name}.split"),
                vec![x.clone(), split],
                &refs,
                vec![attr_int("axis", 1)],
            );
            for (&k, v) in reading.iter().zip(names) {
                inputs.push((v, Piece::Range(start(k))));
            }
        } else {
            for &k in &reading {
                let piece = format!("{name}.g{}.in", inputs.len());
                if contig(k) {
                    let v = self.slice(&piece, x.clone(), start(k), groups[k].ins.len());
                    inputs.push((v, Piece::Range(start(k))));
                } else {
                    let idx: Vec<usize> = groups[k].ins.iter().map(|&ch| pos[ch]).collect();
                    let v = self.gather(&piece, x.clone(), &idx, &piece);
                    inputs.push((v, Piece::Gathered));
                }
            }
        }
        let mut reading_inputs = inputs.into_iter();
        let mut dead_input = None;
        let (mut outs, mut natural) = (Vec::new(), Vec::new());
        for (gi, &k) in sigma.iter().enumerate() {
            let gr = &groups[k];
            let gname = format!("{name}.g{gi}");
            let (xin, wt, cin) = if gr.ins.is_empty() {
                // Filters without input: zero weights on one channel, the output is the bias.
                let xin = match &dead_input {
                    Some(v) => String::clone(v),
                    None => {
                        let v = self.slice(&format!("{name}.dead.in"), x.clone(), 0, 1);
                        dead_input = Some(v.clone());
                        v
                    }
                };
                self.report.dead_groups += 1;
                (xin, vec![0.0; gr.outs.len() * kk], 1)
            } else {
                let Some((xin, piece)) = reading_inputs.next() else {
                    unreachable!("one input per reading group")
                };
                let first = match piece {
                    Piece::Range(st) => Some(st),
                    Piece::Gathered => None,
                };
                let cols = columns(gr, &pos, first);
                let mut wt = Vec::new();
                push_filters(&mut wt, &weight, gr, &inner[k], &cols, kk);
                (xin, wt, gr.ins.len())
            };
            let m = gr.outs.len();
            let wname = self.floats(
                &format!("{gname}.weight"),
                &[m, cin, s.kernel[0], s.kernel[1]],
                &wt,
            )?;
            let mut ins = vec![xin, wname];
            if let Some(bv) = &bias {
                let bs: Vec<f32> = inner[k].iter().map(|&j| bv[gr.outs[j]]).collect();
                ins.push(self.floats(&format!("{gname}.bias"), &[m], &bs)?);
            }
            outs.push(self.add("Conv", &gname, ins, &gname, conv_attrs(s, 1)));
            natural.extend(inner[k].iter().map(|&j| gr.outs[j]));
            self.report.group_convs += 1;
        }
        self.report.uneven += 1;
        let y = match outs.len() {
            1 => outs.remove(0),
            _ => self.add("Concat", &name, outs, &name, vec![attr_int("axis", 1)]),
        };
        self.finish_value(i, y, &natural)
    }

    /// `Slice` of channels `start..start+len` of `x`.
    fn slice(&mut self, name: &str, x: String, start: usize, len: usize) -> String {
        let starts = self.ints(&format!("{name}.starts"), &[start as i64]);
        let ends = self.ints(&format!("{name}.ends"), &[(start + len) as i64]);
        let axes = self.ints(&format!("{name}.axes"), &[1]);
        self.add("Slice", name, vec![x, starts, ends, axes], name, vec![])
    }
}

/// For each ONNX input column of group `gr`, the gconv weight column it is: the input is
/// the range starting at position `first` (columns follow the input's order), or the
/// group's channels gathered in column order (`None`).
fn columns(gr: &Group, pos: &[usize], first: Option<usize>) -> Vec<usize> {
    match first {
        None => (0..gr.ins.len()).collect(),
        Some(st) => {
            let mut cols = vec![0; gr.ins.len()];
            for (i, &ch) in gr.ins.iter().enumerate() {
                cols[pos[ch] - st] = i;
            }
            cols
        }
    }
}

/// Appends the filters `rows` of group `gr` (indices into `gr.outs`), their columns in the
/// order `cols`, to `out`.
fn push_filters(
    out: &mut Vec<f32>,
    weight: &[f32],
    gr: &Group,
    rows: &[usize],
    cols: &[usize],
    kk: usize,
) {
    let a = gr.ins.len();
    for &j in rows {
        let f = gr.w_off + j * a * kk;
        for &i in cols {
            out.extend_from_slice(&weight[f + i * kk..f + (i + 1) * kk]);
        }
    }
}
