//! `gconv info`: per-layer table and totals, and the reduction against the ungrouped model.

use crate::common::{parse_input, thousands, ModelArgs};
use gconv::Result;
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
        println!(
            "{:<28} {:<18} {:>16} {:>16} {:>5} {:>15} {:>13}",
            "layer", "op", "in", "out", "G", "MACs", "params"
        );
        for l in &cost.layers {
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
