//! Shader modules and compute pipelines, compiled on first use and cached per context
//! (by [`PipelineKey`]: shader, entry point, override constants), and bind groups.

use super::context::{lock, GpuContext, PipelineKey};
use super::declare::{BindingKind, ShaderSpec};
use crate::error::Result;
use std::sync::Arc;

impl GpuContext {
    fn module(&self, spec: &'static ShaderSpec) -> Result<wgpu::ShaderModule> {
        let mut modules = lock(&self.shaders.modules);
        if let Some(m) = modules.get(spec.name) {
            return Ok(m.clone());
        }
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(spec.name),
            source: wgpu::ShaderSource::Wgsl(spec.source().into()),
        };
        let m = self.scoped(&format!("shader {}", spec.name), || {
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
        modules.insert(spec.name, m.clone());
        Ok(m)
    }

    /// The compute pipeline for `key`, compiled on first use and cached by
    /// (shader, entry point, override constants).
    pub fn pipeline(&self, key: &PipelineKey) -> Result<Arc<wgpu::ComputePipeline>> {
        if let Some(p) = lock(&self.shaders.pipelines).get(key) {
            return Ok(p.clone());
        }
        let module = self.module(key.shader)?;
        let label = format!("{}::{}", key.shader.name, key.entry);
        let pipeline = self.scoped(&format!("pipeline {label}"), || {
            self.create_pipeline(key, &module, &label)
        })?;
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
                cache: None,
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
