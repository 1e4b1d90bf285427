//! A lowered forward pass or training step: the kernel [`Call`]s in order and the buffers the
//! lifetime planner places. Each planned buffer lives from the first call that uses it to the
//! last (inputs and outputs written or read by the host are pinned for the whole program);
//! [`BufferPlan`] then lets buffers that are never alive together share a slot.
//! [`Program::instantiate`] allocates the slots and binds every call once.

use super::context::GpuContext;
use super::declare::is_activation_type;
use super::launch::{BufId, Call, Dispatch};
use crate::error::{Error, Result};
use crate::graph::NodeId;
use crate::plan::{BufferPlan, ValueLife};
use serde::{Deserialize, Serialize};

/// A buffer of a program, placed by the planner.
#[derive(Clone, Debug)]
struct PlannedBuffer {
    label: String,
    elems: usize,
    pinned: bool,
    /// Holds halves: bound to an `act_t` binding of a half-activation twin.
    half: bool,
}

/// The calls of one pass or step and the buffers they use.
#[derive(Debug, Default)]
pub struct Program {
    calls: Vec<Call>,
    call_node: Vec<NodeId>,
    buffers: Vec<PlannedBuffer>,
}

/// Planned memory of a program against one buffer per value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryPlan {
    /// Planned buffers (activations, gradients, scratch).
    pub values: usize,
    /// Slots actually allocated.
    pub slots: usize,
    /// Sum of the slot sizes, bytes.
    pub planned_bytes: u64,
    /// Sum of all planned buffers (one allocation each), bytes.
    pub naive_bytes: u64,
    /// The largest single buffer, bytes.
    pub largest_bytes: u64,
}

impl Program {
    /// A new planned buffer of `elems` 4-byte values.
    pub fn buffer(&mut self, label: impl Into<String>, elems: usize) -> BufId {
        self.buffers.push(PlannedBuffer {
            label: label.into(),
            elems: elems.max(1),
            pinned: false,
            half: false,
        });
        BufId(self.buffers.len() - 1)
    }

    /// Runs every call on its shader's half-activation twin ([`super::twin::halve`]): the
    /// activations between calls are stored as f16, and every planned buffer a call binds
    /// as `act_t` is allocated and bound at 2 bytes a value. An error, the program
    /// unchanged, when a call's kernel reads f32 activations only
    /// ([`Program::first_f32_only_call`]) — a model's activations are all f16 or all f32,
    /// never converted between kernels.
    pub fn halve_activations(&mut self) -> Result<()> {
        if let Some(label) = self.first_f32_only_call() {
            return Err(Error::InvalidArgument(format!(
                "{label}: its kernel reads f32 activations only; the pass cannot store halves"
            )));
        }
        for c in &mut self.calls {
            for (arg, ty) in c.args.iter().zip(&c.shader.binding_types[1..]) {
                if let (Some(id), true) = (arg.planned_id(), is_activation_type(ty)) {
                    self.buffers[id.0].half = true;
                }
            }
            c.shader = super::twin::halve(c.shader)?;
        }
        Ok(())
    }

    /// Bytes of planned buffer `b`: 4 a value, 2 for halves (whole words).
    fn bytes(b: &PlannedBuffer) -> u64 {
        if b.half {
            (2 * b.elems as u64).next_multiple_of(4)
        } else {
            4 * b.elems as u64
        }
    }

    /// The first call whose kernel reads f32 activations only (has no half-activation twin).
    pub fn first_f32_only_call(&self) -> Option<&str> {
        self.calls
            .iter()
            .find(|c| !c.shader.stores_activations())
            .map(|c| c.label.as_str())
    }

    /// Keeps `id` alive for the whole program (the host writes it before or reads it after).
    pub fn pin(&mut self, id: BufId) {
        self.buffers[id.0].pinned = true;
    }

    /// Appends the calls of `node`.
    pub fn push(&mut self, node: NodeId, calls: Vec<Call>) {
        for c in calls {
            self.calls.push(c);
            self.call_node.push(node);
        }
    }

    /// Puts `call` of `node` before every other call (the conversion of the host's input,
    /// decided after the lowering).
    pub fn prepend(&mut self, node: NodeId, call: Call) {
        self.calls.insert(0, call);
        self.call_node.insert(0, node);
    }

    /// The calls so far.
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// Lifetimes of the planned buffers in call indices.
    fn lifetimes(&self) -> Vec<ValueLife> {
        let end = self.calls.len();
        let mut first = vec![usize::MAX; self.buffers.len()];
        let mut last = vec![0usize; self.buffers.len()];
        for (k, c) in self.calls.iter().enumerate() {
            for id in c.planned() {
                first[id.0] = first[id.0].min(k);
                last[id.0] = last[id.0].max(k);
            }
        }
        self.buffers
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (def, last_use) = if b.pinned {
                    (0, end)
                } else if first[i] == usize::MAX {
                    (0, 0)
                } else {
                    (first[i], last[i])
                };
                ValueLife {
                    bytes: Self::bytes(b),
                    def,
                    last_use,
                }
            })
            .collect()
    }

    /// The memory plan without allocating anything.
    pub fn memory_plan(&self) -> MemoryPlan {
        let lives = self.lifetimes();
        let plan = BufferPlan::new(&lives);
        MemoryPlan {
            values: lives.len(),
            slots: plan.slot_bytes.len(),
            planned_bytes: plan.peak_bytes(),
            naive_bytes: BufferPlan::naive_bytes(&lives),
            largest_bytes: lives.iter().map(|l| l.bytes).max().unwrap_or(0),
        }
    }

    /// Allocates the slots (checked against the adapter's binding size, errors naming the
    /// buffer) and binds every call.
    pub fn instantiate(self, ctx: &GpuContext) -> Result<Instance> {
        let lives = self.lifetimes();
        let plan = BufferPlan::new(&lives);
        // The largest buffer of each slot names it in an error.
        let mut slot_label = vec![String::new(); plan.slot_bytes.len()];
        for (i, &s) in plan.slot_of.iter().enumerate() {
            if lives[i].bytes == plan.slot_bytes[s] {
                slot_label[s].clone_from(&self.buffers[i].label);
            }
        }
        let slots: Vec<wgpu::Buffer> = plan
            .slot_bytes
            .iter()
            .zip(&slot_label)
            .map(|(&b, l)| ctx.storage_buffer(l, b))
            .collect::<Result<_>>()?;
        let resolve = |id: BufId| Ok((slots[plan.slot_of[id.0]].clone(), self.buffers[id.0].half));
        // Every pipeline at once, in parallel, before the calls bind them one by one.
        let keys: Vec<_> = self.calls.iter().map(Call::pipeline_key).collect();
        ctx.prepare_pipelines(&keys)?;
        let dispatches = self
            .calls
            .iter()
            .map(|c| c.bind_planned(ctx, &resolve))
            .collect::<Result<Vec<_>>>()?;
        let memory = MemoryPlan {
            values: lives.len(),
            slots: slots.len(),
            planned_bytes: plan.peak_bytes(),
            naive_bytes: BufferPlan::naive_bytes(&lives),
            largest_bytes: lives.iter().map(|l| l.bytes).max().unwrap_or(0),
        };
        Ok(Instance {
            slot_of: plan.slot_of,
            slots,
            dispatches,
            dispatch_node: self.call_node,
            memory,
        })
    }
}

/// A program with its buffers allocated and every call bound.
#[derive(Debug)]
pub struct Instance {
    slots: Vec<wgpu::Buffer>,
    slot_of: Vec<usize>,
    /// The bound calls, in order.
    pub dispatches: Vec<Dispatch>,
    /// The node each dispatch belongs to.
    pub dispatch_node: Vec<NodeId>,
    /// The memory plan it was allocated from.
    pub memory: MemoryPlan,
}

impl Instance {
    /// The buffer holding planned buffer `id` (its slot).
    pub fn buffer(&self, id: BufId) -> &wgpu::Buffer {
        &self.slots[self.slot_of[id.0]]
    }

    /// Records every dispatch into `pass`.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            d.record(pass);
        }
    }
}
