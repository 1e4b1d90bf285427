//! The `models` suite: the user's own models (`gconv bench --model a.onnx --model b.onnx`),
//! side by side with the same timing as the paper suites. An ONNX model whose channel
//! permutations were folded into its convolutions is also run unfolded, so the report shows
//! what the fold buys on this device.

use super::timing::{input_for, layer_times, load_tuned, time_model, time_model_staged};
use super::{BenchConfig, BenchControl, LayerRow, Stats};
use crate::error::Error;
use crate::error::Result;
use crate::gpu::roofline::Roofline;
use crate::graph::{FoldReport, Graph, Op};
use crate::runtime::{LoadOptions, Model, Runtime};
use crate::zoo::ModelSpec;
use serde::{Deserialize, Serialize};

/// What `gconv bench --model NAME` was told explicitly about its zoo models; `None` / empty:
/// the model's own. Applied as `gconv info` applies the same flags, so the timed model is the
/// one described (`--groups G`: `ModelSpec::with_groups(G, None)`, one row per G).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelOptions {
    /// Input height = width (`--input-size`).
    pub input_size: Option<usize>,
    /// Width multiplier (`--width`).
    pub width: Option<f32>,
    /// Classifier outputs (`--num-classes`).
    pub num_classes: Option<usize>,
    /// G of the grouped convolutions (`--groups`), one row per value.
    pub groups: Vec<usize>,
}

impl ModelOptions {
    /// The flags set, as the CLI spells them.
    fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.input_size.is_some() {
            v.push("--input-size");
        }
        if self.width.is_some() {
            v.push("--width");
        }
        if self.num_classes.is_some() {
            v.push("--num-classes");
        }
        if !self.groups.is_empty() {
            v.push("--groups");
        }
        v
    }

    /// `spec` with these options (and `groups`) applied, and a label saying what was set.
    fn apply(&self, mut spec: ModelSpec, groups: Option<usize>) -> Result<(ModelSpec, String)> {
        let mut label = Vec::new();
        if let Some(s) = self.input_size {
            spec.input = [spec.input[0], s, s];
            label.push(format!("{s}²"));
        }
        if let Some(w) = self.width {
            spec.width = w;
            label.push(format!("width {w}"));
        }
        if let Some(n) = self.num_classes {
            spec.num_classes = n;
            label.push(format!("{n} classes"));
        }
        if let Some(g) = groups {
            spec = spec.with_groups(g, None)?;
            label.push(format!("G={g}"));
        }
        Ok((spec, label.join(", ")))
    }
}

/// One user model of the `models` suite.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserModelRow {
    /// What was given to `--model`, plus `(permutations not folded)` for the comparison run.
    pub model: String,
    /// Channel permutations: how many were folded and how many gathers run (ONNX models).
    pub permutations: Option<String>,
    /// Per-sample input `[C, H, W]` of the timed model.
    pub input: [usize; 3],
    /// Inference parameters.
    pub params: u64,
    /// MACs per image.
    pub macs: u64,
    /// Latency at `batch`.
    pub latency: Stats,
    /// Images per second at the large batch (or at `batch`).
    pub throughput_ips: f64,
    /// `timestamp-query`, `submit-and-wait` or `cpu` (for the per-layer times).
    pub method: String,
    /// Median time per op class (`conv`, `grouped conv`, `depthwise conv`, `linear`,
    /// `permutation`, `other`), seconds.
    pub classes: Vec<(String, f64)>,
    /// Median time of every executed node, seconds.
    pub layers: Vec<(String, f64)>,
    /// Every executed node: kernel, time, rate, share of the roof.
    pub per_layer: Vec<LayerRow>,
    /// Where a timed pass at `batch` went, stage by stage (medians; the GPU path only).
    #[serde(default)]
    pub pass_stages: Option<crate::gpu::pass_stages::PassStages>,
}

/// The op classes time is reported in, in report order.
pub const OP_CLASSES: [&str; 6] = [
    "conv",
    "grouped conv",
    "depthwise conv",
    "linear",
    "permutation",
    "other",
];

/// The class of a node of an executed graph.
pub fn op_class(op: &Op) -> &'static str {
    match op {
        Op::Conv2d(s) if s.groups == 1 => "conv",
        Op::Conv2d(s) if s.groups == s.in_channels => "depthwise conv",
        Op::Conv2d(_) | Op::GroupedConvTable(_) | Op::FlgcConv2d(_) => "grouped conv",
        Op::Linear(_) => "linear",
        Op::Gather(_) | Op::Concat(_) => "permutation",
        _ => "other",
    }
}

fn class_times(g: &Graph, layers: &[(String, f64)]) -> Vec<(String, f64)> {
    let mut t = [0.0; OP_CLASSES.len()];
    for (name, s) in layers {
        if let Some(n) = g.nodes.iter().find(|n| &n.name == name) {
            let k = OP_CLASSES.iter().position(|c| *c == op_class(&n.op));
            t[k.unwrap_or(OP_CLASSES.len() - 1)] += s;
        }
    }
    OP_CLASSES.iter().map(|c| c.to_string()).zip(t).collect()
}

/// Whether `what` names a file that fixes its own graph (ONNX, `gconv export`), which the
/// [`ModelOptions`] cannot change.
fn is_fixed_graph(what: &str) -> bool {
    let l = what.to_ascii_lowercase();
    l.ends_with(".onnx") || l.ends_with(".safetensors")
}

/// A model given by path or name: ONNX (optionally without the permutation fold), an export
/// of `gconv export`, or a zoo name / TOML file with variations
/// ([`super::variant::zoo_spec`]: `vgg13bn scheme=E width=0.5`) and its options applied (`spec`).
fn load(
    rt: &Runtime,
    what: &str,
    spec: Option<&ModelSpec>,
    fold: bool,
    opts: &LoadOptions,
) -> Result<(Model, Option<FoldReport>)> {
    if let Some(spec) = spec {
        return Ok((rt.load(spec, None, opts)?, None));
    }
    if what.to_ascii_lowercase().ends_with(".onnx") {
        let m = crate::onnx::read_onnx(what)?;
        if !fold {
            return Ok((rt.load_graph(m.graph, m.weights, opts)?, None));
        }
        let (g, w, r) = crate::graph::fold_permutations(&m.graph, &m.weights)?;
        return Ok((rt.load_graph(g, w, opts)?, Some(r)));
    }
    let (g, w, _) = crate::io::read_exported(what)?;
    Ok((rt.load_graph(g, w, opts)?, None))
}

/// What to time for `what`: `(label, zoo spec)` per G of the options, `scheme` applied first
/// (one entry, `None` spec, for an ONNX model or an export, which refuse both).
fn variants(
    what: &str,
    o: &ModelOptions,
    scheme: Option<&str>,
) -> Result<Vec<(String, Option<ModelSpec>)>> {
    if is_fixed_graph(what) {
        let mut given = o.given();
        if scheme.is_some() {
            given.push("--scheme");
        }
        if !given.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "--model {what}: {} apply to zoo models only; this file fixes its own graph \
                 (bench it without them, or give it its own `gconv bench` run)",
                given.join(", ")
            )));
        }
        return Ok(vec![(what.to_string(), None)]);
    }
    let groups: Vec<Option<usize>> = match o.groups.as_slice() {
        [] => vec![None],
        g => g.iter().copied().map(Some).collect(),
    };
    groups
        .into_iter()
        .map(|g| {
            let mut spec = super::variant::zoo_spec(what)?;
            if let Some(s) = scheme {
                spec = spec.with_scheme(&crate::zoo::Scheme::load(s)?)?;
            }
            let (spec, set) = o.apply(spec, g)?;
            let label = match set.is_empty() {
                true => what.to_string(),
                false => format!("{what} ({set})"),
            };
            Ok((label, Some(spec)))
        })
        .collect()
}

/// Whether the fold changed anything worth a comparison run.
fn folded_something(r: &FoldReport) -> bool {
    r.gathers_folded() > 0 || r.concats_merged > 0
}

fn describe(r: &FoldReport) -> String {
    format!(
        "{} of {} gathers folded, {} concats merged; {} gathers and {} concats run",
        r.gathers_folded(),
        r.gathers_before,
        r.concats_merged,
        r.gathers_left,
        r.concats_left
    )
}

/// Times every model of `cfg.models` (and the unfolded form of ONNX models whose fold did
/// something); `progress` is told each model as it starts, `ctl` every pass; models whose
/// activations stay f32 under `--precision f16` are noted in `f32_activations`.
pub fn run_models(
    cfg: &BenchConfig,
    rt: &Runtime,
    roof: Option<&Roofline>,
    ctl: &BenchControl,
    f32_activations: &mut Vec<String>,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<UserModelRow>> {
    let mut rows = Vec::new();
    // Every model's options checked, and its graph built, before the first is timed.
    let all = cfg
        .models
        .iter()
        .map(|what| variants(what, &cfg.model_options, cfg.scheme.as_deref()).map(|v| (what, v)))
        .collect::<Result<Vec<_>>>()?;
    super::check::builds(
        all.iter()
            .flat_map(|(_, v)| v.iter().filter_map(|s| s.1.as_ref())),
    )?;
    for (what, name, spec) in all
        .into_iter()
        .flat_map(|(what, v)| v.into_iter().map(move |(n, s)| (what, n, s)))
    {
        let mut fold = true;
        loop {
            let label = if fold {
                name.clone()
            } else {
                format!("{name} (permutations not folded)")
            };
            progress(&label);
            let report = std::cell::Cell::new(None);
            let mut model = load_tuned(rt, cfg, f32_activations, &|o| {
                let (m, r) = load(rt, what, spec.as_ref(), fold, o)?;
                report.set(r);
                Ok(m)
            })?;
            let permutations = report.take();
            let cost = model.exec_graph().cost();
            let x = input_for(model.graph(), cfg.batch, 5)?;
            let (latency, pass_stages) =
                time_model_staged(&mut model, &x, (cfg.warmup, cfg.repeats), ctl)?;
            let throughput_ips = if cfg.large_batch > 0 {
                let xl = input_for(model.graph(), cfg.large_batch, 6)?;
                let l = time_model(&mut model, &xl, cfg.warmup.min(1), cfg.repeats, ctl)?;
                cfg.large_batch as f64 / l.median
            } else {
                cfg.batch as f64 / latency.median
            };
            let wr = (cfg.warmup.min(1), cfg.repeats);
            let (method, per_layer) = layer_times(&mut model, &x, wr, roof, ctl)?;
            let layers: Vec<(String, f64)> = per_layer
                .iter()
                .map(|l| (l.name.clone(), l.seconds))
                .collect();
            let again = fold && permutations.as_ref().is_some_and(folded_something);
            rows.push(UserModelRow {
                model: label,
                permutations: permutations.as_ref().map(describe),
                input: model.graph().input_shape(),
                params: cost.total_params,
                macs: cost.total_macs,
                latency,
                throughput_ips,
                method,
                classes: class_times(model.exec_graph(), &layers),
                layers,
                per_layer,
                pass_stages,
            });
            if !again {
                break;
            }
            fold = false;
        }
    }
    Ok(rows)
}
