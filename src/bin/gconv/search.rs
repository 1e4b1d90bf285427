//! `gconv search`: the least grouping that fits a latency budget on this GPU (see
//! `gconv::search`): measure the layers (through the tuning cache), search exactly, measure
//! the scheme found (and its reference) end to end, write the scheme file and the report.

use crate::common::{ConvArg, DeviceArg};
use gconv::search::{run_search, SearchConfig, Target};
use gconv::zoo::ConvKind;
use gconv::{Error, Result, Runtime};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `gconv search`.
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("target").required(true).multiple(true)
    .args(["budget_ms", "as_fast_as", "speedup"]))]
pub struct Args {
    /// The model: vgg11bn … vgg19bn (G per stage), resnet50-dsc and the other ResNets, or
    /// mobilenetv2 (G per stage of their grouped 1×1 convs); a zoo name or model .toml.
    #[arg(long, short)]
    model: String,
    /// Input height = width (default: the model's, 224).
    #[arg(long)]
    input_size: Option<usize>,
    /// Batch size the latency is for.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Latency budget in ms (repeatable: one result each).
    #[arg(long)]
    budget_ms: Vec<f64>,
    /// As fast as this scheme: A–E, a scheme .toml or stage groups like 1,1,64,1,1
    /// (repeatable; `A,B,C,D,E` names several).
    #[arg(long)]
    as_fast_as: Vec<String>,
    /// The dense model's measured latency divided by X (repeatable).
    #[arg(long)]
    speedup: Vec<f64>,
    /// SGC (G must divide the channels) or FLGC (any G; uneven groups costed as exported).
    #[arg(long, value_enum, default_value_t = ConvArg::Sgc)]
    conv: ConvArg,
    /// G per layer instead of per stage.
    #[arg(long)]
    per_layer: bool,
    /// The G values to choose from (1, no grouping, is always one).
    #[arg(long = "g", value_delimiter = ',', default_value = "1,2,4,8,16,32,64")]
    g: Vec<usize>,
    /// Untimed whole-model rounds before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed whole-model rounds, interleaved (medians).
    #[arg(long, default_value_t = 9)]
    rounds: usize,
    /// Storage precision to time in: f32, or f16 as `--precision f16` runs the model (weights
    /// and activations as halves where the layer's kernel reads them, f32 accumulation); the
    /// layers go through the tuning cache's f16 entries (`gconv tune --precision f16`).
    #[arg(long, default_value = "f32", value_parser = crate::common::parse_precision)]
    precision: gconv::Precision,
    /// Device (a GPU adapter is needed: the latency model is measured).
    #[arg(long, value_enum, default_value_t = DeviceArg::Gpu)]
    device: DeviceArg,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Folder for the scheme files, search.json, summary.md and the Pareto charts.
    #[arg(long, default_value = "search-out")]
    out: PathBuf,
}

/// `A,B,C` → three names; `1,1,64,1,1` (stage groups) stays one.
fn split_schemes(v: &[String]) -> Vec<String> {
    v.iter()
        .flat_map(|s| {
            let parts: Vec<&str> = s.split(',').map(str::trim).collect();
            if parts.len() > 1 && parts.iter().all(|p| p.parse::<usize>().is_err()) {
                parts.into_iter().map(String::from).collect()
            } else {
                vec![s.clone()]
            }
        })
        .collect()
}

/// Refused before anything is measured: an output folder that cannot be written, a file
/// where the folder (or one above it) should be.
fn check_out_folder(out: &Path) -> Result<()> {
    if out.is_dir() {
        return gconv::fs::check_writable(out.join("search.json"));
    }
    let not_folder = |p: &Path| {
        Error::io(
            p,
            std::io::Error::other("is not a folder (--out names the folder for the results)"),
        )
    };
    if let Some(p) = out.ancestors().find(|p| p.exists()) {
        if !p.is_dir() {
            return Err(not_folder(p));
        }
    }
    match out.parent() {
        Some(p) if p.as_os_str().is_empty() || p.is_dir() => gconv::fs::check_writable(out),
        _ => Ok(()),
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let conv = match a.conv {
        ConvArg::Sgc => ConvKind::Sgc,
        ConvArg::Flgc => ConvKind::Flgc,
        ConvArg::Dense => {
            return Err(Error::InvalidArgument(
                "search: --conv must be sgc or flgc".into(),
            ))
        }
    };
    let mut targets: Vec<Target> = a.budget_ms.iter().map(|&b| Target::BudgetMs(b)).collect();
    targets.extend(
        split_schemes(&a.as_fast_as)
            .into_iter()
            .map(Target::AsFastAs),
    );
    targets.extend(a.speedup.iter().map(|&x| Target::Speedup(x)));
    let cfg = SearchConfig {
        model: a.model.clone(),
        input_size: a.input_size,
        batch: a.batch,
        precision: a.precision,
        conv,
        groups: a.g.clone(),
        per_layer: a.per_layer,
        targets,
        warmup: a.warmup,
        rounds: a.rounds,
    };
    cfg.validate()?;
    check_out_folder(&a.out)?;
    let rt = Runtime::new(a.device.into())?;
    let bar = if a.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(1)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    let report = run_search(&rt, &cfg, &mut |msg, done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(msg.to_string());
    })?;
    bar.finish_and_clear();
    let files = gconv::search::output::write_outputs(&report, &a.out)?;
    if a.json {
        println!("{}", gconv::search::output::to_json(&report));
    } else {
        print!("{}", gconv::search::output::render_text(&report));
        println!("\nwrote:");
        for f in files {
            println!("  {}", f.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
