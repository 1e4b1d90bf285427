//! Images (PNG, JPEG) as network inputs.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use ::image::imageops::{self, FilterType};
use ::image::{ImageError, ImageReader};
use std::path::Path;

/// Reads a PNG or JPEG image as a `[1, channels, H, W]` tensor with values in `[0, 1]`,
/// where `size` is `[H, W]`.
///
/// `channels` is 1 (grey: the image is converted to luma) or 3 (RGB; alpha is dropped).
/// The image is resized to exactly `size` with a bilinear (triangle) filter, ignoring
/// its aspect ratio. The format is recognised from the content, not the extension. No
/// normalisation (mean / std) is applied.
///
/// A missing or unreadable file is an [`Error::Io`], a file that is not a supported image
/// an [`Error::Format`], both naming `path`; a `channels` other than 1 or 3 or an empty
/// `size` is [`Error::InvalidArgument`].
pub fn read_image(path: impl AsRef<Path>, channels: usize, size: [usize; 2]) -> Result<Tensor> {
    let path = path.as_ref();
    if channels != 1 && channels != 3 {
        return Err(Error::InvalidArgument(format!(
            "read_image: channels must be 1 or 3, got {channels}"
        )));
    }
    let [h, w] = size;
    let (Ok(h32), Ok(w32)) = (u32::try_from(h), u32::try_from(w)) else {
        return Err(Error::InvalidArgument(format!(
            "read_image: size {size:?} too large"
        )));
    };
    if h == 0 || w == 0 {
        return Err(Error::InvalidArgument(format!(
            "read_image: size {size:?} is empty"
        )));
    }
    let img = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(|e| match e {
            ImageError::IoError(e) => Error::io(path, e),
            ImageError::Unsupported(e) => Error::format(
                path,
                format!("not a supported image (PNG or JPEG expected): {e}"),
            ),
            e => Error::format(path, format!("cannot decode image: {e}")),
        })?;

    let plane = h * w;
    let mut data = vec![0f32; channels * plane];
    if channels == 1 {
        let g = imageops::resize(&img.to_luma32f(), w32, h32, FilterType::Triangle);
        for (d, p) in data.iter_mut().zip(g.pixels()) {
            *d = p.0[0].clamp(0.0, 1.0);
        }
    } else {
        let rgb = imageops::resize(&img.to_rgb32f(), w32, h32, FilterType::Triangle);
        for (i, p) in rgb.pixels().enumerate() {
            for c in 0..3 {
                data[c * plane + i] = p.0[c].clamp(0.0, 1.0);
            }
        }
    }
    Tensor::new(vec![1, channels, h, w], data)
}
