//! Kernel choice, in one place: for each operation the candidate kernels, each with the
//! predicate saying when it applies, in the adapter's order of preference. Inference and
//! training both choose here; an autotuner can time [`applicable`] candidates and force one
//! per layer with a [`KernelChoice`] (any kernel that [`ConvKernel::can_run`] /
//! [`LinearKernel::can_run`] the layer may be forced, preferred or not).
//!
//! | operation | adapter | candidates (in order) |
//! |---|---|---|
//! | conv forward | CPU (lavapipe) | `Fast` (a specialised `conv_fast` entry fits: 3×3 and 1×1 at stride 1 or 2, 7×7/2; inference and training, tables too), `Tiled` (static weights, ≥ 4 filters per group or an uneven table), `Direct(Pk8)` (stride 1), `Direct(Co8)`, `Direct(Co1)` |
//! | conv forward | other | `Wgmem` (16 KiB workgroup memory, 256 invocations), then as on a CPU adapter without `Fast` |
//! | linear forward | any | `Gemv` (`in_features % 4 == 0`: GEMV at batch 1, small GEMMs beyond — batch 1 only on CPU adapters, see the soak —, split-K), `Linear` |
//! | conv input gradient | CPU | `Fast` (`conv_grad_fast`: transposed implicit GEMM per stride phase), then as below |
//! | conv input gradient | any | `Pointwise4` (1×1, stride 1, C/G % 4 = 0), `Gather` |
//! | conv weight gradient | CPU | `Fast` (`conv_grad_fast`: split-K GEMM over batch · pixels), then as below |
//! | conv weight gradient | any | `Pointwise4`, `Serial`, `Reduce` (real GPUs: by the number of weights) |
//!
//! `GCONV_GRAD_KERNELS=old` turns `Fast` gradients off (A/B measurements, `examples/grad_lab.rs`).

use super::context::GpuContext;
use super::kernels::conv::padded_input_bytes;
use super::kernels::conv_fast::{self, ENTRIES};
use super::kernels::conv_wgmem;
use super::kernels::gemv::{self, GemvShape};
use super::kernels::geometry::ConvShape;
use super::kernels::linear::LinearShape;
use crate::error::{Error, Result};
use crate::graph::{Conv2dSpec, GroupedConvTable};
use std::collections::HashMap;

mod backward;
pub use backward::{
    conv_input_grad, conv_weight_grad, input_grad, weight_grad, InputGrad, InputGradKernel,
    WeightGrad, WeightGradKernel, CONV_INPUT_GRAD, CONV_WEIGHT_GRAD, SERIAL_MIN_WEIGHTS,
};

/// What a predicate may know about the adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adapter {
    /// A CPU-backed adapter (lavapipe, SwiftShader, WARP): per-lane loads are gathers,
    /// barriers are expensive, workgroups run on one thread.
    pub cpu: bool,
    /// The largest storage binding, bytes.
    pub max_binding: u64,
    /// Enough workgroup memory (16 KiB) and invocations (256) for `conv_wgmem`.
    pub wgmem: bool,
}

impl Adapter {
    /// The facts of `ctx`'s adapter.
    pub fn of(ctx: &GpuContext) -> Self {
        Self {
            cpu: ctx.is_cpu(),
            max_binding: ctx
                .limits
                .max_storage_buffer_binding_size
                .min(ctx.limits.max_buffer_size),
            wgmem: conv_wgmem::adapter_fits(&ctx.limits),
        }
    }
}

/// A kernel that can compute an operation, and when.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<K: 'static, P: ?Sized + 'static> {
    /// The kernel.
    pub kernel: K,
    /// Whether it can (and by default should) run `P` on this adapter.
    pub applies: fn(&P, &Adapter) -> bool,
}

/// The first candidate that applies (every list ends with one that always does).
pub fn first<K: Copy, P: ?Sized>(list: &[Candidate<K, P>], p: &P, a: &Adapter) -> K {
    list.iter()
        .find(|c| (c.applies)(p, a))
        .or(list.last())
        .map(|c| c.kernel)
        .expect("a candidate list is never empty")
}

/// Every candidate that applies, in order (what an autotuner times).
pub fn applicable<K: Copy, P: ?Sized>(list: &[Candidate<K, P>], p: &P, a: &Adapter) -> Vec<K> {
    list.iter()
        .filter(|c| (c.applies)(p, a))
        .map(|c| c.kernel)
        .collect()
}

// ---- convolution forward ----------------------------------------------------------------

/// The entry points of `shaders/conv.wgsl` (weights in PyTorch's layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DirectKernel {
    /// `conv_co8`: 8 output channels × 4 pixels per invocation (register tiled).
    Co8,
    /// `conv_co1`: 1 output channel × 4 pixels per invocation (depthwise, thin groups).
    Co1,
    /// `pad_input` + `pack_weights` + `conv_pk8`: stride 1, 8 channels × 4 pixels from a
    /// zero-padded input copy and tile-packed weights, all loads vec4.
    Pk8,
}

impl DirectKernel {
    /// Output channels per tile.
    pub fn tco(self) -> usize {
        match self {
            DirectKernel::Co8 | DirectKernel::Pk8 => 8,
            DirectKernel::Co1 => 1,
        }
    }

    /// The entry point.
    pub fn entry(self) -> &'static str {
        match self {
            DirectKernel::Co8 => "conv_co8",
            DirectKernel::Co1 => "conv_co1",
            DirectKernel::Pk8 => "conv_pk8",
        }
    }

    /// Invocations per workgroup: small on CPU adapters (a workgroup is one SIMD loop on one
    /// core), 64 elsewhere; `GCONV_CONV_WG` overrides the 8-channel kernels' (experiments).
    pub fn workgroup(self, ctx: &GpuContext) -> u32 {
        if self == DirectKernel::Co1 {
            return 64;
        }
        let default = if ctx.is_cpu() { 8 } else { 64 };
        std::env::var("GCONV_CONV_WG")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|&v| (1..=ctx.limits.max_compute_invocations_per_workgroup).contains(&v))
            .unwrap_or(default)
    }
}

/// How a convolution's forward runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvKernel {
    /// `conv_fast` (CPU adapters): implicit GEMM in register tiles, several groups per tile;
    /// weights packed at load (inference) or by a GPU call (training). The entry point is
    /// the cost model's choice (`None`) or `conv_fast::ENTRIES[i]` (`Some(i)`).
    Fast(Option<u8>),
    /// `conv_wgmem` (discrete GPUs): workgroup-memory implicit GEMM, natural weights.
    Wgmem,
    /// `conv_tiled`: 8 filters × 8 pixels from weights packed once at load.
    Tiled,
    /// A `conv.wgsl` kernel reading the weights as they are.
    Direct(DirectKernel),
}

impl ConvKernel {
    /// A stable name (reports, the tuning cache): `conv_fast` (the cost model's entry),
    /// `conv_fast[<entry>]`, `conv_wgmem`, `conv_tiled`, `conv_co8`, `conv_co1`, `conv_pk8`.
    pub fn name(self) -> String {
        match self {
            ConvKernel::Fast(_) => match self.fast_entry() {
                Some(e) => format!("conv_fast[{}]", e.name),
                None => "conv_fast".into(),
            },
            ConvKernel::Wgmem => "conv_wgmem".into(),
            ConvKernel::Tiled => "conv_tiled".into(),
            ConvKernel::Direct(k) => k.entry().into(),
        }
    }

    /// The kernel [`ConvKernel::name`] names, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        let direct = [DirectKernel::Co8, DirectKernel::Co1, DirectKernel::Pk8];
        match name {
            "conv_fast" => Some(ConvKernel::Fast(None)),
            "conv_wgmem" => Some(ConvKernel::Wgmem),
            "conv_tiled" => Some(ConvKernel::Tiled),
            _ => match name
                .strip_prefix("conv_fast[")
                .and_then(|r| r.strip_suffix(']'))
            {
                Some(e) => ENTRIES
                    .iter()
                    .position(|x| x.name == e)
                    .and_then(|i| u8::try_from(i).ok())
                    .map(|i| ConvKernel::Fast(Some(i))),
                None => direct
                    .into_iter()
                    .find(|k| k.entry() == name)
                    .map(ConvKernel::Direct),
            },
        }
    }

    /// The forced `conv_fast` entry point of `Fast(Some(i))`.
    pub fn fast_entry(self) -> Option<conv_fast::Entry> {
        match self {
            ConvKernel::Fast(Some(i)) => ENTRIES.get(usize::from(i)).copied(),
            _ => None,
        }
    }

    /// Whether the kernel can compute `p` on adapter `a` at all (what a forced choice must
    /// satisfy; the candidate lists add when it should).
    pub fn can_run(self, p: &ConvProblem, a: &Adapter) -> bool {
        match self {
            ConvKernel::Fast(entry) => {
                let fits = match entry {
                    None => true,
                    Some(i) => ENTRIES.get(usize::from(i)).is_some_and(|e| e.fits(&p.spec)),
                };
                fits && conv_fast::padded_input_bytes(&p.spec, p.batch, p.in_hw)
                    .is_some_and(|b| b <= a.max_binding)
            }
            ConvKernel::Wgmem => a.wgmem,
            ConvKernel::Tiled => p.static_weights,
            ConvKernel::Direct(k) => {
                !p.table
                    && (k != DirectKernel::Pk8
                        || (p.spec.stride == [1, 1]
                            && padded_input_bytes(&p.shape()).is_some_and(|b| b <= a.max_binding)))
            }
        }
    }
}

/// A convolution to run: its geometry, the filters per group, and whether the weights are
/// fixed (inference: they may be re-packed once at load) or change every step (training).
#[derive(Clone, Debug)]
pub struct ConvProblem {
    /// Kernel, stride, padding, dilation, channels, groups.
    pub spec: Conv2dSpec,
    /// Batch size.
    pub batch: usize,
    /// Input `[h, w]`.
    pub in_hw: [usize; 2],
    /// Output channels of each group (uneven for an exported FLGC layer).
    pub out_lens: Vec<usize>,
    /// The weights are fixed for the model's life.
    pub static_weights: bool,
    /// An uneven, index-addressed group table (only the tiled kernel reads index lists).
    pub table: bool,
}

impl ConvProblem {
    /// An ordinary grouped convolution of `batch` samples of `in_hw`.
    pub fn conv2d(
        spec: &Conv2dSpec,
        batch: usize,
        in_hw: [usize; 2],
        static_weights: bool,
    ) -> Self {
        Self {
            spec: spec.clone(),
            batch,
            in_hw,
            out_lens: vec![spec.out_channels / spec.groups.max(1); spec.groups],
            static_weights,
            table: false,
        }
    }

    /// An exported group table (inference only).
    pub fn table(t: &GroupedConvTable, batch: usize, in_hw: [usize; 2]) -> Self {
        Self {
            spec: t.spec.clone(),
            batch,
            in_hw,
            out_lens: t.table.iter().map(|g| g.out_len).collect(),
            static_weights: true,
            table: true,
        }
    }

    /// The geometry as the launchers take it.
    pub fn shape(&self) -> ConvShape<'_> {
        ConvShape {
            spec: &self.spec,
            batch: self.batch,
            in_hw: self.in_hw,
        }
    }

    /// The average number of filters of the non-empty groups.
    fn avg_out(&self) -> usize {
        let nonempty: Vec<usize> = self.out_lens.iter().copied().filter(|&n| n > 0).collect();
        nonempty.iter().sum::<usize>() / nonempty.len().max(1)
    }
}

/// Candidates for a convolution forward, best first. Every list ends with a candidate that
/// applies to anything it can run (`Direct(Co1)` runs every ordinary convolution; a table
/// always has `Tiled`, `Fast` or `Wgmem`).
pub const CONV_FORWARD: &[Candidate<ConvKernel, ConvProblem>] = &[
    Candidate {
        kernel: ConvKernel::Fast(None),
        applies: |p, a| {
            a.cpu && conv_fast::has_specialised(&p.spec) && ConvKernel::Fast(None).can_run(p, a)
        },
    },
    Candidate {
        kernel: ConvKernel::Wgmem,
        applies: |_, a| !a.cpu && a.wgmem,
    },
    Candidate {
        kernel: ConvKernel::Tiled,
        applies: |p, _| {
            p.static_weights && (p.table || p.spec.out_channels / p.spec.groups.max(1) >= 4)
        },
    },
    Candidate {
        kernel: ConvKernel::Direct(DirectKernel::Pk8),
        applies: |p, a| p.avg_out() >= 4 && ConvKernel::Direct(DirectKernel::Pk8).can_run(p, a),
    },
    Candidate {
        kernel: ConvKernel::Direct(DirectKernel::Co8),
        applies: |p, _| !p.table && p.avg_out() >= 4,
    },
    Candidate {
        kernel: ConvKernel::Direct(DirectKernel::Co1),
        applies: |p, _| !p.table,
    },
];

/// The forward kernel of `p` on `ctx`'s adapter.
pub fn conv_forward(ctx: &GpuContext, p: &ConvProblem) -> ConvKernel {
    first(CONV_FORWARD, p, &Adapter::of(ctx))
}

/// The forward kernel of layer `name`: its entry in `forced` (an error naming the layer if
/// that kernel cannot run `p`), else the first candidate that applies; a table falls back
/// to `Tiled` (static) when no candidate applies.
pub fn conv_forward_for(
    ctx: &GpuContext,
    name: &str,
    p: &ConvProblem,
    forced: &KernelChoice,
) -> Result<ConvKernel> {
    let a = Adapter::of(ctx);
    let k = match forced.conv.get(name) {
        Some(&k) => k,
        None => match CONV_FORWARD.iter().find(|c| (c.applies)(p, &a)) {
            Some(c) => c.kernel,
            None => ConvKernel::Tiled,
        },
    };
    if k.can_run(p, &a) {
        Ok(k)
    } else {
        Err(Error::InvalidArgument(format!(
            "{name}: kernel {k:?} cannot run this convolution ({:?}, batch {}, input {:?}, {} weights{})",
            p.spec,
            p.batch,
            p.in_hw,
            if p.static_weights { "static" } else { "trained" },
            if p.table { ", group table" } else { "" },
        )))
    }
}

// ---- fully connected forward -------------------------------------------------------------

/// How a fully connected layer's forward runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinearKernel {
    /// `gemv`: GEMV at batch 1, small register-tiled GEMMs beyond, split-K when a chunk has
    /// few rows. The tile is chosen by batch size (`None`) or forced.
    Gemv(Option<GemvShape>),
    /// `linear`: one invocation per output feature (any width).
    Linear,
}

impl LinearKernel {
    /// A stable name (reports, the tuning cache): `gemv` (tile by batch size),
    /// `gemv[<entry>]` (a forced tile, e.g. `gemv[gemm_r4_b1]`) or `linear`.
    pub fn name(self) -> String {
        match self {
            LinearKernel::Gemv(None) => "gemv".into(),
            LinearKernel::Gemv(Some(t)) => format!("gemv[{}]", t.entry().unwrap_or("?")),
            LinearKernel::Linear => "linear".into(),
        }
    }

    /// The kernel [`LinearKernel::name`] names, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gemv" => Some(LinearKernel::Gemv(None)),
            "linear" => Some(LinearKernel::Linear),
            _ => {
                let e = name.strip_prefix("gemv[")?.strip_suffix(']')?;
                gemv::SHAPES
                    .iter()
                    .find(|s| s.entry() == Some(e))
                    .map(|&s| LinearKernel::Gemv(Some(s)))
            }
        }
    }

    /// Whether the kernel can compute `s` at all.
    pub fn can_run(self, s: &LinearShape) -> bool {
        match self {
            LinearKernel::Gemv(shape) => gemv::fits(s) && shape.is_none_or(|t| t.entry().is_some()),
            LinearKernel::Linear => true,
        }
    }
}

/// Candidates for a fully connected forward, best first.
pub const LINEAR_FORWARD: &[Candidate<LinearKernel, LinearShape>] = &[
    Candidate {
        kernel: LinearKernel::Gemv(None),
        // On lavapipe (Mesa 22.3.6) every pass through the batched GEMM entries grows the
        // host's memory (≈ 650 KB per pass at batch 4, ≈ 14 KB at batch 2; wgpu's own
        // allocations stay flat; `examples/soak.rs`), so CPU adapters keep them for batch 1.
        applies: |s, a| gemv::fits(s) && (s.batch == 1 || !a.cpu),
    },
    Candidate {
        kernel: LinearKernel::Linear,
        applies: |_, _| true,
    },
];

/// The forward kernel of fully connected layer `name` (forced, or the first that applies).
pub fn linear_forward_for(
    ctx: &GpuContext,
    name: &str,
    s: &LinearShape,
    forced: &KernelChoice,
) -> Result<LinearKernel> {
    let k = match forced.linear.get(name) {
        Some(&k) => k,
        None => first(LINEAR_FORWARD, s, &Adapter::of(ctx)),
    };
    if k.can_run(s) {
        Ok(k)
    } else {
        Err(Error::InvalidArgument(format!(
            "{name}: kernel {k:?} cannot run this fully connected layer ({s:?})"
        )))
    }
}

/// Kernels forced per layer (by node name), e.g. by an autotuner that timed the
/// [`applicable`] candidates; layers not named take the candidate lists' first choice.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelChoice {
    conv: HashMap<String, ConvKernel>,
    linear: HashMap<String, LinearKernel>,
}

impl KernelChoice {
    /// No forced kernel.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forces convolution `node` (a `Conv2d`, `GroupedConvTable` or FLGC layer) to `k`.
    pub fn conv(mut self, node: &str, k: ConvKernel) -> Self {
        self.conv.insert(node.to_string(), k);
        self
    }

    /// Forces fully connected layer `node` to `k`.
    pub fn linear(mut self, node: &str, k: LinearKernel) -> Self {
        self.linear.insert(node.to_string(), k);
        self
    }

    /// Whether nothing is forced.
    pub fn is_empty(&self) -> bool {
        self.conv.is_empty() && self.linear.is_empty()
    }

    /// The kernel forced for convolution `node`, if any.
    pub fn conv_of(&self, node: &str) -> Option<ConvKernel> {
        self.conv.get(node).copied()
    }

    /// The kernel forced for fully connected layer `node`, if any.
    pub fn linear_of(&self, node: &str) -> Option<LinearKernel> {
        self.linear.get(node).copied()
    }

    /// Number of layers with a forced kernel.
    pub fn len(&self) -> usize {
        self.conv.len() + self.linear.len()
    }
}
