//! The GPU trainer against the CPU reference trainer: whole training steps (forward in training
//! mode, cross-entropy, backward, BN running statistics, SGD with momentum and weight decay)
//! give the same losses, weights and momentum buffers; FLGC groups move on the GPU; bad input
//! is an error. Runs on lavapipe; skips loudly without an adapter (see `common`).

mod common;

use gconv::cpu;
use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, Op, Pool2dSpec};
use gconv::testing::{check_close, Tolerance};
use gconv::train::Train;
use gconv::train::{Dataset, GpuTrainer, TrainConfig, Trainer};
use gconv::zoo::{Arch, ModelSpec, StemKind};
use gconv::{Tensor, Weights};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Whole training steps compared across devices. The GPU reduces in a different order (tree
/// reductions over batch × pixels in weight gradients and BN statistics), the differences go
/// through BN's 1/σ and compound over steps, so this is looser than a single op's
/// `F32_OP`.
const TRAIN_TOL: Tolerance = Tolerance {
    atol: 2e-3,
    rtol: 1e-2,
};

fn rand_t(shape: &[usize], seed: u64) -> Tensor {
    let mut r = SmallRng::seed_from_u64(seed);
    Tensor::from_fn(shape, |_| r.random_range(-1.0f32..1.0))
}

/// Every trainable op except dropout (whose mask generator differs by device): conv with
/// bias, training BN, ReLU, grouped conv, a residual add whose input has two consumers, avg
/// pool, FLGC with bias, max pool, adaptive pool, flatten, linear.
fn mixed_graph() -> Graph {
    let mut b = GraphBuilder::new("mixed", [3, 7, 7]);
    let x = b.input();
    let c1 = b
        .push(
            "conv1",
            Op::Conv2d(Conv2dSpec::square(3, 4, 3, 1, 1).bias(true)),
            &[x],
        )
        .unwrap();
    let n1 = b
        .push(
            "bn1",
            Op::BatchNorm(gconv::ops::BatchNorm {
                channels: 4,
                eps: 1e-5,
            }),
            &[c1],
        )
        .unwrap();
    let r1 = b.push("relu1", Op::relu(), &[n1]).unwrap();
    let c2 = b
        .push(
            "conv2",
            Op::Conv2d(Conv2dSpec::square(4, 4, 3, 1, 1).groups(2)),
            &[r1],
        )
        .unwrap();
    let a = b.push("add", Op::Add(gconv::ops::Add), &[c2, r1]).unwrap();
    let ap = b
        .push(
            "avgpool",
            Op::AvgPool(gconv::ops::AvgPool(Pool2dSpec::square(3, 1, 1))),
            &[a],
        )
        .unwrap();
    let f = b
        .push(
            "flgc",
            Op::FlgcConv2d(gconv::ops::FlgcSpec(
                Conv2dSpec::square(4, 6, 1, 1, 0).groups(2).bias(true),
            )),
            &[ap],
        )
        .unwrap();
    let dw = b
        .push(
            "dw",
            Op::Conv2d(Conv2dSpec::square(6, 6, 3, 2, 1).groups(6)),
            &[f],
        )
        .unwrap();
    let mp = b
        .push(
            "maxpool",
            Op::MaxPool(gconv::ops::MaxPool(Pool2dSpec::square(2, 1, 0))),
            &[dw],
        )
        .unwrap();
    let ad = b
        .push(
            "adapt",
            Op::AdaptiveAvgPool(gconv::ops::AdaptiveAvgPool { output: [2, 2] }),
            &[mp],
        )
        .unwrap();
    let fl = b
        .push("flatten", Op::Flatten(gconv::ops::Flatten), &[ad])
        .unwrap();
    let out = b
        .push(
            "fc",
            Op::Linear(gconv::ops::Linear {
                in_features: 24,
                out_features: 5,
                bias: true,
            }),
            &[fl],
        )
        .unwrap();
    b.finish(out)
}

fn tiny_resnet(name: &str, groups: Option<usize>) -> Graph {
    let mut spec = ModelSpec::load(name).unwrap();
    spec.input = [1, 12, 12];
    spec.width = 0.125;
    spec.num_classes = 4;
    if let Arch::Resnet { stem, layers, .. } = &mut spec.arch {
        *stem = StemKind::Small;
        *layers = [2, 1, 1, 1];
    }
    if let Some(g) = groups {
        spec = spec.with_groups(g, None).unwrap();
    }
    spec.build().unwrap()
}

fn config(lr: f32) -> TrainConfig {
    TrainConfig {
        lr,
        seed: 3,
        ..TrainConfig::default()
    }
}

fn compare_weights(what: &str, got: &Weights, want: &Weights, tol: Tolerance) {
    let mut failures = Vec::new();
    for (k, w) in want.iter() {
        let g = got.get(k).unwrap_or_else(|| panic!("{what}: {k} missing"));
        assert_eq!(g.shape(), w.shape(), "{what}: {k} shape");
        if let Err(e) = check_close(k, g.data(), w.data(), tol) {
            failures.push(e);
        }
    }
    assert_eq!(got.len(), want.len(), "{what}: number of tensors");
    assert!(failures.is_empty(), "{what}:\n{}", failures.join("\n"));
}

/// Runs `steps` steps of the same batch on both trainers and compares losses, hits, weights
/// (BN running statistics included) and momentum buffers.
fn compare_training(graph: Graph, batch: usize, steps: usize, lr: f32) {
    compare_training_with(graph, batch, steps, config(lr));
}

/// [`compare_training`] with a whole configuration.
fn compare_training_with(graph: Graph, batch: usize, steps: usize, cfg: TrainConfig) {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let [c, h, w] = graph.input_shape();
    let k = graph.output_shape()[0];
    let weights = Weights::init(&graph, 11);
    let mut cpu_t = Trainer::new(graph.clone(), weights.clone(), cfg).unwrap();
    let mut gpu_t = GpuTrainer::new(ctx.clone(), graph.clone(), weights, cfg).unwrap();
    for s in 0..steps {
        let x = rand_t(&[batch, c, h, w], 100 + s as u64);
        let labels: Vec<usize> = (0..batch).map(|i| (i + s) % k).collect();
        let a = cpu_t.train_step(&x, &labels).unwrap();
        let b = gpu_t.train_step(&x, &labels).unwrap();
        check_close(
            &format!("{} loss at step {s}", graph.name),
            &[b.loss],
            &[a.loss],
            TRAIN_TOL,
        )
        .unwrap();
        assert_eq!(b.correct, a.correct, "hits at step {s}");
    }
    assert_eq!(gpu_t.steps(), steps as u64);
    compare_weights(
        &format!("{} weights", graph.name),
        &gpu_t.weights().unwrap(),
        cpu_t.weights(),
        TRAIN_TOL,
    );
    compare_weights(
        &format!("{} momentum", graph.name),
        &gpu_t.optimizer_state().unwrap(),
        cpu_t.optimizer().state(),
        TRAIN_TOL,
    );
}

#[test]
fn gpu_steps_match_cpu_steps_on_a_graph_of_every_op() {
    compare_training(mixed_graph(), 3, 3, 0.05);
}

#[test]
fn gpu_steps_match_cpu_steps_on_resnet_dsc_flgc() {
    // Residual blocks, depthwise 3×3, FLGC G=2 on every 1×1 conv, downsample included.
    compare_training(tiny_resnet("resnet50-dsc-flgc", Some(2)), 4, 2, 0.02);
}

#[test]
fn gpu_steps_match_cpu_steps_with_a_separate_selection_learning_rate() {
    // `--flgc-select-lr`: S̄ and T̄ step at 20× the rate of the other parameters.
    let cfg = TrainConfig {
        selection_lr_scale: 20.0,
        ..config(0.02)
    };
    let graph = tiny_resnet("resnet50-dsc-flgc", Some(2));
    compare_training_with(graph.clone(), 4, 2, cfg);
    // One step moves S̄, T̄ by −lr·20·g on both devices (compared relative to the step, which
    // the absolute tolerance above would not resolve).
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let [c, h, w] = graph.input_shape();
    let w0 = Weights::init(&graph, 11);
    let x = rand_t(&[4, c, h, w], 5);
    let labels = [0, 1, 2, 3];
    let mut cpu_t = Trainer::new(graph.clone(), w0.clone(), cfg).unwrap();
    let mut gpu_t = GpuTrainer::new(ctx.clone(), graph.clone(), w0.clone(), cfg).unwrap();
    cpu_t.train_step(&x, &labels).unwrap();
    gpu_t.train_step(&x, &labels).unwrap();
    let gw = gpu_t.weights().unwrap();
    let mut checked = 0;
    for (k, t0) in w0
        .iter()
        .filter(|(k, _)| gconv::optim::is_selection_param(k))
    {
        let delta = |t: &Tensor| -> Vec<f32> {
            t.data().iter().zip(t0.data()).map(|(a, b)| a - b).collect()
        };
        let (dc, dg) = (
            delta(cpu_t.weights().get(k).unwrap()),
            delta(gw.get(k).unwrap()),
        );
        let scale = dc.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = dc
            .iter()
            .zip(&dg)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            diff <= 0.05 * scale + 1e-7,
            "{k}: step {scale}, GPU − CPU {diff}"
        );
        checked += usize::from(scale > 0.0);
    }
    assert!(checked > 0, "no selection matrix moved");
}

#[test]
fn gpu_steps_match_cpu_steps_on_resnet_dsc_sgc() {
    compare_training(tiny_resnet("resnet50-dsc-sgc", Some(2)), 4, 2, 0.02);
}

/// A larger batch with a partial last batch (a second plan) and a step-dependent learning rate.
/// MobileNetV2 with FLGC on its wide 1×1 convs (ReLU6 fused into the training epilogues,
/// linear bottlenecks, residual adds, dropout off): GPU steps = CPU steps.
///
/// One step at 16², where no activation sits within rounding of a ReLU6 threshold (the
/// momentum buffers then hold every gradient of the step). At 32², one step routes one
/// gradient differently: a BN output of ≈ 0 (β = 0 at init) in
/// block 15 is just above 0 on one device and just below on the other, which moves that BN's
/// bias gradient by 3 % and, through the 15 blocks below, every earlier gradient by ≈ 5e-3
/// (relative) while the later layers agree to 1e-5 — a threshold flip, not an error of
/// either device (at 12², the CPU against itself with the input scaled by 1 + 1e-6 moves the
/// first conv's momentum by 8e-2 the same way).
#[test]
fn gpu_steps_match_cpu_steps_on_mobilenetv2_flgc() {
    let mut spec = ModelSpec::load("mobilenetv2-flgc").unwrap().small_stem();
    spec.input = [1, 16, 16];
    spec.width = 0.25;
    spec.num_classes = 4;
    if let Arch::Mobilenetv2 { dropout, .. } = &mut spec.arch {
        *dropout = 0.0;
    }
    let graph = spec.with_groups(2, None).unwrap().build().unwrap();
    compare_training(graph, 4, 1, 0.02);
}

#[test]
fn gpu_epoch_matches_cpu_epoch() {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let graph = tiny_resnet("resnet50-dsc", None);
    let [c, h, w] = graph.input_shape();
    let n = 21;
    let data = Dataset::new(
        rand_t(&[n, c, h, w], 5).into_data(),
        (0..n).map(|i| (i % 4) as u8).collect(),
        c,
        h,
        w,
    )
    .unwrap();
    // A small learning rate: at 0.02 this trajectory meets a discrete event in its second
    // step (a pre-activation within rounding of 0 flips a ReLU, so one conv1 weight's
    // gradient is routed differently: 4.7e-3 apart after the epoch while every other weight
    // agrees to 1e-4, and to 1e-6 with the same batches in reverse order). That is f32
    // rounding amplified, not a kernel error; the per-step tests above cover the kernels.
    let sched = gconv::train::LrSchedule::Cosine {
        base: 0.005,
        total_epochs: 2,
    };
    let weights = Weights::init(&graph, 2);
    let mut a = Trainer::new(graph.clone(), weights.clone(), config(0.005)).unwrap();
    let mut b = GpuTrainer::new(ctx.clone(), graph, weights, config(0.005)).unwrap();
    let ea = a
        .train_epoch(&data, 8, 0, &sched, true, &mut |_| {})
        .unwrap();
    let eb = b
        .train_epoch(&data, 8, 0, &sched, true, &mut |_| {})
        .unwrap();
    assert_eq!(eb.samples, ea.samples);
    check_close("epoch loss", &[eb.loss], &[ea.loss], TRAIN_TOL).unwrap();
    compare_weights(
        "epoch weights",
        &b.weights().unwrap(),
        a.weights(),
        TRAIN_TOL,
    );
    // Evaluation (exported, BN folded, on the GPU) agrees with the CPU eval-mode forward.
    let (la, ca) = a.evaluate_dataset(&data, 16).unwrap();
    let (lb, cb) = b.evaluate_dataset(&data, 16).unwrap();
    check_close("eval loss", &[lb], &[la], TRAIN_TOL).unwrap();
    assert!((ca as i64 - cb as i64).abs() <= 1, "eval hits {cb} vs {ca}");
}

fn groups_of(w: &Weights, key: &str) -> Vec<usize> {
    cpu::row_argmax(w.require(key).unwrap()).unwrap()
}

#[test]
fn flgc_groups_move_and_loss_falls_on_the_gpu() {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let graph = tiny_resnet("resnet50-dsc-flgc", Some(4));
    let [c, h, w] = graph.input_shape();
    let w0 = Weights::init(&graph, 9);
    let mut t = GpuTrainer::new(ctx.clone(), graph.clone(), w0.clone(), config(0.05)).unwrap();
    let x = rand_t(&[8, c, h, w], 42);
    let labels: Vec<usize> = (0..8).map(|i| i % 4).collect();
    let losses: Vec<f32> = (0..30)
        .map(|_| t.train_step(&x, &labels).unwrap().loss)
        .collect();
    eprintln!("GPU FLGC losses: {losses:?}");
    let last5 = losses[25..].iter().sum::<f32>() / 5.0;
    assert!(last5 < losses[0] * 0.6, "loss {} -> {last5}", losses[0]);
    let w1 = t.weights().unwrap();
    let mut moved = 0;
    let mut sel_changed = 0;
    for n in &graph.nodes {
        if !matches!(n.op, Op::FlgcConv2d(_)) {
            continue;
        }
        for s in ["select_in", "select_out"] {
            let key = format!("{}.{s}", n.name);
            if w1.require(&key).unwrap().data() != w0.require(&key).unwrap().data() {
                sel_changed += 1;
            }
            moved += groups_of(&w1, &key)
                .iter()
                .zip(groups_of(&w0, &key))
                .filter(|(a, b)| **a != *b)
                .count();
        }
    }
    // S̄ and T̄ of every FLGC layer received gradients, and some rows changed group.
    let flgc_layers = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::FlgcConv2d(_)))
        .count();
    assert_eq!(sel_changed, 2 * flgc_layers, "every S̄/T̄ must be updated");
    assert!(moved > 0, "no channel or filter changed group in 30 steps");
    eprintln!("{moved} rows changed group");
}

#[test]
fn vgg_with_dropout_trains_on_the_gpu() {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let mut spec = ModelSpec::load("vgg11bn").unwrap();
    spec.input = [3, 32, 32];
    spec.width = 0.0625;
    spec.num_classes = 4;
    let graph = spec.build().unwrap();
    let mut t = GpuTrainer::new(
        ctx.clone(),
        graph.clone(),
        Weights::init(&graph, 4),
        config(0.03),
    )
    .unwrap();
    let x = rand_t(&[8, 3, 32, 32], 8);
    let labels: Vec<usize> = (0..8).map(|i| i % 4).collect();
    let losses: Vec<f32> = (0..20)
        .map(|_| t.train_step(&x, &labels).unwrap().loss)
        .collect();
    eprintln!("GPU vgg11bn losses: {losses:?}");
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(losses[19] < losses[0] * 0.7, "{losses:?}");
}

#[test]
fn gpu_trainer_rejects_bad_input() {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let graph = mixed_graph();
    let w = Weights::init(&graph, 1);
    let mut t = GpuTrainer::new(ctx.clone(), graph.clone(), w.clone(), config(0.1)).unwrap();
    let e = t
        .train_step(&rand_t(&[2, 3, 8, 7], 1), &[0, 1])
        .unwrap_err()
        .to_string();
    assert!(e.contains("input"), "{e}");
    let e = t
        .train_step(&rand_t(&[2, 3, 7, 7], 1), &[0, 9])
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 9"), "{e}");
    let e = t
        .train_step(&rand_t(&[2, 3, 7, 7], 1), &[0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("labels"), "{e}");
    // Missing weights and inference-only graphs are refused up front.
    let mut partial = w.clone();
    partial.remove("conv1.weight");
    assert!(GpuTrainer::new(ctx.clone(), graph.clone(), partial, config(0.1)).is_err());
    let (exported, ew) = gconv::graph::passes::export_flgc(&graph, &w).unwrap();
    let e = GpuTrainer::new(ctx.clone(), exported, ew, config(0.1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot be trained"), "{e}");
    // Momentum of the wrong shape.
    let mut st = Weights::new();
    st.insert("fc.weight.momentum", Tensor::zeros(&[2, 2]));
    assert!(t.load_optimizer_state(&st).is_err());
}

/// Same seed, same data → bit-identical weights on the same device (GPU reductions run in a
/// fixed order; dropout masks come from the seed).
#[test]
fn gpu_training_is_repeatable() {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let mut spec = ModelSpec::load("vgg11bn").unwrap();
    spec.input = [1, 32, 32];
    spec.width = 0.0625;
    spec.num_classes = 3;
    let graph = spec.build().unwrap();
    let run = || {
        let mut t = GpuTrainer::new(
            ctx.clone(),
            graph.clone(),
            Weights::init(&graph, 6),
            config(0.05),
        )
        .unwrap();
        for s in 0..3 {
            let x = rand_t(&[4, 1, 32, 32], s);
            t.train_step(&x, &[0, 1, 2, 0]).unwrap();
        }
        t.weights().unwrap()
    };
    let (a, b) = (run(), run());
    for (k, v) in a.iter() {
        assert_eq!(
            v.data(),
            b.require(k).unwrap().data(),
            "{k} differs between runs"
        );
    }
}

/// The trainer's buffers come from the lifetime planner: a training step (activations kept
/// for the backward, gradients, kernels' scratch) needs fewer bytes and buffers than one
/// buffer per value, and never less than its largest value. The CPU trainer plans nothing.
#[test]
fn a_training_step_uses_planned_memory() {
    let graph = tiny_resnet("resnet50-dsc-flgc", Some(2));
    let cpu_t = Trainer::new(graph.clone(), Weights::init(&graph, 3), config(0.01)).unwrap();
    assert_eq!(cpu_t.memory_plan(4).unwrap(), None);
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let gpu_t = GpuTrainer::new(
        ctx.clone(),
        graph.clone(),
        Weights::init(&graph, 3),
        config(0.01),
    )
    .unwrap();
    let m = gpu_t
        .memory_plan(4)
        .unwrap()
        .expect("a GPU trainer plans its memory");
    assert!(m.values > 0 && m.slots < m.values, "{m:?}");
    assert!(m.planned_bytes < m.naive_bytes, "{m:?}");
    assert!(m.planned_bytes >= m.largest_bytes, "{m:?}");
    // A larger batch needs more.
    let m8 = gpu_t.memory_plan(8).unwrap().unwrap();
    assert!(m8.planned_bytes > m.planned_bytes, "{m8:?} vs {m:?}");
}

/// The convolution gradients can be forced per layer like the forward: a grouped 3×3 conv
/// made to take the reducing weight-gradient entry and the gather input-gradient entry (not
/// the adapter's defaults on lavapipe) runs them, and its steps still equal the CPU's; a
/// forced gradient kernel that cannot run the layer is an error naming it.
#[test]
fn forced_backward_kernels_run_and_match_the_cpu() {
    use gconv::gpu::choice::{self, KernelChoice};
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let mut b = GraphBuilder::new("forced grads", [4, 6, 6]);
    let x = b.input();
    let c1 = b
        .push("conv1", Op::Conv2d(Conv2dSpec::square(4, 6, 3, 1, 1)), &[x])
        .unwrap();
    let r1 = b.push("relu1", Op::relu(), &[c1]).unwrap();
    let c2 = b
        .push(
            "conv2",
            Op::Conv2d(Conv2dSpec::square(6, 4, 3, 1, 1).groups(2).bias(true)),
            &[r1],
        )
        .unwrap();
    let f = b
        .push("flat", Op::Flatten(gconv::ops::Flatten), &[c2])
        .unwrap();
    let fc = gconv::ops::Linear {
        in_features: 4 * 36,
        out_features: 3,
        bias: true,
    };
    let y = b.push("fc", Op::Linear(fc), &[f]).unwrap();
    let graph = b.finish(y);
    let weights = Weights::init(&graph, 5);
    let forced = KernelChoice::new()
        .input_grad("conv2", choice::input_grad_named("grad_input").unwrap())
        .weight_grad("conv2", choice::weight_grad_named("grad_weight").unwrap());
    let mut cpu_t = Trainer::new(graph.clone(), weights.clone(), config(0.05)).unwrap();
    let mut gpu_t = GpuTrainer::new(ctx.clone(), graph.clone(), weights.clone(), config(0.05))
        .unwrap()
        .with_choice(forced);
    let xs = rand_t(&[2, 4, 6, 6], 9);
    let labels = [0, 2];
    let profile = gpu_t.profile_step(&xs, &labels).unwrap();
    let ran = |entry: &str| {
        profile.iter().any(|(l, _)| {
            l.starts_with("conv2") && l.contains(&format!("[conv_backward::{entry}]"))
        })
    };
    assert!(ran("grad_weight"), "{profile:?}");
    assert!(ran("grad_input"), "{profile:?}");
    // profile_step ran two steps (a normal one, then the profiled one): so does the CPU.
    for _ in 0..2 {
        cpu_t.train_step(&xs, &labels).unwrap();
    }
    compare_weights(
        "forced grads",
        &gpu_t.weights().unwrap(),
        cpu_t.weights(),
        TRAIN_TOL,
    );
    // A 1×1-only entry on a 3×3 layer is refused, naming the layer.
    let bad = KernelChoice::new()
        .input_grad("conv2", choice::input_grad_named("grad_input_pw4").unwrap());
    let mut t = GpuTrainer::new(ctx.clone(), graph, weights, config(0.05))
        .unwrap()
        .with_choice(bad);
    let e = t.train_step(&xs, &labels).unwrap_err().to_string();
    assert!(e.contains("conv2") && e.contains("cannot run"), "{e}");
}
