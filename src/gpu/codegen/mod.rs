//! Generated sources: the WGSL kernels whose register tiles are unrolled by a generator (so
//! that their accumulators live in registers on every compiler; lavapipe's LLVM spills
//! function-scope arrays indexed in loops) and the Rust table of `conv_fast`'s entry points.
//!
//! [`FILES`] lists every generated file with its generator. `tests/naga_validate.rs`
//! regenerates each one and compares it with the committed file;
//! `GCONV_BLESS=1 cargo test --test naga_validate` rewrites them after a change here.

pub mod conv_coop;
pub mod conv_fast;
pub mod conv_igemm;
pub mod conv_tiled;
pub mod gemv;
pub mod linear_coop;
pub mod roofline;

pub use conv_tiled::{conv_tiled, PX};

/// A generated file: its path from the crate root and the function that makes its text.
#[derive(Clone, Copy, Debug)]
pub struct Generated {
    /// Path relative to the crate root.
    pub path: &'static str,
    /// The generator.
    pub make: fn() -> String,
}

/// Every generated file of the crate.
pub const FILES: [Generated; 16] = [
    Generated {
        path: "shaders/conv_tiled.wgsl",
        make: conv_tiled::conv_tiled,
    },
    Generated {
        path: "shaders/conv_fast.wgsl",
        make: conv_fast::wgsl,
    },
    Generated {
        path: "src/gpu/kernels/conv_fast/entries.rs",
        make: conv_fast::entries_rs,
    },
    Generated {
        path: "shaders/conv_igemm.wgsl",
        make: conv_igemm::wgsl,
    },
    Generated {
        path: "shaders/conv_igemm_f16.wgsl",
        make: conv_igemm::wgsl_f16,
    },
    Generated {
        path: "shaders/conv_coop16.wgsl",
        make: || conv_coop::wgsl(16, conv_coop::Mma::Hardware),
    },
    Generated {
        path: "shaders/conv_coop16_soft.wgsl",
        make: || conv_coop::wgsl(16, conv_coop::Mma::Soft),
    },
    Generated {
        path: "shaders/conv_coop8.wgsl",
        make: || conv_coop::wgsl(8, conv_coop::Mma::Hardware),
    },
    Generated {
        path: "shaders/conv_coop8_soft.wgsl",
        make: || conv_coop::wgsl(8, conv_coop::Mma::Soft),
    },
    Generated {
        path: "shaders/linear_coop16.wgsl",
        make: || linear_coop::wgsl(16, conv_coop::Mma::Hardware),
    },
    Generated {
        path: "shaders/linear_coop16_soft.wgsl",
        make: || linear_coop::wgsl(16, conv_coop::Mma::Soft),
    },
    Generated {
        path: "shaders/linear_coop8.wgsl",
        make: || linear_coop::wgsl(8, conv_coop::Mma::Hardware),
    },
    Generated {
        path: "shaders/linear_coop8_soft.wgsl",
        make: || linear_coop::wgsl(8, conv_coop::Mma::Soft),
    },
    Generated {
        path: "shaders/gemv_wide_f16.wgsl",
        make: gemv_wide_f16,
    },
    Generated {
        path: "shaders/gemv.wgsl",
        make: gemv::wgsl,
    },
    Generated {
        path: "shaders/roofline.wgsl",
        make: roofline::wgsl,
    },
];

/// Appends `line` and a newline to `s` (the generators' one output primitive).
pub(crate) fn line(s: &mut String, line: impl AsRef<str>) {
    s.push_str(line.as_ref());
    s.push('\n');
}

/// The f32 weight accessor of `shaders/gemv_wide.wgsl`, and its f16 form.
const W4_F32: &str = "fn w4(i: u32) -> vec4<f32> { return w[i]; }\n";
const W4_F16: &str =
    "fn w4(i: u32) -> vec4<f32> { let h = w[i]; return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y)); }\n";

/// The text of `shaders/gemv_wide_f16.wgsl`: `shaders/gemv_wide.wgsl` with `w` holding 4
/// halves per `vec2<u32>` (unpacked to f32 as they are loaded; f32 arithmetic).
pub fn gemv_wide_f16() -> String {
    let f32_text = include_str!("../../../shaders/gemv_wide.wgsl");
    assert!(
        f32_text.contains(W4_F32),
        "gemv_wide.wgsl keeps its one-line w4"
    );
    let head =
        "// GENERATED from shaders/gemv_wide.wgsl by src/gpu/codegen/mod.rs (gemv_wide_f16): \
                edit those, not this file.\n// The f16-weight twin: `w` holds 4 halves per \
                vec2<u32>.\n";
    format!("{head}{}", f32_text.replacen(W4_F32, W4_F16, 1))
}
