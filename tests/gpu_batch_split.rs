//! A batch whose activations exceed what the adapter can bind runs in chunks: `GpuModel::run`
//! splits it and gives the CPU reference's output for the whole batch (an activation that
//! does not fit even at batch 1 stays an error naming the layer); timed passes without
//! read-back and `gpu::tune::tune_graph` do the same, so tuning at such a batch times the
//! layers as the model runs them instead of failing.

mod common;

use gconv::cpu;
use gconv::gpu::tune::{self, adapter_key, TuneCache, TuneOptions};
use gconv::gpu::GpuModel;
use gconv::graph::{Conv2dSpec, GraphBuilder, Op, Pool2dSpec};
use gconv::testing::{assert_close, Tolerance};
use gconv::{Error, Tensor, Weights};

#[test]
fn a_batch_too_large_for_one_binding_runs_in_chunks() {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    // 8 × 1024² floats = 32 MiB per sample: a few samples exceed lavapipe's 128 MiB binding.
    let [c, h, w] = [8, 1024, 1024];
    let per_sample = (4 * c * h * w) as u64;
    let binding = ctx.limits.max_storage_buffer_binding_size;
    let batch = (binding / per_sample + 1).clamp(2, 9) as usize;
    let mut b = GraphBuilder::new("wide", [c, h, w]);
    let x = b.input();
    let r = b.push("relu", Op::relu(), &[x]).unwrap();
    let p = b
        .push("pool", Op::max_pool(Pool2dSpec::square(2, 2, 0)), &[r])
        .unwrap();
    let graph = b.finish(p);
    let weights = Weights::init(&graph, 1);
    let input = Tensor::from_fn(&[batch, c, h, w], |i| {
        ((i * 7919) % 1000) as f32 / 500.0 - 1.0
    });
    let want = cpu::run_graph(&graph, &weights, &input).unwrap();
    let mut model = GpuModel::new(ctx.clone(), graph, &weights).unwrap();
    // Timed passes (no read-back: the benchmark's and the autotuner's) run in chunks too.
    model.run_no_readback(&input).unwrap();
    let got = model.run(&input).unwrap();
    assert_eq!(got.shape(), want.shape());
    assert_close("chunked batch", got.data(), want.data(), Tolerance::F32_OP);
    // Later passes of the batch go straight to its chunks: no lowering, no new buffers (a
    // shorter last chunk is padded, so it runs the same program).
    let lowered = model.lowerings();
    for _ in 0..3 {
        model.run_no_readback(&input).unwrap();
    }
    let again = model.run(&input).unwrap();
    assert_eq!(again.data(), got.data());
    assert_eq!(
        model.lowerings(),
        lowered,
        "passes of a chunked batch lowered the graph"
    );
    if per_sample * batch as u64 <= binding {
        eprintln!("note: this adapter binds {binding} bytes, the batch fitted whole");
    }
}

#[test]
fn an_activation_too_large_at_batch_1_is_still_an_error() {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let binding = ctx.limits.max_storage_buffer_binding_size;
    let side = ((binding / 4 / 2) as f64).sqrt() as usize + 16; // 2 channels of side² > binding
    if (2 * side * side) as u64 > gconv::limits::MAX_TENSOR_ELEMENTS.value {
        return; // a real GPU binds more than gconv lets a tensor hold
    }
    let mut b = GraphBuilder::new("too wide", [2, side, side]);
    let x = b.input();
    let r = b.push("relu", Op::relu(), &[x]).unwrap();
    let graph = b.finish(r);
    let weights = Weights::init(&graph, 1);
    let input = Tensor::new(vec![2, 2, side, side], vec![0.5; 4 * side * side]).unwrap();
    let mut model = GpuModel::new(ctx.clone(), graph, &weights).unwrap();
    match model.run(&input) {
        Err(Error::AdapterLimit { limit, needed, .. }) => assert!(needed > limit),
        other => panic!("expected an adapter-limit error, got {other:?}"),
    }
}

/// `tune_graph` at a batch whose conv output exceeds one binding times the layer in chunks
/// (lavapipe's 128 MiB: `gconv tune vgg13bn --batch 32` at 224² used to stop at its first
/// layer) and caches its choice.
#[test]
fn tuning_a_batch_too_large_for_one_binding_times_it_in_chunks() {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    // 1×1 conv 1 → 8 channels at 1024²: 32 MiB of output per sample, few MACs.
    let [h, w] = [1024, 1024];
    let per_sample = (4 * 8 * h * w) as u64;
    let binding = ctx.limits.max_storage_buffer_binding_size;
    let batch = (binding / per_sample + 1).clamp(2, 9) as usize;
    let mut b = GraphBuilder::new("wide conv", [1, h, w]);
    let x = b.input();
    let y = b
        .push("conv", Op::Conv2d(Conv2dSpec::square(1, 8, 1, 1, 0)), &[x])
        .unwrap();
    let graph = b.finish(y);
    let dir = std::env::temp_dir().join(format!("gconv-split-tune-{}", std::process::id()));
    let mut cache = TuneCache::empty(dir.join("kernels.json"));
    let opts = TuneOptions {
        batch,
        repeats: 1,
        ..Default::default()
    };
    let rows = tune::tune_graph(ctx, &graph, &mut cache, &opts, &mut |_, _, _| {}).unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].candidates[0].median_s.is_some(), "{:?}", rows[0]);
    let key = adapter_key(&ctx.info);
    assert_eq!(
        cache.get(&key, &rows[0].key).unwrap().kernel,
        rows[0].chosen
    );
    if per_sample * batch as u64 <= binding {
        eprintln!("note: this adapter binds {binding} bytes, the batch fitted whole");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
