//! npy files: round trips, numpy's dtypes, versions and scalars, errors.

use super::{assert_format, assert_io, assert_no_tmp_files, fx, scratch};
use gconv::io::{read_npy, write_npy};
use gconv::{Error, Tensor};

#[test]
fn npy_round_trip() {
    let dir = scratch("npy_round_trip");
    for shape in [vec![], vec![7], vec![2, 3, 4, 5], vec![1, 0, 3]] {
        let t = Tensor::from_fn(&shape, |i| (i as f32 * 0.37).sin() * 1e3 - 0.5);
        let p = dir.join(format!("t{}.npy", shape.len()));
        write_npy(&p, &t).unwrap();
        assert_eq!(read_npy(&p).unwrap(), t, "shape {shape:?}");
        // Atomic write: the temporary file is gone.
        assert_no_tmp_files(&dir);
    }
    // Overwriting works too.
    let p = dir.join("t1.npy");
    let t = Tensor::new(vec![2], vec![f32::MAX, f32::MIN_POSITIVE]).unwrap();
    write_npy(&p, &t).unwrap();
    assert_eq!(read_npy(&p).unwrap(), t);
}

#[test]
fn npy_write_into_missing_dir_is_io_error() {
    let dir = scratch("npy_write_missing_dir");
    let p = dir.join("no/such/dir/t.npy");
    let r = write_npy(&p, &Tensor::zeros(&[2]));
    assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
}

#[test]
fn npy_reads_numpy_f4() {
    let t = read_npy(fx("f4.npy")).unwrap();
    assert_eq!(t.shape(), &[2, 3, 4]);
    let want: Vec<f32> = (0..24).map(|i| i as f32 / 7.0 - 1.0).collect();
    assert_eq!(t.data(), &want[..]);
}

#[test]
fn npy_converts_f8_f2_u1() {
    let t = read_npy(fx("f8.npy")).unwrap();
    assert_eq!(t.shape(), &[3, 5]);
    let want: Vec<f32> = (0..15).map(|i| (i as f64 / 3.0 - 2.0) as f32).collect();
    assert_eq!(t.data(), &want[..]);

    let t = read_npy(fx("f2.npy")).unwrap();
    assert_eq!(t.shape(), &[4]);
    assert_eq!(t.data(), &[0.5, -1.25, 3.0, 65504.0]);

    let t = read_npy(fx("u1.npy")).unwrap();
    assert_eq!(t.shape(), &[2, 2]);
    assert_eq!(t.data(), &[0.0, 1.0, 128.0, 255.0]);
}

#[test]
fn npy_versions_and_scalars() {
    let t = read_npy(fx("v2.npy")).unwrap();
    assert_eq!((t.shape(), t.data()), (&[3][..], &[1.0, 2.0, 3.0][..]));
    let t = read_npy(fx("v3.npy")).unwrap();
    assert_eq!((t.shape(), t.data()), (&[2][..], &[4.0, 5.0][..]));
    let t = read_npy(fx("scalar.npy")).unwrap();
    assert_eq!((t.shape(), t.data()), (&[][..], &[2.5][..]));
}

#[test]
fn npy_errors() {
    let p = fx("fortran.npy");
    assert_format(read_npy(&p), &p, "fortran");
    let p = fx("big_endian.npy");
    assert_format(read_npy(&p), &p, "big-endian");
    let p = fx("i4.npy");
    assert_format(read_npy(&p), &p, "dtype `<i4` is not supported");
    let p = fx("truncated.npy");
    assert_format(read_npy(&p), &p, "truncated data");
    let p = fx("truncated_header.npy");
    assert_format(read_npy(&p), &p, "truncated header");
    let p = fx("bad_magic.npy");
    assert_format(read_npy(&p), &p, "bad magic");
    let p = fx("no_such_file.npy");
    assert_io(read_npy(&p), &p);
    // Not an npy at all (a safetensors file).
    let p = fx("tiny_f32.safetensors");
    assert_format(read_npy(&p), &p, "magic");
}
