//! Images (PNG, JPEG) as network inputs.

use crate::error::{Error, Result};
use crate::fs::read_file;
use crate::limits::{MAX_IMAGE_DECODE_BYTES, MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS};
use crate::tensor::Tensor;
use ::image::imageops::{self, FilterType};
use ::image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits};
use std::io::Cursor;
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
/// `size` is [`Error::InvalidArgument`]. Hostile images are refused before they are
/// decoded: more than [`MAX_IMAGE_PIXELS`] pixels (width × height as the file states
/// them), a decoder needing more than [`MAX_IMAGE_DECODE_BYTES`], a file over
/// [`MAX_IMAGE_FILE_BYTES`] or a special file are [`Error::Format`] errors naming the cap.
pub fn read_image(path: impl AsRef<Path>, channels: usize, size: [usize; 2]) -> Result<Tensor> {
    let path = path.as_ref();
    check_args(channels, size)?;
    let bytes = read_file(path, MAX_IMAGE_FILE_BYTES)?;
    image_from_bytes(&bytes, path, channels, size)
}

/// Decodes an image held in memory, as [`read_image`] does; `origin` names the bytes in
/// errors.
pub fn image_from_bytes(
    bytes: &[u8],
    origin: impl AsRef<Path>,
    channels: usize,
    size: [usize; 2],
) -> Result<Tensor> {
    let [h32, w32] = check_args(channels, size)?;
    let img = decode(bytes, origin.as_ref())?;
    let [h, w] = size;
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

/// Checks `channels` and `size`; returns `[h, w]` as `u32`.
fn check_args(channels: usize, size: [usize; 2]) -> Result<[u32; 2]> {
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
    // The output tensor (and the resized image) must fit as well.
    if (h as u64) * (w as u64) > MAX_IMAGE_PIXELS.value {
        return Err(Error::InvalidArgument(format!(
            "read_image: {}",
            MAX_IMAGE_PIXELS.exceeded(&format!("size {size:?}"), h as u64 * w as u64)
        )));
    }
    Ok([h32, w32])
}

/// Decodes `bytes` under the caps: the dimensions the file states are checked before any
/// pixel is decoded, and the decoder runs with the `image` crate's [`Limits`].
fn decode(bytes: &[u8], path: &Path) -> Result<DynamicImage> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let side = u32::try_from(MAX_IMAGE_PIXELS.value).unwrap_or(u32::MAX);
    let mut limits = Limits::default();
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(MAX_IMAGE_DECODE_BYTES.value);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| image_error(path, e))?;
    let (w, h) = decoder.dimensions();
    let fmt = |m: String| Error::format(path, m);
    MAX_IMAGE_PIXELS
        .check(&format!("image of {w}×{h}"), u64::from(w) * u64::from(h))
        .map_err(fmt)?;
    MAX_IMAGE_DECODE_BYTES
        .check(&format!("decoded {w}×{h} image"), decoder.total_bytes())
        .map_err(fmt)?;
    DynamicImage::from_decoder(decoder).map_err(|e| image_error(path, e))
}

/// An `image` crate error as gconv's, naming `path`.
fn image_error(path: &Path, e: ImageError) -> Error {
    match e {
        ImageError::IoError(e) => Error::io(path, e),
        ImageError::Unsupported(e) => Error::format(
            path,
            format!("not a supported image (PNG or JPEG expected): {e}"),
        ),
        ImageError::Limits(e) => Error::format(
            path,
            format!("cannot decode image: {e} ({MAX_IMAGE_PIXELS}, {MAX_IMAGE_DECODE_BYTES})"),
        ),
        e => Error::format(path, format!("cannot decode image: {e}")),
    }
}
