//! `gconv bench compare` and `report.html`: ratios and spreads on hand-made reports, rows of
//! one side only, two devices, malformed and truncated files, `--fail-above` exit codes; the
//! HTML of the committed lavapipe report parsed (every suite's table, well-formed SVG, no
//! external URL). No GPU, no timing.

#![cfg(feature = "app")]

use gconv::bench::compare::{compare, read_report, Measure};
use gconv::bench::{figures, render_html, report_tables, BenchReport};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn stats(median: f64, min: f64, max: f64) -> Value {
    json!({ "median": median, "min": min, "max": max, "runs": 3 })
}

fn sweep_row(g: usize, t: Value) -> Value {
    json!({ "layer": {"channels": 64, "size": 16, "kernel": 3}, "groups": g, "macs": 1000,
            "time": t, "speedup_vs_dense": 1.0, "ideal_speedup": g as f64, "kernel": null,
            "gflops": 1.0, "roof_pct": null })
}

/// A report by hand: paper1 baseline + E, one paper2 model, sweep points, a roofline.
fn report(device: &str, paper1_e: Value, sweep: Vec<Value>, paper2_total: f64, gemm: f64) -> Value {
    let row = |scheme: &str, lat: Value| {
        json!({
        "model": format!("vgg11bn-{scheme}"), "scheme": scheme, "params": 10, "macs": 100,
        "latency": lat, "large_batch_latency": null, "throughput_ips": 1.0,
        "macs_reduction_pct": 0.0, "time_reduction_pct": 0.0, "layers": [] })
    };
    json!({
        "gconv_version": "0.1.0", "device": device, "software_device": true,
        "config": { "suites": ["paper1", "paper2", "sweep"], "input_size": 32,
            "paper1_input_size": null, "width": 1.0, "num_classes": 10, "batch": 1,
            "large_batch": 0, "warmup": 0, "repeats": 3, "vgg": "vgg11bn", "schemes": ["E"],
            "groups": [2], "sweep_layers": [{"channels": 64, "size": 16, "kernel": 3}],
            "sweep_groups": [1, 2], "models": [], "per_layer": false, "tuned": false,
            "tune": false },
        "paper1": [row("baseline", stats(0.010, 0.009, 0.011)), row("E", paper1_e)],
        "paper2": [{ "model": "resnet50-dsc", "method": "cpu", "macs": 5,
            "blocks": [["stem", paper2_total]], "total": paper2_total, "roof_pct": null,
            "layers": [] }],
        "mobilenet": [], "training_memory": [], "sweep": sweep, "models": [],
        "roofline": { "adapter": device, "read_gbps": 10.0, "read_kernel": "r",
            "gemm_gflops": gemm, "gemm_kernel": "g", "all": [["r", 10.0], ["g", gemm]] }
    })
}

fn parse(v: &Value) -> BenchReport {
    serde_json::from_value(v.clone()).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gconv-compare-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn old_new() -> (Value, Value) {
    let old = report(
        "dev A",
        stats(0.004, 0.003, 0.005),
        vec![
            sweep_row(1, stats(0.002, 0.0019, 0.0021)),
            sweep_row(2, stats(0.001, 0.0009, 0.0011)),
        ],
        0.050,
        100.0,
    );
    let new = report(
        "dev A",
        stats(0.002, 0.0015, 0.0025),
        vec![
            sweep_row(1, stats(0.003, 0.0029, 0.0031)),
            sweep_row(4, stats(0.0005, 0.0004, 0.0006)),
        ],
        0.040,
        200.0,
    );
    (old, new)
}

#[test]
fn ratios_spreads_and_rows_of_one_side() {
    let (old, new) = old_new();
    let c = compare(&parse(&old), "old.json", &parse(&new), "new.json");
    assert!(c.same_device);
    let row = |suite: &str, name: &str| {
        c.rows
            .iter()
            .find(|r| r.suite == suite && r.name.contains(name))
            .unwrap_or_else(|| panic!("{suite} {name}: {:?}", c.rows))
    };
    let e = row("paper1", "vgg11bn-E");
    assert!((e.time_ratio - 0.5).abs() < 1e-12, "{e:?}");
    let (lo, hi) = e.spread.unwrap();
    assert!((lo - 0.0015 / 0.005).abs() < 1e-12 && (hi - 0.0025 / 0.003).abs() < 1e-12);
    let base = row("paper1", "baseline");
    assert!((base.time_ratio - 1.0).abs() < 1e-12);
    let g1 = row("sweep", "G=1");
    assert!((g1.time_ratio - 1.5).abs() < 1e-12);
    let p2 = row("paper2", "resnet50-dsc");
    assert!((p2.time_ratio - 0.8).abs() < 1e-12 && p2.spread.is_none());
    // A rate counts as time: twice the GEMM rate is half the time.
    let gemm = c
        .rows
        .iter()
        .find(|r| r.metric.starts_with("GEMM"))
        .unwrap();
    assert_eq!(gemm.measure, Measure::Rate);
    assert!((gemm.time_ratio - 0.5).abs() < 1e-12);
    // G=2 only in the old report, G=4 only in the new.
    assert_eq!(c.only_old.len(), 1, "{:?}", c.only_old);
    assert!(c.only_old[0].contains("G=2"));
    assert_eq!(c.only_new.len(), 1);
    assert!(c.only_new[0].contains("G=4"));
    // Past 1.2× only the G=1 sweep point (1.5×) regressed.
    let bad = c.regressions(1.2);
    assert_eq!(bad.len(), 1);
    assert!(bad[0].name.contains("G=1"));
    let md = c.markdown(Some(1.2));
    assert!(md.contains("REGRESSED") && md.contains("old only") && md.contains("new only"));
    assert!(md.contains("Same device"));
    // The baseline's spread straddles 1: within noise.
    let t = &c.tables(None)[0];
    let b = t.rows.iter().find(|r| r[1].contains("baseline")).unwrap();
    assert_eq!(b[7], "within noise");
}

#[test]
fn two_devices_and_settings_that_differ() {
    let (old, mut new) = old_new();
    new["device"] = json!("dev B");
    new["config"]["input_size"] = json!(64);
    let c = compare(&parse(&old), "a", &parse(&new), "b");
    assert!(!c.same_device);
    assert!(
        c.summary()
            .starts_with("Two devices: old = dev A, new = dev B"),
        "{}",
        c.summary()
    );
    assert_eq!(
        c.config_diffs,
        vec![("input_size".into(), "32".into(), "64".into())]
    );
    let tables = c.tables(None);
    assert!(tables
        .iter()
        .any(|t| t.title.starts_with("Settings that differ")));
}

#[test]
fn rows_of_another_input_size_or_width_do_not_pair() {
    // The same rows at paper1's 224² (software adapters' default) against 64², and a
    // model of another width (other MACs) in paper2: nothing of the two pairs up.
    let (old, mut new) = old_new();
    new["config"]["paper1_input_size"] = json!(224);
    new["paper2"][0]["macs"] = json!(7);
    let c = compare(&parse(&old), "a", &parse(&new), "b");
    assert!(
        !c.rows
            .iter()
            .any(|r| r.suite == "paper1" || r.suite == "paper2"),
        "{:?}",
        c.rows
    );
    assert!(c
        .only_old
        .iter()
        .any(|k| k.contains("vgg11bn-E") && k.contains("32²")));
    assert!(c
        .only_new
        .iter()
        .any(|k| k.contains("vgg11bn-E") && k.contains("224²")));
    assert!(c
        .only_new
        .iter()
        .any(|k| k.contains("resnet50-dsc") && k.contains("32², 7 MACs")));
    // The sweep (shape and G in the row's name) and the roofline still pair.
    assert!(c.rows.iter().any(|r| r.suite == "sweep"));
    assert!(c.rows.iter().any(|r| r.suite == "roofline"));
    // A paired row shows what it ran on.
    let (old, new) = old_new();
    let c = compare(&parse(&old), "a", &parse(&new), "b");
    let e = c.rows.iter().find(|r| r.name == "vgg11bn-E").unwrap();
    assert_eq!(e.metric, "latency, batch 1; 32², 100 MACs");
}

fn gconv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gconv"))
}

#[test]
fn cli_exit_codes_files_and_bad_files() {
    let d = tmp("cli");
    let (old, new) = old_new();
    let (po, pn) = (d.join("old.json"), d.join("new.json"));
    std::fs::write(&po, serde_json::to_string_pretty(&old).unwrap()).unwrap();
    std::fs::write(&pn, serde_json::to_string_pretty(&new).unwrap()).unwrap();
    let run = |args: &[&Path], extra: &[&str]| {
        let out = gconv()
            .arg("bench")
            .arg("compare")
            .args(args)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let out_dir = d.join("out");
    let (code, stdout, _) = run(&[&po, &pn], &["--out", out_dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("time ratio"));
    for f in [
        "compare.md",
        "compare.html",
        "compare.json",
        "compare_ratios.svg",
    ] {
        assert!(out_dir.join(f).is_file(), "{f}");
    }
    let html = std::fs::read_to_string(out_dir.join("compare.html")).unwrap();
    check_self_contained(&html);
    let (code, _, stderr) = run(&[&po, &pn], &["--fail-above", "1.2"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("1 rows regressed past 1.2") && stderr.contains("G=1"),
        "{stderr}"
    );
    let (code, _, _) = run(&[&po, &pn], &["--fail-above", "1.6"]);
    assert_eq!(code, Some(0));
    let (code, _, stderr) = run(&[&po, &pn], &["--fail-above", "0"]);
    assert_eq!(code, Some(2), "{stderr}");

    // Truncated, not JSON, JSON of something else, missing: exit 2 naming the file.
    let text = serde_json::to_string_pretty(&old).unwrap();
    let cases = [
        ("cut.json", text[..text.len() / 3].to_string(), "truncated"),
        (
            "junk.json",
            "{ this is not json".to_string(),
            "not valid JSON",
        ),
        (
            "other.json",
            r#"{"hello": 1}"#.to_string(),
            "not a gconv bench report",
        ),
    ];
    for (name, body, what) in cases {
        let p = d.join(name);
        std::fs::write(&p, body).unwrap();
        let (code, _, stderr) = run(&[&po, &p], &[]);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(name) && stderr.contains(what),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let (code, _, stderr) = run(&[&po, &d.join("missing.json")], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("missing.json"), "{stderr}");
    std::fs::remove_dir_all(&d).ok();
}

/// No network fetch: no external script, style sheet, image or font; the only URL is the
/// SVG namespace (an identifier, never fetched).
fn check_self_contained(html: &str) {
    let lower = html.to_lowercase();
    for bad in [
        "<link", "<img", "<iframe", "@import", "url(", " src=", " href=",
    ] {
        assert!(!lower.contains(bad), "found `{bad}`");
    }
    let stripped = lower.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !stripped.contains("http://") && !stripped.contains("https://"),
        "an external URL"
    );
}

/// Every `<svg>…</svg>` of `html`, each parsed as XML to its end.
fn check_svgs(html: &str) -> usize {
    let mut n = 0;
    let mut rest = html;
    while let Some(i) = rest.find("<svg ") {
        let end = rest[i..].find("</svg>").expect("an unclosed <svg>") + i + 6;
        let svg = &rest[i..end];
        let mut r = quick_xml::Reader::from_str(svg);
        let mut depth = 0i32;
        loop {
            match r.read_event() {
                Ok(quick_xml::events::Event::Start(_)) => depth += 1,
                Ok(quick_xml::events::Event::End(_)) => depth -= 1,
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("SVG {n} is not well-formed XML: {e}"),
            }
        }
        assert_eq!(depth, 0, "SVG {n}: unbalanced");
        n += 1;
        rest = &rest[end..];
    }
    n
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[test]
fn report_html_has_every_table_and_chart_inline() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/bench/lavapipe/report.json");
    let r = read_report(&path).unwrap();
    let figs = figures(&r);
    let html = render_html(&r, &report_tables(&r), &figs).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    check_self_contained(&html);
    // Every table of the text report, under its title, with its headers and rows.
    let tables = report_tables(&r);
    assert!(tables.len() > 5);
    for suite in [
        "Paper 1",
        "Paper 2",
        "MobileNetV2",
        "Group sweep",
        "Roofline of",
    ] {
        assert!(tables.iter().any(|t| t.title.starts_with(suite)), "{suite}");
    }
    let n_tables = html.matches("<table class=\"sortable\"").count();
    assert_eq!(
        n_tables,
        tables.len() + 1,
        "the report's tables and the configuration"
    );
    for t in &tables {
        let at = html
            .find(&format!(
                "data-title=\"{}\"",
                gconv::report::html::escape(&t.title)
            ))
            .unwrap_or_else(|| panic!("table `{}` missing", t.title));
        let body = &html[at..at + html[at..].find("</table>").unwrap()];
        assert_eq!(
            body.matches("<tr>").count(),
            t.rows.len() + 1,
            "{}",
            t.title
        );
        for h in &t.headers {
            assert!(body.contains(&format!("<th>{}</th>", gconv::report::html::escape(h))));
        }
    }
    assert!(html.contains(&gconv::report::html::escape(&r.device)));
    assert!(html.contains("<td>input_size</td>"));
    // Every chart inline as well-formed SVG, with its hover values.
    assert_eq!(check_svgs(&html), figs.len());
    assert!(figs.len() >= 5);
    for f in &figs {
        let at = html
            .find(&format!("id=\"fig-{}\"", f.stem))
            .expect("figure");
        let attr = &html[at..];
        let start = attr.find("data-hover=\"").unwrap() + 12;
        let json = unescape(&attr[start..start + attr[start..].find('"').unwrap()]);
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v["x"].as_array().unwrap().len(),
            f.chart.x_labels().len(),
            "{}",
            f.stem
        );
        assert_eq!(
            v["series"].as_array().unwrap().len(),
            f.chart.series().len()
        );
    }
    assert!(html.contains("<script>") && html.contains("mousemove"));
}

/// Without the `gui` feature `gconv gui` is an error that says how to build it, not clap's
/// "unrecognized subcommand".
#[cfg(not(feature = "gui"))]
#[test]
fn gconv_gui_without_the_feature_says_how_to_build_it() {
    let out = gconv()
        .args(["gui", "--suite", "sweep", "--screenshot", "x.png"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--features gui"), "{err}");
}
