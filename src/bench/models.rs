//! The `models` suite: the user's own models (`gconv bench --model a.onnx --model b.onnx`),
//! side by side with the same timing as the paper suites. An ONNX model whose channel
//! permutations were folded into its convolutions is also run unfolded, so the report shows
//! what the fold buys on this device.

use super::timing::{input_for, layer_times, load_tuned, time_model};
use super::{BenchConfig, LayerRow, Stats};
use crate::error::Result;
use crate::gpu::roofline::Roofline;
use crate::graph::{FoldReport, Graph, Op};
use crate::runtime::{LoadOptions, Model, Runtime};
use serde::Serialize;

/// One user model of the `models` suite.
#[derive(Clone, Debug, Serialize)]
pub struct UserModelRow {
    /// What was given to `--model`, plus `(permutations not folded)` for the comparison run.
    pub model: String,
    /// Channel permutations: how many were folded and how many gathers run (ONNX models).
    pub permutations: Option<String>,
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

/// A model given by path or name: ONNX (optionally without the permutation fold), an export
/// of `gconv export`, or a zoo name / TOML file at its own input size (with `scheme` applied).
fn load(
    rt: &Runtime,
    what: &str,
    scheme: Option<&str>,
    fold: bool,
    opts: &LoadOptions,
) -> Result<(Model, Option<FoldReport>)> {
    if what.to_ascii_lowercase().ends_with(".onnx") {
        let m = crate::onnx::read_onnx(what)?;
        if !fold {
            return Ok((rt.load_graph(m.graph, m.weights, opts)?, None));
        }
        let (g, w, r) = crate::graph::fold_permutations(&m.graph, &m.weights)?;
        return Ok((rt.load_graph(g, w, opts)?, Some(r)));
    }
    if what.to_ascii_lowercase().ends_with(".safetensors") {
        let (g, w, _) = crate::io::read_exported(what)?;
        return Ok((rt.load_graph(g, w, opts)?, None));
    }
    let mut spec = crate::zoo::ModelSpec::load(what)?;
    if let Some(s) = scheme {
        spec = spec.with_scheme(&crate::zoo::Scheme::load(s)?)?;
    }
    Ok((rt.load(&spec, None, opts)?, None))
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
/// something); `progress` is told each model as it starts.
pub fn run_models(
    cfg: &BenchConfig,
    rt: &Runtime,
    roof: Option<&Roofline>,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<UserModelRow>> {
    let mut rows = Vec::new();
    for what in &cfg.models {
        let mut fold = true;
        loop {
            let label = if fold {
                what.clone()
            } else {
                format!("{what} (permutations not folded)")
            };
            progress(&label);
            let report = std::cell::Cell::new(None);
            let mut model = load_tuned(rt, cfg, &|o| {
                let (m, r) = load(rt, what, cfg.scheme.as_deref(), fold, o)?;
                report.set(r);
                Ok(m)
            })?;
            let permutations = report.take();
            let cost = model.exec_graph().cost();
            let x = input_for(model.graph(), cfg.batch, 5);
            let latency = time_model(&mut model, &x, cfg.warmup, cfg.repeats)?;
            let throughput_ips = if cfg.large_batch > 0 {
                let xl = input_for(model.graph(), cfg.large_batch, 6);
                let l = time_model(&mut model, &xl, cfg.warmup.min(1), cfg.repeats)?;
                cfg.large_batch as f64 / l.median
            } else {
                cfg.batch as f64 / latency.median
            };
            let wr = (cfg.warmup.min(1), cfg.repeats);
            let (method, per_layer) = layer_times(&mut model, &x, wr, roof)?;
            let layers: Vec<(String, f64)> = per_layer
                .iter()
                .map(|l| (l.name.clone(), l.seconds))
                .collect();
            let again = fold && permutations.as_ref().is_some_and(folded_something);
            rows.push(UserModelRow {
                model: label,
                permutations: permutations.as_ref().map(describe),
                params: cost.total_params,
                macs: cost.total_macs,
                latency,
                throughput_ips,
                method,
                classes: class_times(model.exec_graph(), &layers),
                layers,
                per_layer,
            });
            if !again {
                break;
            }
            fold = false;
        }
    }
    Ok(rows)
}
