//! `gconv export`: a training checkpoint compiled for inference (FLGC layers into uneven group
//! convs by index re-ordering, batch norms folded), the graph in the file's metadata.

use crate::infer::FlgcArg;
use gconv::compile::{compile, CompileOptions};
use gconv::train::selection::layer_groups;
use gconv::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `gconv export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// A checkpoint written by `gconv train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The exported model (safetensors with the graph as metadata).
    #[arg(long)]
    out: PathBuf,
    /// How FLGC layers are exported: `reordered` (uneven group conv by index re-ordering,
    /// fast) or `masked` (dense conv with W⊙M, reference).
    #[arg(long, value_enum, default_value_t = FlgcArg::Reordered)]
    flgc: FlgcArg,
    /// Keep batch norms as separate ops instead of folding them into the convs.
    #[arg(long)]
    no_fold_bn: bool,
}

pub fn export(a: ExportArgs) -> Result<ExitCode> {
    gconv::fs::check_writable(&a.out)?;
    let c = gconv::train::read_checkpoint(&a.checkpoint)?;
    let graph = c.spec.build()?;
    let opts = CompileOptions {
        fold_bn: !a.no_fold_bn,
        flgc: a.flgc.into(),
    };
    let (g, w) = compile(&graph, &c.weights, &opts)?;
    let mut meta = BTreeMap::new();
    c.norm.to_meta(&mut meta);
    meta.insert("epoch".to_string(), c.epoch.to_string());
    gconv::io::write_exported(&a.out, &g, &w, &meta)?;
    let (before, after) = (graph.cost(), g.cost());
    println!(
        "{}: {} nodes → {} nodes, {} → {} params; wrote {}",
        c.spec.name,
        graph.nodes.len(),
        g.nodes.len(),
        before.total_params,
        after.total_params,
        a.out.display()
    );
    let groups = layer_groups(&graph, &c.weights)?;
    if groups.is_empty() {
        println!(
            "  MACs/image: {:.3} M exported",
            after.total_macs as f64 / 1e6
        );
    } else {
        // The FLGC graph is costed as SGC at the same G (channels split evenly).
        let (sgc, exported) = (before.total_macs as f64, after.total_macs as f64);
        println!(
            "  MACs/image: {:.3} M exported vs {:.3} M for SGC at the same G ({:+.1} %)",
            exported / 1e6,
            sgc / 1e6,
            100.0 * (exported / sgc - 1.0)
        );
        println!("  per FLGC layer: group sizes (in→out channels), MACs/pixel vs SGC's");
        for l in &groups {
            let sizes: Vec<String> = (0..l.in_sizes.len())
                .map(|j| format!("{}→{}", l.in_sizes[j], l.out_sizes[j]))
                .collect();
            let dead = match l.dead_filters {
                0 => String::new(),
                d => format!(" | {d} filters without input (constant outputs, no MACs)"),
            };
            println!(
                "  {:<24} {} | {} vs {}{dead}",
                l.layer,
                sizes.join(" "),
                l.macs_per_pixel,
                l.sgc_macs_per_pixel
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
