//! Channel shuffles: `Reshape` factoring the channels (`[N, C, H, W]` → `[N, g, C/g, H, W]`)
//! gives a channel view, `Transpose` permutes its channel factors, and the `Reshape` merging
//! them back becomes one [`Op::Gather`](crate::graph::Op::Gather) (nothing when the order is
//! unchanged). A `Reshape` to `[N, C·H·W]` is a flatten.

use super::fold::{norm_axis, reshape_dims};
use super::import::Importer;
use super::proto::NodeProto;
use super::values::{attr_i, attr_ints, Act, Int, Value, View};
use crate::error::Result;
use crate::graph::Op;

impl<'a> Importer<'a> {
    /// The per-sample target of a Reshape (the first entry must be the batch).
    fn reshape_target(&self, n: &NodeProto, from: &[usize]) -> Result<Vec<usize>> {
        let t = self.konst(n, 1)?;
        let super::values::Data::Int(v) = &t.data else {
            return Err(self.err(n, "a float shape"));
        };
        let numel: usize = from.iter().product();
        let allowzero = attr_i(n, "allowzero", 0) != 0;
        let Some((first, rest)) = v.split_first() else {
            return Err(self.err(n, "reshape to a scalar"));
        };
        let rest = rest
            .iter()
            .map(|d| match d {
                Int::K(k) => Ok(*k),
                Int::Batch => Err(self.err(n, "the batch size inside a per-sample dimension")),
            })
            .collect::<Result<Vec<i64>>>()?;
        let batch_ok = match *first {
            Int::Batch => true,
            Int::K(0) => !allowzero,
            Int::K(-1) => !rest.contains(&-1),
            Int::K(k) => Some(k) == self.static_batch,
        };
        if !batch_ok {
            return Err(self.err(
                n,
                format!("reshape to {v:?} moves values across the batch dimension"),
            ));
        }
        reshape_dims(from, &rest, numel, allowzero).map_err(|m| self.err(n, m))
    }

    pub(crate) fn reshape(&mut self, n: &NodeProto) -> Result<()> {
        let a = self.act(n, 0)?;
        let from = self.act_shape(&a);
        let to = self.reshape_target(n, &from)?;
        if to == from {
            self.set(n, 0, Value::Act(a));
            return Ok(());
        }
        let channels: usize = from[..from.len().saturating_sub(2)].iter().product();
        let hw = |s: &[usize]| (s.len() >= 2).then(|| [s[s.len() - 2], s[s.len() - 1]]);
        match (&a.view, to.len()) {
            // [C, H, W] → [C·H·W] (or [C] → [C] handled above).
            (None, 1) if from.len() == 3 => self.unary(n, Op::flatten()),
            // Channels factored: [C, H, W] → [g, C/g, H, W] (a view, the shuffle's first step).
            (None, k) if k > 3 && from.len() == 3 && hw(&to) == hw(&from) => {
                let view = View {
                    dims: to[..k - 2].to_vec(),
                    hw: [from[1], from[2]],
                    src: (0..channels).collect(),
                };
                self.set_view(n, a.node, view);
                Ok(())
            }
            (Some(v), k) if k >= 3 && hw(&to) == Some(v.hw) => {
                let mut v = v.clone();
                v.dims = to[..k - 2].to_vec();
                if k == 3 {
                    let id = self.materialize(
                        n,
                        Act {
                            node: a.node,
                            view: Some(v),
                        },
                    )?;
                    self.set_node(n, id);
                } else {
                    self.set_view(n, a.node, v);
                }
                Ok(())
            }
            _ => Err(self.err(
                n,
                format!(
                    "reshape of [N] ++ {from:?} to [N] ++ {to:?}: gconv imports flattening and \
                     channel shuffles (channels factored, transposed and merged)"
                ),
            )),
        }
    }

    pub(crate) fn transpose(&mut self, n: &NodeProto) -> Result<()> {
        let a = self.act(n, 0)?;
        let rank = self.act_shape(&a).len() + 1;
        let perm = attr_ints(n, "perm").unwrap_or_else(|| (0..rank as i64).rev().collect());
        let perm = perm
            .iter()
            .map(|&p| norm_axis(p, rank))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|m| self.err(n, m))?;
        let fixed = perm.len() == rank
            && perm[0] == 0
            && perm[rank - 2] == rank - 2
            && perm[rank - 1] == rank - 1;
        let mut seen = vec![false; rank];
        let is_perm = perm.iter().all(|&p| !std::mem::replace(&mut seen[p], true));
        if !fixed || !is_perm {
            return Err(self.err(
                n,
                format!("transpose {perm:?}: gconv imports permutations of channel factors only"),
            ));
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            self.set(n, 0, Value::Act(a));
            return Ok(());
        }
        let Some(v) = a.view else {
            return Err(self.err(n, format!("transpose {perm:?} of a 4-D activation")));
        };
        // New factor i is old factor perm[i+1]-1.
        let old = &v.dims;
        let p: Vec<usize> = perm[1..rank - 2].iter().map(|&q| q - 1).collect();
        let dims: Vec<usize> = p.iter().map(|&q| old[q]).collect();
        let mut st = vec![1; old.len()];
        for i in (0..old.len().saturating_sub(1)).rev() {
            st[i] = st[i + 1] * old[i + 1];
        }
        let total: usize = dims.iter().product();
        let src = (0..total)
            .map(|mut f| {
                let mut off = 0;
                for i in (0..dims.len()).rev() {
                    off += (f % dims[i]) * st[p[i]];
                    f /= dims[i];
                }
                v.src[off]
            })
            .collect();
        self.set_view(
            n,
            a.node,
            View {
                dims,
                hw: v.hw,
                src,
            },
        );
        Ok(())
    }
}
