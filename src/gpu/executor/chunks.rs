//! A batch whose activations exceed what the adapter can bind, run in chunks: the largest
//! halving of the batch whose program fits, one pass per chunk — with the outputs read back
//! and concatenated ([`GpuModel::run`]) or not ([`GpuModel::run_no_readback`], what the
//! benchmark and the autotuner time; [`GpuModel::last_stages`] is then the last chunk's).

use super::GpuModel;
use crate::error::{Error, Result};
use crate::gpu::pass_stages::Laps;
use crate::tensor::Tensor;

impl GpuModel {
    /// How many times the graph was lowered and its buffers planned and bound: once per
    /// change of batch size — a chunked batch's passes included, which reuse their chunk's.
    pub fn lowerings(&self) -> usize {
        self.lowerings
    }

    /// Whether `input`'s batch is one already found too large to bind whole.
    pub(super) fn known_chunked(&self, input: &Tensor) -> bool {
        let b = input.shape().first().copied();
        self.chunked.is_some_and(|(batch, _)| Some(batch) == b)
    }

    /// The largest halving of `batch` whose program fits the adapter (left prepared),
    /// remembered for the batch's later passes.
    fn fitting_chunk(&mut self, batch: usize) -> Result<usize> {
        if let Some((_, chunk)) = self.chunked.filter(|&(b, _)| b == batch) {
            return Ok(chunk);
        }
        let mut chunk = batch.div_ceil(2);
        loop {
            match self.prepare(chunk) {
                Ok(()) => break,
                Err(Error::AdapterLimit { .. }) if chunk > 1 => chunk = chunk.div_ceil(2),
                Err(e) => return Err(e),
            }
        }
        self.chunked = Some((batch, chunk));
        Ok(chunk)
    }

    /// `input`'s samples `start .. start + chunk`, zeros past its end: every chunk, the last
    /// included, runs the one program prepared for `chunk` samples (a shorter last chunk
    /// would lower the graph again, twice per pass).
    fn samples(input: &Tensor, start: usize, chunk: usize) -> Result<Tensor> {
        let b = input.shape()[0];
        let per = input.data().len() / b;
        let end = (start + chunk).min(b);
        let mut data = input.data()[start * per..end * per].to_vec();
        data.resize(chunk * per, 0.0);
        let mut dims = input.shape().to_vec();
        dims[0] = chunk;
        Tensor::new(dims, data)
    }

    /// [`run`](Self::run) in batch chunks, the outputs concatenated.
    pub(super) fn run_in_chunks(&mut self, input: &Tensor) -> Result<Tensor> {
        let b = input.shape()[0];
        let chunk = self.fitting_chunk(b)?;
        let mut out = Vec::new();
        let mut shape = Vec::new();
        for start in (0..b).step_by(chunk) {
            let y = self.run_pass(&Self::samples(input, start, chunk)?)?;
            shape = y.shape().to_vec();
            let per = y.data().len() / chunk;
            out.extend_from_slice(&y.data()[..chunk.min(b - start) * per]);
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
            let part = Self::samples(input, start, chunk)?;
            self.submit_pass(&part, false, &mut Laps::start())?;
        }
        Ok(())
    }
}
