//! The entry points of `shaders/conv.wgsl` as three kernel families ([`CONV_PK8`],
//! [`CONV_CO8`], [`CONV_CO1`]): the fallbacks that read weights as they are and run any
//! ordinary grouped convolution (not an index-addressed table).

use super::{even_groups, forward, padded_input_bytes, DirectArgs};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::family::{Adapter, ConvForward, ConvProblem, ConvRun, Family};
use crate::gpu::launch::{Call, Scratch};

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

/// A `conv.wgsl` entry point as a family.
pub struct Direct(pub DirectKernel);

/// `conv_pk8` (stride 1, padded input and packed weights made by the run itself).
pub static CONV_PK8: Direct = Direct(DirectKernel::Pk8);
/// `conv_co8`.
pub static CONV_CO8: Direct = Direct(DirectKernel::Co8);
/// `conv_co1` (runs every ordinary convolution).
pub static CONV_CO1: Direct = Direct(DirectKernel::Co1);

impl Family for Direct {
    fn name(&self) -> &'static str {
        self.0.entry()
    }
}

impl ConvForward for Direct {
    fn prefers(&self, p: &ConvProblem, a: &Adapter) -> bool {
        match self.0 {
            DirectKernel::Pk8 | DirectKernel::Co8 => p.avg_out() >= 4 && self.can_run(p, a, None),
            DirectKernel::Co1 => self.can_run(p, a, None),
        }
    }

    fn can_run(&self, p: &ConvProblem, a: &Adapter, _: Option<u16>) -> bool {
        !p.table
            && (self.0 != DirectKernel::Pk8
                || (p.spec.stride == [1, 1]
                    && padded_input_bytes(&p.shape()).is_some_and(|b| b <= a.max_binding)))
    }

    fn forward(
        &self,
        ctx: &GpuContext,
        run: ConvRun<'_>,
        _: Option<u16>,
        scratch: &mut Scratch<'_>,
    ) -> Result<Vec<Call>> {
        let groups = even_groups(run.label, run.spec)?;
        let weight = run
            .weight
            .clone()
            .ok_or_else(|| Error::shape(run.label, "a direct convolution without weights"))?;
        let args = DirectArgs {
            x: run.x.clone(),
            weight,
            bias: run.bias.clone(),
            out: run.out.clone(),
        };
        let s = run.shape();
        forward(
            ctx,
            run.label,
            (self.0, &s, run.act),
            &groups,
            args,
            scratch,
        )
    }
}
