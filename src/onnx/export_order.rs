//! Channel orders for the ONNX export: where an exported FLGC layer's channel permutations go.
//!
//! Inside gconv a grouped conv reads and writes channels through index lists, so no tensor
//! is ever permuted. A standard ONNX `Conv` reads contiguous channel blocks. The exporter
//! therefore lets every `[C, H, W]` value of the graph be stored in ONNX in some *order* of
//! its channels (ONNX channel `p` holds gconv channel `order[p]`) and folds that order into
//! the weights around it: a dense conv or a linear layer reads any order by permuting its
//! weight's input axis, a conv writes any order by re-ordering its filters, batch norms,
//! activations, pools and residual adds carry the order through (their parameters
//! permuted). What cannot absorb an order costs one `Gather` (a channel copy).
//!
//! Values joined by order-carrying ops form a *class* that shares one order. For each class
//! [`plan`] tries the identity and the orders the class's grouped convs would like (each
//! uneven group's channels contiguous, so that it reads a slice) and keeps the one that needs
//! the fewest copies. The emitter ([`super::export`]) is correct for any order; the plan only
//! makes it cheap.

use crate::graph::{Graph, NodeId, Op};

/// A value's channel order: ONNX channel `p` holds gconv channel `order[p]`; `None` is the
/// identity.
pub(super) type Order = Option<Vec<usize>>;

/// Whether `op` carries its (3-D) input's channel order to its output unchanged: element-wise
/// ops, batch norm, pools, residual adds and products, depthwise convs (one channel a group).
pub(super) fn carries_order(op: &Op) -> bool {
    match op {
        Op::Conv2d(s) => s.groups > 1 && s.groups == s.in_channels && s.out_channels == s.groups,
        Op::BatchNorm(_)
        | Op::Activation(_)
        | Op::MaxPool(_)
        | Op::AvgPool(_)
        | Op::AdaptiveAvgPool(_)
        | Op::Add(_)
        | Op::Mul(_)
        | Op::Dropout(_) => true,
        Op::Input(_)
        | Op::FlgcConv2d(_)
        | Op::GroupedConvTable(_)
        | Op::Linear(_)
        | Op::Flatten(_)
        | Op::Softmax(_)
        | Op::Gather(_)
        | Op::Concat(_) => false,
    }
}

/// What a reader needs of the order of a class value it reads (or a writer can make).
enum Fit {
    /// Any order, at no cost.
    Any,
    /// The identity only.
    Identity,
    /// Each set of channels contiguous (a grouped conv's groups).
    Sets(Sets),
    /// Exactly this order.
    Exactly(Vec<usize>),
}

impl Fit {
    /// 0 when `order` suits, else 1 (one channel copy).
    fn cost(&self, order: &[usize]) -> usize {
        let ok = match self {
            Fit::Any => true,
            Fit::Identity => order.iter().enumerate().all(|(p, &c)| p == c),
            Fit::Sets(sets) => {
                let pos = inverse(order);
                sets.iter().all(|s| contiguous(&pos, s))
            }
            Fit::Exactly(o) => o == order,
        };
        usize::from(!ok)
    }

    /// The order this fit would like best, if it has a preference.
    fn preference(&self, c: usize) -> Option<Vec<usize>> {
        match self {
            Fit::Any | Fit::Identity => None,
            Fit::Exactly(o) => Some(o.clone()),
            Fit::Sets(sets) => {
                let mut seen = vec![false; c];
                let mut o = Vec::with_capacity(c);
                for &ch in sets.iter().flatten() {
                    if ch < c && !std::mem::replace(&mut seen[ch], true) {
                        o.push(ch);
                    }
                }
                o.extend((0..c).filter(|&ch| !seen[ch]));
                Some(o)
            }
        }
    }
}

/// `inv[order[p]] = p`.
pub(super) fn inverse(order: &[usize]) -> Vec<usize> {
    let mut inv = vec![usize::MAX; order.len()];
    for (p, &c) in order.iter().enumerate() {
        if c < inv.len() {
            inv[c] = p;
        }
    }
    inv
}

/// Whether the channels of `set` sit at consecutive positions (each once) under `pos`.
pub(super) fn contiguous(pos: &[usize], set: &[usize]) -> bool {
    let mut p: Vec<usize> = set
        .iter()
        .map(|&c| pos.get(c).copied().unwrap_or(usize::MAX))
        .collect();
    p.sort_unstable();
    p.windows(2).all(|w| w[1] == w[0] + 1) && p.first().is_some_and(|&s| s != usize::MAX)
}

/// Sets of channels, one per group.
type Sets = Vec<Vec<usize>>;

/// The channel groups of a convolution-like op's inputs (`ins`) and outputs (`outs`) that
/// have filters, or `None` for other ops.
fn conv_sets(op: &Op) -> Option<(Sets, Sets)> {
    match op {
        Op::Conv2d(s) => {
            let g = s.groups.max(1);
            let (a, b) = (s.in_channels / g, s.out_channels / g);
            let ins = (0..g).map(|k| (k * a..(k + 1) * a).collect()).collect();
            let outs = (0..g).map(|k| (k * b..(k + 1) * b).collect()).collect();
            Some((ins, outs))
        }
        Op::GroupedConvTable(t) => {
            let live = t.table.iter().filter(|r| r.out_len > 0);
            let ins = live
                .clone()
                .filter(|r| r.in_len > 0)
                .map(|r| t.in_index[r.in_start..r.in_start + r.in_len].to_vec())
                .collect();
            let outs = live
                .map(|r| t.out_index[r.out_start..r.out_start + r.out_len].to_vec())
                .collect();
            Some((ins, outs))
        }
        _ => None,
    }
}

/// What node `r` needs of the order of its input value (not in its own class).
fn reader_fit(g: &Graph, readers: &[Vec<NodeId>], r: NodeId) -> Fit {
    let op = &g.nodes[r].op;
    match op {
        Op::Conv2d(s) if s.groups <= 1 => Fit::Any,
        Op::Conv2d(_) | Op::GroupedConvTable(_) => {
            conv_sets(op).map_or(Fit::Identity, |(ins, _)| Fit::Sets(ins))
        }
        Op::Flatten(_) => {
            let all_linear = readers[r]
                .iter()
                .all(|&q| matches!(g.nodes[q].op, Op::Linear(_)));
            if all_linear && r != g.output {
                Fit::Any
            } else {
                Fit::Identity
            }
        }
        Op::FlgcConv2d(_) | Op::Gather(_) | Op::Concat(_) => Fit::Any,
        Op::Input(_)
        | Op::BatchNorm(_)
        | Op::Activation(_)
        | Op::MaxPool(_)
        | Op::AvgPool(_)
        | Op::AdaptiveAvgPool(_)
        | Op::Add(_)
        | Op::Mul(_)
        | Op::Dropout(_)
        | Op::Linear(_)
        | Op::Softmax(_) => Fit::Identity,
    }
}

/// What orders node `w` (not order-carrying) can write without a copy.
fn writer_fit(g: &Graph, orders: &[Order], w: NodeId) -> Fit {
    let op = &g.nodes[w].op;
    match op {
        Op::Conv2d(s) if s.groups <= 1 => Fit::Any,
        Op::Conv2d(_) | Op::GroupedConvTable(_) => {
            conv_sets(op).map_or(Fit::Identity, |(_, outs)| Fit::Sets(outs))
        }
        Op::Gather(_) | Op::FlgcConv2d(_) => Fit::Any,
        Op::Concat(cat) => {
            // ONNX stacks the inputs in their orders: position → (input, channel).
            let ins = &g.nodes[w].inputs;
            let mut stacked = Vec::new();
            for (k, &p) in ins.iter().enumerate() {
                let c = g.nodes[p].shape[0];
                let o = orders[p].clone().unwrap_or_else(|| (0..c).collect());
                stacked.extend(o.into_iter().map(|ch| [k, ch]));
            }
            let natural: Option<Vec<usize>> = stacked
                .iter()
                .map(|s| cat.sources.iter().position(|x| x == s))
                .collect();
            match natural {
                Some(n) if n.len() == cat.sources.len() => Fit::Exactly(n),
                _ => Fit::Identity,
            }
        }
        Op::Input(_)
        | Op::BatchNorm(_)
        | Op::Activation(_)
        | Op::MaxPool(_)
        | Op::AvgPool(_)
        | Op::AdaptiveAvgPool(_)
        | Op::Add(_)
        | Op::Mul(_)
        | Op::Dropout(_)
        | Op::Linear(_)
        | Op::Flatten(_)
        | Op::Softmax(_) => Fit::Identity,
    }
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// The channel order of every value of `g` (see the module docs). Flat values are in the
/// identity order except a flatten read only by linear layers, which keeps its input's
/// order (the linear layers permute their weights' columns).
pub(super) fn plan(g: &Graph) -> Vec<Order> {
    let n = g.nodes.len();
    let three_d = |i: NodeId| g.nodes[i].shape.len() == 3;
    let mut parent: Vec<usize> = (0..n).collect();
    let mut readers = vec![Vec::new(); n];
    for (i, node) in g.nodes.iter().enumerate() {
        for &p in &node.inputs {
            readers[p].push(i);
            if three_d(i) && three_d(p) && carries_order(&node.op) {
                let (a, b) = (find(&mut parent, i), find(&mut parent, p));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut classes: Vec<Vec<NodeId>> = vec![Vec::new(); n];
    for i in (0..n).filter(|&i| three_d(i)) {
        let r = find(&mut parent, i);
        classes[r].push(i);
    }
    let mut orders: Vec<Order> = vec![None; n];
    for members in classes.iter().filter(|m| !m.is_empty()) {
        let c = g.nodes[members[0]].shape[0];
        let inside = |q: NodeId| members.binary_search(&q).is_ok();
        let (mut reading, mut writing): (Vec<Fit>, Vec<Fit>) = (Vec::new(), Vec::new());
        for &m in members {
            let carried = m != 0 && carries_order(&g.nodes[m].op);
            if !carried {
                writing.push(writer_fit(g, &orders, m));
            }
            for &r in &readers[m] {
                if !(inside(r) && carries_order(&g.nodes[r].op)) {
                    reading.push(reader_fit(g, &readers, r));
                }
            }
            if m == g.output {
                reading.push(Fit::Identity);
            }
        }
        // On a tie a reader's wish wins: an unsatisfied writer costs one gather after it, an
        // unsatisfied uneven reader one gather per group instead of one split.
        let mut candidates: Vec<Vec<usize>> = vec![(0..c).collect()];
        candidates.extend(
            reading
                .iter()
                .chain(&writing)
                .filter_map(|f| f.preference(c)),
        );
        let fits: Vec<Fit> = reading.into_iter().chain(writing).collect();
        let best = candidates
            .into_iter()
            .filter(|o| o.len() == c)
            .map(|o| (fits.iter().map(|f| f.cost(&o)).sum::<usize>(), o))
            .min_by_key(|(cost, _)| *cost)
            .map(|(_, o)| o);
        if let Some(o) = best.filter(|o| o.iter().enumerate().any(|(p, &ch)| p != ch)) {
            for &m in members {
                orders[m] = Some(o.clone());
            }
        }
    }
    for i in 0..n {
        let node = &g.nodes[i];
        if let (Op::Flatten(_), Some(&p)) = (&node.op, node.inputs.first()) {
            if let (Fit::Any, Some(o), &[_, h, w]) = (
                reader_fit(g, &readers, i),
                &orders[p],
                &g.nodes[p].shape[..],
            ) {
                let hw = h * w;
                orders[i] = Some(o.iter().flat_map(|&ch| ch * hw..(ch + 1) * hw).collect());
            }
        }
    }
    orders
}
