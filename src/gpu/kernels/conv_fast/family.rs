//! `conv_fast` as a kernel family ([`CONV_FAST`]): what it can run, when it should (a
//! specialised entry fits), its variants (the generated entry points), the weights it packs
//! at load and the calls of one run.

use super::{forward, has_specialised, padded_input_bytes, ConvIo, FastConv, FastConvGpu};
use super::{Entry, Weight, ENTRIES};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::family::{Adapter, ConvForward, ConvLayer, ConvOp, ConvProblem, ConvRun};
use crate::gpu::family::{Family, PreparedConv};
use crate::gpu::launch::{Arg, Call, Scratch};

/// The `conv_fast` family.
pub struct ConvFast;

/// `conv_fast`: implicit GEMM in register tiles for CPU adapters.
pub static CONV_FAST: ConvFast = ConvFast;

/// The entry points' names, in [`ENTRIES`] order (the family's variants).
const NAMES: [&str; ENTRIES.len()] = {
    let mut names = [""; ENTRIES.len()];
    let mut i = 0;
    while i < ENTRIES.len() {
        names[i] = ENTRIES[i].name;
        i += 1;
    }
    names
};

/// The entry forced by `variant`.
fn entry(variant: Option<u16>) -> Option<Entry> {
    variant.and_then(|v| ENTRIES.get(usize::from(v)).copied())
}

fn plan(op: ConvOp<'_>, in_hw: [usize; 2], variant: Option<u16>) -> Result<FastConv> {
    match op {
        ConvOp::Conv2d(spec) => FastConv::conv2d(spec, in_hw, entry(variant)),
        ConvOp::Table(t) => FastConv::table(t, in_hw, entry(variant)),
    }
}

impl Family for ConvFast {
    fn name(&self) -> &'static str {
        "conv_fast"
    }

    fn variants(&self) -> &'static [&'static str] {
        &NAMES
    }
}

impl ConvForward for ConvFast {
    fn prefers(&self, p: &ConvProblem, a: &Adapter) -> bool {
        has_specialised(&p.spec) && self.can_run(p, a, None)
    }

    fn can_run(&self, p: &ConvProblem, a: &Adapter, variant: Option<u16>) -> bool {
        let fits = match variant {
            None => true,
            Some(_) => entry(variant).is_some_and(|e| e.fits(&p.spec)),
        };
        fits && padded_input_bytes(&p.spec, p.batch, p.in_hw).is_some_and(|b| b <= a.max_binding)
    }

    /// The other specialised entries that fit, those closest in tile width to the cost
    /// model's pick first.
    fn tune_variants(&self, p: &ConvProblem, a: &Adapter) -> Vec<u16> {
        let pick = if p.table {
            None
        } else {
            FastConv::conv2d(&p.spec, p.in_hw, None)
                .ok()
                .map(|f| f.entry())
        };
        let width = |e: &Entry| e.tile.ms * e.tile.s;
        let w0 = pick.as_ref().map_or(8, width);
        let mut extra: Vec<(usize, u16)> = ENTRIES
            .iter()
            .enumerate()
            .filter(|(_, e)| e.geom.is_some() && e.fits(&p.spec) && Some(**e) != pick)
            .filter_map(|(i, e)| Some((width(e).abs_diff(w0), u16::try_from(i).ok()?)))
            .collect();
        extra.sort();
        extra
            .into_iter()
            .map(|(_, i)| i)
            .filter(|&i| self.can_run(p, a, Some(i)))
            .collect()
    }

    fn prepare(
        &self,
        ctx: &GpuContext,
        layer: &ConvLayer<'_>,
        variant: Option<u16>,
    ) -> Result<Option<Box<dyn PreparedConv>>> {
        let p = plan(layer.op, layer.in_hw, variant)?;
        let packed = p.pack(layer.weight)?;
        let c_out = layer.op.spec().out_channels;
        let zeros = vec![0.0; c_out];
        let b = layer.bias.unwrap_or(&zeros);
        let name = layer.name;
        Ok(Some(Box::new(FastPrepared {
            bytes: 4 * (packed.len() + b.len()) as u64,
            layer: p.upload(ctx, name)?,
            weight: ctx.upload(&format!("{name} packed weight"), &packed)?,
            bias: ctx.upload(&format!("{name} bias"), b)?,
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
            .ok_or_else(|| Error::shape(run.label, "conv_fast without weights to pack"))?;
        let layer = plan(ConvOp::Conv2d(run.spec), run.in_hw, variant)?.upload(ctx, run.label)?;
        let io = ConvIo {
            x: run.x.clone(),
            out: run.out.clone(),
            weight: Weight::Natural(weight),
            bias: run.bias.clone(),
        };
        forward(ctx, run.label, &layer, io, run.geom(), scratch)
    }
}

/// A layer planned and its weights packed for `conv_fast` at load.
#[derive(Debug)]
struct FastPrepared {
    layer: FastConvGpu,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
    bytes: u64,
}

impl PreparedConv for FastPrepared {
    fn forward(
        &self,
        ctx: &GpuContext,
        run: ConvRun<'_>,
        scratch: &mut Scratch<'_>,
    ) -> Result<Vec<Call>> {
        let io = ConvIo {
            x: run.x.clone(),
            out: run.out.clone(),
            weight: Weight::Packed(Arg::whole(&self.weight)),
            bias: Some(Arg::whole(&self.bias)),
        };
        forward(ctx, run.label, &self.layer, io, run.geom(), scratch)
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn reads_natural_weights(&self) -> bool {
        false
    }
}
