//! The host side of `conv_fast`: a layer cut into segments and tiles, the entry point chosen
//! by a load-cost model of the CPU adapter, and the packed weight layout.

use super::{geom_of, nv, nwv, Entry, FastSeg, Tile, ENTRIES};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::check_dims;
use crate::graph::{Conv2dSpec, GroupRange, GroupedConvTable};

/// A convolution layer planned for the fast kernel (host side): segments, channel lists,
/// entry point. Built once per layer; [`FastConv::upload`] puts it on the GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct FastConv {
    pub(super) spec: Conv2dSpec,
    pub(super) entry: Entry,
    /// The segments, padded with empty ones to whole tiles.
    pub(super) segs: Vec<FastSeg>,
    /// Input channel list, then output channel list.
    chan: Vec<u32>,
    /// Length of the input part of `chan`.
    n_in: usize,
    packed_vec4: usize,
    pub(super) natural_len: usize,
}

/// A group: `(in_start, in_len, out_start, out_len, wn_off)` with starts into the channel
/// lists and `wn_off` the float offset of its first filter in the natural weight.
type Group = [usize; 5];

fn check_spec(label: &str, spec: &Conv2dSpec) -> Result<()> {
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
            ("groups", spec.groups),
        ],
    )
}

/// Cost of `pad_input` per padded element (a scalar gather and a quarter vec4 store).
const PAD_ELEMENT: f64 = 1.5;

/// Estimated cost of running `groups` with entry `e` on an `in_hw` input, in units of one
/// gathered vec4 component (the dominant cost on lavapipe: every storage load is a per-lane
/// gather); a multiply-add of one lane vector counts 1/8, a store 1.
fn entry_cost(spec: &Conv2dSpec, groups: &[Group], e: &Entry, in_hw: [usize; 2]) -> f64 {
    let out_hw = spec.out_hw(in_hw[0], in_hw[1]).unwrap_or([1, 1]);
    let [kh, kw, sh, sw, dh, dw] = geom_of(spec);
    let Tile { ms, s, r, pt } = e.tile;
    let fma = (kh * kw * ms * r * pt) as f64 / 8.0;
    // loads per (segment, input channel)
    let rows = (r - 1) * sh + (kh - 1) * dh + 1;
    let distinct = rows.min(r * kh) as f64;
    let weights = (4 * kh * nwv(kw, ms)) as f64;
    let loads = match e.geom {
        Some(_) => distinct * (4 * nv(kw, sw, dw, pt)) as f64 + weights,
        // element loads: a vec4 gather per pixel and per weight, per (ky, kx)
        None => (4 * kh * kw * (pt + ms)) as f64,
    };
    let per_k = loads + fma;
    let mut segs: Vec<f64> = Vec::new();
    for g in groups {
        let pieces = g[3].div_ceil(ms);
        segs.extend(std::iter::repeat_n(g[1] as f64 * per_k, pieces));
    }
    // A tile runs its segments one after another, then stores s·ms·r·pt values.
    let per_tile: f64 = segs
        .chunks(s)
        .map(|c| c.iter().sum::<f64>() + (s * ms * r * pt) as f64)
        .sum();
    let blocks = out_hw[0].div_ceil(r) * out_hw[1].div_ceil(pt);
    let padded = (in_hw[0] + 2 * spec.padding[0]) * (in_hw[1] + 2 * spec.padding[1] + 4);
    let pad = (spec.in_channels * padded) as f64 * PAD_ELEMENT;
    per_tile * blocks as f64 + pad
}

/// A layer's groups: `(in_start, in_len, out_start, out_len, wn_off)` with starts into the
/// channel lists `chan` (input list, then output list, `n_in` long) and `wn_off` the float
/// offset of the group's first filter in the natural weight. Shared by the conv planners.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupLayout {
    /// The groups.
    pub groups: Vec<[usize; 5]>,
    /// Input channel list, then output channel list.
    pub chan: Vec<u32>,
    /// Length of the input part of `chan`.
    pub n_in: usize,
}

impl GroupLayout {
    /// An ordinary grouped convolution (`cpu::conv2d` semantics; weight `[N, C/G, kh, kw]`).
    pub fn conv2d(label: &str, spec: &Conv2dSpec) -> Result<Self> {
        check_spec(label, spec)?;
        // The op's one check (groups dividing both channel counts, non-zero sizes).
        spec.check(label, spec.in_channels, true)?;
        let (c, n, g) = (spec.in_channels, spec.out_channels, spec.groups);
        let (cg, ng) = (c / g, n / g);
        let kk = spec.kernel[0] * spec.kernel[1];
        let groups = (0..g)
            .map(|i| [i * cg, cg, c + i * ng, ng, i * ng * cg * kk])
            .collect();
        let chan = (0..c as u32).chain(0..n as u32).collect();
        Ok(Self {
            groups,
            chan,
            n_in: c,
        })
    }

    /// An index-addressed uneven grouped convolution (`cpu::grouped_conv_indexed`
    /// semantics, exported FLGC): group `g` reads `in_index[in_start..+in_len]` and writes
    /// `out_index[out_start..+out_len]`; weights group after group. Empty groups allowed;
    /// every output channel must be written exactly once.
    pub fn table(
        label: &str,
        spec: &Conv2dSpec,
        table: &[GroupRange],
        in_index: &[usize],
        out_index: &[usize],
    ) -> Result<Self> {
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
            ],
        )?;
        let (c, n) = (spec.in_channels, spec.out_channels);
        if in_index.iter().any(|&i| i >= c) || out_index.iter().any(|&o| o >= n) {
            return Err(Error::shape(
                label,
                "an index list names a channel out of range",
            ));
        }
        if out_index.len() != n {
            return Err(Error::shape(
                label,
                format!(
                    "out_index has {} entries for {n} output channels",
                    out_index.len()
                ),
            ));
        }
        let kk = spec.kernel[0] * spec.kernel[1];
        let mut written = vec![0usize; n];
        let mut groups = Vec::with_capacity(table.len());
        let mut off = 0;
        for (i, r) in table.iter().enumerate() {
            if r.in_start + r.in_len > in_index.len() || r.out_start + r.out_len > n {
                return Err(Error::shape(
                    label,
                    format!("group {i} {r:?} reaches past its index lists"),
                ));
            }
            for &o in &out_index[r.out_start..r.out_start + r.out_len] {
                written[o] += 1;
            }
            groups.push([
                r.in_start,
                r.in_len,
                in_index.len() + r.out_start,
                r.out_len,
                off,
            ]);
            off += r.out_len * r.in_len * kk;
        }
        if let Some(o) = written.iter().position(|&k| k != 1) {
            return Err(Error::shape(
                label,
                format!(
                    "output channel {o} is written by {} groups (must be 1)",
                    written[o]
                ),
            ));
        }
        let chan = in_index
            .iter()
            .chain(out_index)
            .map(|&i| i as u32)
            .collect();
        Ok(Self {
            groups,
            chan,
            n_in: in_index.len(),
        })
    }

    /// Floats of the natural weight.
    pub fn natural_len(&self, spec: &Conv2dSpec) -> usize {
        let kk = spec.kernel[0] * spec.kernel[1];
        self.groups.iter().map(|g| g[1] * g[3] * kk).sum()
    }
}

impl FastConv {
    /// Plans an ordinary grouped convolution (`cpu::conv2d` semantics; weight
    /// `[N, C/G, kh, kw]`). `entry`: `None` picks the cheapest of the [`ENTRIES`] that fit
    /// this layer on an `in_hw` input (the plan then works for any input size).
    pub fn conv2d(spec: &Conv2dSpec, in_hw: [usize; 2], entry: Option<Entry>) -> Result<Self> {
        let layout = GroupLayout::conv2d("conv_fast", spec)?;
        Self::build(spec, layout, in_hw, entry)
    }

    /// Plans an index-addressed uneven grouped convolution ([`GroupLayout::table`]).
    /// `in_hw` and `entry` as for [`FastConv::conv2d`].
    pub fn grouped_table(
        spec: &Conv2dSpec,
        table: &[GroupRange],
        in_index: &[usize],
        out_index: &[usize],
        in_hw: [usize; 2],
        entry: Option<Entry>,
    ) -> Result<Self> {
        let layout =
            GroupLayout::table("conv_fast (group table)", spec, table, in_index, out_index)?;
        Self::build(spec, layout, in_hw, entry)
    }

    /// Plans an exported group table ([`crate::graph::Op::GroupedConvTable`]).
    pub fn table(t: &GroupedConvTable, in_hw: [usize; 2], entry: Option<Entry>) -> Result<Self> {
        Self::grouped_table(&t.spec, &t.table, &t.in_index, &t.out_index, in_hw, entry)
    }

    fn build(
        spec: &Conv2dSpec,
        layout: GroupLayout,
        in_hw: [usize; 2],
        entry: Option<Entry>,
    ) -> Result<Self> {
        let label = "conv_fast";
        let GroupLayout { groups, chan, n_in } = layout;
        if groups.iter().all(|g| g[3] == 0) {
            return Err(Error::shape(label, "a convolution without output channels"));
        }
        let entry = match entry {
            Some(e) if ENTRIES.contains(&e) && e.fits(spec) => e,
            Some(e) => {
                return Err(Error::InvalidArgument(format!(
                    "{label}: entry {} is not a generated entry for geometry {:?}",
                    e.name,
                    geom_of(spec)
                )))
            }
            // Generic entries fit every layer, so there always is a candidate.
            None => *ENTRIES
                .iter()
                .filter(|e| e.fits(spec))
                .min_by(|a, b| {
                    entry_cost(spec, &groups, a, in_hw)
                        .total_cmp(&entry_cost(spec, &groups, b, in_hw))
                })
                .ok_or_else(|| Error::shape(label, "no generated entry fits this layer"))?,
        };
        let tile = entry.tile;
        let [kh, kw] = spec.kernel;
        let kk = kh * kw;
        let nw = nwv(kw, tile.ms);
        let mut segs = Vec::new();
        let mut w_off = 0usize;
        for &[in_start, in_len, out_start, out_len, wn_off] in &groups {
            let mut j = 0;
            while j < out_len {
                let len = tile.ms.min(out_len - j);
                segs.push([
                    in_start,
                    in_len,
                    out_start + j,
                    len,
                    w_off,
                    wn_off + j * in_len * kk,
                ]);
                w_off += in_len * kh * nw;
                j += tile.ms;
            }
        }
        while segs.len() % tile.s != 0 {
            segs.push([0, 0, 0, 0, w_off, 0]);
        }
        let natural_len = groups.iter().map(|g| g[1] * g[3] * kk).sum();
        let to_u32 = |v: usize| {
            u32::try_from(v).map_err(|_| Error::shape(label, format!("{v} exceeds u32")))
        };
        let segs = segs
            .into_iter()
            .map(|s| -> Result<FastSeg> {
                Ok(FastSeg {
                    in_start: to_u32(s[0])?,
                    in_len: to_u32(s[1])?,
                    out_start: to_u32(s[2])?,
                    out_len: to_u32(s[3])?,
                    w_off: to_u32(s[4])?,
                    wn_off: to_u32(s[5])?,
                    ..FastSeg::default()
                })
            })
            .collect::<Result<Vec<_>>>()?;
        to_u32(w_off * 4)?;
        Ok(Self {
            spec: spec.clone(),
            entry,
            segs,
            chan,
            n_in,
            // At least one vec4 so the binding is never empty.
            packed_vec4: w_off.max(1),
            natural_len,
        })
    }

    /// The entry point chosen for this layer.
    pub fn entry(&self) -> Entry {
        self.entry
    }

    /// Whether a specialised entry runs this layer. Generic entries (geometries other than
    /// 3×3 and 1×1 at stride 1 or 2 and 7×7/2) are correct but slow (element loads): an
    /// executor should prefer `conv_tiled` for those layers.
    pub fn is_specialised(&self) -> bool {
        self.entry.geom.is_some()
    }

    /// Floats of the natural weight (`N·C/G·kh·kw`, or the table's group-after-group sum).
    pub fn natural_len(&self) -> usize {
        self.natural_len
    }

    /// Floats of the packed weight.
    pub fn packed_len(&self) -> usize {
        self.packed_vec4 * 4
    }

    /// Packs natural weights on the host into the kernel's layout: per segment, per
    /// (input channel, ky), [`nwv`] vec4s holding component `kx·ms + m` (zero past the
    /// segment's filters). The same layout as the shader's `pack_weights`.
    pub fn pack(&self, natural: &[f32]) -> Result<Vec<f32>> {
        if natural.len() != self.natural_len {
            return Err(Error::tensor_shape(
                "conv_fast weight",
                format!("{} values", self.natural_len),
                &[natural.len()],
            ));
        }
        let [kh, kw] = self.spec.kernel;
        let ms = self.entry.tile.ms;
        let nw = nwv(kw, ms);
        let mut out = vec![0.0; self.packed_len()];
        for s in &self.segs {
            let (in_len, out_len) = (s.in_len as usize, s.out_len as usize);
            let (w_off, wn_off) = (s.w_off as usize, s.wn_off as usize);
            let flen = in_len * kh * kw;
            for q in 0..in_len * kh {
                let dst = (w_off + q * nw) * 4;
                for m in 0..out_len {
                    for kx in 0..kw {
                        out[dst + kx * ms + m] = natural[wn_off + m * flen + q * kw + kx];
                    }
                }
            }
        }
        Ok(out)
    }

    /// Uploads the segment table and channel lists.
    pub fn upload(&self, ctx: &GpuContext, label: &str) -> Result<FastConvGpu> {
        Ok(FastConvGpu {
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
pub struct FastConvGpu {
    pub(super) plan: FastConv,
    pub(super) segs: wgpu::Buffer,
    pub(super) chan: wgpu::Buffer,
}

impl FastConvGpu {
    /// The host plan.
    pub fn plan(&self) -> &FastConv {
        &self.plan
    }
}
