//! Every prefix of a good npy, safetensors or IDX file is a format error, not a panic.

use super::{fx, scratch};
use gconv::io::{read_idx_images, read_npy, read_safetensors};
use gconv::Error;

#[test]
fn every_prefix_of_a_good_file_is_an_error_not_a_panic() {
    let dir = scratch("prefixes");
    let p = dir.join("cut");
    for name in [
        "tiny_f32.safetensors",
        "f4.npy",
        "images.idx3-ubyte.gz",
        "images.idx3-ubyte",
    ] {
        let bytes = std::fs::read(fx(name)).unwrap();
        for n in 0..bytes.len() {
            std::fs::write(&p, &bytes[..n]).unwrap();
            let r: gconv::Result<()> = match name {
                "f4.npy" => read_npy(&p).map(drop),
                n if n.ends_with(".safetensors") => read_safetensors(&p).map(drop),
                _ => read_idx_images(&p).map(drop),
            };
            assert!(
                matches!(r, Err(Error::Format { .. })),
                "{name} cut at {n}: {r:?}"
            );
        }
    }
}
