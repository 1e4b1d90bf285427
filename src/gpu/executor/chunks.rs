//! A batch whose activations exceed what the adapter can bind, run in chunks: the largest
//! halving of the batch whose program fits, one pass per chunk — with the outputs read back
//! and concatenated ([`GpuModel::run`]) or not ([`GpuModel::run_no_readback`], what the
//! benchmark and the autotuner time; [`GpuModel::last_stages`] is then the last chunk's).

use super::GpuModel;
use crate::error::{Error, Result};
use crate::gpu::pass_stages::Laps;
use crate::tensor::Tensor;

impl GpuModel {
    /// The largest halving of `batch` whose program fits the adapter (left prepared).
    fn fitting_chunk(&mut self, batch: usize) -> Result<usize> {
        let mut chunk = batch.div_ceil(2);
        loop {
            match self.prepare(chunk) {
                Ok(()) => return Ok(chunk),
                Err(Error::AdapterLimit { .. }) if chunk > 1 => chunk = chunk.div_ceil(2),
                Err(e) => return Err(e),
            }
        }
    }

    /// `input`'s samples `start .. start + n`.
    fn samples(input: &Tensor, start: usize, n: usize) -> Result<Tensor> {
        let per = input.data().len() / input.shape()[0];
        let mut dims = input.shape().to_vec();
        dims[0] = n;
        Tensor::new(dims, input.data()[start * per..(start + n) * per].to_vec())
    }

    /// [`run`](Self::run) in batch chunks, the outputs concatenated.
    pub(super) fn run_in_chunks(&mut self, input: &Tensor) -> Result<Tensor> {
        let b = input.shape()[0];
        let chunk = self.fitting_chunk(b)?;
        let mut out = Vec::new();
        let mut shape = Vec::new();
        for start in (0..b).step_by(chunk) {
            let y = self.run_pass(&Self::samples(input, start, chunk.min(b - start))?)?;
            shape = y.shape().to_vec();
            out.extend_from_slice(y.data());
        }
        shape[0] = b;
        Tensor::new(shape, out)
    }

    /// [`run_no_readback`](Self::run_no_readback) in batch chunks; returns once the GPU has
    /// finished the last.
    pub(super) fn submit_in_chunks(&mut self, input: &Tensor) -> Result<()> {
        let b = input.shape()[0];
        let chunk = self.fitting_chunk(b)?;
        for start in (0..b).step_by(chunk) {
            let part = Self::samples(input, start, chunk.min(b - start))?;
            self.submit_pass(&part, false, &mut Laps::start())?;
        }
        Ok(())
    }
}
