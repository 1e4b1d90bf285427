//! Whole models end to end, in one process and interleaved: every round runs each model once,
//! in turn, so a machine that slows down (lavapipe shares its CPU cores with everything else)
//! slows them all alike; the medians are compared.

use super::latency::layer_weights;
use crate::error::Result;
use crate::runtime::{LoadOptions, Model, Runtime};
use crate::tensor::Tensor;
use crate::zoo::ModelSpec;
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
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl Timing {
    fn from_samples(samples: Vec<f64>) -> Self {
        let mut s = samples.clone();
        s.sort_by(f64::total_cmp);
        Self {
            median_ms: median(samples.clone()),
            min_ms: s[0],
            max_ms: s[s.len() - 1],
            rounds: s.len(),
            samples_ms: samples,
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

/// Loads `spec` for inference at `batch` with the kernels the tuning cache gives it (FLGC
/// layers as their even split exports, like the latency model's layers).
pub fn load(rt: &Runtime, spec: &ModelSpec, batch: usize) -> Result<Model> {
    let graph = spec.build()?;
    let weights = layer_weights(&graph);
    let opts = LoadOptions {
        tuned_batch: Some(batch),
        ..Default::default()
    };
    rt.load_graph(graph, weights, &opts)
}

fn input(model: &Model, batch: usize) -> Tensor {
    let [c, h, w] = model.graph().input_shape();
    Tensor::from_fn(&[batch, c, h, w], |i| {
        ((i as u32).wrapping_mul(2_654_435_761) % 2000) as f32 / 1000.0 - 1.0
    })
}

fn once(model: &mut Model, x: &Tensor) -> Result<f64> {
    let t0 = Instant::now();
    match model.gpu_model() {
        Some(g) => g.run_no_readback(x)?,
        None => {
            model.run(x)?;
        }
    }
    Ok(t0.elapsed().as_secs_f64() * 1e3)
}

/// Times `specs` end to end at `batch`: `warmup` untimed rounds, then `rounds` timed ones,
/// each running every model once in turn (every other round in reverse order). `progress` is told each round.
pub fn time_interleaved(
    rt: &Runtime,
    specs: &[&ModelSpec],
    batch: usize,
    (warmup, rounds): (usize, usize),
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<Vec<Timing>> {
    let mut models = specs
        .iter()
        .map(|s| load(rt, s, batch))
        .collect::<Result<Vec<_>>>()?;
    let x: Vec<Tensor> = models.iter().map(|m| input(m, batch)).collect();
    let rounds = rounds.max(1);
    let mut samples = vec![Vec::with_capacity(rounds); models.len()];
    for r in 0..warmup + rounds {
        progress("end to end", r, warmup + rounds);
        // Every other round in reverse order: no model always runs right after another.
        let n = models.len();
        for k in 0..n {
            let i = if r % 2 == 0 { k } else { n - 1 - k };
            let t = once(&mut models[i], &x[i])?;
            if r >= warmup {
                samples[i].push(t);
            }
        }
    }
    Ok(samples.into_iter().map(Timing::from_samples).collect())
}
