//! The model as data: a list of ops over buffers that a backend compiles once and replays.
//!
//! Model code (`model/`) builds these lists against buffer ids it allocated through a
//! [`Backend`](crate::backend::Backend); every shape, stride and workgroup count is fixed at
//! build time. What changes per decode step (token, position, done flag) lives in the step
//! state buffer, which ops read on the GPU.

/// A buffer allocated by a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufId(pub u32);

/// Element type of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    /// Two f16 per 32-bit word.
    F16,
    U32,
}

impl Elem {
    pub fn bytes(len: usize, elem: Elem) -> usize {
        match elem {
            Elem::F16 => len.div_ceil(2) * 2 * 2,
            _ => len * 4,
        }
    }
}

/// Words of step state per decode row (see `shaders/select.wgsl` for the layout).
pub const STATE_WORDS: usize = 24;
pub mod state {
    pub const TOKEN: usize = 0;
    pub const POS: usize = 1;
    pub const DONE: usize = 2;
    pub const PROMPT_LEN: usize = 3;
    pub const SAMPLE_BEGIN: usize = 4;
    pub const MAX_LEN: usize = 5;
    pub const EOT: usize = 6;
    pub const SOT_POS: usize = 7;
    pub const NO_SPEECH: usize = 8;
    pub const NO_SPEECH_PROB: usize = 9;
    pub const SUM_LOGPROB: usize = 10;
    pub const N_GENERATED: usize = 11;
    /// Bit 0: timestamp rules; bit 1: sample with temperature.
    pub const FLAGS: usize = 12;
    /// The last sampled timestamp token, or NONE.
    pub const LAST_TS: usize = 13;
    /// Sampling temperature (f32 bits).
    pub const TEMPERATURE: usize = 14;
    pub const SEED: usize = 15;
    /// Latest allowed first timestamp, in timestamp steps after `ts_begin` (NONE: any).
    pub const MAX_INITIAL_TS: usize = 16;
    pub const FLAG_TIMESTAMPS: u32 = 1;
    pub const FLAG_SAMPLE: u32 = 2;
    pub const NONE: u32 = u32::MAX;
}

/// How the B operand of a matmul is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BFormat {
    F32,
    F16,
    /// f16 with the columns in blocks of 8 and each block's k-run contiguous
    /// (`[n_pad/8][k][8]`): element `(k, n)` at `base + (n/8)*8*k_len + 8*k + n%8`, where
    /// `k_len` is the matmul's `k`. The operand's `k_stride` still holds the padded column
    /// count. What CPU adapters read fastest (see `Backend::prefers_blocked_f16`).
    F16Blocked,
    /// Weight-only int8: k-rows interleaved in pairs (`[k/2][n_pad][2]` bytes), then one f32
    /// scale per output column at word `scale_base` of the same buffer.
    I8,
}

/// Element offsets for a batched row-major operand: `base + zo*outer + zi*inner + row*row_stride`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rows {
    pub buf: BufId,
    pub base: usize,
    pub row: usize,
    pub outer: usize,
    pub inner: usize,
}

impl Default for BufId {
    fn default() -> Self {
        BufId(u32::MAX)
    }
}

/// The B operand: `k` rows of `n` columns (padded to 16), k-major.
/// Offsets are in elements of the format (f32, f16, or bytes for int8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BOperand {
    pub buf: BufId,
    pub format: BFormat,
    pub base: usize,
    pub k_stride: usize,
    pub outer: usize,
    pub inner: usize,
    /// Int8 only: the word where the per-column scales start.
    pub scale_base: usize,
}

/// One column range of a matmul's output and where its elements go:
/// `base + zo*outer + zi*inner + m*row + (n - start)*col + position(m)*pos`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutSegment {
    pub end: usize,
    pub buf: BufId,
    pub elem: Elem,
    pub base: usize,
    pub row: usize,
    pub col: usize,
    pub outer: usize,
    pub inner: usize,
    pub pos: usize,
}

/// `y = epilogue(x · B)` over a `z_outer × z_inner` batch; see `shaders/matmul.wgsl`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matmul {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub z_outer: usize,
    pub z_inner: usize,
    pub x: Rows,
    pub b: BOperand,
    /// `bias[base + n]`, added before the activation.
    pub bias: Option<(BufId, usize)>,
    pub gelu: bool,
    pub add: Option<Rows>,
    /// Segment 0 accumulates into its destination (a residual connection).
    pub accumulate: bool,
    pub out: Vec<OutSegment>,
    /// Rows are decode rows: done rows are skipped, positions come from this state buffer.
    pub state: Option<BufId>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LayerNorm {
    pub rows: usize,
    pub dim: usize,
    pub x: BufId,
    pub x_base: usize,
    pub x_row: usize,
    pub gamma: BufId,
    pub beta: BufId,
    pub y: BufId,
    pub y_base: usize,
    pub y_row: usize,
    pub eps: f32,
    pub state: Option<BufId>,
}

/// In-place `x <- softmax(scale * x)` over `z` blocks of `rows` vectors of `cols` values:
/// value `c` of vector `r` in block `z` sits at `base + z * z_stride + r * row + c * col`.
/// The encoder keeps its scores transposed (`row` 1, `col` the key stride), so neighbouring
/// vectors are neighbouring addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct Softmax {
    pub buf: BufId,
    pub rows: usize,
    pub cols: usize,
    pub base: usize,
    pub row: usize,
    pub col: usize,
    pub z: usize,
    pub z_stride: usize,
    pub scale: f32,
}

/// One column chunk of the tied token embedding, packed k-major like a matmul weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbeddingChunk {
    pub buf: BufId,
    pub format: BFormat,
    pub col_start: usize,
    pub cols: usize,
    /// Elements per k-row of the chunk (its padded column count).
    pub row_elems: usize,
    /// Int8 only: the word where the per-column scales start.
    pub scale_base: usize,
}

/// `y[r] = token_embedding[token_r] + positional[pos_r]`, token and position from the state.
#[derive(Clone, Debug, PartialEq)]
pub struct Embed {
    pub rows: usize,
    pub dim: usize,
    pub table: Vec<EmbeddingChunk>,
    pub positional: BufId,
    pub state: BufId,
    pub y: BufId,
}

/// Attention of one query per row against a transposed cache `[row][head][d][cap]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Attend {
    pub rows: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub cap: usize,
    /// Keys `[0, len)` when `Some`; otherwise the row's position + 1.
    pub fixed_len: Option<usize>,
    /// Largest number of valid keys any step can have (sizes the chunk grid).
    pub max_len: usize,
    pub q: BufId,
    pub q_base: usize,
    pub q_row: usize,
    pub k_t: BufId,
    pub v_t: BufId,
    /// Element type of the caches: F16 or F32.
    pub kv: Elem,
    pub partials: BufId,
    pub out: BufId,
    pub out_base: usize,
    pub out_row: usize,
    pub scale: f32,
    pub state: BufId,
    /// Benchmark only: attend over the whole capacity with a mask (PyTorch's static-cache path).
    pub full_capacity: bool,
}

impl Attend {
    /// Keys the grid must cover.
    fn span(&self) -> usize {
        if self.full_capacity {
            self.cap
        } else {
            self.max_len
        }
    }
    /// Keys per invocation (see `shaders/attend.wgsl`): one chunk of up to 2048 keys when that
    /// covers everything (no merge pass), else chunks of 1024 split across workgroups.
    pub fn keys_per_lane(&self) -> usize {
        if self.span() > 1024 && self.span() <= 2048 {
            32
        } else {
            16
        }
    }
    pub fn n_chunks(&self) -> usize {
        self.span().div_ceil(64 * self.keys_per_lane())
    }
    pub fn partials_len(&self) -> usize {
        self.rows * self.heads * self.n_chunks() * (self.head_dim + 2)
    }
}

/// Picks each row's next token and advances its state; see `shaders/select.wgsl`.
#[derive(Clone, Debug, PartialEq)]
pub struct SelectToken {
    pub rows: usize,
    pub vocab: usize,
    pub logits: BufId,
    pub logits_row: usize,
    /// Two bitmasks of `ceil(vocab / 32)` words: suppressed always, suppressed at the first sample.
    pub rules: BufId,
    pub state: BufId,
    pub history: BufId,
    pub logprobs: BufId,
    pub cap: usize,
    /// First timestamp token (Whisper), if the vocabulary has timestamps.
    pub ts_begin: Option<u32>,
    /// `<|notimestamps|>`, suppressed while the timestamp rules apply.
    pub no_timestamps: Option<u32>,
    /// Whisper's rules, or aria-amt's selection (which needs its 3419-id vocabulary and uses
    /// neither the rules buffer nor the timestamp fields).
    pub rule: crate::config::Selection,
}

impl SelectToken {
    /// aria-amt's selection is defined on its 3419-id vocabulary only.
    pub fn check_rule(&self) -> crate::Result<()> {
        let aria_vocab = crate::amt::vocab::VOCAB_SIZE as usize;
        if self.rule == crate::config::Selection::AriaAmt && self.vocab != aria_vocab {
            return Err(crate::Error::InvalidArgument(format!(
                "aria-amt's token selection needs its {aria_vocab}-id vocabulary, not {}",
                self.vocab
            )));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Matmul(Matmul),
    LayerNorm(LayerNorm),
    Softmax(Softmax),
    Embed(Embed),
    Attend(Attend),
    SelectToken(SelectToken),
}

impl Op {
    /// Short name for profiles and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Matmul(_) => "matmul",
            Op::LayerNorm(_) => "layernorm",
            Op::Softmax(_) => "softmax",
            Op::Embed(_) => "embed",
            Op::Attend(_) => "attend",
            Op::SelectToken(_) => "select",
        }
    }
}
