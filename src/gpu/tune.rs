//! Autotuning: per layer shape, time the kernel candidates of [`crate::gpu::choice`] on the
//! adapter in use, keep the fastest one whose output matches the default's, and cache the
//! choice on disk ([`cache`]) for inference and GPU training to use.
//!
//! For every convolution (`Conv2d`, exported `GroupedConvTable`) and fully connected layer of
//! a graph, [`tune_graph`] builds a one-node graph of that layer's real shape (random
//! weights, the batch given) and times, with [`GpuModel::with_choice`](crate::gpu::GpuModel::with_choice):
//!
//! - every family of the adapter class's list that prefers the layer
//!   ([`crate::gpu::choice`]), then the variants those families offer for it
//!   ([`ConvForward::tune_variants`](crate::gpu::family::ConvForward::tune_variants):
//!   `conv_fast`'s other entry points that fit the geometry, `gemv`'s other tiles), up to
//!   [`MAX_CANDIDATES`] in all.
//!
//! Each candidate runs once (warm-up, and its output is compared with the default's within
//! [`Tolerance::F32_OP`](crate::testing::Tolerance::F32_OP): a kernel that disagrees is never chosen), then `repeats` rounds time
//! the candidates interleaved (so a machine slowing down affects all alike); after the first
//! round a candidate 3× slower than the best is dropped. The median decides; another kernel
//! than the default must be at least [`MIN_GAIN`] faster to be chosen.
//!
//! **Precision**: [`TuneOptions::precision`] f16 times the layers as a model loaded with
//! `Precision::F16` runs them (weights and activations stored as halves, the
//! cooperative-matrix tier and its tiles where the device has it), compares within
//! [`Tolerance::F16_OP`](crate::testing::Tolerance::F16_OP), and caches them under their own
//! keys ([`key_in`]); an f16 model prefers those entries ([`cached_choice_for`]).
//!
//! **Use**: [`cached_choice`] turns the cache into a [`KernelChoice`] for a graph.
//! `Runtime` applies it to every GPU model it loads (at
//! `LoadOptions::tuned_batch`, batch 1 by default) and `train::GpuTrainer`
//! at each training batch size (kernels that cannot run trained weights, such as
//! `conv_tiled`, are left out there). `GCONV_TUNE=off` (or the CLI's `--no-tune`) ignores
//! the cache, for deterministic runs.
//!
//! **When tuning runs**: only when asked (`gconv tune MODEL`, `gconv bench --tune`, or
//! [`tune_graph`]); a layer missing from the cache silently takes the candidate lists'
//! default. Tuning on first use was rejected: on a CPU-backed adapter such as lavapipe, timing
//! five kernels of a 224² VGG layer takes seconds per layer, which an `infer` call must not
//! pay unannounced, and a one-off timing in a busy process would be a noisy choice anyway.

pub mod cache;
mod from_cache;
mod measure;

use super::choice::{
    self, Adapter, ConvKernel, ConvProblem, Kernel as Chosen, KernelChoice, LinearKernel,
};
use super::context::GpuContext;
use super::geometry::LinearShape;
use super::precision::Precision;
use crate::error::{Error, Result};
use crate::graph::{Graph, Op};
pub use cache::{adapter_key, CachedChoice, TuneCache};
pub use from_cache::{cached_choice, cached_choice_for, choice_at, choice_from};
pub use measure::{tune_layer, CandidateTime, LayerTuning};
use std::sync::Arc;

/// At most this many candidates are timed per layer.
pub const MAX_CANDIDATES: usize = 6;

/// Another kernel than the default is chosen only when its median is at least this much
/// faster (5 %): below that, timings of one process are noise.
pub const MIN_GAIN: f64 = 0.05;

/// Whether cached choices are used: not when `GCONV_TUNE` is `off`, `0`, `false` or `no`.
pub fn enabled() -> bool {
    !std::env::var("GCONV_TUNE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "off" | "0" | "false" | "no"
        )
    })
}

/// What a tunable layer computes.
#[derive(Clone, Debug)]
pub enum LayerProblem {
    /// A convolution forward.
    Conv(ConvProblem),
    /// A fully connected forward.
    Linear(LinearShape),
}

/// A kernel of either kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// A convolution kernel.
    Conv(ConvKernel),
    /// A fully connected kernel.
    Linear(LinearKernel),
}

impl Kernel {
    /// Its name ([`ConvKernel::name`], [`LinearKernel::name`]).
    pub fn name(self) -> String {
        match self {
            Kernel::Conv(k) => k.name(),
            Kernel::Linear(k) => k.name(),
        }
    }

    fn force(self, node: &str, c: KernelChoice) -> KernelChoice {
        match self {
            Kernel::Conv(k) => c.conv(node, k),
            Kernel::Linear(k) => c.linear(node, k),
        }
    }
}

/// A layer of a graph that can be tuned.
#[derive(Clone, Debug)]
pub struct TunableLayer {
    /// Node name.
    pub node: String,
    /// The cache's shape key.
    pub key: String,
    /// The problem (static weights, the batch tuned for; under f16, weights stored as halves).
    pub problem: LayerProblem,
    /// The storage precision it is timed in (its key ends in ` f16` for halves).
    pub precision: Precision,
    op: Op,
    in_shape: Vec<usize>,
}

/// FNV-1a over numbers (the groups of an exported table).
fn hash(values: impl Iterator<Item = usize>) -> u64 {
    values.fold(0xcbf2_9ce4_8422_2325, |h, v| {
        (h ^ v as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn conv_key(kind: &str, p: &ConvProblem) -> String {
    let s = &p.spec;
    let a = |v: [usize; 2]| format!("{}x{}", v[0], v[1]);
    format!(
        "{kind} k{} s{} p{} d{} c{}>{} g{}{} b{} in{}",
        a(s.kernel),
        a(s.stride),
        a(s.padding),
        a(s.dilation),
        s.in_channels,
        s.out_channels,
        s.groups,
        if s.bias { " bias" } else { "" },
        p.batch,
        a(p.in_hw),
    )
}

/// The tunable layers of `graph` (convolutions, exported tables, fully connected layers) at
/// `batch`, in graph order, timed with f32 weights.
pub fn tunable_layers(graph: &Graph, batch: usize) -> Vec<TunableLayer> {
    tunable_layers_in(graph, batch, Precision::F32)
}

/// The cache key of a layer timed in `precision`: the f32 key, with ` f16` appended for a
/// model stored as halves (its kernels and their speeds differ: the cooperative-matrix tier,
/// halved bytes).
pub fn key_in(f32_key: &str, precision: Precision) -> String {
    match precision {
        Precision::F32 => f32_key.to_string(),
        Precision::F16 => format!("{f32_key} f16"),
    }
}

/// [`tunable_layers`] of a model loaded with `precision`.
pub fn tunable_layers_in(graph: &Graph, batch: usize, precision: Precision) -> Vec<TunableLayer> {
    let half = precision == Precision::F16;
    let mut out = Vec::new();
    for node in &graph.nodes {
        let Some(&input) = node.inputs.first() else {
            continue;
        };
        let in_shape = graph.nodes[input].shape.clone();
        let in_hw = match in_shape[..] {
            [_, h, w] => [h, w],
            _ => [1, 1],
        };
        let (key, problem) = match &node.op {
            Op::Conv2d(spec) => {
                let p = ConvProblem {
                    half_weights: half,
                    ..ConvProblem::conv2d(spec, batch, in_hw, true)
                };
                (conv_key("conv", &p), LayerProblem::Conv(p))
            }
            Op::GroupedConvTable(t) => {
                let p = ConvProblem {
                    half_weights: half,
                    ..ConvProblem::table(t, batch, in_hw)
                };
                let h = hash(
                    t.table
                        .iter()
                        .flat_map(|g| [g.in_len, g.out_len])
                        .chain(t.in_index.iter().copied())
                        .chain(t.out_index.iter().copied()),
                );
                (
                    format!("{} tables {h:016x}", conv_key("table", &p)),
                    LayerProblem::Conv(p),
                )
            }
            Op::Linear(l) => {
                let s = LinearShape {
                    batch,
                    in_features: l.in_features,
                    out_features: l.out_features,
                };
                let key = format!(
                    "linear {}>{}{} b{batch}",
                    l.in_features,
                    l.out_features,
                    if l.bias { " bias" } else { "" }
                );
                (key, LayerProblem::Linear(s))
            }
            _ => continue,
        };
        out.push(TunableLayer {
            node: node.name.clone(),
            key: key_in(&key, precision),
            problem,
            precision,
            op: node.op.clone(),
            in_shape,
        });
    }
    out
}

/// The kernel the candidate lists pick for `p` in `precision` (what runs untuned).
pub fn default_kernel(p: &LayerProblem, a: &Adapter, precision: Precision) -> Kernel {
    match p {
        LayerProblem::Conv(c) => Kernel::Conv(choice::conv_default(c, a)),
        LayerProblem::Linear(s) => Kernel::Linear(match precision {
            Precision::F16 => {
                choice::linear_default_f16(s, a).unwrap_or_else(|| choice::linear_default(s, a))
            }
            Precision::F32 => choice::linear_default(s, a),
        }),
    }
}

/// The candidates timed for `p` in `precision`, the default first, at most
/// [`MAX_CANDIDATES`]: every listed family that prefers the layer, then the variants those
/// families offer for it. Under f16 a convolution's default is followed by its own variants
/// (`conv_coop`'s other tiles) before the other families, and a fully connected layer's
/// candidates are the families that read halves and can run it, preferring it or not (a
/// model stored as halves runs no other, see [`choice::linear_forward_f16_for`]).
pub fn candidates(p: &LayerProblem, a: &Adapter, precision: Precision) -> Vec<Kernel> {
    let mut v = vec![default_kernel(p, a, precision)];
    let half = precision == Precision::F16;
    let add = |k: Kernel, v: &mut Vec<Kernel>| {
        if !v.contains(&k) && v.len() < MAX_CANDIDATES {
            v.push(k);
        }
    };
    match p {
        LayerProblem::Conv(c) => {
            let listed = choice::conv_preferring(c, a);
            // Under f16 the default's own tiles come right after it: on a device with
            // cooperative matrices they are what f16 tuning is for, and the other families
            // would fill the candidates first.
            let own = match (half, v[0]) {
                (true, Kernel::Conv(k)) => k.family.tune_variants(c, a),
                _ => Vec::new(),
            };
            if let Kernel::Conv(k) = v[0] {
                for variant in own {
                    let k = Chosen {
                        family: k.family,
                        variant: Some(variant),
                    };
                    add(Kernel::Conv(k), &mut v);
                }
            }
            for &k in &listed {
                add(Kernel::Conv(k), &mut v);
            }
            for k in &listed {
                for variant in k.family.tune_variants(c, a) {
                    let k = Chosen {
                        family: k.family,
                        variant: Some(variant),
                    };
                    add(Kernel::Conv(k), &mut v);
                }
            }
        }
        LayerProblem::Linear(s) => {
            let listed: Vec<LinearKernel> = choice::linear_forward_list(a.class)
                .iter()
                .filter(|f| match half {
                    // Every family that reads halves and runs the layer: at a batch no
                    // half-reader prefers, the other one is the alternative worth timing
                    // (`gemv_wide` against `linear_coop` above batch 8).
                    true => f.reads_f16() && f.can_run(s, a, None),
                    false => f.prefers(s, a),
                })
                .map(|&f| Chosen::of(f))
                .collect();
            for &k in &listed {
                add(Kernel::Linear(k), &mut v);
            }
            // The default's own variants too (under f16 it may be listed as not preferring).
            let default = match v[0] {
                Kernel::Linear(k) => Some(k),
                Kernel::Conv(_) => None,
            };
            let families = default.into_iter().chain(listed.iter().copied());
            for k in families {
                for variant in k.family.tune_variants(s, a) {
                    let k = Chosen {
                        family: k.family,
                        variant: Some(variant),
                    };
                    add(Kernel::Linear(k), &mut v);
                }
            }
        }
    }
    v
}

/// How [`tune_graph`] times.
#[derive(Clone, Debug)]
pub struct TuneOptions {
    /// Batch size of the layers.
    pub batch: usize,
    /// Timed rounds (the median of these decides).
    pub repeats: usize,
    /// Re-time layers already in the cache.
    pub retune: bool,
    /// The storage precision the layers are timed in (f16: as `--precision f16` runs them,
    /// cached under their own keys, see [`key_in`]).
    pub precision: Precision,
    /// Save the cache after each layer timed, so a run cut short (a time cap, Ctrl-C) keeps
    /// what it timed; else the caller saves once at the end.
    pub save_each_layer: bool,
}

impl Default for TuneOptions {
    fn default() -> Self {
        Self {
            batch: 1,
            repeats: 3,
            retune: false,
            precision: Precision::F32,
            save_each_layer: false,
        }
    }
}

/// Tunes every tunable layer of `graph` (the graph that executes: BN folded, FLGC exported)
/// on `ctx`, reusing `cache` entries unless `opts.retune`, and records the choices in
/// `cache` (the caller saves it). `progress` is told each layer as it starts.
pub fn tune_graph(
    ctx: &Arc<GpuContext>,
    graph: &Graph,
    cache: &mut TuneCache,
    opts: &TuneOptions,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<Vec<LayerTuning>> {
    if opts.batch == 0 {
        return Err(Error::InvalidArgument(
            "tuning batch must be at least 1".into(),
        ));
    }
    let adapter = adapter_key(&ctx.info);
    let layers = tunable_layers_in(graph, opts.batch, opts.precision);
    let mut out: Vec<LayerTuning> = Vec::with_capacity(layers.len());
    let mut seen = std::collections::HashSet::new();
    for (n, l) in layers.iter().enumerate() {
        progress(&l.node, n, layers.len());
        let fresh = seen.insert(l.key.clone());
        let hit = cache.get(&adapter, &l.key);
        let r = match hit {
            Some(c) if !fresh => LayerTuning::from_cache(l, c, "shared"),
            Some(c) if !opts.retune => LayerTuning::from_cache(l, c, "cached"),
            _ => {
                let t = tune_layer(ctx, l, opts.repeats)?;
                let times_ms = t
                    .candidates
                    .iter()
                    .filter_map(|c| Some((c.kernel.clone(), c.median_s? * 1e3)))
                    .collect();
                let entry = CachedChoice {
                    kernel: t.chosen.clone(),
                    default: t.default.clone(),
                    speedup: t.speedup,
                    times_ms,
                };
                cache.insert(&adapter, &l.key, entry);
                if opts.save_each_layer {
                    cache.save()?;
                }
                t
            }
        };
        out.push(r);
    }
    progress("done", layers.len(), layers.len());
    Ok(out)
}
