//! The search as text (Markdown tables), files (scheme `.toml`s, `search.json`, `summary.md`)
//! and Pareto charts (SVG and PNG).

use super::report::{SchemeResult, SearchReport};
use crate::error::Result;
use crate::fs::write_atomic;
use crate::report::{markdown_table, render_scatter_chart, PointSeries, ScatterChart};
use std::path::{Path, PathBuf};

fn m(v: u64) -> String {
    format!("{:.3}", v as f64 / 1e6)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:+.1}"))
}

fn groups_text(s: &SchemeResult) -> String {
    if s.groups.is_empty() {
        format!("{:?}", s.groups_by_stage)
    } else {
        let g: Vec<String> = s.groups.iter().map(|(n, g)| format!("{n}={g}")).collect();
        format!("{} layers grouped: {}", g.len(), g.join(" "))
    }
}

/// The results as Markdown tables: one row per scheme (targets, references, the dense model),
/// then the marks.
pub fn render_text(r: &SearchReport) -> String {
    let mut rows = Vec::new();
    let mut row = |what: &str, s: &SchemeResult| {
        rows.push(vec![
            what.to_string(),
            s.scheme.clone(),
            groups_text(s),
            ms(Some(s.predicted_ms)),
            ms(s.measured_ms),
            pct(s.error_pct),
            pct(s.error_vs_dense_pct),
            m(s.macs),
            m(s.params),
        ]);
    };
    row("dense", &r.dense);
    for res in &r.results {
        row(&format!("found: {}", res.target), &res.found);
        if let Some(rf) = &res.reference {
            row("reference", rf);
        }
    }
    let header = [
        "what",
        "scheme",
        "G",
        "predicted ms",
        "measured ms",
        "pred. error %",
        "error vs dense %",
        "MMACs",
        "M params",
    ];
    let mut out =
        format!(
        "{} at {}x{}x{}, batch {} {}, {} {} on {}\n{} units, {} schemes searched exactly; layers: {} \
         measured now, {} from the cache; fixed cost {:.2} ms (dense measured {:.2} ms before \
         the search)\n\n",
        r.model,
        r.input[0],
        r.input[1],
        r.input[2],
        r.batch,
        r.precision,
        r.conv,
        if r.per_layer { "per layer" } else { "per stage" },
        r.device,
        r.units.len(),
        r.space_size,
        r.latency.layers_measured_now,
        r.latency.layers_from_cache,
        r.latency.fixed_ms,
        r.latency.calibration.median_ms,
    );
    out += &markdown_table(&header, &rows);
    for res in &r.results {
        if let (Some(rf), Some(ratio)) = (&res.reference, res.measured_ratio) {
            out += &format!(
                "\n{}: found {:.2} ms vs {} {:.2} ms measured ({:.3}×), MACs {:+.1} %",
                res.target,
                res.found.measured_ms.unwrap_or(f64::NAN),
                rf.scheme,
                rf.measured_ms.unwrap_or(f64::NAN),
                ratio,
                100.0 * (res.found.macs as f64 / rf.macs as f64 - 1.0)
            );
        }
    }
    out += &checks(r);
    if !r.marks.is_empty() {
        let rows: Vec<Vec<String>> = r
            .marks
            .iter()
            .map(|s| {
                vec![
                    s.scheme.clone(),
                    groups_text(s),
                    ms(Some(s.predicted_ms)),
                    m(s.macs),
                    m(s.params),
                ]
            })
            .collect();
        out += "\n\nReference schemes (predicted):\n\n";
        out += &markdown_table(&["scheme", "G", "predicted ms", "MMACs", "M params"], &rows);
    }
    out += &format!(
        "\nPareto front (latency vs MACs): {} points; (latency vs params): {} points\n",
        r.front_macs.len(),
        r.front_params.len()
    );
    out
}

/// The report as JSON; with a single target its found scheme's `groups_by_stage` (or
/// `groups`), `predicted_ms`, `measured_ms`, `macs`, `params` and `reference` are also at the
/// top level.
pub fn to_json(r: &SearchReport) -> String {
    let mut v = serde_json::to_value(r).expect("serialisable");
    if let ([res], Some(obj)) = (&r.results[..], v.as_object_mut()) {
        let f = &res.found;
        obj.insert(
            "groups_by_stage".into(),
            serde_json::json!(f.groups_by_stage),
        );
        if !f.groups.is_empty() {
            obj.insert("groups".into(), serde_json::json!(f.groups));
        }
        obj.insert("scheme".into(), serde_json::json!(f.scheme));
        obj.insert("predicted_ms".into(), serde_json::json!(f.predicted_ms));
        obj.insert("measured_ms".into(), serde_json::json!(f.measured_ms));
        obj.insert("macs".into(), serde_json::json!(f.macs));
        obj.insert("params".into(), serde_json::json!(f.params));
        if let Some(rf) = &res.reference {
            obj.insert(
                "reference".into(),
                serde_json::json!({
                    "scheme": rf.scheme, "measured_ms": rf.measured_ms,
                    "predicted_ms": rf.predicted_ms, "macs": rf.macs, "params": rf.params,
                    "groups_by_stage": rf.groups_by_stage,
                }),
            );
        }
    }
    serde_json::to_string_pretty(&v).expect("serialisable")
}

/// The Pareto chart of `value` (`macs` or `params`): the front (predicted), the reference
/// schemes (predicted, labelled), and every scheme measured end to end at its measured latency.
pub fn pareto_chart(r: &SearchReport, params: bool) -> ScatterChart {
    let (scale, what) = if params {
        (1e-6, "M parameters")
    } else {
        (1e-9, "GMACs")
    };
    let y = |s: &SchemeResult| if params { s.params } else { s.macs } as f64 * scale;
    let front = if params {
        &r.front_params
    } else {
        &r.front_macs
    };
    let mut series = vec![PointSeries {
        name: "Pareto front (predicted)".into(),
        points: front
            .iter()
            .map(|p| {
                (
                    p.predicted_ms,
                    if params { p.params } else { p.macs } as f64 * scale,
                )
            })
            .collect(),
        labels: Vec::new(),
        line: true,
    }];
    let labelled = |name: &str, v: Vec<(&SchemeResult, f64, String)>| PointSeries {
        name: name.into(),
        points: v.iter().map(|(s, x, _)| (*x, y(s))).collect(),
        labels: v.into_iter().map(|(_, _, l)| l).collect(),
        line: false,
    };
    if !r.marks.is_empty() {
        let v = r
            .marks
            .iter()
            .map(|s| (s, s.predicted_ms, s.scheme.clone()))
            .collect();
        series.push(labelled("reference schemes (predicted)", v));
    }
    let found: Vec<_> = r
        .results
        .iter()
        .map(|res| {
            (
                &res.found,
                res.found.predicted_ms,
                format!("→ {}", short(&res.target)),
            )
        })
        .collect();
    series.push(labelled("found (predicted)", found));
    let mut measured: Vec<(&SchemeResult, f64, String)> = Vec::new();
    for s in std::iter::once(&r.dense)
        .chain(r.results.iter().map(|x| &x.found))
        .chain(r.results.iter().filter_map(|x| x.reference.as_ref()))
    {
        if let Some(m) = s.measured_ms {
            let label = s.scheme.trim_start_matches("found-as-fast-as-");
            let label = if s.scheme.starts_with("found") && label != s.scheme {
                format!("→ {label}")
            } else if s.scheme.starts_with("found") {
                "found".to_string()
            } else {
                label.to_string()
            };
            measured.push((s, m, label));
        }
    }
    series.push(labelled("measured end to end", measured));
    ScatterChart {
        title: format!(
            "{} {}x{} batch {} {}: latency vs {what} ({})",
            r.model,
            r.input[1],
            r.input[2],
            r.batch,
            r.precision,
            r.device_short()
        ),
        x_label: "latency (ms)".into(),
        y_label: what.into(),
        series,
    }
}

fn short(target: &str) -> String {
    target.trim_start_matches("as fast as ").to_string()
}

/// The files of a search: one scheme `.toml` per target, `search.json`, `summary.md` and the
/// two Pareto charts (SVG, and PNG when a font is found). Everything is rendered first and
/// each file written atomically, so a failure leaves no half-written file.
pub fn write_outputs(r: &SearchReport, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for res in &r.results {
        let name = format!("{}.toml", res.found.scheme);
        files.push((dir.join(name), res.scheme_toml.clone().into_bytes()));
    }
    files.push((dir.join("search.json"), to_json(r).into_bytes()));
    let mut md = format!("# gconv search\n\n```text\n{}```\n", render_text(r));
    for (stem, params) in [("pareto_macs", false), ("pareto_params", true)] {
        let (svg, png) = render_scatter_chart(&pareto_chart(r, params))?;
        files.push((dir.join(format!("{stem}.svg")), svg.into_bytes()));
        if let Some(png) = png {
            files.push((dir.join(format!("{stem}.png")), png));
            md.push_str(&format!("\n![{stem}]({stem}.png)\n"));
        }
    }
    files.push((dir.join("summary.md"), md.into_bytes()));
    std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e))?;
    for (p, bytes) in &files {
        write_atomic(p, bytes)?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

/// The issue's goals, checked on what this run measured: per `--as-fast-as` target the found
/// scheme's measured latency within 1.05× the reference's with at least its MACs, and every
/// measured scheme's prediction within 15 %.
fn checks(r: &SearchReport) -> String {
    let mut out = String::new();
    let refs: Vec<_> = r.results.iter().filter(|x| x.reference.is_some()).collect();
    if !refs.is_empty() {
        let (mut fast, mut more, mut strictly) = (0, 0, 0);
        for x in &refs {
            let rf = x.reference.as_ref().expect("filtered");
            fast += usize::from(x.measured_ratio.is_some_and(|q| q <= 1.05));
            more += usize::from(x.found.macs >= rf.macs);
            strictly += usize::from(x.found.macs > rf.macs);
        }
        out += &format!(
            "\n\nchecks: measured ≤ 1.05× the reference for {fast} of {n}; MACs ≥ the reference's \
             for {more} of {n}, strictly more for {strictly}",
            n = refs.len()
        );
    }
    let measured: Vec<&SchemeResult> = std::iter::once(&r.dense)
        .chain(
            r.results
                .iter()
                .flat_map(|x| std::iter::once(&x.found).chain(&x.reference)),
        )
        .collect();
    let within = |errs: Vec<f64>| {
        let n = errs.iter().filter(|e| e.abs() <= 15.0).count();
        let worst = errs.iter().fold(0.0f64, |a, e| a.max(e.abs()));
        (n, errs.len(), worst)
    };
    let (n, of, worst) = within(measured.iter().filter_map(|s| s.error_pct).collect());
    out += &format!(
        "\nchecks: prediction within 15 % for {n} of {of} measured schemes (worst {worst:.1} %, \
         the dense model included)"
    );
    let (n, of, worst) = within(
        measured
            .iter()
            .filter_map(|s| s.error_vs_dense_pct)
            .collect(),
    );
    out += &format!(
        "\nchecks: time relative to the dense model's predicted within 15 % for {n} of {of} \
         (worst {worst:.1} %)\n"
    );
    out
}
