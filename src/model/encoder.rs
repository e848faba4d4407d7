//! The audio encoder as one op list: conv stem (two kernel-3 convolutions as GEMMs over
//! overlapping rows, GELU, + positional embedding), pre-norm transformer blocks whose attention
//! is scores GEMM -> softmax -> values GEMM per group of heads, and the final layer norm.
//!
//! Layouts (f32): mel input `[batch][2T + 2][n_mels]` and conv1 output `[items][2T + 2][D]`,
//! each with a zero row at both ends (the convolutions' padding); the residual stream
//! `[items][T][D]` and the output `[batch][T][D]`; queries and values transposed
//! `[items][D][T_pad]` and the scores `[heads][T keys][T_pad queries]`, because attention is
//! computed transposed (see `self_attention`). The batch is encoded in groups of `items`
//! windows, as many as keep every activation buffer within one binding, reusing the same
//! activations.
use super::ops::{rows_out, Builder, Epilogue, LN_EPS};
use super::upload::DeviceWeights;
use crate::backend::{Backend, PlanId};
use crate::config::ModelDims;
use crate::graph::*;
use crate::{Error, Result};

/// The encoder's plan and the buffers it reads and writes.
pub struct EncoderPlan {
    pub batch: usize,
    pub plan: PlanId,
    /// Mel input, written by [`EncoderPlan::write_mel`].
    pub mel: BufId,
    /// `[batch][n_audio_ctx][n_audio_state]`.
    pub output: BufId,
    pub buffers: Vec<BufId>,
    n_mels: usize,
    n_frames: usize,
}

impl EncoderPlan {
    /// The most spectrograms one encoder run may take when every buffer must fit one binding
    /// of `max_binding_bytes` (its largest buffer is the MLP's `[batch][T][4D]`); 0 when even
    /// one does not fit.
    pub fn max_batch(dims: &ModelDims, max_binding_bytes: u64) -> usize {
        let (t, d) = (dims.n_audio_ctx, dims.n_audio_state);
        let frames = 2 * t + 2;
        let per_item = [frames * dims.n_mels, frames * d, t * dims.n_audio_mlp, d * t.next_multiple_of(16)]
            .into_iter()
            .max()
            .unwrap_or(1)
            .max(1) as u64
            * 4;
        (max_binding_bytes / per_item) as usize
    }

    pub fn build(backend: &mut dyn Backend, dims: &ModelDims, w: &DeviceWeights, batch: usize) -> Result<EncoderPlan> {
        let (nm, t, d, h) = (dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head);
        let (f, hd) = (dims.n_audio_mlp, d / h);
        if t % 4 != 0 {
            return Err(Error::InvalidArgument(format!("n_audio_ctx {t} must be a multiple of 4")));
        }
        let frames = 2 * t;
        let t_pad = t.next_multiple_of(16);
        let max_binding = backend.max_binding_bytes() as usize;
        // Items of the batch encoded together: as many as keep every activation buffer within
        // one binding (a large-v3 window's MLP activations alone are 31 MB; lavapipe binds 128 MiB).
        let per_item = [(frames + 2) * d, t * f, t * d, d * t_pad].into_iter().max().unwrap_or(0) * 4;
        if per_item > max_binding {
            return Err(Error::Limit(format!(
                "one window's encoder activations need {per_item} bytes in one binding; the device binds at most {max_binding}"
            )));
        }
        let items = (max_binding / per_item.max(1)).clamp(1, batch.max(1));
        let mut bufs = Vec::new();
        let mut alloc = |b: &mut dyn Backend, label: &str, len: usize| -> Result<BufId> {
            let id = b.create_buffer(label, Elem::F32, len)?;
            bufs.push(id);
            Ok(id)
        };
        let mel = alloc(backend, "encoder.mel", batch * (frames + 2) * nm)?;
        let output = alloc(backend, "encoder.output", batch * t * d)?;
        let conv1_out = alloc(backend, "encoder.conv1_out", items * (frames + 2) * d)?;
        let x = alloc(backend, "encoder.x", items * t * d)?;
        let hbuf = alloc(backend, "encoder.h", items * t * d)?;
        let qt = alloc(backend, "encoder.q_t", items * d * t_pad)?;
        let k = alloc(backend, "encoder.k", items * t * d)?;
        let vt = alloc(backend, "encoder.v_t", items * d * t_pad)?;
        let attn = alloc(backend, "encoder.attn", items * t * d)?;
        let mlp = alloc(backend, "encoder.mlp", items * t * f)?;
        // Attention scores for as many heads at once as one binding holds.
        let per_head = t * t_pad * 4;
        if per_head > max_binding {
            return Err(Error::Limit(format!("one head's {t}x{t} attention scores exceed the device's binding limit")));
        }
        let group = (max_binding / per_head).clamp(1, h);
        let scores = alloc(backend, "encoder.scores", group * t * t_pad)?;

        let mut g = Builder::default();
        for i0 in (0..batch).step_by(items) {
            let n = items.min(batch - i0);
            // conv1: output row t (stored at row t+1) reads padded input rows t .. t+2.
            let c1 = &w.conv1;
            g.linear_batched(
                c1,
                frames,
                n,
                Rows { buf: mel, base: i0 * (frames + 2) * nm, row: nm, outer: (frames + 2) * nm, inner: 0 },
                &[OutSegment { outer: (frames + 2) * d, ..rows_out(conv1_out, d, d, d) }],
                Epilogue { gelu: true, ..Default::default() },
            );
            // conv2, stride 2: output row t reads conv1 rows 2t-1 .. 2t+1 = stored rows 2t .. 2t+2.
            g.linear_batched(
                &w.conv2,
                t,
                n,
                Rows { buf: conv1_out, base: 0, row: 2 * d, outer: (frames + 2) * d, inner: 0 },
                &[OutSegment { outer: t * d, ..rows_out(x, 0, d, d) }],
                Epilogue {
                    gelu: true,
                    add: Some(Rows { buf: w.encoder_positional, base: 0, row: d, outer: 0, inner: 0 }),
                    ..Default::default()
                },
            );
            let rows = n * t;
            let flat = |buf| Rows { buf, base: 0, row: d, outer: 0, inner: 0 };
            for blk in &w.encoder {
                g.layer_norm(&blk.attn_ln, rows, d, x, hbuf, None);
                // k row-major; q and v transposed per batch item: q_t[b][c][t] (rows adjacent),
                // so that attention is computed transposed (see `self_attention`). Rows are
                // flattened over the batch, so a transposed segment maps row m = b*T + t with a
                // row stride of 1 only within an item: done as one matmul per batch item.
                for b in 0..n {
                    let xr = Rows { buf: hbuf, base: b * t * d, row: d, outer: 0, inner: 0 };
                    let transposed = |buf, end| OutSegment {
                        end,
                        buf,
                        elem: Elem::F32,
                        base: b * d * t_pad,
                        row: 1,
                        col: t_pad,
                        outer: 0,
                        inner: 0,
                        pos: 0,
                    };
                    let segs = [transposed(qt, d), rows_out(k, b * t * d, d, 2 * d), transposed(vt, 3 * d)];
                    g.linear(&blk.qkv, t, xr, &segs, Epilogue::default());
                }
                for b in 0..n {
                    for h0 in (0..h).step_by(group) {
                        self_attention(
                            &mut g,
                            AttnShape { t, t_pad, d, hd, h0, hg: group.min(h - h0), b },
                            qt,
                            k,
                            vt,
                            scores,
                            attn,
                        );
                    }
                }
                let residual = Epilogue { accumulate: true, ..Default::default() };
                g.linear(&blk.out, rows, flat(attn), &[rows_out(x, 0, d, d)], residual);
                g.layer_norm(&blk.mlp_ln, rows, d, x, hbuf, None);
                let fr = Rows { buf: mlp, base: 0, row: f, outer: 0, inner: 0 };
                g.linear(
                    &blk.fc1,
                    rows,
                    flat(hbuf),
                    &[rows_out(mlp, 0, f, f)],
                    Epilogue { gelu: true, ..Default::default() },
                );
                g.linear(&blk.fc2, rows, fr, &[rows_out(x, 0, d, d)], residual);
            }
            g.ops.push(Op::LayerNorm(LayerNorm {
                rows,
                dim: d,
                x,
                x_base: 0,
                x_row: d,
                gamma: w.ln_post.gamma,
                beta: w.ln_post.beta,
                y: output,
                y_base: i0 * t * d,
                y_row: d,
                eps: LN_EPS,
                state: None,
            }));
        }
        let plan = backend.compile(&g.ops)?;
        Ok(EncoderPlan { batch, plan, mel, output, buffers: bufs, n_mels: nm, n_frames: frames })
    }

    /// Writes log-mel spectrograms (`[n_mels][n_frames]` each, as the front end makes them)
    /// transposed into the padded time-major input. Missing items are zeros.
    pub fn write_mel(&self, backend: &mut dyn Backend, mels: &[&[f32]]) -> Result<()> {
        let (nm, fr) = (self.n_mels, self.n_frames);
        if mels.len() > self.batch {
            return Err(Error::InvalidArgument(format!(
                "{} spectrograms for an encoder of batch {}",
                mels.len(),
                self.batch
            )));
        }
        let mut buf = vec![0f32; self.batch * (fr + 2) * nm];
        for (b, mel) in mels.iter().enumerate() {
            if mel.len() != nm * fr {
                return Err(Error::InvalidArgument(format!(
                    "a log-mel spectrogram of {} values; the model needs {nm} x {fr}",
                    mel.len()
                )));
            }
            for c in 0..nm {
                for t in 0..fr {
                    buf[(b * (fr + 2) + t + 1) * nm + c] = mel[c * fr + t];
                }
            }
        }
        backend.write(self.mel, 0, bytemuck::cast_slice(&buf))
    }
}

/// Where one head group of one batch item sits in the encoder's buffers.
struct AttnShape {
    t: usize,
    t_pad: usize,
    d: usize,
    hd: usize,
    /// First head and number of heads.
    h0: usize,
    hg: usize,
    /// Batch item within the group being encoded.
    b: usize,
}

/// Scores GEMM, softmax and values GEMM for heads `h0 .. h0 + hg` of item `b`, computed
/// transposed: S^T = K Q^T, a softmax down each column, O^T = V^T P^T. The products' wide
/// dimension is then always the T queries (never the head size), which keeps every SIMD lane
/// of a GEMM tile busy, and the softmax reads neighbouring queries side by side.
fn self_attention(g: &mut Builder, s: AttnShape, qt: BufId, k: BufId, vt: BufId, scores: BufId, attn: BufId) {
    let AttnShape { t, t_pad, d, hd, h0, hg, b } = s;
    // Where head h0's dimension 0 starts in a transposed `[D][T_pad]` buffer of item b.
    let head_t = b * d * t_pad + h0 * hd * t_pad;
    // scores[z][j][i] = k_j . q_i for heads h0 .. h0+hg
    g.ops.push(Op::Matmul(Matmul {
        m: t,
        n: t,
        k: hd,
        z_outer: 1,
        z_inner: hg,
        x: Rows { buf: k, base: b * t * d + h0 * hd, row: d, outer: 0, inner: hd },
        b: BOperand {
            buf: qt,
            format: BFormat::F32,
            base: head_t,
            k_stride: t_pad,
            outer: 0,
            inner: hd * t_pad,
            scale_base: 0,
        },
        bias: None,
        gelu: false,
        add: None,
        accumulate: false,
        out: vec![OutSegment { inner: t * t_pad, ..rows_out(scores, 0, t_pad, t) }],
        state: None,
    }));
    // Over the keys j of each query i: a column of the transposed scores.
    g.ops.push(Op::Softmax(Softmax {
        buf: scores,
        rows: t,
        cols: t,
        base: 0,
        row: 1,
        col: t_pad,
        z: hg,
        z_stride: t * t_pad,
        scale: 1.0 / (hd as f32).sqrt(),
    }));
    // attn[i][h*hd + c] = sum_j v_t[c][j] p[z][j][i]: row c of the product is dimension c.
    g.ops.push(Op::Matmul(Matmul {
        m: hd,
        n: t,
        k: t,
        z_outer: 1,
        z_inner: hg,
        x: Rows { buf: vt, base: head_t, row: t_pad, outer: 0, inner: hd * t_pad },
        b: BOperand {
            buf: scores,
            format: BFormat::F32,
            base: 0,
            k_stride: t_pad,
            outer: 0,
            inner: t * t_pad,
            scale_base: 0,
        },
        bias: None,
        gelu: false,
        add: None,
        accumulate: false,
        out: vec![OutSegment {
            end: t,
            buf: attn,
            elem: Elem::F32,
            base: b * t * d + h0 * hd,
            row: 1,
            col: d,
            outer: 0,
            inner: hd,
            pos: 0,
        }],
        state: None,
    }));
}
