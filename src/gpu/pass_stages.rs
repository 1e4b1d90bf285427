//! Where one forward pass's wall time goes, on the host's clock: the input's upload, the
//! encoding of every dispatch, the submit, the wait for the GPU and the read-back
//! ([`PassStages`], kept by [`super::GpuModel`] for its last pass). At batch 1 on a real GPU
//! the fixed costs (everything but the GPU's own work inside the wait) are what is ours to
//! cut; `gconv bench` reports the medians of its timed passes.

use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Seconds spent in each stage of one forward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PassStages {
    /// The input checked (and its range, where the pass keeps halves: the pass's first
    /// dispatch rounds it on the device), written to the queue
    /// (the first pass at a batch size also lowers the graph and compiles its pipelines).
    pub upload: f64,
    /// A command encoder with every dispatch of the pass (and the output's copy) recorded.
    pub encode: f64,
    /// `Queue::submit`.
    pub submit: f64,
    /// Waiting for the GPU: the input's transfer, every dispatch and the output's copy.
    pub wait: f64,
    /// Mapping the output and converting it (0 for a pass without read-back).
    pub read_back: f64,
    /// Dispatches recorded.
    pub dispatches: usize,
}

impl PassStages {
    /// The sum of the stages.
    pub fn total(&self) -> f64 {
        self.upload + self.encode + self.submit + self.wait + self.read_back
    }

    /// The median of each stage over `passes` (`None` for none).
    pub fn median(passes: &[PassStages]) -> Option<PassStages> {
        let med = |f: fn(&PassStages) -> f64| {
            let mut v: Vec<f64> = passes.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        (!passes.is_empty()).then(|| PassStages {
            upload: med(|p| p.upload),
            encode: med(|p| p.encode),
            submit: med(|p| p.submit),
            wait: med(|p| p.wait),
            read_back: med(|p| p.read_back),
            dispatches: passes[passes.len() / 2].dispatches,
        })
    }
}

/// A stopwatch read lap by lap.
pub(super) struct Laps(Instant);

impl Laps {
    pub(super) fn start() -> Self {
        Self(Instant::now())
    }

    /// Seconds since the start or the last lap.
    pub(super) fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let s = (now - self.0).as_secs_f64();
        self.0 = now;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_taken_stage_by_stage() {
        let p = |u: f64, w: f64| PassStages {
            upload: u,
            wait: w,
            dispatches: 3,
            ..PassStages::default()
        };
        let m = PassStages::median(&[p(3.0, 1.0), p(1.0, 9.0), p(2.0, 5.0)]).unwrap();
        assert_eq!((m.upload, m.wait, m.dispatches), (2.0, 5.0, 3));
        assert_eq!(m.total(), 7.0);
        assert!(PassStages::median(&[]).is_none());
        let mut laps = Laps::start();
        assert!(laps.lap() >= 0.0);
    }
}
