//! Finding an adapter and opening a device with the adapter's real limits.
use crate::{Error, Result};
use std::sync::{Arc, Mutex};

/// Which adapter to use.
#[derive(Clone, Debug, Default)]
pub struct AdapterChoice {
    /// Pick the first adapter whose name contains this (case-insensitive), or whose index in
    /// [`list_adapters`] equals it when it parses as a number.
    pub name: Option<String>,
}

impl AdapterChoice {
    /// From `WHISPER_WGPU_ADAPTER` when set.
    pub fn from_env() -> Self {
        AdapterChoice { name: std::env::var("WHISPER_WGPU_ADAPTER").ok().filter(|s| !s.is_empty()) }
    }
}

/// What a caller sees of an adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    // GL is a last resort (it lacks what compute needs on many drivers); the browser backend is
    // not ours to use.
    desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    wgpu::Instance::new(desc)
}

fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan => 0,
        wgpu::Backend::Metal => 0,
        wgpu::Backend::Dx12 => 1,
        _ => 2,
    };
    (ty, backend)
}

fn sorted_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| rank(&a.get_info()));
    adapters
}

fn summary(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let i = a.get_info();
    AdapterSummary {
        index,
        name: i.name,
        backend: format!("{:?}", i.backend),
        device_type: format!("{:?}", i.device_type),
        driver: format!("{} {}", i.driver, i.driver_info).trim().to_string(),
    }
}

/// The adapters this machine offers, best first.
pub fn list_adapters() -> Vec<AdapterSummary> {
    sorted_adapters(&instance()).iter().enumerate().map(|(i, a)| summary(i, a)).collect()
}

/// An open device and what the backend needs to know about it.
pub struct GpuDevice {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    /// Errors no error scope caught (wgpu would otherwise panic on them).
    pub uncaptured: Arc<Mutex<Option<String>>>,
    /// Set by the device-lost callback.
    pub lost: Arc<Mutex<Option<String>>>,
    /// The device has subgroup operations, always 8 lanes wide (lavapipe on 256-bit SIMD).
    pub subgroup8: bool,
    /// SHADER_INT64 was enabled (CPU adapters that have it).
    pub int64: bool,
}

impl GpuDevice {
    pub fn open(choice: &AdapterChoice) -> Result<GpuDevice> {
        let instance = instance();
        let adapters = sorted_adapters(&instance);
        if adapters.is_empty() {
            return Err(Error::NoAdapter(
                "wgpu found no Vulkan, Metal or DX12 adapter; on Linux without a GPU install Mesa's \
                 lavapipe (apt-get install mesa-vulkan-drivers)"
                    .into(),
            ));
        }
        let picked = match &choice.name {
            None => 0,
            Some(want) => {
                let by_index = want.parse::<usize>().ok().filter(|&i| i < adapters.len());
                let lower = want.to_lowercase();
                by_index
                    .or_else(|| adapters.iter().position(|a| a.get_info().name.to_lowercase().contains(&lower)))
                    .ok_or_else(|| {
                        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
                        Error::NoAdapter(format!("no adapter matches `{want}`; available: {}", names.join(", ")))
                    })?
            }
        };
        let adapter = &adapters[picked];
        let limits = adapter.limits();
        let mut desc = wgpu::DeviceDescriptor {
            label: Some("whisper-wgpu"),
            required_limits: limits.clone(),
            ..Default::default()
        };
        // Timestamps let the benchmark attribute device time; subgroups let the GEMM share loads
        // on 8-lane devices (shaders/subgroup8.wgsl). Everything else is core WebGPU.
        let subgroup8 = adapter.features().contains(wgpu::Features::SUBGROUP)
            && adapter.get_info().subgroup_min_size == 8
            && adapter.get_info().subgroup_max_size == 8;
        desc.required_features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        if subgroup8 {
            desc.required_features |= wgpu::Features::SUBGROUP;
        }
        // 64-bit loads serve CPU adapters' blocked f16 weights (shaders/int64.wgsl) and their
        // attention caches (shaders/attend_kv64.wgsl).
        let int64 = adapter.features().contains(wgpu::Features::SHADER_INT64)
            && adapter.get_info().device_type == wgpu::DeviceType::Cpu;
        if int64 {
            desc.required_features |= wgpu::Features::SHADER_INT64;
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::NoAdapter(format!("{}: request_device failed: {e}", adapter.get_info().name)))?;
        let uncaptured = Arc::new(Mutex::new(None));
        let slot = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
            s.get_or_insert_with(|| e.to_string());
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_slot = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            let mut s = lost_slot.lock().unwrap_or_else(|p| p.into_inner());
            s.get_or_insert_with(|| format!("{reason:?}: {msg}"));
        });
        Ok(GpuDevice { device, queue, adapter: summary(picked, adapter), limits, uncaptured, lost, subgroup8, int64 })
    }

    /// Turns a lost device or an uncaught error into an `Err`, once.
    pub fn check(&self) -> Result<()> {
        let uncaught = self.uncaptured.lock().unwrap_or_else(|p| p.into_inner()).take();
        if uncaught.is_some() {
            self.note_loss();
        }
        self.lost_error()?;
        match uncaught {
            Some(msg) => Err(Error::Gpu(msg)),
            None => Ok(()),
        }
    }

    fn lost_error(&self) -> Result<()> {
        match self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(msg) => Err(Error::DeviceLost(msg)),
            None => Ok(()),
        }
    }

    /// A destroyed or lost device reports its loss when next maintained: after an error, poll
    /// once, so that the error is reported as the loss it is.
    fn note_loss(&self) {
        let _ = self.device.poll(wgpu::PollType::Poll);
    }

    /// Runs `f` inside validation and out-of-memory error scopes.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if o.is_some() || v.is_some() {
            self.note_loss();
            self.lost_error()?;
        }
        if let Some(e) = o {
            return Err(Error::OutOfMemory(format!("{what}: {e}")));
        }
        if let Some(e) = v {
            return Err(Error::Gpu(format!("{what}: {e}")));
        }
        self.check()?;
        Ok(out)
    }
}
