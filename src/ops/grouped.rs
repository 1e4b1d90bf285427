//! Grouped convolution with uneven, index-addressed groups: the exported form of FLGC
//! (Wang et al. §2.3), where the learnt channel re-ordering is merged into the layer's
//! addressing so that no activation is ever permuted in memory.

use super::conv::conv_plane;
use super::{check_bias, chw, no_backward, Backward, Conv2dSpec, OpCost, OpDef, ParamDecl};
use super::{Params, Saved};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// One contiguous group of an uneven grouped convolution (FLGC after export).
///
/// Output positions `out_start..out_start+out_len` read input positions
/// `in_start..in_start+in_len` (positions index the op's `in_index` / `out_index` lists).
/// Empty groups are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRange {
    /// First input position of the group.
    pub in_start: usize,
    /// Number of input channels of the group.
    pub in_len: usize,
    /// First output position of the group.
    pub out_start: usize,
    /// Number of output channels of the group.
    pub out_len: usize,
}

/// Grouped convolution with uneven groups addressed through index lists.
///
/// Group `g` reads input channels `in_index[in_start .. in_start+in_len]` and writes output
/// channels `out_index[out_start .. out_start+out_len]`. With identity indices this is a plain
/// contiguous uneven group conv. The weight is packed group after group: group g holds
/// `out_len·in_len·kh·kw` values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupedConvTable {
    /// Kernel, stride, padding, dilation, channels and bias; `spec.groups` = table length.
    pub spec: Conv2dSpec,
    /// The groups, in order; their output ranges tile `out_index` exactly.
    pub table: Vec<GroupRange>,
    /// Physical input channel of each (group-ordered) input position.
    pub in_index: Vec<usize>,
    /// Physical output channel of each (group-ordered) filter; a permutation of `0..N`.
    pub out_index: Vec<usize>,
}

impl GroupedConvTable {
    /// An uneven grouped conv from contiguous group ranges given in any order (each group
    /// reads `in_start..in_start+in_len` and writes `out_start..out_start+out_len` of the
    /// tensors themselves), converted to the index-addressed form. The packed weight keeps
    /// the order of `ranges`.
    pub fn from_ranges(spec: Conv2dSpec, ranges: &[GroupRange]) -> Self {
        let mut table = Vec::with_capacity(ranges.len());
        let mut out_index = Vec::with_capacity(spec.out_channels);
        for r in ranges {
            table.push(GroupRange {
                in_start: r.in_start,
                in_len: r.in_len,
                out_start: out_index.len(),
                out_len: r.out_len,
            });
            out_index.extend(r.out_start..r.out_start.saturating_add(r.out_len));
        }
        Self {
            in_index: (0..spec.in_channels).collect(),
            spec,
            table,
            out_index,
        }
    }

    /// Number of packed weight values, `Σ out_len·in_len·kh·kw` (None on overflow).
    pub fn weight_len(&self) -> Option<usize> {
        self.table.iter().try_fold(0usize, |acc, g| {
            g.out_len
                .checked_mul(g.in_len)?
                .checked_mul(self.spec.window())?
                .checked_add(acc)
        })
    }

    /// Checks the table against its index lists and `c` input channels: every group inside
    /// the lists, output ranges tiling `out_index` in order, `out_index` a permutation.
    pub fn validate(&self, layer: &str, c: usize) -> Result<()> {
        let s = &self.spec;
        // The table, not `groups`, says how channels are split: check the rest of the spec.
        let one = Conv2dSpec {
            groups: 1,
            ..s.clone()
        };
        one.check(layer, c, false)?;
        if let Some(&bad) = self.in_index.iter().find(|&&i| i >= c) {
            return Err(Error::shape(
                layer,
                format!("in_index names channel {bad} of {c}"),
            ));
        }
        if self.out_index.len() != s.out_channels {
            return Err(Error::shape(
                layer,
                format!(
                    "out_index has {} entries for {} outputs",
                    self.out_index.len(),
                    s.out_channels
                ),
            ));
        }
        let mut covered = vec![false; s.out_channels];
        for &o in &self.out_index {
            if o >= s.out_channels || covered[o] {
                return Err(Error::shape(
                    layer,
                    format!("out_index is not a permutation (channel {o})"),
                ));
            }
            covered[o] = true;
        }
        let mut next_out = 0usize;
        for (gi, g) in self.table.iter().enumerate() {
            let in_end = g.in_start.checked_add(g.in_len);
            if in_end.is_none_or(|e| e > self.in_index.len()) || g.out_start != next_out {
                return Err(Error::shape(
                    layer,
                    format!("group {gi} {g:?} does not fit the index lists (or leaves a gap)"),
                ));
            }
            next_out = next_out
                .checked_add(g.out_len)
                .filter(|&n| n <= s.out_channels)
                .ok_or_else(|| {
                    Error::shape(
                        layer,
                        format!("group {gi} {g:?} runs past {} outputs", s.out_channels),
                    )
                })?;
        }
        if next_out != s.out_channels {
            return Err(Error::shape(
                layer,
                format!("the groups cover {next_out} of {} outputs", s.out_channels),
            ));
        }
        self.weight_len()
            .ok_or_else(|| Error::shape(layer, "packed weight size overflows"))?;
        Ok(())
    }
}

impl OpDef for GroupedConvTable {
    fn kind(&self) -> &'static str {
        "grouped_conv_table"
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        let [c, h, w] = chw(layer, self.kind(), ins[0])?;
        self.validate(layer, c)?;
        self.spec.out_shape(layer, h, w)
    }
    fn params(&self) -> Vec<ParamDecl> {
        self.spec
            .weight_params(vec![self.weight_len().unwrap_or(usize::MAX)])
    }
    fn cost(&self, _ins: &[&[usize]], out: &[usize]) -> OpCost {
        self.spec
            .cost_of(self.weight_len().unwrap_or(usize::MAX) as u64, out)
    }
    fn forward(&self, p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        grouped_conv_indexed(
            ins[0],
            p.get("weight")?.data(),
            p.opt("bias", self.spec.bias)?,
            self,
        )
    }
    fn backward(
        &self,
        _p: &Params<'_>,
        _ins: &[&Tensor],
        _out: &Tensor,
        _saved: &Saved,
        _gy: Tensor,
    ) -> Result<Backward> {
        Err(no_backward(self.kind()))
    }
}

/// Grouped convolution with uneven contiguous groups and identity channel order.
pub fn grouped_conv_table(
    x: &Tensor,
    weight: &[f32],
    bias: Option<&[f32]>,
    s: &Conv2dSpec,
    table: &[GroupRange],
) -> Result<Tensor> {
    let op = GroupedConvTable {
        spec: s.clone(),
        table: table.to_vec(),
        in_index: (0..s.in_channels).collect(),
        out_index: (0..s.out_channels).collect(),
    };
    grouped_conv_indexed(x, weight, bias, &op)
}

/// Grouped convolution with uneven groups addressed through index lists (exported FLGC).
///
/// Group `g` reads input channels `in_index[in_start + i]` (`i < in_len`) and writes output
/// channels `out_index[out_start + j]` (`j < out_len`). `weight` is packed group after group:
/// group `g` stores its `out_len` filters of `[in_len, kh, kw]` one after another. A group may
/// have filters and no inputs: its outputs are then the bias alone.
pub fn grouped_conv_indexed(
    x: &Tensor,
    weight: &[f32],
    bias: Option<&[f32]>,
    t: &GroupedConvTable,
) -> Result<Tensor> {
    let op = "grouped_conv_table";
    let s = &t.spec;
    let [b, c, h, w] = x.dims4(op)?;
    t.validate(op, c)
        .map_err(|e| Error::tensor_shape(op, e.to_string(), x.shape()))?;
    let kk = s.window();
    let need = t.weight_len().unwrap_or(usize::MAX);
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
    // For each physical output channel: its group and its filter's offset in the packed weight.
    let mut filter_of = vec![(0, 0); s.out_channels];
    let mut off = 0;
    for (gi, g) in t.table.iter().enumerate() {
        for j in 0..g.out_len {
            filter_of[t.out_index[g.out_start + j]] = (off + j * g.in_len * kk, gi);
        }
        off += g.out_len * g.in_len * kk;
    }
    let mut out = Tensor::zeros(&[b, s.out_channels, oh, ow]);
    let plane = h * w;
    out.data_mut()
        .par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(idx, out_plane)| {
            let (n, o) = (idx / s.out_channels, idx % s.out_channels);
            let bv = bias.map_or(0.0, |bb| bb[o]);
            let (woff, gi) = filter_of[o];
            let grp = &t.table[gi];
            // Gather the group's input planes in group order, then convolve them.
            let mut x_group = Vec::with_capacity(grp.in_len * plane);
            for i in 0..grp.in_len {
                let ch = t.in_index[grp.in_start + i];
                x_group
                    .extend_from_slice(&x.data()[(n * c + ch) * plane..(n * c + ch + 1) * plane]);
            }
            let w_filter = &weight[woff..woff + grp.in_len * kk];
            if grp.in_len == 0 {
                out_plane.fill(bv);
            } else {
                conv_plane(out_plane, &x_group, w_filter, bv, [h, w], s);
            }
        });
    Ok(out)
}
