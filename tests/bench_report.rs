//! `gconv bench` on a tiny configuration: the report's structure (JSON keys, rows, blocks,
//! files written), not its timings. Runs on the CPU path and, when there is one, the GPU.

#![cfg(feature = "app")]

mod common;

use gconv::bench::{run_bench, write_outputs, BenchConfig, LayerShape, Suite};
use gconv::{Device, Runtime};

fn tiny() -> BenchConfig {
    BenchConfig {
        suites: vec![Suite::Paper1, Suite::Paper2, Suite::Mobilenet, Suite::Sweep],
        input_size: 32,
        paper1_input_size: None,
        width: 0.5,
        num_classes: 10,
        batch: 1,
        large_batch: 2,
        warmup: 0,
        repeats: 1,
        vgg: "vgg11bn".into(),
        schemes: vec!["E".into()],
        groups: vec![2],
        sweep_layers: vec![LayerShape {
            channels: 16,
            size: 8,
            kernel: 3,
        }],
        sweep_groups: vec![1, 2, 4, 16],
        models: vec![],
        model_options: Default::default(),
        scheme: None,
        per_layer: true,
        tuned: false,
        tune: false,
        precision: gconv::Precision::F32,
    }
}

fn check(rt: &Runtime, cfg: &BenchConfig) {
    let mut steps = Vec::new();
    let report = run_bench(cfg, rt, &mut |msg, done, total| {
        steps.push((msg.to_string(), done, total))
    })
    .unwrap();
    assert_eq!(steps.last().unwrap().0, "done");
    let total = steps[0].2;
    assert_eq!(
        total,
        2 + (2 + 2) + (1 + 2) + 4 + usize::from(rt.is_gpu()),
        "paper1 (baseline + E), paper2 (2 + 2·groups), mobilenet (1 + 2·groups), sweep, \
         the roofline (GPU)"
    );
    // The roof is measured once on a GPU; every layer row names its kernel there and
    // reports its rate and share of the roof.
    assert_eq!(report.roofline.is_some(), rt.is_gpu());
    if let Some(r) = &report.roofline {
        assert!(r.read_gbps > 0.0 && r.gemm_gflops > 0.0, "{r:?}");
    }
    let layer_rows = report
        .paper1
        .iter()
        .flat_map(|m| &m.layers)
        .chain(report.paper2.iter().flat_map(|m| &m.layers))
        .chain(report.mobilenet.iter().flat_map(|m| &m.layers));
    let mut n = 0;
    for l in layer_rows {
        n += 1;
        assert!(l.seconds >= 0.0 && l.bytes > 0, "{l:?}");
        assert_eq!(l.kernel.is_some(), rt.is_gpu(), "{l:?}");
        assert_eq!(l.roof_pct.is_some(), rt.is_gpu(), "{l:?}");
        if l.op == "conv2d" && l.seconds > 0.0 {
            assert!(l.macs > 0 && l.gflops > 0.0, "{l:?}");
        }
    }
    assert!(n > 100, "{n} layer rows");
    for s in &report.sweep {
        assert!(s.gflops > 0.0);
        assert_eq!(s.kernel.is_some(), rt.is_gpu());
        assert_eq!(s.roof_pct.is_some(), rt.is_gpu());
    }

    let v = serde_json::to_value(&report).unwrap();
    for key in [
        "gconv_version",
        "device",
        "software_device",
        "config",
        "paper1",
        "paper2",
        "mobilenet",
        "sweep",
    ] {
        assert!(v.get(key).is_some(), "missing key {key}");
    }
    assert_eq!(v["device"].as_str().unwrap(), rt.describe());

    // paper1: baseline first, then the scheme, with reductions relative to the baseline.
    assert_eq!(report.paper1.len(), 2);
    assert_eq!(report.paper1[0].scheme, "baseline");
    assert_eq!(report.paper1[0].macs_reduction_pct, 0.0);
    assert_eq!(report.paper1[1].scheme, "E");
    assert!(report.paper1[1].macs < report.paper1[0].macs);
    for row in &report.paper1 {
        assert!(row.latency.min <= row.latency.median && row.latency.median <= row.latency.max);
        assert_eq!(row.latency.runs, 1);
        assert!(row.large_batch_latency.is_some() && row.throughput_ips > 0.0);
        // Where the timed pass went: on the GPU path only, its stages within its time.
        assert_eq!(row.pass_stages.is_some(), rt.is_gpu(), "{}", row.model);
        if let Some(st) = &row.pass_stages {
            assert!(
                st.dispatches > 0 && st.wait > 0.0 && st.read_back == 0.0,
                "{st:?}"
            );
            assert!(
                st.total() <= row.latency.max * 1.01 + 1e-4,
                "{st:?} {:?}",
                row.latency
            );
        }
    }
    let text = gconv::bench::render_text(&report);
    assert_eq!(text.contains("Where a pass goes"), rt.is_gpu(), "{text}");
    // paper2: six variants, each with the same blocks: stem, the 16 bottlenecks, head.
    let labels: Vec<&str> = report.paper2.iter().map(|r| r.model.as_str()).collect();
    assert_eq!(
        labels,
        [
            "resnet50",
            "resnet50-dsc",
            "resnet50-dsc-sgc G=2",
            "resnet50-dsc-flgc G=2"
        ]
    );
    for r in &report.paper2 {
        let blocks: Vec<&str> = r.blocks.iter().map(|b| b.0.as_str()).collect();
        assert_eq!(blocks.len(), 18, "{blocks:?}");
        assert_eq!(
            (blocks[0], blocks[1], blocks[16], blocks[17]),
            ("stem", "layer1.0", "layer4.2", "head")
        );
        assert!((r.total - r.blocks.iter().map(|b| b.1).sum::<f64>()).abs() < 1e-12);
        let by_layer: f64 = r.layers.iter().map(|l| l.seconds).sum();
        assert!(
            (r.total - by_layer).abs() < 1e-9,
            "{} vs {by_layer}",
            r.total
        );
        assert!(["timestamp-query", "submit-and-wait", "cpu"].contains(&r.method.as_str()));
    }
    // FLGC rows are counted from the exported graph, i.e. the groups actually drawn (random
    // selection matrices here: nearly even), so close to SGC's cost but not identical.
    let (sgc, flgc) = (report.paper2[2].macs as f64, report.paper2[3].macs as f64);
    assert!((flgc / sgc - 1.0).abs() < 0.05, "sgc {sgc} flgc {flgc}");
    assert!(report.paper2[1].macs > report.paper2[2].macs);
    // mobilenet: dense, SGC and FLGC, blocks stem (features.0), features.1 … features.18, head.
    let labels: Vec<&str> = report.mobilenet.iter().map(|r| r.model.as_str()).collect();
    assert_eq!(
        labels,
        ["mobilenetv2", "mobilenetv2-sgc G=2", "mobilenetv2-flgc G=2"]
    );
    for r in &report.mobilenet {
        let blocks: Vec<&str> = r.blocks.iter().map(|b| b.0.as_str()).collect();
        assert_eq!(blocks.len(), 20, "{blocks:?}");
        assert_eq!(
            (blocks[0], blocks[1], blocks[18], blocks[19]),
            ("features.0", "features.1", "features.18", "head")
        );
    }
    assert!(report.mobilenet[1].macs < report.mobilenet[0].macs);
    // The planned memory of a GPU training step: fewer bytes than one buffer per value.
    assert_eq!(
        report.training_memory.len(),
        if rt.is_gpu() { 2 } else { 0 }
    );
    for t in &report.training_memory {
        assert!(t.plan.planned_bytes < t.plan.naive_bytes, "{t:?}");
        assert!(t.plan.slots < t.plan.values && t.plan.largest_bytes > 0);
    }
    // sweep: G=16 divides 16 channels (depthwise); all four points present, dense first.
    let gs: Vec<usize> = report.sweep.iter().map(|s| s.groups).collect();
    assert_eq!(gs, [1, 2, 4, 16]);
    assert_eq!(report.sweep[0].speedup_vs_dense, 1.0);
    assert_eq!(report.sweep[3].macs * 16, report.sweep[0].macs);

    let dir = std::env::temp_dir().join(format!(
        "gconv-bench-{}-{}",
        std::process::id(),
        rt.is_gpu()
    ));
    let files = write_outputs(&report, &dir).unwrap();
    let mut expected = vec![
        "report.json",
        "summary.md",
        "report.html",
        "paper1_vgg_schemes.svg",
        "paper2_resnet_layerwise.svg",
        "mobilenetv2_layerwise.svg",
        "sweep_groups.svg",
    ];
    if rt.is_gpu() {
        expected.extend([
            "roofline.svg",
            "paper1_roof_per_layer.svg",
            "paper2_roof_per_block.svg",
            "mobilenetv2_roof_per_block.svg",
        ]);
    }
    for name in expected {
        assert!(
            files.iter().any(|f| f.ends_with(name)),
            "{name} not written: {files:?}"
        );
        assert!(dir.join(name).metadata().unwrap().len() > 0);
    }
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(back["paper1"][1]["scheme"], "E");
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("Paper 1") && md.contains("Paper 2") && md.contains("Group sweep"));
    assert!(md.contains("MobileNetV2"));
    assert!(md.contains("furthest below the roof") == rt.is_gpu());
    assert!(md.contains(": per layer at batch 1"), "{md}");
    // A second run into the same folder without the sweep: the sweep's charts of the first
    // run go, a file of the user's stays, and a list naming a path outside removes nothing.
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let outside = dir.with_extension("outside");
    std::fs::write(&outside, "not the bench's").unwrap();
    let list = dir.join(".gconv-bench-files");
    let mut names = std::fs::read_to_string(&list).unwrap();
    assert!(names.lines().any(|n| n == "sweep_groups.png"), "{names}");
    names.push_str(&format!(
        "../{}\n",
        outside.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::write(&list, names).unwrap();
    let mut second = report.clone();
    second.sweep.clear();
    let files = write_outputs(&second, &dir).unwrap();
    assert!(!files.iter().any(|f| f.ends_with("sweep_groups.svg")));
    assert!(!dir.join("sweep_groups.svg").exists() && !dir.join("sweep_groups.png").exists());
    assert!(dir.join("paper1_vgg_schemes.svg").exists());
    assert!(dir.join("notes.txt").exists() && outside.exists());
    std::fs::remove_file(&outside).ok();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn roofline_suite_on_gpu() {
    let Some(ctx) = common::gpu() else { return };
    let _guard = common::serial();
    let rt = Runtime::with_context(ctx.clone());
    let mut cfg = tiny();
    cfg.suites = vec![Suite::Roofline];
    let report = run_bench(&cfg, &rt, &mut |_, _, _| {}).unwrap();
    let r = report.roofline.as_ref().expect("measured");
    assert!(r.read_gbps > 0.0 && r.gemm_gflops > 0.0);
    assert!(r.all.len() >= 2);
    assert!(report.paper1.is_empty() && report.training_memory.is_empty());
    let text = gconv::bench::render_text(&report);
    assert!(
        text.contains("Roofline of") && text.contains("ridge point"),
        "{text}"
    );
    let v = serde_json::to_value(&report).unwrap();
    assert!(v["roofline"]["gemm_gflops"].as_f64().unwrap() > 0.0);
}

#[test]
fn tiny_bench_on_cpu() {
    check(&Runtime::new(Device::Cpu).unwrap(), &tiny());
}

#[test]
fn tiny_bench_on_gpu() {
    let Some(ctx) = common::gpu() else { return };
    let _guard = common::serial();
    check(&Runtime::with_context(ctx.clone()), &tiny());
}

/// `gconv bench --model`: an ONNX model whose shuffles were folded is also run unfolded; both
/// rows carry the same cost, per-class times that add up to the layer times, and the fold's
/// summary; a zoo model given by name runs too.
fn check_models(rt: &Runtime) {
    let shuffle = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/onnx/shufflenet.onnx"
    );
    let mut cfg = tiny();
    cfg.suites = vec![Suite::Models];
    cfg.models = vec![shuffle.into(), "resnet50-dsc-sgc".into()];
    cfg.large_batch = 0;
    let mut seen = Vec::new();
    let report = run_bench(&cfg, rt, &mut |m, _, _| seen.push(m.to_string())).unwrap();
    let labels: Vec<&str> = report.models.iter().map(|m| m.model.as_str()).collect();
    let unfolded = format!("{shuffle} (permutations not folded)");
    assert_eq!(labels, [shuffle, unfolded.as_str(), "resnet50-dsc-sgc"]);
    assert!(seen.iter().any(|s| s.contains("not folded")), "{seen:?}");
    let (f, u) = (&report.models[0], &report.models[1]);
    assert_eq!((f.macs, f.params), (u.macs, u.params));
    assert!(f
        .permutations
        .as_deref()
        .unwrap()
        .contains("gathers folded"));
    assert!(u.permutations.is_none());
    for m in &report.models {
        let by_class: f64 = m.classes.iter().map(|c| c.1).sum();
        let by_layer: f64 = m.layers.iter().map(|l| l.1).sum();
        assert!(
            (by_class - by_layer).abs() <= 1e-9 * by_layer.max(1.0),
            "{}",
            m.model
        );
        assert!(m.latency.median > 0.0 && m.throughput_ips > 0.0);
    }
    // The unfolded ShuffleNet runs its channel shuffles as gathers; the folded one does not.
    let perm = |m: &gconv::bench::UserModelRow| m.classes[4].1;
    assert!(perm(u) > 0.0);
    let dir = std::env::temp_dir().join(format!("gconv-bench-models-{}", std::process::id()));
    let files = write_outputs(&report, &dir).unwrap();
    assert!(files.iter().any(|f| f.ends_with("models_op_classes.svg")));
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("shufflenet.onnx (unfolded)"), "{md}");
    // report.html has the models' table and chart inline.
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("data-title=\"Your models, batch 1\""));
    assert!(html.contains("id=\"fig-models_op_classes\""));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn your_models_on_cpu() {
    check_models(&Runtime::new(Device::Cpu).unwrap());
}

#[test]
fn your_models_on_gpu() {
    let Some(ctx) = common::gpu() else { return };
    let _guard = common::serial();
    check_models(&Runtime::with_context(ctx.clone()));
}

#[test]
fn bad_configurations_are_errors() {
    let rt = Runtime::new(Device::Cpu).unwrap();
    let mut cfg = tiny();
    cfg.repeats = 0;
    assert!(run_bench(&cfg, &rt, &mut |_, _, _| {}).is_err());
    let mut cfg = tiny();
    cfg.schemes = vec!["Z".into()];
    cfg.suites = vec![Suite::Paper1];
    let e = run_bench(&cfg, &rt, &mut |_, _, _| {}).unwrap_err();
    assert!(e.to_string().contains("unknown scheme `Z`"), "{e}");
    assert!("256x56".parse::<LayerShape>().is_err());
    assert_eq!(
        "512x28:1".parse::<LayerShape>().unwrap(),
        LayerShape {
            channels: 512,
            size: 28,
            kernel: 1
        }
    );
}
