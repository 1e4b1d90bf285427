//! `gconv bench compare OLD.json NEW.json`: two reports row by row
//! ([`gconv::bench::compare`]).

use gconv::bench::compare::{compare, read_report, write_comparison};
use gconv::{Error, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `gconv bench compare`.
#[derive(clap::Args)]
pub struct Args {
    /// The reference report (report.json of `gconv bench --out`, or `--json` output).
    old: PathBuf,
    /// The report to compare with it.
    new: PathBuf,
    /// Write compare.md, compare.html, compare.json and the ratio chart into this folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Exit 1 when any row's new / old time exceeds R (e.g. 1.10: 10 % slower).
    #[arg(long, value_name = "R")]
    fail_above: Option<f64>,
}

pub fn run(a: Args) -> Result<ExitCode> {
    if let Some(r) = a.fail_above {
        if !(r.is_finite() && r > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "--fail-above {r}: expected a ratio above 0, e.g. 1.10"
            )));
        }
    }
    let old = read_report(&a.old)?;
    let new = read_report(&a.new)?;
    let c = compare(
        &old,
        &a.old.display().to_string(),
        &new,
        &a.new.display().to_string(),
    );
    print!("{}", c.markdown(a.fail_above));
    if let Some(dir) = &a.out {
        let files = write_comparison(&c, dir, a.fail_above)?;
        println!("\nwrote:");
        for f in files {
            println!("  {}", f.display());
        }
    }
    if let Some(r) = a.fail_above {
        let bad = c.regressions(r);
        if !bad.is_empty() {
            eprintln!("{} rows regressed past {r}×:", bad.len());
            for row in bad {
                eprintln!(
                    "  {}: {} ({}): {:.3}×",
                    row.suite, row.name, row.metric, row.time_ratio
                );
            }
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}
