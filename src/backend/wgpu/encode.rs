//! Compiling ops into dispatches: checks every index an op can touch against its buffers,
//! fills the kernel's parameter block, picks the specialisation and the workgroup grid.
use super::kernels::Kernel;
use super::WgpuBackend;
use crate::config::Selection;
use crate::graph::*;
use crate::{Error, Result};
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

/// One prebuilt dispatch: replaying it needs no lookup or allocation.
pub(crate) struct Dispatch {
    /// What the dispatch computes, for profiles.
    pub label: String,
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
}

pub(crate) struct Ctx<'a> {
    pub backend: &'a mut WgpuBackend,
}

fn bad(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Limit(format!("{what} = {v} does not fit the kernels' 32-bit indices")))
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SegParams {
    end: u32,
    base: u32,
    row: u32,
    col: u32,
    outer: u32,
    inner: u32,
    pos: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    z_inner: u32,
    x: [u32; 4],
    b: [u32; 4],
    add: [u32; 4],
    bias_base: [u32; 4],
    seg: [SegParams; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LayerNormParams {
    rows: u32,
    dim: u32,
    x_base: u32,
    x_row: u32,
    y_base: u32,
    y_row: u32,
    eps: f32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SoftmaxParams {
    rows: u32,
    cols: u32,
    base: u32,
    row: u32,
    col: u32,
    z_stride: u32,
    scale: f32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct EmbedParams {
    rows: u32,
    dim: u32,
    col_start: u32,
    cols: u32,
    row_words: u32,
    scale_base: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AttendParams {
    heads: u32,
    head_dim: u32,
    cap: u32,
    fixed_len: u32,
    q_base: u32,
    q_row: u32,
    kv_row: u32,
    n_chunks: u32,
    out_base: u32,
    out_row: u32,
    scale: f32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SelectParams {
    vocab: u32,
    logits_row: u32,
    cap: u32,
    mask_words: u32,
    ts_begin: u32,
    no_timestamps: u32,
    _pad: [u32; 2],
}

/// Matmuls of at most this many rows (and no batch) run the `matvec` entry point
/// (`MV_MAX_ROWS` in matmul.wgsl).
const MATVEC_MAX_ROWS: usize = 8;
/// Rows per invocation of the GEMM entry point (`MAX_ROWS` in matmul.wgsl). On lavapipe a
/// storage load costs far more than an FMA, so a taller tile (more reuse of each loaded B
/// vector) wins: 16 rows measured ~10% faster than 8 on the encoder's products.
const GEMM_ROWS: usize = 16;

/// The kernels' `B_FMT` / `FMT` code of a weight format.
fn b_format_code(f: BFormat) -> f64 {
    match f {
        BFormat::F32 => 0.0,
        BFormat::F16 | BFormat::F16Blocked => 1.0,
        BFormat::I8 => 2.0,
    }
}

/// What to bind at one slot.
enum Bind {
    Buf(BufId),
    Unused,
}

impl Ctx<'_> {
    fn len(&self, id: BufId) -> Result<(usize, Elem)> {
        let b = self.backend.get(id)?;
        Ok((b.len, b.elem))
    }

    /// Checks that `[first, last]` lies inside `id`, which must hold `elem`s.
    fn check_span(&self, id: BufId, elem: Elem, last: usize, what: &str) -> Result<()> {
        let (len, e) = self.len(id)?;
        if e != elem {
            return Err(bad(format!("{what}: buffer {id:?} holds {e:?}, the op reads {elem:?}")));
        }
        if last >= len {
            return Err(bad(format!("{what}: reaches element {last} of buffer {id:?} which holds {len}")));
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        kernel: Kernel,
        entry: &'static str,
        constants: Vec<(&'static str, f64)>,
        params: &[u8],
        binds: Vec<Bind>,
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        let max = self.backend.gpu.limits.max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&w| w > max) {
            return Err(Error::Limit(format!(
                "{kernel:?} needs {workgroups:?} workgroups; the device allows {max} per dimension"
            )));
        }
        let pipeline = self.backend.kernels.pipeline(&self.backend.gpu, kernel, entry, constants)?;
        let gpu = &self.backend.gpu;
        let uniform = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: (params.len() as u64).next_multiple_of(16),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue.write_buffer(&uniform, 0, params);
        self.backend.counters.buffers += 1;
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        for (i, b) in binds.iter().enumerate() {
            let slot = i + 1;
            let buffer = match b {
                Bind::Buf(id) => &self.backend.get(*id)?.buffer,
                Bind::Unused if kernel.is_read_write(slot) => &self.backend.dummy_rw,
                Bind::Unused => &self.backend.dummy_read,
            };
            entries.push(wgpu::BindGroupEntry { binding: slot as u32, resource: buffer.as_entire_binding() });
        }
        debug_assert_eq!(entries.len(), kernel.bindings());
        let layout = self.backend.kernels.bind_group_layout(kernel);
        let bind_group = gpu.scoped(&format!("binding {kernel:?}"), || {
            gpu.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(entry), layout, entries: &entries })
        })?;
        self.backend.counters.bind_groups += 1;
        Ok(Dispatch { label: entry.to_string(), pipeline, bind_group, workgroups })
    }

    pub fn encode(&mut self, op: &Op) -> Result<Vec<Dispatch>> {
        match op {
            Op::Matmul(o) => self.matmul(o).map(|mut d| {
                d.label = format!("matmul {}x{}x{}", o.m, o.n, o.k);
                vec![d]
            }),
            Op::LayerNorm(o) => self.layer_norm(o).map(|d| vec![d]),
            Op::Softmax(o) => self.softmax(o).map(|d| vec![d]),
            Op::Embed(o) => self.embed(o),
            Op::Attend(o) => self.attend(o),
            Op::SelectToken(o) => self.select(o).map(|d| vec![d]),
        }
        .map(|mut ds| {
            for d in &mut ds {
                if d.label == "main" {
                    d.label = op.kind().to_string();
                }
            }
            ds
        })
    }

    fn matmul(&mut self, o: &Matmul) -> Result<Dispatch> {
        if o.m == 0 || o.n == 0 || o.k == 0 || o.z_outer == 0 || o.z_inner == 0 {
            return Err(bad(format!("empty matmul {}x{}x{}", o.m, o.n, o.k)));
        }
        if o.k % 4 != 0 || [o.x.base, o.x.row, o.x.outer, o.x.inner].iter().any(|v| v % 4 != 0) {
            return Err(bad("x offsets and k must be multiples of 4 (vec4 loads)".into()));
        }
        let b = &o.b;
        let n_pad = o.n.next_multiple_of(16);
        if b.k_stride < n_pad && o.k > 1 {
            return Err(bad(format!("B rows of {} elements cannot hold {n_pad} padded columns", b.k_stride)));
        }
        let (zo, zi) = (o.z_outer - 1, o.z_inner - 1);
        let x_last = o.x.base + zo * o.x.outer + zi * o.x.inner + (o.m - 1) * o.x.row + o.k - 1;
        self.check_span(o.x.buf, Elem::F32, x_last, "matmul x")?;
        // B's offsets in vec4<u32> units: [base, per k-step, outer, inner], the step from one
        // block of 8 columns to the next, and the scales' start.
        let (b4, b_blk4, scale4, b_last) = match b.format {
            BFormat::F16 | BFormat::F32 => {
                let (elem, per_vec4) = if b.format == BFormat::F16 { (Elem::F16, 8) } else { (Elem::F32, 4) };
                if [b.base, b.k_stride, b.outer, b.inner].iter().any(|v| v % per_vec4 != 0) {
                    return Err(bad(format!("B offsets must be multiples of {per_vec4} elements")));
                }
                let last = b.base + zo * b.outer + zi * b.inner + (o.k - 1) * b.k_stride + n_pad - 1;
                self.check_span(b.buf, elem, last, "matmul B")?;
                ([b.base, b.k_stride, b.outer, b.inner].map(|v| v / per_vec4), 8 / per_vec4, 0, last)
            }
            BFormat::F16Blocked => {
                // Block j's k-run of 8 columns (one vec4 per k) starts at vec4 j * k.
                if b.base % 8 != 0 || b.outer != 0 || b.inner != 0 {
                    return Err(bad("blocked f16 weights need 8-element aligned bases and no batch".into()));
                }
                let last = b.base + o.k * n_pad - 1;
                self.check_span(b.buf, Elem::F16, last, "matmul B")?;
                ([b.base / 8, 1, 0, 0], o.k, 0, last)
            }
            BFormat::I8 => {
                // Bytes, k-rows in interleaved pairs; the kernel steps a pair of rows at a time.
                if b.base % 32 != 0 || b.k_stride % 16 != 0 || b.outer != 0 || b.inner != 0 || b.scale_base % 4 != 0 {
                    return Err(bad("int8 weights need 32-byte aligned rows, 16-column strides and no batch".into()));
                }
                let last_byte = b.base + o.k * b.k_stride - 1;
                self.check_span(b.buf, Elem::U32, last_byte / 4, "matmul B")?;
                self.check_span(b.buf, Elem::U32, b.scale_base + n_pad - 1, "matmul B scales")?;
                if b.scale_base * 4 <= last_byte {
                    return Err(bad("int8 scales overlap the weights".into()));
                }
                ([b.base / 16, b.k_stride / 8, 0, 0], 1, b.scale_base / 4, last_byte / 4)
            }
        };
        if let Some((bias, base)) = o.bias {
            self.check_span(bias, Elem::F32, base + o.n - 1, "matmul bias")?;
        }
        if let Some(a) = &o.add {
            let last = a.base + zo * a.outer + zi * a.inner + (o.m - 1) * a.row + o.n - 1;
            self.check_span(a.buf, Elem::F32, last, "matmul add")?;
        }
        if let Some(s) = o.state {
            self.check_span(s, Elem::U32, o.m * STATE_WORDS - 1, "matmul state")?;
        }
        if o.out.is_empty() || o.out.len() > 3 || o.out.last().map(|s| s.end) != Some(o.n) {
            return Err(bad("1 to 3 output segments must cover the columns".into()));
        }
        // A decode step's few rows take the mat-vec entry point (all rows per invocation).
        let matvec = o.m <= MATVEC_MAX_ROWS && o.z_outer == 1 && o.z_inner == 1;
        // The GEMM tile is always GEMM_ROWS rows (rows past m repeat row m - 1 and are not
        // stored): the kernel's accumulator array has exactly that size, which keeps it in
        // registers.
        let rows_per_inv = if matvec { o.m } else { GEMM_ROWS };
        let mut segs = [SegParams::zeroed(); 3];
        let mut start = 0;
        for (i, s) in o.out.iter().enumerate() {
            if s.end <= start {
                return Err(bad("output segments must be non-empty and increasing".into()));
            }
            if s.end != o.n && s.end % 16 != 0 {
                return Err(bad(format!("output segment boundary {} is not a multiple of 16", s.end)));
            }
            if s.pos != 0 && o.state.is_none() {
                return Err(bad("a segment indexed by position needs the step state".into()));
            }
            if s.elem == Elem::U32 || (i == 0 && s.elem == Elem::F16 && o.accumulate) {
                return Err(bad(format!("output segment {i} cannot hold {:?} here", s.elem)));
            }
            if s.elem == Elem::F16 && s.row == 1 && rows_per_inv % 2 != 0 && !matvec {
                return Err(bad("f16 output with adjacent rows needs an even row count per invocation".into()));
            }
            if s.elem == Elem::F16 && s.row == 1 && s.base % 2 != 0 {
                return Err(bad("f16 output with adjacent rows must start on an even element".into()));
            }
            let max_pos = if s.pos != 0 { self.len(s.buf)?.0 } else { 0 };
            // Largest index reachable (position term checked at run time by the state's max_len,
            // which the session keeps below the capacity this segment was sized for).
            let last = s.base + zo * s.outer + zi * s.inner + (o.m - 1) * s.row + (s.end - start - 1) * s.col;
            let (len, e) = self.len(s.buf)?;
            if e != s.elem && !(e == Elem::F32 && s.elem == Elem::F32) {
                return Err(bad(format!("output segment {i}: buffer holds {e:?}, not {:?}", s.elem)));
            }
            if last >= len {
                return Err(bad(format!("output segment {i} reaches element {last} of a buffer of {len}")));
            }
            let _ = max_pos;
            segs[i] = SegParams {
                end: u32_of(s.end, "segment end")?,
                base: u32_of(s.base, "segment base")?,
                row: u32_of(s.row, "segment row stride")?,
                col: u32_of(s.col, "segment column stride")?,
                outer: u32_of(s.outer, "segment outer stride")?,
                inner: u32_of(s.inner, "segment inner stride")?,
                pos: u32_of(s.pos, "segment position stride")?,
                _pad: 0,
            };
            start = s.end;
        }
        for s in o.out.len()..3 {
            segs[s] = SegParams { end: u32::MAX, ..segs[o.out.len() - 1] };
        }
        let a = o.add.unwrap_or_default();
        let params = MatmulParams {
            m: u32_of(o.m, "m")?,
            n: u32_of(o.n, "n")?,
            k: u32_of(o.k, "k")?,
            z_inner: u32_of(o.z_inner, "z_inner")?,
            x: [o.x.base, o.x.row, o.x.outer, o.x.inner].map(|v| v as u32),
            b: b4.map(|v| v as u32),
            add: [a.base, a.row, a.outer, a.inner].map(|v| v as u32),
            bias_base: [
                o.bias.map_or(0, |b| b.1) as u32,
                u32_of(scale4, "scale offset")?,
                u32_of(b_blk4, "B block stride")?,
                0,
            ],
            seg: segs,
        };
        for v in [x_last, b_last] {
            u32_of(v, "an operand index")?;
        }
        let (entry, wg_x, wg_y, groups) = if matvec {
            // Blocks of 8 columns; on GPUs the k range is split so that even a 384-wide layer
            // spreads over several workgroups, each slice keeping at least 16 of the k4 steps.
            // A CPU adapter has a few cores, which a 384-wide layer's 6 workgroups already
            // fill, and runs the split's barrier as coroutine switches: unsplit, 1x384x384 ran
            // 0.114 -> 0.094 ms and 1x1536x384 0.538 -> 0.338 ms alone on lavapipe, and a whole
            // step 3-5% faster (`bench --variant default,split-k`).
            let blocks = o.n.div_ceil(8);
            let wg_x = (blocks / 8).next_power_of_two().clamp(8, 64);
            let ksplit = (64 / wg_x).min((o.k / 4 / 16).max(1)).max(1);
            let ksplit = if self.backend.split_k { 1 << ksplit.ilog2() } else { 1 };
            ("matvec", wg_x, ksplit, [u32_of(blocks.div_ceil(wg_x), "workgroups")?, 1, 1])
        } else {
            let blocks = o.n.div_ceil(16);
            let row_groups = o.m.div_ceil(rows_per_inv);
            // 64 invocations when the shape allows, spread over rows when the columns are few
            // (lavapipe runs 8 lanes at a time: idle lanes are wasted SIMD width). Sharing x
            // through subgroups needs one row group per workgroup: then narrow layers take
            // workgroups of one subgroup instead.
            let (wg_x, wg_y) = if self.backend.subgroup8 {
                (if blocks >= 64 { 64 } else { 8 }, 1)
            } else {
                let wg_x = blocks.next_power_of_two().clamp(8, 64);
                (wg_x, (64 / wg_x).min(row_groups.next_power_of_two()).max(1))
            };
            let groups = [
                u32_of(blocks.div_ceil(wg_x), "workgroups")?,
                u32_of(row_groups.div_ceil(wg_y), "workgroups")?,
                u32_of(o.z_outer * o.z_inner, "workgroups")?,
            ];
            ("main", wg_x, wg_y, groups)
        };
        // 64-bit loads (shaders/int64.wgsl): the matvec's for blocked f16; the GEMM's where its
        // 16 columns of a k are contiguous (k-major f32/f16) at even vec4 offsets.
        let b64 = self.backend.int64
            && match b.format {
                BFormat::F16Blocked => matvec,
                BFormat::F16 | BFormat::F32 => !matvec && b4.iter().all(|v| v % 2 == 0),
                BFormat::I8 => false,
            };
        // The matvec's x as 32-byte loads too (two k4 steps per load; see X64 in matmul.wgsl).
        let x64 =
            b64 && matvec && o.k % 8 == 0 && o.x.base % 8 == 0 && o.x.row % 8 == 0 && (o.k / 4).div_ceil(wg_y) % 2 == 0;
        let seg_f16 = |i: usize| o.out.get(i).is_some_and(|s| s.elem == Elem::F16);
        let constants = vec![
            ("WG_X", wg_x as f64),
            (if matvec { "KSPLIT" } else { "WG_Y" }, wg_y as f64),
            ("ROWS", rows_per_inv as f64),
            ("B_FMT", b_format_code(o.b.format)),
            ("B64", b64 as u8 as f64),
            ("X64", x64 as u8 as f64),
            ("SOFT_F16", self.backend.soft_f16 as u8 as f64),
            ("HAS_BIAS", o.bias.is_some() as u8 as f64),
            ("GELU", o.gelu as u8 as f64),
            ("HAS_ADD", o.add.is_some() as u8 as f64),
            ("ACCUM", o.accumulate as u8 as f64),
            ("USE_STATE", o.state.is_some() as u8 as f64),
            ("SEG0_F16", seg_f16(0) as u8 as f64),
            ("SEG1_F16", seg_f16(1) as u8 as f64),
            ("SEG2_F16", seg_f16(2) as u8 as f64),
            ("STATE_WORDS", STATE_WORDS as f64),
        ];
        let opt = |b: Option<BufId>| b.map_or(Bind::Unused, Bind::Buf);
        let seg_buf = |i: usize| o.out.get(i).map_or(Bind::Unused, |s| Bind::Buf(s.buf));
        let binds = vec![
            Bind::Buf(o.x.buf),
            Bind::Buf(b.buf),
            opt(o.bias.map(|b| b.0)),
            opt(o.add.map(|a| a.buf)),
            opt(o.state),
            seg_buf(0),
            seg_buf(1),
            seg_buf(2),
            Bind::Buf(b.buf),   // b64: the 64-bit views of B and x (shaders/int64.wgsl)
            Bind::Buf(o.x.buf), // x64
        ];
        self.dispatch(Kernel::Matmul, entry, constants, bytemuck::bytes_of(&params), binds, groups)
    }

    fn layer_norm(&mut self, o: &LayerNorm) -> Result<Dispatch> {
        if o.rows == 0 || o.dim == 0 || o.dim % 4 != 0 {
            return Err(bad(format!(
                "layernorm of {} rows of {} (dim must be a positive multiple of 4)",
                o.rows, o.dim
            )));
        }
        if [o.x_base, o.x_row, o.y_base, o.y_row].iter().any(|v| v % 4 != 0) {
            return Err(bad("layernorm offsets must be multiples of 4".into()));
        }
        self.check_span(o.x, Elem::F32, o.x_base + (o.rows - 1) * o.x_row + o.dim - 1, "layernorm x")?;
        self.check_span(o.y, Elem::F32, o.y_base + (o.rows - 1) * o.y_row + o.dim - 1, "layernorm y")?;
        self.check_span(o.gamma, Elem::F32, o.dim - 1, "layernorm gamma")?;
        self.check_span(o.beta, Elem::F32, o.dim - 1, "layernorm beta")?;
        if o.x == o.y {
            return Err(bad("layernorm cannot run in place".into()));
        }
        let params = LayerNormParams {
            rows: u32_of(o.rows, "rows")?,
            dim: u32_of(o.dim, "dim")?,
            x_base: o.x_base as u32,
            x_row: o.x_row as u32,
            y_base: o.y_base as u32,
            y_row: o.y_row as u32,
            eps: o.eps,
            _pad: 0,
        };
        let wg = 64;
        let constants =
            vec![("WG", wg as f64), ("USE_STATE", o.state.is_some() as u8 as f64), ("STATE_WORDS", STATE_WORDS as f64)];
        let binds = vec![
            Bind::Buf(o.x),
            Bind::Buf(o.gamma),
            Bind::Buf(o.beta),
            o.state.map_or(Bind::Unused, Bind::Buf),
            Bind::Buf(o.y),
        ];
        let groups = [u32_of(o.rows.div_ceil(wg), "workgroups")?, 1, 1];
        self.dispatch(Kernel::LayerNorm, "main", constants, bytemuck::bytes_of(&params), binds, groups)
    }

    fn softmax(&mut self, o: &Softmax) -> Result<Dispatch> {
        if o.rows == 0 || o.cols == 0 || o.z == 0 {
            return Err(bad("softmax needs rows, columns and z".into()));
        }
        let last = o.base + (o.z - 1) * o.z_stride + (o.rows - 1) * o.row + (o.cols - 1) * o.col;
        self.check_span(o.buf, Elem::F32, last, "softmax")?;
        let params = SoftmaxParams {
            rows: u32_of(o.rows, "rows")?,
            cols: u32_of(o.cols, "cols")?,
            base: u32_of(o.base, "base")?,
            row: u32_of(o.row, "row")?,
            col: u32_of(o.col, "column stride")?,
            z_stride: u32_of(o.z_stride, "z stride")?,
            scale: o.scale,
            _pad: 0,
        };
        u32_of(last, "softmax index")?;
        // Four side-by-side vectors per invocation when the layout allows one vec4 per value.
        let quad = if o.row == 1 && [o.rows, o.col, o.base, o.z_stride].iter().all(|v| v % 4 == 0) { 4 } else { 1 };
        let wg = 64;
        let groups = [u32_of(o.rows.div_ceil(quad * wg), "workgroups")?, u32_of(o.z, "workgroups")?, 1];
        self.dispatch(
            Kernel::Softmax,
            "main",
            vec![("WG", wg as f64), ("QUAD", quad as f64)],
            bytemuck::bytes_of(&params),
            vec![Bind::Buf(o.buf)],
            groups,
        )
    }

    fn embed(&mut self, o: &Embed) -> Result<Vec<Dispatch>> {
        self.check_span(o.state, Elem::U32, o.rows * STATE_WORDS - 1, "embed state")?;
        self.check_span(o.y, Elem::F32, o.rows * o.dim - 1, "embed y")?;
        let (pos_len, _) = self.len(o.positional)?;
        if pos_len < o.dim {
            return Err(bad("positional table smaller than one row".into()));
        }
        let mut out = Vec::new();
        for c in &o.table {
            if c.row_elems % 16 != 0 || c.cols > c.row_elems {
                return Err(bad("embedding chunk rows must be padded to 16 columns".into()));
            }
            let row_words = match c.format {
                BFormat::F16Blocked => {
                    // Blocks of 8 columns, each dim-run contiguous: the kernel indexes by dim.
                    self.check_span(c.buf, Elem::F16, o.dim * c.row_elems - 1, "embedding chunk")?;
                    c.row_elems / 2
                }
                BFormat::F16 => {
                    self.check_span(c.buf, Elem::F16, (o.dim - 1) * c.row_elems + c.cols - 1, "embedding chunk")?;
                    c.row_elems / 2
                }
                BFormat::F32 => {
                    self.check_span(c.buf, Elem::F32, (o.dim - 1) * c.row_elems + c.cols - 1, "embedding chunk")?;
                    c.row_elems
                }
                BFormat::I8 => {
                    if o.dim % 2 != 0 {
                        return Err(bad("int8 embeddings need an even width".into()));
                    }
                    self.check_span(c.buf, Elem::U32, o.dim * c.row_elems / 4 - 1, "embedding chunk")?;
                    self.check_span(c.buf, Elem::U32, c.scale_base + c.cols - 1, "embedding scales")?;
                    c.row_elems / 4
                }
            };
            let params = EmbedParams {
                rows: u32_of(o.rows, "rows")?,
                dim: u32_of(o.dim, "dim")?,
                col_start: u32_of(c.col_start, "chunk start")?,
                cols: u32_of(c.cols, "chunk columns")?,
                row_words: u32_of(row_words, "chunk row")?,
                scale_base: u32_of(c.scale_base, "scale offset")?,
                _pad: [0; 2],
            };
            let wg = 64;
            let fmt = if c.format == BFormat::F16Blocked { 3.0 } else { b_format_code(c.format) };
            let constants = vec![("WG", wg as f64), ("FMT", fmt), ("STATE_WORDS", STATE_WORDS as f64)];
            let binds = vec![Bind::Buf(c.buf), Bind::Buf(o.positional), Bind::Buf(o.state), Bind::Buf(o.y)];
            let groups = [u32_of(o.dim.div_ceil(wg), "workgroups")?, u32_of(o.rows, "rows")?, 1];
            out.push(self.dispatch(Kernel::Embed, "main", constants, bytemuck::bytes_of(&params), binds, groups)?);
        }
        Ok(out)
    }

    fn attend(&mut self, o: &Attend) -> Result<Vec<Dispatch>> {
        if o.head_dim == 0 || o.head_dim % 8 != 0 || o.cap % 16 != 0 || o.rows == 0 || o.heads == 0 {
            return Err(bad(format!(
                "attention needs head_dim % 8 == 0 and capacity % 16 == 0 (got {} and {})",
                o.head_dim, o.cap
            )));
        }
        if o.max_len > o.cap || o.fixed_len.is_some_and(|l| l == 0 || l > o.cap) {
            return Err(bad("attention length exceeds the cache capacity".into()));
        }
        if [o.q_base, o.q_row].iter().any(|v| v % 4 != 0) {
            return Err(bad("query offsets must be multiples of 4".into()));
        }
        let kv_row = o.heads * o.head_dim * o.cap;
        if o.kv == Elem::U32 {
            return Err(bad("attention caches hold f16 or f32".into()));
        }
        self.check_span(o.k_t, o.kv, o.rows * kv_row - 1, "attention keys")?;
        self.check_span(o.v_t, o.kv, o.rows * kv_row - 1, "attention values")?;
        self.check_span(o.q, Elem::F32, o.q_base + (o.rows - 1) * o.q_row + o.heads * o.head_dim - 1, "attention q")?;
        self.check_span(
            o.out,
            Elem::F32,
            o.out_base + (o.rows - 1) * o.out_row + o.heads * o.head_dim - 1,
            "attention out",
        )?;
        self.check_span(o.partials, Elem::F32, o.partials_len() - 1, "attention partials")?;
        self.check_span(o.state, Elem::U32, o.rows * STATE_WORDS - 1, "attention state")?;
        let n_chunks = o.n_chunks();
        let params = AttendParams {
            heads: u32_of(o.heads, "heads")?,
            head_dim: u32_of(o.head_dim, "head_dim")?,
            cap: u32_of(o.cap, "capacity")?,
            fixed_len: u32_of(o.fixed_len.unwrap_or(0), "length")?,
            q_base: u32_of(o.q_base, "q base")?,
            q_row: u32_of(o.q_row, "q row")?,
            kv_row: u32_of(kv_row, "cache row")?,
            n_chunks: u32_of(n_chunks, "chunks")?,
            out_base: u32_of(o.out_base, "out base")?,
            out_row: u32_of(o.out_row, "out row")?,
            scale: o.scale,
            _pad: 0,
        };
        u32_of(o.rows * kv_row, "cache size")?;
        let constants = vec![
            ("USE_STATE", 1.0),
            ("FULL", o.full_capacity as u8 as f64),
            ("KV_F16", (o.kv == Elem::F16) as u8 as f64),
            ("SOFT_F16", self.backend.soft_f16 as u8 as f64),
            ("KEYS_PER_LANE", o.keys_per_lane() as f64),
            ("SINGLE", (n_chunks == 1) as u8 as f64),
            ("STATE_WORDS", STATE_WORDS as f64),
        ];
        let binds = || {
            vec![
                Bind::Buf(o.q),
                Bind::Buf(o.k_t),
                Bind::Buf(o.v_t),
                Bind::Buf(o.state),
                Bind::Buf(o.partials),
                Bind::Buf(o.out),
                Bind::Buf(o.k_t), // kt64, vt64: 64-bit views (shaders/attend_kv64.wgsl)
                Bind::Buf(o.v_t),
            ]
        };
        let bytes = bytemuck::bytes_of(&params);
        let rows = u32_of(o.rows, "rows")?;
        let heads = params.heads;
        let what = if o.fixed_len.is_some() { "cross" } else { "self" };
        let mut partial = self.dispatch(
            Kernel::Attend,
            "partial",
            constants.clone(),
            bytes,
            binds(),
            [n_chunks as u32, heads, rows],
        )?;
        partial.label = format!("attend {what} partial");
        if n_chunks == 1 {
            return Ok(vec![partial]);
        }
        let mut merge = self.dispatch(Kernel::Attend, "merge", constants, bytes, binds(), [heads, rows, 1])?;
        merge.label = format!("attend {what} merge");
        Ok(vec![partial, merge])
    }

    fn select(&mut self, o: &SelectToken) -> Result<Dispatch> {
        o.check_rule()?;
        let mask_words = o.vocab.div_ceil(32);
        self.check_span(o.logits, Elem::F32, (o.rows - 1) * o.logits_row + o.vocab - 1, "select logits")?;
        self.check_span(o.rules, Elem::U32, 2 * mask_words - 1, "select rules")?;
        self.check_span(o.state, Elem::U32, o.rows * STATE_WORDS - 1, "select state")?;
        self.check_span(o.history, Elem::U32, o.rows * o.cap - 1, "select history")?;
        self.check_span(o.logprobs, Elem::F32, o.rows * o.cap - 1, "select logprobs")?;
        let params = SelectParams {
            vocab: u32_of(o.vocab, "vocab")?,
            logits_row: u32_of(o.logits_row, "logits row")?,
            cap: u32_of(o.cap, "capacity")?,
            mask_words: mask_words as u32,
            ts_begin: o.ts_begin.unwrap_or(state::NONE),
            no_timestamps: o.no_timestamps.unwrap_or(state::NONE),
            _pad: [0; 2],
        };
        let binds = vec![
            Bind::Buf(o.logits),
            Bind::Buf(o.rules),
            Bind::Buf(o.state),
            Bind::Buf(o.history),
            Bind::Buf(o.logprobs),
        ];
        let constants = vec![("STATE_WORDS", STATE_WORDS as f64)];
        let entry = match o.rule {
            Selection::Whisper => "main",
            Selection::AriaAmt => "aria",
        };
        self.dispatch(
            Kernel::Select,
            entry,
            constants,
            bytemuck::bytes_of(&params),
            binds,
            [u32_of(o.rows, "rows")?, 1, 1],
        )
    }
}
