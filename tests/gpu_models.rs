//! Whole models on the GPU against the CPU reference (Tolerance::F32_MODEL: atol 1e-3 +
//! rtol 1e-2, since dozens of layers with different summation orders add up), plus the
//! executor's error paths. Runs on lavapipe in CI (`GCONV_REQUIRE_GPU=1`).

mod common;

use gconv::graph::Op;
use gconv::testing::{assert_close, Tolerance};
use gconv::zoo::{Arch, ConvKind, ModelSpec, Scheme};
use gconv::{cpu, Error, FlgcMode, LoadOptions, Runtime, Tensor, Weights};

fn input(shape: [usize; 4], seed: u32) -> Tensor {
    Tensor::from_fn(&shape, |i| {
        (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2000) as f32 / 1000.0 - 1.0
    })
}

/// A zoo model at a reduced input size (and, for VGG, a small classifier).
fn reduced(name: &str, size: usize, width: f32) -> ModelSpec {
    let mut s = ModelSpec::load(name).unwrap();
    s.input = [3, size, size];
    s.width = width;
    s.num_classes = 10;
    if let Arch::Vgg { classifier, .. } = &mut s.arch {
        *classifier = vec![64, 32];
    }
    s
}

/// GPU output vs the CPU reference on the unmodified graph (no passes), so folding,
/// fusion and FLGC compilation are all covered by the comparison.
fn check(spec: &ModelSpec, opts: &LoadOptions, batch: usize) {
    let Some(ctx) = common::gpu() else { return };
    let _guard = common::serial();
    let g = spec.build().unwrap();
    let w = Weights::random_for_tests(&g, 5);
    let [c, h, wd] = g.input_shape();
    let x = input([batch, c, h, wd], 3);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let rt = Runtime::with_context(ctx.clone());
    let mut m = rt.load_graph(g, w, opts).unwrap();
    let got = m.run(&x).unwrap();
    assert_eq!(got.shape(), want.shape(), "{}", spec.name);
    assert_close(&spec.name, got.data(), want.data(), Tolerance::F32_MODEL);
    // A second run reuses the prepared dispatches and gives the same answer.
    let again = m.run(&x).unwrap();
    assert_eq!(
        again.data(),
        got.data(),
        "{}: second run differs",
        spec.name
    );
}

#[test]
fn vgg13bn_baseline_and_schemes_a_to_e() {
    check(&reduced("vgg13bn", 32, 1.0), &LoadOptions::default(), 2);
    for s in ["A", "B", "C", "D", "E"] {
        let spec = reduced("vgg13bn", 32, 1.0)
            .with_scheme(&Scheme::load(s).unwrap())
            .unwrap();
        check(&spec, &LoadOptions::default(), 2);
    }
}

#[test]
fn vgg_with_unfolded_batch_norm() {
    let opts = LoadOptions {
        fold_bn: false,
        ..Default::default()
    };
    let spec = reduced("vgg11bn", 32, 0.5)
        .with_scheme(&Scheme::load("1,4,4,8,8").unwrap())
        .unwrap();
    check(&spec, &opts, 3);
}

#[test]
fn resnet50_and_dsc_variants() {
    check(&reduced("resnet50", 64, 0.25), &LoadOptions::default(), 2);
    check(
        &reduced("resnet50-dsc", 64, 0.25),
        &LoadOptions::default(),
        2,
    );
    let sgc = reduced("resnet50-dsc-sgc", 64, 0.25)
        .with_groups(4, None)
        .unwrap();
    check(&sgc, &LoadOptions::default(), 2);
}

#[test]
fn flgc_models_reordered_and_masked() {
    let res = reduced("resnet50-dsc-flgc", 32, 0.25)
        .with_groups(3, None)
        .unwrap();
    let vgg = reduced("vgg11bn", 32, 0.5)
        .with_groups(4, Some(ConvKind::Flgc))
        .unwrap();
    for spec in [res, vgg] {
        for flgc in [FlgcMode::Reordered, FlgcMode::Masked] {
            check(
                &spec,
                &LoadOptions {
                    flgc,
                    ..Default::default()
                },
                2,
            );
        }
    }
}

#[test]
fn full_size_vgg13bn_splits_its_411mb_classifier_weight() {
    let Some(ctx) = common::gpu() else { return };
    let _guard = common::serial();
    let spec = ModelSpec::load("vgg13bn").unwrap();
    let g = spec.build().unwrap();
    let w = Weights::init(&g, 1);
    let x = input([1, 3, 224, 224], 7);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let rt = Runtime::with_context(ctx.clone());
    let mut m = rt.load_graph(g, w, &LoadOptions::default()).unwrap();
    let got = m.run(&x).unwrap();
    assert_close(
        "vgg13bn 224²",
        got.data(),
        want.data(),
        Tolerance::F32_MODEL,
    );
    let plan = m.plan_report(1).unwrap().unwrap();
    assert!(plan.planned_bytes <= 3 * plan.largest_bytes, "{plan:?}");
}

#[test]
fn executor_errors_are_clear() {
    let Some(ctx) = common::gpu() else { return };
    let _guard = common::serial();
    let rt = Runtime::with_context(ctx.clone());
    let spec = reduced("vgg11bn", 32, 0.25);
    let mut m = rt.load(&spec, None, &LoadOptions::default()).unwrap();
    // Wrong input shape.
    let e = m.run(&Tensor::zeros(&[1, 3, 31, 32])).unwrap_err();
    assert!(matches!(e, Error::TensorShape { .. }), "{e}");
    assert!(e.to_string().contains("input"), "{e}");
    // An activation larger than the adapter allows is refused, naming the layer and the limit.
    let limit = ctx.limits.max_storage_buffer_binding_size as usize;
    let per_sample = 4 * 16 * 32 * 32; // features.0 output at width 0.25
    let batch = limit / per_sample + 1;
    let e = m.plan_report(batch).unwrap_err();
    match &e {
        Error::AdapterLimit {
            layer, limit_name, ..
        } => {
            assert_eq!(layer, "features.0");
            assert_eq!(*limit_name, "max_storage_buffer_binding_size");
        }
        other => panic!("expected AdapterLimit, got {other}"),
    }
    // Weights that do not fit the graph.
    let g = spec.build().unwrap();
    let mut w = Weights::init(&g, 0);
    w.insert("features.0.weight", Tensor::zeros(&[16, 3, 5, 5]));
    let e = rt.load_graph(g, w, &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("features.0.weight"), "{e}");
    assert!(
        e.to_string().contains("[16, 3, 5, 5]") && e.to_string().contains("[16, 3, 3, 3]"),
        "{e}"
    );
}

#[test]
fn weights_round_trip_through_safetensors_on_gpu() {
    let Some(ctx) = common::gpu() else { return };
    let _guard = common::serial();
    let spec = reduced("resnet50-dsc-sgc", 32, 0.25);
    let g = spec.build().unwrap();
    let w = Weights::random_for_tests(&g, 9);
    let dir = std::env::temp_dir().join(format!("gconv-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    gconv::io::write_safetensors(&path, &w, &Default::default()).unwrap();
    let back = gconv::io::load_weights(&path, &g).unwrap();
    assert_eq!(back, w);
    let rt = Runtime::with_context(ctx.clone());
    let x = input([1, 3, 32, 32], 1);
    let a = rt
        .load_graph(g.clone(), w, &LoadOptions::default())
        .unwrap()
        .run(&x)
        .unwrap();
    let b = rt
        .load_graph(g, back, &LoadOptions::default())
        .unwrap()
        .run(&x)
        .unwrap();
    assert_eq!(a.data(), b.data());
    std::fs::remove_dir_all(&dir).ok();
    let _ = Op::relu();
}

/// MobileNetV2 (ReLU6 fused into the conv/BN epilogues, linear bottlenecks, residual adds) and
/// its SGC / FLGC variants, FLGC both re-ordered and masked.
#[test]
fn mobilenetv2_and_its_grouped_variants() {
    check(
        &reduced("mobilenetv2", 32, 0.35),
        &LoadOptions::default(),
        2,
    );
    let unfolded = LoadOptions {
        fold_bn: false,
        ..Default::default()
    };
    check(&reduced("mobilenetv2", 32, 0.35), &unfolded, 1);
    let sgc = reduced("mobilenetv2-sgc", 32, 0.5)
        .with_groups(4, None)
        .unwrap();
    check(&sgc, &LoadOptions::default(), 2);
    let flgc = reduced("mobilenetv2-flgc", 32, 0.5)
        .with_groups(4, None)
        .unwrap();
    for flgc_mode in [FlgcMode::Reordered, FlgcMode::Masked] {
        let opts = LoadOptions {
            flgc: flgc_mode,
            ..Default::default()
        };
        check(&flgc, &opts, 2);
    }
}

/// A pass's stages (`GpuModel::last_stages`): none before the first pass, then upload,
/// encode, submit and wait within the pass's own wall time, its dispatches counted, the
/// read-back timed only when there is one.
#[test]
fn a_pass_keeps_where_its_time_went() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let g = common::tier::graph(Op::Conv2d(Conv2dSpec::square(8, 8, 3, 1, 1)), [8, 6, 6]);
    let w = Weights::random_for_tests(&g, 1);
    let x = common::tier::input(&[2, 8, 6, 6], 1);
    use gconv::graph::Conv2dSpec;
    let mut m = gconv::gpu::GpuModel::new(ctx.clone(), g, &w).unwrap();
    assert!(m.last_stages().is_none());
    m.run(&x).unwrap();
    let t = std::time::Instant::now();
    m.run(&x).unwrap();
    let wall = t.elapsed().as_secs_f64();
    let st = m.last_stages().unwrap();
    assert_eq!(st.dispatches, m.dispatch_labels(2).unwrap().len());
    assert!(
        st.total() <= wall && st.wait > 0.0 && st.read_back > 0.0,
        "{st:?} {wall}"
    );
    m.run_no_readback(&x).unwrap();
    assert_eq!(m.last_stages().unwrap().read_back, 0.0);
}
