//! `gconv train` after a lost GPU device (a driver reset, a GPU that fell off the bus): the
//! run goes on from its last checkpoint on a new device instead of ending mid-epoch.
//!
//! The epoch during which the device is lost is dropped; a new [`GpuContext`] is opened and
//! a new trainer is made from the last checkpoint this run wrote (or the one it resumed from,
//! or the run's initial weights when no epoch has finished yet), and training continues at the
//! epoch after it. Shuffling is seeded per epoch, so the epochs that follow are those of an
//! uninterrupted run. At most [`MAX_RESTARTS`] times per run.
//!
//! For tests, `GCONV_FAULT_LOSE_DEVICE_AT_STEP=N` destroys the device after the N-th
//! training step of the run (counted from 1 across epochs), once.

use gconv::gpu::GpuContext;
use gconv::graph::Graph;
use gconv::train::{self, Train, TrainConfig};
use gconv::{Error, Result, Weights};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a restart gives: a trainer on a new device, the device, the epoch to go on with.
pub type Restarted = (Box<dyn Train>, Option<Arc<GpuContext>>, usize);

/// Most device losses one run survives.
pub const MAX_RESTARTS: usize = 3;

/// Where a run restarts after a device loss.
pub struct Restart {
    graph: Graph,
    config: TrainConfig,
    /// The run's start: weights, momentum, epoch.
    initial: (Weights, Option<Weights>, usize),
    /// The last checkpoint written or resumed from.
    checkpoint: Option<PathBuf>,
    restarts: usize,
    /// The step after which the device is destroyed (tests), until it was.
    fault_at: Option<usize>,
}

impl Restart {
    /// The restart point of a run starting at `epoch` from `weights` / `momentum` (read from
    /// `resumed`, when it resumed).
    pub fn new(
        graph: &Graph,
        config: TrainConfig,
        (weights, momentum, epoch): (&Weights, Option<&Weights>, usize),
        resumed: Option<&Path>,
    ) -> Self {
        let fault_at = std::env::var("GCONV_FAULT_LOSE_DEVICE_AT_STEP")
            .ok()
            .and_then(|v| v.trim().parse().ok());
        Self {
            graph: graph.clone(),
            config,
            initial: (weights.clone(), momentum.cloned(), epoch),
            checkpoint: resumed.map(Path::to_path_buf),
            restarts: 0,
            fault_at,
        }
    }

    /// Records that `path` now holds the last finished epoch.
    pub fn saved(&mut self, path: &Path) {
        self.checkpoint = Some(path.to_path_buf());
    }

    /// Test fault injection: destroys the device after the run's `step`-th step.
    pub fn maybe_lose(&mut self, gpu: Option<&Arc<GpuContext>>, step: usize) {
        if let (Some(ctx), Some(at)) = (gpu, self.fault_at) {
            if step == at {
                self.fault_at = None;
                log::warn!("GCONV_FAULT_LOSE_DEVICE_AT_STEP={at}: destroying the device");
                ctx.device.destroy();
            }
        }
    }

    /// After `err` in an epoch: when it is a lost device (and restarts are left), a new
    /// device, a trainer from the last checkpoint and the epoch to go on with; otherwise
    /// `err` itself.
    pub fn after(&mut self, err: Error, gpu: Option<&Arc<GpuContext>>) -> Result<Restarted> {
        let lost = matches!(err, Error::DeviceLost(_)) || gpu.is_some_and(|c| c.lost().is_some());
        if !lost || gpu.is_none() || self.restarts >= MAX_RESTARTS {
            return Err(err);
        }
        self.restarts += 1;
        let (weights, momentum, epoch) = match &self.checkpoint {
            Some(p) => {
                let c = train::read_checkpoint(p)?;
                (c.weights, Some(c.momentum), c.epoch)
            }
            None => self.initial.clone(),
        };
        let from = self
            .checkpoint
            .as_ref()
            .map_or("the start of the run".into(), |p| {
                format!("{} (epoch {epoch})", p.display())
            });
        eprintln!(
            "warning: {err}; resuming from {from} on a new device (restart {} of at most \
             {MAX_RESTARTS})",
            self.restarts
        );
        // The adapter the run was on (`--device`, `WGPU_ADAPTER_NAME`), with its options.
        let ctx = Arc::new(gpu.map_or_else(GpuContext::new, |c| c.reopen())?);
        let mut t =
            train::trainer_for(Some(ctx.clone()), self.graph.clone(), weights, self.config)?;
        if let Some(m) = &momentum {
            t.load_optimizer_state(m)?;
        }
        Ok((t, Some(ctx), epoch))
    }
}
