//! The WGSL kernels: their sources, bind group layouts, and pipelines specialised with
//! `override` constants (built once per distinct specialisation, then shared).
use super::device::GpuDevice;
use crate::Result;
use std::collections::HashMap;
use std::sync::Arc;

/// One WGSL file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Matmul,
    LayerNorm,
    Softmax,
    Embed,
    Attend,
    Select,
}

#[derive(Clone, Copy)]
enum Slot {
    Uniform,
    Read,
    ReadWrite,
}

/// What the device offers that some kernels use, each with a portable stand-in.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelFeatures {
    /// 8-lane subgroups (shaders/subgroup8.wgsl): the GEMM and the batched mat-vec share their
    /// x rows through them.
    pub subgroup8: bool,
    /// 64-bit integers (shaders/int64.wgsl, shaders/attend_kv64.wgsl): the matvec reads
    /// blocked f16 weights 32 bytes at a time, decode attention its K/V 16 bytes in two loads.
    pub int64: bool,
}

impl Kernel {
    /// The WGSL of this kernel for a device with `features`.
    fn source(self, features: KernelFeatures) -> String {
        // f16.wgsl is a function library the f16-reading kernels share.
        let f16 = include_str!("../../../shaders/f16.wgsl");
        match self {
            Kernel::Matmul => {
                let subgroups = if features.subgroup8 {
                    include_str!("../../../shaders/subgroup8.wgsl")
                } else {
                    include_str!("../../../shaders/subgroup_none.wgsl")
                };
                let int64 = if features.int64 {
                    include_str!("../../../shaders/int64.wgsl")
                } else {
                    include_str!("../../../shaders/int64_none.wgsl")
                };
                [f16, subgroups, int64, include_str!("../../../shaders/matmul.wgsl")].concat()
            }
            Kernel::LayerNorm => include_str!("../../../shaders/layernorm.wgsl").into(),
            Kernel::Softmax => include_str!("../../../shaders/softmax.wgsl").into(),
            Kernel::Embed => include_str!("../../../shaders/embed.wgsl").into(),
            Kernel::Attend => {
                let kv64 = if features.int64 {
                    include_str!("../../../shaders/attend_kv64.wgsl")
                } else {
                    include_str!("../../../shaders/attend_kv64_none.wgsl")
                };
                [f16, kv64, include_str!("../../../shaders/attend.wgsl")].concat()
            }
            Kernel::Select => include_str!("../../../shaders/select.wgsl").into(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kernel::Matmul => "matmul",
            Kernel::LayerNorm => "layernorm",
            Kernel::Softmax => "softmax",
            Kernel::Embed => "embed",
            Kernel::Attend => "attend",
            Kernel::Select => "select",
        }
    }

    /// Binding 0 is always the uniform parameters; the rest as each file's header says.
    fn slots(self) -> &'static [Slot] {
        use Slot::*;
        match self {
            Kernel::Matmul => &[Uniform, Read, Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite, Read, Read],
            Kernel::LayerNorm => &[Uniform, Read, Read, Read, Read, ReadWrite],
            Kernel::Softmax => &[Uniform, ReadWrite],
            Kernel::Embed => &[Uniform, Read, Read, Read, ReadWrite],
            Kernel::Attend => &[Uniform, Read, Read, Read, Read, ReadWrite, ReadWrite, Read, Read],
            Kernel::Select => &[Uniform, Read, Read, ReadWrite, ReadWrite, ReadWrite],
        }
    }

    pub fn is_read_write(self, binding: usize) -> bool {
        matches!(self.slots()[binding], Slot::ReadWrite)
    }

    pub fn bindings(self) -> usize {
        self.slots().len()
    }

    const ALL: [Kernel; 6] =
        [Kernel::Matmul, Kernel::LayerNorm, Kernel::Softmax, Kernel::Embed, Kernel::Attend, Kernel::Select];
}

/// Whether shaders carry naga's per-access bounds checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ShaderChecks {
    /// Every index is validated by the host when a plan is compiled (shapes, strides and buffer
    /// sizes are checked against each other), so the per-access clamps are redundant; dropping
    /// them makes the mat-vec ~1.4x faster on lavapipe, which also bounds-checks in the driver.
    #[default]
    Trusted,
    /// naga's clamping checks on every access (for debugging kernels).
    Checked,
}

#[derive(Clone, PartialEq)]
struct PipelineKey {
    kernel: Kernel,
    entry: &'static str,
    constants: Vec<(&'static str, f64)>,
}

/// Shader modules and layouts for every kernel, and the pipelines made from them so far.
pub struct Kernels {
    modules: HashMap<Kernel, wgpu::ShaderModule>,
    layouts: HashMap<Kernel, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: Vec<(PipelineKey, Arc<wgpu::ComputePipeline>)>,
    pub pipelines_created: u64,
    /// Pipeline-cache probes (only plan compilation should make them).
    pub lookups: u64,
}

impl Kernels {
    pub fn new(gpu: &GpuDevice, checks: ShaderChecks, features: KernelFeatures) -> Result<Kernels> {
        let mut modules = HashMap::new();
        let mut layouts = HashMap::new();
        for k in Kernel::ALL {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(k.name()),
                source: wgpu::ShaderSource::Wgsl(k.source(features).into()),
            };
            let module = gpu.scoped(&format!("compiling {k:?} shader"), || match checks {
                ShaderChecks::Checked => gpu.device.create_shader_module(desc),
                // SAFETY: see ShaderChecks::Trusted — indices are validated on the host.
                ShaderChecks::Trusted => unsafe {
                    gpu.device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
                },
            })?;
            let entries: Vec<wgpu::BindGroupLayoutEntry> = k
                .slots()
                .iter()
                .enumerate()
                .map(|(i, s)| wgpu::BindGroupLayoutEntry {
                    binding: i as u32,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: match s {
                            Slot::Uniform => wgpu::BufferBindingType::Uniform,
                            Slot::Read => wgpu::BufferBindingType::Storage { read_only: true },
                            Slot::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                })
                .collect();
            let bgl = gpu
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: None, entries: &entries });
            let pl = gpu.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: None,
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
            modules.insert(k, module);
            layouts.insert(k, (bgl, pl));
        }
        Ok(Kernels { modules, layouts, pipelines: Vec::new(), pipelines_created: 0, lookups: 0 })
    }

    pub fn bind_group_layout(&self, k: Kernel) -> &wgpu::BindGroupLayout {
        &self.layouts[&k].0
    }

    /// The pipeline for `kernel::entry` with these override values, made on first request.
    pub fn pipeline(
        &mut self,
        gpu: &GpuDevice,
        kernel: Kernel,
        entry: &'static str,
        constants: Vec<(&'static str, f64)>,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        self.lookups += 1;
        let key = PipelineKey { kernel, entry, constants };
        if let Some((_, p)) = self.pipelines.iter().find(|(k, _)| *k == key) {
            return Ok(p.clone());
        }
        let module = &self.modules[&kernel];
        let layout = &self.layouts[&kernel].1;
        let pipeline = gpu.scoped(&format!("building the {kernel:?}::{entry} pipeline"), || {
            gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(layout),
                module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &key.constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        })?;
        let p = Arc::new(pipeline);
        self.pipelines_created += 1;
        self.pipelines.push((key, p.clone()));
        Ok(p)
    }
}
