//! Thread safety of the embeddable API.
//!
//! - One [`Model`] is not shared by reference: [`Model::run`] takes `&mut self` (it reuses the
//!   buffers and dispatches prepared for the last batch size), so two threads cannot run it at
//!   once; the compiler says so. `Model` is `Send` (and `Sync`, for its read-only accessors), so
//!   it can be moved to a worker thread or shared behind a `Mutex`: then every thread gets the
//!   outputs a single thread gets.
//! - One [`Runtime`] (`Send + Sync`) is shared by reference: several of its models, loaded and
//!   run on several threads at once (one GPU device, queue and pipeline cache), give the same
//!   outputs, bit for bit, as the same runs one after the other.
//!
//! Covered on the CPU reference path and, when there is an adapter, on the GPU.

mod common;

use gconv::gpu::GpuContext;
use gconv::zoo::{Arch, ModelSpec, StemKind};
use gconv::{Device, LoadOptions, Model, Runtime, Tensor};
use std::sync::{Arc, Mutex};
use std::thread;

/// Compile-time: what may cross threads, and that `run` needs exclusive access.
#[allow(dead_code)]
fn static_thread_safety() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Runtime>();
    send_sync::<Model>();
    send_sync::<GpuContext>();
    send_sync::<gconv::gpu::GpuModel>();
    // Changing `run` to `&self` (interior mutability) must revisit this file's contract.
    let _: fn(&mut Model, &Tensor) -> gconv::Result<Tensor> = Model::run;
}

fn spec(name: &str) -> ModelSpec {
    let mut s = ModelSpec::load(name).unwrap();
    s.num_classes = 10;
    match &mut s.arch {
        Arch::Resnet { layers, stem, .. } => {
            // The README's small model: ResNet-50-DSC, width 1/8, one block per stage, 1×28×28.
            *layers = [1, 1, 1, 1];
            *stem = StemKind::Small;
            s.input = [1, 28, 28];
            s.width = 0.125;
        }
        Arch::Vgg { classifier, .. } => {
            *classifier = vec![32];
            s.input = [3, 32, 32];
            s.width = 0.125;
        }
        _ => {
            s.input = [3, 32, 32];
            s.width = 0.25;
        }
    }
    s
}

const MODELS: [&str; 3] = ["resnet50-dsc-sgc", "vgg11bn", "mobilenetv2"];

/// Input `k` of a model: batch 1 or 3 (so a shared model switches plans between runs).
fn input(m: &Model, k: usize) -> Tensor {
    let [c, h, w] = m.graph().input_shape();
    let b = 1 + 2 * (k % 2);
    Tensor::from_fn(&[b, c, h, w], |i| {
        (((i + 131 * k) as u32).wrapping_mul(2_654_435_761) % 2000) as f32 / 1000.0 - 1.0
    })
}

fn runtimes() -> Vec<Runtime> {
    let mut v = vec![Runtime::new(Device::Cpu).unwrap()];
    if let Some(ctx) = common::gpu() {
        v.push(Runtime::with_context(ctx.clone()));
    }
    v
}

fn load(rt: &Runtime, name: &str) -> Model {
    let opts = LoadOptions {
        seed: 7,
        ..LoadOptions::default()
    };
    rt.load(&spec(name), None, &opts).unwrap()
}

fn assert_same(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    let differ = got
        .data()
        .iter()
        .zip(want.data())
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(
        differ,
        0,
        "{what}: {differ} of {} values differ",
        got.data().len()
    );
}

#[test]
fn one_model_behind_a_mutex_gives_every_thread_the_single_thread_outputs() {
    let _guard = common::serial();
    const THREADS: usize = 4;
    const RUNS: usize = 4;
    for rt in runtimes() {
        let mut model = load(&rt, "resnet50-dsc-sgc");
        let inputs: Vec<Tensor> = (0..THREADS * RUNS).map(|k| input(&model, k)).collect();
        let want: Vec<Tensor> = inputs.iter().map(|x| model.run(x).unwrap()).collect();
        let shared = Arc::new(Mutex::new(model));
        let got: Vec<(usize, Tensor)> = thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (shared, inputs) = (shared.clone(), &inputs);
                    s.spawn(move || {
                        (0..RUNS)
                            .map(|r| {
                                let k = r * THREADS + t;
                                let y = shared.lock().unwrap().run(&inputs[k]).unwrap();
                                (k, y)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(got.len(), THREADS * RUNS);
        for (k, y) in &got {
            assert_same(&format!("{}: input {k}", rt.describe()), y, &want[*k]);
        }
    }
}

#[test]
fn several_models_of_one_runtime_on_several_threads_match_sequential_runs() {
    let _guard = common::serial();
    const RUNS: usize = 3;
    for rt in runtimes() {
        // Sequential reference: each model loaded and run alone.
        let want: Vec<Vec<Tensor>> = MODELS
            .iter()
            .map(|name| {
                let mut m = load(&rt, name);
                (0..RUNS).map(|k| m.run(&input(&m, k)).unwrap()).collect()
            })
            .collect();
        // The same models loaded and run at once, one thread each, plus a second copy of the
        // first model on a fourth thread (same pipelines, its own buffers).
        let names: Vec<&str> = MODELS.iter().copied().chain([MODELS[0]]).collect();
        let got: Vec<Vec<Tensor>> = thread::scope(|s| {
            let rt = &rt;
            let handles: Vec<_> = names
                .iter()
                .map(|name| {
                    s.spawn(move || {
                        let mut m = load(rt, name);
                        (0..RUNS)
                            .map(|k| m.run(&input(&m, k)).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, outs) in got.iter().enumerate() {
            let j = i % MODELS.len();
            for (k, y) in outs.iter().enumerate() {
                let what = format!("{}: {} run {k}", rt.describe(), names[i]);
                assert_same(&what, y, &want[j][k]);
            }
        }
    }
}
