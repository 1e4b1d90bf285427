//! The GPU path: WGSL compute shaders on wgpu.
//!
//! * [`context`]: [`GpuContext`] (adapter from `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`, the
//!   adapter's own limits, buffers, read-back, a pipeline cache keyed by shader, entry point
//!   and override constants); [`pipelines`]: one shader module per entry point a model
//!   uses, compiled pipelines kept between processes by [`pipeline_cache`] (README, "Cold
//!   start").
//! * [`declare`]: how a shader is declared once (`shader!`, `wgsl_struct!`);
//!   [`launch`]: how it is called ([`Call`], [`Arg`], [`Dispatch`]).
//! * [`kernels`]: one launcher module per `shaders/<family>.wgsl`; it validates its
//!   arguments (wrong sizes are errors naming the layer, never panics) and returns calls.
//!   [`codegen`] generates the shaders whose register tiles are unrolled (`conv_fast`,
//!   `conv_tiled`, `gemv`, `roofline`).
//! * [`choice`]: which kernel runs each operation, per adapter and shape, and the per-layer
//!   overrides ([`choice::KernelChoice`]) an autotuner would set; [`roofline`] measures the
//!   adapter's streaming-read and GEMM roof; [`tune`] times the candidates per layer shape
//!   and caches the fastest on disk.
//! * [`lower`]: the one lowering of graph ops (forward and backward) to calls;
//!   [`program`]: calls plus lifetime-planned buffers, instantiated once per batch size.
//! * [`executor`]: inference ([`GpuModel`]); training lives in `train::GpuTrainer`.
//! * [`recovery`]: the context of a `Runtime`, recreated after a device loss.
//!
//! Kernels are written for a CPU "GPU" first (lavapipe): register tiles, no workgroup
//! memory, no barriers, small workgroups (`conv_fast`, `gemv`); real GPUs get other
//! candidates in [`choice`] (`conv_wgmem`: workgroup-memory tiles, coalesced loads).

pub mod adapter;
pub mod adapters;
pub mod choice;
pub mod codegen;
pub mod context;
pub mod declare;
pub mod executor;
pub mod family;
pub mod geometry;
pub mod kernels;
pub mod launch;
pub mod lower;
pub mod mirror;
pub mod pass_stages;
pub mod pipeline_cache;
pub mod pipelines;
pub mod precision;
pub mod prelude;
pub mod program;
pub mod recovery;
pub mod roofline;
pub mod tune;
pub mod twin;
pub mod wgsl_items;

pub use context::{run_dispatches, BindingKind, GpuContext, PipelineKey, ShaderSpec};
pub use executor::GpuModel;
pub use launch::{Arg, BufId, Call, Dispatch};
pub use pipeline_cache::GpuOptions;
pub use precision::Precision;
