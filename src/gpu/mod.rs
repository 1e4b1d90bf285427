//! The GPU path: WGSL compute shaders on wgpu.
//!
//! * [`context`]: [`GpuContext`] (adapter from `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`, the
//!   adapter's own limits, buffers, read-back, a pipeline cache keyed by shader, entry point
//!   and override constants), [`Dispatch`], [`TensorRef`] and [`run_dispatches`].
//! * [`kernels`]: one launcher module per `shaders/<family>.wgsl`. A launcher validates its
//!   arguments (wrong sizes are errors naming the layer, never panics), writes the
//!   parameter uniform, picks the entry point for the adapter and shape, and returns
//!   [`Dispatch`]es that an executor records into one compute pass per run.
//!
//! Kernels are written for a CPU "GPU" first (lavapipe): register tiles, no workgroup
//! memory, no barriers, small workgroups; the choices that depend on the adapter live in
//! small tuning functions (e.g. [`kernels::conv::tuning`]) so real GPUs can get other ones.

pub mod context;
pub mod executor;
pub mod kernels;
pub mod roofline;

pub use context::{
    run_dispatches, BindingKind, Dispatch, GpuContext, PipelineKey, ShaderSpec, TensorRef,
};
