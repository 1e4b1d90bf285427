//! Shader modules and compute pipelines, compiled on first use and cached per context
//! (by [`PipelineKey`]: shader, entry point, override constants), and bind groups.
//!
//! A module holds one entry point and what it reaches ([`ShaderSpec::entry_source`]), not
//! the whole file: the generated files hold dozens of entry points and naga parses and
//! validates whatever it is given, once per module and again per pipeline with override
//! constants. Pipelines are compiled through the context's on-disk
//! [`pipeline_cache`](super::pipeline_cache) where the backend has one.

use super::context::{lock, GpuContext, PipelineKey};
use super::declare::{BindingKind, ShaderSpec};
use super::pipeline_cache::DiskPipelineCache;
use crate::error::{Error, Result};
use std::sync::Arc;

impl GpuContext {
    fn module(&self, spec: &'static ShaderSpec, entry: &'static str) -> Result<wgpu::ShaderModule> {
        if let Some(m) = lock(&self.shaders.modules).get(&(spec.name, entry)) {
            return Ok(m.clone());
        }
        // Not under the lock: other threads compile other entry points meanwhile
        // ([`GpuContext::prepare_pipelines`]); a module made twice is kept once.
        let source = spec.entry_source(entry).ok_or_else(|| {
            Error::Gpu(format!(
                "shaders/{}.wgsl has no entry point {entry}",
                spec.name
            ))
        })?;
        let label = format!("{}::{entry}", spec.name);
        let (t0, source_len) = (std::time::Instant::now(), source.len());
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        };
        let m = self.scoped(&format!("shader {label}"), || {
            if spec.trusted {
                // SAFETY: `trusted` shaders clamp every index they compute from data and their
                // launchers validate every size against the bound buffers; tests/gpu_ops/
                // exercises the edge shapes (padding, odd sizes, partial tiles) against the CPU.
                unsafe {
                    self.device
                        .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
                }
            } else {
                self.device.create_shader_module(desc)
            }
        })?;
        log::debug!(
            "shader module {label}: {} bytes of WGSL in {:.1} ms",
            source_len,
            t0.elapsed().as_secs_f64() * 1e3
        );
        Ok(lock(&self.shaders.modules)
            .entry((spec.name, entry))
            .or_insert(m)
            .clone())
    }

    /// Compiles the pipelines of `keys` not compiled yet, several at once (a thread per
    /// core or `GCONV_COMPILE_THREADS`, at most one per pipeline), so that a model's first run finds them ready; the
    /// first error, naming its pipeline, is returned.
    pub fn prepare_pipelines<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k PipelineKey>,
    ) -> Result<()> {
        let todo: Vec<&PipelineKey> = {
            let done = lock(&self.shaders.pipelines);
            let mut todo: Vec<&PipelineKey> = Vec::new();
            // A model has tens of distinct pipelines: a linear search is enough.
            for k in keys {
                if !done.contains_key(k) && !todo.contains(&k) {
                    todo.push(k);
                }
            }
            todo
        };
        let threads = compile_threads().min(todo.len());
        if threads <= 1 {
            return todo.iter().try_for_each(|k| self.pipeline(k).map(drop));
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || -> Result<()> {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(k) = todo.get(i) else { return Ok(()) };
                self.pipeline(k)?;
            }
        };
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        })
    }

    /// The on-disk pipeline cache, when it is on and the backend has one.
    pub fn pipeline_cache(&self) -> Option<&DiskPipelineCache> {
        self.disk.as_ref()
    }

    /// Writes the pipeline cache now (it is also written when the context is dropped);
    /// `Ok(false)` when it is off or nothing changed.
    pub fn save_pipeline_cache(&self) -> Result<bool> {
        self.disk
            .as_ref()
            .map_or(Ok(false), DiskPipelineCache::save)
    }

    /// The compute pipeline for `key`, compiled on first use and cached by
    /// (shader, entry point, override constants).
    pub fn pipeline(&self, key: &PipelineKey) -> Result<Arc<wgpu::ComputePipeline>> {
        if let Some(p) = lock(&self.shaders.pipelines).get(key) {
            return Ok(p.clone());
        }
        let module = self.module(key.shader, key.entry)?;
        let label = format!("{}::{}", key.shader.name, key.entry);
        let t0 = std::time::Instant::now();
        let pipeline = self.scoped(&format!("pipeline {label}"), || {
            self.create_pipeline(key, &module, &label)
        })?;
        log::debug!(
            "pipeline {label} {:?}: {:.1} ms",
            key.constants,
            t0.elapsed().as_secs_f64() * 1e3
        );
        let p = Arc::new(pipeline);
        lock(&self.shaders.pipelines).insert(key.clone(), p.clone());
        Ok(p)
    }

    fn create_pipeline(
        &self,
        key: &PipelineKey,
        module: &wgpu::ShaderModule,
        label: &str,
    ) -> wgpu::ComputePipeline {
        let entries: Vec<wgpu::BindGroupLayoutEntry> = key
            .shader
            .bindings
            .iter()
            .enumerate()
            .map(|(i, k)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match k {
                        BindingKind::Uniform => wgpu::BufferBindingType::Uniform,
                        BindingKind::ReadOnly => {
                            wgpu::BufferBindingType::Storage { read_only: true }
                        }
                        BindingKind::ReadWrite => {
                            wgpu::BufferBindingType::Storage { read_only: false }
                        }
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let bgl = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(key.shader.name),
                entries: &entries,
            });
        let layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(key.shader.name),
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
        let constants: Vec<(&str, f64)> = key
            .constants
            .iter()
            .map(|&(n, v)| (n, f64::from(v)))
            .collect();
        self.device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: Some(&layout),
                module,
                entry_point: Some(key.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: self.disk.as_ref().map(DiskPipelineCache::for_compile),
            })
    }

    /// Binds `resources` (binding `i` = `resources[i]`) to group 0 of `pipeline`; validation
    /// errors become [`Error::Gpu`] naming `label`.
    pub fn bind_group(
        &self,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        resources: &[wgpu::BindingResource<'_>],
    ) -> Result<wgpu::BindGroup> {
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: r.clone(),
            })
            .collect();
        self.scoped(label, || {
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            })
        })
    }
}

/// Threads that compile pipelines at once: `GCONV_COMPILE_THREADS` (≥ 1), else one per core.
fn compile_threads() -> usize {
    std::env::var("GCONV_COMPILE_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n >= 1)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
