//! Timing one layer's candidates ([`tune_layer`]) and what it found.

use super::{candidates, CachedChoice, LayerProblem, TunableLayer, MIN_GAIN};
use crate::error::{Error, Result};
use crate::gpu::choice::{Adapter, KernelChoice};
use crate::gpu::context::GpuContext;
use crate::gpu::executor::GpuModel;
use crate::gpu::precision::Precision;
use crate::graph::{Graph, GraphBuilder, Op};
use crate::ops::Flatten;
use crate::tensor::Tensor;
use crate::testing::{check_close, Tolerance};
use crate::weights::Weights;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// One candidate of one layer.
#[derive(Clone, Debug, Serialize)]
pub struct CandidateTime {
    /// Kernel name.
    pub kernel: String,
    /// Median seconds (`None`: not timed to the end, see `note`).
    pub median_s: Option<f64>,
    /// Why it was not chosen, if it could not be (fails, wrong output, dropped as slow).
    pub note: Option<String>,
    /// Whether the layer's weights were stored as halves for it (timed under f16 by a
    /// kernel that reads them; `None`: not built, or read from the cache).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_weights: Option<bool>,
}

/// What tuning found for one layer.
#[derive(Clone, Debug, Serialize)]
pub struct LayerTuning {
    /// Node name.
    pub node: String,
    /// Cache key of its shape.
    pub key: String,
    /// The untuned kernel.
    pub default: String,
    /// The candidates (the default first).
    pub candidates: Vec<CandidateTime>,
    /// The kernel chosen.
    pub chosen: String,
    /// Default's median / the chosen kernel's.
    pub speedup: f64,
    /// `tuned`, `cached` (from an earlier run) or `shared` (same shape as an earlier layer).
    pub source: &'static str,
}

impl LayerTuning {
    pub(super) fn from_cache(l: &TunableLayer, c: &CachedChoice, source: &'static str) -> Self {
        Self {
            node: l.node.clone(),
            key: l.key.clone(),
            default: c.default.clone(),
            candidates: c
                .times_ms
                .iter()
                .map(|(k, ms)| CandidateTime {
                    kernel: k.clone(),
                    median_s: Some(ms * 1e-3),
                    note: None,
                    half_weights: None,
                })
                .collect(),
            chosen: c.kernel.clone(),
            speedup: c.speedup,
            source,
        }
    }
}

fn layer_graph(l: &TunableLayer) -> Result<Graph> {
    let flat = matches!(l.op, Op::Linear(_));
    let input = match l.in_shape[..] {
        [c, h, w] => [c, h, w],
        [n] => [n, 1, 1],
        _ => {
            return Err(Error::shape(
                &l.node,
                "cannot tune a layer of this input rank",
            ))
        }
    };
    let mut b = GraphBuilder::new(format!("tune {}", l.node), input);
    let mut x = b.input();
    if flat {
        x = b.push("flatten", Op::Flatten(Flatten), &[x])?;
    }
    let y = b.push(&l.node, l.op.clone(), &[x])?;
    Ok(b.finish(y))
}

/// A deterministic input of `batch` samples; the input and the output at that batch are
/// checked against [`crate::limits::MAX_TENSOR_ELEMENTS`] first (a tuning batch of 10⁸ is an
/// error naming the layer, not an allocation failure).
fn random_input(graph: &Graph, batch: usize) -> Result<Tensor> {
    let [c, h, w] = graph.input_shape();
    let out: Vec<usize> = std::iter::once(batch)
        .chain(graph.output_shape().iter().copied())
        .collect();
    for (what, shape) in [("input", &[batch, c, h, w][..]), ("output", &out)] {
        crate::limits::check_shape(shape).map_err(|m| {
            Error::InvalidArgument(format!("{} at batch {batch}: {what}: {m}", graph.name))
        })?;
    }
    Ok(Tensor::from_fn(&[batch, c, h, w], |i| {
        ((i as u32).wrapping_mul(2_654_435_761) % 2000) as f32 / 1000.0 - 1.0
    }))
}

/// Times the candidates of one layer (see the module doc); the default is the first.
pub fn tune_layer(ctx: &Arc<GpuContext>, l: &TunableLayer, repeats: usize) -> Result<LayerTuning> {
    let a = Adapter::of(ctx);
    let graph = layer_graph(l)?;
    let weights = Weights::init(&graph, 7);
    let batch = match &l.problem {
        LayerProblem::Conv(p) => p.batch,
        LayerProblem::Linear(s) => s.batch,
    };
    let x = random_input(&graph, batch)?;
    let kernels = candidates(&l.problem, &a, l.precision);
    // Candidates agree with the default within the tolerance of the precision timed.
    let tol = match l.precision {
        Precision::F32 => Tolerance::F32_OP,
        Precision::F16 => Tolerance::F16_OP,
    };
    let mut rows: Vec<CandidateTime> = Vec::new();
    let mut live: Vec<(usize, GpuModel, Vec<f64>)> = Vec::new();
    let mut reference: Option<Tensor> = None;
    for (i, k) in kernels.iter().enumerate() {
        let name = k.name();
        let built = GpuModel::with_choice(
            ctx.clone(),
            graph.clone(),
            &weights,
            k.force(&l.node, KernelChoice::new().with_precision(l.precision)),
        )
        .and_then(|mut m| m.run(&x).map(|y| (m, y)));
        let half_weights = built
            .as_ref()
            .ok()
            .map(|(m, _)| m.half_weight_layers().contains(&l.node));
        let note = match (built, &reference) {
            (Err(e), _) if i == 0 => return Err(e),
            (Err(e), _) => Some(format!("fails: {e}")),
            (Ok((m, y)), None) => {
                reference = Some(y);
                live.push((i, m, Vec::new()));
                None
            }
            (Ok((m, y)), Some(r)) => match check_close(&name, y.data(), r.data(), tol) {
                Ok(()) => {
                    live.push((i, m, Vec::new()));
                    None
                }
                Err(msg) => Some(format!("output differs from the default: {msg}")),
            },
        };
        rows.push(CandidateTime {
            kernel: name,
            median_s: None,
            note,
            half_weights,
        });
    }
    for round in 0..repeats.max(1) {
        for (_, m, t) in live.iter_mut() {
            let t0 = Instant::now();
            m.run_no_readback(&x)?;
            t.push(t0.elapsed().as_secs_f64());
        }
        if round == 0 {
            let best = live.iter().map(|c| c.2[0]).fold(f64::INFINITY, f64::min);
            live.retain(|(i, _, t)| {
                let keep = *i == 0 || t[0] <= 3.0 * best;
                if !keep {
                    rows[*i].note = Some(format!("dropped: {:.2} ms in round 1", t[0] * 1e3));
                }
                keep
            });
        }
    }
    for (i, _, t) in &mut live {
        t.sort_by(f64::total_cmp);
        rows[*i].median_s = Some(t[t.len() / 2]);
    }
    let median = |i: usize| rows[i].median_s.unwrap_or(f64::INFINITY);
    let fastest = live
        .iter()
        .map(|(i, ..)| *i)
        .min_by(|&p, &q| median(p).total_cmp(&median(q)))
        .unwrap_or(0);
    let best = if median(fastest) <= (1.0 - MIN_GAIN) * median(0) {
        fastest
    } else {
        0
    };
    let speedup = match (rows[0].median_s, rows[best].median_s) {
        (Some(d), Some(b)) if b > 0.0 => d / b,
        _ => 1.0,
    };
    Ok(LayerTuning {
        node: l.node.clone(),
        key: l.key.clone(),
        default: rows[0].kernel.clone(),
        chosen: rows[best].kernel.clone(),
        candidates: rows,
        speedup,
        source: "tuned",
    })
}
