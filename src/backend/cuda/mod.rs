//! The CUDA backend (feature `cuda`): buffers in device memory, kernels from
//! `shaders/cuda/*.cu` compiled at run time with NVRTC for the device's architecture, and each
//! plan's launches captured once into a CUDA graph (stream capture) and replayed. Everything
//! that changes per decode step lives in device memory (the step state), so the graph of step
//! n serves step n + 1. [`CudaOptions::graphs`] off replays the same launches one by one
//! instead, for comparison.
//!
//! libcuda and libnvrtc are loaded at run time (cudarc's dynamic loading) and probed first
//! ([`probe`]): a machine without them gets [`Error::CudaUnavailable`], never a panic.
pub mod kernels;
pub mod plan;
pub mod probe;

use super::{Backend, Counters, PlanId, Profile};
use crate::graph::{BufId, Elem, Op};
use crate::{Error, Result};
use cudarc::driver::sys::{CUevent_flags, CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{CudaContext, CudaFunction, CudaGraph, CudaSlice, CudaStream, DevicePtr, DriverError};
use kernels::Kernel;
use plan::{BufferInfo, Launch};
use probe::{probe, CudaLibrary};
use std::sync::Arc;

/// Options for opening the CUDA backend.
#[derive(Clone, Debug)]
pub struct CudaOptions {
    /// Device ordinal.
    pub device: usize,
    /// Replay plans as CUDA graphs (default); `false` launches each kernel every replay.
    pub graphs: bool,
}

/// `WHISPER_WGPU_CUDA_GRAPHS=0` turns graph replay off for backends opened by name (the
/// transcriber and bench), to compare the two.
pub const GRAPHS_VAR: &str = "WHISPER_WGPU_CUDA_GRAPHS";

impl Default for CudaOptions {
    fn default() -> Self {
        CudaOptions { device: 0, graphs: std::env::var(GRAPHS_VAR).map_or(true, |v| v != "0") }
    }
}

struct DeviceBuffer {
    /// Owns the memory (freed on drop); kernels see `ptr`.
    _memory: CudaSlice<u32>,
    ptr: u64,
    elem: Elem,
    len: usize,
    bytes: usize,
}

/// A captured graph. cudarc's `CudaGraph` is not `Send` (graph objects are not internally
/// synchronised); the backend is only used through `&mut self`, and the model keeps it behind a
/// mutex, so every use of the graph is serialised.
struct Graph(CudaGraph);
// SAFETY: see above: access is serialised by `&mut CudaBackend`.
unsafe impl Send for Graph {}

struct Plan {
    launches: Vec<Launch>,
    graph: Option<Graph>,
}

pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// Indexed by [`Kernel::index`].
    functions: Vec<CudaFunction>,
    buffers: Vec<Option<DeviceBuffer>>,
    plans: Vec<Option<Plan>>,
    counters: Counters,
    graphs: bool,
    graphs_captured: u64,
    name: String,
    arch: u32,
}

fn cuda_err(what: &str) -> impl Fn(DriverError) -> Error + '_ {
    move |e| {
        let text = format!("{what}: {e:?}");
        if text.contains("OUT_OF_MEMORY") {
            Error::OutOfMemory(text)
        } else {
            Error::Cuda(text)
        }
    }
}

impl CudaBackend {
    /// Opens device `options.device`: probes the libraries, creates a context and a stream,
    /// compiles the kernels for the device's compute capability and loads them.
    pub fn new(options: &CudaOptions) -> Result<CudaBackend> {
        probe(CudaLibrary::Driver)?;
        probe(CudaLibrary::Nvrtc)?;
        let count = CudaContext::device_count().map_err(cuda_err("counting CUDA devices"))?;
        if options.device as i64 >= count as i64 {
            return Err(Error::NoAdapter(format!(
                "CUDA device {} requested; this machine has {count}",
                options.device
            )));
        }
        let ctx = CudaContext::new(options.device).map_err(cuda_err("opening the CUDA device"))?;
        // One stream and raw device addresses: cudarc's per-buffer event tracking (for work
        // spread over several streams) is not needed, and must not record into a capture.
        // SAFETY: called before any buffer or stream exists.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(cuda_err("creating a stream"))?;
        let (major, minor) = ctx.compute_capability().map_err(cuda_err("reading the compute capability"))?;
        let arch = (major * 10 + minor) as u32;
        let name = ctx.name().unwrap_or_else(|_| "CUDA device".into());
        let ptx = kernels::compile_all(arch)?;
        let mut functions = Vec::new();
        let mut modules = Vec::new();
        for (file, ptx) in kernels::FILES.iter().zip(ptx) {
            let module = ctx.load_module(ptx).map_err(cuda_err(&format!("loading shaders/cuda/{}", file.name)))?;
            modules.push((file, module));
        }
        for k in Kernel::ALL {
            let (_, module) = modules.iter().find(|(f, _)| f.entries.contains(&k)).expect("every kernel has a file");
            functions.push(module.load_function(k.entry()).map_err(cuda_err(k.entry()))?);
        }
        let counters = Counters { pipelines: functions.len() as u64, ..Default::default() };
        Ok(CudaBackend {
            ctx,
            stream,
            functions,
            buffers: Vec::new(),
            plans: Vec::new(),
            counters,
            graphs: options.graphs,
            graphs_captured: 0,
            name,
            arch,
        })
    }

    /// CUDA graphs captured so far (one per plan replayed in graph mode).
    pub fn graphs_captured(&self) -> u64 {
        self.graphs_captured
    }

    fn get(&self, id: BufId) -> Result<&DeviceBuffer> {
        self.buffers
            .get(id.0 as usize)
            .and_then(|b| b.as_ref())
            .ok_or_else(|| Error::InvalidArgument(format!("no device buffer {id:?}")))
    }

    fn check_range(&self, buf: BufId, offset: usize, len: usize, what: &str) -> Result<u64> {
        let b = self.get(buf)?;
        if offset.checked_add(len).is_none_or(|e| e > b.bytes) {
            return Err(Error::InvalidArgument(format!(
                "{what} of {len} bytes at {offset} does not fit buffer {buf:?} ({} bytes)",
                b.bytes
            )));
        }
        Ok(b.ptr + offset as u64)
    }

    fn launch(&self, l: &Launch) -> Result<()> {
        let f = &self.functions[l.kernel.index()];
        let mut arg = l.args.as_ptr() as *mut std::ffi::c_void;
        // SAFETY: `args` is the kernel's argument struct in C layout (plan.rs packs it in the
        // order the .cu file declares it), and every address in it was checked against its
        // buffer's length when the plan was lowered; the driver copies the argument at launch.
        unsafe {
            cudarc::driver::result::launch_kernel(
                f.cu_function(),
                (l.grid[0], l.grid[1], l.grid[2]),
                (l.block[0], l.block[1], l.block[2]),
                0,
                self.stream.cu_stream(),
                std::slice::from_mut(&mut arg),
            )
        }
        .map_err(cuda_err(&l.label))
    }

    /// Records the plan's launches into a graph (nothing runs while capturing).
    fn capture(&self, launches: &[Launch]) -> Result<CudaGraph> {
        self.stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(cuda_err("beginning a stream capture"))?;
        let recorded = launches.iter().try_for_each(|l| self.launch(l));
        // End the capture whatever happened, so the stream is usable again.
        let graph = self.stream.end_capture(CUgraphInstantiate_flags(0)).map_err(cuda_err("ending a stream capture"));
        recorded?;
        graph?.ok_or_else(|| Error::Cuda("stream capture produced no graph".into()))
    }
}

impl Backend for CudaBackend {
    fn describe(&self) -> String {
        format!("{} (CUDA, sm_{}, {})", self.name, self.arch, if self.graphs { "graphs" } else { "plain launches" })
    }

    fn max_binding_bytes(&self) -> u64 {
        // The kernels index with 32 bits.
        u32::MAX as u64
    }

    fn create_buffer(&mut self, label: &str, elem: Elem, len: usize) -> Result<BufId> {
        let bytes = Elem::bytes(len, elem).max(4);
        if bytes as u64 > self.max_binding_bytes() {
            return Err(Error::Limit(format!("buffer `{label}` needs {bytes} bytes; the kernels index at most 4 GiB")));
        }
        let slice = self.stream.alloc_zeros::<u32>(bytes / 4).map_err(cuda_err(&format!("allocating `{label}`")))?;
        // With event tracking off, the guard records nothing.
        let ptr = slice.device_ptr(&self.stream).0;
        self.counters.buffers += 1;
        self.buffers.push(Some(DeviceBuffer { ptr, _memory: slice, elem, len, bytes }));
        Ok(BufId(self.buffers.len() as u32 - 1))
    }

    fn write(&mut self, buf: BufId, offset_bytes: usize, data: &[u8]) -> Result<()> {
        let dst = self.check_range(buf, offset_bytes, data.len(), "write")?;
        if data.is_empty() {
            return Ok(());
        }
        // SAFETY: the range was checked; from pageable memory the call returns once `data`
        // has been staged, so it may be dropped afterwards.
        unsafe { cudarc::driver::result::memcpy_htod_async(dst, data, self.stream.cu_stream()) }
            .map_err(cuda_err("copying to the device"))
    }

    fn read(&mut self, buf: BufId, offset_bytes: usize, len_bytes: usize) -> Result<Vec<u8>> {
        let src = self.check_range(buf, offset_bytes, len_bytes, "read")?;
        let mut out = vec![0u8; len_bytes];
        if len_bytes > 0 {
            // SAFETY: the range was checked; the stream is synchronised before `out` is used.
            unsafe { cudarc::driver::result::memcpy_dtoh_async(&mut out, src, self.stream.cu_stream()) }
                .map_err(cuda_err("copying from the device"))?;
        }
        self.stream.synchronize().map_err(cuda_err("waiting for the device"))?;
        Ok(out)
    }

    fn compile(&mut self, ops: &[Op]) -> Result<PlanId> {
        let lookup = |id: BufId| -> Result<BufferInfo> {
            let b = self.get(id)?;
            Ok(BufferInfo { ptr: b.ptr, len: b.len, elem: b.elem })
        };
        let mut launches = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let l = plan::lower(op, &lookup).map_err(|e| prefix_error(e, &format!("op {i} ({})", op.kind())))?;
            launches.extend(l);
        }
        self.counters.plans += 1;
        self.plans.push(Some(Plan { launches, graph: None }));
        Ok(PlanId(self.plans.len() as u32 - 1))
    }

    fn run(&mut self, plan: PlanId, times: usize) -> Result<()> {
        self.ctx.bind_to_thread().map_err(cuda_err("binding the CUDA context"))?;
        let slot = plan.0 as usize;
        let Some(Some(p)) = self.plans.get(slot) else {
            return Err(Error::InvalidArgument(format!("no plan {plan:?}")));
        };
        if !self.graphs {
            for _ in 0..times {
                for l in &p.launches {
                    self.launch(l)?;
                }
            }
            return Ok(());
        }
        if p.graph.is_none() {
            let g = self.capture(&p.launches)?;
            self.graphs_captured += 1;
            self.plans[slot].as_mut().expect("checked above").graph = Some(Graph(g));
        }
        let graph = &self.plans[slot].as_ref().and_then(|p| p.graph.as_ref()).expect("captured above").0;
        for _ in 0..times {
            graph.launch().map_err(cuda_err("launching a CUDA graph"))?;
        }
        Ok(())
    }

    fn free_buffer(&mut self, buf: BufId) {
        if let Some(slot) = self.buffers.get_mut(buf.0 as usize) {
            *slot = None;
        }
    }

    fn free_plan(&mut self, plan: PlanId) {
        if let Some(slot) = self.plans.get_mut(plan.0 as usize) {
            *slot = None;
        }
    }

    fn counters(&self) -> Counters {
        self.counters
    }

    /// Each launch of one replay timed between CUDA events (launched one by one, not as a
    /// graph, so the figures exclude the graph's saving on launch overhead).
    fn profile(&mut self, plan: PlanId) -> Result<Option<Profile>> {
        self.ctx.bind_to_thread().map_err(cuda_err("binding the CUDA context"))?;
        let Some(Some(p)) = self.plans.get(plan.0 as usize) else {
            return Err(Error::InvalidArgument(format!("no plan {plan:?}")));
        };
        let event = || self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)).map_err(cuda_err("creating an event"));
        let mut marks = vec![event()?];
        marks[0].record(&self.stream).map_err(cuda_err("recording an event"))?;
        for l in &p.launches {
            self.launch(l)?;
            let e = event()?;
            e.record(&self.stream).map_err(cuda_err("recording an event"))?;
            marks.push(e);
        }
        self.stream.synchronize().map_err(cuda_err("waiting for the device"))?;
        let mut out = Vec::with_capacity(p.launches.len());
        for (l, w) in p.launches.iter().zip(marks.windows(2)) {
            let ms = w[0].elapsed_ms(&w[1]).map_err(cuda_err("reading an event"))?;
            out.push((l.label.clone(), ms as f64));
        }
        Ok(Some(out))
    }

    fn dispatch_count(&self, plan: PlanId) -> usize {
        self.plans.get(plan.0 as usize).and_then(|p| p.as_ref()).map_or(0, |p| p.launches.len())
    }
}

fn prefix_error(e: Error, what: &str) -> Error {
    match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{what}: {m}")),
        Error::Limit(m) => Error::Limit(format!("{what}: {m}")),
        other => other,
    }
}
