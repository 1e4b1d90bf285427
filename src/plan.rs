//! Lifetime-based buffer planning: activations whose lifetimes do not overlap share a slot.
//!
//! Each value lives over `[def, last_use]` (node indices, inclusive). Values are placed in
//! order of definition; a value takes the free slot that fits it best (smallest slot at least
//! as large; otherwise the largest free slot, grown). A slot becomes free after the last use
//! of its value, strictly: a node never writes its output into a slot one of its inputs
//! still occupies. Peak memory is the sum of the slot sizes.

use serde::Serialize;

/// One value to place: its size and lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueLife {
    /// Bytes needed.
    pub bytes: u64,
    /// Node index that produces the value.
    pub def: usize,
    /// Last node index that reads it (≥ `def`).
    pub last_use: usize,
}

/// Where every value goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BufferPlan {
    /// Slot of each value (same order as the input).
    pub slot_of: Vec<usize>,
    /// Size of each slot in bytes.
    pub slot_bytes: Vec<u64>,
}

impl BufferPlan {
    /// Plans slots for `values`.
    pub fn new(values: &[ValueLife]) -> Self {
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by_key(|&i| (values[i].def, i));
        let mut slot_bytes: Vec<u64> = Vec::new();
        let mut busy_until: Vec<Option<usize>> = Vec::new(); // last_use of the occupant
        let mut slot_of = vec![usize::MAX; values.len()];
        for &i in &order {
            let v = values[i];
            // Free slots: occupant's last use strictly before this definition.
            let free: Vec<usize> = (0..slot_bytes.len())
                .filter(|&s| busy_until[s].is_none_or(|u| u < v.def))
                .collect();
            let fit = free
                .iter()
                .copied()
                .filter(|&s| slot_bytes[s] >= v.bytes)
                .min_by_key(|&s| slot_bytes[s]);
            let s = match fit {
                Some(s) => s,
                None => match free.iter().copied().max_by_key(|&s| slot_bytes[s]) {
                    Some(s) => {
                        slot_bytes[s] = v.bytes;
                        s
                    }
                    None => {
                        slot_bytes.push(v.bytes);
                        busy_until.push(None);
                        slot_bytes.len() - 1
                    }
                },
            };
            busy_until[s] = Some(v.last_use);
            slot_of[i] = s;
        }
        Self {
            slot_of,
            slot_bytes,
        }
    }

    /// Planned peak: the sum of the slot sizes.
    pub fn peak_bytes(&self) -> u64 {
        self.slot_bytes.iter().sum()
    }

    /// What one buffer per value would take.
    pub fn naive_bytes(values: &[ValueLife]) -> u64 {
        values.iter().map(|v| v.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlaps(a: &ValueLife, b: &ValueLife) -> bool {
        a.def <= b.last_use && b.def <= a.last_use
    }

    #[test]
    fn a_chain_needs_two_slots() {
        let v: Vec<ValueLife> = (0..10)
            .map(|i| ValueLife {
                bytes: 100,
                def: i,
                last_use: i + 1,
            })
            .collect();
        let p = BufferPlan::new(&v);
        assert_eq!(p.slot_bytes.len(), 2);
        assert_eq!(p.peak_bytes(), 200);
    }

    #[test]
    fn overlapping_values_never_share_and_slots_are_large_enough() {
        // A residual-like pattern with varying sizes.
        let v = vec![
            ValueLife {
                bytes: 400,
                def: 0,
                last_use: 4,
            },
            ValueLife {
                bytes: 100,
                def: 1,
                last_use: 2,
            },
            ValueLife {
                bytes: 300,
                def: 2,
                last_use: 3,
            },
            ValueLife {
                bytes: 50,
                def: 3,
                last_use: 4,
            },
            ValueLife {
                bytes: 500,
                def: 4,
                last_use: 5,
            },
            ValueLife {
                bytes: 10,
                def: 5,
                last_use: 6,
            },
        ];
        let p = BufferPlan::new(&v);
        for i in 0..v.len() {
            assert!(p.slot_bytes[p.slot_of[i]] >= v[i].bytes);
            for j in 0..i {
                if overlaps(&v[i], &v[j]) {
                    assert_ne!(p.slot_of[i], p.slot_of[j], "values {i} and {j} overlap");
                }
            }
        }
        assert!(p.peak_bytes() < BufferPlan::naive_bytes(&v));
    }
}

/// How a graph's node outputs map onto stored values on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    /// The node whose stored value holds each node's output: itself, or — for views
    /// (`flatten`; `dropout` at inference) and fused activations — the producer's.
    pub value_of: Vec<crate::graph::NodeId>,
    /// The activation each node's epilogue applies (a consumer activation fused into it).
    pub fused: Vec<crate::ops::Activation>,
}

impl Analysis {
    /// Views and activation fusion for inference: an activation (any of the table in
    /// `ops::activation`) whose producer (conv, BN, add, linear) has no other consumer and is
    /// not the output is fused into the producer's epilogue.
    pub fn new(graph: &crate::graph::Graph) -> Self {
        Self::for_pass(graph, false)
    }

    /// As [`Analysis::new`]; in `training`, dropout is a real op (a mask), not a view, and
    /// only activations whose derivative comes from their output
    /// ([`Activation::grad_from_output`](crate::ops::Activation::grad_from_output)) are fused:
    /// a fused activation keeps only its output (GELU, SiLU and hard swish run unfused).
    pub fn for_pass(graph: &crate::graph::Graph, training: bool) -> Self {
        use crate::graph::Op;
        use crate::ops::Activation;
        let n = graph.nodes.len();
        let mut consumers = vec![0usize; n];
        for node in &graph.nodes {
            for &p in &node.inputs {
                consumers[p] += 1;
            }
        }
        let mut value_of: Vec<usize> = (0..n).collect();
        let mut fused = vec![Activation::None; n];
        for i in 1..n {
            let node = &graph.nodes[i];
            match &node.op {
                Op::Flatten(_) => value_of[i] = value_of[node.inputs[0]],
                Op::Dropout(_) if !training => value_of[i] = value_of[node.inputs[0]],
                op => {
                    let Some(act) = op.activation() else { continue };
                    if training && !act.grad_from_output() {
                        continue;
                    }
                    let p = node.inputs[0];
                    let fusable = matches!(
                        graph.nodes[p].op,
                        Op::Conv2d(_)
                            | Op::GroupedConvTable(_)
                            | Op::FlgcConv2d(_)
                            | Op::BatchNorm(_)
                            | Op::Add(_)
                            | Op::Linear(_)
                    ) && consumers[p] == 1
                        && p != graph.output
                        && value_of[p] == p
                        && fused[p] == Activation::None;
                    if fusable {
                        fused[p] = act;
                        value_of[i] = p;
                    }
                }
            }
        }
        Self { value_of, fused }
    }

    /// The stored values (nodes that own a buffer), in graph order.
    pub fn values(&self) -> Vec<crate::graph::NodeId> {
        (0..self.value_of.len())
            .filter(|&i| self.value_of[i] == i)
            .collect()
    }

    /// Lifetimes of the stored values at `batch` (f32 elements), in [`Analysis::values`] order.
    pub fn lifetimes(&self, graph: &crate::graph::Graph, batch: usize) -> Vec<ValueLife> {
        let n = graph.nodes.len();
        let mut last_use: Vec<usize> = (0..n).collect();
        for (i, node) in graph.nodes.iter().enumerate() {
            for &p in &node.inputs {
                let v = self.value_of[p];
                last_use[v] = last_use[v].max(i);
            }
        }
        last_use[self.value_of[graph.output]] = n;
        self.values()
            .into_iter()
            .map(|v| ValueLife {
                bytes: (4 * batch * graph.nodes[v].shape.iter().product::<usize>()).max(4) as u64,
                def: v,
                last_use: last_use[v],
            })
            .collect()
    }
}

/// How much activation memory the plan takes, against one buffer per activation.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PlanReport {
    /// Batch size the plan is for.
    pub batch: usize,
    /// Planned buffers (activations after aliasing and fusion, and kernel scratch).
    pub values: usize,
    /// Buffers (slots) actually allocated.
    pub slots: usize,
    /// Sum of the slot sizes, bytes.
    pub planned_bytes: u64,
    /// Sum of all planned buffers (one allocation each), bytes.
    pub naive_bytes: u64,
    /// The largest single buffer, bytes.
    pub largest_bytes: u64,
    /// Bytes of weights resident on the GPU.
    pub weight_bytes: u64,
    /// Dispatches per forward pass.
    pub dispatches: usize,
}
