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
    /// Single ops with f16 weights (`Precision::F16`: each weight rounded to 11 significant
    /// bits, relative error ≤ 2⁻¹¹, f32 arithmetic) against the f32 CPU reference:
    /// atol 3e-3 + rtol 3e-3.
    pub const F16_OP: Tolerance = Tolerance {
        atol: 3e-3,
        rtol: 3e-3,
    };
    /// Whole models with f16 weights against the f32 CPU reference: atol 3e-2 + rtol 5e-2.
    pub const F16_MODEL: Tolerance = Tolerance {
        atol: 3e-2,
        rtol: 5e-2,
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
///
/// NaN is data: an element matches only if both values are finite and within `tol`, or
/// both are the same infinity. NaN against anything (NaN included), and a non-finite value
/// against a finite one or the other infinity, is a mismatch (counted as an absolute and
/// relative error of infinity). A NaN tolerance matches nothing.
pub fn compare(actual: &[f32], expected: &[f32], tol: Tolerance) -> Comparison {
    let mut c = Comparison {
        max_abs: 0.0,
        max_rel: 0.0,
        first_mismatch: None,
        mismatches: 0,
    };
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let (abs, rel, ok) = if a.is_finite() && e.is_finite() {
            // May still overflow to infinity (f32::MAX vs -f32::MAX): then not ok.
            let d = (a - e).abs();
            let ok = d <= tol.atol + tol.rtol * e.abs();
            (d, d / e.abs().max(1e-12), ok)
        } else if a == e {
            // The same infinity (NaN is never equal to anything).
            (0.0, 0.0, true)
        } else {
            (f32::INFINITY, f32::INFINITY, false)
        };
        c.max_abs = c.max_abs.max(abs);
        c.max_rel = c.max_rel.max(rel);
        if !ok {
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

#[cfg(test)]
mod tests {
    use super::*;

    const T: Tolerance = Tolerance::F32_OP;
    const NAN: f32 = f32::NAN;
    const INF: f32 = f32::INFINITY;

    #[test]
    fn nan_is_a_mismatch_whatever_the_other_side() {
        for (a, e) in [
            (NAN, NAN),
            (NAN, 1.0),
            (1.0, NAN),
            (INF, 1.0),
            (1.0, INF),
            (INF, -INF),
            (NAN, INF),
            (-INF, 0.0),
            (f32::MAX, -f32::MAX),
        ] {
            let c = compare(&[0.5, a, e], &[0.5, e, e], T);
            // Index 1 compares a with e, index 2 e with e.
            let e_self_ok = e.is_finite() || e == INF || e == -INF;
            let want = 1 + usize::from(!e_self_ok);
            assert_eq!(c.mismatches, want, "{a} vs {e}: {c:?}");
            let (i, got_a, got_e) = c.first_mismatch.unwrap();
            assert_eq!(i, 1, "{a} vs {e}");
            assert!(got_a.to_bits() == a.to_bits() && got_e.to_bits() == e.to_bits());
            assert_eq!(c.max_abs, INF);
            let m = check_close("t", &[a], &[e], T).unwrap_err();
            assert!(m.contains("first at index 0"), "{m}");
        }
    }

    #[test]
    fn equal_infinities_and_close_values_match() {
        let c = compare(&[INF, -INF, 1.0 + 1e-5], &[INF, -INF, 1.0], T);
        assert_eq!(c.mismatches, 0, "{c:?}");
        assert!(c.max_abs > 0.0 && c.max_abs < 2e-5, "{c:?}");
        assert!(check_close("t", &[1.0, 2.0], &[1.0, 2.01], T).is_err());
        assert!(check_close("t", &[1.0], &[1.0, 2.0], T).is_err());
    }

    #[test]
    fn a_nan_tolerance_matches_nothing() {
        let tol = Tolerance {
            atol: NAN,
            rtol: 0.0,
        };
        assert_eq!(compare(&[1.0], &[1.0], tol).mismatches, 1);
    }

    #[test]
    #[should_panic(expected = "first at index 1: got NaN, expected NaN")]
    fn assert_close_panics_on_nan_vs_nan() {
        assert_close("t", &[0.0, NAN], &[0.0, NAN], T);
    }
}
