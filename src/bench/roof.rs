//! Layers against the roof of the device: achieved GFLOP/s (2·MACs / time) or, for
//! memory-bound layers, GB/s, and the share of the roofline `min(GEMM, AI · stream)` each
//! layer reaches.
//!
//! The roof is [`crate::gpu::roofline::measure`]'s: the adapter's streaming read bandwidth
//! and its best fp32 GEMM rate among gconv's GEMM candidates, measured once per bench run in
//! the same process. A layer's arithmetic intensity (AI) is its FLOPs over the bytes it must
//! move at least once: its inputs and output (batch included) and its parameters. Below the
//! ridge point (GEMM / stream) a layer is memory-bound (depthwise convolutions, pooling,
//! element-wise ops, a batch-1 linear layer) and judged by its GB/s against the stream roof;
//! above it by its GFLOP/s against the GEMM roof. Its share of the roof is the same number
//! either way: the time it would take at the roof over the time it took.

use crate::gpu::roofline::Roofline;
use crate::graph::{Graph, ModelCost};
use serde::{Deserialize, Serialize};

/// One executed layer of a model, timed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LayerRow {
    /// Node name.
    pub name: String,
    /// Op kind.
    pub op: String,
    /// The kernel it ran (GPU), see [`crate::gpu::GpuModel::kernels`].
    pub kernel: Option<String>,
    /// Median seconds.
    pub seconds: f64,
    /// MACs of the whole batch.
    pub macs: u64,
    /// Bytes it must move at least once (inputs, output, parameters).
    pub bytes: u64,
    /// Achieved GFLOP/s (2·MACs / time).
    pub gflops: f64,
    /// Achieved GB/s (bytes / time).
    pub gbps: f64,
    /// `compute` or `memory` (arithmetic intensity above or below the ridge point);
    /// `None` without a measured roof.
    pub bound: Option<String>,
    /// Percent of the roof reached; `None` without a measured roof.
    pub roof_pct: Option<f64>,
}

/// The ridge point of `r`, FLOP per byte.
pub fn ridge(r: &Roofline) -> f64 {
    r.gemm_gflops / r.read_gbps.max(1e-9)
}

/// The roof at arithmetic intensity `ai` (FLOP/byte), GFLOP/s.
pub fn roof_gflops(r: &Roofline, ai: f64) -> f64 {
    r.gemm_gflops.min(ai * r.read_gbps)
}

/// Seconds a layer of `macs` and `bytes` would take at the roof.
pub fn ideal_seconds(r: &Roofline, macs: u64, bytes: u64) -> f64 {
    (2.0 * macs as f64 / (r.gemm_gflops * 1e9)).max(bytes as f64 / (r.read_gbps * 1e9))
}

/// How many bytes a layer's values take where they are stored: activations (2 when a pass
/// keeps halves, `--precision f16`) and the parameters of the layers listed as storing
/// halves (2; every other layer's 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueBytes {
    /// Bytes per activation value.
    pub activation: u64,
    /// The layers whose parameters are stored as halves.
    pub half_weights: Vec<String>,
}

impl Default for ValueBytes {
    /// Everything f32.
    fn default() -> Self {
        Self {
            activation: 4,
            half_weights: Vec::new(),
        }
    }
}

/// `(MACs, bytes)` of node `name` of `graph` (whose cost is `cost`) for `batch` samples,
/// values as wide as `widths` says (`None`: not a node). A half-weight layer's weight counts
/// two bytes a value, its bias four (it is stored as f32).
pub fn node_work(
    graph: &Graph,
    cost: &ModelCost,
    (name, batch): (&str, usize),
    widths: &ValueBytes,
) -> Option<(u64, u64)> {
    let (i, node) = graph
        .nodes
        .iter()
        .enumerate()
        .find(|(_, n)| n.name == name)?;
    let numel = |s: &[usize]| s.iter().product::<usize>() as u64;
    if i == 0 {
        // A pass of half activations rounds its f32 upload on the device (its one work on
        // the input): reads 4 bytes a value, writes 2. Otherwise the input is no work.
        let n = numel(&node.shape) * batch as u64;
        return (widths.activation < 4).then_some((0, (4 + widths.activation) * n));
    }
    // `cost.layers` has one entry per node but the input.
    let c = cost.layers.get(i - 1)?;
    let acts: u64 = node
        .inputs
        .iter()
        .map(|&q| numel(&graph.nodes[q].shape))
        .sum::<u64>()
        + numel(&node.shape);
    // A layer storing halves stores its weight so; its bias (and anything else) stays f32.
    let params = if widths.half_weights.iter().any(|n| n == name) {
        let decls = node.op.def().params();
        let of = |half: bool| {
            decls
                .iter()
                .filter(|d| (d.suffix == "weight") == half)
                .map(|d| numel(&d.shape))
                .sum::<u64>()
        };
        2 * of(true) + 4 * of(false)
    } else {
        4 * c.params
    };
    Some((
        c.macs * batch as u64,
        widths.activation * acts * batch as u64 + params,
    ))
}

/// Layer rows of `graph` from per-node median times, with the kernels run, the bytes its
/// values take (`widths`) and the roof.
pub fn layer_rows(
    (graph, batch): (&Graph, usize),
    times: &[(String, f64)],
    kernels: Option<&[(String, String)]>,
    widths: &ValueBytes,
    roof: Option<&Roofline>,
) -> Vec<LayerRow> {
    let cost = graph.cost();
    times
        .iter()
        .map(|(name, secs)| {
            let (macs, bytes) = node_work(graph, &cost, (name, batch), widths).unwrap_or((0, 0));
            let op = graph
                .nodes
                .iter()
                .find(|n| &n.name == name)
                .map_or("?", |n| n.op.kind());
            let kernel = kernels
                .and_then(|k| k.iter().find(|(n, _)| n == name))
                .map(|(_, k)| k.clone());
            let s = secs.max(1e-12);
            let (bound, roof_pct) = match roof {
                Some(r) => {
                    let ai = 2.0 * macs as f64 / (bytes.max(1) as f64);
                    let b = if ai < ridge(r) { "memory" } else { "compute" };
                    let pct = 100.0 * ideal_seconds(r, macs, bytes) / s;
                    (Some(b.to_string()), Some(pct))
                }
                None => (None, None),
            };
            LayerRow {
                name: name.clone(),
                op: op.to_string(),
                kernel,
                seconds: *secs,
                macs,
                bytes,
                gflops: 2.0 * macs as f64 / s / 1e9,
                gbps: bytes as f64 / s / 1e9,
                bound,
                roof_pct,
            }
        })
        .collect()
}

/// The share of the roof of several layers together (Σ time at the roof / Σ time).
pub fn rows_roof_pct(rows: &[&LayerRow], roof: Option<&Roofline>) -> Option<f64> {
    let r = roof?;
    let t: f64 = rows.iter().map(|l| l.seconds).sum();
    let ideal: f64 = rows.iter().map(|l| ideal_seconds(r, l.macs, l.bytes)).sum();
    (t > 0.0).then(|| 100.0 * ideal / t)
}

/// The rate a row is judged by, as text: `12.3 GFLOP/s` (compute-bound) or `4.5 GB/s`.
pub fn rate(l: &LayerRow) -> String {
    match l.bound.as_deref() {
        Some("memory") => format!("{:.2} GB/s", l.gbps),
        _ => format!("{:.2} GFLOP/s", l.gflops),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Conv2dSpec, GraphBuilder, Op};

    /// A layer's bytes follow how its values are stored: halves for f16 activations and for
    /// a layer listed as storing half weights, f32 otherwise.
    #[test]
    fn a_layers_bytes_follow_the_width_of_its_values() {
        let mut b = GraphBuilder::new("t", [8, 6, 6]);
        let spec = Conv2dSpec::square(8, 16, 3, 1, 1);
        let y = b.push("conv", Op::Conv2d(spec), &[b.input()]).unwrap();
        let g = b.finish(y);
        let cost = g.cost();
        let work = |w: &ValueBytes| node_work(&g, &cost, ("conv", 2), w).unwrap();
        let (macs, f32_bytes) = work(&ValueBytes::default());
        let acts = 2 * (8 * 36 + 16 * 36) as u64;
        let params = (16 * 8 * 9) as u64;
        assert_eq!(macs, 2 * 16 * 36 * 8 * 9);
        assert_eq!(f32_bytes, 4 * (acts + params));
        let halves = ValueBytes {
            activation: 2,
            half_weights: vec!["conv".into()],
        };
        assert_eq!(work(&halves).1, 2 * (acts + params));
        let weights_only = ValueBytes {
            activation: 4,
            half_weights: vec!["conv".into()],
        };
        assert_eq!(work(&weights_only).1, 4 * acts + 2 * params);
        let other = ValueBytes {
            activation: 2,
            half_weights: vec!["fc".into()],
        };
        assert_eq!(work(&other).1, 2 * acts + 4 * params);
        // The input: its device-side rounding under half activations, no work in f32.
        let input = |w: &ValueBytes| node_work(&g, &cost, (&g.nodes[0].name, 2), w);
        assert_eq!(input(&halves), Some((0, 6 * 2 * 8 * 36)));
        assert_eq!(input(&ValueBytes::default()), None);
    }

    #[test]
    fn a_half_weight_layers_bias_stays_four_bytes() {
        let mut b = GraphBuilder::new("t", [8, 6, 6]);
        let spec = Conv2dSpec::square(8, 16, 3, 1, 1).bias(true);
        let y = b.push("conv", Op::Conv2d(spec), &[b.input()]).unwrap();
        let g = b.finish(y);
        let cost = g.cost();
        let halves = ValueBytes {
            activation: 2,
            half_weights: vec!["conv".into()],
        };
        let (_, bytes) = node_work(&g, &cost, ("conv", 1), &halves).unwrap();
        let acts = (8 * 36 + 16 * 36) as u64;
        assert_eq!(bytes, 2 * acts + 2 * (16 * 8 * 9) + 4 * 16);
        let (_, f32_bytes) = node_work(&g, &cost, ("conv", 1), &ValueBytes::default()).unwrap();
        assert_eq!(f32_bytes, 4 * (acts + 16 * 8 * 9 + 16));
    }
}
