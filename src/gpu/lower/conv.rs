//! GPU lowering of the convolutions: grouped conv (inference and training), the exported
//! FLGC table (inference), and FLGC training (selection, masked weight, dense conv, the
//! straight-through selection gradients).

use super::{Lowering, Prepared};
use crate::error::{Error, Result};
use crate::gpu::choice::{self, ConvKernel, ConvProblem, InputGrad, WeightGrad};
use crate::gpu::kernels::conv::{self, DirectArgs};
use crate::gpu::kernels::conv_fast::{self, ConvIo, FastConv, Weight};
use crate::gpu::kernels::conv_wgmem::{self, WgmemConv, WgmemIo};
use crate::gpu::kernels::flgc::{self, FlgcShape, SelectGradArgs};
use crate::gpu::kernels::geometry::{ConvGeom, ConvShape};
use crate::gpu::kernels::{conv_backward, conv_grad_fast, conv_tiled, Arg, Call};
use crate::graph::{Conv2dSpec, GroupedConvTable, NodeId};
use crate::ops::{Activation, FlgcSpec};

fn shape<'s>(l: &Lowering<'_>, i: NodeId, spec: &'s Conv2dSpec) -> ConvShape<'s> {
    ConvShape {
        spec,
        batch: l.batch,
        in_hw: l.hw(l.graph.nodes[i].inputs[0]),
    }
}

fn geom(l: &Lowering<'_>, i: NodeId, act: Activation) -> ConvGeom {
    ConvGeom {
        batch: l.batch,
        in_hw: l.hw(l.graph.nodes[i].inputs[0]),
        act,
    }
}

/// The node's bias parameter, if the layer has one.
fn bias(l: &Lowering<'_>, i: NodeId, spec: &Conv2dSpec) -> Result<Option<Arg>> {
    spec.bias.then(|| l.param(i, "bias")).transpose()
}

/// Input and output of node `i`.
fn io(l: &Lowering<'_>, i: NodeId) -> Result<(Arg, Arg)> {
    Ok((l.value(l.graph.nodes[i].inputs[0])?, l.value(i)?))
}

/// Node `i`'s convolution with the weights prepared at load (`conv_fast` packed,
/// `conv_tiled` packed, or planned for `conv_wgmem`); `None` if nothing was prepared.
fn prepared(l: &mut Lowering<'_>, i: NodeId, spec: &Conv2dSpec) -> Result<Option<Vec<Call>>> {
    let act = l.fused(i);
    let (x, out) = io(l, i)?;
    let name = l.graph.nodes[i].name.as_str();
    let calls = match l.params.prepared(i) {
        Some(Prepared::Tiled(p)) => {
            let s = shape(l, i, spec);
            vec![conv_tiled::forward(l.ctx, name, (&s, act), &x, p, &out)?]
        }
        Some(Prepared::Fast(p)) => {
            let io = ConvIo {
                x,
                out,
                weight: Weight::Packed(Arg::whole(&p.weight)),
                bias: Some(Arg::whole(&p.bias)),
            };
            let g = geom(l, i, act);
            let (ctx, prog) = (l.ctx, &mut l.prog);
            let mut scratch = |label: &str, n: usize| Ok(Arg::planned(prog.buffer(label, n), n));
            conv_fast::forward(ctx, name, &p.layer, io, g, &mut scratch)?
        }
        Some(Prepared::Wgmem(layer)) => {
            let io = WgmemIo {
                x,
                out,
                weight: l.param(i, "weight")?,
                bias: bias(l, i, spec)?,
            };
            vec![conv_wgmem::forward(
                l.ctx,
                name,
                layer,
                io,
                geom(l, i, act),
            )?]
        }
        _ => return Ok(None),
    };
    Ok(Some(calls))
}

/// Node `i`'s convolution `spec` of weights `weight` as they are (training, FLGC's masked
/// weight, or an inference layer whose kernel reads natural weights), `act` fused, with the
/// kernel chosen for the layer: `conv_fast` packs them by a GPU call first.
fn natural(
    l: &mut Lowering<'_>,
    i: NodeId,
    spec: &Conv2dSpec,
    (weight, bias): (Arg, Option<Arg>),
    act: Activation,
) -> Result<Vec<Call>> {
    let node = &l.graph.nodes[i];
    let name = node.name.as_str();
    let s = shape(l, i, spec);
    // Nothing was packed at load, so a kernel that needs packed weights does not apply.
    let problem = ConvProblem::conv2d(spec, l.batch, s.in_hw, false);
    let kernel = choice::conv_forward_for(l.ctx, name, &problem, &l.choice)?;
    let (x, out) = io(l, i)?;
    let g = geom(l, i, act);
    let (ctx, prog) = (l.ctx, &mut l.prog);
    let mut scratch = |label: &str, n: usize| Ok(Arg::planned(prog.buffer(label, n), n));
    match kernel {
        ConvKernel::Fast(_) => {
            let layer = FastConv::conv2d(spec, s.in_hw, kernel.fast_entry())?.upload(ctx, name)?;
            let io = ConvIo {
                x,
                out,
                weight: Weight::Natural(weight),
                bias,
            };
            conv_fast::forward(ctx, name, &layer, io, g, &mut scratch)
        }
        ConvKernel::Wgmem => {
            let layer = WgmemConv::conv2d(spec)?.upload(ctx, name)?;
            let io = WgmemIo {
                x,
                out,
                weight,
                bias,
            };
            Ok(vec![conv_wgmem::forward(ctx, name, &layer, io, g)?])
        }
        ConvKernel::Direct(k) => {
            let groups = conv::even_groups(name, spec)?;
            let args = DirectArgs {
                x,
                weight,
                bias,
                out,
            };
            conv::forward(ctx, name, (k, &s, act), &groups, args, &mut scratch)
        }
        ConvKernel::Tiled => Err(Error::shape(
            name,
            "conv_tiled reads weights packed at load; this layer's are not",
        )),
    }
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
    let mut calls = match choice::weight_grad(ctx, spec) {
        WeightGrad::Fast => {
            let prog = &mut l.prog;
            let mut scratch = |label: &str, n: usize| Ok(Arg::planned(prog.buffer(label, n), n));
            conv_grad_fast::grad_weight(ctx, &name, &s, (&x, gy, dw), &mut scratch)?
        }
        WeightGrad::Backward(k) => {
            vec![conv_backward::grad_weight(ctx, &name, (k, &s), &x, gy, dw)?]
        }
    };
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
        match choice::input_grad(ctx, spec) {
            InputGrad::Fast => {
                let prog = &mut l.prog;
                let mut scratch =
                    |label: &str, n: usize| Ok(Arg::planned(prog.buffer(label, n), n));
                calls.extend(conv_grad_fast::grad_input(
                    ctx,
                    &name,
                    (&s, acc),
                    (gy, w, &dx),
                    &mut scratch,
                )?);
            }
            InputGrad::Backward(k) => calls.push(conv_backward::grad_input(
                ctx,
                &name,
                (k, &s, acc),
                gy,
                w,
                &dx,
            )?),
        }
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
