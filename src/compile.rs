//! The one compile pipeline from a described model to what runs at inference: FLGC layers
//! compiled by index re-ordering (or materialised as `W ⊙ M`), then batch norms folded into
//! their convolutions, and the constant outputs of filters without input (uneven FLGC groups)
//! folded into the 1×1 layers that read them. [`Runtime::load_graph`](crate::Runtime::load_graph) and `gconv export`
//! both call [`compile`].

use crate::error::Result;
use crate::graph::dead_filters::fold_dead_filters;
use crate::graph::passes::{export_flgc, fold_batch_norm, materialize_flgc};
use crate::graph::{Graph, Op};
use crate::weights::Weights;

/// How FLGC layers run at inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlgcMode {
    /// Compiled by index re-ordering into an uneven group convolution (fast).
    #[default]
    Reordered,
    /// The training-time form: a dense convolution with `W ⊙ M` (reference).
    Masked,
}

/// What [`compile`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompileOptions {
    /// Fold batch norms into the preceding convolutions.
    pub fold_bn: bool,
    /// How FLGC layers are compiled.
    pub flgc: FlgcMode,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            fold_bn: true,
            flgc: FlgcMode::Reordered,
        }
    }
}

/// The inference form of `graph` with `weights` (checked against it first).
pub fn compile(
    graph: &Graph,
    weights: &Weights,
    opts: &CompileOptions,
) -> Result<(Graph, Weights)> {
    weights.validate(graph)?;
    let (mut g, mut w) = (graph.clone(), weights.clone());
    if g.nodes.iter().any(|n| matches!(n.op, Op::FlgcConv2d(_))) {
        (g, w) = match opts.flgc {
            FlgcMode::Masked => materialize_flgc(&g, &w)?,
            FlgcMode::Reordered => export_flgc(&g, &w)?,
        };
    }
    if opts.fold_bn {
        (g, w) = fold_batch_norm(&g, &w)?;
        // With BN folded, a filter without input outputs its bias: fold that constant into
        // the 1×1 layers that read it.
        (g, w, _) = fold_dead_filters(&g, &w)?;
    }
    Ok((g, w))
}
