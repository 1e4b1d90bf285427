//! What `gconv bench` reports: timing statistics and the rows of each suite (the JSON schema
//! in the README).

use super::{BenchConfig, LayerRow, LayerShape};
use serde::{Deserialize, Serialize};

/// Median, min and max of timed runs, in seconds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// Median.
    pub median: f64,
    /// Fastest.
    pub min: f64,
    /// Slowest.
    pub max: f64,
    /// Number of timed runs.
    pub runs: usize,
}

impl Stats {
    /// From samples (seconds); `None` if empty.
    pub fn from_samples(mut s: Vec<f64>) -> Option<Self> {
        if s.is_empty() {
            return None;
        }
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            0.5 * (s[n / 2 - 1] + s[n / 2])
        };
        Some(Self {
            median,
            min: s[0],
            max: s[n - 1],
            runs: n,
        })
    }
}

/// One model of the paper1 suite.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelRow {
    /// Model name (with scheme).
    pub model: String,
    /// Scheme name, `baseline` for none.
    pub scheme: String,
    /// Inference parameters.
    pub params: u64,
    /// MACs per image.
    pub macs: u64,
    /// Latency at `batch`.
    pub latency: Stats,
    /// Latency at `large_batch`, if run.
    pub large_batch_latency: Option<Stats>,
    /// Images per second at the large batch (or at `batch`).
    pub throughput_ips: f64,
    /// MAC reduction vs baseline, percent.
    pub macs_reduction_pct: f64,
    /// Median-latency reduction vs baseline, percent.
    pub time_reduction_pct: f64,
    /// Per-layer rows at `batch` (with `per_layer`; else empty).
    pub layers: Vec<LayerRow>,
    /// Where a timed pass at `batch` went, stage by stage (medians; the GPU path only).
    #[serde(default)]
    pub pass_stages: Option<crate::gpu::pass_stages::PassStages>,
}

/// Per-block times of one model of the paper2 suite.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerwiseRow {
    /// Model label (e.g. `resnet50-dsc-flgc G=4`).
    pub model: String,
    /// `timestamp-query`, `submit-and-wait` or `cpu`.
    pub method: String,
    /// MACs per image.
    pub macs: u64,
    /// `(block, median seconds)`: `stem`, `layer1.0` … `layer4.2`, `head`.
    pub blocks: Vec<(String, f64)>,
    /// Sum of the blocks.
    pub total: f64,
    /// Share of the roof over all layers, percent (`None` without a measured roof).
    pub roof_pct: Option<f64>,
    /// Every executed node: kernel, time, rate, share of the roof.
    pub layers: Vec<LayerRow>,
}

/// One (layer, G) point of the sweep.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepRow {
    /// Layer shape.
    pub layer: LayerShape,
    /// Groups.
    pub groups: usize,
    /// MACs per image.
    pub macs: u64,
    /// Timing.
    pub time: Stats,
    /// Dense time / this time.
    pub speedup_vs_dense: f64,
    /// Ideal speedup (= G, the MAC ratio).
    pub ideal_speedup: f64,
    /// The kernel that ran (GPU).
    pub kernel: Option<String>,
    /// Achieved GFLOP/s (2·MACs·batch / median time).
    pub gflops: f64,
    /// Share of the roof, percent (`None` without a measured roof).
    pub roof_pct: Option<f64>,
}

/// Everything one `gconv bench` run measured. Documented as the JSON schema in README.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchReport {
    /// gconv version.
    pub gconv_version: String,
    /// The device: adapter name, backend, driver (or the CPU).
    pub device: String,
    /// Whether the device is a CPU (lavapipe, the CPU path) rather than a real GPU.
    pub software_device: bool,
    /// The configuration.
    pub config: BenchConfig,
    /// paper1 rows (baseline first).
    pub paper1: Vec<ModelRow>,
    /// paper2 rows.
    pub paper2: Vec<LayerwiseRow>,
    /// MobileNetV2 dense / SGC / FLGC per-block times.
    pub mobilenet: Vec<LayerwiseRow>,
    /// Planned memory of a GPU training step (empty on the CPU path).
    pub training_memory: Vec<TrainingMemoryRow>,
    /// sweep rows.
    pub sweep: Vec<SweepRow>,
    /// The user's models (`--model`).
    pub models: Vec<super::UserModelRow>,
    /// The adapter's roof (streaming read, best GEMM), when a suite needed it.
    pub roofline: Option<crate::gpu::roofline::Roofline>,
    /// Under `--precision f16`: each model whose activations stayed f32, and why
    /// (`"name: reason"`, once each; absent when every model ran with halves, or in f32).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub f32_activations: Vec<String>,
}

/// The planned device memory of one training step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainingMemoryRow {
    /// Model and G.
    pub model: String,
    /// Batch size.
    pub batch: usize,
    /// Planned buffers against one buffer per value.
    pub plan: crate::gpu::program::MemoryPlan,
}
