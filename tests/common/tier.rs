//! Shared by the real-GPU tier's suites (`gpu_discrete_tier`, `gpu_f16`): inputs, the
//! one-layer graph, a fully connected one, `conv_igemm`'s tiles by index, an uneven
//! index-addressed table.

use gconv::gpu::choice::{self, ConvKernel};
use gconv::gpu::kernels::conv_igemm::TILES;
use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, GroupRange, Op};
use gconv::ops::GroupedConvTable;
use gconv::Tensor;

/// A deterministic input in [-1, 1).
pub fn input(shape: &[usize], seed: u32) -> Tensor {
    Tensor::from_fn(shape, |i| {
        (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2000) as f32 / 1000.0 - 1.0
    })
}

/// `op` at node "layer", then ReLU6 (fused into its epilogue).
pub fn graph(op: Op, chw: [usize; 3]) -> Graph {
    let mut b = GraphBuilder::new("tier", chw);
    let y = b.push("layer", op, &[b.input()]).unwrap();
    let y = b.push("relu6", Op::relu6(), &[y]).unwrap();
    b.finish(y)
}

/// `conv_igemm` with tile `tile` of [`TILES`].
pub fn igemm(tile: usize) -> ConvKernel {
    choice::conv_named(&format!("conv_igemm[{}]", TILES[tile].name)).unwrap()
}

/// 10 → 14 channels in 4 uneven groups (one without inputs, one without filters) behind
/// shuffled index lists.
pub fn uneven_table() -> GroupedConvTable {
    let r = |in_start, in_len, out_start, out_len| GroupRange {
        in_start,
        in_len,
        out_start,
        out_len,
    };
    GroupedConvTable {
        spec: Conv2dSpec::square(10, 14, 3, 1, 1).groups(4).bias(true),
        table: vec![r(0, 4, 0, 9), r(4, 0, 9, 2), r(4, 3, 11, 0), r(7, 3, 11, 3)],
        in_index: vec![7, 2, 9, 0, 4, 1, 8, 3, 6, 5],
        out_index: vec![12, 0, 5, 3, 9, 1, 11, 7, 2, 10, 4, 8, 6, 13],
    }
}

/// `[C, 1, 1]` → flatten → a fully connected layer "fc" (bias when `out` is odd) → ReLU.
pub fn fc_graph(inf: usize, outf: usize) -> Graph {
    use gconv::ops::{Flatten, Linear};
    let lin = Linear {
        in_features: inf,
        out_features: outf,
        bias: outf % 2 == 1,
    };
    let mut b = GraphBuilder::new("fc", [inf, 1, 1]);
    let f = b.push("flat", Op::Flatten(Flatten), &[b.input()]).unwrap();
    let y = b.push("fc", Op::Linear(lin), &[f]).unwrap();
    let y = b.push("relu", Op::relu(), &[y]).unwrap();
    b.finish(y)
}
