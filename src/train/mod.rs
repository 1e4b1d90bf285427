//! Training: explicit CPU-reference backward of every trainable op ([`backward`]), whole-graph
//! forward/backward with a tape ([`tape`]), SGD with momentum and learning-rate schedules
//! ([`optim`]), the CPU [`Trainer`], the GPU [`GpuTrainer`] (same steps with the WGSL training
//! kernels, one submit per step, tested against the CPU one) and in-memory datasets ([`data`]).
//!
//! FLGC layers train with the straight-through estimator of Wang et al. (Eqs. 16–18): see
//! [`backward::flgc_conv2d_backward`]. The inference-only ops (`GroupedConvTable`, `Gather`)
//! have no backward: train the FLGC form, then export it.

pub mod backward;
pub mod data;
pub mod gpu;
pub mod log;
pub mod optim;
pub mod run;
pub mod selection;
pub mod tape;
pub mod trainer;

pub use data::{Batches, Dataset};
pub use gpu::GpuTrainer;
pub use optim::{trainable_params, LrSchedule, ParamInfo, Sgd, SgdConfig};
pub use run::{evaluate, trainer_for, Progress, Train};
pub use tape::{backward as backward_graph, forward, Gradients, Mode, Tape};
pub use trainer::{EpochStats, StepStats, TrainConfig, Trainer};
