//! A decoding session: the encoder and decoder plans of one model for a fixed number of rows,
//! with buffers allocated once. Steps are replayed K at a time; the host reads back only the
//! step state (and the history at the end).
use crate::backend::{Backend, Profile};
use crate::config::GenerationConfig;
use crate::graph::{state, Elem, STATE_WORDS};
use crate::model::decoder::{DecoderPlans, DecoderShape};
use crate::model::encoder::EncoderPlan;
use crate::model::Model;
use crate::{Error, Result};

/// Shapes and pacing of a session.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Sequences decoded together.
    pub rows: usize,
    /// KV-cache positions (default: the model's n_text_ctx).
    pub capacity: Option<usize>,
    /// Decode steps encoded into one submission before the host looks at the state.
    pub steps_per_submit: usize,
    /// Benchmark only: attention over the whole capacity with a mask.
    pub full_capacity_attention: bool,
    /// Element type of the KV caches: F16 (default) or F32.
    pub kv: Elem,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions { rows: 1, capacity: None, steps_per_submit: 8, full_capacity_attention: false, kv: Elem::F16 }
    }
}

/// What one row decodes from.
#[derive(Clone, Debug, Default)]
pub struct RowPrompt {
    /// Tokens fed before sampling starts (at least one).
    pub tokens: Vec<u32>,
    /// Stop after this many sampled tokens (the context limit applies regardless).
    pub max_new_tokens: Option<usize>,
    /// End-of-text token: sampling it finishes the row.
    pub eot: Option<u32>,
    /// Position of the start-of-transcript token, where the no-speech probability is read.
    pub sot_index: Option<usize>,
    pub no_speech: Option<u32>,
    /// Apply Whisper's timestamp rules (the model's generation config must know its
    /// timestamp tokens).
    pub timestamps: bool,
    /// Latest first timestamp, in steps after `<|0.00|>` (with `timestamps`).
    pub max_initial_timestamp_index: Option<u32>,
    /// 0 decodes greedily; above 0 samples softmax(logits / temperature).
    pub temperature: f32,
    /// Seed of the sampling noise.
    pub seed: u32,
}

/// The state of one row after a run of steps.
#[derive(Clone, Debug, PartialEq)]
pub struct RowResult {
    /// Prompt and sampled tokens (the sampled end-of-text token included).
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
    /// Log-probability of each sampled token.
    pub logprobs: Vec<f32>,
    pub sum_logprob: f32,
    pub no_speech_prob: Option<f32>,
    pub done: bool,
}

pub struct Session<'m> {
    model: &'m Model,
    pub options: SessionOptions,
    encoder: EncoderPlan,
    decoder: DecoderPlans,
    prompts: Vec<RowPrompt>,
    steps_run: usize,
}

impl<'m> Session<'m> {
    pub fn new(model: &'m Model, options: SessionOptions) -> Result<Session<'m>> {
        if options.steps_per_submit == 0 {
            return Err(Error::InvalidArgument("steps per submission must be at least 1".into()));
        }
        let mut shape = DecoderShape::new(&model.dims, options.rows, options.capacity)?;
        shape.full_capacity_attention = options.full_capacity_attention;
        if options.kv == Elem::U32 {
            return Err(Error::InvalidArgument("the KV cache holds f16 or f32".into()));
        }
        shape.kv = options.kv;
        let mut guard = model.backend();
        let b: &mut dyn Backend = guard.as_mut();
        // Every decoder buffer holds all rows: refuse a batch one of them cannot bind, before
        // allocating anything.
        let d = &model.dims;
        let kv_bytes = if shape.kv == Elem::F16 { 2 } else { 4 };
        let per_row = [
            4 * shape.cap,                                                  // history, logprobs
            4 * d.n_vocab.next_multiple_of(16),                             // logits
            kv_bytes * d.n_text_state * shape.cap,                          // self-attention K or V
            kv_bytes * d.n_text_state * d.n_audio_ctx.next_multiple_of(16), // cross K or V
            4 * d.n_text_mlp,
        ]
        .into_iter()
        .max()
        .unwrap_or(1) as u64;
        let max_rows = b.max_binding_bytes() / per_row;
        if options.rows as u64 > max_rows {
            return Err(Error::Limit(format!(
                "a batch of {} rows needs {} bytes in one decoder buffer; the device binds at most {} (at most {max_rows} rows)",
                options.rows,
                options.rows as u64 * per_row,
                b.max_binding_bytes()
            )));
        }
        // The encoder runs the batch in chunks of as many windows as its buffers can bind.
        let encoder_rows = EncoderPlan::max_batch(&model.dims, b.max_binding_bytes()).min(options.rows);
        if encoder_rows == 0 {
            return Err(Error::Limit(format!(
                "one window's encoder activations exceed the device's binding limit of {} bytes",
                b.max_binding_bytes()
            )));
        }
        let encoder = EncoderPlan::build(b, &model.dims, &model.weights, encoder_rows)?;
        let built =
            DecoderPlans::build(b, &model.dims, &model.generation, &model.weights, shape, encoder.output, encoder_rows);
        let decoder = match built {
            Ok(d) => d,
            Err(e) => {
                for &id in &encoder.buffers {
                    b.free_buffer(id);
                }
                b.free_plan(encoder.plan);
                return Err(e);
            }
        };
        drop(guard);
        Ok(Session { model, options, encoder, decoder, prompts: Vec::new(), steps_run: 0 })
    }

    pub fn shape(&self) -> DecoderShape {
        self.decoder.shape
    }

    /// Runs the encoder on up to `rows` log-mel spectrograms and computes the cross-attention
    /// keys and values of every layer (in chunks of [`Session::encoder_rows`] windows).
    pub fn encode(&mut self, mels: &[&[f32]]) -> Result<()> {
        if mels.len() > self.options.rows {
            return Err(Error::InvalidArgument(format!(
                "{} spectrograms for a session of {} rows",
                mels.len(),
                self.options.rows
            )));
        }
        for (c, chunk) in mels.chunks(self.encoder.batch).enumerate() {
            let mut b = self.model.backend();
            self.encoder.write_mel(b.as_mut(), chunk)?;
            b.run(self.encoder.plan, 1)?;
            b.run(self.decoder.cross[c], 1)?;
        }
        Ok(())
    }

    /// Windows one encoder run takes (at most `rows`: fewer where the encoder's buffers for
    /// the whole batch would exceed the device's binding limit).
    pub fn encoder_rows(&self) -> usize {
        self.encoder.batch
    }

    /// The first half of [`Session::encode`] for up to [`Session::encoder_rows`] windows: the
    /// encoder alone (queued, not waited for).
    pub fn run_encoder(&mut self, mels: &[&[f32]]) -> Result<()> {
        let mut b = self.model.backend();
        self.encoder.write_mel(b.as_mut(), mels)?;
        b.run(self.encoder.plan, 1)
    }

    /// The second half of [`Session::encode`]: every layer's cross-attention keys and values
    /// of the first [`Session::encoder_rows`] rows from the encoder output (queued, not waited for).
    pub fn compute_cross_kv(&mut self) -> Result<()> {
        self.model.backend().run(self.decoder.cross[0], 1)
    }

    /// Writes the encoder's output of one row directly and computes its cross K/V (tests feed
    /// reference encoder outputs).
    pub fn set_encoder_output(&mut self, row: usize, values: &[f32]) -> Result<()> {
        let d = &self.model.dims;
        let n = d.n_audio_ctx * d.n_audio_state;
        if values.len() != n || row >= self.options.rows {
            return Err(Error::InvalidArgument(format!("encoder output of {} values for row {row}", values.len())));
        }
        let e = self.encoder.batch;
        let mut b = self.model.backend();
        b.write(self.encoder.output, (row % e) * n * 4, bytemuck::cast_slice(values))?;
        b.run(self.decoder.cross[row / e], 1)
    }

    /// Writes the encoder output of rows `0..outputs.len()` and computes their cross-attention
    /// K/V (the benchmark reuses one encoding for every row of a batch).
    pub fn set_encoder_outputs(&mut self, outputs: &[&[f32]]) -> Result<()> {
        let d = &self.model.dims;
        let n = d.n_audio_ctx * d.n_audio_state;
        if outputs.len() > self.options.rows {
            return Err(Error::InvalidArgument(format!(
                "{} encoder outputs for a session of {} rows",
                outputs.len(),
                self.options.rows
            )));
        }
        let mut b = self.model.backend();
        for (c, chunk) in outputs.chunks(self.encoder.batch).enumerate() {
            for (row, values) in chunk.iter().enumerate() {
                if values.len() != n {
                    return Err(Error::InvalidArgument(format!("encoder output of {} values", values.len())));
                }
                b.write(self.encoder.output, row * n * 4, bytemuck::cast_slice(values))?;
            }
            b.run(self.decoder.cross[c], 1)?;
        }
        Ok(())
    }

    /// Device bytes of the KV caches: (self-attention, cross-attention), all rows and layers.
    pub fn kv_cache_bytes(&self) -> (usize, usize) {
        let d = &self.model.dims;
        let shape = self.decoder.shape;
        let per_layer = |positions: usize| 2 * Elem::bytes(shape.rows * d.n_text_state * positions, shape.kv);
        let t_pad = d.n_audio_ctx.next_multiple_of(16);
        (d.n_text_layer * per_layer(shape.cap), d.n_text_layer * per_layer(t_pad))
    }

    /// The encoder output of `row` of the last encoder run (tests; `row < encoder_rows`).
    pub fn encoder_output(&mut self, row: usize) -> Result<Vec<f32>> {
        let d = &self.model.dims;
        let n = d.n_audio_ctx * d.n_audio_state;
        if row >= self.encoder.batch {
            return Err(Error::InvalidArgument(format!(
                "row {row} of an encoder run of {} windows",
                self.encoder.batch
            )));
        }
        self.model.backend().read_f32(self.encoder.output, row * n, n)
    }

    /// Sets the suppression rules from a generation config (empty lists suppress nothing).
    pub fn set_rules(&mut self, suppress: &[u32], begin_suppress: &[u32]) -> Result<()> {
        let v = self.model.dims.n_vocab;
        let words = v.div_ceil(32);
        let mut masks = vec![0u32; 2 * words];
        for (i, list) in [suppress, begin_suppress].iter().enumerate() {
            for &t in *list {
                if t as usize >= v {
                    return Err(Error::InvalidArgument(format!(
                        "suppressed token {t} is outside the vocabulary of {v}"
                    )));
                }
                masks[i * words + t as usize / 32] |= 1 << (t % 32);
            }
        }
        self.model.backend().write(self.decoder.rules, 0, bytemuck::cast_slice(&masks))
    }

    /// Rules of the model's generation config.
    pub fn set_rules_from(&mut self, g: &GenerationConfig) -> Result<()> {
        self.set_rules(&g.suppress_tokens, &g.begin_suppress_tokens)
    }

    /// Resets every row to its prompt. Rows beyond `prompts` are marked done.
    pub fn start(&mut self, prompts: &[RowPrompt]) -> Result<()> {
        let shape = self.decoder.shape;
        if prompts.len() > shape.rows {
            return Err(Error::InvalidArgument(format!(
                "{} prompts for a session of {} rows",
                prompts.len(),
                shape.rows
            )));
        }
        let v = self.model.dims.n_vocab as u32;
        let mut st = vec![0u32; shape.rows * STATE_WORDS];
        let mut history = vec![0u32; shape.rows * shape.cap];
        for r in 0..shape.rows {
            let s = &mut st[r * STATE_WORDS..(r + 1) * STATE_WORDS];
            let Some(p) = prompts.get(r) else {
                s[state::DONE] = 1;
                continue;
            };
            if p.tokens.is_empty() || p.tokens.len() >= shape.max_len {
                return Err(Error::InvalidArgument(format!(
                    "a prompt of {} tokens; it must hold 1 to {} tokens",
                    p.tokens.len(),
                    shape.max_len - 1
                )));
            }
            if let Some(t) = p.tokens.iter().chain(&p.eot).chain(&p.no_speech).find(|&&t| t >= v) {
                return Err(Error::InvalidArgument(format!("token {t} is outside the vocabulary of {v}")));
            }
            let n = p.tokens.len();
            history[r * shape.cap..r * shape.cap + n].copy_from_slice(&p.tokens);
            let limit = p.max_new_tokens.map_or(shape.max_len, |m| (n + m).min(shape.max_len));
            s[state::TOKEN] = p.tokens[0];
            s[state::POS] = 0;
            s[state::PROMPT_LEN] = n as u32;
            s[state::SAMPLE_BEGIN] = n as u32;
            s[state::MAX_LEN] = limit as u32;
            s[state::EOT] = p.eot.unwrap_or(state::NONE);
            s[state::SOT_POS] = p.sot_index.map_or(state::NONE, |i| i as u32);
            s[state::NO_SPEECH] = p.no_speech.unwrap_or(state::NONE);
            s[state::LAST_TS] = state::NONE;
            let sample = p.temperature > 0.0;
            if !p.temperature.is_finite() || p.temperature < 0.0 {
                return Err(Error::InvalidArgument(format!("temperature {} must be finite and >= 0", p.temperature)));
            }
            s[state::FLAGS] =
                (if p.timestamps { state::FLAG_TIMESTAMPS } else { 0 }) | (if sample { state::FLAG_SAMPLE } else { 0 });
            s[state::TEMPERATURE] = p.temperature.to_bits();
            s[state::SEED] = p.seed;
            s[state::MAX_INITIAL_TS] = p.max_initial_timestamp_index.unwrap_or(state::NONE);
            if limit <= n {
                s[state::DONE] = 1;
            }
        }
        let mut b = self.model.backend();
        b.write(self.decoder.state, 0, bytemuck::cast_slice(&st))?;
        b.write(self.decoder.history, 0, bytemuck::cast_slice(&history))?;
        drop(b);
        self.prompts = prompts.to_vec();
        self.steps_run = 0;
        Ok(())
    }

    /// Queues `k` decode steps in one submission and returns the step state after them.
    pub fn step(&mut self, k: usize) -> Result<Vec<u32>> {
        self.submit(k)?;
        self.state()
    }

    /// Encodes `k` decode steps into one submission and submits it, without waiting: the
    /// host's whole share of those steps (the benchmark times this call).
    pub fn submit(&mut self, k: usize) -> Result<()> {
        self.model.backend().run(self.decoder.step, k)?;
        self.steps_run += k;
        Ok(())
    }

    /// Waits for the queued work and returns every row's step state (`STATE_WORDS` words each).
    pub fn state(&mut self) -> Result<Vec<u32>> {
        self.model.backend().read_u32(self.decoder.state, 0, self.decoder.shape.rows * STATE_WORDS)
    }

    /// Steps until every row is done, `steps_per_submit` at a time.
    pub fn run_to_end(&mut self) -> Result<()> {
        let max_steps = self.decoder.shape.max_len;
        let k = self.options.steps_per_submit;
        while self.steps_run < max_steps {
            let st = self.step(k)?;
            if st.chunks(STATE_WORDS).all(|s| s[state::DONE] != 0) {
                return Ok(());
            }
        }
        Err(Error::Gpu(format!("decoding did not finish within {max_steps} steps")))
    }

    /// The logits of the last step for every row (`[rows][n_vocab]`).
    pub fn logits(&mut self) -> Result<Vec<Vec<f32>>> {
        let v = self.model.dims.n_vocab;
        let row = self.decoder.logits_row;
        let all = self.model.backend().read_f32(self.decoder.logits, 0, self.decoder.shape.rows * row)?;
        Ok(all.chunks(row).map(|r| r[..v].to_vec()).collect())
    }

    /// Tokens and scores of every row so far.
    pub fn results(&mut self) -> Result<Vec<RowResult>> {
        let shape = self.decoder.shape;
        let mut b = self.model.backend();
        let st = b.read_u32(self.decoder.state, 0, shape.rows * STATE_WORDS)?;
        let history = b.read_u32(self.decoder.history, 0, shape.rows * shape.cap)?;
        let logprobs = b.read_f32(self.decoder.logprobs, 0, shape.rows * shape.cap)?;
        drop(b);
        let mut out = Vec::new();
        for (r, p) in self.prompts.iter().enumerate() {
            let s = &st[r * STATE_WORDS..(r + 1) * STATE_WORDS];
            let n = s[state::POS] as usize + 1;
            let prompt_len = p.tokens.len();
            let row = &history[r * shape.cap..];
            let lp = &logprobs[r * shape.cap..];
            out.push(RowResult {
                tokens: row[..n.max(prompt_len)].to_vec(),
                prompt_len,
                logprobs: if n > prompt_len { lp[prompt_len..n].to_vec() } else { vec![] },
                sum_logprob: f32::from_bits(s[state::SUM_LOGPROB]),
                no_speech_prob: (s[state::NO_SPEECH] != state::NONE && s[state::SOT_POS] < s[state::POS])
                    .then(|| f32::from_bits(s[state::NO_SPEECH_PROB])),
                done: s[state::DONE] != 0,
            });
        }
        Ok(out)
    }

    /// Device time per dispatch of one decode step and of the encoder (where timestamps exist).
    pub fn profile(&mut self) -> Result<(Option<Profile>, Option<Profile>)> {
        let mut b = self.model.backend();
        Ok((b.profile(self.decoder.step)?, b.profile(self.encoder.plan)?))
    }

    /// Device time per dispatch of one decode step (where timestamps exist).
    pub fn profile_step(&mut self) -> Result<Option<Profile>> {
        self.model.backend().profile(self.decoder.step)
    }

    /// Dispatches one decode step issues.
    pub fn dispatches_per_step(&self) -> usize {
        self.model.backend().dispatch_count(self.decoder.step)
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let mut b = self.model.backend();
        for &id in self.encoder.buffers.iter().chain(&self.decoder.buffers) {
            b.free_buffer(id);
        }
        for &p in self.decoder.cross.iter().chain([&self.encoder.plan, &self.decoder.step]) {
            b.free_plan(p);
        }
    }
}
