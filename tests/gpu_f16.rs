//! `Precision::F16` (weights stored as halves where the kernel reads them: the discrete
//! tier's `conv_igemm` and `gemv_wide`), run on lavapipe against the f32 CPU reference within the f16
//! tolerances, and shown to really read halves (its outputs differ from the f32 kernel's).
//! The CPU-class lists have no f16 kernel: a model there stores f32 and says so.

mod common;

use common::tier::{fc_graph, graph, igemm, input, uneven_table};

use gconv::gpu::choice::{Adapter, AdapterClass, ConvKernel, KernelChoice};
use gconv::gpu::kernels::conv_igemm::{self, IgemmConv, IgemmIo, IgemmWeight, TILES};
use gconv::gpu::launch::bind_all;
use gconv::gpu::{run_dispatches, Arg, GpuContext, GpuModel, Precision};
use gconv::graph::{Conv2dSpec, Op};
use gconv::testing::{assert_close, compare, Tolerance};
use gconv::{cpu, Weights};
use std::sync::Arc;

/// The largest |a − b|.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Runs `op` with `kernel` forced, in f16 and in f32: f16 within its tolerance of the CPU,
/// f32 within F32_OP, and the two different (the halves are really read).
fn check_f16(ctx: &Arc<GpuContext>, op: Op, chw: [usize; 3], batch: usize, kernel: ConvKernel) {
    let g = graph(op, chw);
    let w = Weights::random_for_tests(&g, 5);
    let x = input(&[batch, chw[0], chw[1], chw[2]], 7);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let what = format!("{kernel} {chw:?} b{batch}");
    let run = |p: Precision| {
        let forced = KernelChoice::new().conv("layer", kernel).with_precision(p);
        let mut m = GpuModel::with_choice(ctx.clone(), g.clone(), &w, forced).unwrap();
        let expect = [1, usize::from(p == Precision::F16)];
        assert_eq!(m.f16_convs(), expect, "{what} {p}");
        let halves: &[&str] = if p == Precision::F16 { &["layer"] } else { &[] };
        assert_eq!(m.half_weight_layers(), halves, "{what} {p}");
        m.run(&x).unwrap()
    };
    let half = run(Precision::F16);
    let full = run(Precision::F32);
    assert_close(&what, full.data(), want.data(), Tolerance::F32_OP);
    assert_close(&what, half.data(), want.data(), Tolerance::F16_OP);
    assert!(
        max_diff(half.data(), full.data()) > 0.0,
        "{what}: f16 weights gave the f32 output bit for bit"
    );
}

#[test]
fn f16_weights_on_every_igemm_tile_match_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let table = uneven_table();
    let tchw = [table.spec.in_channels, 9, 11];
    for tile in 0..TILES.len() {
        for (op, chw, batch) in [
            (
                Op::Conv2d(Conv2dSpec::square(12, 16, 3, 2, 1).groups(4).bias(true)),
                [12, 13, 11],
                2,
            ),
            (
                Op::Conv2d(Conv2dSpec::square(32, 24, 1, 1, 0)),
                [32, 7, 9],
                3,
            ),
            (
                Op::Conv2d(Conv2dSpec::square(6, 9, 3, 1, 1).groups(3)),
                [6, 5, 8],
                1,
            ),
            (Op::GroupedConvTable(table.clone()), tchw, 2),
        ] {
            check_f16(ctx, op, chw, batch, igemm(tile));
        }
    }
}

/// Split-K on packed halves (the reduce pass adds f32 partial sums of f16 weights).
#[test]
fn f16_weights_with_split_k_match_the_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let spec = Conv2dSpec::square(64, 32, 3, 1, 1).bias(true);
    let hw = [6, 5];
    let batch = 1;
    let g = graph(Op::Conv2d(spec.clone()), [64, hw[0], hw[1]]);
    let w = Weights::random_for_tests(&g, 3);
    let x = input(&[batch, 64, hw[0], hw[1]], 11);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let plan = IgemmConv::conv2d(&spec, Some(TILES[1])).unwrap();
    let layer = plan.upload(ctx, "layer").unwrap();
    let halves = plan
        .pack_f16(w.get("layer.weight").unwrap().data())
        .unwrap();
    assert_eq!(halves.len() * 2, plan.packed_len());
    let up = |l: &str, d: &[f32]| Arg::whole(&ctx.upload(l, d).unwrap());
    let out = ctx
        .storage_buffer("out", (batch * 32 * hw[0] * hw[1] * 4) as u64)
        .unwrap();
    let io = IgemmIo {
        x: up("x", x.data()),
        out: Arg::whole(&out),
        weight: IgemmWeight::PackedF16(Arg::whole(&ctx.upload_u32("wp16", &halves).unwrap())),
        bias: Some(up("b", w.get("layer.bias").unwrap().data())),
    };
    let run = gconv::gpu::geometry::ConvGeom {
        batch,
        in_hw: hw,
        act: gconv::ops::Activation::Relu6,
    };
    let slots = 512;
    let split = plan.split(batch * hw[0] * hw[1], slots).ksplit;
    assert!(split > 1, "the layer must split K (got {split})");
    let mut scratch = |l: &str, n: usize| Ok(Arg::whole(&ctx.storage_buffer(l, (n * 4) as u64)?));
    let calls = conv_igemm::forward(ctx, "layer", (&layer, slots), io, run, &mut scratch).unwrap();
    assert_eq!(calls.len(), 2, "tile entry + reduce");
    run_dispatches(ctx, &bind_all(ctx, &calls).unwrap()).unwrap();
    let got = ctx.read_f32(&out, 0, want.numel()).unwrap();
    assert_close("igemm f16 split-K", &got, want.data(), Tolerance::F16_OP);
}

/// A packed f16 buffer of the wrong size is refused naming the layer (two halves a word).
#[test]
fn a_short_f16_weight_buffer_is_an_error() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let spec = Conv2dSpec::square(8, 16, 3, 1, 1);
    let plan = IgemmConv::conv2d(&spec, None).unwrap();
    let layer = plan.upload(ctx, "short").unwrap();
    let words = vec![0u32; plan.packed_len() / 2 - 1];
    let up = |l: &str, n: usize| Arg::whole(&ctx.storage_buffer(l, (n * 4) as u64).unwrap());
    let io = IgemmIo {
        x: up("x", 8 * 5 * 5),
        out: up("out", 16 * 5 * 5),
        weight: IgemmWeight::PackedF16(Arg::whole(&ctx.upload_u32("wp16", &words).unwrap())),
        bias: None,
    };
    let run = gconv::gpu::geometry::ConvGeom {
        batch: 1,
        in_hw: [5, 5],
        act: gconv::ops::Activation::None,
    };
    let mut scratch = |l: &str, n: usize| Ok(Arg::whole(&ctx.storage_buffer(l, (n * 4) as u64)?));
    let e = conv_igemm::forward(ctx, "short", (&layer, 1), io, run, &mut scratch).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("short") && msg.contains("f16"), "{msg}");
}

/// A weight beyond f16's range is an error naming the layer, not an infinity.
#[test]
fn weights_beyond_the_f16_range_are_refused() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let g = graph(Op::Conv2d(Conv2dSpec::square(4, 8, 3, 1, 1)), [4, 6, 6]);
    let mut w = Weights::random_for_tests(&g, 2);
    let mut big = w.get("layer.weight").unwrap().clone();
    big.data_mut()[5] = 1e6;
    w.insert("layer.weight", big);
    let forced = KernelChoice::new()
        .conv("layer", igemm(1))
        .with_precision(Precision::F16);
    let Err(e) = GpuModel::with_choice(ctx.clone(), g, &w, forced) else {
        panic!("a weight of 1e6 was stored as an f16");
    };
    let msg = e.to_string();
    assert!(msg.contains("layer") && msg.contains("f16"), "{msg}");
}

/// With the discrete class forced, a whole model loaded with `precision: F16` stores halves
/// in its `conv_igemm` layers and stays within the f16 model tolerance; on the CPU class
/// (lavapipe's own lists) nothing can store halves, and the output is the f32 one exactly.
#[test]
fn whole_models_in_f16_per_adapter_class() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    use gconv::zoo::{Arch, ModelSpec, Scheme};
    use gconv::{LoadOptions, Runtime};
    let mut spec = ModelSpec::load("vgg11bn").unwrap();
    spec = spec.with_scheme(&Scheme::load("E").unwrap()).unwrap();
    spec.input = [3, 32, 32];
    spec.width = 0.5;
    spec.num_classes = 10;
    if let Arch::Vgg { classifier, .. } = &mut spec.arch {
        *classifier = vec![64, 32];
    }
    let g = spec.build().unwrap();
    let w = Weights::random_for_tests(&g, 1);
    let x = input(&[2, 3, 32, 32], 3);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let rt = Runtime::with_context(ctx.clone());
    let load = |p: Precision| {
        let opts = LoadOptions {
            precision: p,
            ..Default::default()
        };
        rt.load_graph(g.clone(), w.clone(), &opts).unwrap()
    };
    std::env::set_var("GCONV_ADAPTER_CLASS", "discrete");
    assert_eq!(Adapter::of(ctx).class, AdapterClass::Discrete);
    let mut half = load(Precision::F16);
    let [convs, halves] = half.gpu_model().unwrap().f16_convs();
    assert!(convs > 0 && halves == convs, "{halves} of {convs} in f16");
    let [fcs, fc_halves] = half.gpu_model().unwrap().f16_linears();
    assert!(
        fcs == 3 && fc_halves > 0,
        "{fc_halves} of {fcs} linears in f16"
    );
    let got = half.run(&x).unwrap();
    assert_close(
        "vgg11bn-E f16",
        got.data(),
        want.data(),
        Tolerance::F16_MODEL,
    );
    let full = load(Precision::F32).run(&x).unwrap();
    assert!(max_diff(got.data(), full.data()) > 0.0);
    std::env::set_var("GCONV_ADAPTER_CLASS", "cpu");
    let mut cpu_class = load(Precision::F16);
    assert_eq!(cpu_class.gpu_model().unwrap().f16_convs()[1], 0);
    assert_eq!(cpu_class.gpu_model().unwrap().f16_linears()[1], 0);
    let same = cpu_class.run(&x).unwrap();
    let reference = load(Precision::F32).run(&x).unwrap();
    assert_eq!(same.data(), reference.data());
    std::env::remove_var("GCONV_ADAPTER_CLASS");
    let (e16, e32) = (
        compare(got.data(), want.data(), Tolerance::F16_MODEL),
        compare(full.data(), want.data(), Tolerance::F32_MODEL),
    );
    eprintln!(
        "vgg11bn-E 32² width 0.5 vs the CPU: f16 weights max |err| {:.2e} (rel {:.2e}), \
         f32 {:.2e} (rel {:.2e})",
        e16.max_abs, e16.max_rel, e32.max_abs, e32.max_rel
    );
    assert!(
        e16.max_abs >= e32.max_abs,
        "halves cannot be closer than f32"
    );
}

/// The CLI: `--precision f16` on the CPU reference is refused with a clear message; an
/// unknown precision names the accepted ones.
#[test]
fn the_cli_refuses_f16_on_the_cpu() {
    let gconv = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gconv"))
            .args(args)
            .output()
            .unwrap()
    };
    let o = gconv(&[
        "bench",
        "--device",
        "cpu",
        "--suite",
        "sweep",
        "--precision",
        "f16",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--precision f16"), "{err}");
    let o = gconv(&["bench", "--device", "cpu", "--precision", "f8"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("f32 or f16"), "{err}");
}

/// `gemv_wide` reads halves: a model loaded in f16 stores its fully connected weights so
/// (forced, at batches 1–5; and by the discrete class's default at batch 1, then at batch
/// 12, where the f32 default would be the register-tiled `linear`, which reads no halves, so
/// `gemv_wide` runs it), within the f16 tolerance of the CPU and different from f32.
#[test]
fn f16_linear_weights_match_the_cpu_at_every_batch() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let wide = gconv::gpu::choice::linear_named("gemv_wide").unwrap();
    let cases: [(usize, usize, usize, bool); 5] = [
        (36, 20, 1, true),
        (64, 7, 3, true),
        (256, 33, 5, true),
        (200, 9, 1, false),
        (200, 9, 12, false),
    ];
    for (inf, outf, batch, forced) in cases {
        let g = fc_graph(inf, outf);
        let w = Weights::random_for_tests(&g, 9);
        let x = input(&[batch, inf, 1, 1], 4);
        let want = cpu::run_graph(&g, &w, &x).unwrap();
        let what = format!("fc {inf}->{outf} b{batch} forced {forced}");
        if !forced {
            std::env::set_var("GCONV_ADAPTER_CLASS", "discrete");
        }
        let run = |p: Precision| {
            let mut choice = KernelChoice::new().with_precision(p);
            if forced {
                choice = choice.linear("fc", wide);
            }
            let mut m = GpuModel::with_choice(ctx.clone(), g.clone(), &w, choice).unwrap();
            let expect = [1, usize::from(p == Precision::F16)];
            assert_eq!(m.f16_linears(), expect, "{what} {p}");
            let labels = m.dispatch_labels(batch).unwrap();
            if p == Precision::F16 {
                assert!(
                    labels.iter().any(|l| l.contains("[gemv_wide_f16::")),
                    "{what}: {labels:?}"
                );
            }
            m.run(&x).unwrap()
        };
        let (half, full) = (run(Precision::F16), run(Precision::F32));
        std::env::remove_var("GCONV_ADAPTER_CLASS");
        assert_close(&what, full.data(), want.data(), Tolerance::F32_OP);
        assert_close(&what, half.data(), want.data(), Tolerance::F16_OP);
        assert!(
            max_diff(half.data(), full.data()) > 0.0,
            "{what}: f16 weights gave the f32 output bit for bit"
        );
    }
}

/// A fully connected layer no half-reading kernel can run (in_features not a multiple of 4,
/// which `gemv_wide`'s vec4 rows need) stays f32 and says so; on the CPU class nothing
/// stores halves.
#[test]
fn f16_linear_layers_that_cannot_read_halves_stay_f32() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    for (class, inf) in [("discrete", 30), ("cpu", 64)] {
        std::env::set_var("GCONV_ADAPTER_CLASS", class);
        let g = fc_graph(inf, 5);
        let w = Weights::random_for_tests(&g, 2);
        let x = input(&[2, inf, 1, 1], 6);
        let want = cpu::run_graph(&g, &w, &x).unwrap();
        let choice = KernelChoice::new().with_precision(Precision::F16);
        let mut m = GpuModel::with_choice(ctx.clone(), g, &w, choice).unwrap();
        let counts = m.f16_linears();
        let got = m.run(&x).unwrap();
        std::env::remove_var("GCONV_ADAPTER_CLASS");
        assert_eq!(counts, [1, 0], "{class} in_features {inf}");
        assert_close(class, got.data(), want.data(), Tolerance::F32_OP);
    }
}

/// A fully connected weight beyond f16's range is an error naming the layer.
#[test]
fn linear_weights_beyond_the_f16_range_are_refused() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let g = fc_graph(16, 4);
    let mut w = Weights::random_for_tests(&g, 2);
    let mut big = w.get("fc.weight").unwrap().clone();
    big.data_mut()[3] = -1e5;
    w.insert("fc.weight", big);
    let wide = gconv::gpu::choice::linear_named("gemv_wide").unwrap();
    let choice = KernelChoice::new()
        .linear("fc", wide)
        .with_precision(Precision::F16);
    let Err(e) = GpuModel::with_choice(ctx.clone(), g, &w, choice) else {
        panic!("a weight of -1e5 was stored as an f16");
    };
    let msg = e.to_string();
    assert!(msg.contains("fc") && msg.contains("f16"), "{msg}");
}
