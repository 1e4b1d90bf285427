//! Named tolerances and a comparison that reports the first mismatch, shared by the test
//! suites, the `--compare` mode of the CLI and the examples.

/// `|actual − expected| ≤ atol + rtol·|expected|`, element-wise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute part.
    pub atol: f32,
    /// Relative part.
    pub rtol: f32,
}

impl Tolerance {
    /// Single f32 ops (conv, pool, linear...): atol 1e-4 + rtol 5e-4.
    pub const F32_OP: Tolerance = Tolerance {
        atol: 1e-4,
        rtol: 5e-4,
    };
    /// Whole models in f32 (errors of dozens of layers add up; summation orders differ):
    /// atol 1e-3 + rtol 1e-2.
    pub const F32_MODEL: Tolerance = Tolerance {
        atol: 1e-3,
        rtol: 1e-2,
    };
    /// Against PyTorch goldens of single ops (different summation order, same f32 math).
    pub const GOLDEN_OP: Tolerance = Tolerance {
        atol: 1e-4,
        rtol: 5e-4,
    };
}

/// Summary of a comparison.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Comparison {
    /// Largest absolute difference.
    pub max_abs: f32,
    /// Largest relative difference (|a−e| / max(|e|, 1e-12)).
    pub max_rel: f32,
    /// First index outside the tolerance, with the two values.
    pub first_mismatch: Option<(usize, f32, f32)>,
    /// Number of elements outside the tolerance.
    pub mismatches: usize,
}

/// Compares two slices element-wise (length mismatch counts as a mismatch at the shorter length).
pub fn compare(actual: &[f32], expected: &[f32], tol: Tolerance) -> Comparison {
    let mut c = Comparison {
        max_abs: 0.0,
        max_rel: 0.0,
        first_mismatch: None,
        mismatches: 0,
    };
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let d = (a - e).abs();
        let d = if d.is_nan() || a.is_nan() != e.is_nan() {
            f32::INFINITY
        } else {
            d
        };
        c.max_abs = c.max_abs.max(d);
        c.max_rel = c.max_rel.max(d / e.abs().max(1e-12));
        if d.is_nan() || d > tol.atol + tol.rtol * e.abs() {
            c.mismatches += 1;
            c.first_mismatch.get_or_insert((i, a, e));
        }
    }
    if actual.len() != expected.len() {
        c.mismatches += 1;
        let i = actual.len().min(expected.len());
        c.first_mismatch.get_or_insert((i, f32::NAN, f32::NAN));
    }
    c
}

/// `Ok` when every element is within `tol`; otherwise a message naming `what`, the first
/// mismatching index and values, the count and the largest errors.
pub fn check_close(
    what: &str,
    actual: &[f32],
    expected: &[f32],
    tol: Tolerance,
) -> Result<(), String> {
    let c = compare(actual, expected, tol);
    match c.first_mismatch {
        None => Ok(()),
        Some((i, a, e)) => Err(format!(
            "{what}: {} of {} elements outside atol {} + rtol {} (lengths {} vs {}); first at index {i}: got {a}, expected {e}; max abs {:.3e}, max rel {:.3e}",
            c.mismatches,
            expected.len(),
            tol.atol,
            tol.rtol,
            actual.len(),
            expected.len(),
            c.max_abs,
            c.max_rel
        )),
    }
}

/// Panics with [`check_close`]'s message when the slices differ beyond `tol`.
#[track_caller]
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], tol: Tolerance) {
    if let Err(m) = check_close(what, actual, expected, tol) {
        panic!("{m}");
    }
}
