//! Launcher for `shaders/conv_tiled.wgsl`: the register-tiled convolution (8 filters × 8
//! pixels per invocation) used for every convolution with at least 8 filters per group and
//! for the index-addressed uneven groups of exported FLGC layers.
//!
//! Weights are re-packed on the host once, when a model is loaded ([`pack_conv2d`],
//! [`pack_grouped_table`]), and uploaded with [`upload`]; [`prepare`] then builds the
//! dispatch for a batch size. One dispatch per layer, whatever the number of groups.

use super::{check_dims, check_tensor, fold_workgroups, make_dispatch};
use crate::error::{Error, Result};
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;
use crate::graph::{Conv2dSpec, GroupRange};

/// `shaders/conv_tiled.wgsl`: params, x, packed weights, bias, tiles, channel lists, out.
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "conv_tiled",
    source: include_str!("../../../shaders/conv_tiled.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
    ],
    // Every index is clamped or range-checked in the shader; sizes are validated here.
    trusted: true,
};

/// Filters per tile (one invocation's output channels).
pub const CO: usize = 8;
/// Output pixels per invocation (along a row).
pub const PX: usize = 8;

/// Mirror of the WGSL `Params` of `conv_tiled.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvTiledParams {
    /// Batch.
    pub batch: u32,
    /// Input channels of the tensor.
    pub c_in: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output channels of the tensor.
    pub c_out: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Kernel height.
    pub kh: u32,
    /// Vertical stride.
    pub sh: u32,
    /// Vertical padding.
    pub ph: u32,
    /// Horizontal padding.
    pub pw: u32,
    /// Vertical dilation.
    pub dh: u32,
    /// Number of tiles.
    pub n_tiles: u32,
    /// Pixel tiles per output row (`ceil(ow / 8)`).
    pub px_tiles: u32,
    /// Apply ReLU in the epilogue.
    pub relu: u32,
    /// Workgroups in all.
    pub total: u32,
    /// Workgroups per output row (`ceil(px_tiles / WG)`).
    pub px_blocks: u32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 3],
}
super::uniform_params!(ConvTiledParams);

/// A conv layer re-packed for the tiled kernel (host side).
#[derive(Clone, Debug, PartialEq)]
pub struct PackedConv {
    /// Per tile, per (input channel, ky, kx): 8 filter values (zero beyond the tile).
    pub weights: Vec<f32>,
    /// Per tile: `[in_start, in_len, out_start, out_len, w_off (vec4s), 0, 0, 0]`.
    pub tiles: Vec<[u32; 8]>,
    /// Input channel lists followed by output channel lists; tiles index into it.
    pub chan: Vec<u32>,
    /// Length of the input part of `chan`.
    pub n_in: usize,
}

/// Appends the tiles of one group: filters `filters` (their packed weights given by `w_of`)
/// reading the channel list at `in_start..in_start+in_len` of `chan`.
fn push_group(
    p: &mut PackedConv,
    kk: usize,
    in_start: usize,
    in_len: usize,
    out_positions: std::ops::Range<usize>,
    w_of: &dyn Fn(usize, usize, usize) -> f32, // (filter position, input i, window k)
) {
    let positions: Vec<usize> = out_positions.collect();
    for chunk in positions.chunks(CO) {
        let w_off = p.weights.len() / 4;
        for i in 0..in_len {
            for k in 0..kk {
                for lane in 0..CO {
                    p.weights
                        .push(chunk.get(lane).map_or(0.0, |&f| w_of(f, i, k)));
                }
            }
        }
        p.tiles.push([
            in_start as u32,
            in_len as u32,
            chunk[0] as u32,
            chunk.len() as u32,
            w_off as u32,
            0,
            0,
            0,
        ]);
    }
}

/// Packs an ordinary grouped convolution (`weight`: `[N, C/G, kh, kw]`).
pub fn pack_conv2d(spec: &Conv2dSpec, weight: &[f32]) -> Result<PackedConv> {
    let (c, n, g) = (spec.in_channels, spec.out_channels, spec.groups);
    let kk = spec.kernel[0] * spec.kernel[1];
    let (cg, ng) = (c / g, n / g);
    if weight.len() != n * cg * kk {
        return Err(Error::tensor_shape(
            "conv_tiled weight",
            format!("{} values", n * cg * kk),
            &[weight.len()],
        ));
    }
    let mut p = PackedConv {
        weights: Vec::new(),
        tiles: Vec::new(),
        chan: (0..c as u32).chain(0..n as u32).collect(),
        n_in: c,
    };
    for grp in 0..g {
        // Output positions are offsets into `chan` (the output list starts at c).
        push_group(
            &mut p,
            kk,
            grp * cg,
            cg,
            c + grp * ng..c + (grp + 1) * ng,
            &|f, i, k| weight[((f - c) * cg + i) * kk + k],
        );
    }
    Ok(p)
}

/// Packs an index-addressed uneven grouped convolution ([`crate::graph::Op::GroupedConvTable`]).
pub fn pack_grouped_table(
    spec: &Conv2dSpec,
    table: &[GroupRange],
    in_index: &[usize],
    out_index: &[usize],
    weight: &[f32],
) -> Result<PackedConv> {
    let kk = spec.kernel[0] * spec.kernel[1];
    let need: usize = table.iter().map(|g| g.in_len * g.out_len * kk).sum();
    if weight.len() != need || out_index.len() != spec.out_channels {
        return Err(Error::tensor_shape(
            "conv_tiled packed table weight",
            format!("{need} values and {} output indices", spec.out_channels),
            &[weight.len(), out_index.len()],
        ));
    }
    let base = in_index.len();
    let mut p = PackedConv {
        weights: Vec::new(),
        tiles: Vec::new(),
        chan: in_index
            .iter()
            .chain(out_index)
            .map(|&i| i as u32)
            .collect(),
        n_in: base,
    };
    let mut off = 0;
    for g in table {
        if g.out_len == 0 {
            continue;
        }
        let (gs, il) = (g.out_start, g.in_len);
        push_group(
            &mut p,
            kk,
            g.in_start,
            il,
            base + gs..base + gs + g.out_len,
            &|f, i, k| weight[off + ((f - base - gs) * il + i) * kk + k],
        );
        off += g.out_len * il * kk;
    }
    Ok(p)
}

/// A packed layer resident on the GPU.
pub struct PackedConvGpu {
    weights: wgpu::Buffer,
    tiles: wgpu::Buffer,
    chan: wgpu::Buffer,
    bias: wgpu::Buffer,
    n_tiles: usize,
    max_in: u32,
    max_out: u32,
}

/// Uploads a packed layer; `bias` of `c_out` values (zeros when the layer has none).
pub fn upload(
    ctx: &GpuContext,
    label: &str,
    p: &PackedConv,
    bias: Option<&[f32]>,
    c_out: usize,
) -> Result<PackedConvGpu> {
    if p.tiles.is_empty() {
        return Err(Error::shape(label, "a convolution without output channels"));
    }
    let zeros;
    let b = match bias {
        Some(b) if b.len() == c_out => b,
        Some(b) => {
            return Err(Error::tensor_shape(
                format!("{label} (bias)"),
                format!("{c_out} values"),
                &[b.len()],
            ))
        }
        None => {
            zeros = vec![0.0; c_out];
            &zeros
        }
    };
    let flat_tiles: Vec<u32> = p.tiles.iter().flatten().copied().collect();
    Ok(PackedConvGpu {
        weights: ctx.upload(&format!("{label} packed weight"), &p.weights)?,
        tiles: ctx.upload_u32(&format!("{label} tiles"), &flat_tiles)?,
        chan: ctx.upload_u32(&format!("{label} channels"), &p.chan)?,
        bias: ctx.upload(&format!("{label} bias"), b)?,
        n_tiles: p.tiles.len(),
        max_in: p.chan[..p.n_in].iter().copied().max().unwrap_or(0),
        max_out: p.chan[p.n_in..].iter().copied().max().unwrap_or(0),
    })
}

/// Builds the dispatch of a packed layer for `batch` samples of `in_hw`.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    ctx: &GpuContext,
    label: &str,
    x: TensorRef<'_>,
    packed: &PackedConvGpu,
    out: TensorRef<'_>,
    batch: usize,
    spec: &Conv2dSpec,
    in_hw: [usize; 2],
    relu: bool,
) -> Result<Vec<Dispatch>> {
    check_dims(label, &[("batch", batch)])?;
    let [h, w] = in_hw;
    let [oh, ow] = spec
        .out_hw(h, w)
        .ok_or_else(|| Error::shape(label, "kernel does not fit the input"))?;
    let (c, n) = (spec.in_channels, spec.out_channels);
    if packed.max_in as usize >= c || packed.max_out as usize >= n {
        return Err(Error::shape(
            label,
            "channel list names a channel out of range",
        ));
    }
    check_tensor(ctx, label, "x", &x, (batch * c * h * w) as u64)?;
    check_tensor(ctx, label, "out", &out, (batch * n * oh * ow) as u64)?;
    let px_tiles = ow.div_ceil(PX);
    let wg: u32 = if ctx.is_cpu() { 8 } else { 32 };
    let px_blocks = px_tiles.div_ceil(wg as usize);
    let total = batch * packed.n_tiles * oh * px_blocks;
    check_dims(label, &[("workgroups", total)])?;
    let workgroups = fold_workgroups(ctx, label, total as u64)?;
    let params = ConvTiledParams {
        batch: batch as u32,
        c_in: c as u32,
        h: h as u32,
        w: w as u32,
        c_out: n as u32,
        oh: oh as u32,
        ow: ow as u32,
        kh: spec.kernel[0] as u32,
        sh: spec.stride[0] as u32,
        ph: spec.padding[0] as u32,
        pw: spec.padding[1] as u32,
        dh: spec.dilation[0] as u32,
        n_tiles: packed.n_tiles as u32,
        px_tiles: px_tiles as u32,
        relu: u32::from(relu),
        total: total as u32,
        px_blocks: px_blocks as u32,
        _pad: [0; 3],
    };
    let u = ctx.uniform(&format!("{label} params"), &params);
    Ok(vec![make_dispatch(
        ctx,
        label,
        &SHADER,
        "conv_tiled",
        vec![
            ("WG", wg),
            ("KW", spec.kernel[1] as u32),
            ("SW", spec.stride[1] as u32),
            ("DW", spec.dilation[1] as u32),
        ],
        &[
            u.as_entire_binding(),
            x.binding(),
            packed.weights.as_entire_binding(),
            packed.bias.as_entire_binding(),
            packed.tiles.as_entire_binding(),
            packed.chan.as_entire_binding(),
            out.binding(),
        ],
        workgroups,
    )?])
}
