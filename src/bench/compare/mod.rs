//! `gconv bench compare OLD.json NEW.json`: two reports row by row. On one device it is a
//! regression check, on two it says which is faster where.
//!
//! Every row is a time (paper1's latencies, the layer-wise totals, the sweep's points, your
//! models) or a roofline rate, matched by suite, row, metric and workload (the input size
//! and MACs per image, so a model timed at 64² never pairs with the same model at 224², nor
//! a zoo model with one of another width). Its **time ratio** is
//! new / old median time (a rate counts as the time to move a byte or do a FLOP: old / new
//! rate), so below 1 the new run is faster; its **spread** is the ratio's range over the
//! runs (new min / old max … new max / old min) where both reports kept min and max, so a
//! ratio inside noise is visible as a spread straddling 1. A row **regressed past R** when
//! its time ratio exceeds R. Rows found in one report only are listed, not compared.

mod output;

pub use output::write_comparison;

use super::{BenchReport, Stats};
use crate::error::{Error, Result};
use crate::fs::read_file;
use crate::limits::MAX_REPORT_FILE_BYTES;
use serde::Serialize;
use std::path::Path;

/// Reads a report written by `gconv bench --out` (`report.json`) or `--json`.
///
/// # Errors
///
/// [`Error::Io`] / [`Error::Format`] naming `path`: unreadable, not a regular file, too
/// large, truncated, not JSON, or not a bench report (the field that does not fit).
pub fn read_report(path: &Path) -> Result<BenchReport> {
    let bytes = read_file(path, MAX_REPORT_FILE_BYTES)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let what = if e.is_eof() {
            "truncated: the JSON ends early"
        } else if e.is_syntax() {
            "not valid JSON"
        } else {
            "not a gconv bench report (report.json of `gconv bench --out`, or `--json`)"
        };
        Error::format(path, format!("{what}: {e}"))
    })
}

/// One report of a comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Side {
    /// Where it came from (a path, or `current run`).
    pub label: String,
    /// Its device line.
    pub device: String,
    /// The gconv version that wrote it.
    pub gconv_version: String,
}

/// What a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Seconds: lower is better.
    Time,
    /// GB/s or GFLOP/s: higher is better.
    Rate,
}

/// One value of one report: median and, where the report kept them, min and max.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Value {
    /// Median (or the only value).
    pub median: f64,
    /// Min and max of the runs, if known.
    pub range: Option<(f64, f64)>,
}

impl From<&Stats> for Value {
    fn from(s: &Stats) -> Self {
        Value {
            median: s.median,
            range: Some((s.min, s.max)),
        }
    }
}

/// One row found in both reports.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `paper1`, `paper2`, `mobilenet`, `sweep`, `models`, `roofline`.
    pub suite: String,
    /// The row (model, scheme, layer and G …).
    pub name: String,
    /// What was measured and on what (`latency, batch 1; 224², 305.3 MMACs`,
    /// `GEMM GFLOP/s`, …).
    pub metric: String,
    /// Time or rate.
    pub measure: Measure,
    /// The old report's value.
    pub old: Value,
    /// The new report's value.
    pub new: Value,
    /// New / old median time (rates: old / new): below 1 the new run is faster.
    pub time_ratio: f64,
    /// The time ratio's range over the runs, when both reports kept min and max.
    pub spread: Option<(f64, f64)>,
}

/// Two reports compared.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The old (reference) report.
    pub old: Side,
    /// The new report.
    pub new: Side,
    /// Whether both ran on the same device (same device line).
    pub same_device: bool,
    /// Settings that differ: (setting, old value, new value).
    pub config_diffs: Vec<(String, String, String)>,
    /// Rows in both.
    pub rows: Vec<Row>,
    /// `suite: row (metric)` only the old report has.
    pub only_old: Vec<String>,
    /// `suite: row (metric)` only the new report has.
    pub only_new: Vec<String>,
}

/// A row before matching: key and value.
struct Entry {
    suite: &'static str,
    name: String,
    metric: String,
    /// What ran: `64², 305.3 MMACs` (none for the roofline).
    workload: Option<String>,
    measure: Measure,
    value: Value,
}

impl Entry {
    /// Suite, row, metric and workload: rows pair only when all four agree.
    fn key(&self) -> String {
        match &self.workload {
            Some(w) => format!("{}: {} ({}; {w})", self.suite, self.name, self.metric),
            None => format!("{}: {} ({})", self.suite, self.name, self.metric),
        }
    }
}

/// The workload part of a key: input size and MACs per image.
fn workload(size: usize, macs: u64) -> Option<String> {
    Some(if macs >= 10_000_000 {
        format!("{size}², {:.1} MMACs", macs as f64 / 1e6)
    } else {
        format!("{size}², {macs} MACs")
    })
}

fn entries(r: &BenchReport) -> Vec<Entry> {
    let mut v = Vec::new();
    let mut time = |suite, name: String, metric: String, workload, value| {
        v.push(Entry {
            suite,
            name,
            metric,
            workload,
            measure: Measure::Time,
            value,
        })
    };
    let (b, lb) = (r.config.batch, r.config.large_batch);
    let size = r.config.input_size;
    let paper1_size = r.config.paper1_input_size.unwrap_or(size);
    for m in &r.paper1 {
        let w = workload(paper1_size, m.macs);
        time(
            "paper1",
            m.model.clone(),
            format!("latency, batch {b}"),
            w.clone(),
            (&m.latency).into(),
        );
        if let Some(l) = &m.large_batch_latency {
            time(
                "paper1",
                m.model.clone(),
                format!("latency, batch {lb}"),
                w,
                l.into(),
            );
        }
    }
    for (suite, rows) in [("paper2", &r.paper2), ("mobilenet", &r.mobilenet)] {
        for m in rows {
            let value = Value {
                median: m.total,
                range: None,
            };
            time(
                suite,
                m.model.clone(),
                format!("sum of block medians, batch {b}"),
                workload(size, m.macs),
                value,
            );
        }
    }
    for s in &r.sweep {
        let l = &s.layer;
        let name = format!(
            "{}ch {}² {}×{} G={}",
            l.channels, l.size, l.kernel, l.kernel, s.groups
        );
        // The layer's shape and G are its name: the whole workload.
        time(
            "sweep",
            name,
            format!("time, batch {b}"),
            None,
            (&s.time).into(),
        );
    }
    for m in &r.models {
        time(
            "models",
            m.model.clone(),
            format!("latency, batch {b}"),
            workload(m.input[1], m.macs),
            (&m.latency).into(),
        );
    }
    if let Some(roof) = &r.roofline {
        for (metric, rate) in [
            ("stream read GB/s", roof.read_gbps),
            ("GEMM GFLOP/s", roof.gemm_gflops),
        ] {
            v.push(Entry {
                suite: "roofline",
                name: "roof".into(),
                metric: metric.into(),
                workload: None,
                measure: Measure::Rate,
                value: Value {
                    median: rate,
                    range: None,
                },
            });
        }
    }
    v
}

fn side(r: &BenchReport, label: &str) -> Side {
    Side {
        label: label.into(),
        device: r.device.clone(),
        gconv_version: r.gconv_version.clone(),
    }
}

fn config_diffs(old: &BenchReport, new: &BenchReport) -> Vec<(String, String, String)> {
    let a = serde_json::to_value(&old.config).expect("serialisable");
    let b = serde_json::to_value(&new.config).expect("serialisable");
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return Vec::new();
    };
    let show = |v: Option<&serde_json::Value>| v.map_or("—".into(), |v| v.to_string());
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| (k.clone(), show(a.get(k)), show(b.get(k))))
        .collect()
}

/// Compares `new` with `old` (labelled by where they came from).
pub fn compare(
    old: &BenchReport,
    old_label: &str,
    new: &BenchReport,
    new_label: &str,
) -> Comparison {
    let (eo, en) = (entries(old), entries(new));
    let mut rows = Vec::new();
    let mut only_new = Vec::new();
    for n in &en {
        let Some(o) = eo.iter().find(|o| o.key() == n.key()) else {
            only_new.push(n.key());
            continue;
        };
        let (a, b) = (o.value, n.value);
        let (time_ratio, spread) = match n.measure {
            Measure::Time => (
                b.median / a.median,
                match (a.range, b.range) {
                    (Some((amin, amax)), Some((bmin, bmax))) => Some((bmin / amax, bmax / amin)),
                    _ => None,
                },
            ),
            Measure::Rate => (a.median / b.median, None),
        };
        rows.push(Row {
            suite: n.suite.into(),
            name: n.name.clone(),
            metric: match &n.workload {
                Some(w) => format!("{}; {w}", n.metric),
                None => n.metric.clone(),
            },
            measure: n.measure,
            old: a,
            new: b,
            time_ratio,
            spread,
        });
    }
    let only_old = eo
        .iter()
        .filter(|o| !en.iter().any(|n| n.key() == o.key()))
        .map(Entry::key)
        .collect();
    Comparison {
        old: side(old, old_label),
        new: side(new, new_label),
        same_device: old.device == new.device,
        config_diffs: config_diffs(old, new),
        rows,
        only_old,
        only_new,
    }
}

impl Comparison {
    /// Rows whose time ratio exceeds `r` (a slowdown past `r`×).
    pub fn regressions(&self, r: f64) -> Vec<&Row> {
        self.rows.iter().filter(|row| row.time_ratio > r).collect()
    }

    /// What the comparison is, in one sentence.
    pub fn summary(&self) -> String {
        let faster = self.rows.iter().filter(|r| r.time_ratio < 1.0).count();
        if self.same_device {
            format!(
                "Same device ({}): a regression check. {} of {} rows are faster in the new run.",
                self.new.device,
                faster,
                self.rows.len()
            )
        } else {
            format!(
                "Two devices: old = {}, new = {}. The new device is faster on {} of {} rows \
                 (time ratio below 1).",
                self.old.device,
                self.new.device,
                faster,
                self.rows.len()
            )
        }
    }
}
