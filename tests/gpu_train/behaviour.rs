//! FLGC groups moving, dropout, bad input, repeatability, planned memory and forced backward
//! kernels of the GPU trainer.

use super::*;

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
