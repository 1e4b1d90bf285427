//! The cache's choices for a graph ([`cached_choice`], [`choice_at`]): which cached kernel
//! each layer of a model takes, for inference or training, f32 or f16.

use super::{adapter_key, enabled, tunable_layers_in, LayerProblem, TuneCache};
use crate::gpu::choice::{self, Adapter, ConvProblem, KernelChoice};
use crate::gpu::context::GpuContext;
use crate::gpu::precision::Precision;
use crate::graph::Graph;

/// The cached kernel choices for `graph` at `batch` on `ctx` (empty when [`enabled`] is
/// false or nothing is cached). `training`: for a training lowering, so only kernels that
/// run weights that change every step are kept.
pub fn cached_choice(
    ctx: &GpuContext,
    graph: &Graph,
    batch: usize,
    training: bool,
) -> KernelChoice {
    if !enabled() {
        return KernelChoice::new();
    }
    choice_from(&TuneCache::load_default(), ctx, graph, batch, training)
}

/// [`cached_choice`] for an inference model whose weights are stored in `precision`: under
/// f16, each layer takes its f16-timed entry (`gconv tune --precision f16`) where there is
/// one; else the layers the cooperative-matrix tier takes by default (`conv_coop`,
/// `linear_coop`) keep it (an f32-timed entry never saw that tier), and the others take the
/// f32-timed kernel where it stores halves too — an entry naming a kernel that reads f32
/// (`conv_wgmem`, `gemv`, `linear`) would keep that layer's weights f32, against the model's
/// precision, on a timing that never saw the halved weights, so the f16 default stays.
pub fn cached_choice_for(
    ctx: &GpuContext,
    graph: &Graph,
    batch: usize,
    precision: Precision,
) -> KernelChoice {
    if !enabled() {
        return KernelChoice::new();
    }
    choice_at(
        &TuneCache::load_default(),
        ctx,
        (graph, batch),
        (false, precision),
    )
}

/// Like [`cached_choice`], from the given cache (and regardless of `GCONV_TUNE`).
pub fn choice_from(
    cache: &TuneCache,
    ctx: &GpuContext,
    graph: &Graph,
    batch: usize,
    training: bool,
) -> KernelChoice {
    choice_at(cache, ctx, (graph, batch), (training, Precision::F32))
}

/// The cache's choice for `graph` at `batch`, for training or not, for a model stored in
/// `precision` (see [`cached_choice_for`]).
pub fn choice_at(
    cache: &TuneCache,
    ctx: &GpuContext,
    (graph, batch): (&Graph, usize),
    (training, precision): (bool, Precision),
) -> KernelChoice {
    let adapter = adapter_key(&ctx.info);
    let a = Adapter::of(ctx);
    let mut choice = KernelChoice::new();
    if cache.len_for(&adapter) == 0 {
        return choice;
    }
    let half_weights = precision == Precision::F16;
    for l in tunable_layers_in(graph, batch, precision) {
        // Under f16: the entry timed so, else the f32 one (whose key has no suffix).
        let f32_key = l.key.strip_suffix(" f16").unwrap_or(&l.key);
        let (c, timed_half) = match (half_weights, cache.get(&adapter, &l.key)) {
            (true, Some(c)) => (c, true),
            _ => match cache.get(&adapter, f32_key) {
                Some(c) => (c, false),
                None => continue,
            },
        };
        match &l.problem {
            LayerProblem::Conv(p) => {
                let mut p = p.clone();
                p.static_weights = !training;
                // The inference weights are prepared once at load, for batch 1.
                let at_load = ConvProblem {
                    batch: 1,
                    ..p.clone()
                };
                let cached = choice::conv_named(&c.kernel);
                if half_weights && !timed_half {
                    let d = choice::conv_default(&at_load, &a).family;
                    let cached_half = cached.is_some_and(|k| k.family.reads_f16());
                    if f16_keeps_default((d.name(), d.reads_f16()), cached_half) {
                        log::debug!("{}: f16 keeps {} over {}", l.node, d.name(), c.kernel);
                        continue;
                    }
                }
                match cached {
                    Some(k)
                        if choice::conv_can_run(k, &p, &a)
                            && (training || choice::conv_can_run(k, &at_load, &a)) =>
                    {
                        choice = choice.conv(&l.node, k);
                    }
                    _ => log::debug!("{}: cached kernel {} not usable here", l.node, c.kernel),
                }
            }
            LayerProblem::Linear(s) => {
                let cached = choice::linear_named(&c.kernel);
                let f16_default = (half_weights && !timed_half)
                    .then(|| choice::linear_default_f16(s, &a))
                    .flatten();
                if let Some(d) = f16_default.map(|k| k.family) {
                    let cached_half = cached.is_some_and(|k| k.family.reads_f16());
                    if f16_keeps_default((d.name(), d.reads_f16()), cached_half) {
                        log::debug!("{}: f16 keeps {} over {}", l.node, d.name(), c.kernel);
                        continue;
                    }
                }
                match cached {
                    Some(k) if k.family.can_run(s, &a, k.variant) => {
                        choice = choice.linear(&l.node, k)
                    }
                    _ => log::debug!("{}: cached kernel {} not usable here", l.node, c.kernel),
                }
            }
        }
    }
    choice
}

/// Whether an f16 model keeps its default kernel (`name`, whether it stores halves) over an
/// f32-timed cache entry (whether that entry's kernel stores halves): always for the
/// cooperative-matrix tier, which the f32 timing never saw; else when the default stores
/// halves and the entry's kernel would keep the layer f32.
fn f16_keeps_default((name, default_half): (&str, bool), cached_half: bool) -> bool {
    matches!(name, "conv_coop" | "linear_coop") || default_half && !cached_half
}
