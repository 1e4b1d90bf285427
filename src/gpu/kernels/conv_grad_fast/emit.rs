//! What the generators of `shaders/conv_grad_fast.wgsl` (`codegen`, `codegen_dw`) share:
//! the line writer and the vector component names.

/// The components of a `vec4`, by index.
pub(super) const C: [char; 4] = ['x', 'y', 'z', 'w'];

/// Appends one formatted line to the generated text.
macro_rules! w {
    ($s:expr, $($arg:tt)*) => { let _ = writeln!($s, $($arg)*); };
}
pub(super) use w;
