//! The charts of a report as [`Figure`]s, in report order: written as PNG + SVG by
//! [`super::write_outputs`], inlined in `report.html`, shown by the desktop app.

use super::labels::{block_time, blocks, short};
use super::{BenchReport, LayerwiseRow, OP_CLASSES};
use crate::report::{AnyChart, BarChart, Figure, LineChart, Series};

fn figure(stem: &str, alt: &str, chart: AnyChart) -> Figure {
    Figure {
        stem: stem.into(),
        alt: alt.into(),
        chart,
    }
}

/// Every chart of `r`: paper1's MACs and latency vs baseline, the layer-wise lines, the
/// sweep curve, your models' op classes, the roofline and the efficiency charts.
pub fn figures(r: &BenchReport) -> Vec<Figure> {
    let mut out = Vec::new();
    if let Some(base) = r.paper1.first() {
        let chart = BarChart {
            title: format!("{}: MACs and latency vs baseline (= 100)", r.config.vgg),
            y_label: "% of baseline".into(),
            categories: r.paper1.iter().map(|m| m.scheme.clone()).collect(),
            series: vec![
                Series {
                    name: "MACs".into(),
                    values: r
                        .paper1
                        .iter()
                        .map(|m| 100.0 * m.macs as f64 / base.macs as f64)
                        .collect(),
                },
                Series {
                    name: format!("latency (batch {})", r.config.batch),
                    values: r
                        .paper1
                        .iter()
                        .map(|m| 100.0 * m.latency.median / base.latency.median)
                        .collect(),
                },
            ],
        };
        out.push(figure(
            "paper1_vgg_schemes",
            "paper 1",
            AnyChart::Bar(chart),
        ));
    }
    for (rows, stem, what) in [
        (&r.paper2, "paper2_resnet_layerwise", "ResNet-50"),
        (&r.mobilenet, "mobilenetv2_layerwise", "MobileNetV2"),
    ] {
        if let Some(chart) = layerwise_chart(rows, what) {
            out.push(figure(stem, what, AnyChart::Line(chart)));
        }
    }
    if !r.sweep.is_empty() {
        out.push(figure(
            "sweep_groups",
            "sweep",
            AnyChart::Line(sweep_chart(r)),
        ));
    }
    if !r.models.is_empty() {
        let chart = BarChart {
            title: format!("Time per op class, batch {}", r.config.batch),
            y_label: "ms".into(),
            categories: r.models.iter().map(|m| short(&m.model)).collect(),
            series: OP_CLASSES
                .iter()
                .enumerate()
                .map(|(k, c)| Series {
                    name: c.to_string(),
                    values: r.models.iter().map(|m| 1e3 * m.classes[k].1).collect(),
                })
                .collect(),
        };
        out.push(figure(
            "models_op_classes",
            "your models",
            AnyChart::Bar(chart),
        ));
    }
    out.extend(super::roof_output::roof_figures(r));
    out
}

/// The sweep's speed-up over G = 1 per layer, with the ideal (= G).
fn sweep_chart(r: &BenchReport) -> LineChart {
    let gs = r.config.sweep_groups.clone();
    let mut series = Vec::new();
    for l in &r.config.sweep_layers {
        series.push(Series {
            name: format!("{}ch {}² {}×{}", l.channels, l.size, l.kernel, l.kernel),
            values: gs
                .iter()
                .map(|g| {
                    r.sweep
                        .iter()
                        .find(|s| s.layer == *l && s.groups == *g)
                        .map_or(f64::NAN, |s| s.speedup_vs_dense)
                })
                .collect(),
        });
    }
    series.push(Series {
        name: "ideal (= G)".into(),
        values: gs.iter().map(|&g| g as f64).collect(),
    });
    LineChart {
        title: "Speed-up of grouped conv over G = 1".into(),
        x_label: "groups G".into(),
        y_label: "speed-up ×".into(),
        x_labels: gs.iter().map(|g| g.to_string()).collect(),
        series,
    }
}

/// Per-block times as one line per model.
fn layerwise_chart(rows: &[LayerwiseRow], what: &str) -> Option<LineChart> {
    let first = rows.first()?;
    let blocks = blocks(rows);
    Some(LineChart {
        title: format!("{what} layer-wise time ({})", first.method),
        x_label: "block".into(),
        y_label: "ms".into(),
        x_labels: blocks.clone(),
        series: rows
            .iter()
            .map(|m| Series {
                name: m.model.clone(),
                values: blocks
                    .iter()
                    .map(|b| block_time(m, b).map_or(f64::NAN, |t| t * 1e3))
                    .collect(),
            })
            .collect(),
    })
}
