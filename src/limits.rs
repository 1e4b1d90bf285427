//! Named caps on every size gconv reads from a file or a model description, checked before
//! anything is allocated; errors name the limit (`gconv::limits::NAME`) and its value.

/// Largest number of elements of one tensor (a per-sample activation or one parameter):
/// 2³⁰ f32 values, 4 GiB.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 30;

/// Largest total number of parameter values of a model: 2³⁰ f32 values, 4 GiB.
pub const MAX_TOTAL_PARAMS: usize = 1 << 30;

/// Largest number of nodes of a graph.
pub const MAX_NODES: usize = 100_000;

/// Largest spatial plane (`H·W`) of an activation.
pub const MAX_PLANE: usize = 1 << 28;
