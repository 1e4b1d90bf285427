//! Channel concatenation with index-addressed sources: output channel `c` is channel
//! `sources[c][1]` of input `sources[c][0]`. A plain concat lists every channel of each input
//! in order; a concat that absorbed channel shuffles, splits and gathers (the permutation
//! fold, [`crate::graph::fold_permutations()`]) lists them in any order, so one copy does the
//! work of the whole chain.

use super::{chw, same_shape, Backward, OpDef, Params, Saved};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Channel concatenation of `inputs` tensors of equal plane size, each output channel taken
/// from `(input, channel)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concat {
    /// Number of inputs.
    pub inputs: usize,
    /// `[input, channel]` of each output channel.
    pub sources: Vec<[usize; 2]>,
}

impl Concat {
    /// The plain concatenation of inputs with these channel counts, in order.
    pub fn stack(channels: &[usize]) -> Self {
        Self {
            inputs: channels.len(),
            sources: channels
                .iter()
                .enumerate()
                .flat_map(|(k, &c)| (0..c).map(move |ch| [k, ch]))
                .collect(),
        }
    }

    /// Whether the sources are every channel of every input, in order (a plain concat).
    pub fn is_stack(&self, channels: &[usize]) -> bool {
        *self == Self::stack(channels)
    }
}

impl OpDef for Concat {
    fn kind(&self) -> &'static str {
        "concat"
    }
    fn arity(&self) -> usize {
        self.inputs
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        if self.inputs == 0 || self.sources.is_empty() {
            return Err(Error::shape(layer, "concat of nothing"));
        }
        let mut hw = None;
        let mut channels = Vec::with_capacity(ins.len());
        for s in ins {
            let [c, h, w] = chw(layer, self.kind(), s)?;
            if hw.is_some_and(|p| p != [h, w]) {
                return Err(Error::shape(
                    layer,
                    format!("concat of different plane sizes: {ins:?}"),
                ));
            }
            hw = Some([h, w]);
            channels.push(c);
        }
        if let Some(bad) = self
            .sources
            .iter()
            .find(|[k, c]| channels.get(*k).is_none_or(|&n| *c >= n))
        {
            return Err(Error::shape(
                layer,
                format!("concat source {bad:?} outside inputs of {channels:?} channels"),
            ));
        }
        let [h, w] = hw.unwrap_or([0, 0]);
        Ok(vec![self.sources.len(), h, w])
    }
    fn forward(&self, _p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        concat_channels(ins, &self.sources)
    }
    fn backward(
        &self,
        _p: &Params<'_>,
        ins: &[&Tensor],
        out: &Tensor,
        _saved: &Saved,
        gy: Tensor,
    ) -> Result<Backward> {
        same_shape("concat backward", out.shape(), &gy)?;
        let [b, k, h, w] = gy.dims4("concat backward")?;
        let plane = h * w;
        let mut grads: Vec<Tensor> = ins.iter().map(|t| Tensor::zeros(t.shape())).collect();
        for n in 0..b {
            for (oc, &[i, ch]) in self.sources.iter().enumerate() {
                let c = grads[i].shape()[1];
                let src = &gy.data()[(n * k + oc) * plane..(n * k + oc + 1) * plane];
                grads[i].data_mut()[(n * c + ch) * plane..(n * c + ch + 1) * plane]
                    .iter_mut()
                    .zip(src)
                    .for_each(|(d, s)| *d += s);
            }
        }
        Ok(Backward::inputs(grads))
    }
}

/// Channel concatenation: output channel `c` of each sample is channel `sources[c][1]` of
/// input `sources[c][0]`; the inputs are `[B, C_i, H, W]` with equal `B`, `H`, `W`.
pub fn concat_channels(ins: &[&Tensor], sources: &[[usize; 2]]) -> Result<Tensor> {
    let first = ins
        .first()
        .ok_or_else(|| Error::InvalidArgument("concat of no inputs".into()))?;
    let [b, _, h, w] = first.dims4("concat")?;
    let mut channels = Vec::with_capacity(ins.len());
    for t in ins {
        let [tb, c, th, tw] = t.dims4("concat")?;
        if [tb, th, tw] != [b, h, w] {
            return Err(Error::tensor_shape(
                "concat",
                format!("[{b}, C, {h}, {w}] like the first input"),
                t.shape(),
            ));
        }
        channels.push(c);
    }
    if let Some(bad) = sources
        .iter()
        .find(|[k, c]| channels.get(*k).is_none_or(|&n| *c >= n))
    {
        return Err(Error::InvalidArgument(format!(
            "concat source {bad:?} outside inputs of {channels:?} channels"
        )));
    }
    let plane = h * w;
    let k = sources.len();
    let mut out = Tensor::zeros(&[b, k, h, w]);
    for n in 0..b {
        for (oc, &[i, ch]) in sources.iter().enumerate() {
            let c = channels[i];
            out.data_mut()[(n * k + oc) * plane..(n * k + oc + 1) * plane]
                .copy_from_slice(&ins[i].data()[(n * c + ch) * plane..(n * c + ch + 1) * plane]);
        }
    }
    Ok(out)
}
