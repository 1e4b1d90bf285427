//! What a bench configuration may ask for, checked before anything loads: run counts within
//! caps (a mistyped `--repeats 1000000` is an error, not a day of timing), batches within a
//! cap, every G at least 1, and no suite whose lists select nothing.

use super::{BenchConfig, LayerShape, Suite};
use crate::error::{Error, Result};
use crate::zoo::ModelSpec;

/// Most timed runs per measurement (`--repeats`).
pub const MAX_REPEATS: usize = 1000;
/// Most untimed warm-up runs per measurement (`--warmup`).
pub const MAX_WARMUP: usize = 100;
/// Largest batch (`--batch`, `--large-batch`); the input tensor is also checked against
/// [`crate::limits::MAX_TENSOR_ELEMENTS`] before it is made.
pub const MAX_BATCH: usize = 4096;

fn bad(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// Checks `value` of `flag` is within `min..=max`.
fn within(flag: &str, value: usize, min: usize, max: usize) -> Result<()> {
    if value < min || value > max {
        return Err(bad(format!(
            "{flag} {value}: expected {min} to {max} (gconv::bench caps it at {max})"
        )));
    }
    Ok(())
}

/// Checks a list that a selected suite reads: not empty, and every G at least 1.
fn list<T>(flag: &str, suite: Suite, v: &[T], zero: impl Fn(&T) -> bool) -> Result<()> {
    if v.is_empty() {
        return Err(bad(format!(
            "{flag} is empty: the {} suite would time nothing",
            suite_name(suite)
        )));
    }
    if v.iter().any(zero) {
        return Err(bad(format!("{flag}: every group count must be at least 1")));
    }
    Ok(())
}

fn suite_name(s: Suite) -> &'static str {
    match s {
        Suite::Paper1 => "paper1",
        Suite::Paper2 => "paper2",
        Suite::Mobilenet => "mobilenet",
        Suite::Sweep => "sweep",
        Suite::Models => "models",
        Suite::Roofline => "roofline",
    }
}

/// Every check of this module on `cfg`, naming the CLI flag of what is wrong.
pub(super) fn validate(cfg: &BenchConfig) -> Result<()> {
    within("--repeats", cfg.repeats, 1, MAX_REPEATS)?;
    within("--warmup", cfg.warmup, 0, MAX_WARMUP)?;
    within("--batch", cfg.batch, 1, MAX_BATCH)?;
    within("--large-batch", cfg.large_batch, 0, MAX_BATCH)?;
    if cfg.suites.is_empty() {
        return Err(bad("no suite selected: nothing to time".into()));
    }
    for &s in &cfg.suites {
        match s {
            // No scheme still times the baseline.
            Suite::Paper1 | Suite::Roofline => {}
            Suite::Paper2 | Suite::Mobilenet => list("--groups", s, &cfg.groups, |g| *g == 0)?,
            Suite::Sweep => {
                list("--layers", s, &cfg.sweep_layers, |_| false)?;
                list("--sweep-g", s, &cfg.sweep_groups, |g| *g == 0)?;
            }
            Suite::Models => {
                list("--model", s, &cfg.models, |_| false)?;
                if cfg.model_options.groups.contains(&0) {
                    return Err(bad("--groups: every group count must be at least 1".into()));
                }
            }
        }
    }
    Ok(())
}

/// Errors when no G of `groups` divides the channels of `layer` (the sweep would skip every
/// one of them and time nothing for it).
pub(super) fn sweep_divides(layer: &LayerShape, groups: &[usize]) -> Result<()> {
    if groups.iter().any(|&g| g > 0 && layer.channels % g == 0) {
        return Ok(());
    }
    Err(bad(format!(
        "sweep layer {}x{}:{}: none of the group counts {groups:?} divides its {} channels, \
         so nothing would be timed",
        layer.channels, layer.size, layer.kernel, layer.channels
    )))
}

/// Builds every model of a suite before the first is timed, so that a bad `--groups` or
/// `--width` fails at once rather than after minutes of timing the models before it.
pub(super) fn builds<'a>(specs: impl IntoIterator<Item = &'a ModelSpec>) -> Result<()> {
    specs.into_iter().try_for_each(|s| s.build().map(drop))
}
