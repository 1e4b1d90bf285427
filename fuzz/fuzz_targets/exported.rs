//! Exported models (safetensors + graph JSON in the metadata) from raw bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gconv::io::exported_from_bytes(data, "fuzz.safetensors");
});
