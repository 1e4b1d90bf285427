//! In-memory image classification data: normalisation, seeded shuffling, batching and light
//! augmentation. Built from raw arrays (the file readers live elsewhere).

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// A labelled image set, NCHW `f32` values in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `n · channels · h · w` values, sample after sample, each `[C, H, W]`.
    pub images: Vec<f32>,
    /// One class index per sample.
    pub labels: Vec<u8>,
    /// Number of samples.
    pub n: usize,
    /// Channels per image.
    pub channels: usize,
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
}

impl Dataset {
    /// Builds a dataset from `f32` images, checking the sizes.
    pub fn new(
        images: Vec<f32>,
        labels: Vec<u8>,
        channels: usize,
        h: usize,
        w: usize,
    ) -> Result<Self> {
        let n = labels.len();
        if images.len() != n * channels * h * w {
            return Err(Error::InvalidArgument(format!(
                "{} image values for {n} labels of [{channels}, {h}, {w}] (need {})",
                images.len(),
                n * channels * h * w
            )));
        }
        Ok(Self {
            images,
            labels,
            n,
            channels,
            h,
            w,
        })
    }

    /// Builds a dataset from `u8` pixels (0..=255), scaled to `[0, 1]` (like `ToTensor`).
    pub fn from_u8(
        pixels: &[u8],
        labels: Vec<u8>,
        channels: usize,
        h: usize,
        w: usize,
    ) -> Result<Self> {
        Self::new(
            pixels.iter().map(|&p| p as f32 / 255.0).collect(),
            labels,
            channels,
            h,
            w,
        )
    }

    fn sample_len(&self) -> usize {
        self.channels * self.h * self.w
    }

    /// Per-channel mean and (population) standard deviation over the whole set, in f64.
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let hw = self.h * self.w;
        let count = (self.n * hw).max(1) as f64;
        let mut mean = vec![0.0f32; self.channels];
        let mut std = vec![0.0f32; self.channels];
        for ch in 0..self.channels {
            let vals = || {
                (0..self.n).flat_map(move |i| {
                    let o = (i * self.channels + ch) * hw;
                    &self.images[o..o + hw]
                })
            };
            let m = vals().map(|&v| v as f64).sum::<f64>() / count;
            let var = vals().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / count;
            mean[ch] = m as f32;
            std[ch] = var.sqrt() as f32;
        }
        (mean, std)
    }

    /// `x ← (x − mean[c]) / std[c]` per channel (like `transforms.Normalize`).
    pub fn normalize(&mut self, mean: &[f32], std: &[f32]) -> Result<()> {
        if mean.len() != self.channels
            || std.len() != self.channels
            || std.iter().any(|&s| s.is_nan() || s <= 0.0)
        {
            return Err(Error::InvalidArgument(format!(
                "normalise needs {} means and positive stds, got {mean:?} / {std:?}",
                self.channels
            )));
        }
        let hw = self.h * self.w;
        for (k, plane) in self.images.chunks_mut(hw).enumerate() {
            let ch = k % self.channels;
            plane
                .iter_mut()
                .for_each(|v| *v = (*v - mean[ch]) / std[ch]);
        }
        Ok(())
    }

    /// Normalises with this set's own statistics; returns `(mean, std)` to apply to other
    /// splits (a channel with zero spread gets std 1).
    pub fn normalize_self(&mut self) -> Result<(Vec<f32>, Vec<f32>)> {
        let (mean, mut std) = self.channel_stats();
        std.iter_mut()
            .filter(|s| s.is_nan() || **s <= 0.0)
            .for_each(|s| *s = 1.0);
        self.normalize(&mean, &std)?;
        Ok((mean, std))
    }

    /// Splits off the LAST `n_val` samples as a validation set: `(train, val)`.
    /// Shuffle first with [`Dataset::subset`] and [`Dataset::shuffled_indices`] for a random split.
    pub fn split(&self, n_val: usize) -> Result<(Dataset, Dataset)> {
        if n_val > self.n {
            return Err(Error::InvalidArgument(format!(
                "validation split of {n_val} from {} samples",
                self.n
            )));
        }
        let cut = self.n - n_val;
        let train: Vec<usize> = (0..cut).collect();
        let val: Vec<usize> = (cut..self.n).collect();
        Ok((self.subset(&train), self.subset(&val)))
    }

    /// A new dataset of the samples at `indices` (in that order). Panics on an index ≥ `n`.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let len = self.sample_len();
        let mut images = Vec::with_capacity(indices.len() * len);
        for &i in indices {
            images.extend_from_slice(&self.images[i * len..(i + 1) * len]);
        }
        Dataset {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            n: indices.len(),
            channels: self.channels,
            h: self.h,
            w: self.w,
        }
    }

    /// A permutation of `0..n` drawn from `seed` (Fisher–Yates).
    pub fn shuffled_indices(&self, seed: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.n).collect();
        idx.shuffle(&mut SmallRng::seed_from_u64(seed));
        idx
    }

    /// The samples at `indices` as a `[B, C, H, W]` tensor and their labels. With `augment`,
    /// each image is randomly cropped back to `H×W` from a copy zero-padded by 2 px on every
    /// side (zero = the channel mean once normalised) and flipped horizontally with
    /// probability ½, drawing from `augment`'s generator.
    pub fn batch(
        &self,
        indices: &[usize],
        mut augment: Option<&mut SmallRng>,
    ) -> (Tensor, Vec<usize>) {
        let (c, h, w) = (self.channels, self.h, self.w);
        let len = self.sample_len();
        let mut data = Vec::with_capacity(indices.len() * len);
        for &i in indices {
            let img = &self.images[i * len..(i + 1) * len];
            match augment.as_deref_mut() {
                None => data.extend_from_slice(img),
                Some(rng) => {
                    const PAD: i64 = 2;
                    let dy = (rng.random_range(0..=2 * PAD) - PAD) as isize;
                    let dx = (rng.random_range(0..=2 * PAD) - PAD) as isize;
                    let flip = rng.random::<bool>();
                    for ch in 0..c {
                        for y in 0..h {
                            for x in 0..w {
                                let xs = if flip { w - 1 - x } else { x };
                                let (sy, sx) = (y as isize + dy, xs as isize + dx);
                                let inside =
                                    sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize;
                                data.push(if inside {
                                    img[(ch * h + sy as usize) * w + sx as usize]
                                } else {
                                    0.0
                                });
                            }
                        }
                    }
                }
            }
        }
        let labels = indices.iter().map(|&i| self.labels[i] as usize).collect();
        let t = Tensor::new(vec![indices.len(), c, h, w], data).expect("batch size agrees");
        (t, labels)
    }

    /// The batches of one epoch, in order: shuffled by `seed` when given (a different
    /// permutation for each seed), augmented when `augment` is true (drawing from a
    /// generator seeded by `seed`, or 0); the last batch may be smaller.
    pub fn batches(&self, batch_size: usize, seed: Option<u64>, augment: bool) -> Batches<'_> {
        let order = match seed {
            Some(s) => self.shuffled_indices(s),
            None => (0..self.n).collect(),
        };
        let rng =
            augment.then(|| SmallRng::seed_from_u64(seed.unwrap_or(0) ^ 0x5eed_a06e_0000_0001));
        Batches {
            data: self,
            order,
            pos: 0,
            batch_size: batch_size.max(1),
            rng,
        }
    }
}

/// Iterator over the batches of an epoch, from [`Dataset::batches`].
#[derive(Debug)]
pub struct Batches<'a> {
    data: &'a Dataset,
    order: Vec<usize>,
    pos: usize,
    batch_size: usize,
    rng: Option<SmallRng>,
}

impl Iterator for Batches<'_> {
    type Item = (Tensor, Vec<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let idx = &self.order[self.pos..end];
        self.pos = end;
        Some(self.data.batch(idx, self.rng.as_mut()))
    }
}
