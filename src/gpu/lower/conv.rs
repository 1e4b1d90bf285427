//! GPU lowering of the convolutions: grouped conv (inference and training), the exported
//! FLGC table (inference), and FLGC training (selection, masked weight, dense conv, the
//! straight-through selection gradients).

use super::{Lowering, Prepared};
use crate::error::{Error, Result};
use crate::gpu::choice;
use crate::gpu::family::{ConvProblem, ConvRun, GradIo};
use crate::gpu::geometry::ConvShape;
use crate::gpu::kernels::flgc::{self, FlgcShape, SelectGradArgs};
use crate::gpu::kernels::{conv_backward, Arg, Call};
use crate::graph::{Conv2dSpec, GroupedConvTable, NodeId};
use crate::ops::{Activation, FlgcSpec};

fn shape<'s>(l: &Lowering<'_>, i: NodeId, spec: &'s Conv2dSpec) -> ConvShape<'s> {
    ConvShape {
        spec,
        batch: l.batch,
        in_hw: l.hw(l.graph.nodes[i].inputs[0]),
    }
}

/// The node's bias parameter, if the layer has one.
fn bias(l: &Lowering<'_>, i: NodeId, spec: &Conv2dSpec) -> Result<Option<Arg>> {
    spec.bias.then(|| l.param(i, "bias")).transpose()
}

/// One run of node `i` (convolution `spec`) with weights `weight` and the fused activation.
fn run<'r: 's, 's>(
    l: &Lowering<'r>,
    i: NodeId,
    spec: &'s Conv2dSpec,
    (weight, bias): (Option<Arg>, Option<Arg>),
    act: Activation,
) -> Result<ConvRun<'s>> {
    let graph: &'r crate::graph::Graph = l.graph;
    let node = &graph.nodes[i];
    Ok(ConvRun {
        label: node.name.as_str(),
        spec,
        batch: l.batch,
        in_hw: l.hw(node.inputs[0]),
        x: l.value(node.inputs[0])?,
        out: l.value(i)?,
        weight,
        bias,
        act,
    })
}

/// Node `i`'s convolution with the weights its family prepared at load; `None` if nothing
/// was prepared.
fn prepared(l: &mut Lowering<'_>, i: NodeId, spec: &Conv2dSpec) -> Result<Option<Vec<Call>>> {
    let Some(Prepared::Conv(p)) = l.params.prepared(i) else {
        return Ok(None);
    };
    let weights = if p.reads_natural_weights() {
        (Some(l.param(i, "weight")?), bias(l, i, spec)?)
    } else {
        (None, None)
    };
    let r = run(l, i, spec, weights, l.fused(i))?;
    let (ctx, prog) = (l.ctx, &mut l.prog);
    let mut scratch = |label: &str, n: usize| Ok(Arg::planned(prog.buffer(label, n), n));
    p.forward(ctx, r, &mut scratch).map(Some)
}

/// Node `i`'s convolution `spec` of weights `weight` as they are (training, FLGC's masked
/// weight, or an inference layer whose kernel reads natural weights), `act` fused, with the
/// kernel chosen for the layer.
fn natural(
    l: &mut Lowering<'_>,
    i: NodeId,
    spec: &Conv2dSpec,
    (weight, bias): (Arg, Option<Arg>),
    act: Activation,
) -> Result<Vec<Call>> {
    let name = l.graph.nodes[i].name.as_str();
    let in_hw = l.hw(l.graph.nodes[i].inputs[0]);
    // Nothing was packed at load, so a kernel that needs packed weights does not apply.
    let problem = ConvProblem::conv2d(spec, l.batch, in_hw, false);
    let kernel = choice::conv_forward_for(l.ctx, name, &problem, &l.choice)?;
    let r = run(l, i, spec, (Some(weight), bias), act)?;
    let (ctx, prog) = (l.ctx, &mut l.prog);
    let mut scratch = |label: &str, n: usize| Ok(Arg::planned(prog.buffer(label, n), n));
    kernel.family.forward(ctx, r, kernel.variant, &mut scratch)
}

/// `Conv2d` forward: the kernel whose weights were prepared at load, else the layer's kernel
/// on its weights as they are.
pub(super) fn forward_conv2d(
    l: &mut Lowering<'_>,
    i: NodeId,
    spec: &Conv2dSpec,
) -> Result<Vec<Call>> {
    if let Some(calls) = prepared(l, i, spec)? {
        return Ok(calls);
    }
    let w = l.param(i, "weight")?;
    let b = bias(l, i, spec)?;
    natural(l, i, spec, (w, b), l.fused(i))
}

/// `GroupedConvTable` forward (inference): the kernel prepared at load (`conv_fast`,
/// `conv_tiled` or `conv_wgmem`, which all read index lists).
pub(super) fn forward_table(
    l: &mut Lowering<'_>,
    i: NodeId,
    t: &GroupedConvTable,
) -> Result<Vec<Call>> {
    prepared(l, i, &t.spec)?.ok_or_else(|| {
        Error::shape(
            &l.graph.nodes[i].name,
            "an exported group table runs at inference only (train the FLGC form)",
        )
    })
}

fn flgc_shape(s: &FlgcSpec) -> FlgcShape {
    FlgcShape {
        n: s.out_channels,
        c: s.in_channels,
        groups: s.groups,
        kk: s.window(),
    }
}

/// FLGC training forward (Wang et al. §2): row softmax + argmax of S̄ and T̄, the masked weight
/// `W ⊙ T·Sᵀ`, then a dense convolution with it. The probabilities, groups and masked weight
/// are kept for the backward.
pub(super) fn forward_flgc(l: &mut Lowering<'_>, i: NodeId, s: &FlgcSpec) -> Result<Vec<Call>> {
    let name = l.graph.nodes[i].name.clone();
    let f = flgc_shape(s);
    let probs_in = l.saved(i, "Ŝ", f.c * f.groups);
    let idx_in = l.saved(i, "S groups", f.c);
    let probs_out = l.saved(i, "T̂", f.n * f.groups);
    let idx_out = l.saved(i, "T groups", f.n);
    let masked = l.saved(i, "W⊙M", f.n * f.c * f.kk);
    let ctx = l.ctx;
    let mut calls = vec![
        flgc::select(
            ctx,
            &format!("{name} S"),
            [f.c, f.groups],
            &l.param(i, "select_in")?,
            [&probs_in, &idx_in],
        )?,
        flgc::select(
            ctx,
            &format!("{name} T"),
            [f.n, f.groups],
            &l.param(i, "select_out")?,
            [&probs_out, &idx_out],
        )?,
        flgc::masked_weight(
            ctx,
            &name,
            &f,
            &l.param(i, "weight")?,
            [&idx_in, &idx_out],
            &masked,
        )?,
    ];
    let dense = s.dense();
    let b = bias(l, i, &dense)?;
    calls.extend(natural(l, i, &dense, (masked, b), l.fused(i))?);
    Ok(calls)
}

/// Input gradient (when the input needs one), weight gradient and bias gradient of a
/// convolution with weight `w`; the weight gradient goes to `dw`.
fn conv_grads(
    l: &mut Lowering<'_>,
    i: NodeId,
    spec: &Conv2dSpec,
    (gy, w, dw): (&Arg, &Arg, &Arg),
) -> Result<Vec<Call>> {
    let node = &l.graph.nodes[i];
    let input = node.inputs[0];
    let (ctx, name) = (l.ctx, node.name.clone());
    let s = shape(l, i, spec);
    let x = l.value(input)?;
    let dw_kernel = choice::weight_grad_for(ctx, &name, spec, &l.choice)?;
    let prog = &mut l.prog;
    let mut scratch = |label: &str, n: usize| Ok(Arg::planned(prog.buffer(label, n), n));
    let io = GradIo {
        gy,
        operand: &x,
        out: dw,
    };
    let mut calls = dw_kernel
        .family
        .grad_weight(ctx, &name, &s, io, &mut scratch)?;
    if spec.bias {
        let [oh, ow] = l.hw(i);
        let db = l.param_grad(i, "bias")?;
        calls.push(conv_backward::channel_sum(
            ctx,
            &name,
            [l.batch, spec.out_channels, oh * ow],
            gy,
            &db[0],
        )?);
    }
    if let Some((dx, acc)) = l.grad_target(input)? {
        let dx_kernel = choice::input_grad_for(ctx, &name, spec, &l.choice)?;
        let prog = &mut l.prog;
        let mut scratch = |label: &str, n: usize| Ok(Arg::planned(prog.buffer(label, n), n));
        let io = GradIo {
            gy,
            operand: w,
            out: &dx,
        };
        calls.extend(
            dx_kernel
                .family
                .grad_input(ctx, &name, (&s, acc), io, &mut scratch)?,
        );
    }
    Ok(calls)
}

/// `Conv2d` backward.
pub(super) fn backward_conv2d(
    l: &mut Lowering<'_>,
    i: NodeId,
    spec: &Conv2dSpec,
    gy: &Arg,
) -> Result<Vec<Call>> {
    let w = l.param(i, "weight")?;
    let dw = l.param_grad(i, "weight")?;
    conv_grads(l, i, spec, (gy, &w, &dw[0]))
}

/// FLGC backward (Eqs. 16–18): `∂L/∂W = D = ∂L/∂(W⊙M)` on every entry, the selection
/// gradients through the argmax (straight-through) and the row softmax, and the input
/// gradient through the masked weight.
pub(super) fn backward_flgc(
    l: &mut Lowering<'_>,
    i: NodeId,
    s: &FlgcSpec,
    gy: &Arg,
) -> Result<Vec<Call>> {
    let f = flgc_shape(s);
    let name = l.graph.nodes[i].name.clone();
    let masked = l.saved(i, "W⊙M", f.n * f.c * f.kk);
    let dw = l.param_grad(i, "weight")?;
    let mut calls = conv_grads(l, i, &s.dense(), (gy, &masked, &dw[0]))?;
    let args = SelectGradArgs {
        d_masked: dw[0].clone(),
        weight: l.param(i, "weight")?,
        in_index: l.saved(i, "S groups", f.c),
        out_index: l.saved(i, "T groups", f.n),
        probs_in: l.saved(i, "Ŝ", f.c * f.groups),
        probs_out: l.saved(i, "T̂", f.n * f.groups),
        gm: l.scratch(&format!("{name} Gm"), f.n * f.c),
        d_select_in: l.param_grad(i, "select_in")?.swap_remove(0),
        d_select_out: l.param_grad(i, "select_out")?.swap_remove(0),
    };
    calls.extend(flgc::select_grad(l.ctx, &name, &f, &args)?);
    Ok(calls)
}
