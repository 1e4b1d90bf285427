//! Launcher for `shaders/conv.wgsl`: grouped, depthwise, pointwise and table-driven
//! (uneven) convolutions in one kernel family, bias and ReLU fused.
//!
//! Every group's output channels are cut into tiles of at most `TCO` channels (8 for
//! [`ConvKernel::Co8`], 1 for [`ConvKernel::Co1`]); a small per-tile table
//! (`in_start, in_len, co_start, co_len, w_off`) is uploaded with the dispatch, and the tile
//! index is a coordinate of the grid, so a layer is one dispatch whatever its groups.

use super::{check_buffer, check_dims, check_tensor, fold_workgroups, make_dispatch};
use crate::error::{Error, Result};
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;
use crate::graph::{Conv2dSpec, GroupRange};

/// `shaders/conv.wgsl` and its bind-group layout:
/// params, x, weight, bias, tiles, out, padded x, packed weights (the last two are scratch
/// of the stride-1 fast path, written by its `pad_input` / `pack_weights` dispatches).
///
/// Trusted (no runtime bounds checks): every index the shader computes is clamped or
/// bounded by values this module validates (tile table inside the weight, channels inside
/// `x`, output writes masked to `ow`); `tests/gpu_ops.rs` covers padding, dilation,
/// strides, odd sizes, partial pixel and channel tiles and empty groups against the CPU.
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "conv",
    source: include_str!("../../../shaders/conv.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
        BindingKind::ReadWrite,
        BindingKind::ReadWrite,
    ],
    trusted: true,
};

/// Mirror of the WGSL `Params` struct of `conv.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvParams {
    /// Batch size.
    pub batch: u32,
    /// Input channels.
    pub c_in: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output channels.
    pub c_out: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Kernel height.
    pub kh: u32,
    /// Kernel width.
    pub kw: u32,
    /// Stride (rows).
    pub sh: u32,
    /// Stride (columns).
    pub sw: u32,
    /// Padding (rows).
    pub ph: u32,
    /// Padding (columns).
    pub pw: u32,
    /// Dilation (rows).
    pub dh: u32,
    /// Dilation (columns).
    pub dw: u32,
    /// Number of channel tiles in the tile table.
    pub n_tiles: u32,
    /// 4-pixel tiles per output row, `ceil(ow / 4)`.
    pub px_tiles_row: u32,
    /// Workgroups per (sample, tile): `ceil(oh · px_tiles_row / WG)`.
    pub px_blocks: u32,
    /// 1 when a bias is added.
    pub has_bias: u32,
    /// 1 when ReLU is fused.
    pub relu: u32,
    /// Linear workgroup count (`batch · n_tiles · px_blocks`); the rest of a folded grid idles.
    pub total_wg: u32,
    /// Padded input height `h + 2·ph` (fast path).
    pub hp: u32,
    /// Padded input row length in vec4s (fast path).
    pub w4: u32,
    /// Largest `in_len·kh·kw` of a tile (weight packing grid).
    pub qmax: u32,
    /// Padded rows, `batch · c_in · hp` (fast path).
    pub aux_len: u32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 3],
}
super::uniform_params!(ConvParams);

/// Mirror of the WGSL `Tile` struct: one tile of ≤ TCO output channels of one group.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvTile {
    /// First input channel of the group.
    pub in_start: u32,
    /// Input channels of the group.
    pub in_len: u32,
    /// First output channel of the tile.
    pub co_start: u32,
    /// Output channels in the tile (1..=TCO).
    pub co_len: u32,
    /// Offset of filter `co_start` in the weight buffer (floats).
    pub w_off: u32,
    /// Offset of the tile's packed weights (vec4s; [`ConvKernel::Pk8`] only).
    pub p_off: u32,
}

/// The conv entry points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKernel {
    /// `conv_co8`: 8 output channels × 4 pixels per invocation (register tiled).
    Co8,
    /// `conv_co1`: 1 output channel × 4 pixels per invocation (depthwise, thin groups).
    Co1,
    /// `pad_input` + `pack_weights` + `conv_pk8`: stride 1, 8 channels × 4 pixels from a
    /// zero-padded input copy and tile-packed weights, all loads vec4 (fastest on lavapipe).
    Pk8,
}

impl ConvKernel {
    /// Output channels per tile.
    pub fn tco(self) -> usize {
        match self {
            ConvKernel::Co8 | ConvKernel::Pk8 => 8,
            ConvKernel::Co1 => 1,
        }
    }

    fn entry(self) -> &'static str {
        match self {
            ConvKernel::Co8 => "conv_co8",
            ConvKernel::Co1 => "conv_co1",
            ConvKernel::Pk8 => "conv_pk8",
        }
    }
}

/// Kernel choices that depend on the adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTuning {
    /// Invocations per workgroup (`override WG`).
    pub workgroup: u32,
    /// Invocations per workgroup for [`ConvKernel::Co1`] (little work per invocation, so
    /// bigger workgroups amortise the per-workgroup cost).
    pub workgroup_co1: u32,
    /// Use [`ConvKernel::Co8`] when groups have at least this many output channels on average.
    pub co8_min_channels: usize,
    /// Use [`ConvKernel::Pk8`] instead of [`ConvKernel::Co8`] for stride-1 layers.
    pub packed_stride1: bool,
}

/// The tuning for this adapter: small workgroups on CPU adapters (lavapipe runs a workgroup
/// as one SIMD loop per core), 64 elsewhere. `GCONV_CONV_WG` overrides the tiled kernels'
/// workgroup size (for tuning experiments).
pub fn tuning(ctx: &GpuContext) -> ConvTuning {
    let mut t = default_tuning(ctx);
    if let Some(wg) = std::env::var("GCONV_CONV_WG")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|&v| (1..=ctx.limits.max_compute_invocations_per_workgroup).contains(&v))
    {
        t.workgroup = wg;
    }
    t
}

fn default_tuning(ctx: &GpuContext) -> ConvTuning {
    if ctx.is_cpu() {
        ConvTuning {
            workgroup: 8,
            workgroup_co1: 64,
            co8_min_channels: 4,
            packed_stride1: true,
        }
    } else {
        ConvTuning {
            workgroup: 64,
            workgroup_co1: 64,
            co8_min_channels: 4,
            packed_stride1: true,
        }
    }
}

/// Picks the entry point for groups with these output-channel counts and this stride.
pub fn choose_kernel(t: &ConvTuning, out_lens: &[usize], stride: [usize; 2]) -> ConvKernel {
    let nonempty: Vec<usize> = out_lens.iter().copied().filter(|&n| n > 0).collect();
    if nonempty.is_empty() {
        return ConvKernel::Co1;
    }
    let avg = nonempty.iter().sum::<usize>() / nonempty.len();
    if avg >= t.co8_min_channels {
        if t.packed_stride1 && stride == [1, 1] {
            ConvKernel::Pk8
        } else {
            ConvKernel::Co8
        }
    } else {
        ConvKernel::Co1
    }
}

/// Cuts groups into channel tiles for kernel `k`. `groups` are
/// `(in_start, in_len, out_start, out_len, w_off)`.
pub fn tiles(groups: &[[usize; 5]], kk: usize, k: ConvKernel) -> Vec<ConvTile> {
    let tco = k.tco();
    let mut v = Vec::new();
    let mut p_off = 0;
    for &[in_start, in_len, out_start, out_len, w_off] in groups {
        let mut cb = 0;
        while cb < out_len {
            v.push(ConvTile {
                in_start: in_start as u32,
                in_len: in_len as u32,
                co_start: (out_start + cb) as u32,
                co_len: tco.min(out_len - cb) as u32,
                w_off: (w_off + cb * in_len * kk) as u32,
                p_off: p_off as u32,
            });
            p_off += 2 * in_len * kk;
            cb += tco;
        }
    }
    v
}

fn check_spec(label: &str, spec: &Conv2dSpec, in_hw: [usize; 2]) -> Result<[usize; 2]> {
    check_dims(
        label,
        &[
            ("in_channels", spec.in_channels),
            ("out_channels", spec.out_channels),
            ("kernel height", spec.kernel[0]),
            ("kernel width", spec.kernel[1]),
            ("stride", spec.stride[0]),
            ("stride", spec.stride[1]),
            ("dilation", spec.dilation[0]),
            ("dilation", spec.dilation[1]),
            ("input height", in_hw[0]),
            ("input width", in_hw[1]),
        ],
    )?;
    spec.out_hw(in_hw[0], in_hw[1]).ok_or_else(|| {
        Error::shape(
            label,
            format!(
                "input {in_hw:?} padded by {:?} is smaller than the dilated kernel {:?}",
                spec.padding, spec.kernel
            ),
        )
    })
}

/// Grouped 2-D convolution (`cpu::conv2d` semantics): dense, grouped, depthwise with any
/// channel multiplier, pointwise; stride, padding, dilation; optional bias; `relu` fuses
/// `max(·, 0)`. `weight` holds exactly `N·(C/G)·kh·kw` floats, `bias` exactly `N`.
/// One dispatch whatever the number of groups.
#[allow(clippy::too_many_arguments)]
pub fn prepare_conv2d(
    ctx: &GpuContext,
    label: &str,
    x: TensorRef<'_>,
    weight: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
    out: TensorRef<'_>,
    batch: usize,
    spec: &Conv2dSpec,
    in_hw: [usize; 2],
    relu: bool,
) -> Result<Vec<Dispatch>> {
    let g = spec.groups;
    if g == 0 || spec.in_channels % g != 0 || spec.out_channels % g != 0 {
        return Err(Error::shape(
            label,
            format!(
                "groups {g} must divide in_channels {} and out_channels {}",
                spec.in_channels, spec.out_channels
            ),
        ));
    }
    let (cin_g, cout_g) = (spec.in_channels / g, spec.out_channels / g);
    let kk = spec.kernel[0] * spec.kernel[1];
    let groups: Vec<[usize; 5]> = (0..g)
        .map(|i| {
            [
                i * cin_g,
                cin_g,
                i * cout_g,
                cout_g,
                i * cout_g * cin_g * kk,
            ]
        })
        .collect();
    prepare(
        ctx, label, x, weight, bias, out, batch, spec, &groups, in_hw, relu,
    )
}

/// Grouped convolution with uneven contiguous groups (`cpu::grouped_conv_table`
/// semantics). `weight_packed` holds the groups' filters one group after another
/// (`Σ out_len·in_len·kh·kw` floats). Groups with `out_len == 0` are allowed; together the
/// groups must cover every output channel exactly once. One dispatch.
#[allow(clippy::too_many_arguments)]
pub fn prepare_grouped_conv_table(
    ctx: &GpuContext,
    label: &str,
    x: TensorRef<'_>,
    weight_packed: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
    out: TensorRef<'_>,
    batch: usize,
    spec: &Conv2dSpec,
    table: &[GroupRange],
    in_hw: [usize; 2],
    relu: bool,
) -> Result<Vec<Dispatch>> {
    let kk = spec.kernel[0] * spec.kernel[1];
    let mut covered = vec![0u32; spec.out_channels];
    let mut groups = Vec::with_capacity(table.len());
    let mut off = 0;
    for (i, r) in table.iter().enumerate() {
        if r.in_start + r.in_len > spec.in_channels || r.out_start + r.out_len > spec.out_channels {
            return Err(Error::shape(
                label,
                format!(
                    "group {i} {r:?} reaches past {} input / {} output channels",
                    spec.in_channels, spec.out_channels
                ),
            ));
        }
        covered[r.out_start..r.out_start + r.out_len]
            .iter_mut()
            .for_each(|c| *c += 1);
        groups.push([r.in_start, r.in_len, r.out_start, r.out_len, off]);
        off += r.out_len * r.in_len * kk;
    }
    if let Some(c) = covered.iter().position(|&n| n != 1) {
        return Err(Error::shape(
            label,
            format!(
                "the group table covers output channel {c} {} times (must be exactly once)",
                covered[c]
            ),
        ));
    }
    prepare(
        ctx,
        label,
        x,
        weight_packed,
        bias,
        out,
        batch,
        spec,
        &groups,
        in_hw,
        relu,
    )
}

#[allow(clippy::too_many_arguments)]
fn prepare(
    ctx: &GpuContext,
    label: &str,
    x: TensorRef<'_>,
    weight: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
    out: TensorRef<'_>,
    batch: usize,
    spec: &Conv2dSpec,
    groups: &[[usize; 5]],
    in_hw: [usize; 2],
    relu: bool,
) -> Result<Vec<Dispatch>> {
    check_dims(label, &[("batch", batch)])?;
    let [oh, ow] = check_spec(label, spec, in_hw)?;
    let [h, w] = in_hw;
    let (c, n) = (spec.in_channels, spec.out_channels);
    let kk = spec.kernel[0] * spec.kernel[1];
    check_tensor(ctx, label, "x", &x, (batch * c * h * w) as u64)?;
    check_tensor(ctx, label, "out", &out, (batch * n * oh * ow) as u64)?;
    let wlen: usize = groups.iter().map(|g| g[1] * g[3] * kk).sum();
    check_buffer(ctx, label, "weight", weight, wlen as u64)?;
    if let Some(b) = bias {
        check_buffer(ctx, label, "bias", b, n as u64)?;
    }
    let tuning = tuning(ctx);
    let out_lens: Vec<usize> = groups.iter().map(|g| g[3]).collect();
    let mut kernel = choose_kernel(&tuning, &out_lens, spec.stride);
    // Fast-path geometry: padded rows, row length in vec4s (room for the shifted loads).
    let px_tiles_row = ow.div_ceil(4);
    let hp = h + 2 * spec.padding[0];
    let w4 = px_tiles_row + (spec.kernel[1] - 1) * spec.dilation[1] / 4 + 2;
    let xp_bytes = (batch * c * hp * w4 * 16) as u64;
    if kernel == ConvKernel::Pk8
        && ctx
            .check_storage_size(label, "x (padded)", xp_bytes)
            .is_err()
    {
        kernel = ConvKernel::Co8;
    }
    let tile_list = tiles(groups, kk, kernel);
    if tile_list.is_empty() {
        return Err(Error::shape(label, "no output channels"));
    }
    let wg = if kernel == ConvKernel::Co1 {
        tuning.workgroup_co1
    } else {
        tuning.workgroup
    };
    let px_blocks = (oh * px_tiles_row).div_ceil(wg as usize);
    let total = (batch * tile_list.len() * px_blocks) as u64;
    let workgroups = fold_workgroups(ctx, label, total)?;
    let qmax = tile_list
        .iter()
        .map(|t| t.in_len as usize * kk)
        .max()
        .unwrap_or(0);
    let params = ConvParams {
        batch: batch as u32,
        c_in: c as u32,
        h: h as u32,
        w: w as u32,
        c_out: n as u32,
        oh: oh as u32,
        ow: ow as u32,
        kh: spec.kernel[0] as u32,
        kw: spec.kernel[1] as u32,
        sh: spec.stride[0] as u32,
        sw: spec.stride[1] as u32,
        ph: spec.padding[0] as u32,
        pw: spec.padding[1] as u32,
        dh: spec.dilation[0] as u32,
        dw: spec.dilation[1] as u32,
        n_tiles: tile_list.len() as u32,
        px_tiles_row: px_tiles_row as u32,
        px_blocks: px_blocks as u32,
        has_bias: u32::from(bias.is_some()),
        relu: u32::from(relu),
        total_wg: total as u32,
        hp: hp as u32,
        w4: w4 as u32,
        qmax: qmax as u32,
        aux_len: (batch * c * hp) as u32,
        _pad: [0; 3],
    };
    let uniform = ctx.uniform(&format!("{label} params"), &params);
    let tile_buf = ctx.upload_u32(&format!("{label} tiles"), bytemuck::cast_slice(&tile_list))?;
    let dummy;
    let bias_buf = match bias {
        Some(b) => b,
        None => {
            dummy = ctx.storage_buffer(&format!("{label} no bias"), 4)?;
            &dummy
        }
    };
    let packed = kernel == ConvKernel::Pk8;
    let wp_len: usize = tile_list.iter().map(|t| 2 * t.in_len as usize * kk).sum();
    let xp = ctx.storage_buffer(
        &format!("{label} x padded"),
        if packed { xp_bytes } else { 16 },
    )?;
    let wp = ctx.storage_buffer(
        &format!("{label} w packed"),
        if packed {
            (wp_len.max(1) * 16) as u64
        } else {
            16
        },
    )?;
    let resources = [
        uniform.as_entire_binding(),
        x.binding(),
        weight.as_entire_binding(),
        bias_buf.as_entire_binding(),
        tile_buf.as_entire_binding(),
        out.binding(),
        xp.as_entire_binding(),
        wp.as_entire_binding(),
    ];
    let mut v = Vec::new();
    if packed {
        const AUX_WG: u32 = 64;
        let pad_wgs = fold_workgroups(ctx, label, params.aux_len.div_ceil(AUX_WG) as u64)?;
        v.push(make_dispatch(
            ctx,
            label,
            &SHADER,
            "pad_input",
            vec![("WG", AUX_WG)],
            &resources,
            pad_wgs,
        )?);
        let pack_wgs = fold_workgroups(
            ctx,
            label,
            ((tile_list.len() * qmax) as u64).div_ceil(u64::from(AUX_WG)),
        )?;
        v.push(make_dispatch(
            ctx,
            label,
            &SHADER,
            "pack_weights",
            vec![("WG", AUX_WG)],
            &resources,
            pack_wgs,
        )?);
    }
    v.push(make_dispatch(
        ctx,
        label,
        &SHADER,
        kernel.entry(),
        vec![("WG", wg)],
        &resources,
        workgroups,
    )?);
    Ok(v)
}
