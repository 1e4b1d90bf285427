//! `gconv search`: the grouping for *this* device and *this* latency budget — the most MACs
//! (then parameters) whose predicted latency fits, over G per stage (or per layer) of a VGG-BN,
//! ResNet or MobileNetV2.
//!
//! 1. **Space** ([`space`]): the model's grouped convolutions, the units a G applies to
//!    (stages, or layers with `per_layer`), the G each unit takes (SGC: G divides its channels;
//!    FLGC: any G, uneven groups costed as the even split exports).
//! 2. **Latency model** ([`latency`]): every distinct layer variant timed once with the tuner's
//!    measuring and cache (a second search measures nothing new); prediction = the layers' sum
//!    + the model's fixed cost, measured on the dense model end to end in this run.
//! 3. **Search** ([`optimize`]): exact Pareto dynamic programming over the units, for latency
//!    vs MACs and latency vs parameters; the best scheme within each budget is on the front.
//! 4. **Check**: the scheme found and its reference are measured end to end, interleaved in
//!    this process ([`measure`]); predicted vs measured is reported for every scheme measured.

pub mod latency;
pub mod measure;
pub mod optimize;
#[cfg(feature = "app")]
pub mod output;
pub mod report;
pub mod space;

use crate::error::{Error, Result};
use crate::gpu::tune::{cache, TuneCache};
use crate::gpu::Precision;
use crate::runtime::Runtime;
use crate::zoo::{Arch, ConvKind, ModelSpec, Scheme};
use latency::LatencyModel;
use measure::time_interleaved;
use optimize::{best_within, pareto_front, Choice, Value};
use report::{
    FrontPoint, LatencySummary, SchemeResult, SearchReport, SearchResult, Seconds, UnitInfo,
};
use space::Space;
use std::time::Instant;

/// What latency the scheme must fit.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// At most this many milliseconds (predicted).
    BudgetMs(f64),
    /// No slower than this scheme (predicted): A–E, a scheme file, or stage groups.
    AsFastAs(String),
    /// The dense model's measured latency divided by this.
    Speedup(f64),
}

/// What to search.
#[derive(Clone, Debug)]
pub struct SearchConfig {
    /// Zoo name or model `.toml`.
    pub model: String,
    /// Input height = width (default: the model's).
    pub input_size: Option<usize>,
    /// Batch size.
    pub batch: usize,
    /// The storage precision the layers and models are timed in (f16: as `--precision f16`
    /// runs them; the tuning cache's ` f16` entries).
    pub precision: Precision,
    /// SGC or FLGC.
    pub conv: ConvKind,
    /// The G values to choose from (1 is always a choice).
    pub groups: Vec<usize>,
    /// G per layer instead of per stage.
    pub per_layer: bool,
    /// The latencies to fit (one search result each).
    pub targets: Vec<Target>,
    /// Untimed whole-model rounds before the timed ones.
    pub warmup: usize,
    /// Timed whole-model rounds (medians).
    pub rounds: usize,
}

impl SearchConfig {
    /// Checks the options before anything is measured.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("search: {m}")));
        if self.batch == 0 || self.rounds == 0 {
            return bad("--batch and --rounds must be at least 1".into());
        }
        if self.groups.is_empty() {
            return bad("--g needs at least one G".into());
        }
        if self.targets.is_empty() {
            return bad("give --budget-ms, --as-fast-as or --speedup".into());
        }
        for t in &self.targets {
            match *t {
                Target::BudgetMs(b) if !(b.is_finite() && b > 0.0) => {
                    return bad(format!("--budget-ms {b}: must be a positive number of ms"))
                }
                Target::Speedup(x) if !(x.is_finite() && x > 0.0) => {
                    return bad(format!("--speedup {x}: must be a positive factor"))
                }
                _ => {}
            }
        }
        if let Some(s) = self.input_size {
            if s == 0 || s > 4096 {
                return bad(format!("--input-size {s}: must be in 1..=4096"));
            }
        }
        Ok(())
    }
}

/// The tuning cache the runtime reads ([`cache::default_path`]); a file that exists but cannot
/// be read as one is an error here (a search would otherwise re-measure everything and
/// overwrite it).
pub fn open_cache() -> Result<TuneCache> {
    let path = cache::default_path().unwrap_or_else(|| cache::FILE_NAME.into());
    TuneCache::load_checked(path)
}

fn model_spec(cfg: &SearchConfig) -> Result<ModelSpec> {
    let mut spec = ModelSpec::load(&cfg.model)?;
    if let Some(s) = cfg.input_size {
        spec.input = [spec.input[0], s, s];
    }
    Ok(spec)
}

/// Reference schemes to mark: Gong et al.'s A–E on a five-stage VGG, else G uniform over the
/// units for G = 2, 4, 8 where every unit takes it.
fn marks(space: &Space) -> Vec<Scheme> {
    if matches!(&space.base.arch, Arch::Vgg { stages, .. } if stages.len() == 5) {
        return ["A", "B", "C", "D", "E"]
            .iter()
            .filter_map(|n| Scheme::load(n).ok())
            .collect();
    }
    [2, 4, 8]
        .into_iter()
        .filter(|g| space.units.iter().all(|u| u.groups.contains(g)))
        .map(|g| {
            space.scheme(
                &format!("all-G{g}"),
                "every unit at one G",
                &vec![g; space.units.len()],
            )
        })
        .collect()
}

struct Ctx<'a> {
    space: &'a Space,
    lat: &'a LatencyModel,
}

impl Ctx<'_> {
    /// Predicted result of any scheme of the model.
    fn result(&self, scheme: &Scheme) -> Result<SchemeResult> {
        let groups = self.space.site_groups(scheme)?;
        let predicted_ms = self.lat.predict(&groups).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "search: scheme {} has a layer not timed",
                scheme.name
            ))
        })?;
        let (macs, params) = self.space.cost(&groups).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "search: scheme {} gives a layer a G it cannot take",
                scheme.name
            ))
        })?;
        let spec = self.space.spec_of(scheme)?;
        let graph = spec.build()?;
        debug_assert_eq!(graph.cost().total_macs, macs);
        let mut by_stage = vec![1; self.space.base.stage_names().len()];
        for (s, &g) in self.space.sites.iter().zip(&groups) {
            by_stage[s.stage] = by_stage[s.stage].max(g);
        }
        let per_layer = !scheme.layer_groups.is_empty();
        Ok(SchemeResult {
            scheme: scheme.name.clone(),
            groups_by_stage: by_stage,
            groups: if per_layer {
                self.space
                    .sites
                    .iter()
                    .zip(&groups)
                    .filter(|(_, &g)| g > 1)
                    .map(|(s, &g)| (s.node.clone(), g))
                    .collect()
            } else {
                Default::default()
            },
            predicted_ms,
            layers_ms: predicted_ms - self.lat.fixed_ms,
            measured_ms: None,
            measured: None,
            error_pct: None,
            error_vs_dense_pct: None,
            macs,
            params,
        })
    }
}

/// Runs a search on `rt`'s GPU. `progress` is told what runs, with steps done and the total.
pub fn run_search(
    rt: &Runtime,
    cfg: &SearchConfig,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<SearchReport> {
    let t_start = Instant::now();
    cfg.validate()?;
    let ctx = rt.gpu().ok_or_else(|| {
        Error::InvalidArgument("search: needs a GPU adapter (the latency model is measured)".into())
    })?;
    if !crate::gpu::tune::enabled() {
        return Err(Error::InvalidArgument(
            "search: GCONV_TUNE is off, but the search times layers with the tuned kernels \
             inference runs; unset it"
                .into(),
        ));
    }
    let spec = model_spec(cfg)?;
    let mut space = Space::new(&spec, cfg.conv, &cfg.groups, cfg.per_layer)?;
    // Every reference's layers are timed too (a G outside --g included).
    let mut references: Vec<Scheme> = marks(&space);
    for t in &cfg.targets {
        if let Target::AsFastAs(name) = t {
            references.push(Scheme::load(name)?);
        }
    }
    for r in &references {
        let g = space.site_groups(r)?;
        space.add_variants(&g)?;
    }
    let mut cache = open_cache()?;
    let at = (cfg.batch, cfg.precision);
    let mut lat = LatencyModel::measure(ctx, &space, at, &mut cache, progress)?;
    let t_layers = t_start.elapsed().as_secs_f64();
    // Calibration: the dense model end to end.
    let t_e2e = Instant::now();
    let dense_scheme = space.scheme("dense", "every unit at G = 1", &vec![1; space.units.len()]);
    let dense_t = time_interleaved(
        ctx,
        &[&space.spec_of(&dense_scheme)?],
        at,
        (cfg.warmup, cfg.rounds),
        progress,
    )?
    .remove(0);
    lat.calibrate(dense_t.median_ms);
    let cx = Ctx {
        space: &space,
        lat: &lat,
    };
    let dense = cx.result(&dense_scheme)?;
    // The fronts.
    let units: Vec<Vec<Choice>> = space
        .units
        .iter()
        .map(|u| {
            u.groups
                .iter()
                .map(|&g| {
                    let mut c = Choice {
                        g,
                        ms: 0.0,
                        macs: 0,
                        params: 0,
                    };
                    for &i in &u.sites {
                        let v = space.sites[i]
                            .variant(g)
                            .expect("a unit's G fits its sites");
                        c.macs += v.macs;
                        c.params += v.params;
                        c.ms += lat.site_ms[i]
                            .iter()
                            .find(|(sg, _)| *sg == g)
                            .map_or(0.0, |t| t.1);
                    }
                    c
                })
                .collect()
        })
        .collect();
    let front_macs = pareto_front(&units, Value::Macs)?;
    let front_params = pareto_front(&units, Value::Params)?;
    let base_ms = lat.fixed_ms + lat.other_ms();
    let base_cost = (space.fixed_macs, space.fixed_params);
    // One scheme per target, found before anything more is measured.
    let mut pending = Vec::new();
    for t in &cfg.targets {
        let (label, budget, reference) = match t {
            Target::BudgetMs(b) => (format!("budget {b} ms"), *b, None),
            Target::Speedup(x) => (format!("{x}× the dense model"), dense_t.median_ms / x, None),
            Target::AsFastAs(name) => {
                let r = cx.result(&Scheme::load(name)?)?;
                (format!("as fast as {}", r.scheme), r.predicted_ms, Some(r))
            }
        };
        // The reference's own sum, in another order, must fit its own budget: allow round-off.
        let slack = 1e-9 * budget.abs().max(1.0);
        let Some(best) = best_within(&front_macs, budget - base_ms + slack) else {
            let fastest = FrontPoint::of(&front_macs[0], base_ms, base_cost);
            return Err(Error::InvalidArgument(format!(
                "search: {label}: {budget:.2} ms is below the fastest scheme's predicted {:.2} ms \
                 (G {:?} over {}); nothing fits",
                fastest.predicted_ms,
                fastest.groups,
                space
                    .units
                    .iter()
                    .map(|u| u.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let tag = label.replace(' ', "-").replace('×', "x");
        let name = format!("found-{tag}");
        let desc = format!(
            "gconv search: {} at {}x{}x{}, batch {} {}, {label} on {}",
            spec.name,
            spec.input[0],
            spec.input[1],
            spec.input[2],
            cfg.batch,
            cfg.precision,
            rt.describe()
        );
        let scheme = space.scheme(&name, &desc, &best.groups);
        let found = cx.result(&scheme)?;
        let ref_scheme = match t {
            Target::AsFastAs(n) => Some(Scheme::load(n)?),
            _ => None,
        };
        pending.push((label, budget, scheme, found, reference, ref_scheme));
    }
    // Every scheme reported, measured in one interleaved session (identical ones once); the
    // dense model again, so its prediction (calibrated before the search) is checked too.
    let mut keys: Vec<Vec<usize>> = Vec::new();
    let mut specs: Vec<ModelSpec> = Vec::new();
    let mut slot = |scheme: &Scheme| -> Result<usize> {
        let g = space.site_groups(scheme)?;
        if let Some(i) = keys.iter().position(|k| *k == g) {
            return Ok(i);
        }
        keys.push(g);
        specs.push(space.spec_of(scheme)?);
        Ok(keys.len() - 1)
    };
    let dense_slot = slot(&dense_scheme)?;
    let mut slots = Vec::new();
    for (_, _, scheme, _, _, ref_scheme) in &pending {
        let r = ref_scheme.as_ref().map(&mut slot).transpose()?;
        slots.push((slot(scheme)?, r));
    }
    let spec_refs: Vec<&ModelSpec> = specs.iter().collect();
    let timed = time_interleaved(ctx, &spec_refs, at, (cfg.warmup, cfg.rounds), progress)?;
    let mut dense = dense;
    let dense_pred = dense.predicted_ms;
    let measure = |s: &mut SchemeResult, i: usize| {
        s.set_measured(timed[i].clone());
        s.set_vs_dense(dense_pred, timed[i].paired_ratio(&timed[dense_slot]));
    };
    measure(&mut dense, dense_slot);
    let mut results = Vec::new();
    for ((label, budget, scheme, mut found, mut reference, _), (fi, ri)) in
        pending.into_iter().zip(slots)
    {
        measure(&mut found, fi);
        let mut ratio = None;
        if let (Some(r), Some(ri)) = (reference.as_mut(), ri) {
            ratio = Some(timed[fi].paired_ratio(&timed[ri]));
            measure(r, ri);
        }
        results.push(SearchResult {
            target: label,
            budget_ms: budget,
            scheme_toml: scheme_file(&scheme, &found, rt, cfg.precision),
            found,
            reference,
            measured_ratio: ratio,
        });
    }
    let marks = marks(&space)
        .iter()
        .map(|s| cx.result(s))
        .collect::<Result<Vec<_>>>()?;
    let conv = match cfg.conv {
        ConvKind::Flgc => "flgc",
        _ => "sgc",
    };
    Ok(SearchReport {
        model: spec.name.clone(),
        input: spec.input,
        batch: cfg.batch,
        precision: cfg.precision,
        conv: conv.into(),
        per_layer: cfg.per_layer,
        device: rt.describe(),
        groups_searched: space.units.iter().flat_map(|u| u.groups.clone()).fold(
            Vec::new(),
            |mut v, g| {
                if !v.contains(&g) {
                    v.push(g);
                }
                v
            },
        ),
        unused_groups: space.unused_groups.clone(),
        stages: space.base.stage_names(),
        units: space
            .units
            .iter()
            .map(|u| UnitInfo {
                name: u.name.clone(),
                layers: u
                    .sites
                    .iter()
                    .map(|&i| space.sites[i].node.clone())
                    .collect(),
                groups: u.groups.clone(),
            })
            .collect(),
        space_size: space.size(),
        method: "exact: Pareto dynamic programming over the units",
        latency: LatencySummary {
            fixed_ms: lat.fixed_ms,
            other_layers_ms: lat.other_ms(),
            layers_measured_now: lat.measured_now,
            layers_from_cache: lat.from_cache,
            cache: cache.path().display().to_string(),
            layers: lat.layers.clone(),
            calibration: dense_t,
        },
        dense,
        results,
        marks,
        front_macs: front_macs
            .iter()
            .map(|p| FrontPoint::of(p, base_ms, base_cost))
            .collect(),
        front_params: front_params
            .iter()
            .map(|p| FrontPoint::of(p, base_ms, base_cost))
            .collect(),
        seconds: Seconds {
            layers: t_layers,
            end_to_end: t_e2e.elapsed().as_secs_f64(),
            total: t_start.elapsed().as_secs_f64(),
        },
    })
}

/// The scheme file: a comment saying how it was found, then the scheme.
fn scheme_file(scheme: &Scheme, found: &SchemeResult, rt: &Runtime, p: Precision) -> String {
    let timed_as = match p {
        Precision::F32 => String::new(),
        Precision::F16 => " (timed with --precision f16: run it so too)".into(),
    };
    format!(
        "# Found by `gconv search` on {}.\n# Predicted {:.2} ms, measured {} ms{timed_as}; {:.3} \
         GMACs, {:.3} M parameters.\n# Use it with --scheme FILE (info, infer, bench, train).\n{}",
        rt.describe(),
        found.predicted_ms,
        found.measured_ms.map_or("—".into(), |m| format!("{m:.2}")),
        found.macs as f64 / 1e9,
        found.params as f64 / 1e6,
        scheme.to_toml()
    )
}
