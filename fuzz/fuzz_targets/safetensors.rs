//! safetensors reading (tensors and metadata): an error or weights, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gconv::io::safetensors_from_bytes(data, "fuzz.safetensors");
    let _ = gconv::io::metadata_from_bytes(data, "fuzz.safetensors");
});
