//! The pipeline cache's file format (`gpu::pipeline_cache`), no GPU needed: what is encoded
//! decodes to the same data; every truncation, a flipped byte anywhere, another identity and
//! trailing bytes are refused with a reason; concurrent writers leave one whole, valid file.

use gconv::gpu::pipeline_cache::{decode, encode, write_file};

const ME: &str = "llvmpipe | Vulkan | llvmpipe | Mesa | 10005:0000 | gconv 0.1.0";

#[test]
fn encoded_data_decodes_back_and_every_damage_is_refused() {
    let data: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = encode(ME, &data);
    assert_eq!(decode(ME, &file).unwrap(), &data[..]);
    for n in 0..file.len() {
        let r = decode(ME, &file[..n]);
        assert!(r.is_err(), "a file cut at {n} bytes was accepted");
    }
    for i in 0..file.len() {
        let mut bad = file.clone();
        bad[i] ^= 0x01;
        assert!(
            decode(ME, &bad).is_err(),
            "a flipped bit in byte {i} was accepted"
        );
    }
    let other = decode("another GPU", &file).unwrap_err();
    assert!(
        other.contains("another adapter") && other.contains(ME),
        "{other}"
    );
    let mut longer = file.clone();
    longer.push(0);
    assert!(decode(ME, &longer).unwrap_err().contains("longer"));
    assert!(decode(ME, b"").unwrap_err().contains("not a gconv"));
}

#[test]
fn concurrent_writers_leave_one_whole_valid_file() {
    let dir = std::env::temp_dir().join(format!("gconv-pc-writers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("nested").join("pipelines-test.bin");
    let payload = |w: usize| vec![w as u8; 64 * 1024 + w];
    std::thread::scope(|s| {
        for w in 0..6 {
            let (path, data) = (&path, payload(w));
            s.spawn(move || {
                for _ in 0..10 {
                    write_file(path, ME, &data).unwrap();
                }
            });
        }
        // A reader meanwhile only ever sees whole files (or none yet).
        s.spawn(|| {
            for _ in 0..200 {
                if let Ok(bytes) = std::fs::read(&path) {
                    assert!(decode(ME, &bytes).is_ok(), "a reader saw a partial file");
                }
            }
        });
    });
    let bytes = std::fs::read(&path).unwrap();
    let data = decode(ME, &bytes).unwrap();
    assert!(
        (0..6).any(|w| data == &payload(w)[..]),
        "the file is one writer's data"
    );
    let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary files left behind");
    let _ = std::fs::remove_dir_all(&dir);
}
