//! gconv
pub mod cpu;
pub mod error;
pub mod graph;
pub mod plan;
pub mod tensor;
pub mod testing;
pub mod train;
pub mod weights;
pub mod zoo;

pub use error::{Error, Result};
pub use tensor::Tensor;
pub use weights::Weights;
