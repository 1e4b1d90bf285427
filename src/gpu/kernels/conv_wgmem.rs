//! Launcher for `shaders/conv_wgmem.wgsl`: the workgroup-memory implicit-GEMM convolution
//! for discrete GPUs (coalesced loads, 64 filters × 64 pixels per workgroup, weights read in
//! their natural `[N, C/G, kh, kw]` / group-after-group layout, so no packing pass). Groups
//! smaller than the 64-filter tile share it: the tile is `s` segments of `ms` filters.
//!
//! On lavapipe it is correct but slow (barriers switch coroutines); it is tested there for
//! correctness only. [`conv_fast`](super::conv_fast) is the CPU-adapter kernel.

use super::conv_fast::{FastSeg, GroupLayout};
use super::{check_arg, fold_workgroups, Arg, Call, Scratch};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::family::{Adapter, ConvForward, ConvLayer, ConvOp, ConvProblem, ConvRun};
use crate::gpu::family::{Family, PreparedConv};
use crate::gpu::geometry::{ConvGeom, ConvGeometry, Epilogue};
use crate::graph::{Conv2dSpec, GroupRange, GroupedConvTable};

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `conv_wgmem.wgsl`.
    pub struct WgmemParams = "Params" {
        /// The geometry ([`ConvGeometry`]).
        pub geom: ConvGeometry,
        /// Bias and activation ([`Epilogue`]).
        pub epi: Epilogue,
        /// Tiles of 64 filters.
        pub n_tiles: u32,
        /// Pixel blocks of 64 per output plane.
        pub pblocks: u32,
        /// Workgroups in all.
        pub total_wg: u32,
        /// Last valid index of the `bias` binding (the shader clamps to it).
        pub bias_max: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/conv_wgmem.wgsl`. Every access is range-checked in the shader; the runtime
    /// checks stay on anyway (the target is a discrete GPU, where they are cheap).
    pub static SHADER = "conv_wgmem" {
        params: WgmemParams,
        mirrors: [FastSeg],
        trusted: false,
        /// Arguments of `conv_wgmem`.
        args: WgmemArgs {
            /// `[batch, C, H, W]` input.
            x: read array<act_t>,
            /// The natural weights (`[N, C/G, kh, kw]` or a table's groups one after another).
            wn: read array<f32>,
            /// `[N]` bias (a stand-in when the layer has none).
            bias: read array<f32>,
            /// The segments.
            segs: read array<Seg>,
            /// Input channel list, then output channel list.
            chan: read array<u32>,
            /// `[batch, N, OH, OW]` output.
            out: write array<act_t>,
        }
    }
}

/// Filters per workgroup tile.
pub const BM: usize = 64;
/// Output pixels per workgroup tile.
pub const BN: usize = 64;
/// Most segments per tile (workgroup memory holds `s · bk ≤ 48` input rows of 64 pixels).
pub const MAX_SEGMENTS: usize = 32;

/// A layer planned for the workgroup-memory kernel (host side).
#[derive(Clone, Debug, PartialEq)]
pub struct WgmemConv {
    spec: Conv2dSpec,
    /// Filters per segment.
    ms: usize,
    /// Segments per tile.
    s: usize,
    /// K step.
    bk: usize,
    segs: Vec<FastSeg>,
    chan: Vec<u32>,
    natural_len: usize,
}

impl WgmemConv {
    /// Plans an ordinary grouped convolution (`cpu::conv2d` semantics).
    pub fn conv2d(spec: &Conv2dSpec) -> Result<Self> {
        Self::build(spec, GroupLayout::conv2d("conv_wgmem", spec)?)
    }

    /// Plans an index-addressed uneven grouped convolution (`cpu::grouped_conv_indexed`
    /// semantics; see [`GroupLayout::table`]).
    pub fn grouped_table(
        spec: &Conv2dSpec,
        table: &[GroupRange],
        in_index: &[usize],
        out_index: &[usize],
    ) -> Result<Self> {
        let layout = GroupLayout::table("conv_wgmem", spec, table, in_index, out_index)?;
        Self::build(spec, layout)
    }

    /// Plans an exported group table ([`crate::graph::Op::GroupedConvTable`]).
    pub fn table(t: &GroupedConvTable) -> Result<Self> {
        Self::grouped_table(&t.spec, &t.table, &t.in_index, &t.out_index)
    }

    fn build(spec: &Conv2dSpec, layout: GroupLayout) -> Result<Self> {
        let label = "conv_wgmem";
        let largest = layout.groups.iter().map(|g| g[3]).max().unwrap_or(0);
        if largest == 0 {
            return Err(Error::shape(label, "a convolution without output channels"));
        }
        // Segments as large as the largest group (a power of two ≤ 64), as many per tile
        // as fit.
        let ms = largest.next_power_of_two().min(BM);
        let s = (BM / ms).min(MAX_SEGMENTS);
        let bk = (48 / s).min(16);
        let bk = 1 << bk.ilog2();
        let kk = spec.kernel[0] * spec.kernel[1];
        let mut segs = Vec::new();
        for &[in_start, in_len, out_start, out_len, wn_off] in &layout.groups {
            let mut j = 0;
            while j < out_len {
                let len = ms.min(out_len - j);
                segs.push([
                    in_start,
                    in_len,
                    out_start + j,
                    len,
                    0,
                    wn_off + j * in_len * kk,
                ]);
                j += ms;
            }
        }
        while segs.len() % s != 0 {
            segs.push([0; 6]);
        }
        let to_u32 = |x: usize| {
            u32::try_from(x).map_err(|_| Error::shape(label, format!("{x} exceeds u32")))
        };
        let segs = segs
            .into_iter()
            .map(|v| -> Result<FastSeg> {
                Ok(FastSeg {
                    in_start: to_u32(v[0])?,
                    in_len: to_u32(v[1])?,
                    out_start: to_u32(v[2])?,
                    out_len: to_u32(v[3])?,
                    w_off: 0,
                    wn_off: to_u32(v[5])?,
                    ..FastSeg::default()
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            spec: spec.clone(),
            ms,
            s,
            bk,
            segs,
            natural_len: layout.natural_len(spec),
            chan: layout.chan,
        })
    }

    /// `(filters per segment, segments per tile, K step)`.
    pub fn tiling(&self) -> (usize, usize, usize) {
        (self.ms, self.s, self.bk)
    }

    /// Floats of the natural weight.
    pub fn natural_len(&self) -> usize {
        self.natural_len
    }

    /// Uploads the segment table and channel lists.
    pub fn upload(&self, ctx: &GpuContext, label: &str) -> Result<WgmemConvGpu> {
        Ok(WgmemConvGpu {
            plan: self.clone(),
            segs: ctx.upload_u32(
                &format!("{label} segments"),
                bytemuck::cast_slice(&self.segs),
            )?,
            chan: ctx.upload_u32(&format!("{label} channels"), &self.chan)?,
        })
    }
}

/// A planned layer with its segment table and channel lists on the GPU.
#[derive(Debug)]
pub struct WgmemConvGpu {
    plan: WgmemConv,
    segs: wgpu::Buffer,
    chan: wgpu::Buffer,
}

/// The tensors of one run (weights in the natural layout).
#[derive(Clone, Debug)]
pub struct WgmemIo {
    /// Input `[batch, C, h, w]`.
    pub x: Arg,
    /// Output `[batch, N, oh, ow]`.
    pub out: Arg,
    /// Weights, `natural_len` floats.
    pub weight: Arg,
    /// Bias (`N` floats) or none.
    pub bias: Option<Arg>,
}

/// Whether `ctx`'s adapter can run the kernel: 16 KiB of workgroup memory and 256
/// invocations per workgroup (WebGPU defaults).
pub fn adapter_fits(limits: &wgpu::Limits) -> bool {
    fits(
        limits.max_compute_workgroup_storage_size,
        limits
            .max_compute_invocations_per_workgroup
            .min(limits.max_compute_workgroup_size_x),
    )
}

/// The convolution call of one run.
pub fn forward(
    ctx: &GpuContext,
    label: &str,
    layer: &WgmemConvGpu,
    io: WgmemIo,
    geom: ConvGeom,
) -> Result<Call> {
    let plan = &layer.plan;
    let spec = &plan.spec;
    if !adapter_fits(&ctx.limits) {
        return Err(Error::shape(
            label,
            "the adapter allows less than 16 KiB of workgroup memory or 256 invocations",
        ));
    }
    let g = geom.geometry(label, spec)?;
    let [oh, ow] = [g.oh as usize, g.ow as usize];
    let [h, w] = geom.in_hw;
    let (c, n, batch) = (spec.in_channels, spec.out_channels, geom.batch);
    let dims = |d: &[usize]| d.iter().try_fold(1usize, |a, &v| a.checked_mul(v));
    let fits = |v: Option<usize>| v.filter(|&v| v <= u32::MAX as usize);
    let (Some(x_len), Some(out_len)) = (
        fits(dims(&[batch, c, h, w])),
        fits(dims(&[batch, n, oh, ow])),
    ) else {
        return Err(Error::shape(label, "a tensor exceeds u32 indexing"));
    };
    check_arg(ctx, label, "x", &io.x, x_len as u64)?;
    check_arg(ctx, label, "out", &io.out, out_len as u64)?;
    // A table whose every group is dead has no weight: one stand-in value, never read.
    check_arg(
        ctx,
        label,
        "weight",
        &io.weight,
        plan.natural_len.max(1) as u64,
    )?;
    let segs = Arg::whole(&layer.segs);
    let (bias, has_bias) = match io.bias {
        Some(b) => {
            check_arg(ctx, label, "bias", &b, n as u64)?;
            (b, true)
        }
        None => (segs.clone(), false),
    };
    let n_tiles = plan.segs.len() / plan.s;
    let pblocks = (oh * ow).div_ceil(BN);
    let total = fits(dims(&[batch, n_tiles, pblocks]))
        .ok_or_else(|| Error::shape(label, "grid exceeds u32"))?;
    let params = WgmemParams {
        geom: g,
        epi: Epilogue::new(geom.act, has_bias),
        n_tiles: n_tiles as u32,
        pblocks: pblocks as u32,
        total_wg: total as u32,
        bias_max: (bias.len.max(1) - 1) as u32,
    };
    let args = WgmemArgs {
        x: io.x,
        wn: io.weight,
        bias,
        segs,
        chan: Arg::whole(&layer.chan),
        out: io.out,
    };
    let consts = [
        ("MS", plan.ms as u32),
        ("S", plan.s as u32),
        ("BK", plan.bk as u32),
    ];
    Call::new(
        ctx,
        label,
        SHADER.entry("conv_wgmem", &consts),
        &params,
        args.into_vec(),
        fold_workgroups(ctx, label, total as u64)?,
    )
}

/// Whether an adapter with `workgroup_storage` bytes and `invocations` per workgroup can run
/// the kernel (the WebGPU defaults: 16 KiB, 256).
fn fits(workgroup_storage: u32, invocations: u32) -> bool {
    workgroup_storage >= 16384 && invocations >= 256
}

/// The `conv_wgmem` family: natural weights, a segment table made at load.
pub struct ConvWgmem;

/// `conv_wgmem`: workgroup-memory implicit GEMM for real GPUs.
pub static CONV_WGMEM: ConvWgmem = ConvWgmem;

impl Family for ConvWgmem {
    fn name(&self) -> &'static str {
        "conv_wgmem"
    }
}

impl ConvForward for ConvWgmem {
    fn prefers(&self, p: &ConvProblem, a: &Adapter) -> bool {
        self.can_run(p, a, None)
    }

    fn can_run(&self, _: &ConvProblem, a: &Adapter, _: Option<u16>) -> bool {
        fits(a.workgroup_storage, a.invocations)
    }

    fn prepare(
        &self,
        ctx: &GpuContext,
        layer: &ConvLayer<'_>,
        _: Option<u16>,
    ) -> Result<Option<Box<dyn PreparedConv>>> {
        let plan = match layer.op {
            ConvOp::Conv2d(spec) => WgmemConv::conv2d(spec)?,
            ConvOp::Table(t) => WgmemConv::table(t)?,
        };
        Ok(Some(Box::new(plan.upload(ctx, layer.name)?)))
    }

    fn forward(
        &self,
        ctx: &GpuContext,
        run: ConvRun<'_>,
        _: Option<u16>,
        scratch: &mut Scratch<'_>,
    ) -> Result<Vec<Call>> {
        let layer = WgmemConv::conv2d(run.spec)?.upload(ctx, run.label)?;
        PreparedConv::forward(&layer, ctx, run, scratch)
    }
}

impl PreparedConv for WgmemConvGpu {
    fn forward(
        &self,
        ctx: &GpuContext,
        run: ConvRun<'_>,
        _: &mut Scratch<'_>,
    ) -> Result<Vec<Call>> {
        let weight = run
            .weight
            .clone()
            .ok_or_else(|| Error::shape(run.label, "conv_wgmem reads the natural weights"))?;
        let io = WgmemIo {
            x: run.x.clone(),
            out: run.out.clone(),
            weight,
            bias: run.bias.clone(),
        };
        let geom = ConvGeom {
            batch: run.batch,
            in_hw: run.in_hw,
            act: run.act,
        };
        Ok(vec![forward(ctx, run.label, self, io, geom)?])
    }

    fn bytes(&self) -> u64 {
        self.segs.size() + self.chan.size()
    }

    fn reads_natural_weights(&self) -> bool {
        true
    }
}
