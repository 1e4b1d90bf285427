//! `gconv info`: per-layer table and totals, and the reduction against the ungrouped model.

use crate::common::{onnx_path, parse_input, thousands, ModelArgs};
use gconv::graph::{fold_permutations, FoldReport, LayerCost};
use gconv::{Error, Result};
use std::process::ExitCode;

/// Options of `gconv info`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Per-sample input size as CxHxW (default: the model's, e.g. 3x224x224).
    #[arg(long)]
    input: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Only totals, no per-layer table.
    #[arg(long)]
    summary: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    if let Some(p) = onnx_path(&a.model.model) {
        a.model.refuse_options("an ONNX model", &[])?;
        return run_onnx(&a, &p);
    }
    if a.model.model.to_ascii_lowercase().ends_with(".safetensors") {
        return run_exported(&a, std::path::Path::new(&a.model.model));
    }
    let input = a.input.as_deref().map(parse_input).transpose()?;
    let spec = a.model.spec(input)?;
    let graph = spec.build()?;
    let cost = graph.cost();
    let base = match a.model.baseline(input)? {
        Some(b) => Some(b.build()?.cost()),
        None => None,
    };
    let reduction = base.as_ref().map(|b| {
        serde_json::json!({
            "baseline_macs": b.total_macs,
            "baseline_params": b.total_params,
            "macs_reduction_pct": 100.0 * (1.0 - cost.total_macs as f64 / b.total_macs as f64),
            "params_reduction_pct": 100.0 * (1.0 - cost.total_params as f64 / b.total_params as f64),
        })
    });
    if a.json {
        let v = serde_json::json!({
            "model": graph.name,
            "input": graph.input_shape(),
            "num_classes": spec.num_classes,
            "layers": if a.summary { serde_json::Value::Null } else { serde_json::to_value(&cost.layers).expect("serialisable") },
            "total_macs": cost.total_macs,
            "total_params": cost.total_params,
            "reduction": reduction,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("serialisable")
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} — input {:?}, {} classes",
        graph.name,
        graph.input_shape(),
        spec.num_classes
    );
    if !a.summary {
        print_layers(&cost.layers);
    }
    println!(
        "total: {} MACs ({:.2} GMACs), {} params ({:.2} M)",
        thousands(cost.total_macs),
        cost.total_macs as f64 / 1e9,
        thousands(cost.total_params),
        cost.total_params as f64 / 1e6
    );
    if let Some(b) = &base {
        println!(
            "vs ungrouped: MACs −{:.2} % ({:.2} → {:.2} GMACs), params −{:.2} %",
            100.0 * (1.0 - cost.total_macs as f64 / b.total_macs as f64),
            b.total_macs as f64 / 1e9,
            cost.total_macs as f64 / 1e9,
            100.0 * (1.0 - cost.total_params as f64 / b.total_params as f64),
        );
    }
    let train_only: u64 = cost.layers.iter().map(|l| l.train_only_params).sum();
    if train_only > 0 {
        println!(
            "(+ {} FLGC selection parameters used only in training)",
            thousands(train_only)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The per-layer table.
fn print_layers(layers: &[LayerCost]) {
    println!(
        "{:<28} {:<18} {:>16} {:>16} {:>5} {:>15} {:>13}",
        "layer", "op", "in", "out", "G", "MACs", "params"
    );
    for l in layers {
        let shp = |s: &[usize]| {
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("×")
        };
        println!(
            "{:<28} {:<18} {:>16} {:>16} {:>5} {:>15} {:>13}",
            l.name,
            l.op,
            shp(&l.in_shape),
            shp(&l.out_shape),
            l.groups.map(|g| g.to_string()).unwrap_or_default(),
            if l.macs > 0 {
                thousands(l.macs)
            } else {
                String::new()
            },
            if l.params > 0 {
                thousands(l.params)
            } else {
                String::new()
            },
        );
    }
}

/// One line on the permutation fold.
fn fold_line(r: &FoldReport) -> String {
    format!(
        "channel permutations: {} gathers imported (shuffles, splits, slices), {} folded \
         ({} into conv index lists, {} into producers, {} into concats, {} composed), {} left; \
         {} concats imported, {} merged into convs, {} left (each copies its inputs)",
        r.gathers_before,
        r.gathers_folded(),
        r.into_consumers,
        r.into_producers,
        r.into_concats,
        r.composed,
        r.gathers_left,
        r.concats_before,
        r.concats_merged,
        r.concats_left
    )
}

/// `gconv info --model net.onnx`: the imported graph after the permutation fold.
fn run_onnx(a: &Args, path: &std::path::Path) -> Result<ExitCode> {
    let m = gconv::onnx::read_onnx(path)?;
    if let Some(i) = a.input.as_deref().map(parse_input).transpose()? {
        if i != m.graph.input_shape() {
            return Err(Error::InvalidArgument(format!(
                "{}: the model's input is fixed at {:?} by the file; --input {i:?} differs",
                path.display(),
                m.graph.input_shape()
            )));
        }
    }
    let (graph, _, fold) = fold_permutations(&m.graph, &m.weights)?;
    let cost = graph.cost();
    if a.json {
        let v = serde_json::json!({
            "model": graph.name,
            "file": path,
            "producer": m.producer,
            "opset": m.opset,
            "onnx_nodes": m.onnx_nodes,
            "folded_constants": m.folded_constants,
            "input": graph.input_shape(),
            "output": graph.output_shape(),
            "layers": if a.summary { serde_json::Value::Null } else { serde_json::to_value(&cost.layers).expect("serialisable") },
            "total_macs": cost.total_macs,
            "total_params": cost.total_params,
            "fold": fold,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("serialisable")
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} — {} (opset {}, {}): input [N, {}], output [N, {}]",
        graph.name,
        path.display(),
        m.opset,
        if m.producer.is_empty() {
            "unknown producer"
        } else {
            &m.producer
        },
        m.graph.input_shape().map(|d| d.to_string()).join(", "),
        graph
            .output_shape()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "{} ONNX nodes: {} evaluated at import (constants, shapes), {} gconv nodes after the fold",
        m.onnx_nodes,
        m.folded_constants,
        graph.nodes.len() - 1
    );
    if !a.summary {
        print_layers(&cost.layers);
    }
    println!(
        "total: {} MACs ({:.2} GMACs), {} params ({:.2} M)",
        thousands(cost.total_macs),
        cost.total_macs as f64 / 1e9,
        thousands(cost.total_params),
        cost.total_params as f64 / 1e6
    );
    println!("{}", fold_line(&fold));
    Ok(ExitCode::SUCCESS)
}

/// `gconv info --model m.safetensors`: a model written by `gconv export`, as it runs.
fn run_exported(a: &Args, path: &std::path::Path) -> Result<ExitCode> {
    let grouping = a.model.scheme.is_some() || a.model.groups.is_some() || a.model.conv.is_some();
    if grouping || a.model.width.is_some() || a.model.num_classes.is_some() {
        return Err(Error::InvalidArgument(format!(
            "{}: an exported model is fixed; --scheme, --groups, --conv, --width and \
             --num-classes apply to zoo models",
            path.display()
        )));
    }
    let (graph, _, _) = gconv::io::read_exported(path)?;
    if let Some(i) = a.input.as_deref().map(parse_input).transpose()? {
        if i != graph.input_shape() {
            return Err(Error::InvalidArgument(format!(
                "{}: the model's input is fixed at {:?} by the file; --input {i:?} differs",
                path.display(),
                graph.input_shape()
            )));
        }
    }
    let cost = graph.cost();
    if a.json {
        let v = serde_json::json!({
            "model": graph.name,
            "file": path,
            "input": graph.input_shape(),
            "output": graph.output_shape(),
            "layers": if a.summary { serde_json::Value::Null } else { serde_json::to_value(&cost.layers).expect("serialisable") },
            "total_macs": cost.total_macs,
            "total_params": cost.total_params,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("serialisable")
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} — {} (exported by gconv): input [N, {}], {} nodes",
        graph.name,
        path.display(),
        graph.input_shape().map(|d| d.to_string()).join(", "),
        graph.nodes.len() - 1
    );
    if !a.summary {
        print_layers(&cost.layers);
    }
    println!(
        "total: {} MACs ({:.2} GMACs), {} params ({:.2} M)",
        thousands(cost.total_macs),
        cost.total_macs as f64 / 1e9,
        thousands(cost.total_params),
        cost.total_params as f64 / 1e6
    );
    Ok(ExitCode::SUCCESS)
}
