//! The entry table of `shaders/conv_grad_fast.wgsl` (what the generator emits and the
//! launcher may call) and the geometry both sides share: phase taps, tiles, and the cost
//! model that picks a tile for a layer.

use std::sync::OnceLock;

/// A kernel geometry `[kh, kw, sh, sw, dh, dw]`.
pub type Geom = [usize; 6];

/// Input-gradient geometries with specialised entries (one per phase that has taps); the
/// others run the generic entries (runtime taps).
pub const DX_GEOMS: [Geom; 4] = [
    [1, 1, 1, 1, 1, 1],
    [1, 1, 2, 2, 1, 1],
    [3, 3, 1, 1, 1, 1],
    [3, 3, 2, 2, 1, 1],
];

/// Weight-gradient geometries `[kh, kw, sw, dw]` with specialised entries (the vertical
/// stride and dilation are runtime values there).
pub const DW_GEOMS: [[usize; 4]; 3] = [[1, 1, 1, 1], [3, 3, 1, 1], [3, 3, 2, 1]];

/// An input-gradient register tile: `mc` input channels × `r` rows × `pt` pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DxTile {
    /// Input channels (of one group).
    pub mc: usize,
    /// Rows (in phase space).
    pub r: usize,
    /// Consecutive pixels of a row (in phase space), a multiple of 4.
    pub pt: usize,
}

/// A weight-gradient register tile: `mo` filters × `ci` input channels × every tap, summed
/// over `pt`-pixel blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DwTile {
    /// Filters (of one group).
    pub mo: usize,
    /// Input channels (of the same group).
    pub ci: usize,
    /// Output pixels per step, a multiple of 4.
    pub pt: usize,
}

const fn dx(mc: usize, r: usize, pt: usize) -> DxTile {
    DxTile { mc, r, pt }
}

const fn dwt(mo: usize, ci: usize, pt: usize) -> DwTile {
    DwTile { mo, ci, pt }
}

/// Tiles of the 1×1 input-gradient entries.
pub const DX_TILES_1X1: [DxTile; 11] = [
    dx(16, 1, 8),
    dx(16, 1, 4),
    dx(8, 1, 16),
    dx(8, 1, 8),
    dx(8, 1, 4),
    dx(4, 1, 8),
    dx(4, 1, 4),
    dx(2, 1, 8),
    dx(2, 1, 4),
    dx(1, 1, 16),
    dx(1, 1, 4),
];
/// Tiles of the other specialised input-gradient entries.
pub const DX_TILES_KXK: [DxTile; 7] = [
    dx(8, 2, 16),
    dx(8, 2, 8),
    dx(8, 1, 4),
    dx(4, 2, 8),
    dx(2, 2, 8),
    dx(1, 2, 16),
    dx(1, 2, 8),
];
/// Tiles of the generic input-gradient entry.
pub const DX_TILES_GEN: [DxTile; 4] = [dx(8, 1, 8), dx(4, 1, 8), dx(2, 1, 8), dx(1, 1, 8)];

/// Tiles of the 1×1 weight-gradient entries (the load/FMA ratio does not depend on the
/// step width there, so 4 fits every flattened plane of a multiple of 4 pixels).
pub const DW_TILES_1X1: [DwTile; 7] = [
    dwt(16, 16, 4),
    dwt(16, 8, 4),
    dwt(8, 8, 4),
    dwt(8, 4, 4),
    dwt(4, 4, 4),
    dwt(2, 2, 4),
    dwt(1, 1, 4),
];
/// Tiles of the other specialised weight-gradient entries.
pub const DW_TILES_KXK: [DwTile; 5] = [
    dwt(8, 2, 8),
    dwt(4, 2, 8),
    dwt(8, 1, 8),
    dwt(2, 2, 8),
    dwt(1, 1, 8),
];
/// Tiles of the generic weight-gradient entry (one tap per invocation).
pub const DW_TILES_GEN: [DwTile; 3] = [dwt(8, 4, 8), dwt(4, 4, 8), dwt(1, 1, 8)];

/// `(k, offset)` of the taps along one axis that reach phase `r` of an input gradient with
/// kernel `k`, stride `s` and dilation `d`: input position `u = U·s + r` (padding added) is
/// read by output `U − offset` through tap `k` when `k·d ≡ r (mod s)`.
pub fn phase_taps(k: usize, s: usize, d: usize, r: usize) -> Vec<(usize, usize)> {
    (0..k)
        .filter(|&t| (t * d) % s == r)
        .map(|t| (t, (t * d - r) / s))
        .collect()
}

/// One generated entry point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Input gradient of phase `(ry, rx)` of `geom` (`None`: generic, runtime taps).
    Dx {
        /// Specialised geometry and phase, or `None`.
        geom: Option<(Geom, usize, usize)>,
        /// Register tile.
        tile: DxTile,
    },
    /// Weight gradient of `[kh, kw, sw, dw]` (`None`: generic, one tap per invocation).
    Dw {
        /// Specialised geometry, or `None`.
        geom: Option<[usize; 4]>,
        /// Register tile.
        tile: DwTile,
    },
}

/// An entry point: its name and what it computes.
#[derive(Clone, Debug)]
pub struct EntryInfo {
    /// The WGSL function name.
    pub name: String,
    /// What it computes.
    pub kind: EntryKind,
}

fn dx_name(geom: Option<(Geom, usize, usize)>, t: DxTile) -> String {
    let tile = format!("m{}r{}p{}", t.mc, t.r, t.pt);
    match geom {
        None => format!("dx_gen_{tile}"),
        Some(([kh, kw, sh, sw, dh, dw], ry, rx)) => {
            format!("dx_k{kh}x{kw}s{sh}x{sw}d{dh}x{dw}_ph{ry}x{rx}_{tile}")
        }
    }
}

fn dw_name(geom: Option<[usize; 4]>, t: DwTile) -> String {
    let tile = format!("m{}c{}p{}", t.mo, t.ci, t.pt);
    match geom {
        None => format!("dw_gen_{tile}"),
        Some([kh, kw, sw, dw]) => format!("dw_k{kh}x{kw}s{sw}d{dw}_{tile}"),
    }
}

/// Every generated main entry point, in the order of the generated file.
pub fn entries() -> &'static [EntryInfo] {
    static E: OnceLock<Vec<EntryInfo>> = OnceLock::new();
    E.get_or_init(|| {
        let mut v = Vec::new();
        let mut push = |kind: EntryKind| {
            let name = match &kind {
                EntryKind::Dx { geom, tile } => dx_name(*geom, *tile),
                EntryKind::Dw { geom, tile } => dw_name(*geom, *tile),
            };
            v.push(EntryInfo { name, kind });
        };
        for g in DX_GEOMS {
            let [kh, kw, sh, sw, dh, dw] = g;
            let tiles: &[DxTile] = if kh * kw == 1 {
                &DX_TILES_1X1
            } else {
                &DX_TILES_KXK
            };
            for ry in 0..sh {
                for rx in 0..sw {
                    if phase_taps(kh, sh, dh, ry).is_empty()
                        || phase_taps(kw, sw, dw, rx).is_empty()
                    {
                        continue;
                    }
                    for &tile in tiles {
                        push(EntryKind::Dx {
                            geom: Some((g, ry, rx)),
                            tile,
                        });
                    }
                }
            }
        }
        for tile in DX_TILES_GEN {
            push(EntryKind::Dx { geom: None, tile });
        }
        for g in DW_GEOMS {
            let tiles: &[DwTile] = if g[0] * g[1] == 1 {
                &DW_TILES_1X1
            } else {
                &DW_TILES_KXK
            };
            for &tile in tiles {
                push(EntryKind::Dw {
                    geom: Some(g),
                    tile,
                });
            }
        }
        for tile in DW_TILES_GEN {
            push(EntryKind::Dw { geom: None, tile });
        }
        v
    })
}

/// The entry computing `kind`, if one was generated.
pub fn find(kind: &EntryKind) -> Option<&'static EntryInfo> {
    entries().iter().find(|e| &e.kind == kind)
}

/// Relative cost of one gathered load against one multiply-add of an 8-lane invocation
/// (lavapipe: every storage load is a per-lane gather, a vec4 load about one gather).
pub const LOAD_COST: f64 = 6.0;
/// Relative cost of one store.
pub const STORE_COST: f64 = 4.0;

/// The [`phase_taps`] of a stride phase along the rows and along the columns.
pub type PhaseTaps<'a> = (&'a [(usize, usize)], &'a [(usize, usize)]);

/// Estimated cost of an input-gradient phase with `tile`: `lanes` invocation slots (rounded
/// to workgroups of 8), each looping over `cout_g` filters with its loads and products, then
/// storing its outputs.
pub fn dx_cost(
    tile: DxTile,
    taps: PhaseTaps<'_>,
    kw: usize,
    cout_g: usize,
    lanes: usize,
    generic: bool,
) -> f64 {
    let (ty, tx) = taps;
    let DxTile { mc, r, pt } = tile;
    let oy_max = ty.iter().map(|t| t.1).max().unwrap_or(0);
    let ox_max = tx.iter().map(|t| t.1).max().unwrap_or(0);
    let ox_min = tx.iter().map(|t| t.1).min().unwrap_or(0);
    let (rows, span) = if generic {
        (ty.len() * tx.len() * r, pt / 4 + 1)
    } else {
        let lo = (4 * ox_max.div_ceil(4)) - ox_max;
        (r + oy_max, (lo + pt - 1 + ox_max - ox_min) / 4 + 1)
    };
    let wv = if generic {
        ty.len() * tx.len() * mc.div_ceil(4)
    } else {
        ty.len() * (kw * mc).div_ceil(4)
    };
    let loads = (rows * span + wv) as f64;
    let fmas = (ty.len() * tx.len() * mc * r * pt) as f64;
    let per_lane = cout_g as f64 * (loads * LOAD_COST + fmas) + (mc * r * pt) as f64 * STORE_COST;
    lanes.div_ceil(8) as f64 * 8.0 * per_lane
}

/// Estimated cost of a weight gradient with `tile` over `units` steps of `pt` pixels for
/// each of `tiles` output tiles.
pub fn dw_cost(
    tile: DwTile,
    [kh, kw, sw, dw]: [usize; 4],
    units: f64,
    tiles: usize,
    generic: bool,
) -> f64 {
    let DwTile { mo, ci, pt } = tile;
    let span = ((pt - 1) * sw + (kw - 1) * dw + 1).div_ceil(4);
    let (loads, fmas, taps_tiles) = if generic {
        (
            (mo * pt / 4 + ci * pt) as f64,
            (mo * ci * pt) as f64,
            kh * kw,
        )
    } else {
        (
            (mo * pt / 4 + ci * kh * span) as f64,
            (mo * ci * kh * kw * pt) as f64,
            1,
        )
    };
    // Each unit covers pt pixels; the layer has units·(pt_ref / pt) of them.
    (tiles * taps_tiles) as f64 * units / pt as f64 * (loads * LOAD_COST + fmas)
}
