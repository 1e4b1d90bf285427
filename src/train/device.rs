//! The choice of trainer for a device: the GPU trainer on a GPU context, else the CPU
//! reference trainer.

use super::run::{Train, TrainConfig};
use super::{GpuTrainer, Trainer};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::graph::Graph;
use crate::weights::Weights;
use std::sync::Arc;

/// The trainer for a device: the GPU trainer on `gpu`, else the CPU reference trainer.
pub fn trainer_for(
    gpu: Option<Arc<GpuContext>>,
    graph: Graph,
    weights: Weights,
    config: TrainConfig,
) -> Result<Box<dyn Train>> {
    Ok(match gpu {
        Some(ctx) => Box::new(GpuTrainer::new(ctx, graph, weights, config)?),
        None => Box::new(Trainer::new(graph, weights, config)?),
    })
}
