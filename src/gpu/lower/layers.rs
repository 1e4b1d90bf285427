//! GPU lowering of the other ops: batch norm, activations, pooling, linear, residual add,
//! dropout, softmax and gather (forward), and the backward of those that train.

use super::{Lowering, Prepared};
use crate::error::{Error, Result};
use crate::gpu::choice;
use crate::gpu::family::LinearRun;
use crate::gpu::geometry::LinearShape;
use crate::gpu::kernels::elementwise::{self, Elementwise};
use crate::gpu::kernels::gather::{self, GatherArgs};
use crate::gpu::kernels::linear_backward::{self, LinearGradArgs};
use crate::gpu::kernels::norm::{self, BnShape, NormArgs};
use crate::gpu::kernels::norm_train::{self, BnGradArgs, BnTrain, BnTrainArgs};
use crate::gpu::kernels::pool::{self, PoolKind, PoolShape};
use crate::gpu::kernels::softmax::{self, SoftmaxArgs};
use crate::gpu::kernels::{Arg, Call};
use crate::graph::{NodeId, Op};
use crate::ops::{Activation, BatchNorm, Linear};

fn input(l: &Lowering<'_>, i: NodeId, k: usize) -> NodeId {
    l.graph.nodes[i].inputs[k]
}

fn name<'g>(l: &Lowering<'g>, i: NodeId) -> &'g str {
    &l.graph.nodes[i].name
}

fn bn_shape(l: &Lowering<'_>, i: NodeId, b: &BatchNorm) -> BnShape {
    let [h, w] = l.hw(i);
    BnShape {
        batch: l.batch,
        channels: b.channels,
        hw: h * w,
    }
}

/// Batch norm: the folded affine map at inference, batch statistics (and the running update)
/// in training; the fused activation in both.
pub(super) fn forward_batch_norm(
    l: &mut Lowering<'_>,
    i: NodeId,
    b: &BatchNorm,
) -> Result<Vec<Call>> {
    let s = bn_shape(l, i, b);
    let (x, y, act) = (l.value(input(l, i, 0))?, l.value(i)?, l.fused(i));
    let Some(setup) = l.train else {
        let Some(Prepared::ScaleShift(ss)) = l.params.prepared(i) else {
            return Err(Error::shape(
                name(l, i),
                "batch norm parameters were not prepared",
            ));
        };
        let args = NormArgs {
            x,
            scale_shift: Arg::whole(ss),
            out: y,
        };
        return Ok(vec![norm::batch_norm(l.ctx, name(l, i), (&s, act), args)?]);
    };
    let h = BnTrain {
        eps: b.eps,
        momentum: setup.bn_momentum,
        act,
    };
    let args = BnTrainArgs {
        x,
        gamma: l.param(i, "weight")?,
        beta: l.param(i, "bias")?,
        y,
        stats: l.saved(i, "stats", 2 * b.channels),
        running_mean: l.param(i, "running_mean")?,
        running_var: l.param(i, "running_var")?,
    };
    norm_train::forward(l.ctx, name(l, i), (&s, h), args)
}

/// Batch norm backward (training statistics): `dγ`, `dβ`, and `dx` (into scratch when the
/// input needs no gradient).
pub(super) fn backward_batch_norm(l: &mut Lowering<'_>, i: NodeId, gy: &Arg) -> Result<Vec<Call>> {
    let Op::BatchNorm(b) = &l.graph.nodes[i].op else {
        unreachable!("called for batch norms")
    };
    let s = bn_shape(l, i, b);
    let x_node = input(l, i, 0);
    let (dx, acc) = match l.grad_target(x_node)? {
        Some(t) => t,
        None => (
            l.scratch(&format!("{} unused dx", name(l, i)), l.numel(x_node)?),
            false,
        ),
    };
    let args = BnGradArgs {
        x: l.value(x_node)?,
        gamma: l.param(i, "weight")?,
        stats: l.saved(i, "stats", 2 * b.channels),
        dy: gy.clone(),
        dx,
        dgamma: l.param_grad(i, "weight")?.swap_remove(0),
        dbeta: l.param_grad(i, "bias")?.swap_remove(0),
        scratch: l.scratch(&format!("{} scratch", name(l, i)), 1),
    };
    norm_train::backward(l.ctx, name(l, i), (&s, acc), args)
}

/// A standalone activation (one that could not be fused into its producer).
pub(super) fn forward_activation(
    l: &mut Lowering<'_>,
    i: NodeId,
    act: Activation,
) -> Result<Vec<Call>> {
    let (x, y) = (l.value(input(l, i, 0))?, l.value(i)?);
    let e = Elementwise::len(l.numel(i)?).act(act);
    Ok(vec![elementwise::activation(l.ctx, name(l, i), e, &x, &y)?])
}

/// Activation backward: from its output `y` where the derivative allows (a fused
/// activation's `y` is its producer's value; only those are fused in training), else from
/// its input.
pub(super) fn backward_activation(
    l: &mut Lowering<'_>,
    i: NodeId,
    act: Activation,
    gy: &Arg,
) -> Result<Vec<Call>> {
    let x_node = input(l, i, 0);
    let from_output = act.grad_from_output();
    if !from_output && !l.is_stored(i) {
        return Err(Error::shape(
            name(l, i),
            format!("{} was fused, but its backward needs its input", act.kind()),
        ));
    }
    let at = if from_output {
        l.value(i)?
    } else {
        l.value(x_node)?
    };
    let Some((dx, acc)) = l.grad_target(x_node)? else {
        return Ok(Vec::new());
    };
    let e = Elementwise::len(l.numel(i)?).act(act).accumulate(acc);
    let backward = if from_output {
        elementwise::activation_backward
    } else {
        elementwise::activation_backward_input
    };
    Ok(vec![backward(l.ctx, name(l, i), e, &at, gy, &dx)?])
}

fn pool_shape(l: &Lowering<'_>, i: NodeId) -> PoolShape {
    let x = input(l, i, 0);
    let kind = match &l.graph.nodes[i].op {
        Op::MaxPool(p) => PoolKind::Max(p.0),
        Op::AvgPool(p) => PoolKind::Avg(p.0),
        Op::AdaptiveAvgPool(p) => PoolKind::Adaptive(p.output),
        _ => unreachable!("called for pools"),
    };
    PoolShape {
        kind,
        batch: l.batch,
        channels: l.graph.nodes[x].shape[0],
        in_hw: l.hw(x),
    }
}

/// Max / average / adaptive average pooling.
pub(super) fn forward_pool(l: &mut Lowering<'_>, i: NodeId) -> Result<Vec<Call>> {
    let (x, y) = (l.value(input(l, i, 0))?, l.value(i)?);
    Ok(vec![pool::forward(
        l.ctx,
        name(l, i),
        &pool_shape(l, i),
        &x,
        &y,
    )?])
}

/// Pooling backward (max pooling reads the forward input).
pub(super) fn backward_pool(l: &mut Lowering<'_>, i: NodeId, gy: &Arg) -> Result<Vec<Call>> {
    let s = pool_shape(l, i);
    let x = match s.kind {
        PoolKind::Max(_) => Some(l.value(input(l, i, 0))?),
        _ => None,
    };
    let Some((dx, acc)) = l.grad_target(input(l, i, 0))? else {
        return Ok(Vec::new());
    };
    Ok(vec![pool::backward(
        l.ctx,
        name(l, i),
        &s,
        x.as_ref(),
        gy,
        &dx,
        acc,
    )?])
}

fn linear_shape(l: &Lowering<'_>, lin: &Linear) -> LinearShape {
    LinearShape {
        batch: l.batch,
        in_features: lin.in_features,
        out_features: lin.out_features,
    }
}

/// Fully connected layer over its weight's row chunks, activation fused, with the layer's
/// kernel (`gemv`'s split-K partial sums are planned scratch).
pub(super) fn forward_linear(l: &mut Lowering<'_>, i: NodeId, lin: &Linear) -> Result<Vec<Call>> {
    let (x, y) = (l.value(input(l, i, 0))?, l.value(i)?);
    let chunks = l.param_chunks(i, "weight")?;
    let bias = if lin.bias {
        Some(l.param(i, "bias")?)
    } else {
        None
    };
    let shape = linear_shape(l, lin);
    let half = l.param_is_half(i, "weight")?;
    let kernel = if half {
        choice::linear_forward_f16_for(l.ctx, name(l, i), &shape, &l.choice)?
    } else {
        choice::linear_forward_for(l.ctx, name(l, i), &shape, &l.choice)?
    };
    let graph = l.graph;
    let run = LinearRun {
        label: graph.nodes[i].name.as_str(),
        shape: &shape,
        x: &x,
        chunks: &chunks,
        bias: bias.as_ref(),
        out: &y,
        act: l.fused(i),
        weight_f16: half,
    };
    let (ctx, prog) = (l.ctx, &mut l.prog);
    let mut scratch = |label: &str, n: usize| Ok(Arg::planned(prog.buffer(label, n), n));
    kernel
        .family
        .forward(ctx, run, kernel.variant, &mut scratch)
}

/// Linear backward: `dW`, `db` and `dx` (into scratch when the input needs no gradient).
pub(super) fn backward_linear(
    l: &mut Lowering<'_>,
    i: NodeId,
    lin: &Linear,
    gy: &Arg,
) -> Result<Vec<Call>> {
    let x_node = input(l, i, 0);
    let x = l.value(x_node)?;
    let (dx, acc) = match l.grad_target(x_node)? {
        Some(t) => t,
        None => (
            l.scratch(&format!("{} unused dx", name(l, i)), l.numel(x_node)?),
            false,
        ),
    };
    let weight = l.param_chunks(i, "weight")?;
    let dw = l.param_grad(i, "weight")?;
    let db = if lin.bias {
        Some(l.param_grad(i, "bias")?.swap_remove(0))
    } else {
        None
    };
    let args = LinearGradArgs {
        x: &x,
        weight: &weight,
        dy: gy,
        dx: &dx,
        dw: &dw,
        db: db.as_ref(),
    };
    linear_backward::backward(l.ctx, name(l, i), (&linear_shape(l, lin), acc), args)
}

/// Residual add, activation fused.
pub(super) fn forward_add(l: &mut Lowering<'_>, i: NodeId) -> Result<Vec<Call>> {
    let (a, b) = (l.value(input(l, i, 0))?, l.value(input(l, i, 1))?);
    let e = Elementwise::len(l.numel(i)?).act(l.fused(i));
    Ok(vec![elementwise::add(
        l.ctx,
        name(l, i),
        e,
        [&a, &b],
        &l.value(i)?,
    )?])
}

/// Add backward: `dy` into both inputs' gradients (accumulating where another consumer wrote).
pub(super) fn backward_add(l: &mut Lowering<'_>, i: NodeId, gy: &Arg) -> Result<Vec<Call>> {
    let mut calls = Vec::new();
    for k in 0..2 {
        if let Some((dx, acc)) = l.grad_target(input(l, i, k))? {
            let e = Elementwise::len(l.numel(i)?).accumulate(acc);
            calls.push(elementwise::copy(l.ctx, name(l, i), e, gy, &dx)?);
        }
    }
    Ok(calls)
}

/// Training dropout: a hashed mask from the step's seed (kept for the backward), `y = x·mask`.
/// At inference dropout is a view and never lowered.
pub(super) fn forward_dropout(l: &mut Lowering<'_>, i: NodeId, p: f32) -> Result<Vec<Call>> {
    let setup = l.train_setup("dropout")?;
    let n = l.numel(i)?;
    let mask = l.saved(i, "mask", n);
    let (x, y) = (l.value(input(l, i, 0))?, l.value(i)?);
    elementwise::dropout(
        l.ctx,
        name(l, i),
        (n, p),
        &Arg::prefix(&setup.seed, 2),
        &x,
        [&mask, &y],
    )
}

/// Dropout backward: `dx (+)= dy·mask`.
pub(super) fn backward_dropout(l: &mut Lowering<'_>, i: NodeId, gy: &Arg) -> Result<Vec<Call>> {
    let n = l.numel(i)?;
    let mask = l.saved(i, "mask", n);
    let Some((dx, acc)) = l.grad_target(input(l, i, 0))? else {
        return Ok(Vec::new());
    };
    let e = Elementwise::len(n).accumulate(acc);
    Ok(vec![elementwise::mul(
        l.ctx,
        name(l, i),
        e,
        [gy, &mask],
        &dx,
    )?])
}

/// Softmax over the features.
pub(super) fn forward_softmax(l: &mut Lowering<'_>, i: NodeId) -> Result<Vec<Call>> {
    let x = input(l, i, 0);
    let features = l.graph.nodes[x].shape.iter().product();
    let args = SoftmaxArgs {
        x: l.value(x)?,
        out: l.value(i)?,
    };
    Ok(vec![softmax::softmax(
        l.ctx,
        name(l, i),
        [l.batch, features],
        args,
    )?])
}

/// Channel gather (inference; its indices were uploaded at load).
pub(super) fn forward_gather(
    l: &mut Lowering<'_>,
    i: NodeId,
    indices: &[usize],
) -> Result<Vec<Call>> {
    let x = input(l, i, 0);
    let Some(Prepared::Indices(idx)) = l.params.prepared(i) else {
        return Err(Error::shape(name(l, i), "a gather runs at inference only"));
    };
    let [h, w] = l.hw(x);
    let c_in = l.graph.nodes[x].shape[0];
    let args = GatherArgs {
        x: l.value(x)?,
        indices: Arg::whole(idx),
        out: l.value(i)?,
    };
    gather::gather(
        l.ctx,
        name(l, i),
        (l.batch, [c_in, indices.len()], h * w),
        args,
    )
    .map(|c| vec![c])
}

/// Channel concat: one copy per contributing input, each writing its output channels.
pub(super) fn forward_concat(l: &mut Lowering<'_>, i: NodeId) -> Result<Vec<Call>> {
    let Some(Prepared::ConcatPairs(per_input)) = l.params.prepared(i) else {
        return Err(Error::shape(name(l, i), "a concat runs at inference only"));
    };
    let out = l.value(i)?;
    let (c_out, [h, w]) = (l.graph.nodes[i].shape[0], l.hw(i));
    let mut calls = Vec::new();
    for (k, p) in per_input.iter().enumerate() {
        let Some((pairs, count)) = p else { continue };
        let x = input(l, i, k);
        let args = GatherArgs {
            x: l.value(x)?,
            indices: Arg::whole(pairs),
            out: out.clone(),
        };
        let c_in = l.graph.nodes[x].shape[0];
        let geo = (l.batch, [c_in, c_out], h * w, *count);
        calls.push(gather::gather_into(l.ctx, name(l, i), geo, args)?);
    }
    Ok(calls)
}

/// Element-wise product, or a `[C, H, W]` tensor times a `[C, 1, 1]` gate (either order).
pub(super) fn forward_mul(l: &mut Lowering<'_>, i: NodeId) -> Result<Vec<Call>> {
    let (a, b) = (input(l, i, 0), input(l, i, 1));
    let (sa, sb) = (&l.graph.nodes[a].shape, &l.graph.nodes[b].shape);
    let y = l.value(i)?;
    let n = l.numel(i)?;
    if sa == sb {
        let e = Elementwise::len(n);
        return Ok(vec![elementwise::mul(
            l.ctx,
            name(l, i),
            e,
            [&l.value(a)?, &l.value(b)?],
            &y,
        )?]);
    }
    let (x, gate) = if sb[1..] == [1, 1] { (a, b) } else { (b, a) };
    let [h, w] = l.hw(x);
    let args = [&l.value(x)?, &l.value(gate)?];
    Ok(vec![elementwise::mul_channel(
        l.ctx,
        name(l, i),
        (n, h * w),
        args,
        &y,
    )?])
}
