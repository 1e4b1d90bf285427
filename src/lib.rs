//! # gconv — grouped convolution on any GPU, with a CPU reference that specifies it
//!
//! gconv runs, measures and trains (on the GPU or the CPU reference) grouped-convolution networks:
//! VGG-BN with Gong et al.'s grouping schemes, ResNet-50 and its depthwise-separable,
//! standard-group (SGC) and fully-learnable-group (FLGC, Wang et al.) variants. GPU kernels
//! are WGSL compute shaders run through wgpu (Vulkan, Metal, DX12; Mesa's lavapipe in CI).
//!
//! ## Architecture in a screen
//! Data flows one way:
//!
//! ```text
//!  models/*.toml ─zoo─┐                                    ┌─▶ cpu::run_graph     (reference)
//!  net.onnx ─onnx─────┼─▶ Graph ──compile──▶ Graph' ───────┤
//!  exported file ─io──┘  (ops::Op,  (FLGC export,           └─▶ gpu::lower ─▶ Program ─▶ GpuModel
//!                         shapes)    BN folding,                 (calls +     (planned buffers,
//!                                    permutation fold)            buffers)     one submit)
//!  training:  Graph ─▶ train::Train ─┬─ Trainer    (ops' CPU forward/backward on a tape)
//!                     (one epoch     └─ GpuTrainer (gpu::lower forward + backward + SGD,
//!                      loop, one eval)               one Program per batch size)
//! ```
//!
//! - [`ops`]: **one home per op** — each operator's hyper-parameters, shape rule, parameters,
//!   cost, CPU forward and CPU backward behind [`ops::OpDef`]; [`graph::Op`] lists them.
//!   Adding an op is the short list in `docs/ADDING_AN_OP.md`; the compiler points at every
//!   place that must learn it.
//! - [`graph`]: the IR — `Vec<Node>` in topological order, shapes inferred as nodes are added
//!   (errors name the layer, sizes checked against [`limits`]), MAC/parameter accounting, and
//!   the passes (BN folding, FLGC masking and export, the channel-permutation fold). The graph
//!   and its passes import no backend.
//! - [`zoo`] (VGG-BN with Gong et al.'s schemes, ResNet-50 and its DSC/SGC/FLGC variants,
//!   MobileNetV2 and its SGC/FLGC variants), [`onnx`] (your own model) and [`io`] (exported
//!   models, checkpoints, weights, data) make graphs; [`compile`] makes their inference form.
//! - [`cpu`]: runs a graph node by node with the ops' CPU forward — the specification the GPU
//!   is tested against, itself checked against PyTorch goldens.
//! - [`gpu`]: adapter and pipeline cache ([`gpu::context`]); one launcher per
//!   `shaders/*.wgsl`, declared once ([`gpu::declare`]) and returning calls
//!   ([`gpu::launch`]); **kernel choice in one place** ([`gpu::choice`]: per operation the
//!   candidate kernels with the predicate saying when each applies); **one lowering**
//!   ([`gpu::lower`]) of every op's forward and backward to calls, shared by inference and
//!   training; [`gpu::program`] places activations, gradients and scratch in
//!   lifetime-planned buffers and binds every call once. The group index is always part of
//!   the dispatch grid.
//! - [`runtime`]: the embeddable API — [`Runtime`] → [`Model`] → [`Model::run`], the same for
//!   CPU and GPU; [`Device::Auto`] falls back to the CPU with a warning.
//! - [`train`]: the [`train::Train`] trait with its one epoch loop and one evaluation,
//!   implemented by the CPU reference trainer and the GPU trainer; SGD, schedules, datasets.
//! - With the default `app` feature: [`bench`](mod@bench)'s reports and charts and the `gconv` CLI. An
//!   embedding build (`default-features = false`) has none of their dependencies.
//! - With the `gui` feature (not default): `gconv gui`, the desktop benchmark window
//!   (egui/eframe on wgpu), built on [`bench`](mod@bench)'s `run_bench_with`, `BenchControl`
//!   (progress, cancel) and `compare`.
//!
//! The CPU reference never imports the GPU side; shaders are reached only through their
//! launchers. Errors are one enum, [`Error`], naming the layer, op, tensor or file.
//!
//! ## Example
//! ```no_run
//! use gconv::{Device, LoadOptions, Runtime, Tensor};
//! use gconv::zoo::{ModelSpec, Scheme};
//!
//! let spec = ModelSpec::load("vgg13bn")?.with_scheme(&Scheme::load("E")?)?;
//! let rt = Runtime::new(Device::Auto)?;
//! let mut model = rt.load(&spec, None, &LoadOptions::default())?;
//! let y = model.run(&Tensor::zeros(&[1, 3, 224, 224]))?;
//! assert_eq!(y.shape(), &[1, 1000]);
//! # Ok::<(), gconv::Error>(())
//! ```

#![warn(missing_docs)]

pub mod bench;
pub mod compile;
pub mod cpu;
pub mod error;
pub mod fs;
pub mod gpu;
pub mod graph;
pub mod io;
pub mod limits;
pub mod onnx;
pub mod ops;
pub mod optim;
pub mod plan;
#[cfg(feature = "app")]
pub mod report;
pub mod runtime;
pub mod search;
pub mod tensor;
pub mod testing;
pub mod train;
pub mod weights;
pub mod zoo;

pub use error::{Error, Result};
pub use gpu::Precision;
pub use runtime::{Device, FlgcMode, LoadOptions, Model, Runtime};
pub use tensor::Tensor;
pub use weights::Weights;
