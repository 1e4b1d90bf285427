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

/// `gconv bench`: run suites, or `gconv bench compare OLD NEW`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    sub: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

/// Sub-commands of `gconv bench`.
#[derive(clap::Subcommand)]
enum Sub {
    /// Compare two reports row by row (new / old time with the runs' spread); exit 1 with
    /// --fail-above R when a row got slower than R×.
    Compare(crate::compare::Args),
}

/// Options of a `gconv bench` run (also taken by `gconv gui`).
#[derive(clap::Args, Clone)]
pub struct RunArgs {
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
    /// GPU storage precision: f32, or f16 — weights where the layer's kernel reads halves
    /// (conv_igemm, gemv_wide; conv_coop, linear_coop on cooperative matrices), activations
    /// where the adapter has SHADER_F16 and every kernel of the model stores them; f32
    /// accumulation. Recorded in the report's config.
    #[arg(long, value_parser = crate::common::parse_precision)]
    precision: Option<gconv::Precision>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write report.json, summary.md, report.html and PNG/SVG charts into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Refuses an option that no selected suite reads (it would be reported in the config
/// without changing what is timed). `gpu`: the training-memory rows, which read the model
/// options and the large batch, are made.
fn check_flags_apply(a: &RunArgs, suites: &[Suite], gpu: bool) -> Result<()> {
    use Suite::*;
    const MODELS: &[Suite] = &[Paper1, Paper2, Mobilenet, Models];
    const TIMED: &[Suite] = &[Paper1, Paper2, Mobilenet, Sweep, Models];
    let large: &[Suite] = if gpu { TIMED } else { &[Paper1, Models] };
    if a.tune && !gpu {
        return Err(gconv::Error::InvalidArgument(
            "--tune times kernels on a GPU; this run is on the CPU reference path".into(),
        ));
    }
    if let Some(p) = a.precision {
        crate::common::check_precision(p, !gpu)?;
    }
    let rules: [(&str, bool, &[Suite]); 15] = [
        ("--input-size", a.input_size.is_some(), MODELS),
        ("--width", a.width.is_some(), MODELS),
        ("--num-classes", a.num_classes.is_some(), MODELS),
        ("--batch", a.batch.is_some(), TIMED),
        ("--large-batch", a.large_batch.is_some(), large),
        ("--warmup", a.warmup.is_some(), TIMED),
        ("--repeats", a.repeats.is_some(), TIMED),
        ("--vgg", a.vgg.is_some(), &[Paper1]),
        ("--schemes", a.schemes.is_some(), &[Paper1]),
        ("--groups", a.groups.is_some(), &[Paper2, Mobilenet, Models]),
        ("--layers", a.layers.is_some(), &[Sweep]),
        ("--sweep-g", a.sweep_g.is_some(), &[Sweep]),
        ("--per-layer", a.per_layer, TIMED),
        ("--tune", a.tune, TIMED),
        ("--precision", a.precision.is_some(), TIMED),
    ];
    for (flag, given, readers) in rules {
        if given && !suites.iter().any(|s| readers.contains(s)) {
            let names: Vec<String> = readers
                .iter()
                .map(|s| format!("{s:?}").to_lowercase())
                .collect();
            return Err(gconv::Error::InvalidArgument(format!(
                "{flag} changes only the {} suite(s), and none of them is selected; \
                 add --suite, or drop {flag}",
                names.join(", ")
            )));
        }
    }
    Ok(())
}

pub fn run(a: Args) -> Result<ExitCode> {
    if let Some(Sub::Compare(c)) = a.sub {
        return crate::compare::run(c);
    }
    let a = a.run;
    let device: Device = a.device.into();
    // Probe the device once to size the default configuration.
    let rt = Runtime::new(device)?;
    let software = rt.gpu().is_none_or(|g| g.is_cpu());
    let cfg = config(&a, software, rt.is_gpu())?;
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
    if let Some(first) = report.f32_activations.first() {
        eprintln!(
            "note: --precision f16: {} model(s) ran with f32 activations (report's \
             f32_activations), e.g. {first}",
            report.f32_activations.len()
        );
    }
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

#[cfg_attr(not(feature = "gui"), allow(dead_code))]
impl RunArgs {
    /// The device asked for.
    pub fn device(&self) -> Device {
        self.device.into()
    }

    /// Whether --json was given.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Whether suites or models were named (`gconv gui` then runs them at start-up).
    #[cfg_attr(not(feature = "gui"), allow(dead_code))]
    pub fn has_suites(&self) -> bool {
        !self.suite.is_empty() || !self.model.is_empty() || self.sweep_groups
    }
}

/// The configuration the flags ask for on a device (`software`: a CPU-like one; `gpu`: a
/// GPU adapter rather than the CPU reference path), refusing flags it would not apply.
pub fn config(a: &RunArgs, software: bool, gpu: bool) -> Result<BenchConfig> {
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
    check_flags_apply(a, &cfg.suites, gpu)?;
    if cfg.suites.contains(&Suite::Models) {
        cfg.model_options = bench::ModelOptions {
            input_size: a.input_size,
            width: a.width,
            num_classes: a.num_classes,
            groups: a.groups.clone().unwrap_or_default(),
        };
    }
    cfg.per_layer = a.per_layer;
    cfg.tune = a.tune;
    cfg.tuned = !a.no_tune;
    cfg.precision = a.precision.unwrap_or_default();
    Ok(cfg)
}
