//! Launcher for `shaders/flgc.wgsl`: FLGC's training pieces (Wang et al. §2) — row softmax +
//! argmax of the selection logits, the masked weight `W ⊙ M`, and the straight-through
//! gradients of the selection logits (`ops::flgc_conv2d_backward`).

use super::{check_arg, check_dims, fold_workgroups, Arg, Call, WG};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `flgc.wgsl`.
    pub struct FlgcParams = "Params" {
        /// Rows of the selection matrix (`select_rows`), N otherwise.
        pub n: u32,
        /// Input channels C.
        pub c: u32,
        /// Groups G.
        pub groups: u32,
        /// Kernel taps `kh·kw`.
        pub kk: u32,
        /// Elements (or rows) the call covers.
        pub total: u32,
        /// Padding.
        pub _pad0: u32,
        /// Padding.
        pub _pad1: u32,
        /// Padding.
        pub _pad2: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/flgc.wgsl` (roles per entry point at the top of the shader).
    pub static SHADER = "flgc" {
        params: FlgcParams,
        trusted: false,
        /// The bindings by position.
        args: FlgcArgs {
            /// First f32 input.
            fa: read array<f32>,
            /// Second f32 input.
            fb: read array<f32>,
            /// First u32 input.
            ua: read array<u32>,
            /// Second u32 input.
            ub: read array<u32>,
            /// The f32 output.
            out: write array<f32>,
            /// The u32 output (`select_rows`' argmax).
            out_u: write array<u32>,
        }
    }
}

/// An FLGC layer: `n` filters, `c` input channels, `groups` groups, `kk = kh·kw`.
#[derive(Clone, Copy, Debug)]
pub struct FlgcShape {
    /// Filters N.
    pub n: usize,
    /// Input channels C.
    pub c: usize,
    /// Groups G.
    pub groups: usize,
    /// Kernel taps `kh·kw`.
    pub kk: usize,
}

fn count(label: &str, dims: &[usize]) -> Result<u32> {
    dims.iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .and_then(|t| u32::try_from(t).ok())
        .ok_or_else(|| Error::shape(label, format!("{dims:?} exceed u32 indexing")))
}

/// One call; `fb`, `ua`, `ub` default to `fa`, `out_u` to a 4-byte scratch buffer.
fn call(
    ctx: &GpuContext,
    (label, entry): (&str, &'static str),
    params: &FlgcParams,
    fa: &Arg,
    [fb, ua, ub]: [Option<&Arg>; 3],
    (out, out_u): (&Arg, Option<&Arg>),
) -> Result<Call> {
    let grid = fold_workgroups(ctx, label, u64::from(params.total).div_ceil(u64::from(WG)))?;
    let out_u = match out_u {
        Some(a) => a.clone(),
        None => Arg::whole(&ctx.storage_buffer(&format!("{label} scratch"), 4)?),
    };
    let args = FlgcArgs {
        fa: fa.clone(),
        fb: fb.unwrap_or(fa).clone(),
        ua: ua.unwrap_or(fa).clone(),
        ub: ub.unwrap_or(fa).clone(),
        out: out.clone(),
        out_u,
    };
    Call::new(
        ctx,
        label,
        SHADER.entry(entry, &[("WG", WG)]),
        params,
        args.into_vec(),
        grid,
    )
}

/// Row softmax and argmax (ties → lowest group) of selection logits `[rows, groups]`:
/// `probs` (same shape) and `index` (`rows` u32).
pub fn select(
    ctx: &GpuContext,
    label: &str,
    [rows, groups]: [usize; 2],
    logits: &Arg,
    [probs, index]: [&Arg; 2],
) -> Result<Call> {
    check_dims(label, &[("rows", rows), ("groups", groups)])?;
    let len = count(label, &[rows, groups])?;
    check_arg(ctx, label, "logits", logits, u64::from(len))?;
    check_arg(ctx, label, "probs", probs, u64::from(len))?;
    check_arg(ctx, label, "index", index, rows as u64)?;
    let p = FlgcParams {
        n: rows as u32,
        groups: groups as u32,
        total: rows as u32,
        ..FlgcParams::default()
    };
    let unused = [None; 3];
    call(
        ctx,
        (label, "select_rows"),
        &p,
        logits,
        unused,
        (probs, Some(index)),
    )
}

/// `out = W ⊙ M` with `M[n, c] = 1` iff `out_index[n] == in_index[c]` (u32 group indices).
pub fn masked_weight(
    ctx: &GpuContext,
    label: &str,
    s: &FlgcShape,
    weight: &Arg,
    [in_index, out_index]: [&Arg; 2],
    out: &Arg,
) -> Result<Call> {
    check_dims(label, &[("n", s.n), ("c", s.c), ("kk", s.kk)])?;
    let len = count(label, &[s.n, s.c, s.kk])?;
    check_arg(ctx, label, "weight", weight, u64::from(len))?;
    check_arg(ctx, label, "in_index", in_index, s.c as u64)?;
    check_arg(ctx, label, "out_index", out_index, s.n as u64)?;
    check_arg(ctx, label, "out", out, u64::from(len))?;
    let p = FlgcParams {
        n: s.n as u32,
        c: s.c as u32,
        kk: s.kk as u32,
        total: len,
        ..FlgcParams::default()
    };
    let idx = [None, Some(in_index), Some(out_index)];
    call(ctx, (label, "masked_weight"), &p, weight, idx, (out, None))
}

/// The tensors of the selection gradients.
#[derive(Clone, Debug)]
pub struct SelectGradArgs {
    /// `D = ∂L/∂(W⊙M)`, `[N, C, kk]`.
    pub d_masked: Arg,
    /// `W`, `[N, C, kk]`.
    pub weight: Arg,
    /// Group of each input channel (u32, `[C]`).
    pub in_index: Arg,
    /// Group of each filter (u32, `[N]`).
    pub out_index: Arg,
    /// `Ŝ`, `[C, G]`.
    pub probs_in: Arg,
    /// `T̂`, `[N, G]`.
    pub probs_out: Arg,
    /// Scratch for `Gm = Σ_k D ⊙ W`, `[N, C]`.
    pub gm: Arg,
    /// `∂L/∂S̄`, `[C, G]`.
    pub d_select_in: Arg,
    /// `∂L/∂T̄`, `[N, G]`.
    pub d_select_out: Arg,
}

/// Straight-through selection gradients (Eqs. 17–18): the rows of `D` of dead filters (no
/// input channel in their group) zeroed in place, `Gm = Σ_k D ⊙ W`, then `Gmᵀ·T` and `Gm·S`
/// through the row-softmax Jacobian. Four calls.
pub fn select_grad(
    ctx: &GpuContext,
    label: &str,
    s: &FlgcShape,
    a: &SelectGradArgs,
) -> Result<Vec<Call>> {
    let (n, c, g, kk) = (s.n, s.c, s.groups, s.kk);
    check_dims(label, &[("n", n), ("c", c), ("groups", g), ("kk", kk)])?;
    let wlen = u64::from(count(label, &[n, c, kk])?);
    let len_in = count(label, &[c, g])?;
    let len_out = count(label, &[n, g])?;
    let nc = count(label, &[n, c])?;
    for (name, t, len) in [
        ("grad_masked_weight", &a.d_masked, wlen),
        ("weight", &a.weight, wlen),
        ("in_index", &a.in_index, c as u64),
        ("out_index", &a.out_index, n as u64),
        ("probs_in", &a.probs_in, u64::from(len_in)),
        ("probs_out", &a.probs_out, u64::from(len_out)),
        ("gm", &a.gm, u64::from(nc)),
        ("grad_select_in", &a.d_select_in, u64::from(len_in)),
        ("grad_select_out", &a.d_select_out, u64::from(len_out)),
    ] {
        check_arg(ctx, label, name, t, len)?;
    }
    let base = FlgcParams {
        n: n as u32,
        c: c as u32,
        groups: g as u32,
        kk: kk as u32,
        ..FlgcParams::default()
    };
    let with = |total| FlgcParams { total, ..base };
    Ok(vec![
        call(
            ctx,
            (&format!("{label} dead filters"), "zero_dead_filters"),
            &with(n as u32),
            &a.weight,
            [None, Some(&a.in_index), Some(&a.out_index)],
            (&a.d_masked, None),
        )?,
        call(
            ctx,
            (&format!("{label} mask grad"), "mask_grad"),
            &with(nc),
            &a.d_masked,
            [Some(&a.weight), None, None],
            (&a.gm, None),
        )?,
        call(
            ctx,
            (&format!("{label} select_in grad"), "select_in_grad"),
            &with(len_in),
            &a.gm,
            [Some(&a.probs_in), None, Some(&a.out_index)],
            (&a.d_select_in, None),
        )?,
        call(
            ctx,
            (&format!("{label} select_out grad"), "select_out_grad"),
            &with(len_out),
            &a.gm,
            [Some(&a.probs_out), Some(&a.in_index), None],
            (&a.d_select_out, None),
        )?,
    ])
}
