//! `gconv models`: the zoo and the schemes.

use gconv::zoo::{ModelSpec, Scheme, BUILTIN_MODELS, BUILTIN_SCHEMES};
use gconv::Result;
use std::process::ExitCode;

/// Options of `gconv models`.
#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let models: Vec<ModelSpec> = BUILTIN_MODELS
        .iter()
        .map(|(n, _)| ModelSpec::load(n))
        .collect::<Result<_>>()?;
    let schemes: Vec<Scheme> = BUILTIN_SCHEMES
        .iter()
        .map(|(n, _)| Scheme::load(n))
        .collect::<Result<_>>()?;
    if a.json {
        let v = serde_json::json!({ "models": models, "schemes": schemes });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("serialisable")
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("Models (gconv info --model NAME):");
    for m in &models {
        println!("  {:<20} {}", m.name, m.description);
    }
    println!("\nVGG grouping schemes (--scheme NAME, or stage groups like 1,1,8,8,8):");
    for s in &schemes {
        println!("  {:<3} {:?}  {}", s.name, s.stage_groups, s.description);
    }
    Ok(ExitCode::SUCCESS)
}
