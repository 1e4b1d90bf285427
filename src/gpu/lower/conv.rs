//! GPU lowering of the convolutions: grouped conv (inference and training), the exported
//! FLGC table (inference), and FLGC training (selection, masked weight, dense conv, the
//! straight-through selection gradients).

use super::{Lowering, Prepared};
use crate::error::{Error, Result};
use crate::gpu::choice::{self, ConvKernel, ConvProblem, DirectKernel, InputGrad, WeightGrad};
use crate::gpu::kernels::conv::{self, ConvShape, DirectArgs};
use crate::gpu::kernels::flgc::{self, FlgcShape, SelectGradArgs};
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

/// A direct (`conv.wgsl`) convolution of `weight` into node `i`'s value.
fn direct(
    l: &mut Lowering<'_>,
    i: NodeId,
    spec: &Conv2dSpec,
    weight: Arg,
    act: Activation,
) -> Result<Vec<Call>> {
    let node = &l.graph.nodes[i];
    let s = shape(l, i, spec);
    let problem = ConvProblem {
        spec: spec.clone(),
        batch: l.batch,
        in_hw: s.in_hw,
        out_lens: vec![spec.out_channels / spec.groups.max(1); spec.groups],
        static_weights: l.train.is_none(),
        table: false,
    };
    let kernel = match choice::conv_forward(l.ctx, &problem) {
        ConvKernel::Direct(k) => k,
        // The tiled kernel was not prepared at load (it always is when it applies).
        ConvKernel::Tiled => DirectKernel::Co8,
    };
    let args = DirectArgs {
        x: l.value(node.inputs[0])?,
        weight,
        bias: if spec.bias {
            Some(l.param(i, "bias")?)
        } else {
            None
        },
        out: l.value(i)?,
    };
    let groups = conv::even_groups(&node.name, spec)?;
    let (ctx, name) = (l.ctx, node.name.as_str());
    let prog = &mut l.prog;
    let mut scratch = |label: &str, n: usize| Ok(Arg::planned(prog.buffer(label, n), n));
    conv::forward(ctx, name, (kernel, &s, act), &groups, args, &mut scratch)
}

/// `Conv2d` forward: the tiled kernel when its packed weights were prepared at load, else a
/// direct kernel chosen for the layer.
pub(super) fn forward_conv2d(
    l: &mut Lowering<'_>,
    i: NodeId,
    spec: &Conv2dSpec,
) -> Result<Vec<Call>> {
    let act = l.fused(i);
    if let Some(Prepared::Tiled(p)) = l.params.prepared(i) {
        let node = &l.graph.nodes[i];
        let (x, out) = (l.value(node.inputs[0])?, l.value(i)?);
        let s = shape(l, i, spec);
        return Ok(vec![conv_tiled::forward(
            l.ctx,
            &node.name,
            (&s, act),
            &x,
            p,
            &out,
        )?]);
    }
    let w = l.param(i, "weight")?;
    direct(l, i, spec, w, act)
}

/// `GroupedConvTable` forward (inference): always the tiled kernel, which reads index lists.
pub(super) fn forward_table(
    l: &mut Lowering<'_>,
    i: NodeId,
    t: &GroupedConvTable,
) -> Result<Vec<Call>> {
    let node = &l.graph.nodes[i];
    let Some(Prepared::Tiled(p)) = l.params.prepared(i) else {
        return Err(Error::shape(
            &node.name,
            "an exported group table runs at inference only (train the FLGC form)",
        ));
    };
    let (x, out) = (l.value(node.inputs[0])?, l.value(i)?);
    let s = shape(l, i, &t.spec);
    Ok(vec![conv_tiled::forward(
        l.ctx,
        &node.name,
        (&s, l.fused(i)),
        &x,
        p,
        &out,
    )?])
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
    calls.extend(direct(l, i, &s.dense(), masked, l.fused(i))?);
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
