//! The adapters wgpu sees, for a person to choose one (the desktop app's device list), and
//! opening the chosen one as a `GpuContext`.
//!
//! The backends tried follow `WGPU_BACKEND` as `GpuContext::new` does; the list is in
//! wgpu's enumeration order, which is stable between two enumerations in one process.

use crate::error::{Error, Result};

/// One adapter: what it is and which optional features it offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Position in [`list_adapters`].
    pub index: usize,
    /// Adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Backend: `Vulkan`, `Metal`, `Dx12`, `Gl`.
    pub backend: String,
    /// Driver and driver info, e.g. `llvmpipe · Mesa 22.3.6 (LLVM 15.0.6)`.
    pub driver: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu`, `Other`.
    pub device_type: String,
    /// A CPU pretending to be a GPU (lavapipe, SwiftShader, WARP).
    pub software: bool,
    /// `shader-f16`: half-precision types in shaders (gconv's f16 activations need it).
    pub f16: bool,
    /// Subgroup operations (some gconv kernels use them when present).
    pub subgroup: bool,
    /// Cooperative-matrix (tensor-core style) operations, experimental in wgpu.
    pub cooperative_matrix: bool,
    /// GPU timestamp queries (per-layer times measured on the GPU).
    pub timestamps: bool,
}

impl AdapterSummary {
    /// One line: name · backend · driver, as `GpuContext::describe` writes it.
    pub fn describe(&self) -> String {
        if self.driver.is_empty() {
            format!("{} · {}", self.name, self.backend)
        } else {
            format!("{} · {} · {}", self.name, self.backend, self.driver)
        }
    }

    /// The optional features it has, in words (`f16, subgroups`), or `none`.
    pub fn feature_list(&self) -> String {
        let f: Vec<&str> = [
            (self.f16, "f16"),
            (self.subgroup, "subgroups"),
            (self.cooperative_matrix, "cooperative matrix"),
            (self.timestamps, "timestamps"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        if f.is_empty() {
            "none".into()
        } else {
            f.join(", ")
        }
    }
}

/// The adapter `GpuContext::new` opens: the one whose name contains `WGPU_ADAPTER_NAME`
/// (case-insensitive) among the `WGPU_BACKEND` backends, else wgpu's pick for
/// `WGPU_POWER_PREF`; [`Error::NoAdapter`] when there is none.
pub(super) async fn pick_from_env() -> Result<wgpu::Adapter> {
    let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let backends = desc.backends;
    let instance = wgpu::Instance::new(desc);
    let adapter = match std::env::var("WGPU_ADAPTER_NAME") {
        Ok(want) => {
            let want = want.to_lowercase();
            let all = instance.enumerate_adapters(backends).await;
            let names: Vec<String> = all.iter().map(|a| a.get_info().name).collect();
            all.into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&want))
                .ok_or_else(|| {
                    Error::NoAdapter(format!(
                        "WGPU_ADAPTER_NAME={want} matches none of {names:?} (backends {backends:?})"
                    ))
                })?
        }
        Err(_) => instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::from_env().unwrap_or_default(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::NoAdapter(format!("{e} (backends {backends:?})")))?,
    };
    Ok(adapter)
}

/// The adapter a context was opened on (`info`), listed again: same name, vendor, device,
/// type and backend (a driver update in between is still the same adapter).
///
/// # Errors
///
/// [`Error::NoAdapter`] naming it when it is no longer listed.
pub(super) fn same_adapter(info: &wgpu::AdapterInfo) -> Result<wgpu::Adapter> {
    let same = |i: &wgpu::AdapterInfo| {
        (&i.name, i.vendor, i.device, i.device_type, i.backend)
            == (
                &info.name,
                info.vendor,
                info.device,
                info.device_type,
                info.backend,
            )
    };
    enumerate()
        .into_iter()
        .find(|a| same(&a.get_info()))
        .ok_or_else(|| {
            Error::NoAdapter(format!(
                "the adapter the device was opened on ({} · {:?}) is no longer listed",
                info.name, info.backend
            ))
        })
}

fn enumerate() -> Vec<wgpu::Adapter> {
    let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let backends = desc.backends;
    let instance = wgpu::Instance::new(desc);
    pollster::block_on(instance.enumerate_adapters(backends))
}

fn summary(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let i = a.get_info();
    let f = a.features();
    let driver = match (i.driver.is_empty(), i.driver_info.is_empty()) {
        (false, false) => format!("{} · {}", i.driver, i.driver_info),
        (false, true) => i.driver.clone(),
        (true, _) => i.driver_info.clone(),
    };
    AdapterSummary {
        index,
        name: i.name.clone(),
        backend: format!("{:?}", i.backend),
        driver,
        device_type: format!("{:?}", i.device_type),
        software: i.device_type == wgpu::DeviceType::Cpu,
        f16: f.contains(wgpu::Features::SHADER_F16),
        subgroup: f.contains(wgpu::Features::SUBGROUP),
        cooperative_matrix: f.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
        timestamps: f.contains(wgpu::Features::TIMESTAMP_QUERY),
    }
}

/// Every adapter wgpu finds (none: an empty list, never an error).
pub fn list_adapters() -> Vec<AdapterSummary> {
    enumerate()
        .iter()
        .enumerate()
        .map(|(i, a)| summary(i, a))
        .collect()
}

/// Adapter `want` of [`list_adapters`], to open with `GpuContext::from_adapter` (this module
/// sits below the context and opens nothing itself).
///
/// # Errors
///
/// [`Error::NoAdapter`] when that adapter is gone (or the list changed).
pub fn find_adapter(want: &AdapterSummary) -> Result<wgpu::Adapter> {
    let adapter = enumerate()
        .into_iter()
        .enumerate()
        .find(|(i, a)| summary(*i, a) == *want)
        .map(|(_, a)| a)
        .ok_or_else(|| {
            Error::NoAdapter(format!(
                "adapter {} ({}) is no longer listed",
                want.index,
                want.describe()
            ))
        })?;
    Ok(adapter)
}
