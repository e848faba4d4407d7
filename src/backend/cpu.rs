//! The plain-Rust reference backend: each op written as the loops its definition says, in f32
//! (f64 for GELU's erf), with no tiling. Kernel tests compare the GPU against it; it is far
//! too slow for real models.
use super::{Backend, Counters, PlanId};
use crate::amt;
use crate::config::Selection;
use crate::graph::*;
use crate::{Error, Result};
use half::f16;

struct Buffer {
    elem: Elem,
    words: Vec<u32>,
}

#[derive(Default)]
pub struct CpuBackend {
    buffers: Vec<Buffer>,
    plans: Vec<Vec<Op>>,
    counters: Counters,
}

impl CpuBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn buf(&self, id: BufId) -> &Buffer {
        &self.buffers[id.0 as usize]
    }
    fn f32_at(&self, id: BufId, i: usize) -> f32 {
        f32::from_bits(self.buf(id).words[i])
    }
    fn set_f32(&mut self, id: BufId, i: usize, v: f32) {
        self.buffers[id.0 as usize].words[i] = v.to_bits();
    }
    fn u32_at(&self, id: BufId, i: usize) -> u32 {
        self.buf(id).words[i]
    }
    fn f16_at(&self, id: BufId, i: usize) -> f32 {
        let w = self.buf(id).words[i / 2];
        let h = if i % 2 == 1 { w >> 16 } else { w & 0xffff };
        f16::from_bits(h as u16).to_f32()
    }
    fn set_f16(&mut self, id: BufId, i: usize, v: f32) {
        let h = f16::from_f32(v).to_bits() as u32;
        let w = &mut self.buffers[id.0 as usize].words[i / 2];
        *w = if i % 2 == 1 { (*w & 0xffff) | (h << 16) } else { (*w & 0xffff_0000) | h };
    }
    /// An int8 weight element (k, n) of the pair-interleaved layout starting at byte `base`.
    fn i8_at(&self, id: BufId, base: usize, k_stride: usize, k: usize, n: usize) -> f32 {
        let byte = base + (k / 2) * 2 * k_stride + 2 * n + k % 2;
        let w = self.buf(id).words[byte / 4];
        ((w >> ((byte % 4) * 8)) as u8 as i8) as f32
    }
    fn state_word(&self, state: BufId, row: usize, word: usize) -> u32 {
        self.u32_at(state, row * STATE_WORDS + word)
    }
    fn row_done(&self, state: Option<BufId>, row: usize) -> bool {
        state.is_some_and(|s| self.state_word(s, row, state::DONE) != 0)
    }

    fn matmul(&mut self, op: &Matmul) {
        for zo in 0..op.z_outer {
            for zi in 0..op.z_inner {
                for m in 0..op.m {
                    if self.row_done(op.state, m) {
                        continue;
                    }
                    let x0 = op.x.base + zo * op.x.outer + zi * op.x.inner + m * op.x.row;
                    let b0 = op.b.base + zo * op.b.outer + zi * op.b.inner;
                    for n in 0..op.n {
                        let mut acc = 0f32;
                        for k in 0..op.k {
                            let bi = b0 + k * op.b.k_stride + n;
                            let w = match op.b.format {
                                BFormat::F32 => self.f32_at(op.b.buf, bi),
                                BFormat::F16 => self.f16_at(op.b.buf, bi),
                                BFormat::F16Blocked => self.f16_at(op.b.buf, b0 + blocked(k, n, op.k)),
                                BFormat::I8 => self.i8_at(op.b.buf, b0, op.b.k_stride, k, n),
                            };
                            acc += self.f32_at(op.x.buf, x0 + k) * w;
                        }
                        let mut v = acc;
                        if op.b.format == BFormat::I8 {
                            v *= self.f32_at(op.b.buf, op.b.scale_base + n);
                        }
                        if let Some((b, base)) = op.bias {
                            v += self.f32_at(b, base + n);
                        }
                        if op.gelu {
                            v = gelu(v);
                        }
                        if let Some(a) = op.add {
                            v += self.f32_at(a.buf, a.base + zo * a.outer + zi * a.inner + m * a.row + n);
                        }
                        let s = op.out.iter().position(|s| n < s.end).expect("segments cover n");
                        let start = if s == 0 { 0 } else { op.out[s - 1].end };
                        let seg = op.out[s];
                        let pos = op.state.map_or(0, |st| self.state_word(st, m, state::POS) as usize);
                        let idx = seg.base
                            + zo * seg.outer
                            + zi * seg.inner
                            + m * seg.row
                            + (n - start) * seg.col
                            + pos * seg.pos;
                        match seg.elem {
                            Elem::F16 => self.set_f16(seg.buf, idx, v),
                            _ => {
                                if s == 0 && op.accumulate {
                                    v += self.f32_at(seg.buf, idx);
                                }
                                self.set_f32(seg.buf, idx, v)
                            }
                        }
                    }
                }
            }
        }
    }

    fn layer_norm(&mut self, op: &LayerNorm) {
        for r in 0..op.rows {
            if self.row_done(op.state, r) {
                continue;
            }
            let xs: Vec<f32> = (0..op.dim).map(|i| self.f32_at(op.x, op.x_base + r * op.x_row + i)).collect();
            let mean = xs.iter().sum::<f32>() / op.dim as f32;
            let var = xs.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / op.dim as f32;
            let rstd = 1.0 / (var + op.eps).sqrt();
            for (i, v) in xs.iter().enumerate() {
                let y = (v - mean) * rstd * self.f32_at(op.gamma, i) + self.f32_at(op.beta, i);
                self.set_f32(op.y, op.y_base + r * op.y_row + i, y);
            }
        }
    }

    fn softmax(&mut self, op: &Softmax) {
        for z in 0..op.z {
            for r in 0..op.rows {
                let i0 = op.base + z * op.z_stride + r * op.row;
                let v: Vec<f32> = (0..op.cols).map(|c| self.f32_at(op.buf, i0 + c * op.col) * op.scale).collect();
                let m = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = v.iter().map(|x| (x - m).exp()).collect();
                let l: f32 = e.iter().sum();
                for (c, x) in e.iter().enumerate() {
                    self.set_f32(op.buf, i0 + c * op.col, x / l);
                }
            }
        }
    }

    fn embed(&mut self, op: &Embed) {
        for r in 0..op.rows {
            if self.row_done(Some(op.state), r) {
                continue;
            }
            let tok = self.state_word(op.state, r, state::TOKEN) as usize;
            let pos = self.state_word(op.state, r, state::POS) as usize;
            let Some(chunk) = op.table.iter().find(|c| tok >= c.col_start && tok < c.col_start + c.cols) else {
                continue;
            };
            for d in 0..op.dim {
                let c = tok - chunk.col_start;
                let i = d * chunk.row_elems + c;
                let e = match chunk.format {
                    BFormat::F16 => self.f16_at(chunk.buf, i),
                    BFormat::F16Blocked => self.f16_at(chunk.buf, blocked(d, c, op.dim)),
                    BFormat::F32 => self.f32_at(chunk.buf, i),
                    BFormat::I8 => {
                        self.i8_at(chunk.buf, 0, chunk.row_elems, d, c) * self.f32_at(chunk.buf, chunk.scale_base + c)
                    }
                };
                let v = e + self.f32_at(op.positional, pos * op.dim + d);
                self.set_f32(op.y, r * op.dim + d, v);
            }
        }
    }

    fn cache_at(&self, buf: BufId, elem: Elem, i: usize) -> f32 {
        match elem {
            Elem::F16 => self.f16_at(buf, i),
            _ => self.f32_at(buf, i),
        }
    }

    fn attend(&mut self, op: &Attend) {
        for r in 0..op.rows {
            if self.row_done(Some(op.state), r) {
                continue;
            }
            let n_valid = op.fixed_len.unwrap_or_else(|| self.state_word(op.state, r, state::POS) as usize + 1);
            for h in 0..op.heads {
                let q0 = op.q_base + r * op.q_row + h * op.head_dim;
                let head = r * op.heads * op.head_dim * op.cap + h * op.head_dim * op.cap;
                let scores: Vec<f32> = (0..n_valid)
                    .map(|j| {
                        let mut s = 0f32;
                        for d in 0..op.head_dim {
                            s += self.f32_at(op.q, q0 + d) * self.cache_at(op.k_t, op.kv, head + d * op.cap + j);
                        }
                        s * op.scale
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = scores.iter().map(|s| (s - m).exp()).collect();
                let l: f32 = e.iter().sum();
                for d in 0..op.head_dim {
                    let mut acc = 0f32;
                    for (j, p) in e.iter().enumerate() {
                        acc += p * self.cache_at(op.v_t, op.kv, head + d * op.cap + j);
                    }
                    self.set_f32(op.out, op.out_base + r * op.out_row + h * op.head_dim + d, acc / l);
                }
            }
        }
    }

    fn select(&mut self, op: &SelectToken) {
        let mask_words = op.vocab.div_ceil(32);
        let bit = |b: &Self, word0: usize, t: usize| (b.u32_at(op.rules, word0 + t / 32) >> (t % 32)) & 1 != 0;
        for r in 0..op.rows {
            let w = |b: &Self, i: usize| b.state_word(op.state, r, i);
            if w(self, state::DONE) != 0 {
                continue;
            }
            let pos = w(self, state::POS) as usize;
            let next = pos + 1;
            let forced = next < w(self, state::PROMPT_LEN) as usize;
            let logits: Vec<f32> = (0..op.vocab).map(|t| self.f32_at(op.logits, r * op.logits_row + t)).collect();
            let no_speech = w(self, state::NO_SPEECH);
            if pos == w(self, state::SOT_POS) as usize && no_speech != state::NONE {
                let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let l: f32 = logits.iter().map(|v| (v - m).exp()).sum();
                let p = (logits[no_speech as usize] - m).exp() / l;
                self.buffers[op.state.0 as usize].words[r * STATE_WORDS + state::NO_SPEECH_PROB] = p.to_bits();
            }
            let eot = w(self, state::EOT);
            let s = r * STATE_WORDS;
            let tok = if forced {
                self.u32_at(op.history, r * op.cap + next)
            } else if op.rule == Selection::AriaAmt {
                let (tok, lp) = aria_choice(&logits);
                self.record(op, r, next, tok, lp);
                tok
            } else {
                let history: Vec<u32> = (0..next).map(|i| self.u32_at(op.history, r * op.cap + i)).collect();
                let sample_begin = (w(self, state::SAMPLE_BEGIN) as usize).min(next);
                let flags = w(self, state::FLAGS);
                let rules = Rules {
                    timestamps: flags & state::FLAG_TIMESTAMPS != 0 && op.ts_begin.is_some(),
                    ts_begin: op.ts_begin.unwrap_or(u32::MAX),
                    no_timestamps: op.no_timestamps,
                    eot,
                    last_ts: w(self, state::LAST_TS),
                    max_initial: w(self, state::MAX_INITIAL_TS),
                };
                let allowed: Vec<bool> = (0..op.vocab)
                    .map(|t| {
                        let suppressed = bit(self, 0, t) || (next == sample_begin && bit(self, mask_words, t));
                        !suppressed && rules.allows(t as u32, &history[sample_begin..])
                    })
                    .collect();
                let sampling = (flags & state::FLAG_SAMPLE != 0)
                    .then(|| (f32::from_bits(w(self, state::TEMPERATURE)).max(1e-6), w(self, state::SEED)));
                let (tok, lp) = choose(&logits, &allowed, &rules, sampling, next as u32);
                self.record(op, r, next, tok, lp);
                if rules.timestamps && tok >= rules.ts_begin && (tok as usize) < op.vocab {
                    self.buffers[op.state.0 as usize].words[s + state::LAST_TS] = tok;
                }
                tok
            };
            let stop = match op.rule {
                Selection::Whisper => tok == eot,
                Selection::AriaAmt => tok == amt::vocab::EOS_ID || tok >= amt::select::LATE_ONSET_ID,
            };
            let max_len = w(self, state::MAX_LEN) as usize;
            let words = &mut self.buffers[op.state.0 as usize].words;
            words[s + state::TOKEN] = tok;
            words[s + state::POS] = next as u32;
            if (!forced && stop) || next + 1 >= max_len {
                words[s + state::DONE] = 1;
            }
        }
    }

    /// Writes a sampled token and its log-probability into row `r`'s history and scores.
    fn record(&mut self, op: &SelectToken, r: usize, next: usize, tok: u32, lp: f32) {
        self.set_f32(op.logprobs, r * op.cap + next, lp);
        self.buffers[op.history.0 as usize].words[r * op.cap + next] = tok;
        let s = r * STATE_WORDS;
        let sum = f32::from_bits(self.u32_at(op.state, s + state::SUM_LOGPROB)) + lp;
        let words = &mut self.buffers[op.state.0 as usize].words;
        words[s + state::SUM_LOGPROB] = sum.to_bits();
        words[s + state::N_GENERATED] += 1;
    }
}

/// aria-amt's choice for one row of logits ([`amt::select()`]) and its log-probability under
/// the scaled softmax; logits it refuses (NaN) give id 0, as the kernels do.
fn aria_choice(logits: &[f32]) -> (u32, f32) {
    let Ok(choice) = amt::select(logits) else { return (0, 0.0) };
    let scaled = |i: usize| {
        let v = logits[i];
        if i as u32 == amt::vocab::PEDAL_OFF_ID {
            v * amt::select::PEDAL_OFF_SCALE
        } else {
            v
        }
    };
    let m = (0..logits.len()).map(scaled).fold(f32::NEG_INFINITY, f32::max);
    let total: f32 = (0..logits.len()).map(|i| (scaled(i) - m).exp()).sum();
    (choice.selected, scaled(choice.selected as usize) - m - total.ln())
}

/// Whisper's timestamp rules (OpenAI's `ApplyTimestampRules`) for one row.
struct Rules {
    timestamps: bool,
    ts_begin: u32,
    no_timestamps: Option<u32>,
    eot: u32,
    /// The last sampled timestamp token, or NONE.
    last_ts: u32,
    max_initial: u32,
}

impl Rules {
    /// Whether token `t` may follow the sampled tokens `seq`.
    fn allows(&self, t: u32, seq: &[u32]) -> bool {
        if !self.timestamps {
            return true;
        }
        let is_ts = t >= self.ts_begin;
        if Some(t) == self.no_timestamps {
            return false;
        }
        let last_was_ts = seq.last().is_some_and(|&x| x >= self.ts_begin);
        let penultimate_was_ts = seq.len() < 2 || seq[seq.len() - 2] >= self.ts_begin;
        if last_was_ts {
            if penultimate_was_ts && is_ts {
                return false; // a pair just closed: text must follow
            }
            if !penultimate_was_ts && t < self.eot {
                return false; // a segment just ended: another timestamp (or end) must follow
            }
        }
        if is_ts && self.last_ts != state::NONE {
            let floor = if last_was_ts && !penultimate_was_ts { self.last_ts } else { self.last_ts + 1 };
            if t < floor {
                return false;
            }
        }
        if seq.is_empty() {
            if !is_ts {
                return false;
            }
            if self.max_initial != state::NONE && t > self.ts_begin + self.max_initial {
                return false;
            }
        }
        true
    }
}

/// Picks a token among the allowed ones and returns it with its log-probability (log-softmax
/// of the allowed logits at temperature 1, after the timestamp-mass rule).
fn choose(logits: &[f32], allowed: &[bool], rules: &Rules, sampling: Option<(f32, u32)>, pos: u32) -> (u32, f32) {
    let ts_begin = if rules.timestamps { rules.ts_begin as usize } else { logits.len() };
    let lse = |range: std::ops::Range<usize>| -> f32 {
        let vals: Vec<f32> = range.filter(|&t| allowed[t]).map(|t| logits[t]).collect();
        let m = vals.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        if m == f32::NEG_INFINITY {
            return m;
        }
        m + vals.iter().map(|v| (v - m).exp()).sum::<f32>().ln()
    };
    let text_max =
        (0..ts_begin.min(logits.len())).filter(|&t| allowed[t]).map(|t| logits[t]).fold(f32::NEG_INFINITY, f32::max);
    let ts_mass = lse(ts_begin.min(logits.len())..logits.len());
    let force_ts = rules.timestamps && ts_mass > text_max && ts_mass > f32::NEG_INFINITY;
    let score = |t: usize| match sampling {
        Some((temp, seed)) => logits[t] / temp + gumbel(seed, pos, t as u32),
        None => logits[t],
    };
    let candidates = (0..logits.len()).filter(|&t| allowed[t] && (!force_ts || t >= ts_begin));
    let mut best: Option<(usize, f32)> = None;
    for t in candidates {
        let v = score(t);
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((t, v));
        }
    }
    let Some((tok, _)) = best else { return (rules.eot, 0.0) };
    let denom = if force_ts { ts_mass } else { lse(0..logits.len()) };
    (tok as u32, logits[tok] - denom)
}

/// The sampling noise of `shaders/select.wgsl`: standard Gumbel from a hash of
/// (seed, position, token).
pub fn gumbel(seed: u32, pos: u32, t: u32) -> f32 {
    fn hash(x: u32) -> u32 {
        let h = x.wrapping_mul(747796405).wrapping_add(2891336453);
        let w = ((h >> ((h >> 28) + 4)) ^ h).wrapping_mul(277803737);
        (w >> 22) ^ w
    }
    let h = hash(seed ^ hash(pos ^ hash(t)));
    let u = ((h >> 8) as f32 + 0.5) * (1.0 / 16777216.0);
    -(-u.ln()).ln()
}

/// GELU with erf evaluated in f64.
pub fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))) as f32
}

/// erf to about 1e-13: Taylor series near zero, a continued fraction for erfc in the tails.
pub fn erf(x: f64) -> f64 {
    let a = x.abs();
    let v = if a < 2.5 {
        let mut term = a;
        let mut sum = a;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else if a > 6.0 {
        1.0
    } else {
        // erfc(a) = exp(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + ...)))))
        let mut f = a;
        for k in (1..60).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
    };
    v.copysign(x)
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        "cpu reference".into()
    }
    fn max_binding_bytes(&self) -> u64 {
        u64::MAX
    }
    fn create_buffer(&mut self, _label: &str, elem: Elem, len: usize) -> Result<BufId> {
        let words = Elem::bytes(len, elem) / 4;
        self.buffers.push(Buffer { elem, words: vec![0; words] });
        self.counters.buffers += 1;
        self.counters.live_bytes += 4 * words as u64;
        Ok(BufId(self.buffers.len() as u32 - 1))
    }
    fn write(&mut self, buf: BufId, offset_bytes: usize, data: &[u8]) -> Result<()> {
        let b =
            self.buffers.get_mut(buf.0 as usize).ok_or_else(|| Error::InvalidArgument(format!("no buffer {buf:?}")))?;
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut b.words);
        let end = offset_bytes.checked_add(data.len()).filter(|&e| e <= bytes.len());
        let end = end.ok_or_else(|| Error::InvalidArgument(format!("write past the end of {buf:?}")))?;
        bytes[offset_bytes..end].copy_from_slice(data);
        Ok(())
    }
    fn read(&mut self, buf: BufId, offset_bytes: usize, len_bytes: usize) -> Result<Vec<u8>> {
        let b = self.buffers.get(buf.0 as usize).ok_or_else(|| Error::InvalidArgument(format!("no buffer {buf:?}")))?;
        let bytes: &[u8] = bytemuck::cast_slice(&b.words);
        let end = offset_bytes.checked_add(len_bytes).filter(|&e| e <= bytes.len());
        let end = end.ok_or_else(|| Error::InvalidArgument(format!("read past the end of {buf:?}")))?;
        let _ = b.elem;
        Ok(bytes[offset_bytes..end].to_vec())
    }
    fn compile(&mut self, ops: &[Op]) -> Result<PlanId> {
        for op in ops {
            if let Op::SelectToken(o) = op {
                o.check_rule()?;
            }
        }
        self.plans.push(ops.to_vec());
        self.counters.plans += 1;
        Ok(PlanId(self.plans.len() as u32 - 1))
    }
    fn run(&mut self, plan: PlanId, times: usize) -> Result<()> {
        let ops = std::mem::take(&mut self.plans[plan.0 as usize]);
        for _ in 0..times {
            for op in &ops {
                match op {
                    Op::Matmul(o) => self.matmul(o),
                    Op::LayerNorm(o) => self.layer_norm(o),
                    Op::Softmax(o) => self.softmax(o),
                    Op::Embed(o) => self.embed(o),
                    Op::Attend(o) => self.attend(o),
                    Op::SelectToken(o) => self.select(o),
                }
            }
        }
        self.plans[plan.0 as usize] = ops;
        Ok(())
    }
    fn free_buffer(&mut self, buf: BufId) {
        if let Some(b) = self.buffers.get_mut(buf.0 as usize) {
            self.counters.live_bytes -= 4 * b.words.len() as u64;
            b.words = Vec::new();
        }
    }
    fn free_plan(&mut self, plan: PlanId) {
        if let Some(p) = self.plans.get_mut(plan.0 as usize) {
            p.clear();
        }
    }
    fn counters(&self) -> Counters {
        self.counters
    }
    fn dispatch_count(&self, plan: PlanId) -> usize {
        self.plans[plan.0 as usize].len()
    }
}

/// Element (k, n) of a `BFormat::F16Blocked` operand with `k_len` k-rows.
fn blocked(k: usize, n: usize, k_len: usize) -> usize {
    (n / 8) * 8 * k_len + 8 * k + n % 8
}
