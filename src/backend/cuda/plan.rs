//! Lowering ops to kernel launches, with no device involved: every index an op can reach is
//! checked against its buffers (an out-of-bounds access on CUDA corrupts memory or faults,
//! where wgpu would clamp), the launch geometry is chosen, and the kernel's argument struct is
//! packed with the buffers' device addresses. A plan is the list of these launches; the
//! backend replays it as is, or captures it once into a CUDA graph.
use super::kernels::Kernel;
use crate::config::Selection;
use crate::graph::*;
use crate::{Error, Result};

/// What the lowering needs to know of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferInfo {
    /// Device address.
    pub ptr: u64,
    /// Elements, of `elem`.
    pub len: usize,
    pub elem: Elem,
}

/// One kernel launch, ready to replay: no lookup or allocation is left for run time.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    pub kernel: Kernel,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    /// The kernel's one argument, a C struct, as 8-byte words (pointers first, then 32-bit
    /// fields in declaration order, padded to 8 bytes).
    pub args: Vec<u64>,
    /// What the launch computes, for errors and profiles.
    pub label: String,
}

/// Packs a kernel argument struct in C layout: 8-byte pointers, then 4-byte fields.
#[derive(Default)]
pub struct ArgPack {
    bytes: Vec<u8>,
}

impl ArgPack {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn ptr(&mut self, p: u64) -> &mut Self {
        self.bytes.resize(self.bytes.len().next_multiple_of(8), 0);
        self.bytes.extend_from_slice(&p.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn f32(&mut self, v: f32) -> &mut Self {
        self.u32(v.to_bits())
    }
    pub fn u32s(&mut self, vs: &[u32]) -> &mut Self {
        for &v in vs {
            self.u32(v);
        }
        self
    }
    /// The struct's bytes as words (its size rounded up to its 8-byte alignment).
    pub fn finish(&self) -> Vec<u64> {
        let mut b = self.bytes.clone();
        b.resize(b.len().next_multiple_of(8), 0);
        b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
    }
}

/// Matmuls with at most this many rows and no batch take `matmul_vec` (`MV_ROWS` in
/// matmul.cu).
pub const MATVEC_MAX_ROWS: usize = 8;
/// Threads per block of the row-wise kernels (layernorm, softmax, attention, select).
const BLOCK: u32 = 256;

// Matmul flags (matmul.cu).
const F_BIAS: u32 = 1;
const F_GELU: u32 = 2;
const F_ADD: u32 = 4;
const F_ACCUM: u32 = 8;
const F_STATE: u32 = 16;
const F_SEG_F16: u32 = 32;

fn bad(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Limit(format!("{what} = {v} does not fit the kernels' 32-bit indices")))
}

fn format_code(f: BFormat) -> u32 {
    match f {
        BFormat::F32 => 0,
        BFormat::F16 => 1,
        BFormat::I8 => 2,
        // Rejected where B operands and embedding chunks are checked (below).
        BFormat::F16Blocked => u32::MAX,
    }
}

/// The CUDA kernels read k-major weights only (this backend never asks for blocked ones).
fn blocked_unsupported() -> Error {
    bad("the CUDA kernels read k-major weights; blocked f16 is a wgpu CPU-adapter layout".into())
}

/// Lowers one op against the buffers `lookup` describes.
pub fn lower(op: &Op, lookup: &dyn Fn(BufId) -> Result<BufferInfo>) -> Result<Vec<Launch>> {
    let l = Lower { lookup };
    let launches = match op {
        Op::Matmul(o) => vec![l.matmul(o)?],
        Op::LayerNorm(o) => vec![l.layer_norm(o)?],
        Op::Softmax(o) => vec![l.softmax(o)?],
        Op::Embed(o) => l.embed(o)?,
        Op::Attend(o) => l.attend(o)?,
        Op::SelectToken(o) => vec![l.select(o)?],
    };
    for la in &launches {
        let [x, y, z] = la.grid;
        if x == 0 || y == 0 || z == 0 || x > i32::MAX as u32 || y > 65535 || z > 65535 {
            return Err(Error::Limit(format!("{} needs a grid of {:?} blocks", la.label, la.grid)));
        }
    }
    Ok(launches)
}

struct Lower<'a> {
    lookup: &'a dyn Fn(BufId) -> Result<BufferInfo>,
}

impl Lower<'_> {
    /// Checks that elements `[0, last]` of `id` exist and are `elem`s, and that `last` fits the
    /// kernels' 32-bit indices; returns the buffer.
    fn span(&self, id: BufId, elem: Elem, last: usize, what: &str) -> Result<BufferInfo> {
        let b = (self.lookup)(id)?;
        if b.elem != elem {
            return Err(bad(format!("{what}: buffer {id:?} holds {:?}, the op reads {elem:?}", b.elem)));
        }
        if last >= b.len {
            return Err(bad(format!("{what}: reaches element {last} of buffer {id:?} which holds {}", b.len)));
        }
        u32_of(b.len, what)?;
        Ok(b)
    }

    fn matmul(&self, o: &Matmul) -> Result<Launch> {
        if o.m == 0 || o.n == 0 || o.k == 0 || o.z_outer == 0 || o.z_inner == 0 {
            return Err(bad(format!("empty matmul {}x{}x{}", o.m, o.n, o.k)));
        }
        let (zo, zi) = (o.z_outer - 1, o.z_inner - 1);
        let x_last = o.x.base + zo * o.x.outer + zi * o.x.inner + (o.m - 1) * o.x.row + o.k - 1;
        let x = self.span(o.x.buf, Elem::F32, x_last, "matmul x")?;
        let b = &o.b;
        let b0_last = b.base + zo * b.outer + zi * b.inner;
        let bbuf = match b.format {
            BFormat::F32 | BFormat::F16 => {
                let elem = if b.format == BFormat::F16 { Elem::F16 } else { Elem::F32 };
                self.span(b.buf, elem, b0_last + (o.k - 1) * b.k_stride + o.n - 1, "matmul B")?
            }
            BFormat::F16Blocked => return Err(blocked_unsupported()),
            BFormat::I8 => {
                if b.outer != 0 || b.inner != 0 {
                    return Err(bad("int8 weights cannot be batched".into()));
                }
                let last_byte = b.base + ((o.k - 1) / 2) * 2 * b.k_stride + 2 * (o.n - 1) + 1;
                self.span(b.buf, Elem::U32, last_byte / 4, "matmul B")?;
                self.span(b.buf, Elem::U32, b.scale_base + o.n - 1, "matmul B scales")?
            }
        };
        let bias = match o.bias {
            Some((buf, base)) => self.span(buf, Elem::F32, base + o.n - 1, "matmul bias")?.ptr,
            None => 0,
        };
        let add = match &o.add {
            Some(a) => {
                let last = a.base + zo * a.outer + zi * a.inner + (o.m - 1) * a.row + o.n - 1;
                self.span(a.buf, Elem::F32, last, "matmul add")?.ptr
            }
            None => 0,
        };
        let state = match o.state {
            Some(s) => self.span(s, Elem::U32, o.m * STATE_WORDS - 1, "matmul state")?.ptr,
            None => 0,
        };
        if o.out.is_empty() || o.out.len() > 3 || o.out.last().map(|s| s.end) != Some(o.n) {
            return Err(bad("1 to 3 output segments must cover the columns".into()));
        }
        let mut flags = 0;
        flags |= if o.bias.is_some() { F_BIAS } else { 0 };
        flags |= if o.gelu { F_GELU } else { 0 };
        flags |= if o.add.is_some() { F_ADD } else { 0 };
        flags |= if o.accumulate { F_ACCUM } else { 0 };
        flags |= if o.state.is_some() { F_STATE } else { 0 };
        // Unused segments repeat the last one with an end no column reaches.
        let mut seg = [[0u32; 8]; 3];
        let mut ptrs = [0u64; 3];
        let mut start = 0;
        for i in 0..3 {
            let Some(s) = o.out.get(i) else {
                seg[i] = seg[i - 1];
                seg[i][0] = u32::MAX;
                ptrs[i] = ptrs[i - 1];
                continue;
            };
            if s.end <= start {
                return Err(bad("output segments must be non-empty and increasing".into()));
            }
            if s.elem == Elem::U32 || (i == 0 && s.elem == Elem::F16 && o.accumulate) {
                return Err(bad(format!("output segment {i} cannot hold {:?} here", s.elem)));
            }
            if s.pos != 0 && o.state.is_none() {
                return Err(bad("a segment indexed by position needs the step state".into()));
            }
            // Without the position term every index is bounded here; the position term is
            // bounded by the kernel against the buffer's length.
            let last = s.base + zo * s.outer + zi * s.inner + (o.m - 1) * s.row + (s.end - start - 1) * s.col;
            let buf = self.span(s.buf, s.elem, last, &format!("matmul output segment {i}"))?;
            if s.elem == Elem::F16 {
                flags |= F_SEG_F16 << i;
            }
            ptrs[i] = buf.ptr;
            seg[i] = [
                u32_of(s.end, "segment end")?,
                u32_of(s.base, "segment base")?,
                u32_of(s.row, "segment row stride")?,
                u32_of(s.col, "segment column stride")?,
                u32_of(s.outer, "segment outer stride")?,
                u32_of(s.inner, "segment inner stride")?,
                u32_of(s.pos, "segment position stride")?,
                u32_of(buf.len, "segment length")?,
            ];
            start = s.end;
        }
        let a = o.add.unwrap_or_default();
        let mut p = ArgPack::new();
        p.ptr(x.ptr).ptr(bbuf.ptr).ptr(bias).ptr(add).ptr(state).ptr(ptrs[0]).ptr(ptrs[1]).ptr(ptrs[2]);
        p.u32s(&[u32_of(o.m, "m")?, u32_of(o.n, "n")?, u32_of(o.k, "k")?, u32_of(o.z_inner, "z_inner")?]);
        for v in [o.x.base, o.x.row, o.x.outer, o.x.inner, b.base, b.k_stride, b.outer, b.inner] {
            p.u32(u32_of(v, "an operand offset")?);
        }
        for v in [a.base, a.row, a.outer, a.inner] {
            p.u32(u32_of(v, "an addend offset")?);
        }
        p.u32s(&[
            u32_of(o.bias.map_or(0, |b| b.1), "bias offset")?,
            u32_of(b.scale_base, "scale offset")?,
            format_code(b.format),
            flags,
        ]);
        // Field-major, as the C struct declares them: seg_end[3], seg_base[3], ...
        for field in 0..8 {
            p.u32s(&seg.map(|s| s[field]));
        }
        let matvec = o.m <= MATVEC_MAX_ROWS && o.z_outer == 1 && o.z_inner == 1;
        let label = format!("matmul {}x{}x{}", o.m, o.n, o.k);
        if matvec {
            // k split over up to 32 thread rows, each keeping at least 32 of the k steps.
            let slices = (o.k / 32).clamp(1, 32);
            let slices = 1u32 << slices.ilog2();
            let grid = [u32_of(o.n.div_ceil(32), "blocks")?, 1, 1];
            Ok(Launch { kernel: Kernel::MatmulVec, grid, block: [32, slices, 1], args: p.finish(), label })
        } else {
            let grid = [
                u32_of(o.n.div_ceil(16), "blocks")?,
                u32_of(o.m.div_ceil(16), "blocks")?,
                u32_of(o.z_outer * o.z_inner, "blocks")?,
            ];
            Ok(Launch { kernel: Kernel::MatmulTiled, grid, block: [16, 16, 1], args: p.finish(), label })
        }
    }

    fn layer_norm(&self, o: &LayerNorm) -> Result<Launch> {
        if o.rows == 0 || o.dim == 0 {
            return Err(bad(format!("layernorm of {} rows of {}", o.rows, o.dim)));
        }
        let x = self.span(o.x, Elem::F32, o.x_base + (o.rows - 1) * o.x_row + o.dim - 1, "layernorm x")?;
        let y = self.span(o.y, Elem::F32, o.y_base + (o.rows - 1) * o.y_row + o.dim - 1, "layernorm y")?;
        let gamma = self.span(o.gamma, Elem::F32, o.dim - 1, "layernorm gamma")?;
        let beta = self.span(o.beta, Elem::F32, o.dim - 1, "layernorm beta")?;
        let state = match o.state {
            Some(s) => self.span(s, Elem::U32, o.rows * STATE_WORDS - 1, "layernorm state")?.ptr,
            None => 0,
        };
        let mut p = ArgPack::new();
        p.ptr(x.ptr).ptr(gamma.ptr).ptr(beta.ptr).ptr(state).ptr(y.ptr);
        for v in [o.rows, o.dim, o.x_base, o.x_row, o.y_base, o.y_row] {
            p.u32(u32_of(v, "a layernorm size")?);
        }
        p.u32(o.state.is_some() as u32).f32(o.eps);
        let grid = [u32_of(o.rows, "rows")?, 1, 1];
        Ok(Launch {
            kernel: Kernel::LayerNorm,
            grid,
            block: [BLOCK, 1, 1],
            args: p.finish(),
            label: "layernorm".into(),
        })
    }

    fn softmax(&self, o: &Softmax) -> Result<Launch> {
        if o.rows == 0 || o.cols == 0 || o.z == 0 {
            return Err(bad("softmax needs rows, columns and z".into()));
        }
        let last = o.base + (o.z - 1) * o.z_stride + (o.rows - 1) * o.row + (o.cols - 1) * o.col;
        let x = self.span(o.buf, Elem::F32, last, "softmax")?;
        // Neighbouring vectors side by side: a thread per vector reads them coalesced.
        let per_thread = o.row == 1;
        let mut p = ArgPack::new();
        p.ptr(x.ptr);
        for v in [o.rows, o.cols, o.base, o.row, o.col, o.z_stride, per_thread as usize] {
            p.u32(u32_of(v, "a softmax size")?);
        }
        p.f32(o.scale);
        let blocks = if per_thread { o.rows.div_ceil(BLOCK as usize) } else { o.rows };
        let grid = [u32_of(blocks, "blocks")?, u32_of(o.z, "z")?, 1];
        Ok(Launch { kernel: Kernel::Softmax, grid, block: [BLOCK, 1, 1], args: p.finish(), label: "softmax".into() })
    }

    fn embed(&self, o: &Embed) -> Result<Vec<Launch>> {
        if o.rows == 0 || o.dim == 0 {
            return Err(bad("embedding of no rows or no width".into()));
        }
        let state = self.span(o.state, Elem::U32, o.rows * STATE_WORDS - 1, "embed state")?;
        let y = self.span(o.y, Elem::F32, o.rows * o.dim - 1, "embed y")?;
        let positional = self.span(o.positional, Elem::F32, o.dim - 1, "positional table")?;
        let mut out = Vec::new();
        for c in &o.table {
            if c.cols == 0 || c.cols > c.row_elems {
                return Err(bad("an embedding chunk has no columns or more than its rows hold".into()));
            }
            let last = (o.dim - 1) * c.row_elems + c.cols - 1;
            let table = match c.format {
                BFormat::F16 => self.span(c.buf, Elem::F16, last, "embedding chunk")?,
                BFormat::F32 => self.span(c.buf, Elem::F32, last, "embedding chunk")?,
                BFormat::F16Blocked => return Err(blocked_unsupported()),
                BFormat::I8 => {
                    let last_byte = ((o.dim - 1) / 2) * 2 * c.row_elems + 2 * (c.cols - 1) + 1;
                    self.span(c.buf, Elem::U32, last_byte / 4, "embedding chunk")?;
                    self.span(c.buf, Elem::U32, c.scale_base + c.cols - 1, "embedding scales")?
                }
            };
            let mut p = ArgPack::new();
            p.ptr(table.ptr).ptr(positional.ptr).ptr(state.ptr).ptr(y.ptr);
            for v in [o.rows, o.dim, c.col_start, c.cols, c.row_elems, c.scale_base] {
                p.u32(u32_of(v, "an embedding size")?);
            }
            p.u32(format_code(c.format)).u32(u32_of(positional.len, "positional table")?);
            let grid = [u32_of(o.dim.div_ceil(BLOCK as usize), "blocks")?, u32_of(o.rows, "rows")?, 1];
            out.push(Launch {
                kernel: Kernel::Embed,
                grid,
                block: [BLOCK, 1, 1],
                args: p.finish(),
                label: "embed".into(),
            });
        }
        Ok(out)
    }

    fn attend(&self, o: &Attend) -> Result<Vec<Launch>> {
        if o.rows == 0 || o.heads == 0 || o.head_dim == 0 || o.head_dim > 256 || o.cap == 0 {
            return Err(bad(format!(
                "attention of {} rows, {} heads of {} (at most 256), capacity {}",
                o.rows, o.heads, o.head_dim, o.cap
            )));
        }
        if o.max_len > o.cap || o.fixed_len.is_some_and(|l| l == 0 || l > o.cap) {
            return Err(bad("attention length exceeds the cache capacity".into()));
        }
        if o.kv == Elem::U32 {
            return Err(bad("attention caches hold f16 or f32".into()));
        }
        let kv_row = o.heads * o.head_dim * o.cap;
        let kt = self.span(o.k_t, o.kv, o.rows * kv_row - 1, "attention keys")?;
        let vt = self.span(o.v_t, o.kv, o.rows * kv_row - 1, "attention values")?;
        let q =
            self.span(o.q, Elem::F32, o.q_base + (o.rows - 1) * o.q_row + o.heads * o.head_dim - 1, "attention q")?;
        let out_last = o.out_base + (o.rows - 1) * o.out_row + o.heads * o.head_dim - 1;
        let out = self.span(o.out, Elem::F32, out_last, "attention out")?;
        let n_chunks = o.n_chunks();
        let partials = self.span(o.partials, Elem::F32, o.partials_len() - 1, "attention partials")?;
        let state = self.span(o.state, Elem::U32, o.rows * STATE_WORDS - 1, "attention state")?;
        // The op's chunk geometry (it sized the partials): 64 lanes of keys_per_lane keys.
        let chunk = 64 * o.keys_per_lane();
        let mut p = ArgPack::new();
        p.ptr(q.ptr).ptr(kt.ptr).ptr(vt.ptr).ptr(state.ptr).ptr(partials.ptr).ptr(out.ptr);
        for v in [o.heads, o.head_dim, o.cap, o.fixed_len.unwrap_or(0), o.q_base, o.q_row, kv_row, n_chunks] {
            p.u32(u32_of(v, "an attention size")?);
        }
        for v in [o.out_base, o.out_row, chunk] {
            p.u32(u32_of(v, "an attention size")?);
        }
        p.u32(o.full_capacity as u32).u32((o.kv == Elem::F16) as u32).u32((n_chunks == 1) as u32);
        p.f32(o.scale).u32(0);
        let args = p.finish();
        let what = if o.fixed_len.is_some() { "cross" } else { "self" };
        let (heads, rows) = (u32_of(o.heads, "heads")?, u32_of(o.rows, "rows")?);
        let mut launches = vec![Launch {
            kernel: Kernel::AttendPartial,
            grid: [u32_of(n_chunks, "chunks")?, heads, rows],
            block: [BLOCK, 1, 1],
            args: args.clone(),
            label: format!("attend {what} partial"),
        }];
        if n_chunks > 1 {
            launches.push(Launch {
                kernel: Kernel::AttendMerge,
                grid: [heads, rows, 1],
                block: [64, 1, 1],
                args,
                label: format!("attend {what} merge"),
            });
        }
        Ok(launches)
    }

    fn select(&self, o: &SelectToken) -> Result<Launch> {
        o.check_rule()?;
        if o.rows == 0 || o.vocab == 0 || o.cap == 0 {
            return Err(bad("token selection needs rows, a vocabulary and a capacity".into()));
        }
        let mask_words = o.vocab.div_ceil(32);
        let logits = self.span(o.logits, Elem::F32, (o.rows - 1) * o.logits_row + o.vocab - 1, "select logits")?;
        let rules = self.span(o.rules, Elem::U32, 2 * mask_words - 1, "select rules")?;
        let state = self.span(o.state, Elem::U32, o.rows * STATE_WORDS - 1, "select state")?;
        let history = self.span(o.history, Elem::U32, o.rows * o.cap - 1, "select history")?;
        let logprobs = self.span(o.logprobs, Elem::F32, o.rows * o.cap - 1, "select logprobs")?;
        let mut p = ArgPack::new();
        p.ptr(logits.ptr).ptr(rules.ptr).ptr(state.ptr).ptr(history.ptr).ptr(logprobs.ptr);
        for v in [o.vocab, o.logits_row, o.cap, mask_words] {
            p.u32(u32_of(v, "a selection size")?);
        }
        p.u32(o.ts_begin.unwrap_or(state::NONE)).u32(o.no_timestamps.unwrap_or(state::NONE));
        let grid = [u32_of(o.rows, "rows")?, 1, 1];
        let kernel = match o.rule {
            Selection::Whisper => Kernel::Select,
            Selection::AriaAmt => Kernel::SelectAria,
        };
        Ok(Launch { kernel, grid, block: [BLOCK, 1, 1], args: p.finish(), label: "select".into() })
    }
}
