//! `gconv bench` reports (`report.json`, `--json`), which `gconv bench compare` reads back:
//! the report's JSON deserialised into `gconv::bench::BenchReport`.
//! (`bench::compare::read_report` reads the file, capped, and parses it exactly so).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<gconv::bench::BenchReport>(data) {
        // What a reader does next: walk the rows.
        let _ = serde_json::to_vec(&r);
    }
});
