//! `gconv train`'s options checked against each other before any data loads: what a run
//! would ignore is refused, naming the flag.

use crate::common::ConvArg;
use crate::train::Args;
use gconv::{Error, Result};

/// Most epochs of one run (`--epochs`).
pub const MAX_EPOCHS: usize = 100_000;

/// G of the grouped convolutions: `--groups`, 4 by default, 1 for dense ones.
pub fn groups(a: &Args) -> usize {
    match a.conv {
        ConvArg::Dense => 1,
        _ => a.groups.unwrap_or(4),
    }
}

/// Refuses options this run would ignore: `--groups` (≠ 1) for dense convolutions,
/// `--input` and `--test-data` for Fashion-MNIST (fixed size, its own test split),
/// `--test-limit` without a test set.
pub fn check_options_apply(a: &Args) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidArgument(m));
    if a.conv == ConvArg::Dense && a.groups.is_some_and(|g| g != 1) {
        return bad("--groups applies to --conv sgc or flgc; --conv dense has G = 1".into());
    }
    if gconv::train::dataset::is_fashion_mnist(&a.data) {
        for (flag, given) in [
            ("--input", a.input.is_some()),
            ("--test-data", a.test_data.is_some()),
        ] {
            if given {
                return bad(format!(
                    "{flag} applies to an image folder; {} is Fashion-MNIST (1x28x28, with its \
                     own test split)",
                    a.data.display()
                ));
            }
        }
    } else if a.test_limit.is_some() && a.test_data.is_none() {
        return bad("--test-limit cuts the test set, and there is none: add --test-data".into());
    }
    Ok(())
}
