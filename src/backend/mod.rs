//! The small interface the model needs from a device: buffers, and op lists compiled once and
//! replayed. [`cpu::CpuBackend`] is the plain-Rust reference; [`wgpu::WgpuBackend`] runs WGSL;
//! `cuda::CudaBackend` (feature `cuda`) runs CUDA kernels replayed as CUDA graphs.
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod wgpu;

use crate::graph::{BufId, Elem, Op};
use crate::{Error, Result};

/// Device milliseconds of each dispatch of one replay, labelled by what it computes.
pub type Profile = Vec<(String, f64)>;

/// A compiled op list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PlanId(pub u32);

/// How many device objects a backend has created: a decode step after the first must not add
/// to any of these (no allocation, no bind group, no pipeline on the hot path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub buffers: u64,
    pub bind_groups: u64,
    pub pipelines: u64,
    pub plans: u64,
    /// Keyed lookups (pipeline-cache probes); only compiling a plan makes them.
    pub lookups: u64,
    /// Bytes of the buffers alive now (readback buffers included): the device memory a model
    /// and its sessions hold.
    pub live_bytes: u64,
}

pub trait Backend {
    /// The device in words, for logs and benchmark tables.
    fn describe(&self) -> String;
    /// The largest buffer one binding may span, in bytes.
    fn max_binding_bytes(&self) -> u64;
    /// Whether f16 weights that mat-vecs read should be stored [`BFormat::F16Blocked`]: on
    /// CPU adapters, where an invocation streaming its own contiguous run beats neighbouring
    /// invocations reading neighbouring addresses (which GPUs want, and get from k-major).
    ///
    /// [`BFormat::F16Blocked`]: crate::graph::BFormat::F16Blocked
    fn prefers_blocked_f16(&self) -> bool {
        false
    }
    /// A zero-filled buffer of `len` elements.
    fn create_buffer(&mut self, label: &str, elem: Elem, len: usize) -> Result<BufId>;
    fn write(&mut self, buf: BufId, offset_bytes: usize, data: &[u8]) -> Result<()>;
    /// Waits for queued work, then returns `len_bytes` from `offset_bytes`.
    fn read(&mut self, buf: BufId, offset_bytes: usize, len_bytes: usize) -> Result<Vec<u8>>;
    /// Validates and prepares `ops` for replay.
    fn compile(&mut self, ops: &[Op]) -> Result<PlanId>;
    /// Queues `times` replays of a plan back to back (one submission where the device allows).
    fn run(&mut self, plan: PlanId, times: usize) -> Result<()>;
    /// Releases a buffer; plans that use it must not run again.
    fn free_buffer(&mut self, buf: BufId);
    /// Releases a plan's prebuilt dispatches.
    fn free_plan(&mut self, plan: PlanId);
    /// Device objects created so far.
    fn counters(&self) -> Counters;
    /// Device milliseconds of each dispatch of one replay, where the device can time them.
    fn profile(&mut self, _plan: PlanId) -> Result<Option<Profile>> {
        Ok(None)
    }
    /// Dispatches one replay of the plan issues.
    fn dispatch_count(&self, plan: PlanId) -> usize;

    fn read_f32(&mut self, buf: BufId, offset: usize, len: usize) -> Result<Vec<f32>> {
        let b = self.read(buf, offset * 4, len * 4)?;
        Ok(bytemuck::pod_collect_to_vec(&b))
    }
    fn read_u32(&mut self, buf: BufId, offset: usize, len: usize) -> Result<Vec<u32>> {
        let b = self.read(buf, offset * 4, len * 4)?;
        Ok(bytemuck::pod_collect_to_vec(&b))
    }
}

/// Which backend runs a model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendKind {
    /// WGSL through wgpu: Vulkan, Metal, DX12 (lavapipe without a GPU).
    #[default]
    Wgpu,
    /// The plain-Rust reference (tiny models and tests only: very slow).
    Cpu,
    /// Native CUDA on NVIDIA GPUs; needs a build with the `cuda` feature.
    Cuda,
}

impl BackendKind {
    pub fn parse(s: &str) -> Result<BackendKind> {
        match s {
            "wgpu" => Ok(BackendKind::Wgpu),
            "cpu" => Ok(BackendKind::Cpu),
            "cuda" => Ok(BackendKind::Cuda),
            other => Err(Error::InvalidArgument(format!("unknown backend `{other}` (expected wgpu, cuda or cpu)"))),
        }
    }
}

/// Opens a backend of the given kind.
pub fn open(kind: BackendKind, wgpu_options: &wgpu::WgpuOptions) -> Result<Box<dyn Backend + Send>> {
    Ok(match kind {
        BackendKind::Wgpu => Box::new(wgpu::WgpuBackend::new(wgpu_options)?),
        BackendKind::Cpu => Box::new(cpu::CpuBackend::new()),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Box::new(cuda::CudaBackend::new(&cuda::CudaOptions::default())?),
        #[cfg(not(feature = "cuda"))]
        BackendKind::Cuda => {
            return Err(Error::InvalidArgument("this build has no CUDA backend: rebuild with `--features cuda`".into()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_parse() {
        assert_eq!(BackendKind::parse("wgpu").unwrap(), BackendKind::Wgpu);
        assert_eq!(BackendKind::parse("cuda").unwrap(), BackendKind::Cuda);
        assert!(matches!(BackendKind::parse("metal"), Err(Error::InvalidArgument(_))));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        match open(BackendKind::Cuda, &Default::default()) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("--features cuda"), "{m}"),
            Err(e) => panic!("expected InvalidArgument, got {e}"),
            Ok(b) => panic!("opened {} without the cuda feature", b.describe()),
        }
    }
}
