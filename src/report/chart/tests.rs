//! Unit tests of the chart layout helpers.

use super::*;

#[test]
fn number_formats() {
    assert_eq!(fmt_number(100.0), "100");
    assert_eq!(fmt_number(0.25), "0.25");
    assert_eq!(fmt_number(0.1 + 0.2), "0.3");
    assert_eq!(fmt_number(-0.0), "0");
    assert_eq!(fmt_value(62.345), "62.3");
    assert_eq!(fmt_value(47.0), "47.0");
    assert_eq!(fmt_value(100.0), "100");
    assert_eq!(fmt_value(1.5), "1.50");
    assert_eq!(fmt_value(0.01234), "0.012");
    assert_eq!(fmt_value(0.0), "0");
    assert_eq!(fmt_value(-0.0001), "0.000");
}

#[test]
fn y_range_has_zero_and_headroom() {
    let s = |v: Vec<f64>| {
        vec![Series {
            name: "s".into(),
            values: v,
        }]
    };
    assert_eq!(y_range(&s(vec![50.0, 100.0, f64::NAN]), 0.1), (0.0, 110.0));
    assert_eq!(y_range(&s(vec![0.0]), 0.1), (0.0, 1.0));
    let (lo, hi) = y_range(&s(vec![-10.0, 10.0]), 0.1);
    assert!(lo < -10.0 && hi > 10.0);
}
