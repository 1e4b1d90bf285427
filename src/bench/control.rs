//! Watching and stopping a bench run from another thread (the desktop app's window):
//! [`BenchControl`] is shared by reference with [`super::run_bench_with`], which reports every
//! timed pass to it and stops at the next pass once [`BenchControl::cancel`] was called.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Progress within the current step of a bench run and its cancel flag; `Sync`, so one
/// thread runs the bench while another reads [`BenchControl::pass`] and may cancel.
///
/// A cancelled run returns [`Error::Cancelled`] from the pass after the request (a pass is
/// one forward pass of one model, at most seconds on a software adapter) and has written
/// nothing: a bench run only measures; its caller writes the report once it has one.
#[derive(Debug, Default)]
pub struct BenchControl {
    cancelled: AtomicBool,
    pass: AtomicUsize,
    passes: AtomicUsize,
    phase: Mutex<&'static str>,
}

/// Where the current step of a run is: `phase` (`warm-up`, `timed`, `per-layer`) and pass
/// `done` of `total` in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pass {
    /// What the passes are for.
    pub phase: &'static str,
    /// Passes finished in this phase.
    pub done: usize,
    /// Passes this phase runs.
    pub total: usize,
}

impl BenchControl {
    /// Asks the run to stop at its next pass.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether [`BenchControl::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// The pass the run is at.
    pub fn pass(&self) -> Pass {
        Pass {
            phase: *self.phase.lock().unwrap_or_else(|p| p.into_inner()),
            done: self.pass.load(Ordering::SeqCst),
            total: self.passes.load(Ordering::SeqCst),
        }
    }

    /// Records that `done` of `total` passes of `phase` are finished, then
    /// [`Error::Cancelled`] if the run was asked to stop.
    pub(crate) fn tick(&self, phase: &'static str, done: usize, total: usize) -> Result<()> {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
        self.passes.store(total, Ordering::SeqCst);
        self.pass.store(done, Ordering::SeqCst);
        self.check()
    }

    /// [`Error::Cancelled`] if the run was asked to stop.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled(
                "the benchmark run was stopped before it finished; no report was made".into(),
            ))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_seen_and_cancel_stops_the_next_one() {
        let c = BenchControl::default();
        c.tick("timed", 2, 5).unwrap();
        assert_eq!(
            c.pass(),
            Pass {
                phase: "timed",
                done: 2,
                total: 5
            }
        );
        c.cancel();
        assert!(matches!(c.tick("timed", 3, 5), Err(Error::Cancelled(_))));
        assert!(c.check().is_err());
    }
}
