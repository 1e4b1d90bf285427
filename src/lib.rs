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
//! models/*.toml ──zoo──▶ Graph ──passes──▶ Graph' ──▶ executor ──▶ Tensor
//!  (ModelSpec)          (IR + shapes)   (fold BN,      cpu::run_graph   (reference)
//!                                        FLGC export)  gpu::GpuModel    (WGSL kernels)
//! ```
//!
//! - [`zoo`]: declarative model files (serde/TOML, compiled in) → [`graph::Graph`].
//! - [`graph`]: the IR — `Vec<Node>` in topological order, one output per node, per-sample
//!   shapes inferred as nodes are added (errors name the layer); MAC/parameter accounting
//!   ([`graph::Graph::cost`]); load-time passes ([`graph::passes`]): BN folding, FLGC
//!   materialisation (masked) and export (index re-ordering into an uneven group conv).
//! - [`cpu`]: every op in plain Rust with explicit loops over groups: the specification,
//!   checked against PyTorch goldens (`scripts/make_goldens.py` → `tests/golden.rs`).
//! - [`gpu`]: adapter/limits/features ([`gpu::context::GpuContext`]), one launcher module per
//!   `shaders/*.wgsl` (bind-group layout, pipeline, dispatch math, uniform struct mirrored by
//!   a `#[repr(C)]` Pod struct), and the executor: lifetime-planned activation buffers
//!   ([`plan::BufferPlan`]), weights uploaded once, all dispatches of a forward pass in one
//!   encoder and one submit. The group index is always part of the dispatch grid.
//! - [`runtime`]: the embeddable API — [`Runtime`] → [`Model`] → [`Model::run`], the same for
//!   CPU and GPU; [`Device::Auto`] falls back to the CPU with a warning.
//! - [`train`]: backward of every op on the CPU reference ([`train::Trainer`]) and on the GPU
//!   ([`train::GpuTrainer`]: the training kernels, one encoder and one submit per step, tested
//!   step for step against the CPU trainer), FLGC's straight-through selection gradients, SGD
//!   with momentum and weight decay, schedules, datasets.
//! - [`io`]: `.npy`, safetensors with torchvision `state_dict` keys, IDX (Fashion-MNIST), image
//!   files and image folders, exported models (graph + weights in one file).
//!
//! The graph knows no device; the CPU reference never imports the GPU side; shaders are
//! reached only through their launchers. Errors are one enum, [`Error`], naming the layer,
//! op, tensor or file.
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
pub mod cpu;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod io;
pub mod limits;
pub mod plan;
pub mod report;
pub mod runtime;
pub mod tensor;
pub mod testing;
pub mod train;
pub mod weights;
pub mod zoo;

pub use error::{Error, Result};
pub use runtime::{Device, FlgcMode, LoadOptions, Model, Runtime};
pub use tensor::Tensor;
pub use weights::Weights;
