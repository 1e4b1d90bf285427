//! Whole models end to end, in one process and interleaved: every round runs each model once,
//! in turn, so a machine that slows down (lavapipe shares its CPU cores with everything else)
//! slows them all alike; the medians (and the per-round ratios) are compared.

use super::latency::layer_weights;
use crate::compile::{compile, CompileOptions};
use crate::error::Result;
use crate::gpu::choice::KernelChoice;
use crate::gpu::tune::cached_choice_for;
use crate::gpu::{GpuContext, GpuModel, Precision};
use crate::graph::Graph;
use crate::tensor::Tensor;
use crate::weights::Weights;
use crate::zoo::ModelSpec;
use std::sync::Arc;
use std::time::Instant;

/// Median, fastest and slowest of the timed rounds, in ms.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Timing {
    /// Median.
    pub median_ms: f64,
    /// Fastest round.
    pub min_ms: f64,
    /// Slowest round.
    pub max_ms: f64,
    /// Timed rounds.
    pub rounds: usize,
    /// Every round's ms, in the order run.
    pub samples_ms: Vec<f64>,
    /// Layers whose weights the timed instances stored as halves (0 under f32; under f16
    /// those whose kernel reads them).
    pub f16_weight_layers: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl Timing {
    fn from_samples(samples: Vec<f64>, f16_weight_layers: usize) -> Self {
        let mut s = samples.clone();
        s.sort_by(f64::total_cmp);
        Self {
            median_ms: median(samples.clone()),
            min_ms: s[0],
            max_ms: s[s.len() - 1],
            rounds: s.len(),
            samples_ms: samples,
            f16_weight_layers,
        }
    }

    /// The median over rounds of this model's time / `other`'s in the same round (rounds of
    /// interleaved runs: a slow-down that hits a round hits both).
    pub fn paired_ratio(&self, other: &Timing) -> f64 {
        median(
            self.samples_ms
                .iter()
                .zip(&other.samples_ms)
                .map(|(a, b)| a / b)
                .collect(),
        )
    }
}

/// A model compiled for inference once (BN folded, FLGC exported as its even split, like the
/// latency model's layers), with the kernels the tuning cache gives it at `batch` in its
/// storage precision (as `Runtime` loads a model with `LoadOptions::precision`); its GPU
/// instance is made afresh for every round.
pub struct Prepared {
    graph: Graph,
    weights: Weights,
    choice: KernelChoice,
    input: Tensor,
}

impl Prepared {
    /// Builds and compiles `spec` for `batch`, its weights stored in `precision`.
    pub fn new(
        ctx: &GpuContext,
        spec: &ModelSpec,
        (batch, precision): (usize, Precision),
    ) -> Result<Self> {
        let graph = spec.build()?;
        let (graph, weights) = compile(&graph, &layer_weights(&graph), &CompileOptions::default())?;
        let choice = cached_choice_for(ctx, &graph, batch, precision).with_precision(precision);
        let [c, h, w] = graph.input_shape();
        let input = Tensor::from_fn(&[batch, c, h, w], |i| {
            ((i as u32).wrapping_mul(2_654_435_761) % 2000) as f32 / 1000.0 - 1.0
        });
        Ok(Self {
            graph,
            weights,
            choice,
            input,
        })
    }

    /// A fresh instance, run once untimed, then `runs` timed passes (ms); and how many of
    /// its layers store halves.
    fn time(&self, ctx: &Arc<GpuContext>, runs: usize) -> Result<(Vec<f64>, usize)> {
        let mut m = GpuModel::with_choice(
            ctx.clone(),
            self.graph.clone(),
            &self.weights,
            self.choice.clone(),
        )?;
        m.run_no_readback(&self.input)?;
        let ms = (0..runs)
            .map(|_| {
                let t0 = Instant::now();
                m.run_no_readback(&self.input)?;
                Ok(t0.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_>>()?;
        Ok((ms, m.half_weight_layers().len()))
    }
}

/// Times `specs` end to end at `batch`, stored in `precision`: `warmup` untimed rounds, then
/// `rounds` timed ones.
/// A round makes each model's GPU instance afresh, runs it once untimed and once timed, and
/// drops it, the models in turn (every other round in reverse order) — so a slow-down of the
/// machine hits all models of a round alike, and where an instance's buffers happen to land
/// (on lavapipe the same model's instances differ by up to 1.6× in one process, its 400 MB
/// classifier most) varies from round to round instead of favouring one model for the run.
pub fn time_interleaved(
    ctx: &Arc<GpuContext>,
    specs: &[&ModelSpec],
    at: (usize, Precision),
    (warmup, rounds): (usize, usize),
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<Vec<Timing>> {
    let models = specs
        .iter()
        .map(|s| Prepared::new(ctx, s, at))
        .collect::<Result<Vec<_>>>()?;
    let rounds = rounds.max(1);
    let mut samples = vec![Vec::with_capacity(rounds); models.len()];
    let mut halves = vec![0; models.len()];
    let n = models.len();
    for r in 0..warmup + rounds {
        progress("end to end", r, warmup + rounds);
        for k in 0..n {
            let i = if r % 2 == 0 { k } else { n - 1 - k };
            let (t, h) = models[i].time(ctx, 1)?;
            halves[i] = h;
            if r >= warmup {
                samples[i].extend(t);
            }
        }
    }
    Ok(samples
        .into_iter()
        .zip(halves)
        .map(|(s, h)| Timing::from_samples(s, h))
        .collect())
}
