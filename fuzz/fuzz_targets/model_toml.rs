//! Model descriptions (`models/*.toml`): parsed and checked, an error or a spec.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = gconv::zoo::ModelSpec::from_toml(text, "fuzz.toml");
    }
});
