//! Convolution backward kernels on this adapter, old against new, interleaved in one process
//! (medians): every conv layer of the README's Fashion-MNIST model (ResNet-50-DSC width 1/8,
//! `--layers 1,1,1,1`, small stem, 1×28×28, batch 32; dense and SGC G=4), a dense 3×3
//! 256-channel 28² layer, then whole training steps (GPU with the old kernels, GPU with the
//! new ones, the CPU reference path).
//!
//! `cargo run --release --example grad_lab -- [rounds] [layers|steps|all]`

use gconv::gpu::choice::Adapter;
use gconv::gpu::family::{ConvInputGrad, ConvWeightGrad};
use gconv::gpu::geometry::ConvShape;
use gconv::gpu::kernels::conv_backward as cb;
use gconv::gpu::kernels::conv_backward::{DwEntry, DxEntry};
use gconv::gpu::kernels::conv_grad_fast as fast;
use gconv::gpu::launch::bind_all;
use gconv::gpu::{run_dispatches, Arg, Call, GpuContext};
use gconv::graph::{Conv2dSpec, Graph, Op};
use gconv::train::{GpuTrainer, Train, TrainConfig, Trainer};
use gconv::zoo::{Arch, ConvKind, ModelSpec, StemKind};
use gconv::{Tensor, Weights};
use std::sync::Arc;
use std::time::Instant;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The README's Fashion-MNIST model with `kind` convs at `g` groups.
fn fmnist(kind: ConvKind, g: usize) -> gconv::Result<Graph> {
    let mut spec = ModelSpec::load("resnet50-dsc")?;
    spec.input = [1, 28, 28];
    spec.num_classes = 10;
    spec.width = 0.125;
    if let Arch::Resnet { stem, layers, .. } = &mut spec.arch {
        *stem = StemKind::Small;
        *layers = [1, 1, 1, 1];
    }
    spec.with_groups(g, Some(kind))?.build()
}

/// A conv layer to time.
#[derive(Clone, Debug)]
struct Layer {
    name: String,
    spec: Conv2dSpec,
    batch: usize,
    hw: [usize; 2],
}

impl Layer {
    fn shape(&self) -> ConvShape<'_> {
        ConvShape {
            spec: &self.spec,
            batch: self.batch,
            in_hw: self.hw,
        }
    }
    fn macs(&self) -> f64 {
        let [oh, ow] = self.spec.out_hw(self.hw[0], self.hw[1]).unwrap_or([0, 0]);
        let w: usize = self.spec.weight_shape().iter().product();
        (self.batch * oh * ow * w) as f64
    }
}

fn conv_layers(graph: &Graph, batch: usize, out: &mut Vec<Layer>) {
    for n in &graph.nodes {
        let Op::Conv2d(spec) = &n.op else { continue };
        let s = &graph.nodes[n.inputs[0]].shape;
        let l = Layer {
            name: n.name.clone(),
            spec: spec.clone(),
            batch,
            hw: [s[1], s[2]],
        };
        if !out
            .iter()
            .any(|o| o.spec == l.spec && o.hw == l.hw && o.batch == l.batch)
        {
            out.push(l);
        }
    }
}

struct Buffers {
    x: Arg,
    w: Arg,
    dy: Arg,
    dx: Arg,
    dw: Arg,
}

fn buffers(ctx: &GpuContext, l: &Layer) -> gconv::Result<Buffers> {
    let [oh, ow] = l.spec.out_hw(l.hw[0], l.hw[1]).unwrap_or([1, 1]);
    let nx = l.batch * l.spec.in_channels * l.hw[0] * l.hw[1];
    let nw: usize = l.spec.weight_shape().iter().product();
    let ny = l.batch * l.spec.out_channels * oh * ow;
    let f = |n: usize, k: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 + k) % 101) as f32 / 101.0 - 0.5)
            .collect()
    };
    Ok(Buffers {
        x: Arg::whole(&ctx.upload("x", &f(nx, 1))?),
        w: Arg::whole(&ctx.upload("w", &f(nw, 2))?),
        dy: Arg::whole(&ctx.upload("dy", &f(ny, 3))?),
        dx: Arg::whole(&ctx.storage_buffer("dx", (nx * 4) as u64)?),
        dw: Arg::whole(&ctx.storage_buffer("dw", (nw * 4) as u64)?),
    })
}

/// One way of computing a layer's gradient: a name and its calls.
type Variant = (String, Vec<Call>);

fn variants(ctx: &GpuContext, l: &Layer, b: &Buffers) -> gconv::Result<Vec<Variant>> {
    let s = l.shape();
    let spec = &l.spec;
    let mut v = Vec::new();
    // The conv_backward entries a list takes where conv_grad_fast does not.
    let a = Adapter::of(ctx);
    let ik = [DxEntry::Pointwise4, DxEntry::Gather]
        .into_iter()
        .find(|&e| cb::Dx(e).prefers(spec, &a))
        .unwrap_or(DxEntry::Gather);
    v.push((
        format!("dx old {ik:?}"),
        vec![cb::grad_input(
            ctx,
            &l.name,
            (ik, &s, false),
            &b.dy,
            &b.w,
            &b.dx,
        )?],
    ));
    let wk = [DwEntry::Pointwise4, DwEntry::Serial, DwEntry::Reduce]
        .into_iter()
        .find(|&e| cb::Dw(e).prefers(spec, &a))
        .unwrap_or(DwEntry::Reduce);
    v.push((
        format!("dW old {wk:?}"),
        vec![cb::grad_weight(ctx, &l.name, (wk, &s), &b.x, &b.dy, &b.dw)?],
    ));
    let mut scratch =
        |label: &str, n: usize| Ok(Arg::whole(&ctx.storage_buffer(label, (n * 4) as u64)?));
    v.push((
        "dx new".to_string(),
        fast::grad_input(
            ctx,
            &l.name,
            (&s, false),
            (&b.dy, &b.w, &b.dx),
            &mut scratch,
        )?,
    ));
    v.push((
        "dW new".to_string(),
        fast::grad_weight(ctx, &l.name, &s, (&b.x, &b.dy, &b.dw), &mut scratch)?,
    ));
    Ok(v)
}

fn time_layers(ctx: &GpuContext, layers: &[Layer], rounds: usize) -> gconv::Result<()> {
    println!(
        "{:<28} {:>26} {:>9} {:>10} {:>8}",
        "layer", "variant", "ms", "GFLOP/s", "MMACs"
    );
    for l in layers {
        let b = buffers(ctx, l)?;
        let vars = variants(ctx, l, &b)?;
        let bound: Vec<_> = vars
            .iter()
            .map(|(_, c)| bind_all(ctx, c))
            .collect::<gconv::Result<_>>()?;
        // Warm-up (pipeline compilation) once each.
        for d in &bound {
            run_dispatches(ctx, d)?;
        }
        let mut times = vec![Vec::new(); vars.len()];
        for _ in 0..rounds {
            for (k, d) in bound.iter().enumerate() {
                let t0 = Instant::now();
                run_dispatches(ctx, d)?;
                times[k].push(t0.elapsed().as_secs_f64());
            }
        }
        let label = format!(
            "{} {}x{} k{} s{} g{} {}²",
            l.name,
            l.spec.in_channels,
            l.spec.out_channels,
            l.spec.kernel[0],
            l.spec.stride[0],
            l.spec.groups,
            l.hw[0]
        );
        if std::env::var("GRAD_LAB_DETAIL").is_ok() {
            for (name, calls) in &vars {
                for c in calls {
                    let d = bind_all(ctx, std::slice::from_ref(c))?;
                    let mut t = Vec::new();
                    for _ in 0..rounds {
                        let t0 = Instant::now();
                        run_dispatches(ctx, &d)?;
                        t.push(t0.elapsed().as_secs_f64());
                    }
                    println!(
                        "    {name:>12} {:>9.3} ms  {}",
                        median(&mut t) * 1e3,
                        c.label
                    );
                }
            }
        }
        for ((name, _), t) in vars.iter().zip(&mut times) {
            let m = median(t);
            println!(
                "{:<28} {:>26} {:>9.3} {:>10.2} {:>8.2}",
                label,
                name,
                m * 1e3,
                2.0 * l.macs() / m / 1e9,
                l.macs() / 1e6
            );
        }
    }
    Ok(())
}

fn time_steps(ctx: &Arc<GpuContext>, rounds: usize) -> gconv::Result<()> {
    let batch = 32;
    let x = Tensor::from_fn(&[batch, 1, 28, 28], |i| ((i % 97) as f32 / 97.0) - 0.5);
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    for (kind, g) in [
        (ConvKind::Dense, 1),
        (ConvKind::Sgc, 4),
        (ConvKind::Flgc, 4),
    ] {
        let graph = fmnist(kind, g)?;
        let w = Weights::init(&graph, 0);
        let mut cpu = Trainer::new(graph.clone(), w.clone(), TrainConfig::default())?;
        // Plans are built (and kernels chosen) at the first step of a batch size.
        std::env::set_var("GCONV_GRAD_KERNELS", "old");
        let mut old = GpuTrainer::new(
            ctx.clone(),
            graph.clone(),
            w.clone(),
            TrainConfig::default(),
        )?;
        old.train_step(&x, &labels)?;
        std::env::remove_var("GCONV_GRAD_KERNELS");
        let mut new = GpuTrainer::new(ctx.clone(), graph, w, TrainConfig::default())?;
        new.train_step(&x, &labels)?;
        cpu.train_step(&x, &labels)?;
        let mut t = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..rounds {
            let runs: [&mut dyn Train; 3] = [&mut old, &mut new, &mut cpu];
            for (k, r) in runs.into_iter().enumerate() {
                let t0 = Instant::now();
                r.train_step(&x, &labels)?;
                t[k].push(t0.elapsed().as_secs_f64());
            }
        }
        for (name, v) in ["GPU old kernels", "GPU new kernels", "CPU reference"]
            .iter()
            .zip(&mut t)
        {
            let m = median(v);
            println!(
                "step {kind:?} G={g} batch {batch}: {name:<16} {:>8.1} ms {:>7.1} img/s",
                m * 1e3,
                batch as f64 / m
            );
        }
    }
    Ok(())
}

/// Where a GPU step's time goes with the chosen kernels: per kernel family and the slowest
/// dispatches (one submit per dispatch, so slower than a real step).
fn profile(ctx: &Arc<GpuContext>, kind: ConvKind, g: usize) -> gconv::Result<()> {
    let batch = 32;
    let x = Tensor::from_fn(&[batch, 1, 28, 28], |i| ((i % 97) as f32 / 97.0) - 0.5);
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    let graph = fmnist(kind, g)?;
    let w = Weights::init(&graph, 0);
    let mut t = GpuTrainer::new(ctx.clone(), graph, w, TrainConfig::default())?;
    let prof = t.profile_step(&x, &labels)?;
    let mut steps = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        t.train_step(&x, &labels)?;
        steps.push(t0.elapsed().as_secs_f64());
    }
    println!(
        "whole step (median of 3): {:.1} ms",
        median(&mut steps) * 1e3
    );
    let total: f64 = prof.iter().map(|p| p.1).sum();
    let mut fam: std::collections::BTreeMap<String, f64> = Default::default();
    for (l, s) in &prof {
        let k = l.rsplit('[').next().unwrap_or(l).trim_end_matches(']');
        let k = k.split("::").next().unwrap_or(k).to_string();
        *fam.entry(k).or_default() += s;
    }
    let mut fam: Vec<_> = fam.into_iter().collect();
    fam.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "profile {kind:?} G={g}: {:.1} ms over {} dispatches",
        total * 1e3,
        prof.len()
    );
    for (k, s) in &fam {
        println!("  {:>8.1} ms  {k}", s * 1e3);
    }
    let mut p = prof.clone();
    p.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (l, s) in p.iter().take(15) {
        println!("  {:>8.2} ms  {l}", s * 1e3);
    }
    if let Ok(f) = std::env::var("GRAD_LAB_FILTER") {
        for (l, s) in p.iter().filter(|(l, _)| l.contains(&f)) {
            println!("  {:>8.2} ms  {l}", s * 1e3);
        }
    }
    Ok(())
}

fn main() -> gconv::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let what = args.get(2).map(String::as_str).unwrap_or("all");
    let ctx = Arc::new(GpuContext::new()?);
    println!("adapter: {}", ctx.describe());
    if what == "layers" || what == "all" {
        let mut layers = Vec::new();
        conv_layers(&fmnist(ConvKind::Dense, 1)?, 32, &mut layers);
        conv_layers(&fmnist(ConvKind::Sgc, 4)?, 32, &mut layers);
        if let Ok(f) = std::env::var("GRAD_LAB_FILTER") {
            layers.retain(|l| format!("{} {:?}", l.name, l.spec).contains(&f));
        }
        layers.push(Layer {
            name: "dense3x3".into(),
            spec: Conv2dSpec::square(256, 256, 3, 1, 1),
            batch: 1,
            hw: [28, 28],
        });
        time_layers(&ctx, &layers, rounds)?;
    }
    if what == "steps" || what == "all" {
        time_steps(&ctx, rounds)?;
    }
    if what == "profile" {
        profile(&ctx, ConvKind::Dense, 1)?;
        profile(&ctx, ConvKind::Sgc, 4)?;
    }
    Ok(())
}
