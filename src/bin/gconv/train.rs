//! `gconv train` and `gconv eval`: train a zoo model (dense, SGC or FLGC) on Fashion-MNIST or
//! a folder of images, with checkpoints; evaluate a checkpoint.

use crate::common::{ConvArg, DeviceArg};
use gconv::io::{read_safetensors, write_safetensors, FashionMnist};
use gconv::train::{Dataset, LrSchedule, TrainConfig, Trainer};
use gconv::zoo::{Arch, ModelSpec, StemKind};
use gconv::{Error, Result, Weights};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
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
    /// Zoo model (or .toml); its input becomes 1×28×28 and its width is scaled by --width.
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
    /// Device (training runs on the CPU reference path for now).
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Fashion-MNIST folder (IDX files).
    #[arg(long, default_value = FashionMnist::DEFAULT_DIR)]
    data: PathBuf,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    limit: Option<usize>,
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
    /// A checkpoint written by `gconv train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Fashion-MNIST folder.
    #[arg(long, default_value = FashionMnist::DEFAULT_DIR)]
    data: PathBuf,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    batch: usize,
}

fn spec_for(a: &Args) -> Result<ModelSpec> {
    let mut spec = ModelSpec::load(&a.model)?;
    spec.input = [1, 28, 28];
    spec.num_classes = 10;
    spec.width = a.width;
    if let Arch::Resnet { stem, .. } = &mut spec.arch {
        *stem = StemKind::Small;
    }
    if a.conv != ConvArg::Dense {
        spec = spec.with_groups(a.groups, Some(a.conv.into()))?;
    } else {
        spec = spec.with_groups(1, Some(gconv::zoo::ConvKind::Dense))?;
    }
    Ok(spec)
}

fn load_data(dir: &std::path::Path) -> Result<(Dataset, Dataset)> {
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

pub fn run(a: Args) -> Result<ExitCode> {
    if a.device != DeviceArg::Cpu {
        return Err(Error::InvalidArgument(
            "training runs on the CPU reference path for now (GPU training kernels are not written yet): use --device cpu".into(),
        ));
    }
    if a.batch == 0 || a.epochs == 0 {
        return Err(Error::InvalidArgument(
            "--batch and --epochs must be at least 1".into(),
        ));
    }
    let spec = spec_for(&a)?;
    let graph = spec.build()?;
    let (mut train, test) = load_data(&a.data)?;
    if let Some(n) = a.limit {
        train = train.subset(&(0..n.min(train.n)).collect::<Vec<_>>());
    }
    let (mean, std) = train.normalize_self()?;
    let (train, val) = train.split(a.val.min(train.n / 5))?;
    let mut test = test;
    test.normalize(&mean, &std)?;

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
    let mut trainer = Trainer::new(graph, weights, cfg)?;
    if let Some(m) = momentum {
        trainer.optimizer_mut().load_state(m);
    }
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
    if !a.json {
        println!(
            "training {} ({:.1} MMACs/image, {} params) on {} images, validating on {}, device: CPU reference path ({} threads)",
            spec.name,
            cost.total_macs as f64 / 1e6,
            cost.total_params,
            train.n,
            val.n,
            rayon::current_num_threads()
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
        let mut all = trainer.weights().clone();
        for (k, t) in trainer.optimizer().state().iter() {
            all.insert(k.clone(), t.clone());
        }
        write_safetensors(&a.checkpoint, &all, &meta)?;
        let line = serde_json::json!({
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen as f64,
            "train_acc": correct as f64 / seen as f64,
            "val_loss": vloss,
            "val_acc": vcorrect as f64 / val.n as f64,
            "images_per_s": seen as f64 / secs,
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
    let (tloss, tcorrect) = trainer.evaluate_dataset(&test, 256)?;
    println!(
        "test: loss {tloss:.4}, accuracy {:.2} % ({tcorrect}/{})",
        100.0 * tcorrect as f64 / test.n as f64,
        test.n
    );
    Ok(ExitCode::SUCCESS)
}

pub fn eval(a: EvalArgs) -> Result<ExitCode> {
    let all = read_safetensors(&a.checkpoint)?;
    let meta = gconv::io::read_safetensors_metadata(&a.checkpoint)?;
    let spec_json = meta.get("gconv_model").ok_or_else(|| {
        Error::format(
            &a.checkpoint,
            "not a gconv training checkpoint (no gconv_model metadata)",
        )
    })?;
    let spec: ModelSpec = serde_json::from_str(spec_json)
        .map_err(|e| Error::format(&a.checkpoint, format!("gconv_model metadata: {e}")))?;
    let graph = spec.build()?;
    let (weights, _) = split_checkpoint(all);
    let parse = |k: &str| -> Result<Vec<f32>> {
        let s = meta
            .get(k)
            .ok_or_else(|| Error::format(&a.checkpoint, format!("no {k} metadata")))?;
        serde_json::from_str(s).map_err(|e| Error::format(&a.checkpoint, format!("{k}: {e}")))
    };
    let (_, mut test) = load_data(&a.data)?;
    test.normalize(&parse("norm_mean")?, &parse("norm_std")?)?;
    let trainer = Trainer::new(graph, weights, TrainConfig::default())?;
    let (loss, correct) = trainer.evaluate_dataset(&test, a.batch)?;
    println!(
        "{} (epoch {}): test loss {loss:.4}, accuracy {:.2} % ({correct}/{})",
        spec.name,
        meta.get("epoch").map_or("?", |s| s.as_str()),
        100.0 * correct as f64 / test.n as f64,
        test.n
    );
    Ok(ExitCode::SUCCESS)
}
