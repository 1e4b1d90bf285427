//! The exact search: a scheme's latency, MACs and parameters are sums over its units (see
//! [`super::space`]), so the Pareto front of (latency ↓, value ↑) over all schemes is built
//! unit by unit — after each unit only the non-dominated partial schemes are kept, which loses
//! nothing: a dominated partial scheme stays dominated whatever the remaining units add
//! (dynamic programming over a multiple-choice knapsack, without rounding the latencies). The
//! best scheme under a budget is the front's last point within it.
//!
//! The value is compared lexicographically — MACs first, parameters to break ties (or the
//! other way round for the parameter front) — an order that sums respect, so the front is
//! exact for the objective "the most MACs that fit, then the most parameters".

use crate::error::{Error, Result};
use serde::Serialize;

/// One option of one unit: its G and what it costs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    /// G.
    pub g: usize,
    /// Milliseconds (the unit's layers at this G).
    pub ms: f64,
    /// MACs per sample.
    pub macs: u64,
    /// Parameters.
    pub params: u64,
}

/// What the front maximises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// MACs, then parameters.
    Macs,
    /// Parameters, then MACs.
    Params,
}

/// A point of a front: a scheme (G per unit) and its sums over the units.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// G per unit.
    pub groups: Vec<usize>,
    /// Summed unit milliseconds (without the model's other layers and fixed cost).
    pub ms: f64,
    /// Summed unit MACs.
    pub macs: u64,
    /// Summed unit parameters.
    pub params: u64,
}

impl Point {
    fn key(&self, v: Value) -> (u64, u64) {
        match v {
            Value::Macs => (self.macs, self.params),
            Value::Params => (self.params, self.macs),
        }
    }
}

/// At most this many partial schemes are kept after a unit; beyond it the space is refused
/// rather than searched approximately.
pub const MAX_FRONT: usize = 2_000_000;

/// The exact Pareto front over `units` (each a list of choices), latency ascending and value
/// strictly ascending: no point is slower and worth less than another.
pub fn pareto_front(units: &[Vec<Choice>], value: Value) -> Result<Vec<Point>> {
    let mut front = vec![Point {
        groups: Vec::new(),
        ms: 0.0,
        macs: 0,
        params: 0,
    }];
    for (i, options) in units.iter().enumerate() {
        if options.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "search: unit {i} has no G to choose from"
            )));
        }
        let mut next: Vec<Point> = Vec::with_capacity(front.len() * options.len());
        for p in &front {
            for c in options {
                let mut groups = Vec::with_capacity(units.len());
                groups.extend_from_slice(&p.groups);
                groups.push(c.g);
                next.push(Point {
                    groups,
                    ms: p.ms + c.ms,
                    macs: p.macs + c.macs,
                    params: p.params + c.params,
                });
            }
        }
        front = prune(next, value);
        if front.len() > MAX_FRONT {
            return Err(Error::InvalidArgument(format!(
                "search: more than {MAX_FRONT} non-dominated schemes after {} units; search per \
                 stage or with fewer G",
                i + 1
            )));
        }
    }
    Ok(front)
}

/// The non-dominated points, latency ascending (ties: the more valuable first, so it is kept).
fn prune(mut points: Vec<Point>, value: Value) -> Vec<Point> {
    points.sort_by(|a, b| {
        a.ms.total_cmp(&b.ms)
            .then_with(|| b.key(value).cmp(&a.key(value)))
    });
    let mut out: Vec<Point> = Vec::with_capacity(points.len());
    for p in points {
        if out.last().is_none_or(|l| p.key(value) > l.key(value)) {
            out.push(p);
        }
    }
    out
}

/// The most valuable point of `front` within `budget_ms`, or `None` when even the fastest is
/// over it.
pub fn best_within(front: &[Point], budget_ms: f64) -> Option<&Point> {
    front.iter().take_while(|p| p.ms <= budget_ms).last()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(seed: u64, n: usize) -> Vec<Vec<Choice>> {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        (0..n)
            .map(|_| {
                [1, 2, 4, 8]
                    .iter()
                    .map(|&g| Choice {
                        g,
                        ms: 1.0 + (next() % 1000) as f64 / 100.0,
                        macs: (next() % 50) as u64 * 1000 / g as u64,
                        params: (next() % 7) as u64,
                    })
                    .collect()
            })
            .collect()
    }

    /// Every scheme, by brute force.
    fn all(units: &[Vec<Choice>]) -> Vec<Point> {
        let mut out = vec![Point {
            groups: vec![],
            ms: 0.0,
            macs: 0,
            params: 0,
        }];
        for u in units {
            out = out
                .iter()
                .flat_map(|p| {
                    u.iter().map(move |c| {
                        let mut groups = p.groups.clone();
                        groups.push(c.g);
                        Point {
                            groups,
                            ms: p.ms + c.ms,
                            macs: p.macs + c.macs,
                            params: p.params + c.params,
                        }
                    })
                })
                .collect();
        }
        out
    }

    /// The front's best under a budget equals brute force's best, for random spaces and
    /// budgets, with either value; every brute-force point is dominated by (or on) the front.
    #[test]
    fn front_is_exact_against_brute_force() {
        for seed in 0..40 {
            let u = units(seed, 5);
            let every = all(&u);
            for value in [Value::Macs, Value::Params] {
                let front = pareto_front(&u, value).unwrap();
                assert!(front
                    .windows(2)
                    .all(|w| w[0].ms <= w[1].ms && w[0].key(value) < w[1].key(value)));
                for p in &every {
                    assert!(
                        front
                            .iter()
                            .any(|f| f.ms <= p.ms && f.key(value) >= p.key(value)),
                        "seed {seed}: {p:?} not dominated"
                    );
                }
                for budget in [0.5, 8.0, 20.0, 31.5, 45.0, 80.0] {
                    let want = every
                        .iter()
                        .filter(|p| p.ms <= budget)
                        .map(|p| p.key(value))
                        .max();
                    let got = best_within(&front, budget);
                    assert_eq!(
                        got.map(|p| p.key(value)),
                        want,
                        "seed {seed} budget {budget}"
                    );
                    if let Some(p) = got {
                        let sum: f64 = p
                            .groups
                            .iter()
                            .zip(&u)
                            .map(|(g, opts)| opts.iter().find(|c| c.g == *g).unwrap().ms)
                            .sum();
                        assert!((sum - p.ms).abs() < 1e-9 && p.ms <= budget);
                    }
                }
            }
        }
    }

    #[test]
    fn a_unit_without_choices_is_an_error() {
        let e = pareto_front(&[vec![]], Value::Macs).unwrap_err();
        assert!(e.to_string().contains("no G"), "{e}");
    }
}
