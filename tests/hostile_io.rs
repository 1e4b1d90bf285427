//! Hostile files for the readers of `gconv::io`: `.npy`, safetensors, IDX, images and special
//! files. Every case must be an `Error::Format` naming the file and, where a cap applies, the
//! cap (`gconv::limits::NAME`), without panicking and without allocating more than
//! `hostile_common::BOUND` (64 MiB) on the way — measured by a counting allocator. The inputs
//! are made here, in memory or as sparse files, so none of them takes room on disk.

mod hostile_common;

use flate2::write::GzEncoder;
use gconv::io::{
    idx_images_from_bytes, image_from_bytes, npy_from_bytes, read_idx_images, read_idx_labels,
    read_image, read_npy, read_safetensors, safetensors_from_bytes,
};
use gconv::Error;
use hostile_common::*;
use std::io::Write;
use std::path::Path;

// ---- .npy -----------------------------------------------------------------------------------

#[test]
fn npy_deep_nesting_is_refused_without_recursion() {
    let _g = serial();
    let dir = scratch("npy_nesting");
    // The tester's case: 30 000 nested `(` used to overflow the stack.
    let deep = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}}}",
        "(".repeat(30_000)
    );
    let p = file(&dir, "deep.npy", &npy(&deep, &[]));
    let r = bounded("nesting", || read_npy(&p));
    assert_format(r, &p, &["gconv::limits::MAX_NESTING_DEPTH = 32"]);
    // 32 levels are allowed (and then rejected as a shape, not as nesting).
    let ok_depth = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}{}}}",
        "(".repeat(32),
        ")".repeat(32)
    );
    let r = npy_from_bytes(&npy(&ok_depth, &[]), "x.npy");
    let msg = r.unwrap_err().to_string();
    assert!(!msg.contains("MAX_NESTING_DEPTH"), "{msg}");
}

#[test]
fn npy_size_claims_are_checked() {
    let _g = serial();
    let dir = scratch("npy_claims");
    let h = |shape: &str| format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // 4 G elements claimed, none present.
        (
            "huge.npy",
            npy(&h("(65536, 65536)"), &[]),
            "MAX_TENSOR_ELEMENTS = 268435456",
        ),
        // A product that overflows u64, zero-sized or not.
        (
            "overflow.npy",
            npy(&h("(9223372036854775808, 9223372036854775808, 0)"), &[]),
            "MAX_TENSOR_ELEMENTS",
        ),
        (
            "dims.npy",
            npy(&h(&format!("({})", vec!["1"; 65].join(", "))), &[]),
            "MAX_TENSOR_DIMS = 64",
        ),
        (
            "int.npy",
            npy(&h("(99999999999999999999999,)"), &[]),
            "out of range",
        ),
    ];
    for (name, bytes, needle) in cases {
        let p = file(&dir, name, &bytes);
        let r = bounded(name, || read_npy(&p));
        assert_format(r, &p, &[needle]);
    }
    // A version-2 header claiming 4 GB (the file has 12 bytes).
    let mut b = b"\x93NUMPY\x02\x00".to_vec();
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    let p = file(&dir, "header.npy", &b);
    assert_format(read_npy(&p), &p, &["MAX_NPY_HEADER_BYTES = 65536"]);
    // A real header over the cap.
    let long = h(&format!("(1,){}", " ".repeat(70_000)));
    let p = file(&dir, "long.npy", &npy(&long, &[0; 4]));
    assert_format(read_npy(&p), &p, &["MAX_NPY_HEADER_BYTES"]);
    // A file larger than any .npy under the caps (sparse: no disk used).
    let p = sparse(&dir, "big.npy", (2u64 << 30) + (1 << 20));
    let r = bounded("big file", || read_npy(&p));
    assert_format(r, &p, &["MAX_NPY_FILE_BYTES"]);
}

// ---- safetensors ------------------------------------------------------------------------------

#[test]
fn safetensors_claims_are_checked() {
    let _g = serial();
    let dir = scratch("st_claims");
    // A header length of 1 TB.
    let mut b = (1u64 << 40).to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    let p = file(&dir, "header.safetensors", &b);
    let r = bounded("header", || read_safetensors(&p));
    assert_format(r, &p, &["MAX_SAFETENSORS_HEADER_BYTES = 16777216"]);
    // A zero-sized tensor with an absurd shape: refused by name, with the file.
    let h = r#"{"w":{"dtype":"F32","shape":[0,1099511627776],"data_offsets":[0,0]}}"#;
    let p = file(&dir, "shape.safetensors", &safetensors(h, &[]));
    match read_safetensors(&p) {
        Err(Error::Weights { key, msg }) => {
            assert_eq!(key, "w");
            assert!(msg.contains("MAX_TENSOR_ELEMENTS"), "{msg}");
            assert!(msg.contains("shape.safetensors"), "{msg}");
        }
        other => panic!("expected Error::Weights, got {other:?}"),
    }
    // Overflowing shape products, deep JSON, a non-string metadata value: corrupt files.
    for (name, h) in [
        (
            "overflow",
            r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}"#
                .to_string(),
        ),
        (
            "deep",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        ),
        (
            "meta",
            r#"{"__metadata__":{"a":[1]},"w":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}"#
                .to_string(),
        ),
    ] {
        let p = file(&dir, name, &safetensors(&h, &[0; 4]));
        let r = bounded(name, || read_safetensors(&p));
        assert_format(r, &p, &["not a valid safetensors file"]);
    }
    // A 4 GiB + 1 file is refused from its size alone (sparse: no disk used).
    let p = sparse(&dir, "big.safetensors", (4u64 << 30) + 1);
    let r = bounded("big file", || read_safetensors(&p));
    assert_format(r, &p, &["MAX_WEIGHTS_FILE_BYTES = 4294967296"]);
    // In memory too.
    assert!(safetensors_from_bytes(&[1, 2, 3], "m").is_err());
}

// ---- IDX --------------------------------------------------------------------------------------

/// An IDX images header `n × rows × cols`.
fn idx_header(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut h = vec![0, 0, 8, 3];
    for d in [n, rows, cols] {
        h.extend_from_slice(&d.to_be_bytes());
    }
    h
}

/// `header` followed by `zeros` zero bytes, gzip'd in memory (a decompression bomb when
/// `zeros` is large: about 1000:1).
fn gz(header: &[u8], zeros: usize) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(header).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(chunk.len());
        e.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    e.finish().unwrap()
}

#[test]
fn idx_decompression_bomb_is_inflated_only_as_far_as_the_header_claims() {
    let _g = serial();
    let dir = scratch("idx_bomb");
    // One 28×28 image claimed; 512 MiB of zeros inflated (the file is about 500 KB).
    let bomb = gz(&idx_header(1, 28, 28), 512 << 20);
    assert!(bomb.len() < 1 << 20, "bomb of {} bytes", bomb.len());
    let p = file(&dir, "bomb.idx3-ubyte.gz", &bomb);
    let r = bounded("bomb", || read_idx_images(&p));
    assert_format(r, &p, &["trailing bytes", "[1, 28, 28] need 784 bytes"]);
    // The same stream with a truthful header up to the cap would be read; one claiming
    // more than the cap is refused before inflating anything.
    let claim = gz(&idx_header(60_000, 2000, 2000), 0);
    let p = file(&dir, "claim.idx3-ubyte.gz", &claim);
    let r = bounded("claim", || read_idx_images(&p));
    assert_format(
        r,
        &p,
        &["[60000, 2000, 2000]", "MAX_IDX_DATA_BYTES = 1073741824"],
    );
    // u32::MAX³ does not overflow the check (plain file).
    let p = file(
        &dir,
        "max.idx3-ubyte",
        &idx_header(u32::MAX, u32::MAX, u32::MAX),
    );
    assert_format(read_idx_images(&p), &p, &["MAX_IDX_DATA_BYTES"]);
    // A stream shorter than its claim.
    let short = gz(&idx_header(2, 28, 28), 784);
    let p = file(&dir, "short.idx3-ubyte.gz", &short);
    assert_format(read_idx_images(&p), &p, &["truncated: the file has 784"]);
    // The exact claim is read.
    let (n, r, c, px) = idx_images_from_bytes(&gz(&idx_header(2, 3, 4), 24), "ok").unwrap();
    assert_eq!((n, r, c, px.len()), (2, 3, 4, 24));
    // A file over the cap, from its size alone.
    let p = sparse(&dir, "big.idx1-ubyte", (1u64 << 30) + 65);
    let r = bounded("big file", || read_idx_labels(&p));
    assert_format(r, &p, &["MAX_IDX_FILE_BYTES"]);
}

// ---- images -----------------------------------------------------------------------------------

/// One PNG chunk.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A grey 8-bit PNG that states `w × h` but holds only one (zero) row of pixels.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![0u8; w.min(1 << 20) as usize + 1])
        .unwrap();
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn images_are_checked_before_decoding() {
    let _g = serial();
    let dir = scratch("images");
    // The tester's case: a small grey PNG of 20000² (400 M pixels, under the image crate's
    // own default limit) used to take > 4 GB.
    let p = file(&dir, "20000.png", &png_claiming(20_000, 20_000));
    let r = bounded("20000² png", || read_image(&p, 1, [28, 28]));
    assert_format(r, &p, &["20000×20000", "MAX_IMAGE_PIXELS = 16777216"]);
    // One pixel over the cap.
    let p = file(&dir, "4097.png", &png_claiming(4097, 4097));
    assert_format(read_image(&p, 3, [8, 8]), &p, &["MAX_IMAGE_PIXELS"]);
    // A side over the cap: the image crate's own Limits refuse it, and the message says so.
    let p = file(&dir, "wide.png", &png_claiming(1 << 25, 1));
    let r = bounded("wide png", || read_image(&p, 1, [8, 8]));
    assert_format(r, &p, &["MAX_IMAGE_PIXELS"]);
    // A JPEG whose frame header says 60000 × 60000.
    let mut jpg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut jpg)
        .encode(&[128u8; 64], 8, 8, image::ExtendedColorType::L8)
        .unwrap();
    let sof = jpg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
    jpg[sof + 5..sof + 9].copy_from_slice(&[0xea, 0x60, 0xea, 0x60]);
    let p = file(&dir, "big.jpg", &jpg);
    let r = bounded("60000² jpeg", || read_image(&p, 3, [8, 8]));
    assert_format(r, &p, &["60000×60000", "MAX_IMAGE_PIXELS"]);
    // Truncations of a real PNG are errors.
    let good = png_claiming(4, 4);
    for n in 0..good.len() {
        assert!(image_from_bytes(&good[..n], "cut.png", 1, [4, 4]).is_err());
    }
    // An output size over the cap is the caller's error.
    let p = file(&dir, "ok.png", &good);
    assert!(matches!(
        read_image(&p, 1, [5000, 5000]),
        Err(Error::InvalidArgument(m)) if m.contains("MAX_IMAGE_PIXELS")
    ));
    // A file over the cap, from its size alone.
    let p = sparse(&dir, "big.png", (128 << 20) + 1);
    assert_format(read_image(&p, 1, [8, 8]), &p, &["MAX_IMAGE_FILE_BYTES"]);
}

// ---- special files ----------------------------------------------------------------------------

/// Every file reader of gconv on `p`, each result reduced to its error message.
fn every_reader(p: &Path) -> Vec<(&'static str, gconv::Result<()>)> {
    vec![
        ("npy", read_npy(p).map(drop)),
        ("safetensors", read_safetensors(p).map(drop)),
        (
            "metadata",
            gconv::io::read_safetensors_metadata(p).map(drop),
        ),
        ("exported", gconv::io::read_exported(p).map(drop)),
        ("idx images", read_idx_images(p).map(drop)),
        ("idx labels", read_idx_labels(p).map(drop)),
        ("image", read_image(p, 3, [8, 8]).map(drop)),
        ("text", gconv::fs::read_text_file(p).map(drop)),
        (
            "model",
            gconv::zoo::ModelSpec::load(&p.to_string_lossy()).map(drop),
        ),
    ]
}

#[test]
fn special_files_are_refused_before_reading() {
    let _g = serial();
    let dir = scratch("special");
    let mut cases = vec![
        (Path::new("/dev/zero").to_path_buf(), "a character device"),
        (dir.clone(), "a directory"),
    ];
    if let Some(f) = fifo(&dir, "pipe") {
        cases.push((f, "a FIFO"));
    } else {
        eprintln!("mkfifo unavailable: FIFO case skipped");
    }
    for (p, kind) in cases {
        let q = p.clone();
        // Reading /dev/zero or a FIFO would never end: a hang is a failure here.
        let results = within_20s("readers", move || {
            let (r, peak) = peak_during(|| {
                every_reader(&q)
                    .into_iter()
                    .map(|(n, r)| (n, r.map_err(|e| e.to_string())))
                    .collect::<Vec<_>>()
            });
            (r, peak)
        });
        let (results, peak) = results;
        assert!(peak <= BOUND, "{}: peak {peak}", p.display());
        for (reader, r) in results {
            let msg = r.expect_err(reader);
            assert!(
                msg.contains(kind) && msg.contains("not a regular file"),
                "{reader} on {}: {msg}",
                p.display()
            );
            assert!(msg.contains(&*p.to_string_lossy()), "{reader}: {msg}");
        }
    }
}

#[test]
fn the_allocation_counter_sees_a_large_allocation() {
    let _g = serial();
    // The bound above means something only if the counter works.
    // Twice the bound: other threads of the test harness may free memory meanwhile.
    let (v, peak) = peak_during(|| std::hint::black_box(vec![1u8; 2 * BOUND]));
    assert!(peak > BOUND, "peak {peak}");
    drop(v);
    let (_, peak) = peak_during(|| std::hint::black_box(vec![1u8; 1000]).len());
    assert!(peak < BOUND, "peak {peak}");
}
