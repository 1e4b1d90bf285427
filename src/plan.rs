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
