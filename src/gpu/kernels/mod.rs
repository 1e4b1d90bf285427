//! One launcher module per shader file: each owns its [`ShaderSpec`] (bind-group layout),
//! its parameter struct (mirroring the WGSL uniform), the pipeline choice and the dispatch
//! math, and returns ready-to-record [`Dispatch`]es.
//!
//! Shared here: argument checks that turn wrong sizes into errors, and [`fold_workgroups`],
//! which spreads a 1-D workgroup count over two grid dimensions when it exceeds
//! `max_compute_workgroups_per_dimension` (the shaders rebuild the linear id as
//! `wg.x + wg.y * num_workgroups.x` and bounds-check it).

pub mod conv;
pub mod conv_backward;
pub mod conv_fast;
pub mod conv_tiled;
pub mod conv_wgmem;
pub mod elementwise;
pub mod flgc;
pub mod gather;
pub mod gemv;
pub mod grad;
pub mod linear;
pub mod linear_backward;
pub mod loss;
pub mod norm;
pub mod norm_train;
pub mod optim;
pub mod pool;
pub mod pool_backward;
pub mod softmax;

use super::context::{BindingKind, GpuContext, PipelineKey, ShaderSpec, TensorRef};
use super::Dispatch;
use crate::error::{Error, Result};

/// Grid for `total` workgroups: `[total, 1, 1]` when it fits, else `[x, y, 1]` with
/// `x·y ≥ total`, both within the adapter's `max_compute_workgroups_per_dimension`.
/// Shaders must skip linear ids `≥ total`.
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

/// Checks that `t` holds exactly `expected` floats, lies inside its buffer, is aligned and
/// fits one storage binding. `what` names the tensor (`x`, `out`...).
pub(crate) fn check_tensor(
    ctx: &GpuContext,
    label: &str,
    what: &str,
    t: &TensorRef<'_>,
    expected: u64,
) -> Result<()> {
    if t.len != expected || expected == 0 {
        return Err(Error::tensor_shape(
            format!("{label} ({what})"),
            format!("{expected} elements (non-zero)"),
            &[t.len as usize],
        ));
    }
    let align = u64::from(ctx.limits.min_storage_buffer_offset_alignment);
    if t.offset % align != 0 {
        return Err(Error::shape(
            label,
            format!(
                "tensor `{what}` starts at byte {} which is not a multiple of min_storage_buffer_offset_alignment {align}",
                t.offset
            ),
        ));
    }
    if t.offset + t.len * 4 > t.buffer.size() {
        return Err(Error::shape(
            label,
            format!(
                "tensor `{what}` (bytes {}..{}) runs past the end of its {}-byte buffer",
                t.offset,
                t.offset + t.len * 4,
                t.buffer.size()
            ),
        ));
    }
    ctx.check_storage_size(label, what, t.len * 4)
}

/// Like [`check_tensor`] for a small side input read by index (`hyper`, `seed`): `t` must
/// hold at least `min` values; extra values are ignored.
pub(crate) fn check_tensor_min(
    ctx: &GpuContext,
    label: &str,
    what: &str,
    t: &TensorRef<'_>,
    min: u64,
) -> Result<()> {
    if t.len < min {
        return Err(Error::tensor_shape(
            format!("{label} ({what})"),
            format!("at least {min} values"),
            &[t.len as usize],
        ));
    }
    check_tensor(ctx, label, what, t, t.len)
}

/// `Π dims` as an element count that `u32` shader indexing can address; an error naming
/// `what` instead of an overflow.
pub(crate) fn checked_len(label: &str, what: &str, dims: &[usize]) -> Result<usize> {
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

/// Grid of `WG`-wide workgroups covering `len` invocations (one per element), folded.
pub(crate) fn element_grid(ctx: &GpuContext, label: &str, len: usize, wg: u32) -> Result<[u32; 3]> {
    fold_workgroups(ctx, label, (len as u64).div_ceil(u64::from(wg)))
}

/// Checks that a parameter buffer holds exactly `expected` 4-byte values.
pub(crate) fn check_buffer(
    ctx: &GpuContext,
    label: &str,
    what: &str,
    b: &wgpu::Buffer,
    expected: u64,
) -> Result<()> {
    if b.size() != expected.max(1) * 4 {
        return Err(Error::tensor_shape(
            format!("{label} ({what})"),
            format!("a buffer of {expected} values ({} bytes)", expected * 4),
            &[(b.size() / 4) as usize],
        ));
    }
    ctx.check_storage_size(label, what, b.size())
}

/// Fails with [`Error::Shape`] when a dimension is zero or a size overflows `u32` indexing.
pub(crate) fn check_dims(label: &str, dims: &[(&str, usize)]) -> Result<()> {
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

/// Compiles (or fetches) `entry` of `shader`, binds `resources` and packages the dispatch.
pub(crate) fn make_dispatch(
    ctx: &GpuContext,
    label: &str,
    shader: &'static ShaderSpec,
    entry: &'static str,
    constants: Vec<(&'static str, u32)>,
    resources: &[wgpu::BindingResource<'_>],
    workgroups: [u32; 3],
) -> Result<Dispatch> {
    check_no_alias(label, shader, resources)?;
    let pipeline = ctx.pipeline(&PipelineKey {
        shader,
        entry,
        constants,
    })?;
    let bind_group = ctx.bind_group(label, &pipeline, resources)?;
    Ok(Dispatch {
        label: format!("{label} [{}::{entry}]", shader.name),
        pipeline,
        bind_group,
        workgroups,
    })
}

/// wgpu forbids binding one buffer both read-only and read-write in a dispatch (even at
/// disjoint offsets); catch it here with a clear message instead of a validation error at
/// submit time.
fn check_no_alias(
    label: &str,
    shader: &ShaderSpec,
    resources: &[wgpu::BindingResource<'_>],
) -> Result<()> {
    let buffer = |r: &wgpu::BindingResource<'_>| match r {
        wgpu::BindingResource::Buffer(b) => Some(b.buffer.clone()),
        _ => None,
    };
    for (i, kind) in shader.bindings.iter().enumerate() {
        if *kind != BindingKind::ReadWrite {
            continue;
        }
        let Some(out) = resources.get(i).and_then(buffer) else {
            continue;
        };
        for (j, r) in resources.iter().enumerate() {
            if j != i && buffer(r).as_ref() == Some(&out) {
                return Err(Error::shape(
                    label,
                    format!(
                        "binding {j} and the output (binding {i}) of shader `{}` are the same buffer; \
                         wgpu forbids reading and writing one buffer in a dispatch, use separate buffers",
                        shader.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks a `#[repr(C)]` parameter struct can be a WGSL uniform (size a multiple of 16).
macro_rules! uniform_params {
    ($t:ty) => {
        const _: () = assert!(std::mem::size_of::<$t>() % 16 == 0);
    };
}
pub(crate) use uniform_params;
