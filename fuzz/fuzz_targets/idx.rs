//! IDX images and labels, plain or gzip'd: an error or data, never a panic or a bomb.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gconv::io::idx_images_from_bytes(data, "fuzz-idx3-ubyte");
    let _ = gconv::io::idx_labels_from_bytes(data, "fuzz-idx1-ubyte");
});
