//! Channel splits, slices, gathers and concats, and softmax. Each channel selection becomes
//! an [`Op::Gather`] (none when it keeps every channel in order), each concat an
//! [`Op::Concat`]; splits of a channel view (inside a shuffle) stay views.

use super::fold::{norm_axis, slice_range};
use super::import::Importer;
use super::proto::NodeProto;
use super::values::{attr_i, Act, Value, View};
use crate::error::Result;
use crate::graph::{NodeId, Op};

impl<'a> Importer<'a> {
    /// A channel selection of node `x` as output `k` of `n`.
    fn select(&mut self, n: &NodeProto, k: usize, x: NodeId, idx: Vec<usize>) -> Result<()> {
        let c = self.b.shape(x)[0];
        let id = if idx.len() == c && idx.iter().enumerate().all(|(i, &j)| i == j) {
            x
        } else {
            // Each output of a split gets its own name (`…split`, `…split_2`, …).
            let name = self.layer_name(n, None);
            self.push(n, &name, Op::gather(idx), &[x])?
        };
        self.set(
            n,
            k,
            Value::Act(Act {
                node: id,
                view: None,
            }),
        );
        Ok(())
    }

    /// The channel axis (1) of an activation of per-sample rank `r`, from attribute `axis`.
    fn channel_axis(&self, n: &NodeProto, rank: usize, default: i64) -> Result<()> {
        let ax = norm_axis(attr_i(n, "axis", default), rank + 1).map_err(|m| self.err(n, m))?;
        if ax != 1 {
            return Err(self.err(
                n,
                format!(
                    "{} along axis {ax}: gconv imports channel (axis 1) ops",
                    n.op_type()
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn split(&mut self, n: &NodeProto) -> Result<()> {
        let a = self.act(n, 0)?;
        let shape = self.act_shape(&a);
        self.channel_axis(n, shape.len(), 0)?;
        let total = shape[0];
        let outs = n.output.len();
        let sizes: Vec<usize> = match self.opt_konst(n, 1)? {
            Some(c) => c
                .known_ints()
                .map_err(|m| self.err(n, m))?
                .iter()
                .map(|&s| usize::try_from(s).unwrap_or(usize::MAX))
                .collect(),
            None => {
                let parts = usize::try_from(attr_i(n, "num_outputs", outs as i64)).unwrap_or(0);
                if parts == 0 {
                    return Err(self.err(n, "split into 0 parts"));
                }
                // ONNX: equal parts, the last one smaller when the size does not divide.
                let each = total.div_ceil(parts);
                (0..parts)
                    .map(|p| each.min(total.saturating_sub(p * each)))
                    .collect()
            }
        };
        if sizes.len() != outs
            || sizes.iter().try_fold(0usize, |s, &x| s.checked_add(x)) != Some(total)
        {
            return Err(self.err(
                n,
                format!("split sizes {sizes:?} for {outs} outputs of {total} channels"),
            ));
        }
        let mut start = 0;
        for (k, &len) in sizes.iter().enumerate() {
            match &a.view {
                // A split of the first channel factor keeps a contiguous part of the view.
                Some(v) => {
                    let inner: usize = v.dims[1..].iter().product();
                    let mut dims = v.dims.clone();
                    dims[0] = len;
                    let view = View {
                        dims,
                        hw: v.hw,
                        src: v.src[start * inner..(start + len) * inner].to_vec(),
                    };
                    self.set(
                        n,
                        k,
                        Value::Act(Act {
                            node: a.node,
                            view: Some(view),
                        }),
                    );
                }
                None => self.select(n, k, a.node, (start..start + len).collect())?,
            }
            start += len;
        }
        Ok(())
    }

    pub(crate) fn slice(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.plain(n, 0)?;
        let shape = self.b.shape(x).to_vec();
        let ints = |k: usize| -> Result<Option<Vec<i64>>> {
            self.opt_konst(n, k)?
                .map(|c| c.known_ints().map_err(|m| self.err(n, m)))
                .transpose()
        };
        let starts = ints(1)?.unwrap_or_default();
        let ends = ints(2)?.unwrap_or_default();
        let axes = ints(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = ints(4)?.unwrap_or_else(|| vec![1; starts.len()]);
        if [ends.len(), axes.len(), steps.len()] != [starts.len(); 3] {
            return Err(self.err(n, "starts, ends, axes and steps differ in length"));
        }
        let mut idx: Vec<usize> = (0..shape[0]).collect();
        for i in 0..starts.len() {
            let ax = norm_axis(axes[i], shape.len() + 1).map_err(|m| self.err(n, m))?;
            if ax == 0 {
                return Err(self.err(n, "a slice of the batch dimension"));
            }
            let sel = slice_range(shape[ax - 1], starts[i], ends[i], steps[i])
                .map_err(|m| self.err(n, m))?;
            if ax == 1 {
                idx = sel;
            } else if sel.len() != shape[ax - 1] || sel.iter().enumerate().any(|(i, &j)| i != j) {
                return Err(self.err(
                    n,
                    format!("a slice along axis {ax}: gconv imports channel (axis 1) slices"),
                ));
            }
        }
        if idx.is_empty() || shape.len() != 3 {
            return Err(self.err(
                n,
                format!("a slice keeping {} channels of [N] ++ {shape:?}", idx.len()),
            ));
        }
        self.select(n, 0, x, idx)
    }

    pub(crate) fn gather(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.plain(n, 0)?;
        let shape = self.b.shape(x).to_vec();
        self.channel_axis(n, shape.len(), 0)?;
        let c = self.konst(n, 1)?;
        if c.dims.len() != 1 || shape.len() != 3 {
            return Err(self.err(
                n,
                "gconv imports gathers of a 1-D index list along channels",
            ));
        }
        let ch = shape[0] as i64;
        let idx = c
            .known_ints()
            .map_err(|m| self.err(n, m))?
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + ch } else { i };
                usize::try_from(j).ok().filter(|&j| j < shape[0])
            })
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| self.err(n, format!("an index outside {ch} channels")))?;
        self.select(n, 0, x, idx)
    }

    pub(crate) fn concat(&mut self, n: &NodeProto) -> Result<()> {
        if n.input.is_empty() {
            return Err(self.err(n, "a concat of nothing"));
        }
        let mut ids = Vec::with_capacity(n.input.len());
        for k in 0..n.input.len() {
            ids.push(self.plain(n, k)?);
        }
        let rank = self.b.shape(ids[0]).len();
        self.channel_axis(n, rank, 1)?;
        if let [one] = ids[..] {
            self.set_node(n, one);
            return Ok(());
        }
        let channels: Vec<usize> = ids.iter().map(|&i| self.b.shape(i)[0]).collect();
        let name = self.layer_name(n, None);
        let id = self.push(n, &name, Op::concat(&channels), &ids)?;
        self.set_node(n, id);
        Ok(())
    }

    pub(crate) fn softmax(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.plain(n, 0)?;
        let rank = self.b.shape(x).len();
        let default = if self.opset >= 13 { -1 } else { 1 };
        let ax = norm_axis(attr_i(n, "axis", default), rank + 1).map_err(|m| self.err(n, m))?;
        if rank != 1 || ax != 1 {
            return Err(self.err(
                n,
                "gconv imports softmax over the features of an [N, F] tensor",
            ));
        }
        let name = self.layer_name(n, None);
        let id = self.push(n, &name, Op::softmax(), &[x])?;
        self.set_node(n, id);
        Ok(())
    }
}
