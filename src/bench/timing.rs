//! Timing helpers of the suites: whole passes, per-node times with the kernels run, and
//! loading a model with the tuned kernel choices (tuning it first under `--tune`).

use super::roof::{layer_rows, LayerRow, ValueBytes};
use super::{BenchConfig, BenchControl, Stats};
use crate::error::{Error, Result};
use crate::gpu::pass_stages::PassStages;
use crate::gpu::roofline::Roofline;
use crate::gpu::tune::{tune_graph, TuneCache, TuneOptions};
use crate::graph::Graph;
use crate::runtime::{LoadOptions, Model, Runtime};
use crate::tensor::Tensor;
use std::time::Instant;

/// A deterministic input of `batch` samples for `g`; its size is checked against
/// [`crate::limits::MAX_TENSOR_ELEMENTS`] before it is made.
pub(super) fn input_for(g: &Graph, batch: usize, seed: u32) -> Result<Tensor> {
    let [c, h, w] = g.input_shape();
    crate::limits::check_shape(&[batch, c, h, w])
        .map_err(|m| Error::InvalidArgument(format!("{}: input at batch {batch}: {m}", g.name)))?;
    Ok(Tensor::from_fn(&[batch, c, h, w], |i| {
        (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2000) as f32 / 1000.0 - 1.0
    }))
}

/// Stats of `repeats` timed passes after `warmup` untimed ones; every pass is reported to
/// `ctl` (which may stop the run).
pub(super) fn time_model(
    model: &mut Model,
    x: &Tensor,
    warmup: usize,
    repeats: usize,
    ctl: &BenchControl,
) -> Result<Stats> {
    time_model_staged(model, x, (warmup, repeats), ctl).map(|(s, _)| s)
}

/// [`time_model`], and where the timed passes' time went on the GPU path: the median of
/// each stage ([`PassStages`]; `None` on the CPU path).
pub(super) fn time_model_staged(
    model: &mut Model,
    x: &Tensor,
    (warmup, repeats): (usize, usize),
    ctl: &BenchControl,
) -> Result<(Stats, Option<PassStages>)> {
    let mut stages = Vec::new();
    let mut once = |m: &mut Model| -> Result<f64> {
        // A device lost since the last pass: the model moves to a new one first.
        m.recover()?;
        let t0 = Instant::now();
        match m.gpu_model() {
            Some(g) => {
                g.run_no_readback(x)?;
                stages.extend(g.last_stages());
            }
            None => {
                m.run(x)?;
            }
        }
        Ok(t0.elapsed().as_secs_f64())
    };
    ctl.tick("warm-up", 0, warmup)?;
    for i in 0..warmup {
        once(model)?;
        ctl.tick("warm-up", i + 1, warmup)?;
    }
    let n = repeats.max(1);
    ctl.tick("timed", 0, n)?;
    let samples = (0..n)
        .map(|i| {
            let t = once(model)?;
            ctl.tick("timed", i + 1, n)?;
            Ok(t)
        })
        .collect::<Result<Vec<_>>>()?;
    let stats = Stats::from_samples(samples).expect("at least one run");
    // The warm-up passes' stages (the first may include the compile) are left out.
    let timed = stages.get(warmup..).unwrap_or_default();
    Ok((stats, PassStages::median(timed)))
}

/// Block of a node name: `layer2.1.conv1` → `layer2.1`, `features.3.conv.0.0` →
/// `features.3`; stem and head layers by name.
pub fn block_of(name: &str) -> String {
    if name.starts_with("layer") || name.starts_with("features.") {
        name.splitn(3, '.').take(2).collect::<Vec<_>>().join(".")
    } else if ["avgpool", "flatten", "fc"].contains(&name) || name.starts_with("classifier") {
        "head".into()
    } else {
        "stem".into()
    }
}

/// Median GPU (or CPU) time of every node of the executed graph over `repeats` timed
/// passes after `warmup`, and how it was measured.
pub(super) fn node_times(
    model: &mut Model,
    x: &Tensor,
    warmup: usize,
    repeats: usize,
    ctl: &BenchControl,
) -> Result<(String, Vec<(String, f64)>)> {
    let mut per_node: Vec<(String, Vec<f64>)> = Vec::new();
    let mut method = String::from("cpu");
    let passes = warmup + repeats.max(1);
    ctl.tick("per-layer", 0, passes)?;
    for r in 0..passes {
        model.recover()?;
        let times: Vec<(String, f64)> = match model.gpu_model() {
            Some(g) => {
                let lt = g.time_layers(x)?;
                method = lt.method.to_string();
                lt.layers.into_iter().map(|(n, _, t)| (n, t)).collect()
            }
            None => crate::cpu::run_graph_timed(model.exec_graph(), model.exec_weights(), x)?.1,
        };
        ctl.tick("per-layer", r + 1, passes)?;
        if r < warmup {
            continue;
        }
        if per_node.is_empty() {
            per_node = times.iter().map(|(n, _)| (n.clone(), Vec::new())).collect();
        }
        for (slot, (_, t)) in per_node.iter_mut().zip(times) {
            slot.1.push(t);
        }
    }
    let medians = per_node
        .into_iter()
        .map(|(n, s)| (n, Stats::from_samples(s).map_or(0.0, |s| s.median)))
        .collect();
    Ok((method, medians))
}

/// Per-node median times of one pass at `x`'s batch as layer rows: the kernel each node ran
/// and its share of `roof`; and how the times were taken.
pub(super) fn layer_times(
    model: &mut Model,
    x: &Tensor,
    (warmup, repeats): (usize, usize),
    roof: Option<&Roofline>,
    ctl: &BenchControl,
) -> Result<(String, Vec<LayerRow>)> {
    let (method, times) = node_times(model, x, warmup, repeats, ctl)?;
    let batch = x.shape()[0];
    let kernels = match model.gpu_model() {
        Some(g) => Some(g.kernels(batch)?),
        None => None,
    };
    let widths = value_bytes(model, batch)?;
    let graph = (model.exec_graph(), batch);
    let rows = layer_rows(graph, &times, kernels.as_deref(), &widths, roof);
    Ok((method, rows))
}

/// How wide `model`'s values are stored at `batch`: halves where an f16 model keeps them
/// (its activations, when the whole pass does, and the weights of the layers that store
/// halves), else f32 (the CPU path too).
pub(super) fn value_bytes(model: &mut Model, batch: usize) -> Result<ValueBytes> {
    let Some(g) = model.gpu_model() else {
        return Ok(ValueBytes::default());
    };
    let (activations, _) = g.activation_precision(batch)?;
    Ok(ValueBytes {
        activation: if activations == crate::gpu::Precision::F16 {
            2
        } else {
            4
        },
        half_weights: g.half_weight_layers(),
    })
}

/// Layer times summed by [`block_of`], in order.
pub(super) fn blocks(rows: &[LayerRow]) -> Vec<(String, f64)> {
    let mut blocks: Vec<(String, f64)> = Vec::new();
    for l in rows {
        let b = block_of(&l.name);
        match blocks.last_mut() {
            Some((lb, t)) if *lb == b => *t += l.seconds,
            _ => blocks.push((b, l.seconds)),
        }
    }
    blocks
}

/// The load options of a bench run: the kernel choices tuned for its batch, unless
/// `--no-tune`.
pub(super) fn load_options(cfg: &BenchConfig) -> LoadOptions {
    LoadOptions {
        tuned_batch: cfg.tuned.then_some(cfg.batch),
        precision: cfg.precision,
        ..Default::default()
    }
}

/// Loads a model with `load`; under `--tune` on a GPU, first tunes the layers of its executed
/// graph that the cache lacks (at the run's batch) and saves the cache. Under `--precision
/// f16`, a model whose activations stay f32 is noted in `f32_activations` (`name: why`).
pub(super) fn load_tuned(
    rt: &Runtime,
    cfg: &BenchConfig,
    f32_activations: &mut Vec<String>,
    load: &dyn Fn(&LoadOptions) -> Result<Model>,
) -> Result<Model> {
    let mut model = load_untuned_or_tuned(rt, cfg, load)?;
    if cfg.precision == crate::gpu::Precision::F16 {
        let name = model.graph().name.clone();
        if let Some(m) = model.gpu_model() {
            // Prepared at the run's batch, as its timing would; a batch that must be split
            // into chunks says nothing here.
            if let Ok((crate::gpu::Precision::F32, Some(why))) = m.activation_precision(cfg.batch) {
                let note = format!("{name}: {why}");
                if !f32_activations.contains(&note) {
                    f32_activations.push(note);
                }
            }
        }
    }
    Ok(model)
}

fn load_untuned_or_tuned(
    rt: &Runtime,
    cfg: &BenchConfig,
    load: &dyn Fn(&LoadOptions) -> Result<Model>,
) -> Result<Model> {
    let opts = load_options(cfg);
    if let (true, Some(ctx)) = (cfg.tune, rt.gpu()) {
        let untuned = load(&LoadOptions {
            tuned_batch: None,
            ..opts.clone()
        })?;
        let mut cache = TuneCache::load_default();
        let t = TuneOptions {
            batch: cfg.batch,
            precision: cfg.precision,
            save_each_layer: true,
            ..Default::default()
        };
        tune_graph(ctx, untuned.exec_graph(), &mut cache, &t, &mut |_, _, _| {})?;
        cache.save()?;
    }
    load(&opts)
}
