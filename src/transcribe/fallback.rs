//! Decoding one window with temperature fallback, as OpenAI's `decode_with_fallback`: decode
//! at the first temperature; if the text is too repetitive (gzip-style compression ratio above
//! a threshold) or too unlikely (average log-probability below one), try the next temperature,
//! unless the window looks like silence (then the low score is expected). When every
//! temperature fails, the most likely non-repetitive decode is kept (faster-whisper's choice).
use super::window::{WindowDecoder, WindowRequest, WindowResult};
use crate::Result;
use std::cmp::Ordering;
use std::io::Write;

/// Text from tokens: the tokenizer, or a stand-in in tests.
pub trait Detokenize {
    /// The text of `tokens` (special tokens ignored).
    fn detokenize(&self, tokens: &[u32]) -> Result<String>;
}

impl Detokenize for crate::tokenizer::Tokenizer {
    fn detokenize(&self, tokens: &[u32]) -> Result<String> {
        self.decode(tokens)
    }
}

/// Bytes of the UTF-8 text over bytes of its zlib compression (level 6, like Python's
/// `zlib.compress`), the repetitiveness measure OpenAI's decoder reports. 0 for empty text.
pub fn compression_ratio(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    // Writing to a Vec cannot fail.
    let compressed = z.write_all(text.as_bytes()).and_then(|_| z.finish()).map(|v| v.len()).unwrap_or(1);
    text.len() as f32 / compressed.max(1) as f32
}

/// When a decode is good enough, when it is silence.
#[derive(Clone, Debug, PartialEq)]
pub struct FallbackRules {
    /// Temperatures tried in order (OpenAI: 0.0, 0.2, ..., 1.0).
    pub temperatures: Vec<f32>,
    /// Retry when the compression ratio is above this (OpenAI: 2.4).
    pub compression_ratio_threshold: Option<f32>,
    /// Retry when the average log-probability is below this (OpenAI: -1.0).
    pub logprob_threshold: Option<f32>,
    /// With the log-probability below its threshold, a no-speech probability above this means
    /// silence: no retry, and the window is skipped (OpenAI: 0.6).
    pub no_speech_threshold: Option<f32>,
    /// Samples drawn per window at temperatures above 0, the most likely kept (OpenAI's
    /// `best_of`; 1 = one sample).
    pub best_of: usize,
}

impl Default for FallbackRules {
    fn default() -> Self {
        FallbackRules {
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: Some(2.4),
            logprob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            best_of: 1,
        }
    }
}

impl FallbackRules {
    /// OpenAI's silence test: no-speech probability above its threshold and the average
    /// log-probability not above its own.
    pub fn is_silence(&self, r: &WindowResult) -> bool {
        match (self.no_speech_threshold, self.logprob_threshold) {
            // "Not above" rather than "below": a NaN score counts as silence, as in OpenAI.
            (Some(ns), Some(lp)) => r.no_speech_prob > ns && r.avg_logprob.partial_cmp(&lp) != Some(Ordering::Greater),
            (Some(ns), None) => r.no_speech_prob > ns,
            _ => false,
        }
    }

    /// Whether a decode should be retried at the next temperature.
    pub fn needs_fallback(&self, r: &WindowResult, compression_ratio: f32) -> bool {
        self.retry_reason(r, compression_ratio).is_some()
    }

    /// Why a decode should be retried at the next temperature, if it should: too repetitive
    /// first (OpenAI tests the compression ratio first), else too unlikely; never when the
    /// window looks silent.
    pub fn retry_reason(&self, r: &WindowResult, compression_ratio: f32) -> Option<Retry> {
        let repetitive = self.compression_ratio_threshold.is_some_and(|t| compression_ratio > t);
        let unlikely = self.logprob_threshold.is_some_and(|t| r.avg_logprob < t);
        let silent = self.no_speech_threshold.is_some_and(|t| r.no_speech_prob > t)
            && self.logprob_threshold.is_some_and(|t| r.avg_logprob < t);
        if silent {
            None
        } else if repetitive {
            Some(Retry::CompressionRatio)
        } else if unlikely {
            Some(Retry::LogProb)
        } else {
            None
        }
    }
}

/// Why a temperature's decode was not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Retry {
    /// The text compressed better than `compression_ratio_threshold` (repetition).
    CompressionRatio,
    /// The average log-probability was below `logprob_threshold`.
    LogProb,
}

/// One temperature's decode of a window, as the fallback judged it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Attempt {
    pub temperature: f32,
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
    /// Why the next temperature was tried; `None` for a decode that passed.
    pub retry: Option<Retry>,
    /// This decode is the window's result: the one that passed, or, when every temperature
    /// failed, the most likely non-repetitive one.
    pub kept: bool,
}

/// The decode kept for a window.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub result: WindowResult,
    pub temperature: f32,
    pub text: String,
    pub compression_ratio: f32,
    /// Every temperature tried, in order (`kept` marks the result).
    pub attempts: Vec<Attempt>,
}

/// Decodes `request` at each temperature of `rules` until one passes (when none does, the most
/// likely non-repetitive decode is kept). `seed(t, k)` gives the seed of sample `k` at temperature index `t`;
/// `eot` separates text tokens from special ones.
pub fn decode_with_fallback(
    decoder: &mut dyn WindowDecoder,
    text: &dyn Detokenize,
    eot: u32,
    request: &WindowRequest<'_>,
    rules: &FallbackRules,
    seed: impl Fn(usize, usize) -> u64,
) -> Result<Decoded> {
    let mut f = Fallback::default();
    loop {
        let results = decoder.decode(&f.requests(request, rules, &seed))?;
        if let Some(d) = f.accept(results, text, eot, rules)? {
            return Ok(d);
        }
    }
}

/// [`decode_with_fallback`] one temperature at a time, so that the requests of several windows
/// (of different transcriptions) can go to the decoder together: `requests` gives the decodes
/// of the current temperature, `accept` judges their results and says whether the window is done.
#[derive(Clone, Debug, Default)]
pub struct Fallback {
    /// Index of the temperature being tried.
    ti: usize,
    /// The decodes that failed so far, and every attempt's verdict.
    failed: Vec<Decoded>,
    attempts: Vec<Attempt>,
}

impl Fallback {
    fn temperatures(rules: &FallbackRules) -> &[f32] {
        if rules.temperatures.is_empty() {
            &[0.0]
        } else {
            &rules.temperatures
        }
    }

    /// The decodes of the current temperature: one, or `best_of` samples above 0.
    pub fn requests<'a>(
        &self,
        request: &WindowRequest<'a>,
        rules: &FallbackRules,
        seed: &impl Fn(usize, usize) -> u64,
    ) -> Vec<WindowRequest<'a>> {
        let t = Self::temperatures(rules)[self.ti];
        let samples = if t > 0.0 { rules.best_of.max(1) } else { 1 };
        (0..samples).map(|k| WindowRequest { temperature: t, seed: seed(self.ti, k), ..request.clone() }).collect()
    }

    /// Keeps the most likely of `results`; `Some` when it passes or no temperature is left,
    /// `None` when the next temperature must be tried.
    pub fn accept(
        &mut self,
        results: Vec<WindowResult>,
        text: &dyn Detokenize,
        eot: u32,
        rules: &FallbackRules,
    ) -> Result<Option<Decoded>> {
        let temperatures = Self::temperatures(rules);
        let t = temperatures[self.ti];
        // OpenAI's maximum-likelihood ranker without a length penalty: sum_logprob / length.
        let score = |r: &WindowResult| r.sum_logprob / r.tokens.len().max(1) as f32;
        let Some(best) = results.into_iter().reduce(|a, b| if score(&b) > score(&a) { b } else { a }) else {
            return Err(crate::Error::InvalidArgument("the window decoder returned no result".into()));
        };
        let text_tokens: Vec<u32> = best.tokens.iter().copied().filter(|&x| x < eot).collect();
        let s = text.detokenize(&text_tokens)?;
        let ratio = compression_ratio(&s);
        let retry = rules.retry_reason(&best, ratio);
        self.attempts.push(Attempt {
            temperature: t,
            avg_logprob: best.avg_logprob,
            compression_ratio: ratio,
            no_speech_prob: best.no_speech_prob,
            retry,
            kept: retry.is_none(),
        });
        let d = Decoded { result: best, temperature: t, text: s, compression_ratio: ratio, attempts: Vec::new() };
        if retry.is_none() {
            return Ok(Some(Decoded { attempts: std::mem::take(&mut self.attempts), ..d }));
        }
        self.failed.push(d);
        if self.ti + 1 < temperatures.len() {
            self.ti += 1;
            return Ok(None);
        }
        // Every temperature failed: keep the most likely decode among those that are not
        // repetitive (else among all), as faster-whisper does. OpenAI keeps the last, a sample at
        // the highest temperature, which on repetitive speech is often nonsense.
        let repetitive = |d: &Decoded| rules.compression_ratio_threshold.is_some_and(|t| d.compression_ratio > t);
        let any_fluent = self.failed.iter().any(|d| !repetitive(d));
        let best = self
            .failed
            .iter()
            .enumerate()
            .filter(|(_, d)| !any_fluent || !repetitive(d))
            // Ties go to the later (hotter) decode, the one OpenAI's rule keeps.
            .max_by(|(_, a), (_, b)| a.result.avg_logprob.total_cmp(&b.result.avg_logprob))
            .map_or(self.failed.len() - 1, |(i, _)| i);
        let mut kept = self.failed.swap_remove(best);
        if let Some(a) = self.attempts.iter_mut().find(|a| a.temperature == kept.temperature) {
            a.kept = true;
        }
        kept.attempts = std::mem::take(&mut self.attempts);
        self.failed.clear();
        Ok(Some(kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_ratio_grows_with_repetition() {
        let plain = compression_ratio(" And so my fellow Americans ask not what your country can do for you");
        let looped = compression_ratio(&" ask not".repeat(40));
        assert!(plain < 1.5, "{plain}");
        assert!(looped > 2.4, "{looped}");
        assert_eq!(compression_ratio(""), 0.0);
    }
}
