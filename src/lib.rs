//! gconv
pub mod bench;
pub mod cpu;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod io;
pub mod plan;
pub mod report;
pub mod runtime;
pub mod tensor;
pub mod testing;
pub mod train;
pub mod weights;
pub mod zoo;

pub use error::{Error, Result};
pub use runtime::{Device, FlgcMode, LoadOptions, Model, Runtime};
pub use tensor::Tensor;
pub use weights::Weights;
