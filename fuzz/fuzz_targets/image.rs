//! PNG / JPEG decoding under gconv's caps, to a small grey or RGB tensor.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let channels = if data.len().is_multiple_of(2) { 1 } else { 3 };
    let _ = gconv::io::image_from_bytes(data, "fuzz.png", channels, [8, 8]);
});
