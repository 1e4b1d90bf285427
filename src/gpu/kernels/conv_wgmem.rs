//! Launcher for `shaders/conv_wgmem.wgsl`: the workgroup-memory implicit-GEMM convolution
//! for discrete GPUs (coalesced loads, 64 filters × 64 pixels per workgroup, weights read in
//! their natural `[N, C/G, kh, kw]` / group-after-group layout, so no packing pass). Groups
//! smaller than the 64-filter tile share it: the tile is `s` segments of `ms` filters.
//!
//! On lavapipe it is correct but slow (barriers switch coroutines); it is tested there for
//! correctness only. [`conv_fast`](super::conv_fast) is the CPU-adapter kernel.

use super::conv_fast::{ConvGeom, GroupLayout};
use super::{check_buffer, check_dims, check_tensor, fold_workgroups, make_dispatch};
use crate::error::{Error, Result};
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;
use crate::graph::{Conv2dSpec, GroupRange};

/// `shaders/conv_wgmem.wgsl`: params, x, natural weight, bias, segments, channels, out.
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "conv_wgmem",
    source: include_str!("../../../shaders/conv_wgmem.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
    ],
    // Every access is range-checked in the shader; keep the runtime checks anyway (the
    // target is a discrete GPU, where they are cheap).
    trusted: false,
};

/// Filters per workgroup tile.
pub const BM: usize = 64;
/// Output pixels per workgroup tile.
pub const BN: usize = 64;
/// Most segments per tile (workgroup memory holds `s · bk ≤ 48` input rows of 64 pixels).
pub const MAX_SEGMENTS: usize = 32;

/// Mirror of the WGSL `Params` of `conv_wgmem.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct WgmemParams {
    /// Batch.
    pub batch: u32,
    /// Input channels.
    pub c_in: u32,
    /// Output channels.
    pub c_out: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Kernel height.
    pub kh: u32,
    /// Kernel width.
    pub kw: u32,
    /// Vertical stride.
    pub sh: u32,
    /// Horizontal stride.
    pub sw: u32,
    /// Vertical padding.
    pub ph: u32,
    /// Horizontal padding.
    pub pw: u32,
    /// Vertical dilation.
    pub dh: u32,
    /// Horizontal dilation.
    pub dw: u32,
    /// Tiles of 64 filters.
    pub n_tiles: u32,
    /// Pixel blocks of 64 per output plane.
    pub pblocks: u32,
    /// Workgroups in all.
    pub total_wg: u32,
    /// Fused ReLU.
    pub relu: u32,
    /// Padding to 16 bytes.
    pub _pad: u32,
}
super::uniform_params!(WgmemParams);

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
    segs: Vec<[u32; 8]>,
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
        let segs = segs
            .into_iter()
            .map(|v| {
                let mut o = [0u32; 8];
                for (d, x) in o.iter_mut().zip(v) {
                    *d = u32::try_from(x)
                        .map_err(|_| Error::shape(label, format!("{x} exceeds u32")))?;
                }
                Ok(o)
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
        let flat: Vec<u32> = self.segs.iter().flatten().copied().collect();
        Ok(WgmemConvGpu {
            plan: self.clone(),
            segs: ctx.upload_u32(&format!("{label} segments"), &flat)?,
            chan: ctx.upload_u32(&format!("{label} channels"), &self.chan)?,
        })
    }
}

/// A planned layer with its segment table and channel lists on the GPU.
pub struct WgmemConvGpu {
    plan: WgmemConv,
    segs: wgpu::Buffer,
    chan: wgpu::Buffer,
}

/// The tensors of one run (weights in the natural layout).
#[derive(Clone, Copy, Debug)]
pub struct WgmemIo<'a> {
    /// Input `[batch, C, h, w]`.
    pub x: TensorRef<'a>,
    /// Output `[batch, N, oh, ow]`.
    pub out: TensorRef<'a>,
    /// Weights, `natural_len` floats.
    pub weight: &'a wgpu::Buffer,
    /// Bias (`N` floats) or none.
    pub bias: Option<&'a wgpu::Buffer>,
}

/// The convolution dispatch of one run. The adapter must allow 16 KiB of workgroup memory
/// and 256 invocations per workgroup (WebGPU defaults).
pub fn prepare(
    ctx: &GpuContext,
    label: &str,
    layer: &WgmemConvGpu,
    io: WgmemIo<'_>,
    geom: ConvGeom,
) -> Result<Vec<Dispatch>> {
    let plan = &layer.plan;
    let spec = &plan.spec;
    let [h, w] = geom.in_hw;
    check_dims(
        label,
        &[
            ("batch", geom.batch),
            ("input height", h),
            ("input width", w),
        ],
    )?;
    if ctx.limits.max_compute_workgroup_storage_size < 16384
        || ctx.limits.max_compute_invocations_per_workgroup < 256
    {
        return Err(Error::shape(
            label,
            "the adapter allows less than 16 KiB of workgroup memory or 256 invocations",
        ));
    }
    let [oh, ow] = spec.out_hw(h, w).ok_or_else(|| {
        Error::shape(
            label,
            format!(
                "input {:?} padded by {:?} is smaller than the dilated kernel {:?}",
                geom.in_hw, spec.padding, spec.kernel
            ),
        )
    })?;
    let (c, n, batch) = (spec.in_channels, spec.out_channels, geom.batch);
    let dims = |d: &[usize]| d.iter().try_fold(1usize, |a, &v| a.checked_mul(v));
    let fits = |v: Option<usize>| v.filter(|&v| v <= u32::MAX as usize);
    let (Some(x_len), Some(out_len)) = (
        fits(dims(&[batch, c, h, w])),
        fits(dims(&[batch, n, oh, ow])),
    ) else {
        return Err(Error::shape(label, "a tensor exceeds u32 indexing"));
    };
    check_tensor(ctx, label, "x", &io.x, x_len as u64)?;
    check_tensor(ctx, label, "out", &io.out, out_len as u64)?;
    check_buffer(ctx, label, "weight", io.weight, plan.natural_len as u64)?;
    if let Some(b) = io.bias {
        check_buffer(ctx, label, "bias", b, n as u64)?;
    }
    let zeros;
    let bias = match io.bias {
        Some(b) => b,
        None => {
            zeros = ctx.storage_buffer(&format!("{label} zero bias"), (n * 4) as u64)?;
            &zeros
        }
    };
    let n_tiles = plan.segs.len() / plan.s;
    let pblocks = (oh * ow).div_ceil(BN);
    let total = fits(dims(&[batch, n_tiles, pblocks]))
        .ok_or_else(|| Error::shape(label, "grid exceeds u32"))?;
    let [kh, kw] = spec.kernel;
    let params = WgmemParams {
        batch: batch as u32,
        c_in: c as u32,
        c_out: n as u32,
        h: h as u32,
        w: w as u32,
        oh: oh as u32,
        ow: ow as u32,
        kh: kh as u32,
        kw: kw as u32,
        sh: spec.stride[0] as u32,
        sw: spec.stride[1] as u32,
        ph: spec.padding[0] as u32,
        pw: spec.padding[1] as u32,
        dh: spec.dilation[0] as u32,
        dw: spec.dilation[1] as u32,
        n_tiles: n_tiles as u32,
        pblocks: pblocks as u32,
        total_wg: total as u32,
        relu: u32::from(geom.relu),
        _pad: 0,
    };
    let u = ctx.uniform(&format!("{label} params"), &params);
    let grid = fold_workgroups(ctx, label, total as u64)?;
    Ok(vec![make_dispatch(
        ctx,
        label,
        &SHADER,
        "conv_wgmem",
        vec![
            ("MS", plan.ms as u32),
            ("S", plan.s as u32),
            ("BK", plan.bk as u32),
        ],
        &[
            u.as_entire_binding(),
            io.x.binding(),
            io.weight.as_entire_binding(),
            bias.as_entire_binding(),
            layer.segs.as_entire_binding(),
            layer.chan.as_entire_binding(),
            io.out.binding(),
        ],
        grid,
    )?])
}
