//! `conv_igemm` as a kernel family ([`CONV_IGEMM`]): the discrete tier's first conv
//! candidate. Variants are its workgroup tiles; depthwise layers are left to `conv_dw`. It
//! honours [`Precision::F16`]: the weights packed at load as halves.

use super::plan::{slots, IgemmConv};
use super::{forward, IgemmConvGpu, IgemmIo, IgemmWeight, TILES};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::family::{Adapter, ConvForward, ConvLayer, ConvOp, ConvProblem, ConvRun};
use crate::gpu::family::{Family, PreparedConv};
use crate::gpu::launch::{Arg, Call, Scratch};
use crate::gpu::precision::Precision;

/// Workgroup memory the kernel declares (two buffers of weights and of input rows).
pub const WORKGROUP_BYTES: u32 = 4 * 2 * (super::A_FLOATS + super::B_FLOATS) as u32;

/// The `conv_igemm` family.
pub struct ConvIgemm;

/// `conv_igemm`: implicit GEMM in workgroup-memory tiles for real GPUs.
pub static CONV_IGEMM: ConvIgemm = ConvIgemm;

const NAMES: [&str; TILES.len()] = {
    let mut names = [""; TILES.len()];
    let mut i = 0;
    while i < TILES.len() {
        names[i] = TILES[i].name;
        i += 1;
    }
    names
};

fn tile(variant: Option<u16>) -> Option<super::IgemmTile> {
    variant.and_then(|v| TILES.get(usize::from(v)).copied())
}

fn plan(op: ConvOp<'_>, variant: Option<u16>) -> Result<IgemmConv> {
    match op {
        ConvOp::Conv2d(spec) => IgemmConv::conv2d(spec, tile(variant)),
        ConvOp::Table(t) => IgemmConv::table(t, tile(variant)),
    }
}

/// Whether the adapter has the workgroup memory and invocations the kernel needs.
fn fits(a: &Adapter) -> bool {
    a.workgroup_storage >= WORKGROUP_BYTES && a.invocations >= 256
}

impl Family for ConvIgemm {
    fn name(&self) -> &'static str {
        "conv_igemm"
    }

    fn variants(&self) -> &'static [&'static str] {
        &NAMES
    }
}

impl ConvForward for ConvIgemm {
    /// Everything but depthwise convolutions (one filter per group reading one channel:
    /// a GEMM of rank 1 per group, bandwidth-bound, `conv_dw`'s).
    fn prefers(&self, p: &ConvProblem, a: &Adapter) -> bool {
        !p.is_depthwise() && self.can_run(p, a, None)
    }

    fn reads_f16(&self) -> bool {
        true
    }

    fn can_run(&self, _: &ConvProblem, a: &Adapter, variant: Option<u16>) -> bool {
        fits(a) && (variant.is_none() || tile(variant).is_some())
    }

    /// The other tiles.
    fn tune_variants(&self, p: &ConvProblem, a: &Adapter) -> Vec<u16> {
        let own = IgemmConv::conv2d(&p.spec, None).ok().map(|c| c.tile);
        (0..TILES.len())
            .filter(|&i| Some(TILES[i]) != own)
            .filter_map(|i| u16::try_from(i).ok())
            .filter(|&v| !p.table && self.can_run(p, a, Some(v)))
            .collect()
    }

    fn prepare(
        &self,
        ctx: &GpuContext,
        layer: &ConvLayer<'_>,
        variant: Option<u16>,
    ) -> Result<Option<Box<dyn PreparedConv>>> {
        let p = plan(layer.op, variant)?;
        let name = layer.name;
        let precision = layer.precision;
        let (weight, weight_bytes) = match precision {
            // A table whose every group is dead packs to nothing: a zero stand-in of the
            // size the launcher checks (the kernel reads no weight then; bias only).
            Precision::F32 => {
                let mut packed = p.pack(layer.weight)?;
                packed.resize(packed.len().max(4), 0.0);
                let b = ctx.upload(&format!("{name} packed weight"), &packed)?;
                (b, 4 * packed.len())
            }
            Precision::F16 => {
                let mut packed = p
                    .pack_f16(layer.weight)
                    .map_err(|e| Error::shape(name, e.to_string()))?;
                packed.resize(packed.len().max(2), 0);
                let b = ctx.upload_u32(&format!("{name} packed f16 weight"), &packed)?;
                (b, 4 * packed.len())
            }
        };
        let bias = match layer.bias {
            Some(b) => Some(ctx.upload(&format!("{name} bias"), b)?),
            None => None,
        };
        Ok(Some(Box::new(IgemmPrepared {
            bytes: (weight_bytes + 4 * layer.bias.map_or(0, <[f32]>::len)) as u64,
            precision,
            slots: slots(Adapter::of(ctx).compute_units),
            layer: p.upload(ctx, name)?,
            weight,
            bias,
        })))
    }

    fn forward(
        &self,
        ctx: &GpuContext,
        run: ConvRun<'_>,
        variant: Option<u16>,
        scratch: &mut Scratch<'_>,
    ) -> Result<Vec<Call>> {
        let weight = run
            .weight
            .clone()
            .ok_or_else(|| Error::shape(run.label, "conv_igemm without weights to pack"))?;
        let layer = plan(ConvOp::Conv2d(run.spec), variant)?.upload(ctx, run.label)?;
        let io = IgemmIo {
            x: run.x.clone(),
            out: run.out.clone(),
            weight: IgemmWeight::Natural(weight),
            bias: run.bias.clone(),
        };
        let slots = slots(Adapter::of(ctx).compute_units);
        forward(ctx, run.label, (&layer, slots), io, run.geom(), scratch)
    }
}

/// A layer planned and its weights packed for `conv_igemm` at load.
#[derive(Debug)]
struct IgemmPrepared {
    layer: IgemmConvGpu,
    weight: wgpu::Buffer,
    bias: Option<wgpu::Buffer>,
    slots: usize,
    bytes: u64,
    precision: Precision,
}

impl PreparedConv for IgemmPrepared {
    fn forward(
        &self,
        ctx: &GpuContext,
        run: ConvRun<'_>,
        scratch: &mut Scratch<'_>,
    ) -> Result<Vec<Call>> {
        let io = IgemmIo {
            x: run.x.clone(),
            out: run.out.clone(),
            weight: match self.precision {
                Precision::F32 => IgemmWeight::Packed(Arg::whole(&self.weight)),
                Precision::F16 => IgemmWeight::PackedF16(Arg::whole(&self.weight)),
            },
            bias: self.bias.as_ref().map(Arg::whole),
        };
        forward(
            ctx,
            run.label,
            (&self.layer, self.slots),
            io,
            run.geom(),
            scratch,
        )
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn reads_natural_weights(&self) -> bool {
        false
    }

    fn precision(&self) -> Precision {
        self.precision
    }
}
