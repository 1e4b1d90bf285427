//! `gconv bench` reports (`report.json`, `--json`), which `gconv bench compare` reads back:
//! the report's JSON deserialised into `gconv::bench::BenchReport`.
//!
//! Written against `serde_json::from_slice::<BenchReport>` because, when this target was
//! written, `src/bench` had no reader of its own (the `bench compare` helper adds
//! `Deserialize` to the report types and `bench::compare::read_report`); once that is in,
//! point this target at `read_report`'s byte-level entry point.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<gconv::bench::BenchReport>(data) {
        // What a reader does next: walk the rows.
        let _ = serde_json::to_vec(&r);
    }
});
