//! The latency model, measured on this device: every distinct (layer shape, G, batch) timed
//! once, alone, with the kernel the tuner picks for it — through the tuner itself
//! ([`tune_graph`]) and its cache, so a layer already in the cache (from `gconv tune`, `bench
//! --tune` or an earlier search on the same adapter) is not measured again, and the kernel
//! whose time is used is the kernel inference then runs.
//!
//! A scheme's predicted latency is the sum of its layers' times (the grouped sites at their G,
//! the other convolutions and fully connected layers as they are) plus the model's fixed cost:
//! what a whole pass costs beyond those layers (pools, adds, activations not fused, the input
//! upload, the submit) and, with the opposite sign, what timing a layer alone adds to it. The
//! fixed cost is measured once per run, on the dense model end to end ([`LatencyModel::calibrate`]),
//! and is the same for every scheme of the model.

use super::space::{layer_graph, Space};
use crate::compile::{compile, CompileOptions};
use crate::error::{Error, Result};
use crate::gpu::tune::{tune_graph, TuneCache, TuneOptions};
use crate::gpu::{GpuContext, Precision};
use crate::graph::{Graph, Op};
use crate::train::selection::{init_selection, FlgcInit};
use crate::weights::Weights;
use serde::Serialize;
use std::sync::Arc;

/// Timed rounds per candidate when the search tunes a layer the cache lacks (`gconv tune`
/// uses 3): the search relies on the time, not only on which kernel wins.
pub const TUNE_REPEATS: usize = 5;

/// The measured time of one layer.
#[derive(Clone, Debug, Serialize)]
pub struct LayerTime {
    /// Node name.
    pub node: String,
    /// G (1 for a layer no scheme groups).
    pub g: usize,
    /// The tuning cache's shape key.
    pub key: String,
    /// The kernel timed (the tuner's choice).
    pub kernel: String,
    /// Median milliseconds.
    pub ms: f64,
    /// `tuned` (measured in this run) or `cached` / `shared` (from the cache).
    pub source: &'static str,
}

/// Per-site, per-G layer times, the other layers' times and the fixed cost.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyModel {
    /// Batch size the layers were timed at.
    pub batch: usize,
    /// The storage precision the layers were timed in (f16: as `--precision f16` runs them,
    /// under the cache's ` f16` keys).
    pub precision: Precision,
    /// `site_ms[i]`: `(G, ms)` of site `i` of the space, G ascending.
    pub site_ms: Vec<Vec<(usize, f64)>>,
    /// The layers no scheme groups (stem, depthwise convs, classifier …), as they are.
    pub other_layers: Vec<LayerTime>,
    /// Every layer time, sites and others, in the order measured.
    pub layers: Vec<LayerTime>,
    /// The fixed cost in ms (0 until [`LatencyModel::calibrate`]).
    pub fixed_ms: f64,
    /// Layers measured in this run.
    pub measured_now: usize,
    /// Layers whose time came from the cache.
    pub from_cache: usize,
}

impl LatencyModel {
    /// Times every variant of every site of `space` and every other tunable layer of the dense
    /// model at `batch`, stored in `precision`, through `cache` (saved after each layer
    /// measured, so an interrupted search keeps what it measured). `progress` is told each
    /// layer as it starts.
    pub fn measure(
        ctx: &Arc<GpuContext>,
        space: &Space,
        (batch, precision): (usize, Precision),
        cache: &mut TuneCache,
        progress: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<Self> {
        let dense = space.base.build()?;
        let others: Vec<String> = dense
            .nodes
            .iter()
            .filter(|n| {
                matches!(
                    n.op,
                    Op::Conv2d(_) | Op::FlgcConv2d(_) | Op::Linear(_) | Op::GroupedConvTable(_)
                )
            })
            .filter(|n| !space.sites.iter().any(|s| s.node == n.name))
            .map(|n| n.name.clone())
            .collect();
        let total = space.sites.iter().map(|s| s.variants.len()).sum::<usize>() + others.len();
        let mut m = Self {
            batch,
            precision,
            site_ms: Vec::with_capacity(space.sites.len()),
            other_layers: Vec::new(),
            layers: Vec::with_capacity(total),
            fixed_ms: 0.0,
            measured_now: 0,
            from_cache: 0,
        };
        let mut done = 0;
        for site in &space.sites {
            let mut row = Vec::with_capacity(site.variants.len());
            for v in &site.variants {
                progress(&format!("{} G={}", site.node, v.g), done, total);
                let t = m.time(ctx, &v.graph, &site.node, v.g, cache)?;
                row.push((v.g, t.ms));
                done += 1;
            }
            m.site_ms.push(row);
        }
        for name in &others {
            progress(name, done, total);
            let t = m.time(ctx, &layer_graph(&dense, name)?, name, 1, cache)?;
            m.other_layers.push(t);
            done += 1;
        }
        progress("layers timed", total, total);
        Ok(m)
    }

    fn time(
        &mut self,
        ctx: &Arc<GpuContext>,
        graph: &Graph,
        node: &str,
        g: usize,
        cache: &mut TuneCache,
    ) -> Result<LayerTime> {
        let (exec, _) = compile(graph, &layer_weights(graph), &CompileOptions::default())?;
        let opts = TuneOptions {
            batch: self.batch,
            repeats: TUNE_REPEATS,
            precision: self.precision,
            ..TuneOptions::default()
        };
        let rows = tune_graph(ctx, &exec, cache, &opts, &mut |_, _, _| {})?;
        let [r] = &rows[..] else {
            return Err(Error::shape(
                node,
                format!("search: expected one tunable layer, found {}", rows.len()),
            ));
        };
        let ms = r
            .candidates
            .iter()
            .find(|c| c.kernel == r.chosen)
            .and_then(|c| c.median_s)
            .map(|s| s * 1e3)
            .ok_or_else(|| {
                Error::shape(
                    node,
                    format!(
                        "search: no time for the chosen kernel {} (key {})",
                        r.chosen, r.key
                    ),
                )
            })?;
        if r.source == "tuned" {
            self.measured_now += 1;
            cache.save()?;
        } else {
            self.from_cache += 1;
        }
        let t = LayerTime {
            node: node.to_string(),
            g,
            key: r.key.clone(),
            kernel: r.chosen.clone(),
            ms,
            source: r.source,
        };
        self.layers.push(t.clone());
        Ok(t)
    }

    /// The summed time of the layers no scheme groups.
    pub fn other_ms(&self) -> f64 {
        self.other_layers.iter().map(|l| l.ms).sum()
    }

    /// The summed time of every layer with each site at `site_groups` (`None` when a site has
    /// no time for its G).
    pub fn layers_ms(&self, site_groups: &[usize]) -> Option<f64> {
        let mut t = self.other_ms();
        for (row, &g) in self.site_ms.iter().zip(site_groups) {
            t += row.iter().find(|(rg, _)| *rg == g)?.1;
        }
        Some(t)
    }

    /// Predicted whole-model milliseconds: the layers plus the fixed cost.
    pub fn predict(&self, site_groups: &[usize]) -> Option<f64> {
        Some(self.layers_ms(site_groups)? + self.fixed_ms)
    }

    /// Sets the fixed cost from the dense model's measured whole-pass time (every site at
    /// G = 1): measured − its layers.
    pub fn calibrate(&mut self, dense_measured_ms: f64) {
        let ones = vec![1; self.site_ms.len()];
        self.fixed_ms = dense_measured_ms - self.layers_ms(&ones).unwrap_or(0.0);
    }
}

/// Seeded weights for a graph; FLGC selections start as the even (SGC) partition, so an FLGC
/// layer is timed — and costed — as its even split exports.
pub fn layer_weights(graph: &Graph) -> Weights {
    let mut w = Weights::init(graph, 0);
    init_selection(graph, &mut w, FlgcInit::Balanced, 0);
    w
}
