//! The comparison written out: its tables, the ratio chart, Markdown, one self-contained
//! HTML file, and the files of `gconv bench compare --out DIR`.

use super::{Comparison, Measure, Row, Value};
use crate::error::{Error, Result};
use crate::fs::write_atomic;
use crate::report::html::HtmlDoc;
use crate::report::{write_figure, AnyChart, BarChart, Figure, Series, Table};
use std::path::{Path, PathBuf};

fn value_text(v: &Value, m: Measure) -> String {
    let f = |x: f64| match m {
        Measure::Time => format!("{:.3}", x * 1e3),
        Measure::Rate => format!("{x:.2}"),
    };
    match v.range {
        Some((lo, hi)) => format!("{} ({}–{})", f(v.median), f(lo), f(hi)),
        None => f(v.median),
    }
}

impl Comparison {
    /// The tables: the rows with their ratios (flagged past `fail_above`), the rows of one
    /// side only, the settings that differ.
    pub fn tables(&self, fail_above: Option<f64>) -> Vec<Table> {
        let verdict = |r: &Row| {
            let noise = r.spread.is_some_and(|(lo, hi)| lo <= 1.0 && hi >= 1.0);
            match fail_above {
                Some(limit) if r.time_ratio > limit => "REGRESSED".to_string(),
                _ if noise => "within noise".to_string(),
                _ if r.time_ratio < 1.0 => format!("new {:.2}× faster", 1.0 / r.time_ratio),
                _ if r.time_ratio > 1.0 => format!("new {:.2}× slower", r.time_ratio),
                _ => "same".to_string(),
            }
        };
        let rows = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.suite.clone(),
                    r.name.clone(),
                    r.metric.clone(),
                    value_text(&r.old, r.measure),
                    value_text(&r.new, r.measure),
                    format!("{:.3}", r.time_ratio),
                    r.spread
                        .map_or("—".into(), |(lo, hi)| format!("{lo:.3}–{hi:.3}")),
                    verdict(r),
                ]
            })
            .collect();
        let mut out = vec![Table::new(
            "Rows in both reports (times in ms; time ratio = new / old, below 1 the new run is faster)",
            &[
                "suite",
                "row",
                "metric",
                "old (min–max)",
                "new (min–max)",
                "time ratio",
                "spread",
                "verdict",
            ],
            rows,
        )];
        if !self.only_old.is_empty() || !self.only_new.is_empty() {
            let rows = self
                .only_old
                .iter()
                .map(|k| vec![k.clone(), "old only".into()])
                .chain(
                    self.only_new
                        .iter()
                        .map(|k| vec![k.clone(), "new only".into()]),
                )
                .collect();
            out.push(Table::new(
                "Rows in one report only (not compared)",
                &["row", "in"],
                rows,
            ));
        }
        if !self.config_diffs.is_empty() {
            let rows = self
                .config_diffs
                .iter()
                .map(|(k, a, b)| vec![k.clone(), a.clone(), b.clone()])
                .collect();
            out.push(Table::new(
                "Settings that differ (rows may not be like for like)",
                &["setting", "old", "new"],
                rows,
            ));
        }
        out
    }

    /// The time ratio of every row as bars (1 = unchanged).
    pub fn figure(&self) -> Option<Figure> {
        if !self.rows.iter().any(|r| r.time_ratio.is_finite()) {
            return None;
        }
        let chart = BarChart {
            title: "New / old time per row (below 1: the new run is faster)".into(),
            y_label: "time ratio".into(),
            categories: self
                .rows
                .iter()
                .map(|r| format!("{} {}", r.name, short_metric(&r.metric)))
                .collect(),
            series: vec![Series {
                name: "new / old time".into(),
                values: self
                    .rows
                    .iter()
                    .map(|r| {
                        if r.time_ratio.is_finite() {
                            r.time_ratio
                        } else {
                            f64::NAN
                        }
                    })
                    .collect(),
            }],
        };
        Some(Figure {
            stem: "compare_ratios".into(),
            alt: "time ratios".into(),
            chart: AnyChart::Bar(chart),
        })
    }

    fn head(&self) -> String {
        format!(
            "old: {} ({}, gconv {})\nnew: {} ({}, gconv {})",
            self.old.label,
            self.old.device,
            self.old.gconv_version,
            self.new.label,
            self.new.device,
            self.new.gconv_version
        )
    }

    /// The comparison as Markdown (also readable on a terminal).
    pub fn markdown(&self, fail_above: Option<f64>) -> String {
        let mut s = format!(
            "# gconv bench compare\n\n{}\n\n{}\n",
            self.head(),
            self.summary()
        );
        for t in self.tables(fail_above) {
            s += &format!("\n## {}\n\n{}", t.title, t.markdown());
        }
        s
    }

    /// The comparison as one self-contained HTML file.
    pub fn html(&self, fail_above: Option<f64>) -> Result<String> {
        let mut d = HtmlDoc::new("gconv bench compare");
        for line in self.head().lines() {
            d.paragraph(line);
        }
        d.paragraph(&self.summary());
        if let Some(limit) = fail_above {
            let n = self.regressions(limit).len();
            d.note(&format!("{n} rows regressed past {limit}× (--fail-above)."));
        }
        for t in self.tables(fail_above) {
            d.table(&t);
        }
        if let Some(f) = self.figure() {
            d.figure(&f)?;
        }
        Ok(d.finish())
    }
}

fn short_metric(m: &str) -> String {
    let m = m.split(';').next().unwrap_or(m);
    m.replace("latency, ", "")
        .replace("sum of block medians, ", "")
}

/// Writes `compare.md`, `compare.html`, `compare.json` and the ratio chart
/// (`compare_ratios.svg` / `.png`) into `dir`; returns the files written.
pub fn write_comparison(
    c: &Comparison,
    dir: &Path,
    fail_above: Option<f64>,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    if let Some(f) = c.figure() {
        files.extend(write_figure(dir, &f)?);
    }
    let mut md = c.markdown(fail_above);
    if c.figure().is_some() {
        md += "\n![time ratios](compare_ratios.png)\n";
    }
    let json = serde_json::to_string_pretty(c).expect("serialisable");
    for (name, text) in [
        ("compare.md", md),
        ("compare.html", c.html(fail_above)?),
        ("compare.json", json),
    ] {
        let p = dir.join(name);
        write_atomic(&p, text.as_bytes())?;
        files.push(p);
    }
    Ok(files)
}
