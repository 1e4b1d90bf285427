//! `gconv train`: argument parsing and printing around the library's training
//! ([`gconv::train::Train`], checkpoints in [`gconv::train::checkpoint`]).

use crate::common::{ConvArg, DeviceArg};
use crate::train_args::{check_options_apply, MAX_EPOCHS};
pub use crate::train_args::{Args, ScheduleArg};
use crate::train_recovery::Restart;
use gconv::gpu::GpuContext;

use gconv::train::log::TrainLog;
use gconv::train::selection::GroupChanges;
use gconv::train::selection::{group_changes, init_selection_with_margin, layer_groups};
use gconv::train::{self, LrSchedule, TrainConfig};
use gconv::train::{Checkpoint, TrainingData};
use gconv::zoo::{Arch, ModelSpec, Scheme};
use gconv::{Error, Result, Weights};
use indicatif::{ProgressBar, ProgressStyle};

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

fn spec_for(a: &Args, input: [usize; 3], classes: usize) -> Result<ModelSpec> {
    let mut spec = ModelSpec::load(&a.model)?;
    spec.input = input;
    spec.num_classes = classes;
    spec.width = a.width;
    spec = spec.small_stem();
    match (&mut spec.arch, &a.layers) {
        (Arch::Resnet { layers, .. }, Some(l)) => *layers = parse_layers(l)?,
        (_, Some(_)) => {
            return Err(Error::InvalidArgument(
                "--layers applies to ResNet models only".into(),
            ))
        }
        _ => {}
    }
    if let Some(s) = &a.scheme {
        spec = spec.with_scheme(&Scheme::load(s)?)?;
        match (a.groups, a.conv) {
            (Some(g), c) => spec = spec.with_groups(g, c.map(Into::into))?,
            (None, Some(c)) => {
                let g = spec.groups();
                spec = spec.with_groups(g, Some(c.into()))?;
            }
            (None, None) => {}
        }
        return Ok(spec);
    }
    match a.conv.unwrap_or(ConvArg::Dense) {
        ConvArg::Dense => spec.with_groups(1, Some(gconv::zoo::ConvKind::Dense)),
        c => spec.with_groups(a.groups.unwrap_or(4), Some(c.into())),
    }
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

fn schedule(a: &Args) -> LrSchedule {
    match a.schedule {
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
    }
}

fn progress_bar(json: bool, steps: usize) -> ProgressBar {
    let bar = if json {
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
    bar
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.no_tune {
        // The GPU trainer reads the cache per batch size unless this is set; set before any
        // thread of ours starts.
        std::env::set_var("GCONV_TUNE", "off");
    }
    if a.batch == 0 || a.epochs == 0 {
        return Err(Error::InvalidArgument(
            "--batch and --epochs must be at least 1".into(),
        ));
    }
    if a.batch > gconv::bench::MAX_BATCH || a.epochs > MAX_EPOCHS {
        return Err(Error::InvalidArgument(format!(
            "--batch {} / --epochs {}: at most a batch of {} and {MAX_EPOCHS} epochs",
            a.batch,
            a.epochs,
            gconv::bench::MAX_BATCH
        )));
    }
    if !(a.flgc_margin.is_finite() && a.flgc_margin > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "--flgc-margin {} must be finite and > 0",
            a.flgc_margin
        )));
    }
    if let Some(s) = a.flgc_select_lr.filter(|s| !(s.is_finite() && *s >= 0.0)) {
        return Err(Error::InvalidArgument(format!(
            "--flgc-select-lr {s} must be finite and ≥ 0"
        )));
    }
    let selection_lr_scale = match a.flgc_select_lr {
        None => 1.0,
        Some(s) if a.lr > 0.0 => s / a.lr,
        Some(_) => {
            return Err(Error::InvalidArgument(
                "--flgc-select-lr needs a positive --lr (it follows --lr's schedule)".into(),
            ))
        }
    };
    let cfg = TrainConfig {
        seed: a.seed,
        lr: a.lr,
        selection_lr_scale,
        ..Default::default()
    };
    cfg.validate()?;
    check_options_apply(&a)?;
    gconv::fs::check_writable(&a.checkpoint)?;
    // One run per checkpoint: a second would interleave its epochs with ours.
    let _lock = gconv::fs::FileLock::try_exclusive(&a.checkpoint)?.ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{}: another gconv train is writing this checkpoint; give this run its own \
             --checkpoint (or wait for the other)",
            a.checkpoint.display()
        ))
    })?;
    let TrainingData {
        mut train,
        test,
        classes,
    } = TrainingData::load(
        &a.data,
        a.test_data.as_deref(),
        parse_input(a.input.as_deref().unwrap_or("1x28x28"))?,
    )?;
    let spec = spec_for(&a, [train.channels, train.h, train.w], classes)?;
    let graph = spec.build()?;
    if let Some(n) = a.limit {
        train = train.subset(&(0..n.min(train.n)).collect::<Vec<_>>());
    }
    let (mean, std) = train.normalize_self()?;
    if train.n == 0 {
        return Err(Error::InvalidArgument(
            "--limit 0: an epoch needs data (no training image is left)".into(),
        ));
    }
    let held_out = a.val.min(train.n / 5);
    if held_out == 0 {
        // Every epoch ends with a validation: it must have images (found after a whole epoch
        // before, with no checkpoint written).
        return Err(Error::InvalidArgument(format!(
            "no validation images: --val {} of {} training images (at most a fifth is held \
             out); give --val ≥ 1 and at least 5 images",
            a.val, train.n
        )));
    }
    let (train, val) = train.split(held_out)?;
    let mut test = test;
    if let Some(t) = &mut test {
        if let Some(n) = a.test_limit {
            *t = t.subset(&(0..n.min(t.n)).collect::<Vec<_>>());
        }
        t.normalize(&mean, &std)?;
    }
    let (weights, momentum, start_epoch) = match &a.resume {
        Some(p) => {
            let c = gconv::train::read_checkpoint(p)?;
            c.weights.validate(&graph)?;
            if c.epoch >= a.epochs {
                return Err(Error::InvalidArgument(format!(
                    "{}: already trained for {} epochs; --epochs {} trains nothing (give more)",
                    p.display(),
                    c.epoch,
                    a.epochs
                )));
            }
            (c.weights, Some(c.momentum), c.epoch)
        }
        None => {
            let mut w = Weights::init(&graph, a.seed);
            init_selection_with_margin(&graph, &mut w, a.flgc_init.into(), a.flgc_margin, a.seed)?;
            (w, None, 0)
        }
    };
    let mut restart = Restart::new(
        &graph,
        cfg,
        (&weights, momentum.as_ref(), start_epoch),
        a.resume.as_deref(),
    );
    let mut gpu = gpu_context(a.device)?;
    let mut trainer = train::trainer_for(gpu.clone(), graph, weights, cfg)?;
    if let Some(m) = &momentum {
        trainer.load_optimizer_state(m)?;
    }
    let device = trainer.device();
    let cost = trainer.graph().cost();
    let memory = trainer.memory_plan(a.batch)?;
    let conv_name = match (a.conv, &a.scheme) {
        (Some(c), _) => format!("{c:?}").to_lowercase(),
        (None, Some(_)) => "scheme".into(),
        (None, None) => "dense".into(),
    };
    let header = serde_json::json!({
        "model": spec.name, "conv": conv_name, "groups": spec.groups(), "scheme": a.scheme,
        "flgc_init": format!("{:?}", a.flgc_init).to_lowercase(), "seed": a.seed,
        "flgc_margin": a.flgc_margin, "flgc_select_lr": a.flgc_select_lr.unwrap_or(a.lr),
        "width": a.width, "input": spec.input, "batch": a.batch, "epochs": a.epochs, "lr": a.lr,
        "macs": cost.total_macs, "params": cost.total_params,
        "train_n": train.n, "val_n": val.n, "device": device,
        "step_memory": memory,
    });
    let mut log = match &a.log {
        Some(p) => Some(TrainLog::open(p, a.resume.is_some())?),
        None => None,
    };
    if let Some(l) = &mut log {
        l.write("run", header.clone())?;
    }
    if a.json {
        println!("{header}");
    } else {
        println!(
            "training {} ({:.1} MMACs/image, {} params) on {} images, validating on {}, device: {device}",
            spec.name,
            cost.total_macs as f64 / 1e6,
            cost.total_params,
            train.n,
            val.n,
        );
        if let Some(m) = &memory {
            println!(
                "  step memory (batch {}): {:.1} MB planned in {} buffers, {:.1} MB as one buffer per value",
                a.batch,
                m.planned_bytes as f64 / 1e6,
                m.slots,
                m.naive_bytes as f64 / 1e6
            );
        }
    }
    let schedule = schedule(&a);
    let norm = gconv::train::Normalization { mean, std };
    let mut groups = layer_groups(trainer.graph(), &trainer.weights()?)?;
    let steps = train.n.div_ceil(a.batch);
    let mut epoch = start_epoch;
    while epoch < a.epochs {
        let bar = progress_bar(a.json, steps);
        let t0 = Instant::now();
        let mut log_error = None;
        let mut epoch_run = || -> Result<_> {
            let stats = trainer.train_epoch(&train, a.batch, epoch, &schedule, true, &mut |p| {
                bar.set_message(format!("{}/{} loss {:.3}", epoch + 1, a.epochs, p.loss));
                bar.set_position(p.step as u64);
                let step = epoch * steps + p.step;
                restart.maybe_lose(gpu.as_ref(), step - start_epoch * steps);
                if let (Some(l), None) = (&mut log, &log_error) {
                    let r = serde_json::json!({"epoch": epoch + 1, "step": step,
                        "loss": p.batch_loss, "lr": p.lr});
                    log_error = l.write("step", r).err();
                }
            })?;
            let (vloss, vcorrect) = trainer.evaluate_dataset(&val, 256)?;
            Ok((
                stats,
                vloss,
                vcorrect,
                trainer.weights()?,
                trainer.optimizer_state()?,
            ))
        };
        let outcome = epoch_run();
        bar.finish_and_clear();
        let (stats, vloss, vcorrect, weights, momentum) = match outcome {
            Ok(o) => o,
            // A lost device: on from the last checkpoint, on a new one (train_recovery.rs).
            Err(e) => {
                (trainer, gpu, epoch) = restart.after(e, gpu.as_ref())?;
                groups = layer_groups(trainer.graph(), &trainer.weights()?)?;
                continue;
            }
        };
        if let Some(e) = log_error {
            return Err(e);
        }
        let secs = t0.elapsed().as_secs_f64();
        let now = layer_groups(trainer.graph(), &weights)?;
        let changes = group_changes(&groups, &now);
        groups = now;
        let checkpoint = Checkpoint {
            spec: spec.clone(),
            weights,
            momentum,
            epoch: epoch + 1,
            norm: norm.clone(),
        };
        gconv::train::write_checkpoint(&a.checkpoint, &checkpoint)?;
        restart.saved(&a.checkpoint);
        let line = serde_json::json!({
            "epoch": epoch + 1,
            "train_loss": stats.loss,
            "train_acc": stats.correct as f64 / stats.samples as f64,
            "val_loss": vloss,
            "val_acc": vcorrect as f64 / val.n.max(1) as f64,
            "images_per_s": stats.samples as f64 / secs,
            "device": device,
            "flgc": changes,
        });
        if let Some(l) = &mut log {
            l.write("epoch", line.clone())?;
        }
        if a.json {
            println!("{line}");
        } else {
            println!(
                "epoch {}/{}: train loss {:.4} acc {:.2} % | val loss {:.4} acc {:.2} % | {:.0} img/s | saved {}",
                epoch + 1,
                a.epochs,
                stats.loss,
                100.0 * line["train_acc"].as_f64().unwrap_or(0.0),
                vloss,
                100.0 * line["val_acc"].as_f64().unwrap_or(0.0),
                line["images_per_s"].as_f64().unwrap_or(0.0),
                a.checkpoint.display()
            );
            print_group_changes(&changes);
        }
        epoch += 1;
    }
    if let Some(test) = &test {
        let (tloss, tcorrect) = trainer.evaluate_dataset(test, 256)?;
        let acc = tcorrect as f64 / test.n as f64;
        let line = serde_json::json!({"test_loss": tloss, "test_acc": acc, "test_n": test.n});
        if let Some(l) = &mut log {
            l.write("test", line.clone())?;
        }
        if a.json {
            println!("{line}");
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

/// One line per FLGC layer: what moved this epoch and the group sizes now.
fn print_group_changes(changes: &[GroupChanges]) {
    for c in changes {
        println!(
            "  {:<24} moved {:>3} in / {:>3} out | empty in-groups {} ({} dead filters) | sizes in {}–{}, out {}–{}",
            c.layer,
            c.moved_in,
            c.moved_out,
            c.empty_in,
            c.dead_filters,
            c.in_range.0,
            c.in_range.1,
            c.out_range.0,
            c.out_range.1
        );
    }
}
