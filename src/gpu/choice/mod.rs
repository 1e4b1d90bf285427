//! Kernel choice, in one place: for each operation and [`AdapterClass`], the candidate
//! kernel families in order of preference. Each family says itself whether it can run a
//! layer and whether it should by default (`gpu::family`); the first that prefers a layer
//! runs it, unless a [`KernelChoice`] forces another (the autotuner, tests): any family that
//! *can* run the layer may be forced, listed or not.
//!
//! | operation | CPU (lavapipe) | integrated / discrete |
//! |---|---|---|
//! | conv forward | `conv_fast`, `conv_tiled`, `conv_pk8`, `conv_co8`, `conv_co1` | `conv_dw` (depthwise), `conv_coop` (f16 weights, cooperative matrices), `conv_igemm`, `conv_wgmem`, `conv_tiled`, `conv_pk8`, `conv_co8`, `conv_co1` |
//! | linear forward | `gemv`, `linear` | `linear_coop` (f16 weights, cooperative matrices, batch > 8), `gemv_wide` (batch ≤ 8), `gemv`, `linear` |
//! | conv input gradient | `conv_grad_fast`, `grad_input_pw4`, `grad_input` | `grad_input_pw4`, `grad_input` |
//! | conv weight gradient | `conv_grad_fast`, `grad_weight_pw4`, `grad_weight_serial`, `grad_weight` | the same without `conv_grad_fast` |
//!
//! A one-shot choice ([`KernelChoice::with_one_shot`], `gconv infer`) takes the integrated
//! class's conv list on a CPU adapter for layers of at most [`ONE_SHOT_MAX_MACS`]: there the
//! compile of `conv_fast`'s unrolled tiles costs more than its speed saves in one pass.
//!
//! `GCONV_ADAPTER_CLASS=cpu|integrated|discrete` forces a class's lists on any adapter
//! (tests run every tier on lavapipe); `GCONV_GRAD_KERNELS=old` turns `conv_grad_fast` off
//! (A/B measurements, `examples/grad_lab.rs`).

mod forced;

pub use super::family::{Adapter, AdapterClass, ConvProblem, Family, Kernel};
pub use forced::KernelChoice;

use super::context::GpuContext;
use super::family::{ConvForward, ConvInputGrad, ConvWeightGrad, LinearForward};
use super::geometry::LinearShape;
use super::kernels::{conv, conv_backward, conv_fast, conv_grad_fast, conv_igemm, conv_tiled};
use super::kernels::{conv_coop, conv_dw, conv_wgmem};
use super::kernels::{gemv, gemv_wide, linear, linear_coop};
use crate::error::{Error, Result};
use crate::graph::Conv2dSpec;

/// A convolution forward kernel.
pub type ConvKernel = Kernel<dyn ConvForward>;
/// A fully connected forward kernel.
pub type LinearKernel = Kernel<dyn LinearForward>;
/// A convolution input-gradient kernel.
pub type InputGradKernel = Kernel<dyn ConvInputGrad>;
/// A convolution weight-gradient kernel.
pub type WeightGradKernel = Kernel<dyn ConvWeightGrad>;

// ---- the lists ------------------------------------------------------------------------

/// Convolution forward on a CPU adapter: register-tiled implicit GEMMs first.
pub const CONV_FORWARD_CPU: &[&dyn ConvForward] = &[
    &conv_fast::CONV_FAST,
    &conv_tiled::CONV_TILED,
    &conv::CONV_PK8,
    &conv::CONV_CO8,
    &conv::CONV_CO1,
];

/// Convolution forward on a real GPU: workgroup-memory tiles first (cooperative matrices
/// for a model stored as halves, where the device has them).
pub const CONV_FORWARD_GPU: &[&dyn ConvForward] = &[
    &conv_dw::CONV_DW,
    &conv_coop::CONV_COOP,
    &conv_igemm::CONV_IGEMM,
    &conv_wgmem::CONV_WGMEM,
    &conv_tiled::CONV_TILED,
    &conv::CONV_PK8,
    &conv::CONV_CO8,
    &conv::CONV_CO1,
];

/// Fully connected forward on a CPU adapter: `gemv` where it can read the rows.
pub const LINEAR_FORWARD_CPU: &[&dyn LinearForward] = &[&gemv::GEMV, &linear::LINEAR];

/// Fully connected forward on a real GPU: the bandwidth-bound GEMV at small batch first.
/// `linear_coop` prefers nothing (its operands are halves): it is the first family that
/// reads halves, so a layer stored as halves takes it above `gemv_wide`'s batches where the
/// device has cooperative matrices ([`linear_default_f16`]).
pub const LINEAR_FORWARD_GPU: &[&dyn LinearForward] = &[
    &linear_coop::LINEAR_COOP,
    &gemv_wide::GEMV_WIDE,
    &gemv::GEMV,
    &linear::LINEAR,
];

/// Fully connected forward families no class lists, which only a forced choice runs:
/// `linear_coop_soft`, `linear_coop` with its matrix operations in plain WGSL (CI).
pub const LINEAR_FORWARD_FORCED_ONLY: &[&dyn LinearForward] = &[&linear_coop::LINEAR_COOP_SOFT];

/// The fully connected candidates of `class`.
pub fn linear_forward_list(class: AdapterClass) -> &'static [&'static dyn LinearForward] {
    match class {
        AdapterClass::Cpu => LINEAR_FORWARD_CPU,
        AdapterClass::Integrated | AdapterClass::Discrete => LINEAR_FORWARD_GPU,
    }
}

/// Every fully connected family of every class.
pub fn linear_forward_families() -> Vec<&'static dyn LinearForward> {
    union(&[
        LINEAR_FORWARD_CPU,
        LINEAR_FORWARD_GPU,
        LINEAR_FORWARD_FORCED_ONLY,
    ])
}

/// Convolution input gradient on a CPU adapter.
pub const INPUT_GRAD_CPU: &[&dyn ConvInputGrad] = &[
    &conv_grad_fast::CONV_GRAD_FAST,
    &conv_backward::GRAD_INPUT_PW4,
    &conv_backward::GRAD_INPUT,
];

/// Convolution input gradient on a real GPU.
pub const INPUT_GRAD_GPU: &[&dyn ConvInputGrad] =
    &[&conv_backward::GRAD_INPUT_PW4, &conv_backward::GRAD_INPUT];

/// Convolution weight gradient on a CPU adapter.
pub const WEIGHT_GRAD_CPU: &[&dyn ConvWeightGrad] = &[
    &conv_grad_fast::CONV_GRAD_FAST,
    &conv_backward::GRAD_WEIGHT_PW4,
    &conv_backward::GRAD_WEIGHT_SERIAL,
    &conv_backward::GRAD_WEIGHT,
];

/// Convolution weight gradient on a real GPU.
pub const WEIGHT_GRAD_GPU: &[&dyn ConvWeightGrad] = &[
    &conv_backward::GRAD_WEIGHT_PW4,
    &conv_backward::GRAD_WEIGHT_SERIAL,
    &conv_backward::GRAD_WEIGHT,
];

/// The conv forward candidates of `class`.
pub fn conv_forward_list(class: AdapterClass) -> &'static [&'static dyn ConvForward] {
    match class {
        AdapterClass::Cpu => CONV_FORWARD_CPU,
        AdapterClass::Integrated | AdapterClass::Discrete => CONV_FORWARD_GPU,
    }
}

/// The input-gradient candidates of `class`.
pub fn input_grad_list(class: AdapterClass) -> &'static [&'static dyn ConvInputGrad] {
    match class {
        AdapterClass::Cpu => INPUT_GRAD_CPU,
        AdapterClass::Integrated | AdapterClass::Discrete => INPUT_GRAD_GPU,
    }
}

/// The weight-gradient candidates of `class`.
pub fn weight_grad_list(class: AdapterClass) -> &'static [&'static dyn ConvWeightGrad] {
    match class {
        AdapterClass::Cpu => WEIGHT_GRAD_CPU,
        AdapterClass::Integrated | AdapterClass::Discrete => WEIGHT_GRAD_GPU,
    }
}

/// Every family of `lists`, once each, in order of first appearance.
fn union<F: ?Sized + Family>(lists: &[&'static [&'static F]]) -> Vec<&'static F> {
    let mut all: Vec<&'static F> = Vec::new();
    for &f in lists.iter().flat_map(|l| l.iter()) {
        if !all.iter().any(|g| g.name() == f.name()) {
            all.push(f);
        }
    }
    all
}

/// Every conv forward family of every class (a forced or cached kernel may be any of them).
pub fn conv_forward_families() -> Vec<&'static dyn ConvForward> {
    union(&[CONV_FORWARD_CPU, CONV_FORWARD_GPU, CONV_FORWARD_FORCED_ONLY])
}

/// Convolution forward families no class lists, which only a forced choice runs:
/// `conv_coop_soft`, the cooperative-matrix kernel with its matrix operations in plain WGSL
/// (how CI runs that tier on an adapter without cooperative matrices).
pub const CONV_FORWARD_FORCED_ONLY: &[&dyn ConvForward] = &[&conv_coop::CONV_COOP_SOFT];

/// Every input-gradient family of every class.
pub fn input_grad_families() -> Vec<&'static dyn ConvInputGrad> {
    union(&[INPUT_GRAD_CPU, INPUT_GRAD_GPU])
}

/// Every weight-gradient family of every class.
pub fn weight_grad_families() -> Vec<&'static dyn ConvWeightGrad> {
    union(&[WEIGHT_GRAD_CPU, WEIGHT_GRAD_GPU])
}

// ---- choosing ---------------------------------------------------------------------------

/// The default conv forward kernel of `p` on `a`: the first family of the class's list that
/// prefers it; an exported table that none prefers takes `conv_tiled` (static weights).
pub fn conv_default(p: &ConvProblem, a: &Adapter) -> ConvKernel {
    let list = conv_forward_list(a.class);
    let f = list
        .iter()
        .copied()
        .find(|f| f.prefers(p, a))
        .unwrap_or(if p.table {
            &conv_tiled::CONV_TILED
        } else {
            &conv::CONV_CO1
        });
    Kernel::of(f)
}

/// Every listed conv forward kernel that prefers `p`, in order (the tuner's first picks).
pub fn conv_preferring(p: &ConvProblem, a: &Adapter) -> Vec<ConvKernel> {
    conv_forward_list(a.class)
        .iter()
        .filter(|f| f.prefers(p, a))
        .map(|&f| Kernel::of(f))
        .collect()
}

/// Whether `k` can run `p` on `a`.
pub fn conv_can_run(k: ConvKernel, p: &ConvProblem, a: &Adapter) -> bool {
    k.family.can_run(p, a, k.variant)
}

/// The forward kernel of `p` on `ctx`'s adapter.
pub fn conv_forward(ctx: &GpuContext, p: &ConvProblem) -> ConvKernel {
    conv_default(p, &Adapter::of(ctx))
}

/// Multiply-accumulates (× batch) up to which a one-shot run takes the real-GPU tier's
/// kernel on a CPU adapter. Lavapipe keeps no compiled pipeline between processes (its
/// `VkPipelineCache` data is the header), and turning `conv_fast`'s unrolled register tiles
/// into machine code costs 25–180 ms per entry, where `conv_igemm`'s loops cost 2–10 ms; at
/// ≈ 4× `conv_fast`'s run time a layer of this size loses less than one compile saves
/// (measured in README "Cold start").
pub const ONE_SHOT_MAX_MACS: u64 = 10_000_000;

/// The adapter whose lists a one-shot run of `p` takes: on a CPU adapter, for a layer of at
/// most [`ONE_SHOT_MAX_MACS`], the integrated class's (the kernels compile fast); else `a`.
pub fn one_shot_tier(p: &ConvProblem, a: &Adapter) -> Adapter {
    let s = &p.spec;
    let macs = s
        .out_hw(p.in_hw[0], p.in_hw[1])
        .map_or(u64::MAX, |[oh, ow]| {
            (p.batch
                * oh
                * ow
                * s.out_channels
                * (s.in_channels / s.groups.max(1))
                * s.kernel[0]
                * s.kernel[1]) as u64
        });
    if a.class == AdapterClass::Cpu && macs <= ONE_SHOT_MAX_MACS {
        Adapter {
            class: AdapterClass::Integrated,
            ..*a
        }
    } else {
        *a
    }
}

/// The forward kernel of layer `name`: its entry in `forced` (an error naming the layer if
/// that kernel cannot run `p`), else the default.
pub fn conv_forward_for(
    ctx: &GpuContext,
    name: &str,
    p: &ConvProblem,
    forced: &KernelChoice,
) -> Result<ConvKernel> {
    let a = Adapter::of(ctx);
    let half = ConvProblem {
        half_weights: forced.precision() == crate::gpu::Precision::F16,
        ..p.clone()
    };
    let p = &half;
    let k = forced.conv_of(name).unwrap_or_else(|| {
        let tier = if forced.one_shot() {
            one_shot_tier(p, &a)
        } else {
            a
        };
        conv_default(p, &tier)
    });
    if conv_can_run(k, p, &a) {
        Ok(k)
    } else {
        Err(Error::InvalidArgument(format!(
            "{name}: kernel {k} cannot run this convolution ({:?}, batch {}, input {:?}, {} weights{})",
            p.spec,
            p.batch,
            p.in_hw,
            if p.static_weights { "static" } else { "trained" },
            if p.table { ", group table" } else { "" },
        )))
    }
}

/// The default fully connected kernel of `s` on `a`.
pub fn linear_default(s: &LinearShape, a: &Adapter) -> LinearKernel {
    let f = linear_forward_list(a.class)
        .iter()
        .copied()
        .find(|f| f.prefers(s, a))
        .unwrap_or(&linear::LINEAR);
    Kernel::of(f)
}

/// The forward kernel of fully connected layer `name` (forced, or the default).
pub fn linear_forward_for(
    ctx: &GpuContext,
    name: &str,
    s: &LinearShape,
    forced: &KernelChoice,
) -> Result<LinearKernel> {
    let a = Adapter::of(ctx);
    let k = forced
        .linear_of(name)
        .unwrap_or_else(|| linear_default(s, &a));
    if k.family.can_run(s, &a, k.variant) {
        Ok(k)
    } else {
        Err(Error::InvalidArgument(format!(
            "{name}: kernel {k} cannot run this fully connected layer ({s:?})"
        )))
    }
}

/// The default fully connected kernel of `s` on `a` for weights stored as halves: the f32
/// default when it reads halves (`gemv_wide` at batch ≤ 8), else the first family of the
/// class's list that does and can run `s`: `linear_coop` where the device has cooperative
/// matrices, else `gemv_wide` (at a batch the f32 default gives to another family, a slower
/// but exact choice); `None` when no listed family reads halves.
pub fn linear_default_f16(s: &LinearShape, a: &Adapter) -> Option<LinearKernel> {
    let k = linear_default(s, a);
    if k.family.reads_f16() && k.family.can_run(s, a, k.variant) {
        return Some(k);
    }
    linear_forward_list(a.class)
        .iter()
        .copied()
        .find(|f| f.reads_f16() && f.can_run(s, a, None))
        .map(Kernel::of)
}

/// The forward kernel of fully connected layer `name` whose weights are stored as halves
/// (it was loaded with [`crate::gpu::Precision::F16`]): the forced kernel or the default when
/// it reads halves and can run `s`, else the first family of the class's list that does
/// (at a batch the f32 default would give to another family, a slower but exact choice).
pub fn linear_forward_f16_for(
    ctx: &GpuContext,
    name: &str,
    s: &LinearShape,
    forced: &KernelChoice,
) -> Result<LinearKernel> {
    if let Ok(k) = linear_forward_for(ctx, name, s, forced) {
        if k.family.reads_f16() {
            return Ok(k);
        }
    }
    linear_default_f16(s, &Adapter::of(ctx)).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{name}: its weights are stored as halves and no kernel of this adapter class \
                 that reads halves can run it ({s:?})"
        ))
    })
}

/// The default input-gradient kernel of `spec` on `a`.
pub fn input_grad_default(spec: &Conv2dSpec, a: &Adapter) -> InputGradKernel {
    let f = input_grad_list(a.class)
        .iter()
        .copied()
        .find(|f| f.prefers(spec, a))
        .unwrap_or(&conv_backward::GRAD_INPUT);
    Kernel::of(f)
}

/// The default weight-gradient kernel of `spec` on `a`.
pub fn weight_grad_default(spec: &Conv2dSpec, a: &Adapter) -> WeightGradKernel {
    let f = weight_grad_list(a.class)
        .iter()
        .copied()
        .find(|f| f.prefers(spec, a))
        .unwrap_or(&conv_backward::GRAD_WEIGHT);
    Kernel::of(f)
}

/// The input-gradient kernel of layer `name` (forced, or the default); an error naming the
/// layer if a forced one cannot run it.
pub fn input_grad_for(
    ctx: &GpuContext,
    name: &str,
    spec: &Conv2dSpec,
    forced: &KernelChoice,
) -> Result<InputGradKernel> {
    let a = Adapter::of(ctx);
    let k = forced
        .input_grad_of(name)
        .unwrap_or_else(|| input_grad_default(spec, &a));
    if k.family.can_run(spec, &a) {
        Ok(k)
    } else {
        Err(Error::InvalidArgument(format!(
            "{name}: input-gradient kernel {k} cannot run this convolution ({spec:?})"
        )))
    }
}

/// The weight-gradient kernel of layer `name` (forced, or the default).
pub fn weight_grad_for(
    ctx: &GpuContext,
    name: &str,
    spec: &Conv2dSpec,
    forced: &KernelChoice,
) -> Result<WeightGradKernel> {
    let a = Adapter::of(ctx);
    let k = forced
        .weight_grad_of(name)
        .unwrap_or_else(|| weight_grad_default(spec, &a));
    if k.family.can_run(spec, &a) {
        Ok(k)
    } else {
        Err(Error::InvalidArgument(format!(
            "{name}: weight-gradient kernel {k} cannot run this convolution ({spec:?})"
        )))
    }
}

/// How `spec`'s input gradient runs on `ctx`'s adapter by default.
pub fn input_grad(ctx: &GpuContext, spec: &Conv2dSpec) -> InputGradKernel {
    input_grad_default(spec, &Adapter::of(ctx))
}

/// How `spec`'s weight gradient runs on `ctx`'s adapter by default.
pub fn weight_grad(ctx: &GpuContext, spec: &Conv2dSpec) -> WeightGradKernel {
    weight_grad_default(spec, &Adapter::of(ctx))
}

// ---- by name ------------------------------------------------------------------------------

/// The conv forward kernel [`Kernel::name`] names (`conv_fast`, `conv_fast[<entry>]`,
/// `conv_wgmem`, `conv_tiled`, `conv_pk8`, `conv_co8`, `conv_co1`), if any.
pub fn conv_named(name: &str) -> Option<ConvKernel> {
    Kernel::from_name(&conv_forward_families(), name)
}

/// The fully connected kernel named (`gemv`, `gemv[<tile>]`, `linear`), if any.
pub fn linear_named(name: &str) -> Option<LinearKernel> {
    Kernel::from_name(&linear_forward_families(), name)
}

/// The input-gradient kernel named (`conv_grad_fast`, `grad_input_pw4`, `grad_input`).
pub fn input_grad_named(name: &str) -> Option<InputGradKernel> {
    Kernel::from_name(&input_grad_families(), name)
}

/// The weight-gradient kernel named (`conv_grad_fast`, `grad_weight_pw4`,
/// `grad_weight_serial`, `grad_weight`).
pub fn weight_grad_named(name: &str) -> Option<WeightGradKernel> {
    Kernel::from_name(&weight_grad_families(), name)
}
