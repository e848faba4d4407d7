//! Laying weights out for the matmul kernel: k-major (`[in][out]`) or blocked (see
//! `BFormat::F16Blocked`), output columns padded to 16, in the chosen storage format, and cut
//! into column chunks that each fit one binding.
use crate::graph::BFormat;
use crate::tensor::{HostTensor, TensorData};
use crate::{Error, Result};
use half::f16;

/// Storage format of matmul weights on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WeightDtype {
    /// Whatever the checkpoint stores (f16 stays f16, f32 stays f32).
    #[default]
    Auto,
    F32,
    F16,
    /// Int8 with one f32 scale per output channel for the linear layers; the tied token
    /// embedding (the logits projection) and the convolutions keep the checkpoint's format.
    /// Per-token int8 rounding of the logits projection flips close decisions (tiny.en on
    /// jfk.wav: ", ask" becomes ". Ask"), and it is a small share of a large model's weights.
    Int8,
    /// Int8 for the linear layers and the tied embedding too (smallest; see [`WeightDtype::Int8`]).
    Int8All,
}

impl WeightDtype {
    /// The format of a linear layer's weight stored as `stored`.
    pub fn resolve(self, stored: &HostTensor) -> BFormat {
        match (self, &stored.data) {
            (WeightDtype::Int8 | WeightDtype::Int8All, _) => BFormat::I8,
            (WeightDtype::F32, _) | (WeightDtype::Auto, TensorData::F32(_)) => BFormat::F32,
            (WeightDtype::F16, _) | (WeightDtype::Auto, TensorData::F16(_)) => BFormat::F16,
        }
    }

    /// The format of a convolution weight (never int8: the stem is a small share of the work).
    pub fn resolve_conv(self, stored: &HostTensor) -> BFormat {
        match self {
            WeightDtype::Int8 | WeightDtype::Int8All => WeightDtype::Auto.resolve(stored),
            other => other.resolve(stored),
        }
    }

    /// The format of the tied token embedding (int8 only with [`WeightDtype::Int8All`]).
    pub fn resolve_embedding(self, stored: &HostTensor) -> BFormat {
        match self {
            WeightDtype::Int8 => WeightDtype::Auto.resolve(stored),
            other => other.resolve(stored),
        }
    }

    pub fn parse(s: &str) -> Result<WeightDtype> {
        match s {
            "auto" => Ok(WeightDtype::Auto),
            "f32" => Ok(WeightDtype::F32),
            "f16" => Ok(WeightDtype::F16),
            "int8" | "i8" => Ok(WeightDtype::Int8),
            "int8-all" => Ok(WeightDtype::Int8All),
            other => Err(Error::InvalidArgument(format!(
                "unknown weight dtype `{other}` (expected auto, f32, f16, int8 or int8-all)"
            ))),
        }
    }
}

/// Output columns per chunk of a k-major weight with `k` inputs, so that each chunk fits
/// `max_bytes`: a multiple of 16, so that every chunk but the last is unpadded.
pub fn chunk_columns(k: usize, format: BFormat, max_bytes: u64) -> Result<usize> {
    let elem_bytes = match format {
        BFormat::I8 => 1,
        BFormat::F16 | BFormat::F16Blocked => 2,
        BFormat::F32 => 4,
    };
    // Int8 chunks also carry one 4-byte scale per column.
    let bytes_per_col = k as u64 * elem_bytes + if format == BFormat::I8 { 4 } else { 0 };
    let max_cols = (max_bytes / bytes_per_col.max(1)) as usize / 16 * 16;
    if max_cols == 0 {
        return Err(Error::Limit(format!(
            "a weight with {k} inputs needs {} bytes per 16 columns; the device binds at most {max_bytes}",
            16 * bytes_per_col
        )));
    }
    Ok(max_cols)
}

/// The column chunks `(col_start, cols)` a weight of `k` inputs and `n` outputs is cut into.
pub fn chunk_layout(k: usize, n: usize, format: BFormat, max_bytes: u64) -> Result<Vec<(usize, usize)>> {
    let max_cols = chunk_columns(k, format, max_bytes)?;
    Ok((0..n).step_by(max_cols).map(|start| (start, max_cols.min(n - start))).collect())
}

/// A k-major matrix ready to upload: `k` rows of `n_pad` columns.
pub struct PackedChunk {
    pub col_start: usize,
    pub cols: usize,
    pub n_pad: usize,
    /// Raw little-endian words (f16 pairs, f32 bits, or int8 bytes followed by f32 scales).
    pub words: Vec<u32>,
    /// Int8: the word where the per-column scales start.
    pub scale_base: usize,
}

/// Builds a k-major matrix from a column-generating function, split into chunks of at most
/// `max_bytes` each. `value(k, n)` is the element at input `k`, output column `n`.
pub fn pack_kmajor(
    k: usize,
    n: usize,
    format: BFormat,
    max_bytes: u64,
    value: impl Fn(usize, usize) -> f32,
    raw_f16: Option<&dyn Fn(usize, usize) -> f16>,
) -> Result<Vec<PackedChunk>> {
    let max_cols = chunk_columns(k, format, max_bytes)?;
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < n {
        let cols = (n - start).min(max_cols);
        let n_pad = cols.next_multiple_of(16);
        let mut scale_base = 0;
        let words = match format {
            BFormat::I8 => {
                let (words, base) = quantize_i8(k, n_pad, cols, |kk, c| value(kk, start + c));
                scale_base = base;
                words
            }
            BFormat::F32 => {
                let mut w = vec![0u32; k * n_pad];
                for kk in 0..k {
                    for c in 0..cols {
                        w[kk * n_pad + c] = value(kk, start + c).to_bits();
                    }
                }
                w
            }
            BFormat::F16 | BFormat::F16Blocked => {
                let at = |kk: usize, c: usize| match format {
                    BFormat::F16Blocked => (c / 8) * 8 * k + 8 * kk + c % 8,
                    _ => kk * n_pad + c,
                };
                let mut h = vec![0u16; k * n_pad];
                for kk in 0..k {
                    for c in 0..cols {
                        h[at(kk, c)] = match raw_f16 {
                            Some(f) => f(kk, start + c).to_bits(),
                            None => f16::from_f32(value(kk, start + c)).to_bits(),
                        };
                    }
                }
                bytemuck::pod_collect_to_vec(&h)
            }
        };
        chunks.push(PackedChunk { col_start: start, cols, n_pad, words, scale_base });
        start += cols;
    }
    Ok(chunks)
}

/// Symmetric per-column int8: `scale = max|w| / 127`, `q = round(w / scale)` in [-127, 127].
/// Bytes are laid out `[k/2][n_pad][2]` (pairs of k-rows interleaved, so one invocation reads
/// 16 columns of two k-rows as 32 contiguous bytes); the f32 scales follow. `k` is even.
/// Returns the words and the word index of the first scale.
pub fn quantize_i8(k: usize, n_pad: usize, cols: usize, value: impl Fn(usize, usize) -> f32) -> (Vec<u32>, usize) {
    let mut scales = vec![1f32; n_pad];
    for (c, s) in scales.iter_mut().enumerate().take(cols) {
        let max = (0..k).map(|kk| value(kk, c).abs()).fold(0f32, f32::max);
        if max > 0.0 {
            *s = max / 127.0;
        }
    }
    let mut bytes = vec![0u8; k * n_pad];
    for kk in 0..k {
        for c in 0..cols {
            let q = (value(kk, c) / scales[c]).round().clamp(-127.0, 127.0) as i8;
            bytes[((kk / 2) * n_pad + c) * 2 + kk % 2] = q as u8;
        }
    }
    let mut words: Vec<u32> = bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let scale_base = words.len();
    words.extend(scales.iter().map(|s| s.to_bits()));
    (words, scale_base)
}

/// Element accessor of a host tensor that keeps f16 bit patterns exact.
pub struct Elements<'a>(pub &'a HostTensor);

impl Elements<'_> {
    pub fn f32(&self, i: usize) -> f32 {
        match &self.0.data {
            TensorData::F32(v) => v[i],
            TensorData::F16(v) => v[i].to_f32(),
        }
    }
    pub fn f16(&self, i: usize) -> f16 {
        match &self.0.data {
            TensorData::F32(v) => f16::from_f32(v[i]),
            TensorData::F16(v) => v[i],
        }
    }
}

/// Packs PyTorch-layout linear weights (`[out, in]` each) side by side: the outputs of
/// `parts[0]` come first, then `parts[1]`, ... (q, k and v as one matmul).
pub fn pack_linears(parts: &[&HostTensor], format: BFormat, max_bytes: u64) -> Result<Vec<PackedChunk>> {
    let k = parts[0].shape[1];
    let mut offsets = Vec::new();
    let mut n = 0;
    for p in parts {
        offsets.push(n);
        n += p.shape[0];
    }
    let locate = |col: usize| {
        let i = offsets.iter().rposition(|&o| o <= col).unwrap_or(0);
        (i, col - offsets[i])
    };
    let f32v = |kk: usize, col: usize| {
        let (i, c) = locate(col);
        Elements(parts[i]).f32(c * k + kk)
    };
    let f16v = |kk: usize, col: usize| {
        let (i, c) = locate(col);
        Elements(parts[i]).f16(c * k + kk)
    };
    pack_kmajor(k, n, format, max_bytes, f32v, Some(&f16v))
}

/// Packs a kernel-3 convolution `[out, in, 3]` as a matmul over `3*in` inputs ordered (tap, in),
/// matching an input window of three consecutive time rows.
pub fn pack_conv(w: &HostTensor, format: BFormat, max_bytes: u64) -> Result<Vec<PackedChunk>> {
    let (out, inp) = (w.shape[0], w.shape[1]);
    let idx = move |kk: usize, o: usize| {
        let (tap, ci) = (kk / inp, kk % inp);
        (o * inp + ci) * 3 + tap
    };
    let e = Elements(w);
    pack_kmajor(3 * inp, out, format, max_bytes, |kk, o| e.f32(idx(kk, o)), Some(&|kk, o| e.f16(idx(kk, o))))
}
