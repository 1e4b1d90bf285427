//! The devices to choose from: every adapter wgpu sees and the CPU reference path.

use gconv::gpu::adapters::{list_adapters, AdapterSummary};
use gconv::Device;

/// One entry of the device list.
#[derive(Clone, Debug, PartialEq)]
pub enum DeviceChoice {
    /// A wgpu adapter.
    Adapter(AdapterSummary),
    /// gconv's CPU reference path.
    Cpu,
}

impl DeviceChoice {
    /// What the list shows: `llvmpipe (…) · Vulkan · Mesa …`, or the CPU path.
    pub fn label(&self) -> String {
        match self {
            DeviceChoice::Adapter(a) => a.describe(),
            DeviceChoice::Cpu => format!(
                "CPU reference path ({} threads)",
                rayon::current_num_threads()
            ),
        }
    }

    /// A CPU (lavapipe or the CPU path): the bench's defaults are sized down for it.
    pub fn software(&self) -> bool {
        match self {
            DeviceChoice::Adapter(a) => a.software,
            DeviceChoice::Cpu => true,
        }
    }
}

/// The adapters wgpu sees (none when there is no driver), then the CPU path.
pub fn device_choices() -> Vec<DeviceChoice> {
    let mut v: Vec<DeviceChoice> = list_adapters()
        .into_iter()
        .map(DeviceChoice::Adapter)
        .collect();
    v.push(DeviceChoice::Cpu);
    v
}

/// The entry `--device` (and `WGPU_ADAPTER_NAME`) picks: the CPU for `cpu`; otherwise the
/// adapter whose name contains `WGPU_ADAPTER_NAME`, else the first hardware adapter, else
/// the first adapter, else (`auto`) the CPU.
pub fn initial_choice(choices: &[DeviceChoice], device: Device) -> usize {
    let cpu = choices.len() - 1;
    if device == Device::Cpu {
        return cpu;
    }
    let adapters = || {
        choices.iter().enumerate().filter_map(|(i, c)| match c {
            DeviceChoice::Adapter(a) => Some((i, a)),
            DeviceChoice::Cpu => None,
        })
    };
    if let Ok(want) = std::env::var("WGPU_ADAPTER_NAME") {
        let want = want.to_lowercase();
        if let Some((i, _)) = adapters().find(|(_, a)| a.name.to_lowercase().contains(&want)) {
            return i;
        }
    }
    adapters()
        .find(|(_, a)| !a.software)
        .or_else(|| adapters().next())
        .map_or(cpu, |(i, _)| i)
}
