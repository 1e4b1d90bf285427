//! Memory soak: many GPU inferences and training steps in one process, watching for growth.
//!
//! The README's small model (ResNet-50-DSC, width 1/8, one block per stage, small stem,
//! 1×28×28): `INFER` inferences at batch `IB` with a batch-8 run every 500th (so the executor
//! re-plans its buffers back and forth; never just before a sample, so every sample sees the
//! batch-`IB` plan), then `TRAIN` GPU training steps at batch `TB`.
//! Every tenth of each phase it prints the process's RSS (`/proc/self/statm`) and wgpu's
//! allocator report (live device allocations and reserved blocks, when the backend gives one).
//! Verdict: after warm-up (the first tenth of each phase) RSS and allocated device memory grow
//! by at most 5 %; the exit status is 1 otherwise.
//!
//! `cargo run --release --example soak -- [INFER=10000] [TRAIN=1000] [TB=4] [IB=1]`

use gconv::gpu::GpuContext;
use gconv::train::{GpuTrainer, Train, TrainConfig};
use gconv::zoo::{Arch, ModelSpec, StemKind};
use gconv::{LoadOptions, Runtime, Tensor, Weights};
use std::sync::Arc;
use std::time::Instant;

/// One row of the table.
struct Sample {
    phase: &'static str,
    done: usize,
    rss: u64,
    allocated: Option<u64>,
    reserved: Option<u64>,
    secs: f64,
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn sample(ctx: &GpuContext, phase: &'static str, done: usize, t0: Instant) -> Sample {
    let report = ctx.device.generate_allocator_report();
    Sample {
        phase,
        done,
        rss: rss_bytes(),
        allocated: report.as_ref().map(|r| r.total_allocated_bytes),
        reserved: report.as_ref().map(|r| r.total_reserved_bytes),
        secs: t0.elapsed().as_secs_f64(),
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn print(s: &Sample) {
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |b| format!("{:.2}", mib(b)));
    println!(
        "| {:<9} | {:>6} | {:>8.1} | {:>13} | {:>12} | {:>8.1} |",
        s.phase,
        s.done,
        mib(s.rss),
        opt(s.allocated),
        opt(s.reserved),
        s.secs
    );
}

/// Growth of `f` from the warm-up sample (the second of the phase) to the last, in percent.
fn growth(rows: &[Sample], f: impl Fn(&Sample) -> Option<u64>) -> Option<f64> {
    let (a, b) = (f(rows.get(1)?)?, f(rows.last()?)?);
    Some((b as f64 - a as f64) / (a.max(1) as f64) * 100.0)
}

fn main() -> gconv::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("counts are integers"))
        .collect();
    let infer = args.first().copied().unwrap_or(10_000).max(10);
    let train = args.get(1).copied().unwrap_or(1_000).max(10);
    let tb = args.get(2).copied().unwrap_or(4).max(1);
    let ib = args.get(3).copied().unwrap_or(1).max(1);

    let mut spec = ModelSpec::load("resnet50-dsc")?;
    spec.input = [1, 28, 28];
    spec.num_classes = 10;
    spec.width = 0.125;
    if let Arch::Resnet { stem, layers, .. } = &mut spec.arch {
        *stem = StemKind::Small;
        *layers = [1, 1, 1, 1];
    }
    let ctx = Arc::new(GpuContext::new()?);
    println!("{}", ctx.describe());
    println!(
        "model: {} width 1/8, layers 1,1,1,1, small stem, 1×28×28",
        spec.name
    );
    println!("| phase     |   done | RSS, MiB | wgpu alloc, MiB | reserved, MiB | time, s |");
    println!("|---|---|---|---|---|---|");
    let t0 = Instant::now();
    let mut phases: Vec<Vec<Sample>> = Vec::new();

    // Inference.
    let rt = Runtime::with_context(ctx.clone());
    let mut model = rt.load(&spec, None, &LoadOptions::default())?;
    let x1 = Tensor::from_fn(&[ib, 1, 28, 28], |i| ((i % 97) as f32 / 97.0) - 0.5);
    let x8 = Tensor::from_fn(&[8, 1, 28, 28], |i| ((i % 89) as f32 / 89.0) - 0.5);
    let want1 = model.run(&x1)?;
    let mut rows = vec![sample(&ctx, "inference", 0, t0)];
    print(&rows[0]);
    let ti = Instant::now();
    for i in 1..=infer {
        if i % 500 == 250 {
            model.run(&x8)?;
        } else {
            let y = model.run(&x1)?;
            if i % 1000 == 1 && y.data() != want1.data() {
                return Err(gconv::Error::Gpu(format!("run {i}: the output changed")));
            }
        }
        if i % (infer / 10) == 0 {
            rows.push(sample(&ctx, "inference", i, t0));
            print(rows.last().unwrap());
        }
    }
    let infer_secs = ti.elapsed().as_secs_f64();
    phases.push(rows);
    drop(model);

    // Training.
    let graph = spec.build()?;
    let w = Weights::init(&graph, 0);
    let mut t = GpuTrainer::new(ctx.clone(), graph, w, TrainConfig::default())?;
    let x = Tensor::from_fn(&[tb, 1, 28, 28], |i| ((i % 97) as f32 / 97.0) - 0.5);
    let labels: Vec<usize> = (0..tb).map(|i| i % 10).collect();
    let mut rows = vec![sample(&ctx, "training", 0, t0)];
    print(&rows[0]);
    let tt = Instant::now();
    for i in 1..=train {
        let s = t.train_step(&x, &labels)?;
        if !s.loss.is_finite() {
            return Err(gconv::Error::Gpu(format!("step {i}: loss {}", s.loss)));
        }
        if i % (train / 10) == 0 {
            rows.push(sample(&ctx, "training", i, t0));
            print(rows.last().unwrap());
        }
    }
    let train_secs = tt.elapsed().as_secs_f64();
    phases.push(rows);

    println!(
        "\n{infer} inferences (batch {ib}) in {infer_secs:.1} s ({:.2} ms each), {train} training steps at batch {tb} in {train_secs:.1} s ({:.1} ms each)",
        infer_secs * 1e3 / infer as f64,
        train_secs * 1e3 / train as f64
    );
    let mut ok = true;
    for rows in &phases {
        let rss = growth(rows, |s| Some(s.rss)).unwrap_or(f64::NAN);
        let dev = growth(rows, |s| s.allocated);
        let pass = rss <= 5.0 && dev.is_none_or(|d| d <= 5.0);
        ok &= pass;
        println!(
            "{}: after warm-up RSS {rss:+.2} %, wgpu allocations {} → {}",
            rows[0].phase,
            dev.map_or("not reported".into(), |d| format!("{d:+.2} %")),
            if pass {
                "PASS (≤ 5 %)"
            } else {
                "FAIL (> 5 %)"
            }
        );
    }
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
