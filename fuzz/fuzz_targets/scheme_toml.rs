//! Grouping schemes (`models/schemes/*.toml`): parsed, an error or a scheme.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = gconv::zoo::Scheme::from_toml(text, "fuzz.toml");
    }
});
