//! How a kernel is called (its declaration: [`super::declare`]).
//!
//! A launcher returns [`Call`]s: pipeline, parameters, arguments and grid, with every size
//! already checked. An argument is a resident buffer or a [`BufId`], a buffer that the
//! lifetime planner places later ([`crate::gpu::program`]); [`Call::bind`] turns a call into a
//! ready-to-record [`Dispatch`].

use super::context::{BindingKind, GpuContext, PipelineKey, ShaderSpec};
use crate::error::{Error, Result};
use std::num::NonZeroU64;
use std::sync::Arc;

pub use super::mirror::{Field, ParamsLayout, WgslStruct};
pub use super::prelude::PRELUDE;

/// A scratch-buffer allocator: `(label, elements) → Arg` (a planned buffer in a program, a
/// fresh buffer in a test).
pub type Scratch<'a> = dyn FnMut(&str, usize) -> Result<Arg> + 'a;

/// A buffer that the lifetime planner places: an activation, a gradient or a scratch
/// buffer of a [`Program`](crate::gpu::program::Program).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufId(pub usize);

/// Where a tensor argument lives.
#[derive(Clone, Debug)]
pub enum ArgBuffer {
    /// A buffer that exists already (weights, or anything a test made).
    Resident(wgpu::Buffer),
    /// A planned buffer, bound when the program is instantiated.
    Planned(BufId),
}

/// A tensor argument of a kernel: `len` f32 (or u32) values from element `offset` of a buffer.
#[derive(Clone, Debug)]
pub struct Arg {
    /// The buffer.
    pub buffer: ArgBuffer,
    /// First element (the byte offset must be a multiple of the adapter's storage alignment).
    pub offset: u64,
    /// Number of 4-byte elements.
    pub len: u64,
}

impl Arg {
    /// The whole of a resident buffer.
    pub fn whole(buffer: &wgpu::Buffer) -> Self {
        Self {
            buffer: ArgBuffer::Resident(buffer.clone()),
            offset: 0,
            len: buffer.size() / 4,
        }
    }

    /// The first `len` elements of a resident buffer.
    pub fn prefix(buffer: &wgpu::Buffer, len: usize) -> Self {
        Self {
            buffer: ArgBuffer::Resident(buffer.clone()),
            offset: 0,
            len: len as u64,
        }
    }

    /// `len` elements of a planned buffer.
    pub fn planned(id: BufId, len: usize) -> Self {
        Self {
            buffer: ArgBuffer::Planned(id),
            offset: 0,
            len: len as u64,
        }
    }

    /// Elements `offset..offset+len` of this argument's buffer.
    pub fn slice(&self, offset: usize, len: usize) -> Self {
        Self {
            buffer: self.buffer.clone(),
            offset: self.offset + offset as u64,
            len: len as u64,
        }
    }

    /// The planned buffer, if this is one.
    pub fn planned_id(&self) -> Option<BufId> {
        match self.buffer {
            ArgBuffer::Planned(id) => Some(id),
            ArgBuffer::Resident(_) => None,
        }
    }
}

impl From<&wgpu::Buffer> for Arg {
    fn from(b: &wgpu::Buffer) -> Self {
        Arg::whole(b)
    }
}

/// Checks that `a` holds exactly `expected` values (non-zero) and is aligned; `what` names
/// the tensor. Resident buffers are also checked to contain the range and to fit a binding.
pub fn check_arg(ctx: &GpuContext, label: &str, what: &str, a: &Arg, expected: u64) -> Result<()> {
    if a.len != expected || expected == 0 {
        return Err(Error::tensor_shape(
            format!("{label} ({what})"),
            format!("{expected} elements (non-zero)"),
            &[a.len as usize],
        ));
    }
    check_arg_placement(ctx, label, what, a)
}

/// Like [`check_arg`] for a side input read by index: at least `min` values.
pub fn check_arg_min(ctx: &GpuContext, label: &str, what: &str, a: &Arg, min: u64) -> Result<()> {
    if a.len < min.max(1) {
        return Err(Error::tensor_shape(
            format!("{label} ({what})"),
            format!("at least {min} values"),
            &[a.len as usize],
        ));
    }
    check_arg_placement(ctx, label, what, a)
}

fn check_arg_placement(ctx: &GpuContext, label: &str, what: &str, a: &Arg) -> Result<()> {
    let align = u64::from(ctx.limits.min_storage_buffer_offset_alignment);
    let start = a.offset * 4;
    if start % align != 0 {
        return Err(Error::shape(
            label,
            format!(
                "tensor `{what}` starts at byte {start}, not a multiple of \
                 min_storage_buffer_offset_alignment {align}"
            ),
        ));
    }
    if let ArgBuffer::Resident(b) = &a.buffer {
        if start + a.len * 4 > b.size() {
            return Err(Error::shape(
                label,
                format!(
                    "tensor `{what}` (bytes {start}..{}) runs past the end of its {}-byte buffer",
                    start + a.len * 4,
                    b.size()
                ),
            ));
        }
    }
    ctx.check_storage_size(label, what, a.len * 4)
}

/// One kernel dispatch before its planned buffers are bound.
#[derive(Clone, Debug)]
pub struct Call {
    /// Layer name and kernel, for profiles and debug markers.
    pub label: String,
    /// The shader file.
    pub shader: &'static ShaderSpec,
    /// The entry point.
    pub entry: &'static str,
    /// Pipeline-overridable constants.
    pub constants: Vec<(&'static str, u32)>,
    /// The uniform parameters.
    pub uniform: wgpu::Buffer,
    /// The storage arguments in binding order.
    pub args: Vec<Arg>,
    /// Workgroup counts.
    pub grid: [u32; 3],
}

/// A kernel entry point: shader file, entry name and override constants.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The shader file.
    pub shader: &'static ShaderSpec,
    /// The entry point.
    pub name: &'static str,
    /// Pipeline-overridable constants (`override NAME: u32`).
    pub constants: Vec<(&'static str, u32)>,
}

impl ShaderSpec {
    /// Entry point `name` with override `constants`.
    pub fn entry(&'static self, name: &'static str, constants: &[(&'static str, u32)]) -> Entry {
        Entry {
            shader: self,
            name,
            constants: constants.to_vec(),
        }
    }
}

impl Call {
    /// A call of `entry` with `params`; the arguments' count must match the shader's bindings,
    /// and no buffer may be bound both for reading and writing.
    pub fn new<P: WgslStruct>(
        ctx: &GpuContext,
        label: &str,
        entry: Entry,
        params: &P,
        args: Vec<Arg>,
        grid: [u32; 3],
    ) -> Result<Self> {
        // An activation fused in `params.epi` beyond ReLU/ReLU6 runs in the shader's twin
        // compiled for it (gpu::twin); the label keeps the kernel's own name.
        let shader = super::twin::specialise(entry.shader, params)?;
        if args.len() + 1 != shader.bindings.len() {
            return Err(Error::InvalidArgument(format!(
                "{label}: shader `{}` takes {} arguments, got {}",
                shader.name,
                shader.bindings.len() - 1,
                args.len()
            )));
        }
        let call = Self {
            label: format!("{label} [{}::{}]", entry.shader.name, entry.name),
            shader,
            entry: entry.name,
            constants: entry.constants,
            uniform: ctx.uniform(&format!("{label} params"), params)?,
            args,
            grid,
        };
        call.check_aliasing(|a| match &a.buffer {
            ArgBuffer::Resident(b) => Some(b.clone()),
            ArgBuffer::Planned(_) => None,
        })?;
        call.check_aliasing_planned()?;
        Ok(call)
    }

    /// wgpu forbids binding one buffer both read-only and read-write in a dispatch (even at
    /// disjoint offsets); say so clearly instead of failing validation at submit time.
    fn check_aliasing(&self, buf: impl Fn(&Arg) -> Option<wgpu::Buffer>) -> Result<()> {
        for (i, kind) in self.shader.bindings[1..].iter().enumerate() {
            if *kind != BindingKind::ReadWrite {
                continue;
            }
            let Some(out) = buf(&self.args[i]) else {
                continue;
            };
            if let Some(j) =
                (0..self.args.len()).find(|&j| j != i && buf(&self.args[j]) == Some(out.clone()))
            {
                return Err(self.alias_error(i, j));
            }
        }
        Ok(())
    }

    fn check_aliasing_planned(&self) -> Result<()> {
        for (i, kind) in self.shader.bindings[1..].iter().enumerate() {
            let Some(id) = self.args[i].planned_id() else {
                continue;
            };
            if *kind != BindingKind::ReadWrite {
                continue;
            }
            if let Some(j) =
                (0..self.args.len()).find(|&j| j != i && self.args[j].planned_id() == Some(id))
            {
                return Err(self.alias_error(i, j));
            }
        }
        Ok(())
    }

    fn alias_error(&self, out: usize, other: usize) -> Error {
        let names = self.shader.binding_names;
        Error::shape(
            &self.label,
            format!(
                "`{}` and the output `{}` of shader `{}` are the same buffer; wgpu forbids \
                 reading and writing one buffer in a dispatch, use separate buffers",
                names[other + 1],
                names[out + 1],
                self.shader.name
            ),
        )
    }

    /// The planned buffers this call reads or writes.
    pub fn planned(&self) -> impl Iterator<Item = BufId> + '_ {
        self.args.iter().filter_map(Arg::planned_id)
    }

    /// The pipeline this call runs: shader, entry point, override constants.
    pub fn pipeline_key(&self) -> PipelineKey {
        PipelineKey {
            shader: self.shader,
            entry: self.entry,
            constants: self.constants.clone(),
        }
    }

    /// Binds a call whose arguments are all resident buffers.
    pub fn bind(&self, ctx: &GpuContext) -> Result<Dispatch> {
        self.bind_with(ctx, &|id| {
            Err(Error::InvalidArgument(format!(
                "{}: planned buffer {id:?} bound outside a program",
                self.label
            )))
        })
    }

    /// Binds a call, taking planned buffers from `resolve`.
    pub fn bind_with(
        &self,
        ctx: &GpuContext,
        resolve: &dyn Fn(BufId) -> Result<wgpu::Buffer>,
    ) -> Result<Dispatch> {
        self.bind_planned(ctx, &|id| Ok((resolve(id)?, false)))
    }

    /// Binds a call, taking planned buffers from `resolve` with whether each holds halves
    /// (then bound whole from its start at 2 bytes a value, rounded up to a word).
    pub fn bind_planned(
        &self,
        ctx: &GpuContext,
        resolve: &dyn Fn(BufId) -> Result<(wgpu::Buffer, bool)>,
    ) -> Result<Dispatch> {
        let buffers: Vec<(wgpu::Buffer, bool)> = self
            .args
            .iter()
            .map(|a| match &a.buffer {
                ArgBuffer::Resident(b) => Ok((b.clone(), false)),
                ArgBuffer::Planned(id) => resolve(*id),
            })
            .collect::<Result<_>>()?;
        let pipeline = ctx.pipeline(&self.pipeline_key())?;
        let mut resources = vec![self.uniform.as_entire_binding()];
        for (a, (b, half)) in self.args.iter().zip(&buffers) {
            let (offset, size) = match half {
                true if a.offset != 0 => {
                    return Err(Error::InvalidArgument(format!(
                        "{}: a slice of a buffer of halves (offset {})",
                        self.label, a.offset
                    )))
                }
                true => (0, (a.len * 2).next_multiple_of(4)),
                false => (a.offset * 4, a.len * 4),
            };
            resources.push(wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: b,
                offset,
                size: NonZeroU64::new(size),
            }));
        }
        let bind_group = ctx.bind_group(&self.label, &pipeline, &resources)?;
        Ok(Dispatch {
            label: self.label.clone(),
            pipeline,
            bind_group,
            workgroups: self.grid,
        })
    }
}

/// Binds calls whose arguments are all resident (tests, one-off kernels).
pub fn bind_all(ctx: &GpuContext, calls: &[Call]) -> Result<Vec<Dispatch>> {
    calls.iter().map(|c| c.bind(ctx)).collect()
}

/// Everything bound and sized; recorded many times.
#[derive(Debug)]
pub struct Dispatch {
    /// Layer (and kernel) name, used as a debug marker.
    pub label: String,
    /// The compiled pipeline.
    pub pipeline: Arc<wgpu::ComputePipeline>,
    /// Its bound buffers (group 0).
    pub bind_group: wgpu::BindGroup,
    /// Workgroup counts, each at most `max_compute_workgroups_per_dimension`.
    pub workgroups: [u32; 3],
}

impl Dispatch {
    /// Sets the pipeline and bind group and dispatches into `pass`.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Grid for `total` workgroups: `[total, 1, 1]` when it fits, else `[x, y, 1]` with
/// `x·y ≥ total`, both within the adapter's `max_compute_workgroups_per_dimension`.
/// Shaders rebuild the linear id with the prelude's `linear_wg` and skip ids `≥ total`.
pub fn fold_workgroups(ctx: &GpuContext, label: &str, total: u64) -> Result<[u32; 3]> {
    let max = u64::from(ctx.limits.max_compute_workgroups_per_dimension.max(1));
    if total <= max {
        return Ok([total.max(1) as u32, 1, 1]);
    }
    let y = total.div_ceil(max);
    if y > max {
        return Err(Error::AdapterLimit {
            layer: label.to_string(),
            tensor: "dispatch".to_string(),
            needed: total,
            limit_name: "max_compute_workgroups_per_dimension (squared)",
            limit: max * max,
        });
    }
    let x = total.div_ceil(y);
    Ok([x as u32, y as u32, 1])
}

/// Grid of `wg`-wide workgroups covering `len` invocations (one per element), folded.
pub fn element_grid(ctx: &GpuContext, label: &str, len: usize, wg: u32) -> Result<[u32; 3]> {
    fold_workgroups(ctx, label, (len as u64).div_ceil(u64::from(wg)))
}

/// `Π dims` as an element count that `u32` shader indexing can address; an error naming
/// `what` instead of an overflow.
pub fn checked_len(label: &str, what: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= u32::MAX as usize)
        .ok_or_else(|| {
            Error::shape(
                label,
                format!("{what} {dims:?} has more than u32::MAX elements"),
            )
        })
}

/// Fails with [`Error::Shape`] when a dimension is zero or a size overflows `u32` indexing.
pub fn check_dims(label: &str, dims: &[(&str, usize)]) -> Result<()> {
    for &(name, v) in dims {
        if v == 0 {
            return Err(Error::shape(label, format!("{name} must be positive")));
        }
        if v > u32::MAX as usize {
            return Err(Error::shape(label, format!("{name} = {v} exceeds u32")));
        }
    }
    Ok(())
}
