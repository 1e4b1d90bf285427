//! Constant folding: the ops of the shape sub-graphs `torch.onnx.export` emits (`Shape →
//! Gather → Unsqueeze → Concat → Reshape`, `Slice` bounds computed with `Add`/`Div`/`Mul`),
//! evaluated at import time on constants whose integers may be the symbolic batch size.

use super::values::{attr, attr_i, attr_ints, decode_tensor, Const, Data, Int};

type R<T> = Result<T, String>;

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// `axis` (negative counts from the end) as an index below `rank`.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} out of range for rank {rank}"))
    }
}

/// Every multi-index of `dims`, row-major.
fn multi_indices(dims: &[usize]) -> impl Iterator<Item = Vec<usize>> + '_ {
    let n: usize = dims.iter().product();
    (0..n).map(move |mut f| {
        let mut idx = vec![0; dims.len()];
        for i in (0..dims.len()).rev() {
            idx[i] = f % dims[i];
            f /= dims[i];
        }
        idx
    })
}

fn input<'a>(ins: &[Option<&'a Const>], i: usize, what: &str) -> R<&'a Const> {
    ins.get(i)
        .copied()
        .flatten()
        .ok_or_else(|| format!("missing input {i} ({what})"))
}

fn ints_of(c: Option<&Const>) -> R<Option<Vec<i64>>> {
    c.map(|c| c.known_ints()).transpose()
}

/// Evaluates `n` on constant inputs (`None` for an omitted optional input).
pub(crate) fn eval(
    n: &super::proto::NodeProto,
    ins: &[Option<&Const>],
    opset: i64,
) -> R<Vec<Const>> {
    let x = || input(ins, 0, "data");
    let out = match n.op_type() {
        "Constant" => constant(n)?,
        "Identity" => x()?.clone(),
        "Cast" => cast(x()?, attr_i(n, "to", 1)),
        "Gather" => {
            let idx = input(ins, 1, "indices")?;
            gather(x()?, idx, attr_i(n, "axis", 0))?
        }
        "Unsqueeze" => {
            let axes = if opset >= 13 {
                ints_of(ins.get(1).copied().flatten())?
            } else {
                attr_ints(n, "axes")
            };
            unsqueeze(x()?, &axes.ok_or("Unsqueeze without axes")?)?
        }
        "Squeeze" => {
            let axes = if opset >= 13 {
                ints_of(ins.get(1).copied().flatten())?
            } else {
                attr_ints(n, "axes")
            };
            squeeze(x()?, axes.as_deref())?
        }
        "Concat" => {
            let parts: Vec<&Const> = ins.iter().flatten().copied().collect();
            concat(&parts, attr_i(n, "axis", 0))?
        }
        "Add" | "Sub" | "Mul" | "Div" => {
            binary(n.op_type(), x()?, input(ins, 1, "second operand")?)?
        }
        "Slice" => slice(
            x()?,
            &input(ins, 1, "starts")?.known_ints()?,
            &input(ins, 2, "ends")?.known_ints()?,
            ints_of(ins.get(3).copied().flatten())?,
            ints_of(ins.get(4).copied().flatten())?,
        )?,
        "Reshape" => {
            let shape = input(ins, 1, "shape")?.known_ints()?;
            reshape(x()?, &shape, attr_i(n, "allowzero", 0) != 0)?
        }
        "ConstantOfShape" => {
            let dims = x()?
                .known_ints()?
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| format!("dimension {d}")))
                .collect::<R<Vec<_>>>()?;
            let value = match attr(n, "value").and_then(|a| a.t.as_ref()) {
                Some(t) => decode_tensor(t)?,
                None => Const::new(vec![1], Data::F32(vec![0.0])),
            };
            if value.data.len() != 1 {
                return Err("ConstantOfShape value must hold one element".into());
            }
            check_len(&dims)?;
            let len: usize = dims.iter().product();
            Const::new(dims, value.data.pick(&vec![0; len]))
        }
        "Transpose" => {
            let c = x()?;
            let perm = attr_ints(n, "perm")
                .unwrap_or_else(|| (0..c.dims.len() as i64).rev().collect::<Vec<_>>());
            transpose(c, &perm)?
        }
        other => return Err(format!("{other} cannot be evaluated at import time")),
    };
    Ok(vec![out])
}

fn constant(n: &super::proto::NodeProto) -> R<Const> {
    let a = n.attribute.first().ok_or("Constant without a value")?;
    Ok(match a.name() {
        "value" => decode_tensor(a.t.as_ref().ok_or("Constant value is not a tensor")?)?,
        "value_float" => Const::new(vec![], Data::F32(vec![a.f.unwrap_or(0.0)])),
        "value_floats" => Const::new(vec![a.floats.len()], Data::F32(a.floats.clone())),
        "value_int" => Const::new(vec![], Data::Int(vec![Int::K(a.i.unwrap_or(0))])),
        "value_ints" => Const::ints(a.ints.iter().map(|&i| Int::K(i)).collect()),
        other => return Err(format!("Constant with a `{other}` value")),
    })
}

fn cast(c: &Const, to: i64) -> Const {
    // FLOAT, FLOAT16, DOUBLE, BFLOAT16 become f32; every other type an integer.
    let to_float = matches!(to, 1 | 10 | 11 | 16);
    let data = match (&c.data, to_float) {
        (Data::F32(v), false) => Data::Int(v.iter().map(|&f| Int::K(f as i64)).collect()),
        (Data::Int(v), true) => match c.known_ints() {
            Ok(k) => Data::F32(k.iter().map(|&i| i as f32).collect()),
            Err(_) => Data::Int(v.clone()), // the batch size stays symbolic
        },
        (d, _) => d.clone(),
    };
    Const::new(c.dims.clone(), data)
}

fn gather(c: &Const, idx: &Const, axis: i64) -> R<Const> {
    let ax = norm_axis(axis, c.dims.len())?;
    let n = c.dims[ax] as i64;
    let idx_v = idx
        .known_ints()?
        .into_iter()
        .map(|i| {
            let j = if i < 0 { i + n } else { i };
            if (0..n).contains(&j) {
                Ok(j as usize)
            } else {
                Err(format!("gather index {i} out of range for {n}"))
            }
        })
        .collect::<R<Vec<_>>>()?;
    let mut dims = c.dims[..ax].to_vec();
    dims.extend(&idx.dims);
    dims.extend(&c.dims[ax + 1..]);
    check_len(&dims)?;
    let (outer, inner): (usize, usize) = (
        c.dims[..ax].iter().product(),
        c.dims[ax + 1..].iter().product(),
    );
    let mut pick = Vec::with_capacity(outer * idx_v.len() * inner);
    for o in 0..outer {
        for &i in &idx_v {
            pick.extend((0..inner).map(|k| (o * c.dims[ax] + i) * inner + k));
        }
    }
    Ok(Const::new(dims, c.data.pick(&pick)))
}

fn unsqueeze(c: &Const, axes: &[i64]) -> R<Const> {
    let rank = c.dims.len() + axes.len();
    let mut ax = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<R<Vec<_>>>()?;
    ax.sort_unstable();
    ax.dedup();
    if ax.len() != axes.len() {
        return Err(format!("unsqueeze axes {axes:?} repeat an axis"));
    }
    let mut dims = c.dims.clone();
    for a in ax {
        if a > dims.len() {
            return Err(format!("unsqueeze axes {axes:?} for rank {}", c.dims.len()));
        }
        dims.insert(a, 1);
    }
    Ok(Const::new(dims, c.data.clone()))
}

fn squeeze(c: &Const, axes: Option<&[i64]>) -> R<Const> {
    let drop: Vec<usize> = match axes {
        Some(a) => a
            .iter()
            .map(|&a| norm_axis(a, c.dims.len()))
            .collect::<R<_>>()?,
        None => (0..c.dims.len()).filter(|&i| c.dims[i] == 1).collect(),
    };
    if drop.iter().any(|&i| c.dims[i] != 1) {
        return Err(format!("squeeze of a non-1 axis of {:?}", c.dims));
    }
    let dims = (0..c.dims.len())
        .filter(|i| !drop.contains(i))
        .map(|i| c.dims[i])
        .collect();
    Ok(Const::new(dims, c.data.clone()))
}

fn concat(parts: &[&Const], axis: i64) -> R<Const> {
    let first = parts.first().ok_or("concat of nothing")?;
    let ax = norm_axis(axis, first.dims.len())?;
    let mut dims = first.dims.clone();
    dims[ax] = 0;
    for p in parts {
        if p.dims.len() != dims.len()
            || (0..dims.len()).any(|i| i != ax && p.dims[i] != first.dims[i])
        {
            return Err(format!("concat of {:?} and {:?}", first.dims, p.dims));
        }
        dims[ax] += p.dims[ax];
    }
    let outer: usize = first.dims[..ax].iter().product();
    let mut data = match &first.data {
        Data::F32(_) => Data::F32(vec![]),
        Data::Int(_) => Data::Int(vec![]),
    };
    for o in 0..outer {
        for p in parts {
            let chunk: usize = p.dims[ax..].iter().product();
            let piece = p
                .data
                .pick(&(o * chunk..(o + 1) * chunk).collect::<Vec<_>>());
            match (&mut data, piece) {
                (Data::F32(d), Data::F32(s)) => d.extend(s),
                (Data::Int(d), Data::Int(s)) => d.extend(s),
                _ => return Err("concat of integers and floats".into()),
            }
        }
    }
    Ok(Const::new(dims, data))
}

/// Numpy-style broadcast of two shapes.
fn broadcast(a: &[usize], b: &[usize]) -> R<Vec<usize>> {
    let r = a.len().max(b.len());
    let get = |s: &[usize], i: usize| {
        if i + s.len() >= r {
            s[i + s.len() - r]
        } else {
            1
        }
    };
    (0..r)
        .map(|i| match (get(a, i), get(b, i)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            (x, y) => Err(format!("cannot broadcast {a:?} with {b:?} ({x} vs {y})")),
        })
        .collect()
}

/// The flat index into `src` (broadcast into `out`) of each element of `out`.
fn broadcast_index(src: &[usize], out: &[usize]) -> Vec<usize> {
    let st = strides(src);
    let off = out.len() - src.len();
    multi_indices(out)
        .map(|m| {
            (0..src.len())
                .map(|i| if src[i] == 1 { 0 } else { m[i + off] * st[i] })
                .sum()
        })
        .collect()
}

/// Fails when `dims` hold more values than a tensor may.
fn check_len(dims: &[usize]) -> R<()> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= crate::limits::MAX_TENSOR_ELEMENTS.as_usize())
        .map(|_| ())
        .ok_or_else(|| format!("a constant of shape {dims:?} is too large"))
}

fn binary(op: &str, a: &Const, b: &Const) -> R<Const> {
    let dims = broadcast(&a.dims, &b.dims)?;
    check_len(&dims)?;
    let (ia, ib) = (
        broadcast_index(&a.dims, &dims),
        broadcast_index(&b.dims, &dims),
    );
    let data = match (&a.data, &b.data) {
        (Data::Int(x), Data::Int(y)) => Data::Int(
            ia.iter()
                .zip(&ib)
                .map(|(&i, &j)| int_op(op, x[i], y[j]))
                .collect::<R<_>>()?,
        ),
        _ => {
            let (x, y) = (a.floats()?, b.floats()?);
            Data::F32(
                ia.iter()
                    .zip(&ib)
                    .map(|(&i, &j)| match op {
                        "Add" => x[i] + y[j],
                        "Sub" => x[i] - y[j],
                        "Mul" => x[i] * y[j],
                        _ => x[i] / y[j],
                    })
                    .collect(),
            )
        }
    };
    Ok(Const::new(dims, data))
}

fn int_op(op: &str, x: Int, y: Int) -> R<Int> {
    use Int::{Batch, K};
    let overflow = || format!("integer overflow in {op}");
    Ok(match (op, x, y) {
        ("Add", K(a), K(b)) => K(a.checked_add(b).ok_or_else(overflow)?),
        ("Sub", K(a), K(b)) => K(a.checked_sub(b).ok_or_else(overflow)?),
        ("Mul", K(a), K(b)) => K(a.checked_mul(b).ok_or_else(overflow)?),
        ("Div", K(_), K(0)) => return Err("integer division by zero".into()),
        ("Div", K(a), K(b)) => K(a.checked_div(b).ok_or_else(overflow)?),
        ("Add" | "Sub", Batch, K(0)) | ("Mul" | "Div", Batch, K(1)) | ("Mul", K(1), Batch) => Batch,
        ("Add", K(0), Batch) => Batch,
        _ => {
            return Err(format!(
                "{op} of {x:?} and {y:?}: arithmetic on the batch size"
            ))
        }
    })
}

fn slice(
    c: &Const,
    starts: &[i64],
    ends: &[i64],
    axes: Option<Vec<i64>>,
    steps: Option<Vec<i64>>,
) -> R<Const> {
    let rank = c.dims.len();
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("slice starts, ends, axes and steps differ in length".into());
    }
    let mut sel: Vec<Vec<usize>> = c.dims.iter().map(|&d| (0..d).collect()).collect();
    for i in 0..starts.len() {
        let ax = norm_axis(axes[i], rank)?;
        sel[ax] = slice_range(c.dims[ax], starts[i], ends[i], steps[i])?;
    }
    let dims: Vec<usize> = sel.iter().map(Vec::len).collect();
    let st = strides(&c.dims);
    let pick: Vec<usize> = multi_indices(&dims)
        .map(|m| (0..rank).map(|i| sel[i][m[i]] * st[i]).sum())
        .collect();
    Ok(Const::new(dims, c.data.pick(&pick)))
}

/// The indices ONNX Slice takes along an axis of size `n` (clamped as the spec says).
pub(crate) fn slice_range(n: usize, start: i64, end: i64, step: i64) -> R<Vec<usize>> {
    let n = n as i64;
    if step == 0 {
        return Err("slice step 0".into());
    }
    let fix = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
    let (s, e) = (fix(start), fix(end));
    let mut out = Vec::new();
    if step > 0 {
        let (mut i, e) = (s.clamp(0, n), e.clamp(0, n));
        while i < e {
            out.push(i as usize);
            i = i.saturating_add(step);
        }
    } else {
        let (mut i, e) = (s.clamp(-1, n - 1), e.clamp(-1, n - 1));
        while i > e {
            out.push(i as usize);
            i = i.saturating_add(step);
        }
    }
    Ok(out)
}

/// ONNX Reshape's target dimensions: `0` copies the input's (unless `allowzero`), one `-1`
/// is inferred from `numel`.
pub(crate) fn reshape_dims(
    from: &[usize],
    shape: &[i64],
    numel: usize,
    allowzero: bool,
) -> R<Vec<usize>> {
    let mut infer = None;
    let mut dims = Vec::with_capacity(shape.len());
    for (i, &s) in shape.iter().enumerate() {
        dims.push(match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 if !allowzero => *from
                .get(i)
                .ok_or_else(|| format!("reshape copies dimension {i} the input lacks"))?,
            s if s >= 0 => s as usize,
            _ => return Err(format!("reshape to {shape:?}")),
        });
    }
    let known = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("reshape size overflows")?;
    if let Some(i) = infer {
        if known == 0 || numel % known != 0 {
            return Err(format!("cannot reshape {numel} values to {shape:?}"));
        }
        dims[i] = numel / known;
    } else if known != numel {
        return Err(format!("cannot reshape {from:?} to {shape:?}"));
    }
    Ok(dims)
}

fn reshape(c: &Const, shape: &[i64], allowzero: bool) -> R<Const> {
    let dims = reshape_dims(&c.dims, shape, c.data.len(), allowzero)?;
    Ok(Const::new(dims, c.data.clone()))
}

fn transpose(c: &Const, perm: &[i64]) -> R<Const> {
    let rank = c.dims.len();
    let p = perm
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<R<Vec<_>>>()?;
    let mut seen = vec![false; rank];
    if p.len() != rank || p.iter().any(|&a| std::mem::replace(&mut seen[a], true)) {
        return Err(format!("transpose perm {perm:?} for rank {rank}"));
    }
    let dims: Vec<usize> = p.iter().map(|&a| c.dims[a]).collect();
    let st = strides(&c.dims);
    let pick: Vec<usize> = multi_indices(&dims)
        .map(|m| (0..rank).map(|i| m[i] * st[p[i]]).sum())
        .collect();
    Ok(Const::new(dims, c.data.pick(&pick)))
}
