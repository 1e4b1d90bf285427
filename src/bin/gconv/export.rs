//! `gconv export`: a training checkpoint, a zoo model or an imported ONNX model compiled for
//! inference (FLGC layers into uneven group convs by index re-ordering, batch norms folded),
//! written as standard ONNX (`--out m.onnx`) or as gconv's own safetensors with the graph in
//! its metadata (`--out m.safetensors`).

use crate::common::{onnx_path, parse_input, ConvArg, ModelArgs};
use crate::infer::FlgcArg;
use gconv::compile::{compile, CompileOptions};
use gconv::graph::{fold_permutations, Graph};
use gconv::train::selection::layer_groups;
use gconv::{Error, Result, Weights};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `gconv export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// A checkpoint written by `gconv train`.
    #[arg(long, conflicts_with = "model", required_unless_present = "model")]
    checkpoint: Option<PathBuf>,
    /// Instead of a checkpoint: a zoo model (or .toml; with --weights, or seeded He
    /// initialisation), an ONNX model (.onnx) or a model written by `gconv export`.
    #[arg(long, short)]
    model: Option<String>,
    /// VGG grouping scheme of a zoo --model (A–E, a .toml file, or 1,1,8,8,8).
    #[arg(long, requires = "model")]
    scheme: Option<String>,
    /// Groups of a zoo --model's grouped convolutions.
    #[arg(long, requires = "model")]
    groups: Option<usize>,
    /// Kind of a zoo --model's grouped convolutions.
    #[arg(long, value_enum, requires = "model")]
    conv: Option<ConvArg>,
    /// Width multiplier of a zoo --model.
    #[arg(long, requires = "model")]
    width: Option<f32>,
    /// Classifier outputs of a zoo --model.
    #[arg(long, requires = "model")]
    num_classes: Option<usize>,
    /// Per-sample input size CxHxW of a zoo --model.
    #[arg(long, requires = "model")]
    input: Option<String>,
    /// Weights of a zoo --model (safetensors, torchvision names).
    #[arg(long, requires = "model")]
    weights: Option<PathBuf>,
    /// The exported model: `.onnx` (standard ONNX, opset 17: onnxruntime, TensorRT, any
    /// engine that reads ONNX) or `.safetensors` (gconv's format, the graph in its metadata).
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

/// The output format, from `--out`'s extension.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Onnx,
    Safetensors,
}

fn format_of(out: &Path) -> Result<Format> {
    match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
    {
        Some(e) if e == "onnx" => Ok(Format::Onnx),
        Some(e) if e == "safetensors" => Ok(Format::Safetensors),
        _ => Err(Error::InvalidArgument(format!(
            "--out {}: the format follows the extension: .onnx (standard ONNX) or \
             .safetensors (gconv's exported model)",
            out.display()
        ))),
    }
}

/// What is exported: the graph as given, its weights, the metadata to carry.
struct Source {
    name: String,
    graph: Graph,
    weights: Weights,
    meta: BTreeMap<String, String>,
}

fn checkpoint_source(path: &Path) -> Result<Source> {
    let meta = gconv::io::read_safetensors_metadata(path)?;
    if meta.contains_key(gconv::io::exported::GRAPH_KEY) {
        return Err(Error::format(
            path,
            "a model written by `gconv export`, not a training checkpoint: pass it as --model",
        ));
    }
    let c = gconv::train::read_checkpoint(path)?;
    let graph = c.spec.build()?;
    let mut meta = BTreeMap::new();
    c.norm.to_meta(&mut meta);
    meta.insert("epoch".to_string(), c.epoch.to_string());
    Ok(Source {
        name: c.spec.name,
        graph,
        weights: c.weights,
        meta,
    })
}

fn model_source(a: &ExportArgs, model: &str) -> Result<Source> {
    let zoo_only = a.scheme.is_some()
        || a.groups.is_some()
        || a.conv.is_some()
        || a.width.is_some()
        || a.num_classes.is_some()
        || a.input.is_some()
        || a.weights.is_some();
    let file = Path::new(model);
    let is_safetensors = model.to_ascii_lowercase().ends_with(".safetensors");
    if (onnx_path(model).is_some() || is_safetensors) && zoo_only {
        return Err(Error::InvalidArgument(format!(
            "{model}: --scheme, --groups, --conv, --width, --num-classes, --input and \
             --weights apply to zoo models; a file carries its own graph and weights"
        )));
    }
    if let Some(p) = onnx_path(model) {
        let m = gconv::onnx::read_onnx(&p)?;
        let (graph, weights, _) = fold_permutations(&m.graph, &m.weights)?;
        let name = graph.name.clone();
        return Ok(Source {
            name,
            graph,
            weights,
            meta: BTreeMap::new(),
        });
    }
    if is_safetensors {
        let meta = gconv::io::read_safetensors_metadata(file)?;
        if meta.contains_key(gconv::train::checkpoint::MODEL_KEY) {
            return Err(Error::format(
                file,
                "a training checkpoint, not an exported model: pass it as --checkpoint",
            ));
        }
        let (graph, weights, meta) = gconv::io::read_exported(file)?;
        return Ok(Source {
            name: graph.name.clone(),
            graph,
            weights,
            meta,
        });
    }
    let args = ModelArgs {
        model: model.to_string(),
        scheme: a.scheme.clone(),
        groups: a.groups,
        conv: a.conv,
        num_classes: a.num_classes,
        width: a.width,
    };
    let spec = args.spec(a.input.as_deref().map(parse_input).transpose()?)?;
    let graph = spec.build()?;
    let weights = match &a.weights {
        Some(p) => gconv::io::read_safetensors(p)?,
        None => Weights::init(&graph, 0),
    };
    Ok(Source {
        name: spec.name,
        graph,
        weights,
        meta: BTreeMap::new(),
    })
}

pub fn export(a: ExportArgs) -> Result<ExitCode> {
    let format = format_of(&a.out)?;
    gconv::fs::check_writable(&a.out)?;
    let src = match (&a.checkpoint, &a.model) {
        (Some(c), _) => checkpoint_source(c)?,
        (None, Some(m)) => model_source(&a, m)?,
        (None, None) => {
            return Err(Error::InvalidArgument(
                "give --checkpoint or --model".into(),
            ))
        }
    };
    let opts = CompileOptions {
        fold_bn: !a.no_fold_bn,
        flgc: a.flgc.into(),
    };
    let (g, w) = compile(&src.graph, &src.weights, &opts)?;
    let onnx = match format {
        Format::Onnx => Some(gconv::onnx::write_onnx(&a.out, &g, &w, &src.meta)?),
        Format::Safetensors => {
            gconv::io::write_exported(&a.out, &g, &w, &src.meta)?;
            None
        }
    };
    let (before, after) = (src.graph.cost(), g.cost());
    println!(
        "{}: {} nodes → {} nodes, {} → {} params; wrote {}",
        src.name,
        src.graph.nodes.len(),
        g.nodes.len(),
        before.total_params,
        after.total_params,
        a.out.display()
    );
    if let Some(r) = &onnx {
        println!(
            "  ONNX opset {}: {} nodes ({} convs, {} uneven group convs as {} per-group convs, \
             {} groups without input, {} channel gathers), {} bytes; {} MACs, {} params",
            gconv::onnx::EXPORT_OPSET,
            r.nodes,
            r.convs,
            r.uneven,
            r.group_convs,
            r.dead_groups,
            r.gathers,
            r.bytes,
            after.total_macs,
            after.total_params
        );
    }
    let groups = layer_groups(&src.graph, &src.weights)?;
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
