//! Turning a [`BenchReport`] into a terminal table, JSON, charts and a Markdown summary.

use super::{BenchReport, LayerwiseRow, OP_CLASSES};
use crate::error::{Error, Result};
use crate::fs::write_atomic;
use crate::report::{
    markdown_table, write_bar_chart, write_line_chart, BarChart, LineChart, Series,
};
use std::path::{Path, PathBuf};

fn ms(s: f64) -> String {
    format!("{:.2}", s * 1e3)
}

/// A reduction as a signed change (`−70.6`), or `—` for the baseline itself.
fn pct(reduction: f64, baseline: bool) -> String {
    if baseline {
        "—".into()
    } else {
        format!("{:+.1}", -reduction)
    }
}

fn gmacs(m: u64) -> String {
    format!("{:.3}", m as f64 / 1e9)
}

/// The tables of a report, as Markdown (also readable on a terminal).
pub fn tables(r: &BenchReport) -> Vec<(String, String)> {
    let mut out = Vec::new();
    out.extend(super::roof_output::roofline_table(r));
    if !r.paper1.is_empty() {
        let lb = r.config.large_batch;
        let rows: Vec<Vec<String>> = r
            .paper1
            .iter()
            .map(|m| {
                vec![
                    m.scheme.clone(),
                    format!("{:.2}", m.params as f64 / 1e6),
                    gmacs(m.macs),
                    pct(m.macs_reduction_pct, m.scheme == "baseline"),
                    format!(
                        "{} ({}–{})",
                        ms(m.latency.median),
                        ms(m.latency.min),
                        ms(m.latency.max)
                    ),
                    pct(m.time_reduction_pct, m.scheme == "baseline"),
                    m.large_batch_latency
                        .as_ref()
                        .map_or("—".into(), |l| ms(l.median)),
                    format!("{:.1}", m.throughput_ips),
                ]
            })
            .collect();
        let batch_col = if lb > 0 {
            format!("batch {lb} ms")
        } else {
            "large batch ms".to_string()
        };
        out.push((
            format!(
                "Paper 1 (Gong et al., Fig. 10): {} at {}², batch {}",
                r.config.vgg,
                r.config.paper1_input_size.unwrap_or(r.config.input_size),
                r.config.batch
            ),
            markdown_table(
                &[
                    "scheme",
                    "params M",
                    "GMACs",
                    "MACs %",
                    "latency ms (min–max)",
                    "time %",
                    &batch_col,
                    "img/s",
                ],
                &rows,
            ),
        ));
    }
    for (rows, what) in [
        (&r.paper2, "Paper 2 (Wang et al., Fig. 3): ResNet-50"),
        (
            &r.mobilenet,
            "MobileNetV2 dense / SGC / FLGC (Wang et al.'s CIFAR-10 setting)",
        ),
    ] {
        if let Some(t) = layerwise_table(rows) {
            let title = format!(
                "{what}: per-block time in ms at {}², batch {} ({})",
                r.config.input_size, r.config.batch, rows[0].method
            );
            out.push((title, t));
        }
    }
    if !r.training_memory.is_empty() {
        let rows: Vec<Vec<String>> = r
            .training_memory
            .iter()
            .map(|t| {
                let mb = |b: u64| format!("{:.1}", b as f64 / 1e6);
                vec![
                    t.model.clone(),
                    t.batch.to_string(),
                    t.plan.values.to_string(),
                    t.plan.slots.to_string(),
                    mb(t.plan.planned_bytes),
                    mb(t.plan.naive_bytes),
                ]
            })
            .collect();
        out.push((
            format!(
                "GPU training step memory at {}² (activations, gradients, scratch)",
                r.config.input_size
            ),
            markdown_table(
                &[
                    "model",
                    "batch",
                    "buffers",
                    "slots",
                    "planned MB",
                    "one per value MB",
                ],
                &rows,
            ),
        ));
    }
    if !r.models.is_empty() {
        out.push((
            format!("Your models, batch {}", r.config.batch),
            models_table(r),
        ));
    }
    out.extend(super::roof_output::layer_tables(r));
    if !r.sweep.is_empty() {
        let rows: Vec<Vec<String>> = r
            .sweep
            .iter()
            .map(|s| {
                vec![
                    format!(
                        "{}ch {}² {}×{}",
                        s.layer.channels, s.layer.size, s.layer.kernel, s.layer.kernel
                    ),
                    s.groups.to_string(),
                    format!("{:.1}", s.macs as f64 / 1e6),
                    format!(
                        "{} ({}–{})",
                        ms(s.time.median),
                        ms(s.time.min),
                        ms(s.time.max)
                    ),
                    format!("{:.2}×", s.speedup_vs_dense),
                    format!("{:.1}", s.gflops),
                    s.roof_pct.map_or("—".into(), |p| format!("{p:.1}")),
                    s.kernel.clone().unwrap_or_else(|| "—".into()),
                ]
            })
            .collect();
        out.push((
            format!("Group sweep, batch {}", r.config.batch),
            markdown_table(
                &[
                    "layer",
                    "G",
                    "MMACs",
                    "ms (min–max)",
                    "speed-up vs G=1",
                    "GFLOP/s",
                    "% roof",
                    "kernel",
                ],
                &rows,
            ),
        ));
    }
    out
}

/// The whole report as text for a terminal.
pub fn render_text(r: &BenchReport) -> String {
    let mut s = format!("gconv {} — device: {}\n", r.gconv_version, r.device);
    if r.software_device {
        s.push_str("(a software device: the CPU emulating a GPU — relative numbers matter, absolute ones are a CPU's)\n");
    }
    for (title, table) in tables(r) {
        s.push_str(&format!("\n## {title}\n\n{table}\n"));
    }
    s
}

/// Writes `report.json`, `summary.md` and the charts (PNG + SVG) into `dir`, each atomically,
/// all under the folder's advisory lock (`.gconv-bench.lock`, see [`crate::fs::FileLock`]).
pub fn write_outputs(r: &BenchReport, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Two runs writing one folder take turns: it holds one run's files, not a mix.
    let _lock = crate::fs::FileLock::exclusive(dir.join(".gconv-bench"))?;
    let mut files = Vec::new();
    let json = dir.join("report.json");
    write_atomic(
        &json,
        serde_json::to_string_pretty(r)
            .expect("serialisable")
            .as_bytes(),
    )?;
    files.push(json);
    let mut md = render_text(r).replacen("gconv", "# gconv bench:", 1);
    if !r.paper1.is_empty() {
        let base = &r.paper1[0];
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
        files.extend(write_bar_chart(dir, "paper1_vgg_schemes", &chart)?);
        md.push_str("\n![paper 1](paper1_vgg_schemes.png)\n");
    }
    for (rows, stem, what) in [
        (&r.paper2, "paper2_resnet_layerwise", "ResNet-50"),
        (&r.mobilenet, "mobilenetv2_layerwise", "MobileNetV2"),
    ] {
        if let Some(chart) = layerwise_chart(rows, what) {
            files.extend(write_line_chart(dir, stem, &chart)?);
            md.push_str(&format!("\n![{what}]({stem}.png)\n"));
        }
    }
    if !r.sweep.is_empty() {
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
        let chart = LineChart {
            title: "Speed-up of grouped conv over G = 1".into(),
            x_label: "groups G".into(),
            y_label: "speed-up ×".into(),
            x_labels: gs.iter().map(|g| g.to_string()).collect(),
            series,
        };
        files.extend(write_line_chart(dir, "sweep_groups", &chart)?);
        md.push_str("\n![sweep](sweep_groups.png)\n");
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
        files.extend(write_bar_chart(dir, "models_op_classes", &chart)?);
        md.push_str("\n![your models](models_op_classes.png)\n");
    }
    let (roof_files, roof_md) = super::roof_output::write_roof_charts(r, dir)?;
    files.extend(roof_files);
    md.push_str(&roof_md);
    let mdp = dir.join("summary.md");
    write_atomic(&mdp, md.as_bytes())?;
    files.push(mdp);
    Ok(files)
}

/// The blocks of layer-wise rows, in the first row's order.
fn blocks(rows: &[LayerwiseRow]) -> Vec<String> {
    rows.first()
        .map(|r| r.blocks.iter().map(|b| b.0.clone()).collect())
        .unwrap_or_default()
}

fn block_time(m: &LayerwiseRow, b: &str) -> Option<f64> {
    m.blocks.iter().find(|x| x.0 == b).map(|x| x.1)
}

/// Per-block times (ms) of several models side by side, with totals and MACs.
fn layerwise_table(rows: &[LayerwiseRow]) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let mut headers: Vec<String> = vec!["block".into()];
    headers.extend(rows.iter().map(|m| m.model.clone()));
    let mut table: Vec<Vec<String>> = blocks(rows)
        .iter()
        .map(|b| {
            let mut row = vec![b.clone()];
            row.extend(rows.iter().map(|m| block_time(m, b).map_or("—".into(), ms)));
            row
        })
        .collect();
    let mut total = vec!["**total**".to_string()];
    total.extend(rows.iter().map(|m| ms(m.total)));
    table.push(total);
    let mut macs = vec!["GMACs".to_string()];
    macs.extend(rows.iter().map(|m| gmacs(m.macs)));
    table.push(macs);
    if rows.iter().any(|m| m.roof_pct.is_some()) {
        let mut roof = vec!["% of roof".to_string()];
        roof.extend(
            rows.iter()
                .map(|m| m.roof_pct.map_or("—".into(), |p| format!("{p:.1}"))),
        );
        table.push(roof);
    }
    let h: Vec<&str> = headers.iter().map(|s| s.as_str()).collect();
    Some(markdown_table(&h, &table))
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

/// A model's label without its folders (`nets/shufflenet.onnx` → `shufflenet.onnx`).
fn short(model: &str) -> String {
    let (path, rest) = match model.find(" (") {
        Some(i) => model.split_at(i),
        None => (model, ""),
    };
    let file = Path::new(path)
        .file_name()
        .map_or(path.into(), |f| f.to_string_lossy());
    format!(
        "{file}{}",
        rest.replace("permutations not folded", "unfolded")
    )
}

fn models_table(r: &BenchReport) -> String {
    let rows: Vec<Vec<String>> = r
        .models
        .iter()
        .map(|m| {
            let mut row = vec![
                short(&m.model),
                format!("{:.2}", m.params as f64 / 1e6),
                gmacs(m.macs),
                format!(
                    "{} ({}–{})",
                    ms(m.latency.median),
                    ms(m.latency.min),
                    ms(m.latency.max)
                ),
                format!("{:.1}", m.throughput_ips),
            ];
            row.extend(m.classes.iter().map(|(_, s)| ms(*s)));
            row.push(m.permutations.clone().unwrap_or_else(|| "—".into()));
            row
        })
        .collect();
    let mut head = vec!["model", "params (M)", "GMACs", "ms (min–max)", "img/s"];
    let class_heads: Vec<String> = OP_CLASSES.iter().map(|c| format!("{c} ms")).collect();
    head.extend(class_heads.iter().map(String::as_str));
    head.push("channel permutations");
    markdown_table(&head, &rows)
}
