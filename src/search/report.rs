//! What a search found, as data (`--json`), as a table, and as scheme files.

use super::latency::LayerTime;
use super::measure::Timing;
use super::optimize::Point;
use serde::Serialize;
use std::collections::BTreeMap;

/// One scheme as reported: its groups, predicted and measured latency, MACs and parameters.
#[derive(Clone, Debug, Serialize)]
pub struct SchemeResult {
    /// Scheme name (`A`, `found-as-fast-as-E`, `dense`, …).
    pub scheme: String,
    /// G per stage ([`crate::zoo::ModelSpec::stage_names`]).
    pub groups_by_stage: Vec<usize>,
    /// G of single layers (per-layer schemes; layers at G = 1 left out).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, usize>,
    /// Predicted whole-model milliseconds.
    pub predicted_ms: f64,
    /// The summed layer times of the prediction (without the fixed cost), ms.
    pub layers_ms: f64,
    /// Measured whole-model median milliseconds (when measured end to end).
    pub measured_ms: Option<f64>,
    /// The end-to-end timing.
    pub measured: Option<Timing>,
    /// (predicted − measured) / measured, in %.
    pub error_pct: Option<f64>,
    /// The same error of the scheme's time relative to the dense model's, in %: predicted
    /// ratio to the dense model's prediction vs the measured ratio (the median of the
    /// interleaved rounds' ratios). A machine that runs at another speed during the
    /// end-to-end check than while the layers were timed (lavapipe shares its cores) moves
    /// `error_pct` of every scheme alike and this not at all.
    pub error_vs_dense_pct: Option<f64>,
    /// MACs per image.
    pub macs: u64,
    /// Inference parameters.
    pub params: u64,
}

impl SchemeResult {
    /// Records an end-to-end timing.
    pub fn set_measured(&mut self, t: Timing) {
        self.measured_ms = Some(t.median_ms);
        self.error_pct = Some(100.0 * (self.predicted_ms - t.median_ms) / t.median_ms);
        self.measured = Some(t);
    }

    /// Records the measured ratio of this scheme's time to the dense model's, whose
    /// prediction is `dense_predicted_ms`.
    pub fn set_vs_dense(&mut self, dense_predicted_ms: f64, measured_ratio: f64) {
        let predicted_ratio = self.predicted_ms / dense_predicted_ms;
        self.error_vs_dense_pct = Some(100.0 * (predicted_ratio / measured_ratio - 1.0));
    }
}

/// The answer for one target (a budget, a reference scheme or a speed-up).
#[derive(Clone, Debug, Serialize)]
pub struct SearchResult {
    /// `budget 120 ms`, `as fast as E`, `2× the dense model`.
    pub target: String,
    /// The predicted-latency budget searched under, ms.
    pub budget_ms: f64,
    /// The scheme found: the most MACs (then parameters) within the budget.
    pub found: SchemeResult,
    /// The reference scheme (`--as-fast-as`).
    pub reference: Option<SchemeResult>,
    /// found / reference measured time, the median over the interleaved rounds of each
    /// round's ratio (`--as-fast-as`).
    pub measured_ratio: Option<f64>,
    /// The scheme file's text.
    pub scheme_toml: String,
}

/// A point of a Pareto front, whole-model.
#[derive(Clone, Debug, Serialize)]
pub struct FrontPoint {
    /// G per unit.
    pub groups: Vec<usize>,
    /// Predicted whole-model ms.
    pub predicted_ms: f64,
    /// MACs per image.
    pub macs: u64,
    /// Parameters.
    pub params: u64,
}

impl FrontPoint {
    pub(super) fn of(p: &Point, base_ms: f64, base: (u64, u64)) -> Self {
        Self {
            groups: p.groups.clone(),
            predicted_ms: base_ms + p.ms,
            macs: base.0 + p.macs,
            params: base.1 + p.params,
        }
    }
}

/// A unit of the space.
#[derive(Clone, Debug, Serialize)]
pub struct UnitInfo {
    /// Stage or layer name.
    pub name: String,
    /// Its convolutions.
    pub layers: Vec<String>,
    /// The G it can take.
    pub groups: Vec<usize>,
}

/// The latency model as measured.
#[derive(Clone, Debug, Serialize)]
pub struct LatencySummary {
    /// Fixed cost, ms (dense measured − dense layers).
    pub fixed_ms: f64,
    /// The layers no scheme groups, summed, ms.
    pub other_layers_ms: f64,
    /// Layers measured in this run.
    pub layers_measured_now: usize,
    /// Layers taken from the tuning cache.
    pub layers_from_cache: usize,
    /// The tuning cache file.
    pub cache: String,
    /// Every layer time.
    pub layers: Vec<LayerTime>,
    /// The dense model's end-to-end timing the fixed cost was set from (before the search;
    /// `dense` in the report is its re-measurement with the other schemes).
    pub calibration: Timing,
}

/// Wall-clock seconds of the parts of a search.
#[derive(Clone, Debug, Serialize)]
pub struct Seconds {
    /// Timing the layers (tuning what the cache lacks).
    pub layers: f64,
    /// Whole-model runs (calibration and the schemes found).
    pub end_to_end: f64,
    /// Everything.
    pub total: f64,
}

/// Everything a search did and found.
#[derive(Clone, Debug, Serialize)]
pub struct SearchReport {
    /// Model name.
    pub model: String,
    /// Per-image input `[C, H, W]`.
    pub input: [usize; 3],
    /// Batch size.
    pub batch: usize,
    /// The storage precision timed in (`f32` or `f16`).
    pub precision: crate::gpu::Precision,
    /// `sgc` or `flgc`.
    pub conv: String,
    /// Per-layer units instead of stages.
    pub per_layer: bool,
    /// The device.
    pub device: String,
    /// The G values searched (1 added).
    pub groups_searched: Vec<usize>,
    /// Asked-for G values no unit can take.
    pub unused_groups: Vec<usize>,
    /// Stage names of the model (the order of `groups_by_stage`).
    pub stages: Vec<String>,
    /// The units searched over.
    pub units: Vec<UnitInfo>,
    /// Number of schemes in the space.
    pub space_size: u128,
    /// Searched exactly (Pareto dynamic programming over the units).
    pub method: &'static str,
    /// The latency model.
    pub latency: LatencySummary,
    /// The dense model, re-measured with the schemes found (its prediction comes from the
    /// calibration run before the search).
    pub dense: SchemeResult,
    /// One per target.
    pub results: Vec<SearchResult>,
    /// Reference schemes marked on the fronts (Gong et al.'s A–E on VGG, uniform G
    /// elsewhere), predicted.
    pub marks: Vec<SchemeResult>,
    /// Pareto front latency vs MACs (then parameters).
    pub front_macs: Vec<FrontPoint>,
    /// Pareto front latency vs parameters (then MACs).
    pub front_params: Vec<FrontPoint>,
    /// How long it took.
    pub seconds: Seconds,
}

impl SearchReport {
    /// The device's name up to its first ` (` or `·` (`llvmpipe`).
    pub fn device_short(&self) -> &str {
        let end = self.device.find([' ', '(']).unwrap_or(self.device.len());
        &self.device[..end]
    }
}
