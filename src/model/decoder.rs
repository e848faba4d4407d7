//! The text decoder as two op lists over buffers allocated once per session:
//!
//! * `cross`: per utterance, the cross-attention keys and values of every layer from the
//!   encoder output, into f16 caches transposed per head (`[row][D][T_pad]`); one plan per
//!   chunk of rows the encoder runs at once (its buffers may hold fewer rows than the batch).
//! * `step`: one decode step for every row: embed the row's token at its position, pre-norm
//!   blocks (self-attention writing K/V at the position and reading the valid prefix,
//!   cross-attention, MLP), final norm, logits (against the tied embedding, or a projection of
//!   their own), and the token selection that advances each row's state. Identical every step: what varies is in `state`.
use super::ops::{rows_out, Builder, Epilogue};
use super::upload::DeviceWeights;
use crate::backend::{Backend, PlanId};
use crate::config::{GenerationConfig, ModelDims};
use crate::graph::*;
use crate::{Error, Result};

/// Shapes of a decoding session.
#[derive(Clone, Copy, Debug)]
pub struct DecoderShape {
    /// Sequences decoded together.
    pub rows: usize,
    /// Positions the self-attention cache holds (rounded up to 16).
    pub cap: usize,
    /// Tokens a row may hold in total: min(cap, n_text_ctx).
    pub max_len: usize,
    /// Benchmark only: attend over the whole capacity with a mask.
    pub full_capacity_attention: bool,
    /// Element type of the KV caches (self and cross): F16 halves attention's memory traffic,
    /// F32 keeps the reference's precision.
    pub kv: Elem,
}

impl DecoderShape {
    pub fn new(dims: &ModelDims, rows: usize, capacity: Option<usize>) -> Result<DecoderShape> {
        let cap = capacity.unwrap_or(dims.n_text_ctx);
        if rows == 0 || cap < 2 {
            return Err(Error::InvalidArgument(format!(
                "a decoder needs at least one row and 2 positions (got {rows} and {cap})"
            )));
        }
        Ok(DecoderShape {
            rows,
            cap: cap.next_multiple_of(16),
            max_len: cap.min(dims.n_text_ctx),
            full_capacity_attention: false,
            kv: Elem::F16,
        })
    }
}

/// Buffers and plans of one decoding session.
pub struct DecoderPlans {
    pub shape: DecoderShape,
    /// Cross K/V of rows `[c * encoder_rows, (c + 1) * encoder_rows)` from encoder output rows
    /// `[0, encoder_rows)`, for each chunk `c`.
    pub cross: Vec<PlanId>,
    pub step: PlanId,
    /// `[rows][STATE_WORDS]` u32.
    pub state: BufId,
    /// `[rows][cap]` u32: prompt, then generated tokens.
    pub history: BufId,
    /// `[rows][cap]` f32: log-probability of each generated token.
    pub logprobs: BufId,
    /// `[rows][logits_row]` f32: the last step's logits.
    pub logits: BufId,
    pub logits_row: usize,
    /// Suppression bitmasks: `[2][ceil(n_vocab / 32)]`.
    pub rules: BufId,
    pub buffers: Vec<BufId>,
}

impl DecoderPlans {
    /// `encoder_output` is `[encoder_rows][n_audio_ctx][n_audio_state]` f32 (an encoder plan's
    /// output; `encoder_rows <= rows`).
    pub fn build(
        backend: &mut dyn Backend,
        dims: &ModelDims,
        generation: &GenerationConfig,
        w: &DeviceWeights,
        shape: DecoderShape,
        encoder_output: BufId,
        encoder_rows: usize,
    ) -> Result<DecoderPlans> {
        let DecoderShape { rows, cap, max_len, .. } = shape;
        let (d, h, f, v) = (dims.n_text_state, dims.n_text_head, dims.n_text_mlp, dims.n_vocab);
        let hd = d / h;
        let (t, t_pad) = (dims.n_audio_ctx, dims.n_audio_ctx.next_multiple_of(16));
        let logits_row = v.next_multiple_of(16);
        let mut bufs = Vec::new();
        let mut alloc = |b: &mut dyn Backend, label: &str, elem: Elem, len: usize| -> Result<BufId> {
            let id = b.create_buffer(label, elem, len)?;
            bufs.push(id);
            Ok(id)
        };
        let state = alloc(backend, "decoder.state", Elem::U32, rows * STATE_WORDS)?;
        let history = alloc(backend, "decoder.history", Elem::U32, rows * cap)?;
        let logprobs = alloc(backend, "decoder.logprobs", Elem::F32, rows * cap)?;
        let logits = alloc(backend, "decoder.logits", Elem::F32, rows * logits_row)?;
        let rules = alloc(backend, "decoder.rules", Elem::U32, 2 * v.div_ceil(32))?;
        let x = alloc(backend, "decoder.x", Elem::F32, rows * d)?;
        let hb = alloc(backend, "decoder.h", Elem::F32, rows * d)?;
        let q = alloc(backend, "decoder.q", Elem::F32, rows * d)?;
        let attn = alloc(backend, "decoder.attn", Elem::F32, rows * d)?;
        let mlp = alloc(backend, "decoder.mlp", Elem::F32, rows * f)?;
        let mut self_kv = Vec::new();
        let mut cross_kv = Vec::new();
        for l in 0..dims.n_text_layer {
            let k = alloc(backend, &format!("decoder.{l}.self_k"), shape.kv, rows * d * cap)?;
            let vv = alloc(backend, &format!("decoder.{l}.self_v"), shape.kv, rows * d * cap)?;
            self_kv.push((k, vv));
            let k = alloc(backend, &format!("decoder.{l}.cross_k"), shape.kv, rows * d * t_pad)?;
            let vv = alloc(backend, &format!("decoder.{l}.cross_v"), shape.kv, rows * d * t_pad)?;
            cross_kv.push((k, vv));
        }
        let attend = |k_t, v_t, cap, fixed_len: Option<usize>, max_len, partials| Attend {
            rows,
            heads: h,
            head_dim: hd,
            cap,
            fixed_len,
            max_len,
            q,
            q_base: 0,
            q_row: d,
            k_t,
            v_t,
            kv: shape.kv,
            partials,
            out: attn,
            out_base: 0,
            out_row: d,
            scale: 1.0 / (hd as f32).sqrt(),
            state,
            full_capacity: shape.full_capacity_attention,
        };
        let probe = attend(BufId(0), BufId(0), cap, None, max_len, BufId(0));
        let self_partials = alloc(backend, "decoder.self_partials", Elem::F32, probe.partials_len())?;
        let probe = attend(BufId(0), BufId(0), t_pad, Some(t), t, BufId(0));
        let cross_partials = alloc(backend, "decoder.cross_partials", Elem::F32, probe.partials_len())?;

        // Per utterance: cross-attention K/V of every layer, a chunk of rows per plan.
        let encoder_rows = encoder_rows.clamp(1, rows);
        let mut cross_ops = Vec::new();
        for chunk in 0..rows.div_ceil(encoder_rows) {
            let mut c = Builder::default();
            for (blk, &(k_t, v_t)) in w.decoder.iter().zip(&cross_kv) {
                for r in chunk * encoder_rows..((chunk + 1) * encoder_rows).min(rows) {
                    let e = r - chunk * encoder_rows;
                    let xr = Rows { buf: encoder_output, base: e * t * d, row: d, outer: 0, inner: 0 };
                    let tr = |buf, end| OutSegment {
                        end,
                        buf,
                        elem: shape.kv,
                        base: r * d * t_pad,
                        row: 1,
                        col: t_pad,
                        outer: 0,
                        inner: 0,
                        pos: 0,
                    };
                    c.linear(&blk.cross_kv, t, xr, &[tr(k_t, d), tr(v_t, 2 * d)], Epilogue::default());
                }
            }
            cross_ops.push(c.ops);
        }

        // One decode step.
        let mut s = Builder::default();
        let st = Some(state);
        let decode = Epilogue { state: st, ..Default::default() };
        let residual = Epilogue { accumulate: true, state: st, ..Default::default() };
        let flat = |buf, width| Rows { buf, base: 0, row: width, outer: 0, inner: 0 };
        s.ops.push(Op::Embed(Embed {
            rows,
            dim: d,
            table: w.token_embedding.as_embedding(),
            positional: w.decoder_positional,
            state,
            y: x,
        }));
        for (l, blk) in w.decoder.iter().enumerate() {
            let (k_t, v_t) = self_kv[l];
            let cache = |end, buf| OutSegment {
                end,
                buf,
                elem: shape.kv,
                base: 0,
                row: d * cap,
                col: cap,
                outer: 0,
                inner: 0,
                pos: 1,
            };
            s.layer_norm(&blk.attn_ln, rows, d, x, hb, st);
            s.linear(
                &blk.qkv,
                rows,
                flat(hb, d),
                &[rows_out(q, 0, d, d), cache(2 * d, k_t), cache(3 * d, v_t)],
                decode,
            );
            s.ops.push(Op::Attend(attend(k_t, v_t, cap, None, max_len, self_partials)));
            s.linear(&blk.out, rows, flat(attn, d), &[rows_out(x, 0, d, d)], residual);
            s.layer_norm(&blk.cross_ln, rows, d, x, hb, st);
            s.linear(&blk.cross_q, rows, flat(hb, d), &[rows_out(q, 0, d, d)], decode);
            let (ck, cv) = cross_kv[l];
            s.ops.push(Op::Attend(attend(ck, cv, t_pad, Some(t), t, cross_partials)));
            s.linear(&blk.cross_out, rows, flat(attn, d), &[rows_out(x, 0, d, d)], residual);
            s.layer_norm(&blk.mlp_ln, rows, d, x, hb, st);
            s.linear(
                &blk.fc1,
                rows,
                flat(hb, d),
                &[rows_out(mlp, 0, f, f)],
                Epilogue { gelu: true, state: st, ..Default::default() },
            );
            s.linear(&blk.fc2, rows, flat(mlp, f), &[rows_out(x, 0, d, d)], residual);
        }
        s.layer_norm(&w.decoder_ln, rows, d, x, hb, st);
        s.linear(w.logits(), rows, flat(hb, d), &[rows_out(logits, 0, logits_row, v)], decode);
        s.ops.push(Op::SelectToken(SelectToken {
            rows,
            vocab: v,
            logits,
            logits_row,
            rules,
            state,
            history,
            logprobs,
            cap,
            ts_begin: generation.timestamp_begin.filter(|&t| (t as usize) < v),
            no_timestamps: generation.no_timestamps,
            rule: generation.selection,
        }));
        // Compile the cross plans and the step plan; on a failure release what was made.
        let mut cross = Vec::new();
        let compiled = (|| -> Result<PlanId> {
            for ops in &cross_ops {
                cross.push(backend.compile(ops)?);
            }
            backend.compile(&s.ops)
        })();
        let step = match compiled {
            Ok(p) => p,
            Err(e) => {
                for &p in &cross {
                    backend.free_plan(p);
                }
                for &b in &bufs {
                    backend.free_buffer(b);
                }
                return Err(e);
            }
        };
        Ok(DecoderPlans { shape, cross, step, state, history, logprobs, logits, logits_row, rules, buffers: bufs })
    }
}
