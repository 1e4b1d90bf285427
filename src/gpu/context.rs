//! The device side of gconv: adapter choice, buffers, the pipeline cache and [`Dispatch`](super::Dispatch).
//!
//! Everything here returns [`Result`]: out-of-memory, validation and internal errors are caught
//! with error scopes and become [`Error::Gpu`]; a lost device (driver reset, `destroy`) is
//! recorded and every later call here is an [`Error::DeviceLost`] (a `Runtime` recreates it:
//! [`super::recovery`]); errors outside any scope are logged and kept for [`GpuContext::check`].

use super::adapter::AdapterClass;
use super::pipeline_cache::{DiskPipelineCache, GpuOptions};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

pub use super::declare::{BindingKind, ShaderSpec};

/// Identifies one compute pipeline: shader, entry point and override constants.
#[derive(Clone, Debug)]
pub struct PipelineKey {
    /// The shader file.
    pub shader: &'static ShaderSpec,
    /// Entry point name.
    pub entry: &'static str,
    /// Pipeline-overridable constants (`override NAME: u32`), by name.
    pub constants: Vec<(&'static str, u32)>,
}

impl PartialEq for PipelineKey {
    fn eq(&self, o: &Self) -> bool {
        self.shader.name == o.shader.name && self.entry == o.entry && self.constants == o.constants
    }
}
impl Eq for PipelineKey {}
impl Hash for PipelineKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.shader.name.hash(h);
        self.entry.hash(h);
        self.constants.hash(h);
    }
}

/// A context's compiled shader modules and pipelines.
#[derive(Default)]
pub(super) struct PipelineCache {
    /// One module per (shader, entry point): [`ShaderSpec::entry_source`].
    pub(super) modules: Mutex<HashMap<(&'static str, &'static str), wgpu::ShaderModule>>,
    pub(super) pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
}

/// An adapter, its device and queue, its limits, and a cache of compiled pipelines.
pub struct GpuContext {
    /// The logical device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// What the adapter is (name, backend, driver).
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with (the adapter's own).
    pub limits: wgpu::Limits,
    /// The features the device was created with.
    pub features: wgpu::Features,
    /// The square f16 × f16 + f32 cooperative-matrix size the device was opened for (16 or
    /// 8), where the adapter has one ([`cooperative_matrix_size`]); `None` elsewhere.
    pub cooperative_matrix: Option<u32>,
    pub(super) shaders: PipelineCache,
    /// What it was opened with (a recreated context after a device loss gets the same).
    pub options: GpuOptions,
    /// Compiled pipelines kept between processes, where the backend has a cache.
    pub(super) disk: Option<DiskPipelineCache>,
    faults: Arc<Faults>,
}

/// What the device-lost and uncaptured-error callbacks saw (on wgpu's threads): why the device
/// was lost (never cleared), the first error no scope caught since the last check.
#[derive(Default)]
struct Faults {
    lost: Mutex<Option<String>>,
    uncaptured: Mutex<Option<String>>,
}

/// Locks `m`, also after a panic elsewhere (the data are plain caches and messages).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn gpu_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Gpu(format!("{what}: {e}"))
}

impl GpuContext {
    /// Picks an adapter honouring `WGPU_BACKEND` (backends to try), `WGPU_ADAPTER_NAME`
    /// (substring of the adapter name, case-insensitive) and `WGPU_POWER_PREF`, then creates
    /// a device with the adapter's own limits (so e.g. lavapipe's 128 MiB storage bindings
    /// are usable). Returns [`Error::NoAdapter`] when there is none; never panics.
    /// Compiled pipelines are cached on disk unless `GCONV_PIPELINE_CACHE=off`
    /// ([`GpuOptions::from_env`]).
    pub fn new() -> Result<Self> {
        Self::with_options(&GpuOptions::from_env())
    }

    /// [`GpuContext::new`] with explicit [`GpuOptions`] (e.g. no pipeline cache, or its folder).
    pub fn with_options(opts: &GpuOptions) -> Result<Self> {
        // A mistyped forced class is an error before any adapter is opened.
        AdapterClass::from_env()?;
        pollster::block_on(async {
            Self::open(super::adapters::pick_from_env().await?, opts).await
        })
    }

    /// A context on `adapter` (one of [`super::adapters::list_adapters`]), with the limits
    /// and features [`GpuContext::new`] asks for (and its pipeline cache, per
    /// [`GpuOptions::from_env`]).
    pub fn from_adapter(adapter: wgpu::Adapter) -> Result<Self> {
        AdapterClass::from_env()?;
        pollster::block_on(Self::open(adapter, &GpuOptions::from_env()))
    }

    /// A new context on the adapter this one was opened on, with the same options: what a
    /// lost device is replaced by.
    ///
    /// # Errors
    ///
    /// [`Error::NoAdapter`] naming the adapter when it is no longer listed (a GPU that is
    /// gone) or refuses a device.
    pub fn reopen(&self) -> Result<Self> {
        let adapter = super::adapters::same_adapter(&self.info)?;
        pollster::block_on(Self::open(adapter, &self.options))
    }

    async fn open(adapter: wgpu::Adapter, opts: &GpuOptions) -> Result<Self> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        // Optional features, taken when the adapter has them (timestamps only make `gconv
        // bench`'s per-layer times more precise; `SHADER_F16` lets a model loaded with
        // `Precision::F16` keep its activations as halves, `gpu::twin::halve`).
        let mut wanted =
            wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16;
        if opts.pipeline_cache.is_some() {
            wanted |= wgpu::Features::PIPELINE_CACHE;
        }
        let cooperative_matrix = cooperative_matrix_size(&adapter);
        let mut experimental = wgpu::ExperimentalFeatures::disabled();
        if cooperative_matrix.is_some() {
            wanted |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
            // SAFETY: wgpu's experimental cooperative-matrix API. gconv's only uses are the
            // `conv_coop` and `linear_coop` shaders, whose matrix operations are uniform (one subgroup per
            // workgroup, uniform control flow), in bounds (workgroup arrays sized for the
            // largest tile) and validated by naga in CI; `GCONV_COOPERATIVE_MATRIX=off`
            // turns it off.
            experimental = unsafe { wgpu::ExperimentalFeatures::enabled() };
        }
        let features = adapter.features() & wanted;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("gconv"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: experimental,
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::NoAdapter(format!("{} refused a device: {e}", info.name)))?;
        let faults = Arc::<Faults>::default();
        let f = faults.clone();
        device.on_uncaptured_error(Arc::new(move |e| {
            log::error!("uncaptured wgpu error: {e}");
            lock(&f.uncaptured).get_or_insert(e.to_string());
        }));
        let f = faults.clone();
        device.set_device_lost_callback(move |reason, msg| {
            log::error!("wgpu device lost ({reason:?}): {msg}");
            lock(&f.lost).get_or_insert(format!("{reason:?}: {msg}"));
        });
        let disk = match &opts.pipeline_cache {
            Some(dir) if features.contains(wgpu::Features::PIPELINE_CACHE) => {
                DiskPipelineCache::open(&device, &info, dir)
            }
            _ => None,
        };
        Ok(Self {
            device,
            queue,
            info,
            limits,
            features,
            cooperative_matrix,
            shaders: PipelineCache::default(),
            options: opts.clone(),
            disk,
            faults,
        })
    }

    /// Why the device was lost (`Destroyed: …`), or `None`; polls first (wgpu reports it there).
    pub fn lost(&self) -> Option<String> {
        let _ = self.device.poll(wgpu::PollType::Poll);
        lock(&self.faults.lost).clone()
    }

    /// [`Error::DeviceLost`] naming the adapter and the reason when the device is lost.
    pub fn check_lost(&self) -> Result<()> {
        let name = &self.info.name;
        let lost = |why| Error::DeviceLost(format!("the device ({name}) is lost ({why})"));
        self.lost().map_or(Ok(()), |why| Err(lost(why)))
    }

    /// [`Error::Gpu`] when the device is lost (every time) or when an error escaped the error
    /// scopes since the last check (once; it was also logged), e.g. after a model's run.
    pub fn check(&self) -> Result<()> {
        self.check_lost()?;
        match lock(&self.faults.uncaptured).take() {
            Some(e) => Err(Error::Gpu(format!("earlier uncaught wgpu error: {e}"))),
            None => Ok(()),
        }
    }

    /// Runs `f` (device calls) inside out-of-memory, validation and internal error scopes
    /// unless the device is lost; the first error caught names `what`.
    pub(super) fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        self.check_lost()?;
        use wgpu::ErrorFilter as F;
        let scopes = [F::OutOfMemory, F::Validation, F::Internal];
        let scopes = scopes.map(|filter| self.device.push_error_scope(filter));
        let out = f();
        // Popped innermost first; every one is popped (`or` is eager).
        let pop = |e: Option<_>, s: wgpu::ErrorScopeGuard| e.or(pollster::block_on(s.pop()));
        match (scopes.into_iter().rev().fold(None, pop), self.lost()) {
            (Some(e), _) => Err(gpu_err(what, e)),
            (None, Some(why)) => Err(Error::DeviceLost(format!("{what}: device lost ({why})"))),
            (None, None) => Ok(out),
        }
    }

    /// One line naming the adapter, backend and driver, e.g.
    /// `llvmpipe (LLVM 15.0.6, 256 bits) · Vulkan · Mesa 22.3.6`.
    pub fn describe(&self) -> String {
        let i = &self.info;
        let mut s = format!("{} · {:?}", i.name, i.backend);
        if !i.driver_info.is_empty() {
            s += &format!(" · {}", i.driver_info);
        } else if !i.driver.is_empty() {
            s += &format!(" · {}", i.driver);
        }
        s
    }

    /// Whether the adapter is a CPU (lavapipe, SwiftShader, WARP...).
    pub fn is_cpu(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The class whose kernel candidate lists this adapter takes ([`AdapterClass::of`]).
    pub fn adapter_class(&self) -> AdapterClass {
        AdapterClass::of(&self.info)
    }

    /// Checks that a buffer of `bytes` may be created and bound as one storage binding.
    pub fn check_storage_size(&self, label: &str, tensor: &str, bytes: u64) -> Result<()> {
        let lim = |limit_name, limit| Error::AdapterLimit {
            layer: label.to_string(),
            tensor: tensor.to_string(),
            needed: bytes,
            limit_name,
            limit,
        };
        if bytes > self.limits.max_buffer_size {
            return Err(lim("max_buffer_size", self.limits.max_buffer_size));
        }
        if bytes > self.limits.max_storage_buffer_binding_size {
            return Err(lim(
                "max_storage_buffer_binding_size",
                self.limits.max_storage_buffer_binding_size,
            ));
        }
        Ok(())
    }

    const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
        .union(wgpu::BufferUsages::COPY_SRC)
        .union(wgpu::BufferUsages::COPY_DST);

    /// A storage buffer (`STORAGE | COPY_SRC | COPY_DST`) holding `data`.
    /// [`Error::AdapterLimit`] naming `label` when it exceeds the adapter's buffer or binding size.
    pub fn upload(&self, label: &str, data: &[f32]) -> Result<wgpu::Buffer> {
        let bytes = (data.len() * 4) as u64;
        self.check_storage_size(label, label, bytes)?;
        if data.is_empty() {
            return self.storage_buffer(label, 4);
        }
        self.buffer_init(label, bytemuck::cast_slice(data), Self::USAGE)
    }

    /// `create_buffer_init` without its panic when the buffer could not be created (out of
    /// memory, lost device): `contents` (zero-padded to 4 bytes) mapped at creation.
    fn buffer_init(
        &self,
        label: &str,
        contents: &[u8],
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        let size = (contents.len() as u64).max(4).div_ceil(4) * 4;
        let desc = wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: true,
        };
        let buf = self.scoped(label, || self.device.create_buffer(&desc))?;
        buf.get_mapped_range_mut(..)
            .map_err(|e| gpu_err(label, e))?
            .slice(..contents.len())
            .copy_from_slice(contents);
        buf.unmap();
        Ok(buf)
    }

    /// A zeroed storage buffer of `bytes` bytes (rounded up to a multiple of 4, at least 4),
    /// same usages and checks as [`upload`](Self::upload).
    pub fn storage_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let bytes = bytes.max(4).div_ceil(4) * 4;
        self.check_storage_size(label, label, bytes)?;
        let desc = wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: Self::USAGE,
            mapped_at_creation: false,
        };
        self.scoped(label, || self.device.create_buffer(&desc))
    }

    /// A storage buffer of `u32`s (e.g. gather indices, group tables).
    pub fn upload_u32(&self, label: &str, data: &[u32]) -> Result<wgpu::Buffer> {
        self.upload(label, bytemuck::cast_slice(data))
    }

    /// Copies `len` floats starting at element `offset_elems` of `buf` back to the host
    /// (staging buffer, map, blocking poll). Errors, never panics, on a bad range or a
    /// failed map.
    pub fn read_f32(&self, buf: &wgpu::Buffer, offset_elems: u64, len: usize) -> Result<Vec<f32>> {
        let bytes = len as u64 * 4;
        let start = offset_elems.saturating_mul(4);
        if start.saturating_add(bytes) > buf.size() {
            return Err(Error::InvalidArgument(format!(
                "read_f32: elements {offset_elems}..{} are outside a buffer of {} floats",
                offset_elems + len as u64,
                buf.size() / 4
            )));
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        let (staging, rx, polled) = self.scoped("read_f32", || {
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("gconv read-back"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("gconv read-back"),
                });
            enc.copy_buffer_to_buffer(buf, start, &staging, 0, bytes);
            self.queue.submit([enc.finish()]);
            let (tx, rx) = std::sync::mpsc::channel();
            staging.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
            let polled = self.device.poll(wgpu::PollType::wait_indefinitely());
            (staging, rx, polled)
        })?;
        polled.map_err(|e| gpu_err("read_f32: poll", e))?;
        rx.recv()
            .map_err(|e| gpu_err("read_f32: map callback", e))?
            .map_err(|e| gpu_err("read_f32: map", e))?;
        let out = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| gpu_err("read_f32: mapped range", e))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        Ok(out)
    }

    /// The first `bytes` of a `MAP_READ` buffer (a model's staging buffer), once the GPU
    /// has finished the work submitted before.
    pub fn map_read(&self, buf: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        buf.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu_err("waiting for the GPU", e))?;
        rx.recv()
            .map_err(|_| Error::Gpu("map callback never ran".into()))?
            .map_err(|e| gpu_err("mapping a read-back buffer", e))?;
        let out = buf
            .get_mapped_range(0..bytes)
            .map_err(|e| Error::Gpu(format!("reading a mapped buffer: {e:?}")))?
            .to_vec();
        buf.unmap();
        Ok(out)
    }

    /// A uniform buffer holding `v` (kernel parameters).
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, v: &T) -> Result<wgpu::Buffer> {
        self.buffer_init(label, bytemuck::bytes_of(v), wgpu::BufferUsages::UNIFORM)
    }
}

/// Runs `dispatches` in one encoder, one compute pass and one submit, then waits for the
/// device. Validation, out-of-memory and device-lost errors become [`Error::Gpu`].
pub fn run_dispatches(ctx: &GpuContext, dispatches: &[super::Dispatch]) -> Result<()> {
    let polled = ctx.scoped("run_dispatches", || {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gconv run"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gconv run"),
                timestamp_writes: None,
            });
            for d in dispatches {
                d.record(&mut pass);
            }
        }
        ctx.queue.submit([enc.finish()]);
        ctx.device.poll(wgpu::PollType::wait_indefinitely())
    })?;
    polled.map_err(|e| gpu_err("run_dispatches: poll", e))?;
    Ok(())
}

/// The cooperative-matrix size `conv_coop` can use on `adapter` ([`cooperative_size_of`]
/// of its features, subgroup sizes and matrix shapes); `None` with
/// `GCONV_COOPERATIVE_MATRIX=off` (A/B runs).
pub fn cooperative_matrix_size(adapter: &wgpu::Adapter) -> Option<u32> {
    if std::env::var("GCONV_COOPERATIVE_MATRIX").is_ok_and(|v| v.trim() == "off") {
        return None;
    }
    let info = adapter.get_info();
    cooperative_size_of(
        adapter.features(),
        [info.subgroup_min_size, info.subgroup_max_size],
        &adapter.cooperative_matrix_properties(),
    )
}

/// 16 or 8 where an adapter with `features`, subgroups of `[min, max]` invocations and
/// cooperative-matrix `shapes` reports square `S × S × S` matrices of f16 operands and f32
/// accumulators (16 preferred: NVIDIA's and AMD's Vulkan drivers; Metal has 8), has
/// `SHADER_F16`, and runs subgroups of exactly 32 (a `conv_coop` workgroup is one subgroup of
/// 32 invocations, so its matrix operations are subgroup-uniform; an adapter that may run it
/// on 64-wide subgroups is left out). `None` elsewhere.
pub fn cooperative_size_of(
    features: wgpu::Features,
    [min, max]: [u32; 2],
    shapes: &[wgpu::CooperativeMatrixProperties],
) -> Option<u32> {
    let need = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SHADER_F16;
    if !features.contains(need) || min != 32 || max != 32 {
        return None;
    }
    [16, 8].into_iter().find(|&s| {
        shapes.iter().any(|p| {
            p.m_size == s
                && p.n_size == s
                && p.k_size == s
                && p.ab_type == wgpu::CooperativeScalarType::F16
                && p.cr_type == wgpu::CooperativeScalarType::F32
        })
    })
}
