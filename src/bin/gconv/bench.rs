//! `gconv bench`: reproduce both papers' efficiency results on this device.

use crate::common::DeviceArg;
use gconv::bench::{self, BenchConfig, LayerShape, Suite};
use gconv::{Device, Result, Runtime};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;

/// A suite to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SuiteArg {
    /// Gong et al.: VGG-BN schemes A–E.
    Paper1,
    /// Wang et al.: ResNet-50 layer-wise times.
    Paper2,
    /// MobileNetV2 layer-wise times, dense vs SGC vs FLGC.
    Mobilenet,
    /// Group-count sweep over single layers.
    Sweep,
    /// Your own models (--model; selected by default when --model is given).
    Models,
    /// The adapter's roof: streaming read GB/s and best GEMM GFLOP/s.
    Roofline,
}

/// Options of `gconv bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Suites to run (repeatable; default: all).
    #[arg(long, value_enum)]
    suite: Vec<SuiteArg>,
    /// Only the group sweep (same as --suite sweep).
    #[arg(long)]
    sweep_groups: bool,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// Input height = width of every suite (default: 224 on a real GPU; on lavapipe / the
    /// CPU 224 for paper1 and 64 for the others).
    #[arg(long)]
    input_size: Option<usize>,
    /// Width multiplier of the models.
    #[arg(long)]
    width: Option<f32>,
    /// Classifier outputs (Gong et al. use 1120).
    #[arg(long)]
    num_classes: Option<usize>,
    /// Small (latency) batch.
    #[arg(long)]
    batch: Option<usize>,
    /// Large (throughput) batch; 0 to skip.
    #[arg(long)]
    large_batch: Option<usize>,
    /// Untimed warm-up runs.
    #[arg(long)]
    warmup: Option<usize>,
    /// Timed runs (median, min–max reported).
    #[arg(long)]
    repeats: Option<usize>,
    /// VGG model of the paper1 suite.
    #[arg(long)]
    vgg: Option<String>,
    /// Schemes of the paper1 suite (comma-separated).
    #[arg(long, value_delimiter = ',')]
    schemes: Option<Vec<String>>,
    /// G of the SGC / FLGC ResNet variants (comma-separated).
    #[arg(long, value_delimiter = ',')]
    groups: Option<Vec<usize>>,
    /// Sweep layers as CxS:K (comma-separated), e.g. 256x56:3,512x28:1.
    #[arg(long, value_delimiter = ',')]
    layers: Option<Vec<LayerShape>>,
    /// Sweep group counts (comma-separated).
    #[arg(long, value_delimiter = ',')]
    sweep_g: Option<Vec<usize>>,
    /// Your own model to time (repeatable): an .onnx file (also run with its channel
    /// permutations unfolded when the fold did something), a `gconv export` file, or a zoo
    /// name / .toml. With --model and no --suite, only your models run.
    #[arg(long)]
    model: Vec<String>,
    /// Grouping scheme for the zoo models given with --model: a scheme .toml (e.g. written by
    /// `gconv search`), A–E, or stage groups like 1,1,8,8,8.
    #[arg(long)]
    scheme: Option<String>,
    /// Per-layer rows for paper1 too, and per-layer tables (kernel, ms, GFLOP/s or GB/s,
    /// % of the roof) in the text report.
    #[arg(long)]
    per_layer: bool,
    /// Tune each model's layers missing from the kernel cache before timing it (GPU).
    #[arg(long, conflicts_with = "no_tune")]
    tune: bool,
    /// Ignore the kernel choices cached by `gconv tune` (same as GCONV_TUNE=off).
    #[arg(long)]
    no_tune: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write report.json, summary.md and PNG/SVG charts into this folder.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let device: Device = a.device.into();
    // Probe the device once to size the default configuration.
    let rt = Runtime::new(device)?;
    let software = rt.gpu().is_none_or(|g| g.is_cpu());
    let mut cfg = BenchConfig::default_for(software);
    let mut suites: Vec<Suite> = a
        .suite
        .iter()
        .map(|s| match s {
            SuiteArg::Paper1 => Suite::Paper1,
            SuiteArg::Paper2 => Suite::Paper2,
            SuiteArg::Mobilenet => Suite::Mobilenet,
            SuiteArg::Sweep => Suite::Sweep,
            SuiteArg::Models => Suite::Models,
            SuiteArg::Roofline => Suite::Roofline,
        })
        .collect();
    if !a.model.is_empty() && !suites.contains(&Suite::Models) {
        suites.push(Suite::Models);
    }
    cfg.models = a.model.clone();
    cfg.scheme = a.scheme.clone();
    if cfg.scheme.is_some() && cfg.models.is_empty() {
        return Err(gconv::Error::InvalidArgument(
            "--scheme applies to the zoo models given with --model (paper1 takes --schemes)".into(),
        ));
    }
    if suites.contains(&Suite::Models) && cfg.models.is_empty() {
        return Err(gconv::Error::InvalidArgument(
            "--suite models needs at least one --model".into(),
        ));
    }
    if a.sweep_groups && !suites.contains(&Suite::Sweep) {
        suites.push(Suite::Sweep);
    }
    if !suites.is_empty() {
        cfg.suites = suites;
    }
    macro_rules! set {
        ($($f:ident),*) => { $(if let Some(v) = a.$f.clone() { cfg.$f = v; })* };
    }
    set!(
        input_size,
        width,
        num_classes,
        batch,
        large_batch,
        warmup,
        repeats,
        vgg,
        schemes,
        groups
    );
    if let Some(l) = a.layers.clone() {
        cfg.sweep_layers = l;
    }
    if let Some(g) = a.sweep_g.clone() {
        cfg.sweep_groups = g;
    }
    if a.input_size.is_some() {
        cfg.paper1_input_size = None; // an explicit size applies to every suite
    }
    cfg.per_layer = a.per_layer;
    cfg.tune = a.tune;
    cfg.tuned = !a.no_tune;
    let bar = if a.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(1)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    let report = bench::run_bench(&cfg, &rt, &mut |msg, done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(msg.to_string());
    })?;
    bar.finish_and_clear();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serialisable")
        );
    } else {
        print!("{}", bench::render_text(&report));
    }
    if let Some(dir) = &a.out {
        let files = bench::write_outputs(&report, dir)?;
        if !a.json {
            println!("\nwrote:");
            for f in files {
                println!("  {}", f.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
