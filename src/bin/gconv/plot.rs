//! `gconv plot LOG...`: loss and accuracy curves of training logs (`gconv train --log`), one
//! line per run, as the papers' training-curve figures.

use gconv::report::{write_line_chart, LineChart, Series};
use gconv::train::log::{read_log, RunLog};
use gconv::{Error, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Most points of the per-step loss curve (steps are averaged in windows).
const STEP_POINTS: usize = 60;

/// Options of `gconv plot`.
#[derive(clap::Args)]
pub struct Args {
    /// Training logs written by `gconv train --log` (one line per run in every chart).
    #[arg(required = true)]
    logs: Vec<PathBuf>,
    /// Folder for the charts (`accuracy`, `loss`, `step_loss`, as SVG and PNG).
    #[arg(long, default_value = "gconv-plots")]
    out: PathBuf,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let runs: Vec<(String, RunLog)> = a
        .logs
        .iter()
        .map(|p| {
            let log = read_log(p)?;
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned());
            Ok((log.label(&stem.unwrap_or_default()), log))
        })
        .collect::<Result<_>>()?;
    let epochs = runs
        .iter()
        .flat_map(|(_, r)| r.epochs.iter().map(|e| e.epoch))
        .max()
        .ok_or_else(|| Error::InvalidArgument("the logs hold no finished epoch".into()))?;
    let per_epoch = |f: fn(&gconv::train::log::EpochRecord) -> f64, scale: f64| {
        runs.iter()
            .map(|(name, r)| {
                let mut values = vec![f64::NAN; epochs];
                r.epochs
                    .iter()
                    .for_each(|e| values[e.epoch - 1] = scale * f(e));
                Series {
                    name: name.clone(),
                    values,
                }
            })
            .collect::<Vec<_>>()
    };
    let x_labels: Vec<String> = (1..=epochs).map(|e| e.to_string()).collect();
    let mut written = Vec::new();
    written.extend(write_line_chart(
        &a.out,
        "accuracy",
        &LineChart {
            title: "Validation accuracy".into(),
            x_label: "epoch".into(),
            y_label: "accuracy (%)".into(),
            x_labels: x_labels.clone(),
            series: per_epoch(|e| e.val_acc, 100.0),
        },
    )?);
    let mut loss = per_epoch(|e| e.train_loss, 1.0);
    for s in &mut loss {
        s.name.push_str(" (train)");
    }
    for mut s in per_epoch(|e| e.val_loss, 1.0) {
        s.name.push_str(" (val)");
        loss.push(s);
    }
    written.extend(write_line_chart(
        &a.out,
        "loss",
        &LineChart {
            title: "Loss".into(),
            x_label: "epoch".into(),
            y_label: "cross-entropy".into(),
            x_labels,
            series: loss,
        },
    )?);
    if let Some(chart) = step_chart(&runs) {
        written.extend(write_line_chart(&a.out, "step_loss", &chart)?);
    }
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Batch loss over the steps, averaged in at most [`STEP_POINTS`] windows.
fn step_chart(runs: &[(String, RunLog)]) -> Option<LineChart> {
    let last = runs
        .iter()
        .flat_map(|(_, r)| r.steps.iter().map(|s| s.0))
        .max()?;
    let window = last.div_ceil(STEP_POINTS).max(1);
    let points = last.div_ceil(window);
    let series = runs
        .iter()
        .map(|(name, r)| {
            let mut sum = vec![0.0; points];
            let mut n = vec![0usize; points];
            for &(step, loss) in &r.steps {
                let k = step.saturating_sub(1) / window;
                if k < points && loss.is_finite() {
                    sum[k] += loss;
                    n[k] += 1;
                }
            }
            let values = sum
                .iter()
                .zip(&n)
                .map(|(s, &c)| if c == 0 { f64::NAN } else { s / c as f64 })
                .collect();
            Series {
                name: name.clone(),
                values,
            }
        })
        .collect();
    Some(LineChart {
        title: format!("Training loss (mean of {window} steps)"),
        x_label: "step".into(),
        y_label: "cross-entropy".into(),
        x_labels: (1..=points).map(|k| (k * window).to_string()).collect(),
        series,
    })
}
