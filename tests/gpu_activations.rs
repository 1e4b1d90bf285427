//! Every activation of the table (`ops::activation`) on the GPU against the CPU reference:
//! the element-wise kernels (forward; backward from the input and from the output) at every
//! branch, NaN included; a network with each activation fused into a conv, a BN, an add and a
//! linear epilogue and one unfused (inference); and a training step with each activation —
//! fused where its derivative comes from the output, standalone otherwise — against the CPU
//! trainer; and every conv and fully connected kernel family forced with GELU (erf and
//! tanh), ELU and LeakyReLU fused — the activations that run in twins of the shaders
//! (`gpu::twin::specialise`) — split-K's reduce pass of `conv_igemm` included. Runs on
//! lavapipe; skips loudly without an adapter (see `common`).

mod common;

use gconv::gpu::choice::{self, Adapter, ConvKernel, ConvProblem, KernelChoice, LinearKernel};
use gconv::gpu::geometry::{ConvGeom, LinearShape};
use gconv::gpu::kernels::conv_igemm::{self, IgemmConv, IgemmIo, IgemmWeight, TILES};
use gconv::gpu::kernels::elementwise::{self, Elementwise};
use gconv::gpu::launch::bind_all;
use gconv::gpu::{run_dispatches, Arg, Call, GpuContext, GpuModel};
use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, Op, Pool2dSpec};
use gconv::ops::Activation;
use gconv::ops::Linear;
use gconv::plan::Analysis;
use gconv::testing::{check_close, Tolerance};
use gconv::train::{GpuTrainer, Train, TrainConfig, Trainer};
use gconv::{cpu, LoadOptions, Runtime, Tensor, Weights};

/// Every activation, with the parameters the CPU tests use.
fn all() -> Vec<Activation> {
    Activation::ROWS
        .iter()
        .map(|r| match r.default {
            Activation::LeakyRelu { .. } => Activation::LeakyRelu { alpha: 0.1 },
            Activation::Elu { .. } => Activation::Elu { alpha: 0.7 },
            Activation::HardSigmoid { .. } => Activation::HARD_SIGMOID_TORCH,
            a => a,
        })
        .collect()
}

fn run(ctx: &GpuContext, call: Call, out: &wgpu::Buffer, n: usize) -> Vec<f32> {
    run_dispatches(ctx, &bind_all(ctx, &[call]).unwrap()).unwrap();
    ctx.read_f32(out, 0, n).unwrap()
}

/// NaN where the CPU has NaN, else within `1e-5 + 1e-4·|want|` (the GPU's `exp` differs from
/// the CPU's by a few ulps).
fn same(what: &str, got: &[f32], want: &[f32], x: &[f32]) {
    for i in 0..want.len() {
        let ok = if want[i].is_nan() {
            got[i].is_nan()
        } else {
            (got[i] - want[i]).abs() <= 1e-5 + 1e-4 * want[i].abs()
        };
        assert!(
            ok,
            "{what} at x = {}: GPU {}, CPU {}",
            x[i], got[i], want[i]
        );
    }
}

#[test]
fn elementwise_kernels_match_the_cpu_at_every_branch() {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let mut x = vec![
        -1e3,
        -30.0,
        -10.0,
        -6.5,
        -6.0,
        -5.9,
        -3.5,
        -3.0,
        -2.99,
        -2.5,
        -1.0,
        -0.5,
        -1e-3,
        -0.0,
        0.0,
        1e-3,
        0.5,
        1.0,
        2.5,
        2.99,
        3.0,
        3.5,
        5.9,
        6.0,
        6.5,
        10.0,
        30.0,
        1e3,
        f32::NAN,
    ];
    x.extend((-120..=120).map(|i| i as f32 * 0.1));
    let n = x.len();
    let mut g: Vec<f32> = (0..n).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
    g[1] = f32::NAN; // at x = −30 (saturated or blocked)
    let (xb, gb) = (ctx.upload("x", &x).unwrap(), ctx.upload("g", &g).unwrap());
    let out = ctx.storage_buffer("out", (n * 4) as u64).unwrap();
    let arg = Arg::whole;
    for a in all() {
        let k = a.kind();
        let e = Elementwise::len(n).act(a);
        let y: Vec<f32> = x.iter().map(|&v| a.apply(v)).collect();
        let call = elementwise::activation(ctx, k, e, &arg(&xb), &arg(&out)).unwrap();
        same(&format!("{k} forward"), &run(ctx, call, &out, n), &y, &x);

        let want: Vec<f32> = x
            .iter()
            .zip(&g)
            .map(|(&v, &d)| a.grad_input(v, d))
            .collect();
        let call =
            elementwise::activation_backward_input(ctx, k, e, &arg(&xb), &arg(&gb), &arg(&out))
                .unwrap();
        same(
            &format!("{k} backward (x)"),
            &run(ctx, call, &out, n),
            &want,
            &x,
        );

        let yb = ctx.upload("y", &y).unwrap();
        let from_y = elementwise::activation_backward(ctx, k, e, &arg(&yb), &arg(&gb), &arg(&out));
        if a.grad_from_output() {
            let want: Vec<f32> = y
                .iter()
                .zip(&g)
                .map(|(&v, &d)| a.grad_output(v, d).unwrap())
                .collect();
            same(
                &format!("{k} backward (y)"),
                &run(ctx, from_y.unwrap(), &out, n),
                &want,
                &x,
            );
        } else {
            let e = from_y.unwrap_err().to_string();
            assert!(e.contains(k) && e.contains("input"), "{e}");
        }
    }
}

/// conv → act (fused), act → BN → act (fused), add → act (fused), max pool → act
/// (standalone), flatten → linear → act (fused, the output). Scaled so that pre-activations
/// reach past ±6.
fn network(a: Activation) -> Graph {
    let mut b = GraphBuilder::new(a.kind(), [4, 6, 6]);
    let spec = Conv2dSpec::square(4, 8, 3, 1, 1).groups(2).bias(true);
    let c1 = b.push("conv1", Op::conv2d(spec), &[0]).unwrap();
    let a1 = b.push("act1", Op::act(a), &[c1]).unwrap();
    let n = b.push("bn", Op::batch_norm(8, 1e-5), &[a1]).unwrap();
    let a2 = b.push("act2", Op::act(a), &[n]).unwrap();
    let spec = Conv2dSpec::square(8, 8, 3, 1, 1).groups(4);
    let c2 = b.push("conv2", Op::conv2d(spec), &[a2]).unwrap();
    let add = b.push("add", Op::add(), &[c2, a2]).unwrap();
    let a3 = b.push("act3", Op::act(a), &[add]).unwrap();
    let mp = b
        .push("pool", Op::max_pool(Pool2dSpec::square(2, 2, 0)), &[a3])
        .unwrap();
    let a4 = b.push("act4", Op::act(a), &[mp]).unwrap();
    let f = b.push("flatten", Op::flatten(), &[a4]).unwrap();
    let fc = b.push("fc", Op::linear(72, 5, true), &[f]).unwrap();
    let a5 = b.push("act5", Op::act(a), &[fc]).unwrap();
    b.finish(a5)
}

fn input(shape: &[usize], seed: usize, scale: f32) -> Tensor {
    Tensor::from_fn(shape, |i| {
        scale * ((((i + seed) * 7919 % 997) as f32) / 498.0 - 1.0)
    })
}

#[test]
fn networks_with_every_activation_fused_and_unfused_match_the_cpu() {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let rt = Runtime::with_context(ctx.clone());
    for a in all() {
        let g = network(a);
        let fused = Analysis::new(&g).fused;
        for p in ["conv1", "bn", "add", "fc"] {
            assert_eq!(fused[g.find(p).unwrap()], a, "{} after {p}", a.kind());
        }
        assert_eq!(fused[g.find("pool").unwrap()], Activation::None);
        let w = Weights::random_for_tests(&g, 7);
        let x = input(&[2, 4, 6, 6], 1, 4.0);
        let want = cpu::run_graph(&g, &w, &x).unwrap();
        let opts = LoadOptions {
            fold_bn: false,
            ..LoadOptions::default()
        };
        let mut m = rt.load_graph(g, w, &opts).unwrap();
        let got = m.run(&x).unwrap();
        check_close(a.kind(), got.data(), want.data(), Tolerance::F32_MODEL).unwrap();
    }
}

/// conv → BN → act → grouped conv → act → mean → linear: one training step, GPU against CPU.
fn trainable(a: Activation) -> Graph {
    let mut b = GraphBuilder::new(a.kind(), [3, 6, 6]);
    let spec = Conv2dSpec::square(3, 4, 3, 1, 1).bias(true);
    let c1 = b.push("conv1", Op::conv2d(spec), &[0]).unwrap();
    let n = b.push("bn1", Op::batch_norm(4, 1e-5), &[c1]).unwrap();
    let a1 = b.push("act1", Op::act(a), &[n]).unwrap();
    let spec = Conv2dSpec::square(4, 4, 3, 1, 1).groups(2).bias(true);
    let c2 = b.push("conv2", Op::conv2d(spec), &[a1]).unwrap();
    let a2 = b.push("act2", Op::act(a), &[c2]).unwrap();
    let p = b
        .push("pool", Op::adaptive_avg_pool([1, 1]), &[a2])
        .unwrap();
    let f = b.push("flatten", Op::flatten(), &[p]).unwrap();
    let fc = b.push("fc", Op::linear(4, 3, true), &[f]).unwrap();
    b.finish(fc)
}

#[test]
fn a_training_step_with_every_activation_matches_the_cpu() {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let tol = Tolerance {
        atol: 2e-3,
        rtol: 1e-2,
    };
    for a in all() {
        let g = trainable(a);
        let train_fused = Analysis::for_pass(&g, true).fused;
        let want = if a.grad_from_output() {
            a
        } else {
            Activation::None
        };
        assert_eq!(train_fused[g.find("conv2").unwrap()], want, "{}", a.kind());
        let config = TrainConfig {
            lr: 0.05,
            seed: 3,
            ..TrainConfig::default()
        };
        let w = Weights::init(&g, 11);
        let mut cpu_t = Trainer::new(g.clone(), w.clone(), config).unwrap();
        let mut gpu_t = GpuTrainer::new(ctx.clone(), g.clone(), w, config).unwrap();
        let x = input(&[3, 3, 6, 6], 2, 3.0);
        let labels = [0, 1, 2];
        let l_cpu = cpu_t.train_step(&x, &labels).unwrap().loss;
        let l_gpu = gpu_t.train_step(&x, &labels).unwrap().loss;
        check_close(&format!("{} loss", a.kind()), &[l_gpu], &[l_cpu], tol).unwrap();
        let gw = gpu_t.weights().unwrap();
        for (k, t) in cpu_t.weights().iter() {
            let what = format!("{} {k}", a.kind());
            check_close(&what, gw.get(k).unwrap().data(), t.data(), tol).unwrap();
        }
    }
}

/// The activations each kernel family is forced with: the table's helpers (erf, the stable
/// tanh, exp) and a parameter that is not its default.
fn twin_acts() -> [Activation; 4] {
    [
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Elu { alpha: 0.7 },
        Activation::LeakyRelu { alpha: 0.1 },
    ]
}

/// `op` at node "layer", then `a` (fused into its epilogue).
fn one_layer(op: Op, chw: [usize; 3], a: Activation) -> Graph {
    let mut b = GraphBuilder::new("twin", chw);
    let y = b.push("layer", op, &[b.input()]).unwrap();
    let y = b.push("act", Op::act(a), &[y]).unwrap();
    b.finish(y)
}

/// The shader a conv family's label names.
fn conv_shader(family: &str) -> String {
    let own = [
        "conv_fast",
        "conv_wgmem",
        "conv_tiled",
        "conv_igemm",
        "conv_dw",
    ];
    if family.starts_with("conv_coop") {
        // `conv_coop16_soft::coop_m1n4`: the shader is named by its matrix size.
        return "::coop_".to_string();
    }
    let s = if own.contains(&family) {
        family
    } else {
        "conv"
    };
    format!("[{s}::")
}

#[test]
fn every_kernel_family_fuses_gelu_elu_and_leaky_relu_like_the_cpu() {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let adapter = Adapter::of(ctx);
    let batch = 2;
    let layers = [
        (
            "grouped",
            Conv2dSpec::square(8, 12, 3, 1, 1).groups(4).bias(true),
        ),
        ("depthwise", Conv2dSpec::square(8, 8, 3, 1, 1).groups(8)),
    ];
    for a in twin_acts() {
        for (name, spec) in &layers {
            let chw = [spec.in_channels, 7, 9];
            let g = one_layer(Op::Conv2d(spec.clone()), chw, a);
            assert_eq!(Analysis::new(&g).fused[g.find("layer").unwrap()], a);
            let w = Weights::random_for_tests(&g, 5);
            let x = input(&[batch, chw[0], chw[1], chw[2]], 1, 3.0);
            let want = cpu::run_graph(&g, &w, &x).unwrap();
            let p = ConvProblem::conv2d(spec, batch, [chw[1], chw[2]], true);
            let mut ran = Vec::new();
            for f in choice::conv_forward_families() {
                let k = ConvKernel::of(f);
                if !choice::conv_can_run(k, &p, &adapter) {
                    continue;
                }
                let forced = KernelChoice::new().conv("layer", k);
                let mut m = GpuModel::with_choice(ctx.clone(), g.clone(), &w, forced).unwrap();
                let labels = m.dispatch_labels(batch).unwrap();
                let what = format!("{} {name} forced {k}", a.kind());
                let shader = conv_shader(f.name());
                assert!(
                    labels.iter().any(|l| l.contains(&shader)),
                    "{what}: {labels:?}"
                );
                let got = m.run(&x).unwrap();
                // The cooperative-matrix tier multiplies halves (both operands rounded).
                let tol = if f.name().starts_with("conv_coop") {
                    Tolerance::F16_OP
                } else {
                    Tolerance::F32_OP
                };
                check_close(&what, got.data(), want.data(), tol).unwrap();
                ran.push(f.name());
            }
            for must in ["conv_fast", "conv_tiled", "conv_igemm"] {
                assert!(
                    ran.contains(&must),
                    "{} {name}: {must} did not run",
                    a.kind()
                );
            }
            if *name == "depthwise" {
                assert!(
                    ran.contains(&"conv_dw"),
                    "{}: conv_dw did not run",
                    a.kind()
                );
            }
        }
        linear_families(ctx, &adapter, a);
        igemm_split_k(ctx, a);
    }
}

/// Every fully connected family forced on a layer it can run, `a` fused.
fn linear_families(ctx: &std::sync::Arc<GpuContext>, adapter: &Adapter, a: Activation) {
    let lin = Linear {
        in_features: 36,
        out_features: 20,
        bias: true,
    };
    let mut b = GraphBuilder::new("fc", [36, 1, 1]);
    let f = b.push("flat", Op::flatten(), &[b.input()]).unwrap();
    let y = b.push("layer", Op::linear(36, 20, true), &[f]).unwrap();
    let y = b.push("act", Op::act(a), &[y]).unwrap();
    let g = b.finish(y);
    let w = Weights::random_for_tests(&g, 5);
    let x = input(&[3, 36, 1, 1], 9, 3.0);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let shape = LinearShape {
        batch: 3,
        in_features: lin.in_features,
        out_features: lin.out_features,
    };
    let mut ran = 0;
    for f in choice::linear_forward_families() {
        let k = LinearKernel::of(f);
        // f32 weights: not the families that read halves only (linear_coop).
        if !f.can_run(&shape, adapter, None) || !f.reads_f32() {
            continue;
        }
        let forced = KernelChoice::new().linear("layer", k);
        let mut m = GpuModel::with_choice(ctx.clone(), g.clone(), &w, forced).unwrap();
        let got = m.run(&x).unwrap();
        let what = format!("{} fc forced {}", a.kind(), f.name());
        check_close(&what, got.data(), want.data(), Tolerance::F32_OP).unwrap();
        ran += 1;
    }
    assert!(ran >= 3, "{}: {ran} linear families ran", a.kind());
}

/// `conv_igemm` split along K: the activation is applied by the reduce pass.
fn igemm_split_k(ctx: &GpuContext, a: Activation) {
    let spec = Conv2dSpec::square(64, 16, 3, 1, 1).bias(true);
    let (hw, batch, slots) = ([5, 7], 1, 512);
    let g = one_layer(Op::Conv2d(spec.clone()), [64, hw[0], hw[1]], a);
    let w = Weights::random_for_tests(&g, 3);
    let x = input(&[batch, 64, hw[0], hw[1]], 4, 3.0);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let plan = IgemmConv::conv2d(&spec, Some(TILES[1])).unwrap();
    assert!(plan.split(35, slots).ksplit > 1, "split-K must run");
    let layer = plan.upload(ctx, "layer").unwrap();
    let up = |l: &str, d: &[f32]| Arg::whole(&ctx.upload(l, d).unwrap());
    let natural = w.get("layer.weight").unwrap().data();
    let out = ctx
        .storage_buffer("out", (want.numel() * 4) as u64)
        .unwrap();
    let io = IgemmIo {
        x: up("x", x.data()),
        out: Arg::whole(&out),
        weight: IgemmWeight::Packed(up("wp", &plan.pack(natural).unwrap())),
        bias: Some(up("b", w.get("layer.bias").unwrap().data())),
    };
    let run = ConvGeom {
        batch,
        in_hw: hw,
        act: a,
    };
    let mut scratch = |l: &str, n: usize| Ok(Arg::whole(&ctx.storage_buffer(l, (n * 4) as u64)?));
    let calls = conv_igemm::forward(ctx, "layer", (&layer, slots), io, run, &mut scratch).unwrap();
    assert_eq!(calls.len(), 2, "tile pass and reduce pass");
    run_dispatches(ctx, &bind_all(ctx, &calls).unwrap()).unwrap();
    let got = ctx.read_f32(&out, 0, want.numel()).unwrap();
    let what = format!("{} igemm split-K", a.kind());
    check_close(&what, &got, want.data(), Tolerance::F32_OP).unwrap();
}
