//! The roof in the report: the roofline table, per-layer tables (kernel, rate, share of the
//! roof), the worst layers, and the efficiency charts.

use super::roof::{rate, ridge, rows_roof_pct, LayerRow};
use super::timing::block_of;
use super::{BenchReport, LayerwiseRow};
use crate::report::{AnyChart, BarChart, Figure, LineChart, Series, Table};

fn pct(p: Option<f64>) -> String {
    p.map_or("—".into(), |p| format!("{p:.1}"))
}

/// The roofline table: every candidate and the roof it sets.
pub(super) fn roofline_table(r: &BenchReport) -> Option<Table> {
    let roof = r.roofline.as_ref()?;
    let mut rows: Vec<Vec<String>> = roof
        .all
        .iter()
        .map(|(k, v)| {
            let unit = if k.starts_with("read") {
                "GB/s"
            } else {
                "GFLOP/s"
            };
            vec![k.clone(), format!("{v:.2}"), unit.into()]
        })
        .collect();
    rows.push(vec![
        format!("**stream roof** ({})", roof.read_kernel),
        format!("{:.2}", roof.read_gbps),
        "GB/s".into(),
    ]);
    rows.push(vec![
        format!("**GEMM roof** ({})", roof.gemm_kernel),
        format!("{:.2}", roof.gemm_gflops),
        "GFLOP/s".into(),
    ]);
    rows.push(vec![
        "ridge point (GEMM / stream)".into(),
        format!("{:.2}", ridge(roof)),
        "FLOP/byte".into(),
    ]);
    Some(Table::new(
        format!("Roofline of {}", roof.adapter),
        &["kernel", "rate", "unit"],
        rows,
    ))
}

/// One model's layers: kernel, time, rate, share of the roof.
pub fn layer_table(title: String, rows: &[LayerRow]) -> Table {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                l.op.clone(),
                l.kernel.clone().unwrap_or_else(|| "—".into()),
                format!("{:.3}", l.seconds * 1e3),
                rate(l),
                pct(l.roof_pct),
            ]
        })
        .collect();
    Table::new(
        title,
        &["layer", "op", "kernel", "ms", "rate", "% roof"],
        body,
    )
}

/// The `n` layers furthest below the roof among those taking ≥ 2 % of the model's time.
pub fn worst_layers(rows: &[LayerRow], n: usize) -> Vec<&LayerRow> {
    let total: f64 = rows.iter().map(|l| l.seconds).sum();
    let mut v: Vec<&LayerRow> = rows
        .iter()
        .filter(|l| l.roof_pct.is_some() && l.seconds >= 0.02 * total)
        .collect();
    v.sort_by(|a, b| {
        a.roof_pct
            .unwrap_or(0.0)
            .total_cmp(&b.roof_pct.unwrap_or(0.0))
    });
    v.truncate(n);
    v
}

/// Per-layer tables of every model with layer rows (with `per_layer`), and always the five
/// layers furthest below the roof of each.
pub(super) fn layer_tables(r: &BenchReport) -> Vec<Table> {
    let mut models: Vec<(String, &[LayerRow])> = Vec::new();
    for m in &r.paper1 {
        models.push((m.model.clone(), &m.layers));
    }
    for m in r.paper2.iter().chain(&r.mobilenet) {
        models.push((m.model.clone(), &m.layers));
    }
    for m in &r.models {
        models.push((m.model.clone(), &m.per_layer));
    }
    let mut out = Vec::new();
    for (name, rows) in models {
        if rows.is_empty() {
            continue;
        }
        let all: Vec<&LayerRow> = rows.iter().collect();
        let whole = pct(rows_roof_pct(&all, r.roofline.as_ref()));
        if r.config.per_layer {
            out.push(layer_table(
                format!(
                    "{name}: per layer at batch {} ({whole} % of the roof overall)",
                    r.config.batch
                ),
                rows,
            ));
        }
        let worst: Vec<LayerRow> = worst_layers(rows, 5).into_iter().cloned().collect();
        if !worst.is_empty() {
            out.push(layer_table(
                format!("{name}: the 5 layers furthest below the roof (of those ≥ 2 % of the time; {whole} % overall)"),
                &worst,
            ));
        }
    }
    out
}

/// `% of roof` per block of a layer-wise row.
fn block_pcts(m: &LayerwiseRow, r: &BenchReport) -> Vec<(String, Option<f64>)> {
    let mut blocks: Vec<(String, Vec<&LayerRow>)> = Vec::new();
    for l in &m.layers {
        let b = block_of(&l.name);
        match blocks.last_mut() {
            Some((lb, v)) if *lb == b => v.push(l),
            _ => blocks.push((b, vec![l])),
        }
    }
    blocks
        .into_iter()
        .map(|(b, v)| (b, rows_roof_pct(&v, r.roofline.as_ref())))
        .collect()
}

/// The roofline and efficiency charts.
pub(super) fn roof_figures(r: &BenchReport) -> Vec<Figure> {
    let mut out = Vec::new();
    let fig = |stem: &str, alt: &str, chart| Figure {
        stem: stem.into(),
        alt: alt.into(),
        chart,
    };
    if let Some(roof) = &r.roofline {
        let is_read = |k: &str| k.starts_with("read");
        let pick = |read: bool| Series {
            name: if read { "read GB/s" } else { "GEMM GFLOP/s" }.into(),
            values: roof
                .all
                .iter()
                .map(|(k, v)| if is_read(k) == read { *v } else { f64::NAN })
                .collect(),
        };
        let chart = BarChart {
            title: format!("Roofline candidates on {}", roof.adapter),
            y_label: "GB/s (read) · GFLOP/s (GEMM)".into(),
            categories: roof.all.iter().map(|(k, _)| k.clone()).collect(),
            series: vec![pick(true), pick(false)],
        };
        out.push(fig("roofline", "roofline", AnyChart::Bar(chart)));
    }
    if r.roofline.is_none() {
        return out;
    }
    // paper1 / models: % of roof per layer with MACs (conv, linear), one bar per model.
    for (stem, what, models) in [
        (
            "paper1_roof_per_layer",
            format!("{}: % of the roof per layer", r.config.vgg),
            r.paper1
                .iter()
                .map(|m| (m.scheme.clone(), &m.layers[..]))
                .collect::<Vec<_>>(),
        ),
        (
            "models_roof_per_layer",
            "Your models: % of the roof per layer".to_string(),
            r.models
                .iter()
                .map(|m| (m.model.clone(), &m.per_layer[..]))
                .collect(),
        ),
    ] {
        let Some((_, first)) = models.iter().find(|(_, l)| !l.is_empty()) else {
            continue;
        };
        let cats: Vec<String> = first
            .iter()
            .filter(|l| l.macs > 0)
            .map(|l| l.name.clone())
            .collect();
        let series = models
            .iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(name, rows)| Series {
                name: name.clone(),
                values: cats
                    .iter()
                    .map(|c| {
                        rows.iter()
                            .find(|l| &l.name == c)
                            .and_then(|l| l.roof_pct)
                            .unwrap_or(f64::NAN)
                    })
                    .collect(),
            })
            .collect();
        let chart = BarChart {
            title: what,
            y_label: "% of roof".into(),
            categories: cats,
            series,
        };
        out.push(fig(stem, stem, AnyChart::Bar(chart)));
    }
    // Layer-wise suites: % of roof per block, one line per model.
    for (rows, stem, what) in [
        (&r.paper2, "paper2_roof_per_block", "ResNet-50"),
        (&r.mobilenet, "mobilenetv2_roof_per_block", "MobileNetV2"),
    ] {
        let Some(first) = rows.first() else { continue };
        let blocks: Vec<String> = block_pcts(first, r).into_iter().map(|b| b.0).collect();
        let series = rows
            .iter()
            .map(|m| {
                let p = block_pcts(m, r);
                Series {
                    name: m.model.clone(),
                    values: blocks
                        .iter()
                        .map(|b| {
                            p.iter()
                                .find(|x| &x.0 == b)
                                .and_then(|x| x.1)
                                .unwrap_or(f64::NAN)
                        })
                        .collect(),
                }
            })
            .collect();
        let chart = LineChart {
            title: format!("{what}: % of the roof per block"),
            x_label: "block".into(),
            y_label: "% of roof".into(),
            x_labels: blocks,
            series,
        };
        out.push(fig(stem, stem, AnyChart::Line(chart)));
    }
    out
}
