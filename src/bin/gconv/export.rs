//! `gconv export`: a training checkpoint compiled for inference (FLGC layers into uneven group
//! convs by index re-ordering, batch norms folded), the graph in the file's metadata.

use crate::infer::FlgcArg;
use gconv::compile::{compile, CompileOptions};
use gconv::graph::Op;
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
    gconv::io::check_writable(&a.out)?;
    let c = gconv::io::read_checkpoint(&a.checkpoint)?;
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
        "{}: {} nodes → {} nodes, {:.2} → {:.2} MMACs/image, {} → {} params; wrote {}",
        c.spec.name,
        graph.nodes.len(),
        g.nodes.len(),
        before.total_macs as f64 / 1e6,
        after.total_macs as f64 / 1e6,
        before.total_params,
        after.total_params,
        a.out.display()
    );
    for n in &g.nodes {
        if let Op::GroupedConvTable(t) = &n.op {
            let sizes: Vec<String> = t
                .table
                .iter()
                .map(|r| format!("{}→{}", r.in_len, r.out_len))
                .collect();
            println!(
                "  {}: groups (in→out channels) {}",
                n.name,
                sizes.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
