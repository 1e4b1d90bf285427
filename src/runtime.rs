//! The embeddable API: one way in, the same for CPU and GPU.
//!
//! ```no_run
//! use gconv::{Device, LoadOptions, Runtime, Tensor};
//! use gconv::zoo::ModelSpec;
//!
//! let rt = Runtime::new(Device::Auto)?;               // GPU if there is one, else CPU (with a warning)
//! let spec = ModelSpec::load("resnet50")?;            // a zoo name or a path to a .toml
//! let mut model = rt.load(&spec, None, &LoadOptions::default())?; // None: seeded He init
//! let x = Tensor::zeros(&[1, 3, 224, 224]);
//! let y = model.run(&x)?;                             // [1, 1000]
//! # Ok::<(), gconv::Error>(())
//! ```
//!
//! **A lost GPU device** (a driver reset, `wgpu::Device::destroy`) fails the call during
//! which it happens with [`Error::DeviceLost`]; the next
//! [`Model::run`] of any model of the runtime recreates the device
//! ([`crate::gpu::recovery`]) and the model's pipelines and buffers (from the weights it keeps
//! on the host, with the same kernels), so it succeeds with the same outputs. Call
//! [`Runtime::recover`] (or [`Model::recover`]) to do it before the next run.

pub use crate::compile::FlgcMode;
use crate::compile::{compile, CompileOptions};
use crate::cpu;
use crate::error::{Error, Result};
use crate::gpu::choice::KernelChoice;
use crate::gpu::context::GpuContext;
use crate::gpu::executor::{GpuModel, PlanReport};
use crate::gpu::pipeline_cache::GpuOptions;
use crate::gpu::precision::Precision;
use crate::gpu::recovery::ContextSlot;
use crate::graph::Graph;
use crate::tensor::Tensor;
use crate::weights::Weights;
use crate::zoo::ModelSpec;
use std::sync::Arc;

/// Where models run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The CPU reference path.
    Cpu,
    /// A wgpu adapter (Vulkan / Metal / DX12; lavapipe counts); an error if there is none.
    Gpu,
    /// A GPU when there is one, otherwise the CPU with a one-line warning.
    Auto,
}

/// Options of [`Runtime::load`].
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// Fold batch norms into the preceding convolutions (default true).
    pub fold_bn: bool,
    /// How FLGC layers run.
    pub flgc: FlgcMode,
    /// Seed of the He/Kaiming initialisation when no weights are given.
    pub seed: u64,
    /// Use the kernel choices `gconv tune` cached for this batch size
    /// ([`crate::gpu::tune`]; default `Some(1)`); `None`, or `GCONV_TUNE=off`, runs the
    /// candidate lists' defaults.
    pub tuned_batch: Option<usize>,
    /// How the GPU stores weights and activations ([`Precision`]; default f32). `F16` applies
    /// to a layer's weights where its kernel reads halves, and to the activations where the
    /// adapter has `SHADER_F16` and every kernel of the pass stores them
    /// ([`crate::gpu::precision`]); the CPU path ignores it.
    pub precision: Precision,
    /// The model will run once or a few times (a one-shot `gconv infer`): on a CPU adapter,
    /// small convolutions take kernels that compile fast rather than run fast
    /// ([`KernelChoice::with_one_shot`]); default false.
    pub one_shot: bool,
}

impl LoadOptions {
    /// The compile options these load options ask for.
    pub fn compile(&self) -> CompileOptions {
        CompileOptions {
            fold_bn: self.fold_bn,
            flgc: self.flgc,
        }
    }
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            fold_bn: true,
            flgc: FlgcMode::Reordered,
            seed: 0,
            tuned_batch: Some(1),
            precision: Precision::F32,
            one_shot: false,
        }
    }
}

/// A device to run models on.
pub struct Runtime {
    gpu: Option<Arc<ContextSlot>>,
}

impl Runtime {
    /// Opens the device. `Device::Auto` falls back to the CPU with a warning on stderr.
    /// Compiled GPU pipelines are cached on disk unless `GCONV_PIPELINE_CACHE=off`.
    pub fn new(device: Device) -> Result<Self> {
        Self::with_gpu_options(device, &GpuOptions::from_env())
    }

    /// [`Runtime::new`] with explicit GPU options, e.g. `GpuOptions { pipeline_cache: None }`
    /// for no on-disk pipeline cache.
    pub fn with_gpu_options(device: Device, opts: &GpuOptions) -> Result<Self> {
        match device {
            Device::Cpu => Ok(Self { gpu: None }),
            Device::Gpu => Ok(Self::with_context(Arc::new(GpuContext::with_options(
                opts,
            )?))),
            Device::Auto => match GpuContext::with_options(opts) {
                Ok(ctx) => Ok(Self::with_context(Arc::new(ctx))),
                Err(e) => {
                    eprintln!(
                        "warning: {e}; running on the CPU reference path (for a software GPU on Debian: apt-get install mesa-vulkan-drivers libvulkan1)"
                    );
                    Ok(Self { gpu: None })
                }
            },
        }
    }

    /// A runtime on an existing GPU context (shares its pipeline cache). After a device
    /// loss it is replaced by a context on the same adapter ([`GpuContext::reopen`]).
    pub fn with_context(ctx: Arc<GpuContext>) -> Self {
        Self {
            gpu: Some(Arc::new(ContextSlot::new(ctx))),
        }
    }

    /// Whether models run on a GPU.
    pub fn is_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// The GPU context in use, if any (after a device loss and [`Runtime::recover`] or a
    /// model's next run, the new one).
    pub fn gpu(&self) -> Option<&Arc<GpuContext>> {
        self.gpu.as_deref().map(ContextSlot::current)
    }

    /// Recreates the GPU device if it was lost: `Ok(true)` when a new one was made (the
    /// models of this runtime move to it on their next run), `Ok(false)` when the device is
    /// alive or this is the CPU; an error when no new device can be made.
    pub fn recover(&self) -> Result<bool> {
        let Some(slot) = &self.gpu else {
            return Ok(false);
        };
        let before = slot.current().clone();
        Ok(!Arc::ptr_eq(&before, slot.recover()?))
    }

    /// How many times this runtime recreated its GPU device.
    pub fn recoveries(&self) -> usize {
        self.gpu.as_ref().map_or(0, |s| s.recoveries())
    }

    /// One line naming the device: adapter name, backend and driver, or the CPU.
    pub fn describe(&self) -> String {
        match self.gpu() {
            Some(g) => g.describe(),
            None => format!(
                "CPU reference path ({} threads)",
                rayon::current_num_threads()
            ),
        }
    }

    /// Builds `spec` and loads it with `weights` (seeded He init when `None`).
    pub fn load(
        &self,
        spec: &ModelSpec,
        weights: Option<Weights>,
        opts: &LoadOptions,
    ) -> Result<Model> {
        let graph = spec.build()?;
        let weights = match weights {
            Some(w) => w,
            None => Weights::init(&graph, opts.seed),
        };
        self.load_graph(graph, weights, opts)
    }

    /// Imports an ONNX model ([`crate::onnx::read_onnx`]), folds its channel shuffles, splits
    /// and concats into the convolutions ([`crate::graph::fold_permutations()`]) and loads it.
    pub fn load_onnx(
        &self,
        path: impl AsRef<std::path::Path>,
        opts: &LoadOptions,
    ) -> Result<Model> {
        let m = crate::onnx::read_onnx(path)?;
        let (g, w, _) = crate::graph::fold_permutations(&m.graph, &m.weights)?;
        self.load_graph(g, w, opts)
    }

    /// Loads an already built graph with its weights (compiled for inference by
    /// [`crate::compile`]).
    pub fn load_graph(&self, graph: Graph, weights: Weights, opts: &LoadOptions) -> Result<Model> {
        let (g, w) = compile(&graph, &weights, &opts.compile())?;
        let backend = match &self.gpu {
            Some(slot) => {
                let ctx = slot.recover()?;
                let choice = match opts.tuned_batch {
                    Some(b) => crate::gpu::tune::cached_choice_for(ctx, &g, b, opts.precision),
                    None => KernelChoice::default(),
                }
                .with_precision(opts.precision)
                .with_one_shot(opts.one_shot);
                let m = GpuModel::with_choice(ctx.clone(), g.clone(), &w, choice)?;
                Backend::Gpu(Box::new(m), slot.clone())
            }
            None => Backend::Cpu,
        };
        Ok(Model {
            graph,
            exec_graph: g,
            weights: w,
            backend,
        })
    }
}

enum Backend {
    Cpu,
    /// The model and the runtime's context slot (to move to a new device after a loss).
    Gpu(Box<GpuModel>, Arc<ContextSlot>),
}

/// A loaded model, ready to run.
pub struct Model {
    graph: Graph,
    exec_graph: Graph,
    weights: Weights,
    backend: Backend,
}

impl Model {
    /// Runs a forward pass on a `[B, C, H, W]` input.
    /// On the GPU, a device lost since the last run is recreated first ([`Model::recover`]).
    pub fn run(&mut self, input: &Tensor) -> Result<Tensor> {
        self.recover()?;
        match &mut self.backend {
            Backend::Cpu => cpu::run_graph(&self.exec_graph, &self.weights, input),
            // A failure on a lost device says so (the executor only sees a failed read-back).
            Backend::Gpu(m, _) => m.run(input).map_err(|e| match m.context().check_lost() {
                Err(Error::DeviceLost(m)) => Error::DeviceLost(format!(
                    "{m}; the next run recreates the device and this model on it"
                )),
                Err(lost) => lost,
                Ok(()) => e,
            }),
        }
    }

    /// Moves the model to a new device when the runtime's was lost: recreates the device
    /// (unless another model of the runtime already did) and this model's pipelines and
    /// buffers on it, from its weights and with the same kernels. `Ok(true)` when it moved,
    /// `Ok(false)` when there was nothing to do (a live device, or the CPU).
    pub fn recover(&mut self) -> Result<bool> {
        let Backend::Gpu(m, slot) = &mut self.backend else {
            return Ok(false);
        };
        if Arc::ptr_eq(m.context(), slot.current()) && m.context().lost().is_none() {
            return Ok(false);
        }
        let ctx = slot.recover()?.clone();
        let choice = m.choice().clone();
        **m = GpuModel::with_choice(ctx, self.exec_graph.clone(), &self.weights, choice)?;
        Ok(true)
    }

    /// The model's graph as described (before load-time passes).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The graph that actually runs (BN folded, FLGC compiled).
    pub fn exec_graph(&self) -> &Graph {
        &self.exec_graph
    }

    /// The weights of [`Model::exec_graph`].
    pub fn exec_weights(&self) -> &Weights {
        &self.weights
    }

    /// Whether this model runs on the GPU.
    pub fn is_gpu(&self) -> bool {
        matches!(self.backend, Backend::Gpu(..))
    }

    /// The GPU model, for timing and memory reports, as it is: after a device loss it is
    /// still the lost device's until [`Model::recover`] (or the next [`Model::run`]) moves
    /// it, so a caller that runs it directly recovers first, as `gconv bench` does.
    pub fn gpu_model(&mut self) -> Option<&mut GpuModel> {
        match &mut self.backend {
            Backend::Gpu(m, _) => Some(m),
            Backend::Cpu => None,
        }
    }

    /// The activation-buffer plan at `batch` (GPU only).
    pub fn plan_report(&mut self, batch: usize) -> Result<Option<PlanReport>> {
        match &mut self.backend {
            Backend::Gpu(m, _) => m.plan_report(batch).map(Some),
            Backend::Cpu => Ok(None),
        }
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.graph.name)
            .field("gpu", &self.is_gpu())
            .finish()
    }
}
