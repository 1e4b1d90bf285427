//! The CPU reference path: runs a graph node by node with each op's CPU forward
//! ([`crate::ops`], written the obvious way, NCHW f32).
//!
//! This is the specification the GPU path is tested against; it is itself checked against
//! PyTorch-made goldens (`tests/golden/`, made by `scripts/make_goldens.py`).
//! It never imports anything from the GPU side. The op functions are re-exported here so that
//! the reference reads as one namespace (`cpu::conv2d`, `cpu::max_pool2d`, ...).

pub(crate) mod executor;

pub use crate::ops::{
    adaptive_avg_pool2d, add, avg_pool2d, batch_norm, conv2d, flgc_conv2d, flgc_mask,
    gather_channels, grouped_conv_indexed, grouped_conv_table, linear, masked_weight, max_pool2d,
    relu, relu6, row_argmax, row_softmax, softmax,
};
pub use executor::{run_graph, run_graph_timed, run_node};
