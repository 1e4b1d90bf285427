//! The CPU reference path: every op in plain Rust (NCHW, f32), written the obvious way.
//!
//! This is the specification the GPU path is tested against; it is itself checked against
//! PyTorch-made goldens (`tests/golden.rs`, made by `scripts/make_goldens.py`).
//! It never imports anything from the GPU side.

pub mod conv;
pub mod dense;
pub mod flgc;
pub mod norm;
pub mod pool;

mod executor;

pub use conv::{conv2d, grouped_conv_indexed, grouped_conv_table};
pub use dense::{add, gather_channels, linear, relu, softmax};
pub use executor::{run_graph, run_graph_timed, run_node};
pub use flgc::{flgc_conv2d, flgc_mask, masked_weight, row_argmax, row_softmax};
pub use norm::batch_norm;
pub use pool::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};
