//! The host side of `conv_igemm`: a layer cut into segments and workgroup tiles, the tile
//! chosen from the groups' widths, the packed weight layout (`[tile][k][BM]`), and the
//! split-K of a run chosen from the adapter's compute-unit estimate.

use super::{FastSeg, IgemmTile, A_FLOATS, B_FLOATS, TILES};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::conv_fast::GroupLayout;
use crate::graph::{Conv2dSpec, GroupedConvTable};

/// A layer planned for `conv_igemm` (host side).
#[derive(Clone, Debug, PartialEq)]
pub struct IgemmConv {
    pub(super) spec: Conv2dSpec,
    /// The workgroup tile (entry point).
    pub tile: IgemmTile,
    /// Filters per segment.
    pub ms: usize,
    /// Segments per tile.
    pub s: usize,
    /// K step.
    pub bk: usize,
    /// Tiles along M.
    pub tiles_m: usize,
    /// The longest K of a tile.
    pub kmax: usize,
    /// The segments (`w_off` of a tile's first segment: its packed weights' offset).
    pub(super) segs: Vec<FastSeg>,
    chan: Vec<u32>,
    /// K of each tile.
    tile_k: Vec<usize>,
    /// Floats of the natural weight.
    pub natural_len: usize,
    kk: usize,
}

/// The split of one run: tiles along N, K splits and K per split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Tiles along N.
    pub tiles_n: usize,
    /// K splits.
    pub ksplit: usize,
    /// K per split.
    pub kchunk: usize,
    /// Workgroups in all.
    pub total_wg: usize,
}

/// The default tile for groups of at most `largest` filters and `total` filters in all:
/// the widest tile the groups fill (128 rows only when every group has ≥ 128 filters), the
/// narrow ones for layers with few filters.
pub fn default_tile(largest: usize, total: usize) -> IgemmTile {
    let by = |bm: usize| TILES.iter().copied().find(|t| t.bm == bm).expect("a tile");
    match () {
        _ if largest >= 128 && total >= 128 => by(128),
        _ if total >= 64 => by(64),
        _ if total >= 32 => by(32),
        _ => by(16),
    }
}

/// Workgroups the adapter runs at once, for the split-K target: 2 per compute unit.
pub fn slots(compute_units: u32) -> usize {
    2 * compute_units.max(1) as usize
}

impl IgemmConv {
    /// Plans an ordinary grouped convolution; `tile` forced or the default.
    pub fn conv2d(spec: &Conv2dSpec, tile: Option<IgemmTile>) -> Result<Self> {
        spec.check("conv_igemm", spec.in_channels, true)?;
        Self::build(spec, GroupLayout::conv2d("conv_igemm", spec)?, tile)
    }

    /// Plans an exported group table (uneven, index-addressed groups).
    pub fn table(t: &GroupedConvTable, tile: Option<IgemmTile>) -> Result<Self> {
        let layout =
            GroupLayout::table("conv_igemm", &t.spec, &t.table, &t.in_index, &t.out_index)?;
        Self::build(&t.spec, layout, tile)
    }

    fn build(spec: &Conv2dSpec, layout: GroupLayout, tile: Option<IgemmTile>) -> Result<Self> {
        let label = "conv_igemm";
        let largest = layout.groups.iter().map(|g| g[3]).max().unwrap_or(0);
        if largest == 0 {
            return Err(Error::shape(label, "a convolution without output channels"));
        }
        let total: usize = layout.groups.iter().map(|g| g[3]).sum();
        let tile = tile.unwrap_or_else(|| default_tile(largest, total));
        let ms = largest.next_power_of_two().clamp(tile.tm, tile.bm);
        let s = tile.bm / ms;
        let mut bk = 16;
        while bk > 1 && (bk * tile.bm > A_FLOATS || s * bk * tile.bn > B_FLOATS) {
            bk /= 2;
        }
        if s * bk * tile.bn > B_FLOATS {
            return Err(Error::shape(
                label,
                format!("{s} segments do not fit tile {}", tile.name),
            ));
        }
        let kk = spec.kernel[0] * spec.kernel[1];
        let mut raw: Vec<[usize; 5]> = Vec::new();
        for &[in_start, in_len, out_start, out_len, wn_off] in &layout.groups {
            let mut j = 0;
            while j < out_len {
                let len = ms.min(out_len - j);
                raw.push([
                    in_start,
                    in_len,
                    out_start + j,
                    len,
                    wn_off + j * in_len * kk,
                ]);
                j += ms;
            }
        }
        while raw.len() % s != 0 || raw.is_empty() {
            raw.push([0; 5]);
        }
        let tiles_m = raw.len() / s;
        let tile_k: Vec<usize> = raw
            .chunks(s)
            .map(|t| t.iter().map(|g| g[1] * kk).max().unwrap_or(0))
            .collect();
        let kmax = tile_k.iter().copied().max().unwrap_or(0);
        let u = |x: usize| {
            u32::try_from(x).map_err(|_| Error::shape(label, format!("{x} exceeds u32")))
        };
        let mut segs = Vec::with_capacity(raw.len());
        let mut w_off = 0usize;
        for (i, g) in raw.iter().enumerate() {
            let first = i % s == 0;
            segs.push(FastSeg {
                in_start: u(g[0])?,
                in_len: u(g[1])?,
                out_start: u(g[2])?,
                out_len: u(g[3])?,
                w_off: if first { u(w_off)? } else { 0 },
                wn_off: u(g[4])?,
                ..FastSeg::default()
            });
            if i % s == s - 1 {
                w_off += tile_k[i / s] * tile.bm;
            }
        }
        u(w_off)?;
        let natural_len = layout.natural_len(spec);
        Ok(Self {
            spec: spec.clone(),
            tile,
            ms,
            s,
            bk,
            tiles_m,
            kmax,
            segs,
            chan: layout.chan,
            tile_k,
            natural_len,
            kk,
        })
    }

    /// The same plan stepping K by `bk` (a tile with its own workgroup arrays: `conv_coop`'s
    /// steps of 16); the packed layout does not depend on it.
    pub(crate) fn with_k_step(self, bk: usize) -> Self {
        Self {
            bk: bk.max(1),
            ..self
        }
    }

    /// Floats of the packed weight.
    pub fn packed_len(&self) -> usize {
        self.tile_k.iter().sum::<usize>() * self.tile.bm
    }

    /// The natural weight (`[N, C/G, kh, kw]`, or a table's groups one after another) in
    /// the tile layout: per tile, per k, its BM filters (zero beyond a segment's filters or K).
    pub fn pack(&self, natural: &[f32]) -> Result<Vec<f32>> {
        if natural.len() != self.natural_len {
            return Err(Error::tensor_shape(
                "conv_igemm weight",
                format!("{} values", self.natural_len),
                &[natural.len()],
            ));
        }
        let bm = self.tile.bm;
        let mut out = vec![0.0; self.packed_len()];
        for (t, &kt) in self.tile_k.iter().enumerate() {
            let base = self.segs[t * self.s].w_off as usize;
            for m in 0..bm {
                let sg = &self.segs[t * self.s + m / self.ms];
                let f = m % self.ms;
                let klen = sg.in_len as usize * self.kk;
                if f >= sg.out_len as usize {
                    continue;
                }
                let src = sg.wn_off as usize + f * klen;
                for k in 0..klen.min(kt) {
                    out[base + k * bm + m] = natural[src + k];
                }
            }
        }
        Ok(out)
    }

    /// [`IgemmConv::pack`] as halves, two per word (`pack2x16float`'s order: the first in the
    /// low 16 bits), rounded to nearest. A weight beyond f16's range (±65504) is an error
    /// naming it rather than an infinity in the output.
    pub fn pack_f16(&self, natural: &[f32]) -> Result<Vec<u32>> {
        crate::gpu::precision::pack_halves(&self.pack(natural)?, "conv_igemm f16 weight")
    }

    /// The split of a run of `npix` output pixels on an adapter running `slots` workgroups
    /// at once: K is split when the tiles alone would leave it idle, each split keeping at
    /// least 4 K steps, at most 16 splits.
    pub fn split(&self, npix: usize, slots: usize) -> Split {
        let tiles_n = npix.div_ceil(self.tile.bn).max(1);
        let tiles = tiles_n * self.tiles_m;
        let steps = self.kmax.div_ceil(self.bk).max(1);
        let want = if tiles >= slots {
            1
        } else {
            slots.div_ceil(tiles)
        };
        let ksplit = want.min(steps / 4).clamp(1, 16);
        let kchunk = steps.div_ceil(ksplit) * self.bk;
        let ksplit = self.kmax.div_ceil(kchunk).max(1);
        Split {
            tiles_n,
            ksplit,
            kchunk,
            total_wg: tiles * ksplit,
        }
    }

    /// Uploads the segment table and channel lists.
    pub fn upload(&self, ctx: &GpuContext, label: &str) -> Result<IgemmConvGpu> {
        Ok(IgemmConvGpu {
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
pub struct IgemmConvGpu {
    pub(super) plan: IgemmConv,
    pub(super) segs: wgpu::Buffer,
    pub(super) chan: wgpu::Buffer,
}

impl IgemmConvGpu {
    /// The host plan.
    pub fn plan(&self) -> &IgemmConv {
        &self.plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tile and split an H100-sized adapter (132 compute units) gets.
    #[test]
    fn tiles_and_splits_follow_the_layer_and_the_batch() {
        let slots = slots(132);
        // VGG's 14² 512→512 3×3 layer: the widest tile; split-K at batch 1 only.
        let dense = Conv2dSpec::square(512, 512, 3, 1, 1);
        let p = IgemmConv::conv2d(&dense, None).unwrap();
        assert_eq!(p.tile.bm, 128);
        assert_eq!((p.ms, p.s), (128, 1));
        let b1 = p.split(14 * 14, slots);
        assert!(b1.ksplit > 1 && b1.total_wg >= 4 * 2, "{b1:?}");
        assert_eq!(b1.kchunk % p.bk, 0);
        assert!(b1.kchunk * b1.ksplit >= p.kmax);
        assert!(p.split(32 * 14 * 14, slots).ksplit <= 2);
        assert_eq!(p.split(32 * 28 * 28, slots).ksplit, 1);
        // Scheme E: 32 groups of 16 filters share 64-row tiles, 4 segments each.
        let e = Conv2dSpec::square(512, 512, 3, 1, 1).groups(32);
        let p = IgemmConv::conv2d(&e, None).unwrap();
        assert_eq!((p.tile.bm, p.ms, p.s), (64, 16, 4));
        assert_eq!(p.tiles_m, 8);
        assert!(p.s * p.bk * p.tile.bn <= B_FLOATS && p.bk * p.tile.bm <= A_FLOATS);
        // Few filters: a narrow tile.
        let thin = Conv2dSpec::square(8, 16, 3, 1, 1);
        assert_eq!(IgemmConv::conv2d(&thin, None).unwrap().tile.bm, 16);
        // Packing keeps every weight once, zero elsewhere.
        let small = Conv2dSpec::square(6, 10, 3, 1, 1).groups(2);
        let p = IgemmConv::conv2d(&small, None).unwrap();
        let w: Vec<f32> = (1..=p.natural_len).map(|v| v as f32).collect();
        let packed = p.pack(&w).unwrap();
        let mut nz: Vec<f32> = packed.iter().copied().filter(|&v| v != 0.0).collect();
        nz.sort_by(f32::total_cmp);
        assert_eq!(nz, w);
        assert!(p.pack(&w[1..]).is_err());
    }
}
