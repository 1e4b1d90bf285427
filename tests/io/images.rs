//! Image files: PNG at native size, bilinear resizing, JPEG, errors.

use super::{assert_format, assert_io, fx, scratch};
use gconv::io::read_image;
use gconv::Error;

#[test]
fn image_png_native_size() {
    let t = read_image(fx("rgb_6x4.png"), 3, [4, 6]).unwrap();
    assert_eq!(t.shape(), &[1, 3, 4, 6]);
    let at = |c: usize, y: usize, x: usize| t.data()[(c * 4 + y) * 6 + x];
    for y in 0..4 {
        for x in 0..6 {
            let want = [40 * x, 60 * y, 255 - 40 * x].map(|v| v as f32 / 255.0);
            for (c, w) in want.iter().enumerate() {
                assert!((at(c, y, x) - w).abs() < 1e-6, "({c},{y},{x})");
            }
        }
    }
    let g = read_image(fx("grey_3x2.png"), 1, [2, 3]).unwrap();
    assert_eq!(g.shape(), &[1, 1, 2, 3]);
    let want: Vec<f32> = [0, 50, 100, 100, 150, 200]
        .iter()
        .map(|&v| v as f32 / 255.0)
        .collect();
    for (a, b) in g.data().iter().zip(&want) {
        assert!((a - b).abs() < 1e-6, "{:?} vs {want:?}", g.data());
    }
    // Grey as RGB repeats the plane; RGB as grey is a luma in [0, 1].
    let g3 = read_image(fx("grey_3x2.png"), 3, [2, 3]).unwrap();
    assert_eq!(&g3.data()[..6], &g3.data()[6..12]);
    assert_eq!(&g3.data()[..6], &g3.data()[12..]);
    let l = read_image(fx("rgb_6x4.png"), 1, [4, 6]).unwrap();
    assert_eq!(l.shape(), &[1, 1, 4, 6]);
    assert!(l.data().iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn image_resize_is_bilinear_and_bounded() {
    for size in [[2, 3], [8, 12], [5, 5]] {
        let t = read_image(fx("rgb_6x4.png"), 3, size).unwrap();
        assert_eq!(t.shape(), &[1, 3, size[0], size[1]]);
        let plane = size[0] * size[1];
        // Blue falls from 255/255 at x = 0 to 55/255 at x = 5, and no filter overshoot.
        let blue = &t.data()[2 * plane..];
        assert!(
            blue.iter()
                .all(|&v| (55.0 / 255.0 - 1e-6..=1.0).contains(&v)),
            "{blue:?}"
        );
        // Red is constant along y, and increases along x.
        let red = &t.data()[..plane];
        for y in 0..size[0] {
            let row = &red[y * size[1]..(y + 1) * size[1]];
            let first = &red[..size[1]];
            let same = row.iter().zip(first).all(|(a, b)| (a - b).abs() < 1e-6);
            assert!(same, "red row {y}: {row:?} vs {first:?}");
            assert!(row.windows(2).all(|p| p[0] <= p[1]), "{row:?}");
        }
    }
}

#[test]
fn image_jpeg() {
    let dir = scratch("image_jpeg");
    let p = dir.join("flat.jpg");
    image::RgbImage::from_pixel(16, 8, image::Rgb([200, 100, 50]))
        .save(&p)
        .unwrap();
    let t = read_image(&p, 3, [4, 8]).unwrap();
    assert_eq!(t.shape(), &[1, 3, 4, 8]);
    for (c, want) in [200.0f32, 100.0, 50.0].iter().enumerate() {
        for &v in &t.data()[c * 32..(c + 1) * 32] {
            assert!((v * 255.0 - want).abs() < 4.0, "channel {c}: {}", v * 255.0);
        }
    }
}

#[test]
fn image_errors() {
    let p = fx("not_an_image.png");
    assert_format(read_image(&p, 3, [4, 4]), &p, "image");
    let p = fx("f4.npy");
    assert_format(read_image(&p, 3, [4, 4]), &p, "image");
    let p = fx("no_such_image.png");
    assert_io(read_image(&p, 3, [4, 4]), &p);
    let p = fx("rgb_6x4.png");
    assert!(matches!(
        read_image(&p, 2, [4, 4]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        read_image(&p, 3, [0, 4]),
        Err(Error::InvalidArgument(_))
    ));
}
