//! The wgpu backend: buffers on the device, op lists compiled into prebuilt dispatches
//! (pipeline, bind group, workgroup counts) and replayed into a fresh encoder per run — the
//! wgpu form of a CUDA graph, since wgpu cannot resubmit a command buffer.
pub mod device;
mod encode;
pub mod kernels;

use super::{Backend, Counters, PlanId, Profile};
use crate::graph::{BufId, Elem, Op};
use crate::{Error, Result};
pub use device::{list_adapters, AdapterChoice, AdapterSummary, GpuDevice};
use encode::Dispatch;
pub use kernels::ShaderChecks;
use kernels::{KernelFeatures, Kernels};

pub(crate) struct DeviceBuffer {
    buffer: wgpu::Buffer,
    elem: Elem,
    /// Elements the buffer was asked for (its byte size is rounded up to 16).
    len: usize,
}

/// Options for opening the wgpu backend.
#[derive(Clone, Debug, Default)]
pub struct WgpuOptions {
    pub adapter: AdapterChoice,
    pub shader_checks: ShaderChecks,
    /// Pretend the device's largest binding is this many bytes (tests of tensor splitting).
    pub max_binding_bytes: Option<u64>,
    /// Leave subgroup operations unused even where the device has them (tests compare both).
    pub no_subgroups: bool,
    /// Leave 64-bit loads unused even where the device has them (tests compare both).
    pub no_int64: bool,
    /// Split the mat-vec's k range across a workgroup even on a CPU adapter, as on GPUs
    /// (tests run that shape on lavapipe).
    pub split_k_on_cpu: bool,
}

pub struct WgpuBackend {
    gpu: GpuDevice,
    kernels: Kernels,
    buffers: Vec<Option<DeviceBuffer>>,
    plans: Vec<Vec<Dispatch>>,
    /// Readback buffers indexed by the buffer they read, made on first read.
    staging: Vec<Option<wgpu::Buffer>>,
    /// Small buffers bound to the slots an op leaves unused.
    dummy_read: wgpu::Buffer,
    dummy_rw: wgpu::Buffer,
    counters: Counters,
    max_binding: u64,
    /// The mat-vec splits its k range across a workgroup's rows of invocations: on GPUs, not
    /// on CPU adapters (see `Ctx::matmul`).
    split_k: bool,
    /// Widen f16 with integer ops (`SOFT_F16` in shaders/f16.wgsl): on CPU adapters, where
    /// lavapipe's `unpack2x16float` is slow.
    soft_f16: bool,
    /// The GEMM and the batched mat-vec share their x rows through 8-lane subgroups
    /// (shaders/subgroup8.wgsl); the GEMM then wants one row group per workgroup.
    subgroup8: bool,
    /// The matvec reads blocked f16 weights through 64-bit loads (shaders/int64.wgsl), decode
    /// attention its K/V (shaders/attend_kv64.wgsl).
    int64: bool,
}

impl WgpuBackend {
    pub fn new(options: &WgpuOptions) -> Result<WgpuBackend> {
        let gpu = GpuDevice::open(&options.adapter)?;
        let cpu_adapter = gpu.adapter.device_type == format!("{:?}", wgpu::DeviceType::Cpu);
        let soft_f16 = cpu_adapter;
        let subgroup8 = gpu.subgroup8 && !options.no_subgroups;
        let int64 = gpu.int64 && !options.no_int64;
        let kernels = Kernels::new(&gpu, options.shader_checks, KernelFeatures { subgroup8, int64 })?;
        let dummy = |label| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 256,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        let dummy_read = dummy("unused read slot");
        let dummy_rw = dummy("unused read-write slot");
        let device_max = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size);
        let max_binding = options.max_binding_bytes.map_or(device_max, |m| m.min(device_max));
        Ok(WgpuBackend {
            gpu,
            kernels,
            buffers: Vec::new(),
            plans: Vec::new(),
            staging: Vec::new(),
            dummy_read,
            dummy_rw,
            counters: Counters::default(),
            max_binding,
            split_k: !cpu_adapter || options.split_k_on_cpu,
            soft_f16,
            subgroup8,
            int64,
        })
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.gpu.adapter
    }

    /// Whether the GEMM shares its x rows through 8-lane subgroups on this device.
    pub fn uses_subgroups(&self) -> bool {
        self.subgroup8
    }

    /// Whether the mat-vec splits its k range across a workgroup on this device.
    pub fn uses_split_k(&self) -> bool {
        self.split_k
    }

    /// Whether the matvec reads blocked f16 weights through 64-bit loads on this device.
    pub fn uses_int64(&self) -> bool {
        self.int64
    }

    pub fn device(&self) -> &GpuDevice {
        &self.gpu
    }

    /// Device time of each dispatch of one replay of `plan` (each in its own timed pass), in
    /// milliseconds, or `None` when the adapter has no timestamp queries.
    fn profile_plan(&mut self, plan: PlanId) -> Result<Option<Profile>> {
        if !self.gpu.device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Ok(None);
        }
        let dispatches =
            self.plans.get(plan.0 as usize).ok_or_else(|| Error::InvalidArgument(format!("no plan {plan:?}")))?;
        let n = dispatches.len() as u32 * 2;
        let dev = &self.gpu.device;
        let queries =
            dev.create_query_set(&wgpu::QuerySetDescriptor { label: None, ty: wgpu::QueryType::Timestamp, count: n });
        let resolve = dev.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: n as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = dev.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: n as u64 * 8,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = dev.create_command_encoder(&Default::default());
        for (i, d) in dispatches.iter().enumerate() {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &queries,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            let [x, y, z] = d.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
        enc.resolve_query_set(&queries, 0..n, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &staging, 0, n as u64 * 8);
        self.gpu.queue.submit([enc.finish()]);
        staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        dev.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Gpu(e.to_string()))?;
        self.gpu.check()?;
        let ticks: Vec<u64> =
            bytemuck::pod_collect_to_vec(&staging.slice(..).get_mapped_range().map_err(|e| Error::Gpu(e.to_string()))?);
        let period = self.gpu.queue.get_timestamp_period() as f64;
        Ok(Some(
            dispatches
                .iter()
                .enumerate()
                .map(|(i, d)| (d.label.clone(), ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period / 1e6))
                .collect(),
        ))
    }

    fn get(&self, id: BufId) -> Result<&DeviceBuffer> {
        self.buffers
            .get(id.0 as usize)
            .and_then(|b| b.as_ref())
            .ok_or_else(|| Error::InvalidArgument(format!("no device buffer {id:?}")))
    }
}

impl Backend for WgpuBackend {
    fn describe(&self) -> String {
        let a = &self.gpu.adapter;
        format!("{} ({}, {})", a.name, a.backend, a.device_type)
    }

    fn max_binding_bytes(&self) -> u64 {
        self.max_binding
    }

    fn prefers_blocked_f16(&self) -> bool {
        self.soft_f16
    }

    fn create_buffer(&mut self, label: &str, elem: Elem, len: usize) -> Result<BufId> {
        let bytes = (Elem::bytes(len, elem) as u64).max(16).next_multiple_of(16);
        if bytes > self.max_binding {
            return Err(Error::Limit(format!(
                "buffer `{label}` needs {bytes} bytes; the device binds at most {} per buffer",
                self.max_binding
            )));
        }
        let buffer = self.gpu.scoped(&format!("allocating `{label}` ({bytes} bytes)"), || {
            self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        })?;
        self.counters.buffers += 1;
        self.counters.live_bytes += bytes;
        self.buffers.push(Some(DeviceBuffer { buffer, elem, len }));
        Ok(BufId(self.buffers.len() as u32 - 1))
    }

    fn write(&mut self, buf: BufId, offset_bytes: usize, data: &[u8]) -> Result<()> {
        let b = self.get(buf)?;
        let end = offset_bytes.checked_add(data.len());
        if end.is_none_or(|e| e as u64 > b.buffer.size()) || offset_bytes % 4 != 0 || data.len() % 4 != 0 {
            return Err(Error::InvalidArgument(format!(
                "write of {} bytes at {offset_bytes} does not fit buffer {buf:?} ({} bytes) in 4-byte units",
                data.len(),
                b.buffer.size()
            )));
        }
        self.gpu.queue.write_buffer(&b.buffer, offset_bytes as u64, data);
        self.gpu.check()
    }

    fn read(&mut self, buf: BufId, offset_bytes: usize, len_bytes: usize) -> Result<Vec<u8>> {
        let size = self.get(buf)?.buffer.size();
        let end = offset_bytes.checked_add(len_bytes);
        if end.is_none_or(|e| e as u64 > size) || offset_bytes % 4 != 0 || len_bytes % 4 != 0 {
            return Err(Error::InvalidArgument(format!(
                "read of {len_bytes} bytes at {offset_bytes} does not fit buffer {buf:?} ({size} bytes)"
            )));
        }
        if len_bytes == 0 {
            return Ok(Vec::new());
        }
        let slot = buf.0 as usize;
        if self.staging.len() <= slot {
            self.staging.resize_with(slot + 1, || None);
        }
        if self.staging[slot].is_none() {
            // One staging buffer per source buffer, made on its first read and reused after.
            let staging = self.gpu.scoped("allocating a readback buffer", || {
                self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })?;
            self.counters.buffers += 1;
            self.counters.live_bytes += size;
            self.staging[slot] = Some(staging);
        }
        let src = &self.get(buf)?.buffer;
        let staging = self.staging[slot].as_ref().expect("made above");
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, offset_bytes as u64, staging, 0, len_bytes as u64);
        self.gpu.queue.submit([enc.finish()]);
        let slice = staging.slice(0..len_bytes as u64);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        let waited = self.gpu.device.poll(wgpu::PollType::wait_indefinitely());
        // A lost device fails the wait and the mapping: report the loss first.
        self.gpu.check()?;
        waited.map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Gpu(format!("mapping a readback buffer: {e}"))),
            Err(_) => return Err(Error::DeviceLost("the readback never completed".into())),
        }
        let out = slice.get_mapped_range().map_err(|e| Error::Gpu(format!("reading a mapped buffer: {e}")))?.to_vec();
        staging.unmap();
        Ok(out)
    }

    fn compile(&mut self, ops: &[Op]) -> Result<PlanId> {
        let mut dispatches = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let mut ctx = encode::Ctx { backend: self };
            let d = ctx.encode(op).map_err(|e| prefix_error(e, &format!("op {i} ({})", op.kind())))?;
            dispatches.extend(d);
        }
        self.counters.plans += 1;
        self.plans.push(dispatches);
        Ok(PlanId(self.plans.len() as u32 - 1))
    }

    fn run(&mut self, plan: PlanId, times: usize) -> Result<()> {
        let dispatches =
            self.plans.get(plan.0 as usize).ok_or_else(|| Error::InvalidArgument(format!("no plan {plan:?}")))?;
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            let mut current: Option<&wgpu::ComputePipeline> = None;
            for _ in 0..times {
                for d in dispatches {
                    if current.is_none_or(|c| !std::ptr::eq(c, &*d.pipeline)) {
                        pass.set_pipeline(&d.pipeline);
                        current = Some(&d.pipeline);
                    }
                    pass.set_bind_group(0, &d.bind_group, &[]);
                    let [x, y, z] = d.workgroups;
                    pass.dispatch_workgroups(x, y, z);
                }
            }
        }
        self.gpu.queue.submit([enc.finish()]);
        self.gpu.check()
    }

    fn free_buffer(&mut self, id: BufId) {
        if let Some(slot) = self.buffers.get_mut(id.0 as usize) {
            if let Some(b) = slot.take() {
                self.counters.live_bytes -= b.buffer.size();
                b.buffer.destroy();
            }
        }
        if let Some(s) = self.staging.get_mut(id.0 as usize).and_then(Option::take) {
            self.counters.live_bytes -= s.size();
            s.destroy();
        }
    }

    fn free_plan(&mut self, plan: PlanId) {
        if let Some(p) = self.plans.get_mut(plan.0 as usize) {
            p.clear();
        }
    }

    fn counters(&self) -> Counters {
        let mut c = self.counters;
        c.pipelines = self.kernels.pipelines_created;
        c.lookups = self.kernels.lookups;
        c
    }

    fn profile(&mut self, plan: PlanId) -> Result<Option<Profile>> {
        self.profile_plan(plan)
    }

    fn dispatch_count(&self, plan: PlanId) -> usize {
        self.plans.get(plan.0 as usize).map_or(0, |p| p.len())
    }
}

fn prefix_error(e: Error, what: &str) -> Error {
    match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{what}: {m}")),
        Error::Gpu(m) => Error::Gpu(format!("{what}: {m}")),
        Error::Limit(m) => Error::Limit(format!("{what}: {m}")),
        other => other,
    }
}
