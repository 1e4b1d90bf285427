//! `gconv train` and `gconv eval`: train a zoo model (dense, SGC or FLGC) on Fashion-MNIST or
//! a folder of images, with checkpoints; evaluate a checkpoint.

use crate::common::{ConvArg, DeviceArg};
use gconv::gpu::GpuContext;
use gconv::io::ImageFolder;
use gconv::io::{read_safetensors, write_safetensors, FashionMnist};
use gconv::train::{Dataset, GpuTrainer, LrSchedule, StepStats, TrainConfig, Trainer};
use gconv::zoo::{Arch, ModelSpec, StemKind};
use gconv::{Error, Result, Weights};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleArg {
    /// Cosine annealing to 0 over the epochs.
    Cosine,
    /// ×0.1 every third of the epochs.
    Step,
    /// Constant.
    Constant,
}

/// Options of `gconv train`.
#[derive(clap::Args)]
pub struct Args {
    /// Zoo model (or .toml); its input becomes the data's (1×28×28 for Fashion-MNIST), its
    /// classes the data's, and its width is scaled by --width.
    #[arg(long, short, default_value = "resnet50-dsc")]
    model: String,
    /// Kind of the grouped convolutions.
    #[arg(long, value_enum, default_value_t = ConvArg::Dense)]
    conv: ConvArg,
    /// Groups G of the grouped convolutions (sgc / flgc).
    #[arg(long, default_value_t = 4)]
    groups: usize,
    /// Width multiplier.
    #[arg(long, default_value_t = 0.125)]
    width: f32,
    /// ResNet blocks per stage, e.g. `1,1,1,1` (default: the model's own, [3,4,6,3] for
    /// ResNet-50 variants).
    #[arg(long)]
    layers: Option<String>,
    /// Epochs.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Initial learning rate.
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
    schedule: ScheduleArg,
    /// Device: `gpu` trains with the WGSL kernels (one submit per step), `cpu` on the CPU
    /// reference path, `auto` picks a GPU adapter when there is one.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// Training data: a Fashion-MNIST folder (IDX files) or an image folder with one
    /// sub-folder per class (PNG/JPEG; see --test-data and --input).
    #[arg(long, default_value = FashionMnist::DEFAULT_DIR)]
    data: PathBuf,
    /// Test set for an image folder given as --data (same layout); without it, the final
    /// test accuracy is skipped.
    #[arg(long)]
    test_data: Option<PathBuf>,
    /// Image-folder input size `CxHxW` (C = 1 or 3); images are converted and resized.
    #[arg(long, default_value = "1x28x28")]
    input: String,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    limit: Option<usize>,
    /// Evaluate the final model on only the first N test images (quick runs).
    #[arg(long)]
    test_limit: Option<usize>,
    /// Training images held out for validation.
    #[arg(long, default_value_t = 5000)]
    val: usize,
    /// Seed of initialisation, shuffling, augmentation and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Checkpoint written (atomically) after every epoch.
    #[arg(long, default_value = "gconv-checkpoint.safetensors")]
    checkpoint: PathBuf,
    /// Resume from this checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Print one JSON line per epoch.
    #[arg(long)]
    json: bool,
}

/// Options of `gconv eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// A checkpoint written by `gconv train`, or a model written by `gconv export`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Test data: a Fashion-MNIST folder (its test split is used) or an image folder.
    #[arg(long, default_value = FashionMnist::DEFAULT_DIR)]
    data: PathBuf,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Device of the (exported, BN-folded) inference model.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
}

fn spec_for(a: &Args, input: [usize; 3], classes: usize) -> Result<ModelSpec> {
    let mut spec = ModelSpec::load(&a.model)?;
    spec.input = input;
    spec.num_classes = classes;
    spec.width = a.width;
    match &mut spec.arch {
        Arch::Resnet { stem, layers, .. } => {
            *stem = StemKind::Small;
            if let Some(l) = &a.layers {
                *layers = parse_layers(l)?;
            }
        }
        _ if a.layers.is_some() => {
            return Err(Error::InvalidArgument(
                "--layers applies to ResNet models only".into(),
            ))
        }
        _ => {}
    }
    if a.conv != ConvArg::Dense {
        spec = spec.with_groups(a.groups, Some(a.conv.into()))?;
    } else {
        spec = spec.with_groups(1, Some(gconv::zoo::ConvKind::Dense))?;
    }
    Ok(spec)
}

/// Training and (optional) test data, with the class count.
struct Data {
    train: Dataset,
    test: Option<Dataset>,
    classes: usize,
}

fn parse_layers(s: &str) -> Result<[usize; 4]> {
    let v: Vec<usize> = s
        .split(',')
        .map(|t| t.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            Error::InvalidArgument(format!(
                "--layers {s:?}: expected four counts, e.g. 1,1,1,1"
            ))
        })?;
    match v.as_slice() {
        &[a, b, c, d] if a.min(b).min(c).min(d) >= 1 => Ok([a, b, c, d]),
        _ => Err(Error::InvalidArgument(format!(
            "--layers {s:?}: expected four counts ≥ 1, e.g. 1,1,1,1"
        ))),
    }
}

fn parse_input(s: &str) -> Result<[usize; 3]> {
    let v: Vec<usize> = s
        .split(['x', 'X', ','])
        .map(|t| t.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            Error::InvalidArgument(format!("--input {s:?}: expected CxHxW, e.g. 1x28x28"))
        })?;
    match v.as_slice() {
        &[c, h, w] if (c == 1 || c == 3) && h > 0 && w > 0 => Ok([c, h, w]),
        _ => Err(Error::InvalidArgument(format!(
            "--input {s:?}: expected CxHxW with C = 1 or 3 and H, W ≥ 1"
        ))),
    }
}

/// A folder holding Fashion-MNIST IDX files (or no folder at all: the IDX loader then says
/// how to install the data set), as opposed to an image folder.
fn is_fashion_mnist(dir: &Path) -> bool {
    !dir.exists()
        || dir.join("train-images-idx3-ubyte.gz").exists()
        || dir.join("train-images-idx3-ubyte").exists()
        || dir.join("t10k-images-idx3-ubyte.gz").exists()
}

fn load_any(a: &Args) -> Result<Data> {
    if is_fashion_mnist(&a.data) {
        let (train, test) = load_data(&a.data)?;
        return Ok(Data {
            train,
            test: Some(test),
            classes: 10,
        });
    }
    let [c, h, w] = parse_input(&a.input)?;
    let train = ImageFolder::load(&a.data, c, [h, w])?;
    let test = match &a.test_data {
        Some(p) => {
            let t = ImageFolder::load(p, c, [h, w])?;
            if t.classes != train.classes {
                return Err(Error::InvalidArgument(format!(
                    "--test-data classes {:?} differ from --data classes {:?}",
                    t.classes, train.classes
                )));
            }
            Some(t.dataset)
        }
        None => None,
    };
    Ok(Data {
        classes: train.classes.len(),
        train: train.dataset,
        test,
    })
}

fn load_data(dir: &Path) -> Result<(Dataset, Dataset)> {
    let fm = FashionMnist::load(dir)?;
    let (t, l) = (&fm.train_images, fm.train_labels.clone());
    let train = Dataset::from_u8(&t.pixels, l, 1, t.rows, t.cols)?;
    let (t, l) = (&fm.test_images, fm.test_labels.clone());
    let test = Dataset::from_u8(&t.pixels, l, 1, t.rows, t.cols)?;
    Ok((train, test))
}

/// Splits a checkpoint into model weights and optimizer state (`*.momentum`).
fn split_checkpoint(all: Weights) -> (Weights, Weights) {
    let (mut w, mut m) = (Weights::new(), Weights::new());
    for (k, t) in all.iter() {
        if k.ends_with(".momentum") {
            m.insert(k.clone(), t.clone());
        } else {
            w.insert(k.clone(), t.clone());
        }
    }
    (w, m)
}

/// The CPU reference trainer or the GPU one, behind the few calls the loop makes.
enum AnyTrainer {
    Cpu(Box<Trainer>),
    Gpu(Box<GpuTrainer>),
}

impl AnyTrainer {
    fn graph(&self) -> &gconv::graph::Graph {
        match self {
            Self::Cpu(t) => t.graph(),
            Self::Gpu(t) => t.graph(),
        }
    }
    fn set_lr(&mut self, lr: f32) {
        match self {
            Self::Cpu(t) => t.set_lr(lr),
            Self::Gpu(t) => t.set_lr(lr),
        }
    }
    fn train_step(&mut self, x: &gconv::Tensor, y: &[usize]) -> Result<StepStats> {
        match self {
            Self::Cpu(t) => t.train_step(x, y),
            Self::Gpu(t) => t.train_step(x, y),
        }
    }
    fn evaluate_dataset(&self, d: &Dataset, batch: usize) -> Result<(f32, usize)> {
        match self {
            Self::Cpu(t) => t.evaluate_dataset(d, batch),
            Self::Gpu(t) => t.evaluate_dataset(d, batch),
        }
    }
    /// Weights, BN statistics and momentum buffers, for a checkpoint.
    fn checkpoint(&self) -> Result<Weights> {
        let (mut all, state) = match self {
            Self::Cpu(t) => (t.weights().clone(), t.optimizer().state().clone()),
            Self::Gpu(t) => (t.weights()?, t.optimizer_state()?),
        };
        for (k, v) in state.iter() {
            all.insert(k.clone(), v.clone());
        }
        Ok(all)
    }
}

fn gpu_context(device: DeviceArg) -> Result<Option<Arc<GpuContext>>> {
    match device {
        DeviceArg::Cpu => Ok(None),
        DeviceArg::Gpu => Ok(Some(Arc::new(GpuContext::new()?))),
        DeviceArg::Auto => match GpuContext::new() {
            Ok(c) => Ok(Some(Arc::new(c))),
            Err(e) => {
                log::warn!("no GPU adapter ({e}); training on the CPU reference path");
                Ok(None)
            }
        },
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.batch == 0 || a.epochs == 0 {
        return Err(Error::InvalidArgument(
            "--batch and --epochs must be at least 1".into(),
        ));
    }
    let Data {
        mut train,
        test,
        classes,
    } = load_any(&a)?;
    let spec = spec_for(&a, [train.channels, train.h, train.w], classes)?;
    let graph = spec.build()?;
    if let Some(n) = a.limit {
        train = train.subset(&(0..n.min(train.n)).collect::<Vec<_>>());
    }
    let (mean, std) = train.normalize_self()?;
    let (train, val) = train.split(a.val.min(train.n / 5))?;
    let mut test = test;
    if let Some(t) = &mut test {
        if let Some(n) = a.test_limit {
            *t = t.subset(&(0..n.min(t.n)).collect::<Vec<_>>());
        }
        t.normalize(&mean, &std)?;
    }

    let (weights, momentum, start_epoch) = match &a.resume {
        Some(p) => {
            let (w, m) = split_checkpoint(read_safetensors(p)?);
            w.validate(&graph)?;
            let epoch = gconv::io::read_safetensors_metadata(p)?
                .get("epoch")
                .and_then(|e| e.parse::<usize>().ok())
                .ok_or_else(|| {
                    Error::format(p, "not a gconv training checkpoint (no epoch metadata)")
                })?;
            (w, Some(m), epoch)
        }
        None => (Weights::init(&graph, a.seed), None, 0),
    };
    let cfg = TrainConfig {
        seed: a.seed,
        lr: a.lr,
        ..Default::default()
    };
    let ctx = gpu_context(a.device)?;
    let device_desc = match &ctx {
        Some(c) => format!("GPU {}", c.describe()),
        None => format!(
            "CPU reference path ({} threads)",
            rayon::current_num_threads()
        ),
    };
    let mut trainer = match ctx {
        Some(ctx) => {
            let mut t = GpuTrainer::new(ctx, graph, weights, cfg)?;
            if let Some(m) = &momentum {
                t.load_optimizer_state(m)?;
            }
            AnyTrainer::Gpu(Box::new(t))
        }
        None => {
            let mut t = Trainer::new(graph, weights, cfg)?;
            if let Some(m) = momentum {
                t.optimizer_mut().load_state(m);
            }
            AnyTrainer::Cpu(Box::new(t))
        }
    };
    let schedule = match a.schedule {
        ScheduleArg::Cosine => LrSchedule::Cosine {
            base: a.lr,
            total_epochs: a.epochs,
        },
        ScheduleArg::Step => LrSchedule::Step {
            base: a.lr,
            gamma: 0.1,
            step_size: a.epochs.div_ceil(3).max(1),
        },
        ScheduleArg::Constant => LrSchedule::Constant { lr: a.lr },
    };
    let cost = trainer.graph().cost();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": spec.name, "conv": format!("{:?}", a.conv).to_lowercase(), "groups": a.groups,
                "macs": cost.total_macs, "params": cost.total_params,
                "train_n": train.n, "val_n": val.n, "device": device_desc,
            })
        );
    } else {
        println!(
            "training {} ({:.1} MMACs/image, {} params) on {} images, validating on {}, device: {device_desc}",
            spec.name,
            cost.total_macs as f64 / 1e6,
            cost.total_params,
            train.n,
            val.n,
        );
    }
    let steps = train.n.div_ceil(a.batch);
    for epoch in start_epoch..a.epochs {
        let bar = if a.json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(steps as u64)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {msg} {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}]",
            )
            .expect("valid template"),
        );
        let t0 = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for (i, (x, y)) in train
            .batches(a.batch, Some(a.seed.wrapping_add(epoch as u64)), true)
            .enumerate()
        {
            trainer.set_lr(schedule.lr_at(epoch, i, steps));
            let s = trainer.train_step(&x, &y)?;
            loss_sum += s.loss as f64 * y.len() as f64;
            correct += s.correct;
            seen += y.len();
            bar.set_message(format!(
                "{}/{} loss {:.3}",
                epoch + 1,
                a.epochs,
                loss_sum / seen as f64
            ));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let secs = t0.elapsed().as_secs_f64();
        let (vloss, vcorrect) = trainer.evaluate_dataset(&val, 256)?;
        let mut meta = BTreeMap::new();
        meta.insert(
            "gconv_model".to_string(),
            serde_json::to_string(&spec).expect("serialisable"),
        );
        meta.insert("epoch".to_string(), (epoch + 1).to_string());
        meta.insert("norm_mean".to_string(), format!("{mean:?}"));
        meta.insert("norm_std".to_string(), format!("{std:?}"));
        let all = trainer.checkpoint()?;
        write_safetensors(&a.checkpoint, &all, &meta)?;
        let line = serde_json::json!({
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen as f64,
            "train_acc": correct as f64 / seen as f64,
            "val_loss": vloss,
            "val_acc": vcorrect as f64 / val.n as f64,
            "images_per_s": seen as f64 / secs,
            "device": device_desc,
        });
        if a.json {
            println!("{line}");
        } else {
            println!(
                "epoch {}/{}: train loss {:.4} acc {:.2} % | val loss {:.4} acc {:.2} % | {:.0} img/s | saved {}",
                epoch + 1,
                a.epochs,
                line["train_loss"].as_f64().unwrap_or(0.0),
                100.0 * line["train_acc"].as_f64().unwrap_or(0.0),
                vloss,
                100.0 * line["val_acc"].as_f64().unwrap_or(0.0),
                line["images_per_s"].as_f64().unwrap_or(0.0),
                a.checkpoint.display()
            );
        }
    }
    if let Some(test) = &test {
        let (tloss, tcorrect) = trainer.evaluate_dataset(test, 256)?;
        let acc = tcorrect as f64 / test.n as f64;
        if a.json {
            println!(
                "{}",
                serde_json::json!({"test_loss": tloss, "test_acc": acc, "test_n": test.n})
            );
        } else {
            println!(
                "test: loss {tloss:.4}, accuracy {:.2} % ({tcorrect}/{})",
                100.0 * acc,
                test.n
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

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
    #[arg(long, value_enum, default_value_t = crate::infer::FlgcArg::Reordered)]
    flgc: crate::infer::FlgcArg,
    /// Keep batch norms as separate ops instead of folding them into the convs.
    #[arg(long)]
    no_fold_bn: bool,
}

/// The model spec (from the `gconv_model` metadata), weights (momentum dropped) and metadata
/// of a training checkpoint.
fn read_checkpoint(path: &Path) -> Result<(ModelSpec, Weights, BTreeMap<String, String>)> {
    let all = read_safetensors(path)?;
    let meta = gconv::io::read_safetensors_metadata(path)?;
    let spec_json = meta.get("gconv_model").ok_or_else(|| {
        Error::format(
            path,
            "not a gconv training checkpoint (no gconv_model metadata)",
        )
    })?;
    let spec: ModelSpec = serde_json::from_str(spec_json)
        .map_err(|e| Error::format(path, format!("gconv_model metadata: {e}")))?;
    let (weights, _) = split_checkpoint(all);
    Ok((spec, weights, meta))
}

pub fn export(a: ExportArgs) -> Result<ExitCode> {
    let (spec, weights, meta) = read_checkpoint(&a.checkpoint)?;
    let graph = spec.build()?;
    weights.validate(&graph)?;
    let before = graph.cost();
    let (mut g, mut w) = (graph.clone(), weights);
    if g.nodes
        .iter()
        .any(|n| matches!(n.op, gconv::graph::Op::FlgcConv2d(_)))
    {
        (g, w) = match a.flgc {
            crate::infer::FlgcArg::Reordered => gconv::graph::passes::export_flgc(&g, &w)?,
            crate::infer::FlgcArg::Masked => gconv::graph::passes::materialize_flgc(&g, &w)?,
        };
    }
    if !a.no_fold_bn {
        (g, w) = gconv::graph::passes::fold_batch_norm(&g, &w)?;
    }
    let mut out_meta = BTreeMap::new();
    for k in ["norm_mean", "norm_std", "epoch", "gconv_model"] {
        if let Some(v) = meta.get(k) {
            out_meta.insert(k.to_string(), v.clone());
        }
    }
    gconv::io::write_exported(&a.out, &g, &w, &out_meta)?;
    let after = g.cost();
    println!(
        "{}: {} nodes → {} nodes, {:.2} → {:.2} MMACs/image, {} → {} params; wrote {}",
        spec.name,
        graph.nodes.len(),
        g.nodes.len(),
        before.total_macs as f64 / 1e6,
        after.total_macs as f64 / 1e6,
        before.total_params,
        after.total_params,
        a.out.display()
    );
    for n in &g.nodes {
        if let gconv::graph::Op::GroupedConvTable(gconv::ops::GroupedConvTable { table, .. }) =
            &n.op
        {
            let sizes: Vec<String> = table
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

pub fn eval(a: EvalArgs) -> Result<ExitCode> {
    // An exported model (gconv export) carries its graph; a checkpoint its model spec.
    if gconv::io::read_safetensors_metadata(&a.checkpoint)?
        .contains_key(gconv::io::exported::GRAPH_KEY)
    {
        let (graph, weights, meta) = gconv::io::read_exported(&a.checkpoint)?;
        let rt = gconv::Runtime::new(a.device.into())?;
        let opts = gconv::LoadOptions {
            fold_bn: false,
            ..Default::default()
        };
        let name = graph.name.clone();
        let [c, h, w] = graph.input_shape();
        let classes: usize = graph.output_shape().iter().product();
        let mut model = rt.load_graph(graph, weights, &opts)?;
        let test = eval_data(&a, &meta, [c, h, w])?;
        return eval_model(&mut model, &test, classes, a.batch, &name, &meta);
    }
    let (spec, weights, meta) = read_checkpoint(&a.checkpoint)?;
    let graph = spec.build()?;
    let classes: usize = graph.output_shape().iter().product();
    let test = eval_data(&a, &meta, spec.input)?;
    let rt = gconv::Runtime::new(a.device.into())?;
    let mut model = rt.load_graph(graph, weights, &gconv::LoadOptions::default())?;
    eval_model(&mut model, &test, classes, a.batch, &spec.name, &meta)
}

/// The test set for `gconv eval`, normalised with the checkpoint's statistics.
fn eval_data(
    a: &EvalArgs,
    meta: &BTreeMap<String, String>,
    [c, h, w]: [usize; 3],
) -> Result<Dataset> {
    let parse = |k: &str| -> Result<Vec<f32>> {
        let s = meta
            .get(k)
            .ok_or_else(|| Error::format(&a.checkpoint, format!("no {k} metadata")))?;
        serde_json::from_str(s).map_err(|e| Error::format(&a.checkpoint, format!("{k}: {e}")))
    };
    let mut test = if is_fashion_mnist(&a.data) {
        load_data(&a.data)?.1
    } else {
        ImageFolder::load(&a.data, c, [h, w])?.dataset
    };
    test.normalize(&parse("norm_mean")?, &parse("norm_std")?)?;
    Ok(test)
}

fn eval_model(
    model: &mut gconv::Model,
    test: &Dataset,
    classes: usize,
    batch: usize,
    name: &str,
    meta: &BTreeMap<String, String>,
) -> Result<ExitCode> {
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    for (x, y) in test.batches(batch.max(1), None, false) {
        let out = model.run(&x)?;
        let b = y.len();
        let logits = out.reshape(&[b, classes])?;
        let (l, _, c) = gconv::train::backward::softmax_cross_entropy(&logits, &y)?;
        loss_sum += l as f64 * b as f64;
        correct += c;
    }
    let loss = loss_sum / test.n.max(1) as f64;
    println!(
        "{name} (epoch {}): test loss {loss:.4}, accuracy {:.2} % ({correct}/{})",
        meta.get("epoch").map_or("?", |s| s.as_str()),
        100.0 * correct as f64 / test.n as f64,
        test.n
    );
    Ok(ExitCode::SUCCESS)
}
