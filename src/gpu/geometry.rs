//! The one convolution geometry every conv and pool kernel reads: [`ConvShape`] on the Rust
//! side (a layer's spec, batch and input size), checked once by [`ConvShape::geometry`] —
//! which calls the op's own check ([`Conv2dSpec::checked_out_hw`]: groups, window, sizes) —
//! into [`ConvGeometry`] (declared with its WGSL twin in [`crate::gpu::prelude`]), the first
//! member, `p.geom`, of every conv and pool shader's `Params`. [`ConvGeom`] is one run of a
//! planned layer (batch, input size, activation), [`LinearShape`] a fully connected layer's.

use super::launch::{check_dims, checked_len, Arg};
use crate::error::{Error, Result};
pub use crate::gpu::prelude::{ConvGeometry, Epilogue};
use crate::graph::Conv2dSpec;
use crate::ops::Activation;

/// A convolution call's geometry on the Rust side: the layer's spec, the batch and the
/// input size.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape<'a> {
    /// Kernel, stride, padding, dilation, channels, groups, bias.
    pub spec: &'a Conv2dSpec,
    /// Batch size.
    pub batch: usize,
    /// Input `[h, w]`.
    pub in_hw: [usize; 2],
}

impl ConvShape<'_> {
    /// Checks the sizes (every size positive and within `u32`, the dilated window fits the
    /// padded input; groups need not divide the channels: an uneven table's do not) and
    /// returns the output `[oh, ow]`.
    pub fn out_hw(&self, label: &str) -> Result<[usize; 2]> {
        self.checked(label, false)
            .map(|g| [g.oh as usize, g.ow as usize])
    }

    /// The geometry as the kernels read it, checked: by the op's own rule
    /// ([`Conv2dSpec::checked_out_hw`]; `even`: the groups must divide both channel counts)
    /// and every size within `u32`.
    pub fn geometry(&self, label: &str, even: bool) -> Result<ConvGeometry> {
        self.checked(label, even)
    }

    fn checked(&self, label: &str, even: bool) -> Result<ConvGeometry> {
        let (s, [h, w]) = (self.spec, self.in_hw);
        check_dims(
            label,
            &[
                ("batch", self.batch),
                ("input height", h),
                ("input width", w),
                ("in_channels", s.in_channels),
                ("out_channels", s.out_channels),
                ("groups", s.groups),
            ],
        )?;
        let [oh, ow] = s.checked_out_hw(label, [h, w], even)?;
        for (what, v) in [
            ("padding", s.padding[0].max(s.padding[1])),
            ("kernel", s.kernel[0].max(s.kernel[1])),
        ] {
            check_dims(label, &[(what, v.max(1))])?;
        }
        for (what, v) in [
            ("stride", s.stride[0].max(s.stride[1])),
            ("dilation", s.dilation[0].max(s.dilation[1])),
        ] {
            check_dims(label, &[(what, v)])?;
        }
        let u = |v: usize| v as u32;
        Ok(ConvGeometry {
            batch: u(self.batch),
            c_in: u(s.in_channels),
            h: u(h),
            w: u(w),
            c_out: u(s.out_channels),
            oh: u(oh),
            ow: u(ow),
            kh: u(s.kernel[0]),
            kw: u(s.kernel[1]),
            sh: u(s.stride[0]),
            sw: u(s.stride[1]),
            ph: u(s.padding[0]),
            pw: u(s.padding[1]),
            dh: u(s.dilation[0]),
            dw: u(s.dilation[1]),
            groups: u(s.groups),
        })
    }
}

/// Batch size, input size and epilogue of one run of a kernel planned for a layer
/// (`conv_fast`, `conv_wgmem`: the spec travels with the plan).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Samples.
    pub batch: usize,
    /// Input `[h, w]`.
    pub in_hw: [usize; 2],
    /// The fused activation.
    pub act: Activation,
}

impl ConvGeom {
    /// The checked geometry of `spec` at this batch and input size (groups may be uneven).
    pub fn geometry(&self, label: &str, spec: &Conv2dSpec) -> Result<ConvGeometry> {
        self.shape(spec).geometry(label, false)
    }

    /// Checks the sizes against `spec`; returns the output `[oh, ow]`.
    pub fn out_hw(&self, label: &str, spec: &Conv2dSpec) -> Result<[usize; 2]> {
        self.shape(spec).out_hw(label)
    }

    fn shape<'a>(&self, spec: &'a Conv2dSpec) -> ConvShape<'a> {
        ConvShape {
            spec,
            batch: self.batch,
            in_hw: self.in_hw,
        }
    }
}

/// The geometry of a fully connected layer.
#[derive(Clone, Copy, Debug)]
pub struct LinearShape {
    /// Batch size.
    pub batch: usize,
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
}

impl LinearShape {
    /// Checks the sizes; returns `(x, out)` element counts.
    pub fn lens(&self, label: &str) -> Result<(usize, usize)> {
        check_dims(
            label,
            &[
                ("batch", self.batch),
                ("in_features", self.in_features),
                ("out_features", self.out_features),
            ],
        )?;
        Ok((
            checked_len(label, "x", &[self.batch, self.in_features])?,
            checked_len(label, "out", &[self.batch, self.out_features])?,
        ))
    }

    /// Rows of each chunk of `chunks` (`len / in_features`), checked to tile the weight.
    pub fn chunk_rows(&self, label: &str, chunks: &[Arg]) -> Result<Vec<usize>> {
        let rows: Vec<usize> = chunks
            .iter()
            .map(|c| c.len as usize / self.in_features.max(1))
            .collect();
        let exact = chunks
            .iter()
            .zip(&rows)
            .all(|(c, &r)| r > 0 && r * self.in_features == c.len as usize);
        if !exact || rows.iter().sum::<usize>() != self.out_features {
            return Err(Error::shape(
                label,
                format!(
                    "weight chunks of {rows:?} rows must be whole rows of {} features and sum \
                     to out_features {}",
                    self.in_features, self.out_features
                ),
            ));
        }
        Ok(rows)
    }
}
