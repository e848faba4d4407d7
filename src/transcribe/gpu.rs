//! [`WindowDecoder`] on a model: builds Whisper prompts, runs batches of windows through a
//! decoding [`Session`] (encoder, cross K/V, replayed decode steps with the token rules on the
//! GPU) and reads back tokens and scores.
//!
//! A session keeps the cross-attention keys and values of the windows it last encoded, so
//! decoding the same windows again (temperature fallback, language detection then decoding)
//! skips the encoder.
use super::window::{Task, WindowDecoder, WindowRequest, WindowResult};
use crate::decode::{RowPrompt, Session, SessionOptions};
use crate::model::Model;
use crate::{Error, Result};
use std::collections::HashMap;

pub struct GpuWindowDecoder<'m> {
    model: &'m Model,
    options: SessionOptions,
    /// Sessions by row count, made on first use (a batch of 3 need not pay for 8 rows).
    sessions: HashMap<usize, Session<'m>>,
    /// Fingerprint of the mels each session (by row count) last encoded.
    encoded: HashMap<usize, u64>,
}

/// A hash of the spectrograms' bits (and their count and lengths).
fn fingerprint(mels: &[&[f32]]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    mels.len().hash(&mut h);
    for m in mels {
        m.len().hash(&mut h);
        h.write(bytemuck::cast_slice(m));
    }
    h.finish()
}

impl<'m> GpuWindowDecoder<'m> {
    /// Decodes up to `max_batch` windows at once, 8 steps per submission.
    pub fn new(model: &'m Model, max_batch: usize) -> Result<Self> {
        Self::with_options(model, SessionOptions { rows: max_batch, ..Default::default() })
    }

    /// `options.rows` is the largest batch.
    pub fn with_options(model: &'m Model, options: SessionOptions) -> Result<Self> {
        if options.rows == 0 {
            return Err(Error::InvalidArgument("the batch size must be at least 1".into()));
        }
        Ok(GpuWindowDecoder { model, options, sessions: HashMap::new(), encoded: HashMap::new() })
    }

    /// The session for `rows` windows with `mels` encoded (the encoder runs only when the
    /// session last encoded something else).
    fn encoded_session(&mut self, mels: &[&[f32]]) -> Result<&mut Session<'m>> {
        let rows = mels.len();
        let key = fingerprint(mels);
        // Forget the old fingerprint first: a failed encode leaves the session's state unknown.
        let cached = self.encoded.remove(&rows) == Some(key);
        if !cached {
            self.session(rows)?.encode(mels)?;
        }
        self.encoded.insert(rows, key);
        self.session(rows)
    }

    fn session(&mut self, rows: usize) -> Result<&mut Session<'m>> {
        if !self.sessions.contains_key(&rows) {
            let s = Session::new(self.model, SessionOptions { rows, ..self.options.clone() })?;
            self.sessions.insert(rows, s);
        }
        Ok(self.sessions.get_mut(&rows).expect("inserted above"))
    }

    /// The prompt OpenAI's decoder builds for a request, and the index of its
    /// start-of-transcript token.
    pub fn prompt(&self, r: &WindowRequest<'_>) -> Result<(Vec<u32>, usize)> {
        let g = &self.model.generation;
        let missing = |what: &str| Error::InvalidArgument(format!("the model has no {what} token"));
        let mut tokens = Vec::new();
        if !r.previous.is_empty() {
            tokens.push(g.start_of_prev.ok_or_else(|| missing("<|startofprev|>"))?);
            let keep = self.model.dims.n_text_ctx / 2 - 1;
            tokens.extend_from_slice(&r.previous[r.previous.len().saturating_sub(keep)..]);
        }
        let sot_index = tokens.len();
        tokens.push(g.sot.ok_or_else(|| missing("<|startoftranscript|>"))?);
        if g.is_multilingual {
            let lang = match r.language {
                Some(l) => l,
                None => g
                    .lang_to_id
                    .iter()
                    .find(|(k, _)| k == "<|en|>")
                    .map(|&(_, id)| id)
                    .ok_or_else(|| missing("<|en|>"))?,
            };
            tokens.push(lang);
            tokens.push(match r.task {
                Task::Transcribe => g.transcribe.ok_or_else(|| missing("<|transcribe|>"))?,
                Task::Translate => g.translate.ok_or_else(|| missing("<|translate|>"))?,
            });
        } else if r.task == Task::Translate {
            return Err(Error::InvalidArgument("an English-only model cannot translate".into()));
        }
        if !r.timestamps {
            tokens.push(g.no_timestamps.ok_or_else(|| missing("<|notimestamps|>"))?);
        } else if g.timestamp_begin.is_none() {
            return Err(missing("timestamp"));
        }
        Ok((tokens, sot_index))
    }

    fn decode_batch(&mut self, requests: &[WindowRequest<'_>]) -> Result<Vec<WindowResult>> {
        let g = self.model.generation.clone();
        let mut prompts = Vec::new();
        for r in requests {
            let (tokens, sot_index) = self.prompt(r)?;
            prompts.push(RowPrompt {
                tokens,
                max_new_tokens: r.max_new_tokens,
                eot: g.eot,
                sot_index: Some(sot_index),
                no_speech: g.no_speech,
                timestamps: r.timestamps,
                max_initial_timestamp_index: r.max_initial_timestamp_index,
                temperature: r.temperature,
                // The kernel hashes 32 bits; fold the high half in.
                seed: (r.seed ^ (r.seed >> 32)) as u32,
            });
        }
        let mels: Vec<&[f32]> = requests.iter().map(|r| r.mel).collect();
        let s = self.encoded_session(&mels)?;
        s.set_rules(&g.suppress_tokens, &g.begin_suppress_tokens)?;
        s.start(&prompts)?;
        s.run_to_end()?;
        let results = s.results()?;
        Ok(results
            .into_iter()
            .map(|row| {
                let mut tokens = row.tokens[row.prompt_len..].to_vec();
                let finished = g.eot.is_some() && tokens.last() == g.eot.as_ref();
                if finished {
                    tokens.pop();
                }
                let avg_logprob = row.sum_logprob / (tokens.len() + 1) as f32;
                WindowResult {
                    tokens,
                    sum_logprob: row.sum_logprob,
                    avg_logprob,
                    no_speech_prob: row.no_speech_prob.unwrap_or(0.0),
                    finished,
                }
            })
            .collect())
    }
}

impl WindowDecoder for GpuWindowDecoder<'_> {
    fn decode(&mut self, requests: &[WindowRequest<'_>]) -> Result<Vec<WindowResult>> {
        let mut out = Vec::with_capacity(requests.len());
        for batch in requests.chunks(self.options.rows) {
            out.extend(self.decode_batch(batch)?);
        }
        Ok(out)
    }

    fn detect_language(&mut self, mel: &[f32]) -> Result<Vec<(u32, f32)>> {
        let g = self.model.generation.clone();
        if !g.is_multilingual || g.lang_to_id.is_empty() {
            return Err(Error::InvalidArgument("language detection needs a multilingual model".into()));
        }
        let sot = g.sot.ok_or_else(|| Error::InvalidArgument("the model has no <|startoftranscript|> token".into()))?;
        let s = self.encoded_session(&[mel])?;
        s.set_rules(&[], &[])?;
        s.start(&[RowPrompt { tokens: vec![sot], max_new_tokens: Some(1), ..Default::default() }])?;
        s.step(1)?;
        let logits = s.logits()?.swap_remove(0);
        // Softmax over the language tokens only, as OpenAI's detect_language does.
        let m = g.lang_to_id.iter().map(|&(_, id)| logits[id as usize]).fold(f32::NEG_INFINITY, f32::max);
        let total: f32 = g.lang_to_id.iter().map(|&(_, id)| (logits[id as usize] - m).exp()).sum();
        let mut probs: Vec<(u32, f32)> =
            g.lang_to_id.iter().map(|&(_, id)| (id, (logits[id as usize] - m).exp() / total)).collect();
        probs.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(probs)
    }

    fn max_batch(&self) -> usize {
        self.options.rows
    }
}
