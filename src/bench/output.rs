//! Turning a [`BenchReport`] into a terminal table, JSON, charts, a Markdown summary and
//! the HTML report.

use super::labels::{block_time, blocks, short};
use super::{BenchReport, LayerwiseRow, OP_CLASSES};
use crate::error::{Error, Result};
use crate::fs::write_atomic;
use crate::report::{write_figure, Table};
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

/// The tables of a report as (title, Markdown) pairs (also readable on a terminal).
pub fn tables(r: &BenchReport) -> Vec<(String, String)> {
    report_tables(r)
        .into_iter()
        .map(|t| {
            let md = t.markdown();
            (t.title, md)
        })
        .collect()
}

/// The tables of a report, in report order: what the text report, `summary.md`,
/// `report.html` and the desktop app show.
pub fn report_tables(r: &BenchReport) -> Vec<Table> {
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
        out.push(Table::new(
            format!(
                "Paper 1 (Gong et al., Fig. 10): {} at {}², batch {}",
                r.config.vgg,
                r.config.paper1_input_size.unwrap_or(r.config.input_size),
                r.config.batch
            ),
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
            rows,
        ));
    }
    out.extend(stages_table(r));
    for (rows, what) in [
        (&r.paper2, "Paper 2 (Wang et al., Fig. 3): ResNet-50"),
        (
            &r.mobilenet,
            "MobileNetV2 dense / SGC / FLGC (Wang et al.'s CIFAR-10 setting)",
        ),
    ] {
        if let Some((headers, body)) = layerwise_table(rows) {
            let title = format!(
                "{what}: per-block time in ms at {}², batch {} ({})",
                r.config.input_size, r.config.batch, rows[0].method
            );
            let h: Vec<&str> = headers.iter().map(String::as_str).collect();
            out.push(Table::new(title, &h, body));
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
        out.push(Table::new(
            format!(
                "GPU training step memory at {}² (activations, gradients, scratch)",
                r.config.input_size
            ),
            &[
                "model",
                "batch",
                "buffers",
                "slots",
                "planned MB",
                "one per value MB",
            ],
            rows,
        ));
    }
    if !r.models.is_empty() {
        out.push(models_table(r));
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
        out.push(Table::new(
            format!("Group sweep, batch {}", r.config.batch),
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
            rows,
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

/// Writes `report.json`, `summary.md`, `report.html` (one self-contained file: every table
/// and chart, the device and configuration) and the charts (PNG + SVG) into `dir`; returns
/// the files written. Every file is written atomically ([`write_atomic`]), all under the
/// folder's advisory lock (`.gconv-bench.lock`, see [`crate::fs::FileLock`]). Charts an
/// earlier run wrote into `dir` and this one did not (another suite, a model no longer
/// asked for) are removed, so the folder holds one run's files: the names written are kept
/// in `.gconv-bench-files`, and only names listed there are ever removed.
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
    let figures = super::charts::figures(r);
    for f in &figures {
        files.extend(write_figure(dir, f)?);
        md.push_str(&format!("\n![{}]({}.png)\n", f.alt, f.stem));
    }
    let mdp = dir.join("summary.md");
    write_atomic(&mdp, md.as_bytes())?;
    files.push(mdp);
    let html = dir.join("report.html");
    write_atomic(
        &html,
        super::html::render_html(r, &report_tables(r), &figures)?.as_bytes(),
    )?;
    files.push(html);
    replace_file_list(dir, &files)?;
    Ok(files)
}

/// The list of files the last run wrote into a bench folder.
const FILE_LIST: &str = ".gconv-bench-files";

/// Removes the files the previous run listed in [`FILE_LIST`] that `files` does not name,
/// then lists `files`. Only plain names in `dir` are honoured (a list edited to name
/// `../x` or a folder removes nothing).
fn replace_file_list(dir: &Path, files: &[PathBuf]) -> Result<()> {
    let list = dir.join(FILE_LIST);
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name()?.to_str().map(String::from))
        .collect();
    if let Ok(old) = crate::fs::read_text_file(&list) {
        for name in old.lines().map(str::trim) {
            let plain = !name.is_empty()
                && !name.starts_with('.')
                && !name.contains(['/', '\\'])
                && !names.iter().any(|n| n == name);
            let stale = dir.join(name);
            if plain && stale.is_file() {
                std::fs::remove_file(&stale).map_err(|e| Error::io(&stale, e))?;
            }
        }
    }
    write_atomic(&list, (names.join("\n") + "\n").as_bytes())
}

/// Per-block times (ms) of several models side by side, with totals and MACs: headers and
/// rows.
type TableBody = (Vec<String>, Vec<Vec<String>>);
fn layerwise_table(rows: &[LayerwiseRow]) -> Option<TableBody> {
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
    Some((headers, table))
}

fn models_table(r: &BenchReport) -> Table {
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
    Table::new(
        format!("Your models, batch {}", r.config.batch),
        &head,
        rows,
    )
}

/// Where a timed pass of each model went, stage by stage on the host's clock (medians;
/// the GPU path only): the fixed costs beside the GPU's own work inside the wait.
fn stages_table(r: &BenchReport) -> Option<Table> {
    let paper1 = r.paper1.iter().map(|m| (&m.model, &m.pass_stages));
    let models = r.models.iter().map(|m| (&m.model, &m.pass_stages));
    let rows: Vec<Vec<String>> = paper1
        .chain(models)
        .filter_map(|(name, st)| {
            let st = st.as_ref()?;
            let share = 100.0 * (st.total() - st.wait) / st.total().max(1e-12);
            Some(vec![
                name.clone(),
                st.dispatches.to_string(),
                format!("{:.3}", st.upload * 1e3),
                format!("{:.3}", st.encode * 1e3),
                format!("{:.3}", st.submit * 1e3),
                format!("{:.3}", st.wait * 1e3),
                format!("{share:.1}"),
            ])
        })
        .collect();
    (!rows.is_empty()).then(|| {
        Table::new(
            format!(
                "Where a pass goes, batch {} (host clock, medians; no read-back)",
                r.config.batch
            ),
            &[
                "model",
                "dispatches",
                "upload ms",
                "encode ms",
                "submit ms",
                "wait ms",
                "outside the wait %",
            ],
            rows,
        )
    })
}
