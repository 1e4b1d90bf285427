//! The window's state and actions, driven through egui's own test harness (egui_kittest)
//! without a display: devices, the form, run → results → sort, cancel, open and compare,
//! and one frame rendered headless through wgpu (lavapipe in CI).

use super::app::Tab;
use super::devices::DeviceChoice;
use super::GuiApp;
use crate::bench::RunArgs;
use clap::Parser;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

fn app(flags: &[&str]) -> GuiApp {
    let cli = Cli::parse_from(std::iter::once("gui").chain(flags.iter().copied()));
    GuiApp::new(&cli.run).unwrap()
}

fn harness(app: GuiApp) -> Harness<'static, GuiApp> {
    Harness::builder()
        .with_size([1280.0, 900.0])
        .build_ui_state(|ui, a: &mut GuiApp| a.show(ui), app)
}

/// The first adapter's index, or `None` (with a loud line) without one; a failure when
/// GCONV_REQUIRE_GPU=1 (CI).
fn gpu(app: &GuiApp) -> Option<usize> {
    let i = app
        .devices
        .iter()
        .position(|d| matches!(d, DeviceChoice::Adapter(_)));
    if i.is_none() {
        assert!(
            std::env::var("GCONV_REQUIRE_GPU").is_err(),
            "GCONV_REQUIRE_GPU is set but wgpu lists no adapter"
        );
        eprintln!("SKIPPING GPU TEST: no adapter");
    }
    i
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gconv-gui-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

const TINY: &[&str] = &[
    "--suite",
    "sweep",
    "--layers",
    "16x8:3",
    "--sweep-g",
    "1,2,4",
    "--warmup",
    "0",
    "--repeats",
    "2",
    "--no-tune",
];

#[test]
fn devices_are_listed_with_their_features_and_the_cpu_last() {
    let a = app(&["--device", "cpu"]);
    assert_eq!(a.devices.last(), Some(&DeviceChoice::Cpu));
    assert_eq!(a.device, a.devices.len() - 1, "--device cpu picks the CPU");
    let labels: Vec<String> = a.devices.iter().map(DeviceChoice::label).collect();
    let mut h = harness(a);
    for l in &labels {
        h.get_by_label(l);
    }
    if let Some(i) = gpu(h.state()) {
        let DeviceChoice::Adapter(s) = &h.state().devices[i] else {
            unreachable!()
        };
        assert!(!s.backend.is_empty() && !s.name.is_empty(), "{s:?}");
        h.get_by_label_contains(&format!("features: {}", s.feature_list()));
        h.get_by_label(&labels[i]).click();
        h.run_steps(2);
        assert_eq!(h.state().device, i);
    }
}

#[test]
fn the_form_follows_the_flags_and_names_what_is_wrong() {
    let mut a = app(&[
        "--device",
        "cpu",
        "--suite",
        "sweep",
        "--layers",
        "16x8:3",
        "--sweep-g",
        "1,2",
    ]);
    let cfg = a.form.to_config().unwrap();
    assert_eq!(cfg.suites, vec![gconv::bench::Suite::Sweep]);
    assert_eq!(cfg.sweep_groups, vec![1, 2]);
    assert_eq!(cfg.sweep_layers.len(), 1);
    a.form.sweep_layers = "16x8".into();
    let e = a.form.to_config().unwrap_err();
    assert!(e.contains("sweep layers") && e.contains("16x8"), "{e}");
    a.start_run();
    assert!(a.job.is_none());
    assert!(matches!(&a.message, Some((true, m)) if m.contains("sweep layers")));
    a.form.sweep_layers = "16x8:3".into();

    a.form.zoo.name = "vgg11bn".into();
    a.form.zoo.scheme = "E".into();
    a.form.zoo.width = "0.5".into();
    a.form.add_zoo_model();
    assert_eq!(
        a.form.models,
        vec!["vgg11bn scheme=E width=0.5".to_string()]
    );
    assert!(a.form.suites[4], "adding a model selects the models suite");
    a.form.zoo.scheme = "Z".into();
    a.form.add_zoo_model();
    assert!(a.form.zoo.error.as_deref().is_some_and(|e| e.contains('Z')));
    assert_eq!(a.form.models.len(), 1);
    assert!(a.form.to_config().unwrap().models.len() == 1);
}

#[test]
fn a_run_shows_the_reports_tables_sortable_and_writes_its_files() {
    let mut a = app(TINY);
    let dir = tmp("run");
    a.out_dir = Some(dir.clone());
    if let Some(i) = gpu(&a) {
        a.device = i;
    } else {
        a.device = a.devices.len() - 1;
    }
    let mut h = harness(a);
    h.get_by_label("▶ Run").click();
    h.run_steps(2);
    assert!(h.state().job.is_some(), "{:?}", h.state().message);
    assert!(h.state_mut().wait_for_run(Duration::from_secs(600)));
    h.run_steps(3);
    let s = h.state();
    assert!(
        matches!(&s.message, Some((false, m)) if m.contains("wrote")),
        "{:?}",
        s.message
    );
    assert_eq!(s.tab, Tab::Results);
    let r = s.results.as_ref().unwrap();
    assert_eq!(r.report.sweep.len(), 3);
    let t = r
        .tables
        .iter()
        .position(|t| t.title.starts_with("Group sweep"))
        .unwrap();
    for f in [
        "report.json",
        "report.html",
        "summary.md",
        "sweep_groups.png",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    // Sort the sweep table by its time column, then the other way.
    let col = r.tables[t]
        .headers
        .iter()
        .position(|h| h == "ms (min–max)")
        .unwrap();
    h.get_by_label("ms (min–max)").click();
    h.run_steps(2);
    let r = h.state().results.as_ref().unwrap();
    assert_eq!(r.sorts[t].by, Some((col, false)));
    let times: Vec<f64> = r.sorts[t]
        .order(&r.tables[t])
        .into_iter()
        .map(|i| gconv::report::leading_number(&r.tables[t].rows[i][col]).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    h.get_by_label("ms (min–max) ▲").click();
    h.run_steps(2);
    assert_eq!(
        h.state().results.as_ref().unwrap().sorts[t].by,
        Some((col, true))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cancel_stops_the_run_and_writes_nothing() {
    // On the CPU path a 128-channel 3×3 conv at 48² takes a while per pass: 500 passes are
    // far more than the test lets run before it presses Cancel.
    let mut a = app(&[
        "--device",
        "cpu",
        "--suite",
        "sweep",
        "--layers",
        "128x48:3",
        "--sweep-g",
        "1",
        "--warmup",
        "0",
        "--repeats",
        "500",
    ]);
    let dir = tmp("cancel");
    a.out_dir = Some(dir.clone());
    let mut h = harness(a);
    h.get_by_label("▶ Run").click();
    h.run_steps(2);
    assert!(h.state().job.is_some());
    h.get_by_label("Cancel run").click();
    h.run_steps(1);
    assert!(h.state().job.as_ref().unwrap().ctl.is_cancelled());
    assert!(h.state_mut().wait_for_run(Duration::from_secs(300)));
    h.run_steps(2);
    let s = h.state();
    assert!(s.job.is_none() && s.results.is_none());
    assert!(
        matches!(&s.message, Some((false, m)) if m.contains("cancelled")),
        "{:?}",
        s.message
    );
    assert!(!dir.exists(), "a cancelled run wrote {}", dir.display());
}

#[test]
fn saved_reports_open_and_compare_across_devices() {
    let mut a = app(&["--device", "cpu"]);
    let lavapipe = repo("docs/bench/lavapipe/report.json");
    a.open_report(&lavapipe).unwrap();
    assert_eq!(a.tab, Tab::Results);
    let r = a.results.as_ref().unwrap();
    assert!(r.report.device.starts_with("llvmpipe"));
    assert!(r.tables.iter().any(|t| t.title.starts_with("Paper 1")));
    assert!(r.layer_table().is_some_and(|t| t.rows.len() > 10));
    // A truncated copy is refused with the file's name, and the report shown stays.
    let dir = tmp("open");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("cut.json");
    let text = std::fs::read(&lavapipe).unwrap();
    std::fs::write(&bad, &text[..text.len() / 2]).unwrap();
    let e = a.open_report(&bad).unwrap_err().to_string();
    assert!(e.contains("cut.json") && e.contains("truncated"), "{e}");
    assert!(a
        .results
        .as_ref()
        .unwrap()
        .report
        .device
        .starts_with("llvmpipe"));

    a.compare.old = Some((
        "h200".into(),
        gconv::bench::compare::read_report(&repo("docs/bench/h200/paper1/report.json")).unwrap(),
    ));
    a.compare.with_current = true;
    let mut h = harness(a);
    h.state_mut().tab = Tab::Compare;
    h.run_steps(2);
    h.get_by_label("Run the comparison").click();
    h.run_steps(3);
    let c = &h.state().compare;
    assert!(c.error.is_none(), "{:?}", c.error);
    let (cmp, tables, _) = c.result.as_ref().unwrap();
    assert!(!cmp.same_device);
    // paper1 at 224², batch 1 on both: six rows, each slower on lavapipe than on the H200;
    // the large batches differ (32 vs 4), so those rows are listed as one side's only.
    let p1: Vec<_> = cmp.rows.iter().filter(|r| r.suite == "paper1").collect();
    assert_eq!(p1.len(), 6);
    assert!(p1.iter().all(|r| r.time_ratio > 1.0), "{p1:?}");
    assert_eq!(tables[0].rows.len(), cmp.rows.len());
    assert!(cmp.only_old.iter().any(|k| k.contains("batch 32")));
    assert!(cmp.only_new.iter().any(|k| k.starts_with("paper2")));
    h.get_by_label_contains("Two devices");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_window_renders_headless_with_the_device_named() {
    let a = app(&["--device", "auto"]);
    if gpu(&a).is_none() {
        return;
    }
    let label = a.chosen().label();
    let mut h = Harness::builder()
        .with_size([1024.0, 700.0])
        .with_pixels_per_point(1.0)
        .wgpu()
        .build_ui_state(|ui, a: &mut GuiApp| a.show(ui), a);
    h.run_steps(2);
    h.get_by_label(&label);
    let img = h.render().unwrap();
    assert_eq!(img.dimensions(), (1024, 700));
    let mut colours: Vec<[u8; 4]> = img.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 16,
        "{} colours: not a drawn window",
        colours.len()
    );
}

#[test]
fn the_file_picker_lists_folders_and_matching_files_and_adds_an_onnx_model() {
    use super::files::{FilePicker, Purpose};
    let d = tmp("picker");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    for f in ["a.onnx", "b.json", "c.txt"] {
        std::fs::write(d.join(f), b"x").unwrap();
    }
    let mut p = FilePicker::new(Purpose::OnnxModel, &d);
    assert_eq!(p.listing(), ["sub/", "a.onnx"]);
    assert_eq!(
        FilePicker::new(Purpose::OpenReport, &d).listing(),
        ["sub/", "b.json"]
    );
    p.path = "nope.onnx".into();
    assert!(p.choose().unwrap_err().contains("nope.onnx"));
    p.enter("sub");
    assert!(p.listing().is_empty());
    p.enter("..");
    assert_eq!(p.listing().len(), 2);

    let mut a = app(&["--device", "cpu"]);
    a.picker = Some(FilePicker::new(Purpose::OnnxModel, &d));
    let mut h = harness(a);
    h.get_by_label("a.onnx").click();
    h.run_steps(2);
    h.get_by_label("Open").click();
    h.run_steps(2);
    let s = h.state();
    assert!(s.picker.is_none());
    assert_eq!(s.form.models, [d.join("a.onnx").display().to_string()]);
    assert!(s.form.suites[4]);
    let _ = std::fs::remove_dir_all(&d);
}
