//! `shaders/conv_coop{8,16}.wgsl` and their soft twins: the implicit-GEMM convolution of
//! `conv_igemm` (same segments, packed f16 weights, im2col, split-K and epilogue) with the
//! multiply-adds on **cooperative matrices** (tensor cores, Metal simdgroup matrices): f16
//! operands, f32 accumulators, square `S × S × S` shapes (`S` = 16 on Vulkan, 8 on Metal).
//!
//! The `_soft` twin is the same text with the three matrix operations (load, multiply-add,
//! store) written out in plain WGSL over workgroup memory, each of the 32 invocations owning
//! `S² / 32` elements of every accumulator; every other line is identical. No adapter this
//! project's CI has reports cooperative matrices, so the soft twin is what runs there (forced,
//! `conv_coop_soft`): it checks the tiling, the im2col, the f16 rounding of both operands,
//! the segments, split-K and the epilogue against the CPU reference, and the hardware text
//! differs from it only in those three operations.

use super::conv_igemm::HELPERS;
use super::line;

/// How the matrix operations are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mma {
    /// `coopLoad` / `coopMultiplyAdd` / `coopStore` (`enable wgpu_cooperative_matrix;`).
    Hardware,
    /// Plain WGSL over workgroup memory (runs anywhere with f16).
    Soft,
}

impl Mma {
    /// The declaration of accumulator `c` of `S × S` f32 (zeroed).
    pub(crate) fn accumulator(self, size: usize, c: &str) -> String {
        match self {
            Mma::Hardware => format!("var {c} = coop_mat{size}x{size}<f32, C>();"),
            Mma::Soft => format!("var {c}: array<f32, {}>;", size * size / LANES),
        }
    }

    /// The A operand at `off` of `sa` (column-major, column stride `stride`): a matrix, or
    /// for the soft twin the offset itself.
    pub(crate) fn load_a(self, size: usize, off: &str, stride: usize) -> String {
        match self {
            Mma::Hardware => {
                format!("coopLoad<coop_mat{size}x{size}<f16, A>>(&sa[{off}], {stride}u)")
            }
            Mma::Soft => off.to_string(),
        }
    }

    /// The B operand at `off` of `sb` (row-major, row stride `stride`).
    pub(crate) fn load_b(self, size: usize, off: &str, stride: usize) -> String {
        match self {
            Mma::Hardware => {
                format!("coopLoadT<coop_mat{size}x{size}<f16, B>>(&sb[{off}], {stride}u)")
            }
            Mma::Soft => off.to_string(),
        }
    }

    /// `c += a · b` (the soft twin's operands are offsets with their strides).
    pub(crate) fn multiply_add(
        self,
        c: &str,
        (a, a_st): (&str, usize),
        (b, b_st): (&str, usize),
    ) -> String {
        match self {
            Mma::Hardware => format!("{c} = coopMultiplyAdd({a}, {b}, {c});"),
            Mma::Soft => format!("soft_mma(&{c}, {a}, {a_st}u, {b}, {b_st}u, li);"),
        }
    }

    /// Accumulator `c` into `sc`, row-major.
    fn store(self, size: usize, c: &str) -> String {
        match self {
            Mma::Hardware => format!("coopStoreT({c}, &sc[0], {size}u);"),
            Mma::Soft => format!("soft_store(&{c}, li);"),
        }
    }
}

/// An entry's first lines: the workgroup's tile along N and M and its K range index.
pub(crate) fn tile_ids(s: &mut String) {
    for text in [
        "    let li = id.li;",
        "    // A folded grid's surplus workgroups run the last tile and store nothing.",
        "    let wid_raw = linear_wg(id.wg, id.nwg);",
        "    let live = wid_raw < p.total_wg;",
        "    let wid = min(wid_raw, p.total_wg - 1u);",
        "    let tile_n = wid % p.tiles_n;",
        "    let rest = wid / p.tiles_n;",
        "    let tile_m = rest % p.tiles_m;",
        "    let ks = rest / p.tiles_m;",
    ] {
        line(s, text);
    }
}

/// An entry's last lines: each of the `mb × nb` accumulators `c{i}_{j}` through `sc` to
/// `store_call(i, j)` (a call of the shader's `store_block`), lanes of a dead workgroup
/// gone first.
pub(crate) fn store_blocks(
    s: &mut String,
    (size, mb, nb): (usize, usize, usize),
    mma: Mma,
    store_call: impl Fn(usize, usize) -> String,
) {
    line(s, "    if (!live) {");
    line(s, "        return;");
    line(s, "    }");
    for i in 0..mb {
        for j in 0..nb {
            line(s, format!("    {}", mma.store(size, &format!("c{i}_{j}"))));
            line(s, "    workgroupBarrier();");
            line(s, format!("    {};", store_call(i, j)));
            line(s, "    workgroupBarrier();");
        }
    }
    line(s, "}");
}

/// One workgroup tile: `mb × nb` accumulator blocks of `S × S`, computed by one subgroup of
/// 32 invocations (the workgroup), so that the matrix operations are always uniform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoopTile {
    /// The entry point.
    pub name: &'static str,
    /// Blocks along M (filters).
    pub mb: usize,
    /// Blocks along N (output pixels).
    pub nb: usize,
}

/// The tiles, largest first: 4 × 4 blocks for wide layers, 2 × 4 and 1 × 4 for layers with
/// few filters per group (a block row never spans two groups, so a group narrower than `S`
/// pads its rows).
pub const COOP_TILES: [CoopTile; 3] = [
    CoopTile {
        name: "coop_m4n4",
        mb: 4,
        nb: 4,
    },
    CoopTile {
        name: "coop_m2n4",
        mb: 2,
        nb: 4,
    },
    CoopTile {
        name: "coop_m1n4",
        mb: 1,
        nb: 4,
    },
];

/// The matrix sizes with a shader: 16 (Vulkan's `VK_KHR_cooperative_matrix` on NVIDIA and
/// AMD) and 8 (Metal's simdgroup matrices).
pub const SIZES: [usize; 2] = [16, 8];

/// Invocations per workgroup: one subgroup on the adapters the tier is offered on.
pub const LANES: usize = 32;

/// K per step (one or two matrix steps).
pub const BK: usize = 16;

/// The most segments a tile has (`mb`: a segment has at least `S` filters).
const MAX_SEGS: usize = 4;

/// The text of `shaders/conv_coop{size}.wgsl` (`Hardware`) or `conv_coop{size}_soft.wgsl`.
pub fn wgsl(size: usize, mma: Mma) -> String {
    assert!(SIZES.contains(&size), "a cooperative-matrix size");
    let bm_max = COOP_TILES[0].mb * size;
    let bn_max = COOP_TILES[0].nb * size;
    let twin = match mma {
        Mma::Hardware => String::new(),
        Mma::Soft => format!(
            "// The soft twin of conv_coop{size}.wgsl: its matrix operations in plain WGSL.\n"
        ),
    };
    let mut s = format!(
        r#"// GENERATED by src/gpu/codegen/conv_coop.rs — edit the generator, not this file.
{twin}//
// conv_igemm's implicit GEMM on {size}×{size}×{size} cooperative matrices: f16 operands, f32
// accumulators. A workgroup is one subgroup of {LANES} invocations and computes MB × NB blocks
// of {size} × {size} (filters × output pixels). Per K step of {BK}: the packed f16 weights
// ([tile][k][BM], `igemm_pack`'s layout) and the segments' im2col rows ([S][{BK}][BN]) are
// rounded to f16 into workgroup memory, then each block row (filters of one segment)
// multiplies the rows of its segment. After K, each block goes through workgroup memory to
// `store` (split-K partial sums, or bias and activation), lanes along the pixels.
// `p: Params`, `Seg` and the bindings are generated from src/gpu/kernels/conv_coop.rs.

var<workgroup> sa: array<f16, {sa}>;
var<workgroup> sb: array<f16, {sb}>;
var<workgroup> sc: array<f32, {sc}>;

"#,
        sa = BK * bm_max,
        sb = MAX_SEGS * BK * bn_max,
        sc = size * size,
    );
    s.push_str(HELPERS);
    store_block(&mut s, size);
    if mma == Mma::Soft {
        soft_ops(&mut s, size);
    }
    for t in COOP_TILES {
        entry(&mut s, size, t, mma);
    }
    s
}

/// The epilogue of one block, shared by every block of every tile: `sc` (row-major, where
/// the block was just stored) through `store`, lanes along the pixels.
fn store_block(s: &mut String, size: usize) {
    let sq = size * size;
    s.push_str(&format!(
        r#"
// Block (m0, n0) of tile `tile_m` from sc through `store`: split-K partial sums, or bias and
// activation; rows past a segment's filters and pixels past the batch are not stored.
fn store_block(tile_m: u32, m0: u32, n0: u32, ks: u32, li: u32) {{
    for (var e = li; e < {sq}u; e += {LANES}u) {{
        let r = e / {size}u;
        let m = m0 + r;
        let n = n0 + e - r * {size}u;
        let seg = m / p.ms;
        if (seg < p.s && n < p.npix) {{
            let sg = segs[tile_m * p.s + seg];
            let f = m - seg * p.ms;
            if (f < sg.out_len) {{
                store(chan[sg.out_start + f], n, sc[e], ks);
            }}
        }}
    }}
}}
"#
    ));
}

/// The soft matrix operations (`conv_coop`'s and `linear_coop`'s; `p.bk` ≥ `S` in both):
/// lane `li` owns elements `li · E .. li · E + E` of a block (row-major), `E = S² / 32`.
pub(crate) fn soft_ops(s: &mut String, size: usize) {
    let e = size * size / LANES;
    s.push_str(&format!(
        r#"
// c += A · B for lane li's {e} elements: A column-major in sa from a_off (stride a_st),
// B row-major in sb from b_off (stride b_st) — coopLoad's and coopLoadT's layouts. The loop
// bounds are read from the uniform (p.bk = {BK} ≥ both) so that a compiler does not unroll
// every call site (lavapipe took a minute to compile the largest tile unrolled).
fn soft_mma(c: ptr<function, array<f32, {e}>>, a_off: u32, a_st: u32, b_off: u32, b_st: u32, li: u32) {{
    let en = min(p.bk, {e}u);
    let kn = min(p.bk, {size}u);
    for (var q = 0u; q < en; q++) {{
        let el = li * {e}u + q;
        let r = el / {size}u;
        let col = el - r * {size}u;
        var v = (*c)[q];
        for (var k = 0u; k < kn; k++) {{
            v += f32(sa[a_off + k * a_st + r]) * f32(sb[b_off + k * b_st + col]);
        }}
        (*c)[q] = v;
    }}
}}

// coopStoreT(c, &sc[0], {size}): lane li's elements, row-major.
fn soft_store(c: ptr<function, array<f32, {e}>>, li: u32) {{
    for (var q = 0u; q < {e}u; q++) {{
        sc[li * {e}u + q] = (*c)[q];
    }}
}}
"#
    ));
}

fn entry(s: &mut String, size: usize, t: CoopTile, mma: Mma) {
    let CoopTile { name, mb, nb } = t;
    let (bm, bn) = (mb * size, nb * size);
    let bm4 = bm / 4;
    let l = |s: &mut String, text: &str| line(s, text);
    l(s, "");
    l(
        s,
        &format!("// {mb} × {nb} blocks: {bm} filters × {bn} pixels."),
    );
    l(s, &format!("@compute @workgroup_size({LANES})"));
    l(s, &format!("fn {name}(id: Ids) {{"));
    tile_ids(s);
    l(s, "    let kt = tile_k(tile_m);");
    l(s, "    let kbeg = min(ks * p.kchunk, kt);");
    l(s, "    let kend = min(kbeg + p.kchunk, kt);");
    l(
        s,
        &format!("    let steps = (kend - kbeg + {}u) / {BK}u;", BK - 1),
    );
    l(s, "    let w_base = segs[tile_m * p.s].w_off / 4u;");
    l(s, "    let plane = p.geom.oh * p.geom.ow;");
    // The lane's output-pixel columns of the tile, decomposed once (not per K step).
    assert_eq!(bn % LANES, 0, "{name}: whole pixel columns per lane");
    let cols = bn / LANES;
    for c in 0..cols {
        l(
            s,
            &format!("    let pn{c} = tile_n * {bn}u + li + {}u;", c * LANES),
        );
        l(s, &format!("    let pb{c} = pn{c} / plane;"));
        l(s, &format!("    let pp{c} = pn{c} - pb{c} * plane;"));
        l(s, &format!("    let poy{c} = pp{c} / p.geom.ow;"));
        l(s, &format!("    let pox{c} = pp{c} - poy{c} * p.geom.ow;"));
        l(s, &format!("    let pin{c} = pn{c} < p.npix;"));
    }
    for i in 0..mb {
        l(
            s,
            &format!("    let seg{i} = min({}u / p.ms, p.s - 1u);", i * size),
        );
        for j in 0..nb {
            l(
                s,
                &format!("    {}", mma.accumulator(size, &format!("c{i}_{j}"))),
            );
        }
    }
    l(s, "    for (var st = 0u; st < steps; st++) {");
    l(s, &format!("        let k0 = kbeg + st * {BK}u;"));
    l(s, "        // The weights: 4 halves per packed word.");
    l(
        s,
        &format!("        for (var i = li; i < {BK}u * {bm4}u; i += {LANES}u) {{"),
    );
    l(s, &format!("            let kk = i / {bm4}u;"));
    l(s, &format!("            let m4 = i - kk * {bm4}u;"));
    l(s, "            var q = vec2<u32>(0u);");
    l(s, "            if (k0 + kk < kend) {");
    l(
        s,
        &format!("                q = wp[w_base + (k0 + kk) * {bm4}u + m4];"),
    );
    l(s, "            }");
    l(s, "            let lo = unpack2x16float(q.x);");
    l(s, "            let hi = unpack2x16float(q.y);");
    l(s, &format!("            let o = kk * {bm}u + m4 * 4u;"));
    l(s, "            sa[o] = f16(lo.x);");
    l(s, "            sa[o + 1u] = f16(lo.y);");
    l(s, "            sa[o + 2u] = f16(hi.x);");
    l(s, "            sa[o + 3u] = f16(hi.y);");
    l(s, "        }");
    l(
        s,
        "        // The segments' im2col rows, lanes along the pixels (each its own columns).",
    );
    l(
        s,
        &format!("        for (var r = 0u; r < p.s * {BK}u; r++) {{"),
    );
    l(s, &format!("            let sj = r / {BK}u;"));
    l(s, &format!("            let kk = r - sj * {BK}u;"));
    l(s, "            let sg = segs[tile_m * p.s + sj];");
    l(s, "            let live_k = k0 + kk < kend;");
    for c in 0..cols {
        l(s, &format!("            var v{c} = 0.0;"));
        l(s, &format!("            if (pin{c} && live_k) {{"));
        l(
            s,
            &format!("                v{c} = im2col(sg, k0 + kk, pb{c}, poy{c}, pox{c});"),
        );
        l(s, "            }");
        l(
            s,
            &format!(
                "            sb[r * {bn}u + li + {}u] = f16(v{c});",
                c * LANES
            ),
        );
    }
    l(s, "        }");
    l(s, "        workgroupBarrier();");
    // Per K step of S: each block row's A once; each block column's B once per segment
    // (dense layers: once), reloaded only where the next block row's segment differs.
    for kq in (0..BK).step_by(size) {
        for i in 0..mb {
            let a = mma.load_a(size, &format!("{}u", kq * bm + i * size), bm);
            l(s, &format!("        let a{i}_{kq} = {a};"));
        }
        for j in 0..nb {
            let b = format!("b{j}_{kq}");
            for i in 0..mb {
                let off = format!("(seg{i} * {BK}u + {kq}u) * {bn}u + {}u", j * size);
                let load = mma.load_b(size, &off, bn);
                if i == 0 {
                    l(s, &format!("        var {b} = {load};"));
                } else {
                    l(s, &format!("        if (seg{i} != seg{}) {{", i - 1));
                    l(s, &format!("            {b} = {load};"));
                    l(s, "        }");
                }
                let c = format!("c{i}_{j}");
                let a = format!("a{i}_{kq}");
                let mad = mma.multiply_add(&c, (&a, bm), (&b, bn));
                l(s, &format!("        {mad}"));
            }
        }
    }
    l(s, "        workgroupBarrier();");
    l(s, "    }");
    store_blocks(s, (size, mb, nb), mma, |i, j| {
        format!(
            "store_block(tile_m, {}u, tile_n * {bn}u + {}u, ks, li)",
            i * size,
            j * size
        )
    });
}
