//! Where a GPU training step's time goes: builds a width-scaled ResNet-DSC (FLGC, G=4) for
//! 1×28×28 inputs, runs one profiled step on a random batch and prints the slowest dispatches
//! and the time per kernel family.
//!
//! `cargo run --release --example profile_train_step -- [batch] [conv: dense|sgc|flgc]`

use gconv::gpu::GpuContext;
use gconv::train::Train;
use gconv::train::{GpuTrainer, TrainConfig};
use gconv::zoo::{Arch, ConvKind, ModelSpec, StemKind};
use gconv::{Tensor, Weights};
use std::collections::BTreeMap;
use std::sync::Arc;

fn main() -> gconv::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let batch: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(64);
    let kind = match args.get(2).map(String::as_str) {
        Some("dense") => ConvKind::Dense,
        Some("sgc") => ConvKind::Sgc,
        _ => ConvKind::Flgc,
    };
    let mut spec = ModelSpec::load("resnet50-dsc")?;
    spec.input = [1, 28, 28];
    spec.num_classes = 10;
    spec.width = 0.25;
    if let Arch::Resnet { stem, layers, .. } = &mut spec.arch {
        *stem = StemKind::Small;
        *layers = [1, 1, 1, 1];
    }
    let g = if kind == ConvKind::Dense { 1 } else { 4 };
    let graph = spec.with_groups(g, Some(kind))?.build()?;
    let ctx = Arc::new(GpuContext::new()?);
    println!("{}", ctx.describe());
    let w = Weights::init(&graph, 0);
    let mut t = GpuTrainer::new(ctx, graph, w, TrainConfig::default())?;
    let x = Tensor::from_fn(&[batch, 1, 28, 28], |i| ((i % 97) as f32 / 97.0) - 0.5);
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    let t0 = std::time::Instant::now();
    t.train_step(&x, &labels)?;
    t.train_step(&x, &labels)?;
    let warm = std::time::Instant::now();
    t.train_step(&x, &labels)?;
    println!(
        "one step (batch {batch}): {:.1} ms ({:.1} img/s); first two incl. set-up {:.1} ms",
        warm.elapsed().as_secs_f64() * 1e3,
        batch as f64 / warm.elapsed().as_secs_f64(),
        (warm - t0).as_secs_f64() * 1e3
    );
    let prof = t.profile_step(&x, &labels)?;
    let total: f64 = prof.iter().map(|p| p.1).sum();
    let mut fam: BTreeMap<String, f64> = BTreeMap::new();
    for (l, s) in &prof {
        let k = l
            .rsplit('[')
            .next()
            .unwrap_or(l)
            .trim_end_matches(']')
            .to_string();
        *fam.entry(k).or_default() += s;
    }
    let mut fam: Vec<_> = fam.into_iter().collect();
    fam.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "profiled step: {:.1} ms over {} dispatches",
        total * 1e3,
        prof.len()
    );
    for (k, s) in fam.iter().take(15) {
        println!("  {:>8.1} ms  {k}", s * 1e3);
    }
    let mut p = prof.clone();
    p.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("slowest dispatches:");
    for (l, s) in p.iter().take(12) {
        println!("  {:>8.1} ms  {l}", s * 1e3);
    }
    Ok(())
}
