//! Training: explicit CPU-reference backward of every trainable op ([`backward`]), whole-graph
//! forward/backward with a tape ([`tape`]), SGD with momentum and learning-rate schedules
//! ([`optim`]), the CPU [`Trainer`], the GPU [`GpuTrainer`] (same steps with the WGSL training
//! kernels, one submit per step, tested against the CPU one) and in-memory datasets ([`data`]).
//!
//! FLGC layers train with the straight-through estimator of Wang et al. (Eqs. 16–18): see
//! [`backward::flgc_conv2d_backward`]. The inference-only ops (`GroupedConvTable`, `Gather`)
//! have no backward: train the FLGC form, then export it.

pub mod backward;
pub mod checkpoint;
pub mod data;
pub mod dataset;
pub mod device;
pub mod folder;
pub mod gpu;
pub mod log;
pub mod optim;
pub mod run;
pub mod selection;
pub mod tape;
pub mod trainer;

pub use crate::optim::{LrSchedule, SgdConfig};
pub use checkpoint::{read_checkpoint, write_checkpoint, Checkpoint, Normalization};
pub use data::{Batches, Dataset};
pub use dataset::TrainingData;
pub use device::trainer_for;
pub use folder::ImageFolder;
pub use gpu::GpuTrainer;
pub use optim::{trainable_params, ParamInfo, Sgd};
pub use run::{evaluate, EpochStats, Progress, StepStats, Train, TrainConfig};
pub use tape::{backward as backward_graph, forward, Gradients, Mode, Tape};
pub use trainer::Trainer;
