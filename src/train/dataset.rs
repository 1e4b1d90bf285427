//! Training and test data from a path, whatever it holds: Debian's Fashion-MNIST (a folder of
//! IDX files — or no folder at all, in which case the IDX reader says how to install it) or an
//! image folder with one sub-folder per class.

use super::data::Dataset;
use super::folder::ImageFolder;
use crate::error::{Error, Result};
use crate::io::FashionMnist;
use std::path::Path;

/// Training data (and, where there is one, its test set) with the class count.
#[derive(Clone, Debug)]
pub struct TrainingData {
    /// The training set.
    pub train: Dataset,
    /// The test set: Fashion-MNIST's own, or the `test` folder given.
    pub test: Option<Dataset>,
    /// Number of classes.
    pub classes: usize,
}

/// Whether `dir` holds Fashion-MNIST IDX files (or does not exist: the IDX loader then says
/// how to install the data set), as opposed to an image folder.
pub fn is_fashion_mnist(dir: &Path) -> bool {
    !dir.exists()
        || dir.join("train-images-idx3-ubyte.gz").exists()
        || dir.join("train-images-idx3-ubyte").exists()
        || dir.join("t10k-images-idx3-ubyte.gz").exists()
}

/// Fashion-MNIST at `input`: its own 1×28×28, or zero-padded (centred) to a larger 1×H×W —
/// 32×32 for models with five 2× pools such as VGG, as LeNet-style setups pad MNIST.
fn fashion_mnist(dir: &Path, input: [usize; 3]) -> Result<(Dataset, Dataset)> {
    let fm = FashionMnist::load(dir)?;
    let (t, l) = (&fm.train_images, fm.train_labels.clone());
    let train = Dataset::from_u8(&t.pixels, l, 1, t.rows, t.cols)?;
    let (t, l) = (&fm.test_images, fm.test_labels.clone());
    let test = Dataset::from_u8(&t.pixels, l, 1, t.rows, t.cols)?;
    Ok((pad_to(train, input, dir)?, pad_to(test, input, dir)?))
}

fn pad_to(d: Dataset, [c, h, w]: [usize; 3], dir: &Path) -> Result<Dataset> {
    if [h, w] == [d.h, d.w] {
        return Ok(d);
    }
    if c != d.channels || h < d.h || w < d.w {
        return Err(Error::InvalidArgument(format!(
            "{}: Fashion-MNIST is {}x{}x{}; --input {c}x{h}x{w} can only pad it (1xHxW, H, W ≥ {})",
            dir.display(),
            d.channels,
            d.h,
            d.w,
            d.h.max(d.w)
        )));
    }
    let (top, left) = ((h - d.h) / 2, (w - d.w) / 2);
    let mut images = vec![0.0f32; d.n * c * h * w];
    for (i, src) in d.images.chunks_exact(d.h * d.w).enumerate() {
        let dst = &mut images[i * h * w..(i + 1) * h * w];
        for (y, row) in src.chunks_exact(d.w).enumerate() {
            let at = (y + top) * w + left;
            dst[at..at + d.w].copy_from_slice(row);
        }
    }
    Dataset::new(images, d.labels, c, h, w)
}

impl TrainingData {
    /// Loads `data` (Fashion-MNIST, with its test split, zero-padded to `input` when that is
    /// larger than 28×28; or an image folder converted to `input = [C, H, W]`, with `test` as
    /// its test set). An empty set is an error.
    pub fn load(data: &Path, test: Option<&Path>, input: [usize; 3]) -> Result<Self> {
        let loaded = if is_fashion_mnist(data) {
            let (train, test) = fashion_mnist(data, input)?;
            Self {
                train,
                test: Some(test),
                classes: 10,
            }
        } else {
            let [c, h, w] = input;
            let train = ImageFolder::load(data, c, [h, w])?;
            let test = match test {
                Some(p) => {
                    let t = ImageFolder::load(p, c, [h, w])?;
                    if t.classes != train.classes {
                        return Err(Error::InvalidArgument(format!(
                            "test data {} has classes {:?}, the training data {:?}",
                            p.display(),
                            t.classes,
                            train.classes
                        )));
                    }
                    Some(t.dataset)
                }
                None => None,
            };
            Self {
                classes: train.classes.len(),
                train: train.dataset,
                test,
            }
        };
        if loaded.train.n == 0 {
            return Err(Error::format(data, "no training images"));
        }
        Ok(loaded)
    }

    /// The test set of `data` alone (Fashion-MNIST's test split, or the image folder itself
    /// converted to `input`), for evaluation.
    pub fn load_test(data: &Path, input: [usize; 3]) -> Result<Dataset> {
        let test = if is_fashion_mnist(data) {
            fashion_mnist(data, input)?.1
        } else {
            let [c, h, w] = input;
            ImageFolder::load(data, c, [h, w])?.dataset
        };
        if test.n == 0 {
            return Err(Error::format(data, "no test images"));
        }
        Ok(test)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_centres_the_image_and_refuses_to_shrink() {
        let d = Dataset::new(vec![1.0, 2.0, 3.0, 4.0], vec![7], 1, 2, 2).unwrap();
        let p = pad_to(d.clone(), [1, 4, 4], Path::new("fm")).unwrap();
        assert_eq!((p.h, p.w, p.labels.clone()), (4, 4, vec![7]));
        #[rustfmt::skip]
        let want = [
            0.0, 0.0, 0.0, 0.0,
            0.0, 1.0, 2.0, 0.0,
            0.0, 3.0, 4.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(p.images, want);
        assert_eq!(pad_to(d.clone(), [1, 2, 2], Path::new("fm")).unwrap(), d);
        for bad in [[1, 1, 4], [3, 4, 4]] {
            let e = pad_to(d.clone(), bad, Path::new("fm")).unwrap_err();
            assert!(e.to_string().contains("can only pad it"), "{e}");
        }
    }
}
