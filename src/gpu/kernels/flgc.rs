//! Launcher for `shaders/flgc.wgsl`: the training-time pieces of FLGC (Wang et al. 2019).
//!
//! Selection logits `S̄` `[C, G]` (input channels) and `T̄` `[N, G]` (filters) give row
//! softmaxes and one-hot groups (argmax, ties to the lowest index); the layer is a dense
//! (groups = 1) convolution with the masked weight `W ⊙ M`, `M[n, c] = 1` iff
//! `argmax T̄[n] == argmax S̄[c]`; the selection logits learn through the straight-through
//! estimator (see [`crate::train::backward::flgc_conv2d_backward`]).
//!
//! Index tensors hold `u32` values (one per row); a [`TensorRef`] with `len = rows` binds them
//! (u32 and f32 are both 4 bytes).

use super::{check_dims, check_tensor, fold_workgroups, make_dispatch};
use crate::error::{Error, Result};
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;

/// `shaders/flgc.wgsl`: params, fa, fb (f32 inputs), ua, ub (u32 inputs), out (f32),
/// out_u (u32).
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "flgc",
    source: include_str!("../../../shaders/flgc.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
        BindingKind::ReadWrite,
    ],
    trusted: false,
};

/// Invocations per workgroup (one row or one output element each).
pub const WG: u32 = 64;

/// Mirror of the WGSL `Params` of `flgc.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FlgcParams {
    /// Filters N (rows for `select_rows`).
    pub n: u32,
    /// Input channels C.
    pub c: u32,
    /// Groups G.
    pub groups: u32,
    /// Kernel taps kh·kw.
    pub kk: u32,
    /// Rows or elements covered by the dispatch.
    pub total: u32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 3],
}
super::uniform_params!(FlgcParams);

/// `a·b·c` as a `u32` element count, or an error naming `label`.
fn count(label: &str, dims: &[usize]) -> Result<u32> {
    dims.iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .and_then(|t| u32::try_from(t).ok())
        .ok_or_else(|| Error::shape(label, format!("{dims:?} exceed u32 indexing")))
}

/// Bindings in shader order; `None` inputs are bound to `fa` (never read by that entry) and a
/// missing `out_u` to a 4-byte scratch buffer.
struct Binds<'a> {
    fa: TensorRef<'a>,
    fb: Option<TensorRef<'a>>,
    ua: Option<TensorRef<'a>>,
    ub: Option<TensorRef<'a>>,
    out: TensorRef<'a>,
    out_u: Option<TensorRef<'a>>,
}

fn dispatch(
    ctx: &GpuContext,
    label: &str,
    entry: &'static str,
    params: &FlgcParams,
    b: Binds<'_>,
) -> Result<Dispatch> {
    let wgs = fold_workgroups(ctx, label, u64::from(params.total).div_ceil(u64::from(WG)))?;
    let u = ctx.uniform(&format!("{label} params"), params);
    let scratch;
    let out_u = match b.out_u {
        Some(t) => t,
        None => {
            scratch = ctx.storage_buffer(&format!("{label} scratch"), 4)?;
            TensorRef::whole(&scratch)
        }
    };
    make_dispatch(
        ctx,
        label,
        &SHADER,
        entry,
        vec![("WG", WG)],
        &[
            u.as_entire_binding(),
            b.fa.binding(),
            b.fb.unwrap_or(b.fa).binding(),
            b.ua.unwrap_or(b.fa).binding(),
            b.ub.unwrap_or(b.fa).binding(),
            b.out.binding(),
            out_u.binding(),
        ],
        wgs,
    )
}

/// Row softmax `probs[r, :]` of `logits[r, :]` (`rows × groups`) and `index[r]` = argmax of
/// the row (ties to the lowest index), as `u32`. One invocation per row (loops over G, so any
/// G). `probs` and `index` must be separate buffers from `logits` and from each other.
pub fn prepare_select(
    ctx: &GpuContext,
    label: &str,
    rows: usize,
    groups: usize,
    logits: TensorRef<'_>,
    probs: TensorRef<'_>,
    index: TensorRef<'_>,
) -> Result<Vec<Dispatch>> {
    check_dims(label, &[("rows", rows), ("groups", groups)])?;
    let len = count(label, &[rows, groups])?;
    check_tensor(ctx, label, "logits", &logits, u64::from(len))?;
    check_tensor(ctx, label, "probs", &probs, u64::from(len))?;
    check_tensor(ctx, label, "index", &index, rows as u64)?;
    let p = FlgcParams {
        n: rows as u32,
        groups: groups as u32,
        total: rows as u32,
        ..Default::default()
    };
    let b = Binds {
        fa: logits,
        fb: None,
        ua: None,
        ub: None,
        out: probs,
        out_u: Some(index),
    };
    Ok(vec![dispatch(ctx, label, "select_rows", &p, b)?])
}

/// `out[n, c, k] = w[n, c, k]` if `out_index[n] == in_index[c]` else 0, `k` over the
/// `kk = kh·kw` taps. `weight`, `out`: `[n, c, kk]`; `in_index`: `c` u32; `out_index`: `n`
/// u32. One invocation per element.
#[allow(clippy::too_many_arguments)]
pub fn prepare_masked_weight(
    ctx: &GpuContext,
    label: &str,
    n: usize,
    c: usize,
    kk: usize,
    weight: TensorRef<'_>,
    in_index: TensorRef<'_>,
    out_index: TensorRef<'_>,
    out: TensorRef<'_>,
) -> Result<Vec<Dispatch>> {
    check_dims(label, &[("n", n), ("c", c), ("kk", kk)])?;
    let len = count(label, &[n, c, kk])?;
    check_tensor(ctx, label, "weight", &weight, u64::from(len))?;
    check_tensor(ctx, label, "in_index", &in_index, c as u64)?;
    check_tensor(ctx, label, "out_index", &out_index, n as u64)?;
    check_tensor(ctx, label, "out", &out, u64::from(len))?;
    let p = FlgcParams {
        n: n as u32,
        c: c as u32,
        kk: kk as u32,
        total: len,
        ..Default::default()
    };
    let b = Binds {
        fa: weight,
        fb: None,
        ua: Some(in_index),
        ub: Some(out_index),
        out,
        out_u: None,
    };
    Ok(vec![dispatch(ctx, label, "masked_weight", &p, b)?])
}

/// Straight-through selection gradients from `D = ∂L/∂(W⊙M)` (the dense weight gradient of
/// the masked convolution, `[n, c, kk]`) and `W` (`[n, c, kk]`):
/// `Gm[n,c] = Σ_k D·W`; `∂L/∂Ŝ[c,j] = Σ_{n: out_index[n]==j} Gm[n,c]`;
/// `∂L/∂T̂[n,j] = Σ_{c: in_index[c]==j} Gm[n,c]`; then the row-softmax Jacobian
/// `p ⊙ (g − ⟨g,p⟩)` with `probs_in` (`[c, groups]`) / `probs_out` (`[n, groups]`) gives
/// `grad_select_in` `[c, groups]` and `grad_select_out` `[n, groups]` (overwritten).
///
/// Three dispatches (Gm into a temporary buffer this function allocates, then one per
/// selection matrix, one invocation per output element, `O(N)` resp. `O(C)` work each).
/// Index values `≥ groups` contribute nothing.
#[allow(clippy::too_many_arguments)]
pub fn prepare_select_grad(
    ctx: &GpuContext,
    label: &str,
    n: usize,
    c: usize,
    groups: usize,
    kk: usize,
    grad_masked_weight: TensorRef<'_>,
    weight: TensorRef<'_>,
    in_index: TensorRef<'_>,
    out_index: TensorRef<'_>,
    probs_in: TensorRef<'_>,
    probs_out: TensorRef<'_>,
    grad_select_in: TensorRef<'_>,
    grad_select_out: TensorRef<'_>,
) -> Result<Vec<Dispatch>> {
    check_dims(label, &[("n", n), ("c", c), ("groups", groups), ("kk", kk)])?;
    let wlen = count(label, &[n, c, kk])?;
    let len_in = count(label, &[c, groups])?;
    let len_out = count(label, &[n, groups])?;
    check_tensor(
        ctx,
        label,
        "grad_masked_weight",
        &grad_masked_weight,
        u64::from(wlen),
    )?;
    check_tensor(ctx, label, "weight", &weight, u64::from(wlen))?;
    check_tensor(ctx, label, "in_index", &in_index, c as u64)?;
    check_tensor(ctx, label, "out_index", &out_index, n as u64)?;
    check_tensor(ctx, label, "probs_in", &probs_in, u64::from(len_in))?;
    check_tensor(ctx, label, "probs_out", &probs_out, u64::from(len_out))?;
    check_tensor(
        ctx,
        label,
        "grad_select_in",
        &grad_select_in,
        u64::from(len_in),
    )?;
    check_tensor(
        ctx,
        label,
        "grad_select_out",
        &grad_select_out,
        u64::from(len_out),
    )?;
    let nc = n as u64 * c as u64;
    let gm = ctx.storage_buffer(&format!("{label} Gm"), nc * 4)?;
    let gm = TensorRef::whole(&gm);
    let base = FlgcParams {
        n: n as u32,
        c: c as u32,
        groups: groups as u32,
        kk: kk as u32,
        ..Default::default()
    };
    let mask = dispatch(
        ctx,
        &format!("{label} mask grad"),
        "mask_grad",
        &FlgcParams {
            total: nc as u32,
            ..base
        },
        Binds {
            fa: grad_masked_weight,
            fb: Some(weight),
            ua: None,
            ub: None,
            out: gm,
            out_u: None,
        },
    )?;
    let sel_in = dispatch(
        ctx,
        &format!("{label} select_in grad"),
        "select_in_grad",
        &FlgcParams {
            total: len_in,
            ..base
        },
        Binds {
            fa: gm,
            fb: Some(probs_in),
            ua: None,
            ub: Some(out_index),
            out: grad_select_in,
            out_u: None,
        },
    )?;
    let sel_out = dispatch(
        ctx,
        &format!("{label} select_out grad"),
        "select_out_grad",
        &FlgcParams {
            total: len_out,
            ..base
        },
        Binds {
            fa: gm,
            fb: Some(probs_out),
            ua: Some(in_index),
            ub: None,
            out: grad_select_out,
            out_u: None,
        },
    )?;
    Ok(vec![mask, sel_in, sel_out])
}
