//! `.npy` parsing: any bytes give a tensor or an `Error::Format`, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gconv::io::npy_from_bytes(data, "fuzz.npy");
});
