//! FLGC's learnt grouping as training sees it: how the selection matrices S̄ (`select_in`,
//! C×G) and T̄ (`select_out`, N×G) start ([`FlgcInit`]), and what the grouping they select
//! looks like during training ([`LayerGroups`], [`GroupChanges`]).
//!
//! Wang et al. (§2.2, Algorithm 1) start S̄ and T̄ as N(0, 1), so every channel and filter
//! picks a random group. In a narrow layer that often leaves a group with filters but no
//! input channel: at G = 8 and C = 16 channels the expected number of empty input groups is
//! G·(1 − 1/G)^C ≈ 0.9 per layer, and each of their filters outputs a constant.
//! [`FlgcInit::Balanced`] starts from standard grouping (SGC) instead — the paper allows
//! "results from other methods" — so training starts as SGC and moves away only where the
//! loss says so.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::ops::{row_argmax, Op};
use crate::tensor::Tensor;
use crate::weights::Weights;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;

/// How FLGC selection matrices start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlgcInit {
    /// The SGC partition (channel i of R in group ⌊i·G/R⌋-like even blocks) ahead by a
    /// margin ([`BALANCED_MARGIN`] unless [`init_selection_with_margin`] says), plus Gaussian noise of std [`BALANCED_NOISE`] clipped to less than
    /// half the margin: every group starts non-empty and the mask equals SGC's.
    #[default]
    Balanced,
    /// Standard Gaussian, as in the paper.
    Gaussian,
}

/// Default lead of a row's own group in a balanced start (logits, before the row softmax).
pub const BALANCED_MARGIN: f32 = 1.0;
/// Standard deviation of the noise on a balanced start (clipped to ±0.45·margin).
pub const BALANCED_NOISE: f32 = 0.1;

/// Group of row `i` of `rows` split into `g` contiguous groups as evenly as possible, the
/// larger shares first (how [`crate::ops::FlgcSpec`]'s cost counts SGC).
pub fn even_group(i: usize, rows: usize, g: usize) -> usize {
    let (base, extra) = (rows / g, rows % g);
    let big = extra * (base + 1);
    if i < big {
        i / (base + 1)
    } else {
        extra + (i - big) / base.max(1)
    }
}

/// A balanced `[rows, g]` selection matrix whose own-group logits lead by `margin` (see
/// [`FlgcInit::Balanced`]); the noise is clipped to ±0.45·margin, so the selection is SGC's.
pub fn balanced_selection(rows: usize, g: usize, margin: f32, rng: &mut SmallRng) -> Tensor {
    let noise = Normal::new(0.0, BALANCED_NOISE).expect("positive std");
    let clip = 0.45 * margin;
    Tensor::from_fn(&[rows, g], |k| {
        let (i, j) = (k / g, k % g);
        let lead = if even_group(i, rows, g) == j {
            margin
        } else {
            0.0
        };
        lead + noise.sample(rng).clamp(-clip, clip)
    })
}

/// Re-initialises every FLGC layer's `select_in` and `select_out` in `weights` as `init` says
/// (seeded; [`Weights::init`] draws the Gaussian start), balanced with [`BALANCED_MARGIN`].
pub fn init_selection(graph: &Graph, weights: &mut Weights, init: FlgcInit, seed: u64) {
    init_selection_with_margin(graph, weights, init, BALANCED_MARGIN, seed)
        .expect("the default margin is valid");
}

/// [`init_selection`] with the balanced start's margin given (`gconv train --flgc-margin`):
/// how far each row's own group leads, in logits. The selection is SGC's whatever the margin;
/// what the margin sets is how large a gradient step must be before a channel or filter
/// changes group (a smaller margin lets the grouping move sooner). An error unless the margin
/// is finite and positive (at 0 every row would tie, and ties pick group 0).
pub fn init_selection_with_margin(
    graph: &Graph,
    weights: &mut Weights,
    init: FlgcInit,
    margin: f32,
    seed: u64,
) -> Result<()> {
    if !(margin.is_finite() && margin > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "FLGC balanced margin {margin} must be finite and > 0"
        )));
    }
    if init == FlgcInit::Gaussian {
        return Ok(());
    }
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5e1e_c7ed);
    for n in &graph.nodes {
        if let Op::FlgcConv2d(s) = &n.op {
            for (suffix, rows) in [("select_in", s.in_channels), ("select_out", s.out_channels)] {
                let t = balanced_selection(rows, s.groups, margin, &mut rng);
                weights.insert(format!("{}.{suffix}", n.name), t);
            }
        }
    }
    Ok(())
}

/// The grouping an FLGC layer's selection matrices select now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayerGroups {
    /// The layer.
    pub layer: String,
    /// Group of every input channel.
    #[serde(skip)]
    pub in_group: Vec<usize>,
    /// Group of every filter.
    #[serde(skip)]
    pub out_group: Vec<usize>,
    /// Input channels per group.
    pub in_sizes: Vec<usize>,
    /// Filters per group.
    pub out_sizes: Vec<usize>,
    /// Groups with filters but no input channel (their filters output a constant).
    pub empty_in: usize,
    /// Filters in such groups.
    pub dead_filters: usize,
    /// Exported multiply-accumulates per output pixel, `Σ_g in_g·out_g·kh·kw`.
    pub macs_per_pixel: u64,
    /// The same for standard grouping (SGC) at the same G.
    pub sgc_macs_per_pixel: u64,
}

impl LayerGroups {
    /// Smallest and largest input-group sizes.
    pub fn in_range(&self) -> (usize, usize) {
        min_max(&self.in_sizes)
    }
    /// Smallest and largest filter-group sizes.
    pub fn out_range(&self) -> (usize, usize) {
        min_max(&self.out_sizes)
    }
}

fn min_max(v: &[usize]) -> (usize, usize) {
    let lo = v.iter().copied().min().unwrap_or(0);
    (lo, v.iter().copied().max().unwrap_or(0))
}

/// The grouping of every FLGC layer of `graph` under `weights`, in graph order.
pub fn layer_groups(graph: &Graph, weights: &Weights) -> Result<Vec<LayerGroups>> {
    let mut out = Vec::new();
    for n in &graph.nodes {
        let Op::FlgcConv2d(s) = &n.op else { continue };
        let get = |suffix: &str| {
            let key = format!("{}.{suffix}", n.name);
            weights.get(&key).ok_or(Error::Weights {
                key,
                msg: "missing FLGC selection matrix".into(),
            })
        };
        let in_group = row_argmax(get("select_in")?)?;
        let out_group = row_argmax(get("select_out")?)?;
        let g = s.groups;
        let mut in_sizes = vec![0; g];
        let mut out_sizes = vec![0; g];
        in_group.iter().for_each(|&j| in_sizes[j] += 1);
        out_group.iter().for_each(|&j| out_sizes[j] += 1);
        let dead = |j: usize| in_sizes[j] == 0 && out_sizes[j] > 0;
        let kk = s.window() as u64;
        out.push(LayerGroups {
            layer: n.name.clone(),
            empty_in: (0..g).filter(|&j| dead(j)).count(),
            dead_filters: out_group.iter().filter(|&&j| dead(j)).count(),
            macs_per_pixel: (0..g)
                .map(|j| (in_sizes[j] * out_sizes[j]) as u64 * kk)
                .sum(),
            sgc_macs_per_pixel: crate::ops::even_split_pairs(s.out_channels, s.in_channels, g) * kk,
            in_group,
            out_group,
            in_sizes,
            out_sizes,
        });
    }
    Ok(out)
}

/// How the grouping of one layer changed between two looks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupChanges {
    /// The layer.
    pub layer: String,
    /// Input channels now in another group.
    pub moved_in: usize,
    /// Filters now in another group.
    pub moved_out: usize,
    /// Groups without input channels but with filters, now.
    pub empty_in: usize,
    /// Filters without input, now.
    pub dead_filters: usize,
    /// Smallest and largest input group, now.
    pub in_range: (usize, usize),
    /// Smallest and largest filter group, now.
    pub out_range: (usize, usize),
}

/// Per layer, what changed from `before` to `now` (layers matched by position).
pub fn group_changes(before: &[LayerGroups], now: &[LayerGroups]) -> Vec<GroupChanges> {
    let moved = |a: &[usize], b: &[usize]| a.iter().zip(b).filter(|(x, y)| x != y).count();
    now.iter()
        .zip(before)
        .map(|(n, b)| GroupChanges {
            layer: n.layer.clone(),
            moved_in: moved(&b.in_group, &n.in_group),
            moved_out: moved(&b.out_group, &n.out_group),
            empty_in: n.empty_in,
            dead_filters: n.dead_filters,
            in_range: n.in_range(),
            out_range: n.out_range(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_groups_are_contiguous_and_balanced() {
        for (rows, g) in [(16, 4), (10, 4), (7, 3), (5, 5), (3, 1)] {
            let groups: Vec<usize> = (0..rows).map(|i| even_group(i, rows, g)).collect();
            assert!(groups.windows(2).all(|w| w[0] <= w[1]), "{groups:?}");
            let mut sizes = vec![0; g];
            groups.iter().for_each(|&j| sizes[j] += 1);
            let (lo, hi) = min_max(&sizes);
            assert!(
                hi - lo <= 1 && lo >= 1,
                "{rows} rows, {g} groups: {sizes:?}"
            );
        }
    }
}
