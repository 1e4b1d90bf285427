//! `gconv tune MODEL`: time every kernel candidate of each convolution and fully connected
//! layer on this GPU, cache the fastest (see `gconv::gpu::tune`), print what was chosen.

use crate::common::{parse_input, refuse_options, ConvArg, ModelArgs};
use gconv::gpu::tune::{tune_graph, LayerTuning, TuneCache, TuneOptions};
use gconv::{Device, Error, LoadOptions, Model, Result, Runtime};
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;

/// Most timed rounds per candidate (`--repeats`).
const MAX_REPEATS: usize = 100;

/// Options of `gconv tune`.
#[derive(clap::Args)]
pub struct Args {
    /// The model: a zoo name or .toml file, an ONNX model (.onnx) or a model written by
    /// `gconv export` (.safetensors).
    model: String,
    /// Batch size to tune for (inference looks the choices up at its own batch size).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Input size of a zoo model as CxHxW (default: the model's, e.g. 3x224x224).
    #[arg(long)]
    image_size: Option<String>,
    /// VGG grouping scheme (zoo models).
    #[arg(long)]
    scheme: Option<String>,
    /// Groups of the grouped convolutions (zoo models).
    #[arg(long)]
    groups: Option<usize>,
    /// Kind of the grouped convolutions (zoo models).
    #[arg(long, value_enum)]
    conv: Option<ConvArg>,
    /// Classifier outputs (zoo models).
    #[arg(long)]
    num_classes: Option<usize>,
    /// Width multiplier (zoo models).
    #[arg(long)]
    width: Option<f32>,
    /// Timed rounds per candidate (the median decides).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Re-time layers already in the cache.
    #[arg(long)]
    retune: bool,
    /// Storage precision to time in: f32, or f16 as `--precision f16` runs the model
    /// (cached apart from the f32 choices; an f16 model prefers them).
    #[arg(long, default_value = "f32", value_parser = crate::common::parse_precision)]
    precision: gconv::Precision,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Refuses the zoo-model options for a model file that fixes its own graph.
fn refuse_for_files(a: &Args) -> Result<()> {
    let lower = a.model.to_ascii_lowercase();
    let kind = if lower.ends_with(".onnx") {
        "an ONNX model"
    } else if lower.ends_with(".safetensors") {
        "an exported model"
    } else {
        return Ok(());
    };
    let fixed = [
        ("--image-size", a.image_size.is_some()),
        ("--scheme", a.scheme.is_some()),
        ("--groups", a.groups.is_some()),
        ("--conv", a.conv.is_some()),
        ("--num-classes", a.num_classes.is_some()),
        ("--width", a.width.is_some()),
    ];
    refuse_options(&a.model, kind, &fixed)
}

/// Loads the model as `gconv info`/`infer` accept it, untuned (its executed graph is tuned).
fn load(a: &Args, rt: &Runtime) -> Result<Model> {
    let opts = LoadOptions {
        tuned_batch: None,
        ..Default::default()
    };
    let lower = a.model.to_ascii_lowercase();
    if lower.ends_with(".onnx") {
        return rt.load_onnx(&a.model, &opts);
    }
    if lower.ends_with(".safetensors") {
        let (g, w, _) = gconv::io::read_exported(&a.model)?;
        let opts = LoadOptions {
            fold_bn: false,
            ..opts
        };
        return rt.load_graph(g, w, &opts);
    }
    let m = ModelArgs {
        model: a.model.clone(),
        scheme: a.scheme.clone(),
        groups: a.groups,
        conv: a.conv,
        num_classes: a.num_classes,
        width: a.width,
    };
    let input = a.image_size.as_deref().map(parse_input).transpose()?;
    rt.load(&m.spec(input)?, None, &opts)
}

fn ms(s: Option<f64>) -> String {
    s.map_or("—".into(), |s| format!("{:.3}", s * 1e3))
}

fn print_table(rows: &[LayerTuning]) {
    let mut body = Vec::new();
    for r in rows {
        let cands: Vec<String> = r
            .candidates
            .iter()
            .map(|c| match (&c.median_s, &c.note) {
                (Some(_), _) => format!("{} {}", c.kernel, ms(c.median_s)),
                (None, Some(n)) => format!(
                    "{} ({})",
                    c.kernel,
                    n.split(':').next().unwrap_or("not timed")
                ),
                (None, None) => c.kernel.clone(),
            })
            .collect();
        body.push(vec![
            r.node.clone(),
            cands.join(", "),
            r.chosen.clone(),
            format!("{:.2}×", r.speedup),
            r.source.to_string(),
        ]);
    }
    print!(
        "{}",
        gconv::report::markdown_table(
            &[
                "layer",
                "candidates (ms, median)",
                "choice",
                "vs default",
                "source"
            ],
            &body
        )
    );
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.batch == 0 || a.repeats == 0 {
        return Err(Error::InvalidArgument(
            "--batch and --repeats must be at least 1".into(),
        ));
    }
    if a.repeats > MAX_REPEATS || a.batch > gconv::bench::MAX_BATCH {
        return Err(Error::InvalidArgument(format!(
            "--repeats {} / --batch {}: at most {MAX_REPEATS} rounds and a batch of {}",
            a.repeats,
            a.batch,
            gconv::bench::MAX_BATCH
        )));
    }
    refuse_for_files(&a)?;
    let rt = Runtime::new(Device::Gpu)?;
    let ctx = rt.gpu().expect("a GPU runtime").clone();
    let model = load(&a, &rt)?;
    let mut cache = TuneCache::load_default();
    let opts = TuneOptions {
        batch: a.batch,
        repeats: a.repeats,
        retune: a.retune,
        precision: a.precision,
        // A run stopped part way (a time cap on a lent machine) keeps the layers it timed.
        save_each_layer: true,
    };
    let bar = if a.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(1)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    let rows = tune_graph(
        &ctx,
        model.exec_graph(),
        &mut cache,
        &opts,
        &mut |m, d, t| {
            bar.set_length(t as u64);
            bar.set_position(d as u64);
            bar.set_message(m.to_string());
        },
    )?;
    bar.finish_and_clear();
    cache.save()?;
    if a.json {
        let v = serde_json::json!({
            "model": model.exec_graph().name,
            "device": rt.describe(),
            "batch": a.batch,
            "precision": a.precision.to_string(),
            "macs": model.exec_graph().cost().total_macs,
            "cache": cache.path(),
            "layers": rows,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("serialisable")
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} at batch {} ({}) on {}",
        model.exec_graph().name,
        a.batch,
        a.precision,
        rt.describe()
    );
    print_table(&rows);
    let changed = rows.iter().filter(|r| r.chosen != r.default).count();
    println!(
        "\n{} layers, {} run another kernel than the default; cache: {}",
        rows.len(),
        changed,
        cache.path().display()
    );
    Ok(ExitCode::SUCCESS)
}
