//! The benchmark suites behind `gconv bench`: what grouped convolution buys on this device.
//!
//! - **paper1** (Gong et al., Fig. 10): VGG-BN baseline and schemes A–E — parameters, MACs,
//!   latency at batch 1 and at a larger batch, throughput, and time vs MAC reduction.
//! - **paper2** (Wang et al., Fig. 3): per-block time of ResNet-50, ResNet-50-DSC and its
//!   SGC/FLGC variants (FLGC exported by index re-ordering), from GPU timestamp queries when
//!   the adapter has them, else per-node submit-and-wait (labelled).
//! - **sweep**: single conv layers over G ∈ {1, 2, 4, …, 64}: where grouping stops paying off.
//!
//! Every timing is warm-up runs then `repeats` timed runs; medians with min–max are reported.
//! Whole-model latency is host wall-clock from submit to GPU idle, without the read-back.

use crate::error::{Error, Result};
use crate::graph::{Conv2dSpec, Graph, GraphBuilder, Op};
use crate::runtime::{LoadOptions, Model, Runtime};
use crate::tensor::Tensor;
use crate::weights::Weights;
use crate::zoo::{ConvKind, ModelSpec, Scheme};
use serde::Serialize;
use std::time::Instant;

#[cfg(feature = "app")]
mod output;
#[cfg(feature = "app")]
pub use output::{render_text, tables, write_outputs};

/// Which suites to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    /// VGG-BN schemes A–E (Gong et al.).
    Paper1,
    /// ResNet-50 layer-wise times (Wang et al.).
    Paper2,
    /// MobileNetV2 layer-wise times, dense vs SGC vs FLGC on its wide 1×1 convs (Wang et al.'s
    /// CIFAR-10 setting).
    Mobilenet,
    /// Group-count sweep over single layers.
    Sweep,
    /// The user's own models (`BenchConfig::models`: ONNX files, exports, zoo names).
    Models,
}

/// One conv layer shape for the sweep: `C → C`, `k×k`, on `H×W`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LayerShape {
    /// Input = output channels.
    pub channels: usize,
    /// Spatial size (square).
    pub size: usize,
    /// Kernel size (1 or 3).
    pub kernel: usize,
}

impl std::str::FromStr for LayerShape {
    type Err = Error;
    /// `256x56:3` = 256 channels, 56×56, 3×3 kernel.
    fn from_str(s: &str) -> Result<Self> {
        let bad =
            || Error::InvalidArgument(format!("layer shape `{s}`: expected CxS:K, e.g. 256x56:3"));
        let (cs, k) = s.split_once(':').ok_or_else(bad)?;
        let (c, sz) = cs.split_once('x').ok_or_else(bad)?;
        let p = |v: &str| v.trim().parse::<usize>().map_err(|_| bad());
        let l = LayerShape {
            channels: p(c)?,
            size: p(sz)?,
            kernel: p(k)?,
        };
        if l.channels == 0 || l.size == 0 || l.kernel == 0 || l.kernel > l.size {
            return Err(bad());
        }
        Ok(l)
    }
}

/// What to run, how big, how often.
#[derive(Clone, Debug, Serialize)]
pub struct BenchConfig {
    /// Suites, in order.
    pub suites: Vec<Suite>,
    /// Input height = width of the models.
    pub input_size: usize,
    /// Width multiplier of the models (1 = published).
    pub width: f32,
    /// Classifier outputs (Gong et al. use 1120).
    pub num_classes: usize,
    /// The small batch (latency).
    pub batch: usize,
    /// The large batch (throughput); 0 skips it.
    pub large_batch: usize,
    /// Untimed runs before timing.
    pub warmup: usize,
    /// Timed runs.
    pub repeats: usize,
    /// VGG model of paper1.
    pub vgg: String,
    /// Schemes of paper1.
    pub schemes: Vec<String>,
    /// G of the SGC/FLGC ResNet variants of paper2.
    pub groups: Vec<usize>,
    /// Layers of the sweep.
    pub sweep_layers: Vec<LayerShape>,
    /// G values of the sweep.
    pub sweep_groups: Vec<usize>,
    /// Models of the `models` suite (paths of `.onnx` files or exports, zoo names).
    pub models: Vec<String>,
}

impl BenchConfig {
    /// The default: every suite, sized for the device (224² on a real GPU, 64² on a CPU-like
    /// adapter such as lavapipe or on the CPU path, so a run takes minutes there).
    pub fn default_for(software: bool) -> Self {
        Self {
            suites: vec![Suite::Paper1, Suite::Paper2, Suite::Mobilenet, Suite::Sweep],
            input_size: if software { 64 } else { 224 },
            width: 1.0,
            num_classes: 1000,
            batch: 1,
            large_batch: if software { 4 } else { 32 },
            warmup: if software { 1 } else { 5 },
            repeats: if software { 3 } else { 20 },
            vgg: "vgg13bn".into(),
            schemes: ["A", "B", "C", "D", "E"].map(String::from).to_vec(),
            groups: vec![4, 8],
            sweep_layers: if software {
                vec![
                    LayerShape {
                        channels: 256,
                        size: 28,
                        kernel: 3,
                    },
                    LayerShape {
                        channels: 256,
                        size: 28,
                        kernel: 1,
                    },
                ]
            } else {
                vec![
                    LayerShape {
                        channels: 256,
                        size: 56,
                        kernel: 3,
                    },
                    LayerShape {
                        channels: 512,
                        size: 28,
                        kernel: 1,
                    },
                ]
            },
            sweep_groups: vec![1, 2, 4, 8, 16, 32, 64],
            models: Vec::new(),
        }
    }
}

mod models;
mod rows;
pub use models::{op_class, UserModelRow, OP_CLASSES};
pub use rows::{BenchReport, LayerwiseRow, ModelRow, Stats, SweepRow, TrainingMemoryRow};

fn input_for(g: &Graph, batch: usize, seed: u32) -> Tensor {
    let [c, h, w] = g.input_shape();
    Tensor::from_fn(&[batch, c, h, w], |i| {
        (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2000) as f32 / 1000.0 - 1.0
    })
}

fn time_model(model: &mut Model, x: &Tensor, warmup: usize, repeats: usize) -> Result<Stats> {
    let once = |m: &mut Model| -> Result<f64> {
        let t0 = Instant::now();
        match m.gpu_model() {
            Some(g) => g.run_no_readback(x)?,
            None => {
                m.run(x)?;
            }
        }
        Ok(t0.elapsed().as_secs_f64())
    };
    for _ in 0..warmup {
        once(model)?;
    }
    let samples = (0..repeats.max(1))
        .map(|_| once(model))
        .collect::<Result<Vec<_>>>()?;
    Ok(Stats::from_samples(samples).expect("at least one run"))
}

/// Block of a node name: `layer2.1.conv1` → `layer2.1`, `features.3.conv.0.0` →
/// `features.3`; stem and head layers by name.
pub fn block_of(name: &str) -> String {
    if name.starts_with("layer") || name.starts_with("features.") {
        name.splitn(3, '.').take(2).collect::<Vec<_>>().join(".")
    } else if ["avgpool", "flatten", "fc"].contains(&name) || name.starts_with("classifier") {
        "head".into()
    } else {
        "stem".into()
    }
}

/// Median GPU (or CPU) time of every node of the executed graph over `repeats` timed
/// passes after `warmup`, and how it was measured.
fn node_times(
    model: &mut Model,
    x: &Tensor,
    warmup: usize,
    repeats: usize,
) -> Result<(String, Vec<(String, f64)>)> {
    let mut per_node: Vec<(String, Vec<f64>)> = Vec::new();
    let mut method = String::from("cpu");
    for r in 0..warmup + repeats.max(1) {
        let times: Vec<(String, f64)> = match model.gpu_model() {
            Some(g) => {
                let lt = g.time_layers(x)?;
                method = lt.method.to_string();
                lt.layers.into_iter().map(|(n, _, t)| (n, t)).collect()
            }
            None => crate::cpu::run_graph_timed(model.exec_graph(), model.exec_weights(), x)?.1,
        };
        if r < warmup {
            continue;
        }
        if per_node.is_empty() {
            per_node = times.iter().map(|(n, _)| (n.clone(), Vec::new())).collect();
        }
        for (slot, (_, t)) in per_node.iter_mut().zip(times) {
            slot.1.push(t);
        }
    }
    let medians = per_node
        .into_iter()
        .map(|(n, s)| (n, Stats::from_samples(s).map_or(0.0, |s| s.median)))
        .collect();
    Ok((method, medians))
}

/// Per-block times: [`node_times`] summed by [`block_of`].
fn layerwise(
    model: &mut Model,
    x: &Tensor,
    warmup: usize,
    repeats: usize,
) -> Result<(String, Vec<(String, f64)>)> {
    let (method, nodes) = node_times(model, x, warmup, repeats)?;
    let mut blocks: Vec<(String, f64)> = Vec::new();
    for (name, med) in nodes {
        let b = block_of(&name);
        match blocks.last_mut() {
            Some((lb, t)) if *lb == b => *t += med,
            _ => blocks.push((b, med)),
        }
    }
    Ok((method, blocks))
}

fn sized(name: &str, cfg: &BenchConfig) -> Result<ModelSpec> {
    let mut s = ModelSpec::load(name)?;
    s.input = [s.input[0], cfg.input_size, cfg.input_size];
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
    if cfg.repeats == 0 || cfg.batch == 0 {
        return Err(Error::InvalidArgument(
            "repeats and batch must be at least 1".into(),
        ));
    }
    let software = rt.gpu().is_none_or(|g| g.is_cpu());
    let opts = LoadOptions::default();
    let total = cfg
        .suites
        .iter()
        .map(|s| match s {
            Suite::Paper1 => 1 + cfg.schemes.len(),
            Suite::Paper2 => 2 + 2 * cfg.groups.len(),
            Suite::Mobilenet => 1 + 2 * cfg.groups.len(),
            Suite::Sweep => cfg.sweep_layers.len() * cfg.sweep_groups.len(),
            Suite::Models => 2 * cfg.models.len(),
        })
        .sum::<usize>();
    let mut step = 0usize;
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
    };
    for suite in &cfg.suites {
        match suite {
            Suite::Paper1 => {
                let mut specs = vec![("baseline".to_string(), sized(&cfg.vgg, cfg)?)];
                for s in &cfg.schemes {
                    specs.push((
                        s.clone(),
                        sized(&cfg.vgg, cfg)?.with_scheme(&Scheme::load(s)?)?,
                    ));
                }
                for (scheme, spec) in specs {
                    progress(&format!("paper1: {}", spec.name), step, total);
                    step += 1;
                    let mut model = rt.load(&spec, None, &opts)?;
                    let cost = model.graph().cost();
                    let x = input_for(model.graph(), cfg.batch, 1);
                    let latency = time_model(&mut model, &x, cfg.warmup, cfg.repeats)?;
                    let large = if cfg.large_batch > 0 {
                        let xl = input_for(model.graph(), cfg.large_batch, 2);
                        Some(time_model(&mut model, &xl, cfg.warmup.min(1), cfg.repeats)?)
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
                for (label, spec) in variants {
                    progress(&format!("{family}: {label}"), step, total);
                    step += 1;
                    let mut model = rt.load(&spec, None, &opts)?;
                    let macs = model.exec_graph().cost().total_macs;
                    let x = input_for(model.graph(), cfg.batch, 3);
                    let (method, blocks) =
                        layerwise(&mut model, &x, cfg.warmup.min(1), cfg.repeats)?;
                    let row = LayerwiseRow {
                        model: label,
                        method,
                        macs,
                        total: blocks.iter().map(|b| b.1).sum(),
                        blocks,
                    };
                    match suite {
                        Suite::Paper2 => report.paper2.push(row),
                        _ => report.mobilenet.push(row),
                    }
                }
            }
            Suite::Models => {
                report.models = models::run_models(cfg, rt, &mut |m| {
                    progress(&format!("models: {m}"), step, total);
                    step += 1;
                })?;
            }
            Suite::Sweep => {
                for layer in &cfg.sweep_layers {
                    let mut dense_t = None;
                    for &g in &cfg.sweep_groups {
                        progress(
                            &format!(
                                "sweep: {}x{}:{} G={g}",
                                layer.channels, layer.size, layer.kernel
                            ),
                            step,
                            total,
                        );
                        step += 1;
                        if layer.channels % g != 0 {
                            continue;
                        }
                        let graph = single_conv(layer, g)?;
                        let w = Weights::init(&graph, 0);
                        let macs = graph.cost().total_macs;
                        let mut model = rt.load_graph(graph, w, &opts)?;
                        let x = input_for(model.graph(), cfg.batch, 4);
                        let time = time_model(&mut model, &x, cfg.warmup, cfg.repeats)?;
                        let d = *dense_t.get_or_insert(time.median);
                        report.sweep.push(SweepRow {
                            layer: *layer,
                            groups: g,
                            macs,
                            speedup_vs_dense: d / time.median,
                            ideal_speedup: g as f64,
                            time,
                        });
                    }
                }
            }
        }
    }
    if let Some(ctx) = rt.gpu() {
        report.training_memory = training_memory(ctx, cfg)?;
    }
    progress("done", total, total);
    Ok(report)
}

/// The planned memory of a GPU training step (activations, gradients and scratch in
/// lifetime-planned buffers, against one buffer per value) for the FLGC ResNet-50-DSC and
/// MobileNetV2 at the configured size and large batch.
fn training_memory(
    ctx: &std::sync::Arc<crate::gpu::GpuContext>,
    cfg: &BenchConfig,
) -> Result<Vec<TrainingMemoryRow>> {
    let g = cfg.groups.first().copied().unwrap_or(4);
    let batch = cfg.large_batch.max(2);
    let mut rows = Vec::new();
    for name in ["resnet50-dsc-flgc", "mobilenetv2-flgc"] {
        let spec = sized(name, cfg)?.with_groups(g, Some(ConvKind::Flgc))?;
        let graph = spec.build()?;
        let weights = Weights::init(&graph, 0);
        let t = crate::train::GpuTrainer::new(ctx.clone(), graph, weights, Default::default())?;
        let plan =
            crate::train::Train::memory_plan(&t, batch)?.expect("a GPU trainer plans its memory");
        rows.push(TrainingMemoryRow {
            model: format!("{name} G={g}"),
            batch,
            plan,
        });
    }
    Ok(rows)
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
