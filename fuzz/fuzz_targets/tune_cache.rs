//! The kernel-choice cache (`~/.cache/gconv/kernels.json`, written by `gconv tune`, read by
//! every GPU load): its JSON parsed as `TuneCache::load` and `save`'s merge parse it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gconv::gpu::tune::cache::parse_cache_file(data);
});
