//! The benchmark suites behind `gconv bench`: what grouped convolution buys on this device.
//!
//! - **paper1** (Gong et al., Fig. 10): VGG-BN baseline and schemes A–E — parameters, MACs,
//!   latency at batch 1 and at a larger batch, throughput, and time vs MAC reduction.
//! - **paper2** (Wang et al., Fig. 3): per-block time of ResNet-50, ResNet-50-DSC and its
//!   SGC/FLGC variants (FLGC exported by index re-ordering), from GPU timestamp queries when
//!   the adapter has them, else per-node submit-and-wait (labelled).
//! - **sweep**: single conv layers over G ∈ {1, 2, 4, …, 64}: where grouping stops paying off.
//! - **roofline**: the adapter's streaming read bandwidth and best GEMM rate
//!   ([`crate::gpu::roofline`]).
//!
//! Every timing is warm-up runs then `repeats` timed runs; medians with min–max are reported.
//! Whole-model latency is host wall-clock from submit to GPU idle, without the read-back.
//! Every layer row (the per-node rows of the layer-wise and `models` suites, paper1's with
//! `per_layer`, the sweep's) names the kernel it ran and reports its GFLOP/s or GB/s and its
//! share of the roof ([`roof`]), measured once per run on the adapter in use whenever a suite
//! has such rows. Models load with the kernel choices `gconv tune` cached
//! ([`crate::gpu::tune`]) unless `tuned` is off; `tune` tunes them first.
//!
//! With the `app` feature a report is written as `report.json`, `summary.md`, one
//! self-contained `report.html` (tables, inline SVG charts, no external URL) and PNG/SVG
//! charts (`write_outputs`); `compare` sets two reports side by side; a run started with
//! [`run_bench_with`] reports its progress to a [`BenchControl`], which can also cancel it.

use crate::error::Result;
use crate::graph::{Conv2dSpec, Graph, GraphBuilder, Op};
use crate::runtime::Runtime;
use crate::weights::Weights;
use crate::zoo::{ConvKind, ModelSpec, Scheme};

#[cfg(feature = "app")]
mod charts;
#[cfg(feature = "app")]
pub mod compare;
mod config;
#[cfg(feature = "app")]
mod html;
#[cfg(feature = "app")]
mod labels;
#[cfg(feature = "app")]
mod output;
#[cfg(feature = "app")]
mod roof_output;
#[cfg(feature = "app")]
pub use charts::figures;
#[cfg(feature = "app")]
pub use html::render_html;
#[cfg(feature = "app")]
pub use output::{render_text, report_tables, tables, write_outputs};
#[cfg(feature = "app")]
pub use roof_output::{layer_table, worst_layers};

pub use config::{BenchConfig, LayerShape, Suite};

mod check;
mod control;
mod memory;
mod models;
pub mod roof;
mod rows;
mod timing;
mod variant;
pub use check::{MAX_BATCH, MAX_REPEATS, MAX_WARMUP};
pub use control::{BenchControl, Pass};
pub use models::{op_class, ModelOptions, UserModelRow, OP_CLASSES};
pub use roof::LayerRow;
pub use rows::{BenchReport, LayerwiseRow, ModelRow, Stats, SweepRow, TrainingMemoryRow};
pub use timing::block_of;
use timing::value_bytes;
use timing::{blocks, input_for, layer_times, load_tuned, time_model, time_model_staged};
pub use variant::zoo_spec;

fn sized(name: &str, cfg: &BenchConfig) -> Result<ModelSpec> {
    sized_at(name, cfg, cfg.input_size)
}

fn sized_at(name: &str, cfg: &BenchConfig, size: usize) -> Result<ModelSpec> {
    let mut s = ModelSpec::load(name)?;
    s.input = [s.input[0], size, size];
    s.width = cfg.width;
    s.num_classes = cfg.num_classes;
    Ok(s)
}

/// Runs the configured suites. `progress` is told what runs next (for a progress bar) with
/// the number of steps done and the total.
pub fn run_bench(
    cfg: &BenchConfig,
    rt: &Runtime,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<BenchReport> {
    run_bench_with(cfg, rt, &BenchControl::default(), progress)
}

/// [`run_bench`] watched and stoppable from another thread: every pass is reported to
/// `ctl`, and after [`BenchControl::cancel`] the run returns [`crate::Error::Cancelled`] at its
/// next pass (the desktop app's progress line and Cancel button).
pub fn run_bench_with(
    cfg: &BenchConfig,
    rt: &Runtime,
    ctl: &BenchControl,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<BenchReport> {
    let progress = &mut |msg: &str, done, total| {
        progress(msg, done, total);
        ctl.check()
    };
    check::validate(cfg)?;
    let software = rt.gpu().is_none_or(|g| g.is_cpu());
    // The roof, measured once, when a suite has layer rows (or asks for it).
    let needs_roof = cfg
        .suites
        .iter()
        .any(|s| *s != Suite::Paper1 || cfg.per_layer);
    let roof_ctx = rt.gpu().filter(|_| needs_roof);
    let total = cfg
        .suites
        .iter()
        .map(|s| match s {
            Suite::Paper1 => 1 + cfg.schemes.len(),
            Suite::Paper2 => 2 + 2 * cfg.groups.len(),
            Suite::Mobilenet => 1 + 2 * cfg.groups.len(),
            Suite::Sweep => cfg.sweep_layers.len() * cfg.sweep_groups.len(),
            Suite::Models => 2 * cfg.models.len() * cfg.model_options.groups.len().max(1),
            Suite::Roofline => 0,
        })
        .sum::<usize>()
        + usize::from(roof_ctx.is_some());
    let mut step = 0usize;
    let roofline = match roof_ctx {
        Some(ctx) => {
            progress("roofline: streaming read and GEMM", step, total)?;
            step += 1;
            Some(crate::gpu::roofline::measure(ctx)?)
        }
        None => None,
    };
    let roof = roofline.as_ref();
    let mut report = BenchReport {
        gconv_version: env!("CARGO_PKG_VERSION").into(),
        device: rt.describe(),
        software_device: software,
        config: cfg.clone(),
        paper1: vec![],
        paper2: vec![],
        mobilenet: vec![],
        sweep: vec![],
        models: vec![],
        training_memory: vec![],
        roofline: roofline.clone(),
        f32_activations: vec![],
    };
    for suite in &cfg.suites {
        match suite {
            Suite::Paper1 => {
                let size = cfg.paper1_input_size.unwrap_or(cfg.input_size);
                let vgg = || sized_at(&cfg.vgg, cfg, size);
                let mut specs = vec![("baseline".to_string(), vgg()?)];
                for s in &cfg.schemes {
                    specs.push((s.clone(), vgg()?.with_scheme(&Scheme::load(s)?)?));
                }
                check::builds(specs.iter().map(|s| &s.1))?;
                for (scheme, spec) in specs {
                    progress(&format!("paper1: {}", spec.name), step, total)?;
                    step += 1;
                    let mut model = load_tuned(rt, cfg, &mut report.f32_activations, &|o| {
                        rt.load(&spec, None, o)
                    })?;
                    let cost = model.graph().cost();
                    let x = input_for(model.graph(), cfg.batch, 1)?;
                    let (latency, pass_stages) =
                        time_model_staged(&mut model, &x, (cfg.warmup, cfg.repeats), ctl)?;
                    let layers = if cfg.per_layer {
                        let wr = (cfg.warmup.min(1), cfg.repeats);
                        layer_times(&mut model, &x, wr, roof, ctl)?.1
                    } else {
                        Vec::new()
                    };
                    let large = if cfg.large_batch > 0 {
                        let xl = input_for(model.graph(), cfg.large_batch, 2)?;
                        Some(time_model(
                            &mut model,
                            &xl,
                            cfg.warmup.min(1),
                            cfg.repeats,
                            ctl,
                        )?)
                    } else {
                        None
                    };
                    let throughput_ips = match &large {
                        Some(l) => cfg.large_batch as f64 / l.median,
                        None => cfg.batch as f64 / latency.median,
                    };
                    let (base_macs, base_t) = report
                        .paper1
                        .first()
                        .map_or((cost.total_macs, latency.median), |b| {
                            (b.macs, b.latency.median)
                        });
                    report.paper1.push(ModelRow {
                        model: spec.name.clone(),
                        scheme,
                        params: cost.total_params,
                        macs: cost.total_macs,
                        macs_reduction_pct: 100.0
                            * (1.0 - cost.total_macs as f64 / base_macs as f64),
                        time_reduction_pct: 100.0 * (1.0 - latency.median / base_t),
                        latency,
                        large_batch_latency: large,
                        throughput_ips,
                        layers,
                        pass_stages,
                    });
                }
            }
            Suite::Paper2 | Suite::Mobilenet => {
                let (family, dense, sgc, flgc) = if *suite == Suite::Paper2 {
                    (
                        "paper2",
                        "resnet50-dsc",
                        "resnet50-dsc-sgc",
                        "resnet50-dsc-flgc",
                    )
                } else {
                    (
                        "mobilenet",
                        "mobilenetv2",
                        "mobilenetv2-sgc",
                        "mobilenetv2-flgc",
                    )
                };
                let mut variants: Vec<(String, ModelSpec)> = Vec::new();
                if *suite == Suite::Paper2 {
                    variants.push(("resnet50".into(), sized("resnet50", cfg)?));
                }
                variants.push((dense.into(), sized(dense, cfg)?));
                for &g in &cfg.groups {
                    variants.push((
                        format!("{sgc} G={g}"),
                        sized(sgc, cfg)?.with_groups(g, Some(ConvKind::Sgc))?,
                    ));
                    variants.push((
                        format!("{flgc} G={g}"),
                        sized(flgc, cfg)?.with_groups(g, Some(ConvKind::Flgc))?,
                    ));
                }
                check::builds(variants.iter().map(|v| &v.1))?;
                for (label, spec) in variants {
                    progress(&format!("{family}: {label}"), step, total)?;
                    step += 1;
                    let mut model = load_tuned(rt, cfg, &mut report.f32_activations, &|o| {
                        rt.load(&spec, None, o)
                    })?;
                    let macs = model.exec_graph().cost().total_macs;
                    let x = input_for(model.graph(), cfg.batch, 3)?;
                    let wr = (cfg.warmup.min(1), cfg.repeats);
                    let (method, layers) = layer_times(&mut model, &x, wr, roof, ctl)?;
                    let blocks = blocks(&layers);
                    let row = LayerwiseRow {
                        model: label,
                        method,
                        macs,
                        total: blocks.iter().map(|b| b.1).sum(),
                        blocks,
                        roof_pct: roof::rows_roof_pct(&layers.iter().collect::<Vec<_>>(), roof),
                        layers,
                    };
                    match suite {
                        Suite::Paper2 => report.paper2.push(row),
                        _ => report.mobilenet.push(row),
                    }
                }
            }
            Suite::Models => {
                let notes = &mut report.f32_activations;
                report.models = models::run_models(cfg, rt, roof, ctl, notes, &mut |m| {
                    // A cancel request is seen by the model's first pass.
                    let _ = progress(&format!("models: {m}"), step, total);
                    step += 1;
                })?;
            }
            Suite::Sweep => {
                for layer in &cfg.sweep_layers {
                    check::sweep_divides(layer, &cfg.sweep_groups)?;
                    let mut dense_t = None;
                    for &g in &cfg.sweep_groups {
                        progress(
                            &format!(
                                "sweep: {}x{}:{} G={g}",
                                layer.channels, layer.size, layer.kernel
                            ),
                            step,
                            total,
                        )?;
                        step += 1;
                        if layer.channels % g != 0 {
                            log::warn!(
                                "sweep: G = {g} does not divide the {} channels of {}x{}:{}; skipped",
                                layer.channels, layer.channels, layer.size, layer.kernel
                            );
                            continue;
                        }
                        let graph = single_conv(layer, g)?;
                        let w = Weights::init(&graph, 0);
                        let macs = graph.cost().total_macs;
                        let mut model = load_tuned(rt, cfg, &mut report.f32_activations, &|o| {
                            rt.load_graph(graph.clone(), w.clone(), o)
                        })?;
                        let x = input_for(model.graph(), cfg.batch, 4)?;
                        let time = time_model(&mut model, &x, cfg.warmup, cfg.repeats, ctl)?;
                        let d = *dense_t.get_or_insert(time.median);
                        // The whole pass is the layer: one row from the pass's median.
                        let kernels = match model.gpu_model() {
                            Some(m) => Some(m.kernels(cfg.batch)?),
                            None => None,
                        };
                        let times = [("conv".to_string(), time.median)];
                        let widths = value_bytes(&mut model, cfg.batch)?;
                        let row = roof::layer_rows(
                            (model.exec_graph(), cfg.batch),
                            &times,
                            kernels.as_deref(),
                            &widths,
                            roof,
                        );
                        report.sweep.push(SweepRow {
                            layer: *layer,
                            groups: g,
                            macs,
                            speedup_vs_dense: d / time.median,
                            ideal_speedup: g as f64,
                            time,
                            kernel: row[0].kernel.clone(),
                            gflops: row[0].gflops,
                            roof_pct: row[0].roof_pct,
                        });
                    }
                }
            }
            Suite::Roofline => {} // measured above
        }
    }
    if let (Some(ctx), true) = (rt.gpu(), cfg.suites.iter().any(|s| *s != Suite::Roofline)) {
        report.training_memory = memory::training_memory(ctx, cfg)?;
    }
    let _ = progress("done", total, total); // finished: a late cancel changes nothing
    Ok(report)
}

/// A graph of one `C → C` conv with `g` groups (`same` padding).
pub fn single_conv(l: &LayerShape, g: usize) -> Result<Graph> {
    let mut b = GraphBuilder::new(
        format!("conv{}x{}k{}g{g}", l.channels, l.size, l.kernel),
        [l.channels, l.size, l.size],
    );
    let spec = Conv2dSpec::square(l.channels, l.channels, l.kernel, 1, l.kernel / 2).groups(g);
    let x = b.push("conv", Op::Conv2d(spec), &[b.input()])?;
    Ok(b.finish(x))
}
