//! What a kernel family is: one module that describes itself. A family (`conv_fast`,
//! `conv_tiled`, `gemv`, `conv_grad_fast`, …) implements [`Family`] (its stable name and the
//! variants that can be forced or tuned, e.g. `conv_fast`'s generated entry points) and the
//! trait of the operation it computes — [`ConvForward`], [`ConvInputGrad`],
//! [`ConvWeightGrad`] or [`LinearForward`] — which says whether it can run a layer on an
//! [`Adapter`] (and whether it should by default), how it prepares weights at load, and how
//! it lowers one run into launcher calls and scratch buffers.
//!
//! [`crate::gpu::choice`] then only *lists* the families per operation and [`AdapterClass`];
//! the lowering, the autotuner and forced choices ([`crate::gpu::choice::KernelChoice`]) all go
//! through these traits. Adding a conv family is one new module implementing
//! [`ConvForward`] plus one line in a list (and its shader and tests).
//!
//! A chosen kernel is a [`Kernel`]: a family and, optionally, one of its variants.

mod conv;
mod linear;

pub use conv::{
    ConvForward, ConvInputGrad, ConvLayer, ConvOp, ConvProblem, ConvRun, ConvWeightGrad, GradIo,
    PreparedConv,
};
pub use linear::{LinearForward, LinearRun};

pub use super::adapter::{Adapter, AdapterClass};
use super::context::GpuContext;
use std::fmt;

impl Adapter {
    /// The facts of `ctx`'s adapter, its class as `ctx` reports it (forced by
    /// `GCONV_ADAPTER_CLASS` when that is set).
    pub fn of(ctx: &GpuContext) -> Self {
        let units = super::adapter::compute_units(&ctx.info);
        Self::new(ctx.adapter_class(), &ctx.limits, units).with_features(
            ctx.features.contains(wgpu::Features::SHADER_F16),
            ctx.cooperative_matrix,
        )
    }
}

/// A kernel family: its name and the variants of it that can be forced or tuned.
pub trait Family: Send + Sync + 'static {
    /// A stable name (reports, the tuning cache, `KernelChoice`).
    fn name(&self) -> &'static str;
    /// Variants by name (`conv_fast`'s entry points, `gemv`'s tiles); a kernel names one as
    /// `family[variant]`. Empty: the family has no variants to force.
    fn variants(&self) -> &'static [&'static str] {
        &[]
    }
}

/// A kernel: a family of trait `F` (e.g. `dyn ConvForward`) and, optionally, one of its
/// [`Family::variants`] (`None`: the family picks, e.g. by its cost model).
pub struct Kernel<F: ?Sized + 'static> {
    /// The family.
    pub family: &'static F,
    /// Index into the family's variants.
    pub variant: Option<u16>,
}

impl<F: ?Sized + Family> Kernel<F> {
    /// The family with its own pick of variant.
    pub fn of(family: &'static F) -> Self {
        Self {
            family,
            variant: None,
        }
    }

    /// The name: `family` or `family[variant]`.
    pub fn name(&self) -> String {
        match self
            .variant
            .and_then(|v| self.family.variants().get(usize::from(v)))
        {
            Some(v) => format!("{}[{v}]", self.family.name()),
            None => self.family.name().to_string(),
        }
    }

    /// The variant's name, if one is forced.
    pub fn variant_name(&self) -> Option<&'static str> {
        self.variant
            .and_then(|v| self.family.variants().get(usize::from(v)).copied())
    }

    /// The kernel of `families` that [`Kernel::name`] names.
    pub fn from_name(families: &[&'static F], name: &str) -> Option<Self> {
        families.iter().find_map(|&f| {
            if f.name() == name {
                return Some(Self::of(f));
            }
            let v = name
                .strip_prefix(f.name())?
                .strip_prefix('[')?
                .strip_suffix(']')?;
            let i = f.variants().iter().position(|x| *x == v)?;
            Some(Self {
                family: f,
                variant: Some(u16::try_from(i).ok()?),
            })
        })
    }
}

impl<F: ?Sized> Clone for Kernel<F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F: ?Sized> Copy for Kernel<F> {}

impl<F: ?Sized + Family> PartialEq for Kernel<F> {
    fn eq(&self, other: &Self) -> bool {
        self.family.name() == other.family.name() && self.variant == other.variant
    }
}

impl<F: ?Sized + Family> Eq for Kernel<F> {}

impl<F: ?Sized + Family> std::hash::Hash for Kernel<F> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.family.name().hash(h);
        self.variant.hash(h);
    }
}

impl<F: ?Sized + Family> fmt::Debug for Kernel<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl<F: ?Sized + Family> fmt::Display for Kernel<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}
