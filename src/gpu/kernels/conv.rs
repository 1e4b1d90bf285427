//! Launcher for `shaders/conv.wgsl`: grouped, depthwise, pointwise and table-driven (uneven)
//! convolutions in one kernel family, bias and activation fused, weights in PyTorch's layout.
//!
//! Every group's output channels are cut into tiles of at most `tco` channels (8 for
//! [`DirectKernel::Co8`] / [`DirectKernel::Pk8`], 1 for [`DirectKernel::Co1`]); a small
//! per-tile table is uploaded with the call, and the tile index is a coordinate of the grid,
//! so a layer is one call whatever its groups. [`ConvShape`] is shared by the other conv
//! launchers.

use super::{check_arg, fold_workgroups, Arg, Call, Scratch};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::geometry::{ConvGeometry, ConvShape, Epilogue};
use crate::graph::{Conv2dSpec, GroupRange};
use crate::ops::Activation;

mod family;
pub use family::{Direct, DirectKernel, CONV_CO1, CONV_CO8, CONV_PK8};

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `conv.wgsl`.
    pub struct ConvParams = "Params" {
        /// The geometry ([`ConvGeometry`]).
        pub geom: ConvGeometry,
        /// Bias and activation ([`Epilogue`]).
        pub epi: Epilogue,
        /// Number of channel tiles in the tile table.
        pub n_tiles: u32,
        /// 4-pixel tiles per output row, `ceil(ow / 4)`.
        pub px_tiles_row: u32,
        /// Workgroups per (sample, tile): `ceil(oh · px_tiles_row / WG)`.
        pub px_blocks: u32,
        /// Linear workgroup count (`batch · n_tiles · px_blocks`).
        pub total_wg: u32,
        /// Padded input height `h + 2·ph` (packed path).
        pub hp: u32,
        /// Padded input row length in vec4s (packed path).
        pub w4: u32,
        /// Largest `in_len·kh·kw` of a tile (weight packing grid).
        pub qmax: u32,
        /// Padded rows, `batch · c_in · hp` (packed path).
        pub aux_len: u32,
    }
}

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Tile` struct: one tile of ≤ `tco` output channels of one group.
    pub struct ConvTile = "Tile" {
        /// First input channel of the group.
        pub in_start: u32,
        /// Input channels of the group.
        pub in_len: u32,
        /// First output channel of the tile.
        pub co_start: u32,
        /// Output channels in the tile (1..=tco).
        pub co_len: u32,
        /// Offset of filter `co_start` in the weight buffer (floats).
        pub w_off: u32,
        /// Offset of the tile's packed weights (vec4s; [`DirectKernel::Pk8`] only).
        pub p_off: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/conv.wgsl`. Trusted (no runtime bounds checks): every index the shader
    /// computes is clamped or bounded by values this module validates; `tests/gpu_ops/`
    /// covers padding, dilation, strides, odd sizes, partial tiles and empty groups.
    pub static SHADER = "conv" {
        params: ConvParams,
        mirrors: [ConvTile],
        trusted: true,
        /// Arguments of every entry point.
        args: ConvArgs {
            /// `[batch, C, H, W]` input.
            x: read array<act_t>,
            /// `[N, C/G, kh, kw]` weights (or a table's packed groups).
            wt: read array<f32>,
            /// `[N]` bias (any buffer when there is none).
            bias: read array<f32>,
            /// The tile table.
            tiles: read array<Tile>,
            /// `[batch, N, OH, OW]` output.
            y: write array<act_t>,
            /// Scratch: the zero-padded input ([`DirectKernel::Pk8`]).
            xp: write array<vec4<f32>>,
            /// Scratch: the tile-packed weights ([`DirectKernel::Pk8`]).
            wp: write array<vec4<f32>>,
        }
    }
}

/// One group of a direct convolution: `[in_start, in_len, out_start, out_len, w_off]`.
pub type DirectGroup = [usize; 5];

/// The groups of an ordinary grouped convolution.
pub fn even_groups(label: &str, spec: &Conv2dSpec) -> Result<Vec<DirectGroup>> {
    spec.check(label, spec.in_channels, true)?;
    let g = spec.groups;
    let (cin_g, cout_g) = (spec.in_channels / g, spec.out_channels / g);
    let kk = spec.window();
    Ok((0..g)
        .map(|i| {
            [
                i * cin_g,
                cin_g,
                i * cout_g,
                cout_g,
                i * cout_g * cin_g * kk,
            ]
        })
        .collect())
}

/// The groups of an uneven grouped convolution with contiguous ranges (identity channel
/// order); groups with `out_len == 0` are allowed, and together the groups must cover every
/// output channel exactly once. The weight is packed group after group.
pub fn table_groups(
    label: &str,
    spec: &Conv2dSpec,
    table: &[GroupRange],
) -> Result<Vec<DirectGroup>> {
    let kk = spec.window();
    let mut covered = vec![0u32; spec.out_channels];
    let mut groups = Vec::with_capacity(table.len());
    let mut off = 0usize;
    for (i, r) in table.iter().enumerate() {
        let fits =
            |start: usize, len: usize, n: usize| start.checked_add(len).is_some_and(|e| e <= n);
        if !fits(r.in_start, r.in_len, spec.in_channels)
            || !fits(r.out_start, r.out_len, spec.out_channels)
        {
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
    Ok(groups)
}

/// Cuts groups into channel tiles of at most `kernel.tco()` channels.
pub fn tiles(groups: &[DirectGroup], kk: usize, kernel: DirectKernel) -> Vec<ConvTile> {
    let tco = kernel.tco();
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

/// Bytes of the zero-padded input copy of [`DirectKernel::Pk8`] (None on overflow).
pub fn padded_input_bytes(s: &ConvShape<'_>) -> Option<u64> {
    let [h, w] = s.in_hw;
    let spec = s.spec;
    let ow = spec.out_hw(h, w)?[1];
    let hp = h.checked_add(2 * spec.padding[0])?;
    let w4 = ow.div_ceil(4) + (spec.kernel[1] - 1) * spec.dilation[1] / 4 + 2;
    (s.batch as u64)
        .checked_mul(spec.in_channels as u64)?
        .checked_mul(hp as u64)?
        .checked_mul(w4 as u64 * 16)
}

/// The tensors of a direct convolution.
#[derive(Clone, Debug)]
pub struct DirectArgs {
    /// `[batch, C, H, W]` input.
    pub x: Arg,
    /// The groups' filters, one group after another (`[N, C/G, kh, kw]` when even).
    pub weight: Arg,
    /// `[N]` bias.
    pub bias: Option<Arg>,
    /// `[batch, N, OH, OW]` output.
    pub out: Arg,
}

/// The convolution of `groups` (`cpu::conv2d` / `grouped_conv_table` semantics) with the
/// direct `kernel`, `act` fused. [`DirectKernel::Pk8`] adds a padding and a packing call and
/// takes its two buffers from `scratch`.
pub fn forward(
    ctx: &GpuContext,
    label: &str,
    (kernel, s, act): (DirectKernel, &ConvShape<'_>, Activation),
    groups: &[DirectGroup],
    a: DirectArgs,
    scratch: &mut Scratch<'_>,
) -> Result<Vec<Call>> {
    let geom = s.geometry(label, false)?;
    let [oh, ow] = [geom.oh as usize, geom.ow as usize];
    let [h, w] = s.in_hw;
    let (spec, batch) = (s.spec, s.batch);
    let (c, n) = (spec.in_channels, spec.out_channels);
    let kk = spec.window();
    check_arg(ctx, label, "x", &a.x, (batch * c * h * w) as u64)?;
    check_arg(ctx, label, "out", &a.out, (batch * n * oh * ow) as u64)?;
    let wlen: usize = groups.iter().map(|g| g[1] * g[3] * kk).sum();
    check_arg(ctx, label, "weight", &a.weight, wlen.max(1) as u64)?;
    if let Some(b) = &a.bias {
        check_arg(ctx, label, "bias", b, n as u64)?;
    }
    let packed = kernel == DirectKernel::Pk8;
    if packed && spec.stride != [1, 1] {
        return Err(Error::shape(label, "the packed kernel needs stride 1"));
    }
    let tile_list = tiles(groups, kk, kernel);
    if tile_list.is_empty() {
        return Err(Error::shape(label, "no output channels"));
    }
    let wg = kernel.workgroup(ctx);
    let px_tiles_row = ow.div_ceil(4);
    let px_blocks = (oh * px_tiles_row).div_ceil(wg as usize);
    let total = (batch * tile_list.len() * px_blocks) as u64;
    let grid = fold_workgroups(ctx, label, total)?;
    let qmax = tile_list
        .iter()
        .map(|t| t.in_len as usize * kk)
        .max()
        .unwrap_or(0);
    let hp = h + 2 * spec.padding[0];
    let params = ConvParams {
        geom,
        epi: Epilogue::new(act, a.bias.is_some()),
        n_tiles: tile_list.len() as u32,
        px_tiles_row: px_tiles_row as u32,
        px_blocks: px_blocks as u32,
        total_wg: total as u32,
        hp: hp as u32,
        w4: (px_tiles_row + (spec.kernel[1] - 1) * spec.dilation[1] / 4 + 2) as u32,
        qmax: qmax as u32,
        aux_len: (batch * c * hp) as u32,
    };
    let tiles_buf = ctx.upload_u32(&format!("{label} tiles"), bytemuck::cast_slice(&tile_list))?;
    let (xp, wp) = if packed {
        let xp_bytes = padded_input_bytes(s)
            .filter(|&b| ctx.check_storage_size(label, "x (padded)", b).is_ok())
            .ok_or_else(|| Error::shape(label, "the padded input exceeds a storage binding"))?;
        let wp_len: usize = tile_list.iter().map(|t| 2 * t.in_len as usize * kk).sum();
        (
            scratch(&format!("{label} x padded"), (xp_bytes / 4) as usize)?,
            scratch(&format!("{label} w packed"), wp_len.max(1) * 4)?,
        )
    } else {
        // Unused by the unpacked entries: one vec4 of scratch each.
        (
            scratch(&format!("{label} no xp"), 4)?,
            scratch(&format!("{label} no wp"), 4)?,
        )
    };
    // Without a bias the shader reads none (`has_bias`); bind the input in its place.
    let bias = a.bias.unwrap_or_else(|| a.x.clone());
    let args = ConvArgs {
        x: a.x,
        wt: a.weight,
        bias,
        tiles: Arg::whole(&tiles_buf),
        y: a.out,
        xp,
        wp,
    }
    .into_vec();
    let mut calls = Vec::new();
    if packed {
        const AUX_WG: u32 = 64;
        let pad = fold_workgroups(
            ctx,
            label,
            u64::from(params.aux_len).div_ceil(u64::from(AUX_WG)),
        )?;
        let pack = fold_workgroups(
            ctx,
            label,
            ((tile_list.len() * qmax) as u64).div_ceil(u64::from(AUX_WG)),
        )?;
        let aux = [("WG", AUX_WG)];
        calls.push(Call::new(
            ctx,
            label,
            SHADER.entry("pad_input", &aux),
            &params,
            args.clone(),
            pad,
        )?);
        calls.push(Call::new(
            ctx,
            label,
            SHADER.entry("pack_weights", &aux),
            &params,
            args.clone(),
            pack,
        )?);
    }
    calls.push(Call::new(
        ctx,
        label,
        SHADER.entry(kernel.entry(), &[("WG", wg)]),
        &params,
        args,
        grid,
    )?);
    Ok(calls)
}
