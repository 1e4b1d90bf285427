//! The planned device memory of a GPU training step, reported by every bench run on a GPU.

use super::{sized, BenchConfig, TrainingMemoryRow};
use crate::error::Result;
use crate::weights::Weights;
use crate::zoo::ConvKind;

/// The planned memory of a GPU training step (activations, gradients and scratch in
/// lifetime-planned buffers, against one buffer per value) for the FLGC ResNet-50-DSC and
/// MobileNetV2 at the configured size and large batch.
pub(super) fn training_memory(
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
