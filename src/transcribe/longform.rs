//! Long-form transcription over any [`WindowDecoder`], following OpenAI whisper's
//! `transcribe()`:
//!
//! 1. take 30 s of 16 kHz audio from the current position (`seek`, in mel frames), compute its
//!    log-mel (zero-padded to 30 s when the audio ends sooner);
//! 2. decode it, conditioned on the text so far, with temperature fallback ([`super::fallback`]);
//! 3. skip the window as silence when no-speech is likely and the text unlikely (and, before
//!    decoding, when the audio is digitally silent: all samples below -60 dBFS);
//! 4. cut the tokens into segments at timestamp pairs and move `seek` to the last complete
//!    timestamp, or past the whole window ([`super::segments`]); a last segment that ends at
//!    a full window's very end is held back and decoded again by the next window
//!    ([`TranscribeOptions::seam_margin`]);
//! 5. stop conditioning on earlier text after a decode at a temperature above 0.5.
//!
//! Two rules are ours, both about a window that gives no text: without them the prompt does not
//! change after such a window, so every later window is decoded in the same context, and when
//! that context is what makes the model write nothing (or look silent to the no-speech rule),
//! everything after it is lost. A window that decodes no text while conditioned on earlier
//! text (and that the no-speech rule does not skip) is decoded again without that text
//! ([`WindowReport::prompt_reset`]); and after a window without text, whichever rule decided,
//! the next one is not conditioned on what came before it.
//!
//! Audio comes from a [`SampleSource`] read forward window by window ([`super::source`]):
//! streaming a `WavStream` keeps memory bounded however long the file is. Several sources are
//! transcribed in lockstep ([`Transcriber::transcribe_sources`]): their current windows go to
//! the decoder as one batch. Each segment and each window's outcome (what was tried, what
//! decided) is reported as an [`Event`] while the transcription runs.
use super::fallback::{Attempt, Decoded, Detokenize, Fallback, FallbackRules};
use super::segments::{cut, hold_back_seam, Timing};
use super::source::{SampleSource, SliceSource, Windows};
use super::window::{Task, WindowDecoder, WindowRequest};
use crate::audio::{LogMel, HOP_LENGTH, N_FRAMES, SAMPLE_RATE};
use crate::config::{GenerationConfig, ModelDims};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// One stretch of the transcript.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// The segment's tokens, timestamps included (empty when the text was empty).
    pub tokens: Vec<u32>,
    /// The temperature of the decode the segment came from.
    pub temperature: f32,
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
}

/// Everything a transcription produced.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transcript {
    /// The text of every segment, in order (the initial prompt excluded).
    pub text: String,
    pub segments: Vec<Segment>,
    /// The language token decoded with (multilingual models); `None` for English-only ones.
    pub language: Option<u32>,
    /// Seconds of audio.
    pub duration: f64,
}

/// What decided a window's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowDecision {
    /// The kept decode gave text: its segments were reported.
    Speech,
    /// Skipped by the no-speech rule: the no-speech probability is above
    /// `no_speech_threshold` and the average log-probability not above `logprob_threshold`.
    NoSpeech,
    /// The kept decode held no text (only timestamps, or end-of-text at once).
    NoText,
    /// Not decoded: every sample is below `TranscribeOptions::silence_peak`.
    Quiet,
}

/// One window of the transcription, as it was decided.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowReport {
    /// Seconds from the start of the audio where the window begins.
    pub start: f64,
    /// Seconds of audio the window held (30 s but at the end).
    pub length: f64,
    /// Where the next window begins (the last complete timestamp, or the window's end).
    pub next: f64,
    /// The window's last segment was held back as cut by the window's end
    /// ([`TranscribeOptions::seam_margin`]): `next` is where it began.
    pub held_back: bool,
    /// The window decoded no text while conditioned on the text before it, and was decoded
    /// again without it (`attempts` are the second decode's).
    pub prompt_reset: bool,
    /// Every temperature tried, in order, the result marked `kept` (none for a quiet window).
    pub attempts: Vec<Attempt>,
    pub decision: WindowDecision,
    /// Seconds of audio in all, when known (from the source's header while it is read).
    pub total: Option<f64>,
}

/// What a transcription reports while it runs.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A segment, as soon as its window is decoded.
    Segment(&'a Segment),
    /// A window is done (after its segments): for progress, and to see which rule decided.
    Window(&'a WindowReport),
}

/// How to transcribe (OpenAI's `transcribe()` defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct TranscribeOptions {
    pub task: Task,
    /// Language token (`<|de|>`, ...); `None`: detect on the first window (multilingual
    /// models), nothing (English-only ones).
    pub language: Option<u32>,
    /// Decode with timestamps and cut segments at them; without, one segment per window.
    pub timestamps: bool,
    pub fallback: FallbackRules,
    /// Condition each window on the text before it.
    pub condition_on_previous_text: bool,
    /// Tokens to condition the first window on (encode `" " + prompt.trim()`).
    pub initial_prompt: Vec<u32>,
    /// Latest first timestamp of a window, seconds (OpenAI: 1.0).
    pub max_initial_timestamp: Option<f32>,
    /// Sampled tokens per window at most; `None`: half the text context (OpenAI's sample_len).
    pub sample_len: Option<usize>,
    /// Seed of the sampling noise at temperatures above 0.
    pub seed: u64,
    /// A last segment ending within this many seconds of a full window's end (and starting in
    /// its second half) is taken as cut by the window and decoded again from its start in the
    /// next window (default 1.5 s: tiny models close a cut segment up to a second before the
    /// cut, and their timestamps are that coarse). `None`: OpenAI's rule, keep it and go on
    /// from its end.
    pub seam_margin: Option<f64>,
    /// A window whose every sample stays below this in magnitude is skipped without decoding
    /// (default 1e-3, -60 dBFS: digital silence, on which Whisper writes " you" with a
    /// log-probability OpenAI's no-speech rule accepts). `None`: decode every window.
    pub silence_peak: Option<f32>,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            task: Task::Transcribe,
            language: None,
            timestamps: true,
            fallback: FallbackRules::default(),
            condition_on_previous_text: true,
            initial_prompt: Vec::new(),
            max_initial_timestamp: Some(1.0),
            sample_len: None,
            seed: 0,
            seam_margin: Some(1.5),
            silence_peak: Some(1e-3),
        }
    }
}

/// What the loop needs to know of the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub n_mels: usize,
    pub n_text_ctx: usize,
    pub timing: Timing,
    /// Tokens below this are text.
    pub eot: u32,
    /// `<|0.00|>`; `None` for models without timestamps (they decode without).
    pub timestamp_begin: Option<u32>,
    pub multilingual: bool,
}

impl ModelInfo {
    pub fn new(dims: &ModelDims, generation: &GenerationConfig) -> Result<ModelInfo> {
        if dims.n_frames() != N_FRAMES {
            return Err(Error::InvalidArgument(format!(
                "long-form transcription needs 30 s windows ({N_FRAMES} mel frames); the model takes {}",
                dims.n_frames()
            )));
        }
        let eot = generation
            .eot
            .ok_or_else(|| Error::InvalidArgument("the model has no end-of-text token to transcribe with".into()))?;
        let input_stride = N_FRAMES / dims.n_audio_ctx;
        let frame_seconds = HOP_LENGTH as f64 / SAMPLE_RATE as f64;
        Ok(ModelInfo {
            n_mels: dims.n_mels,
            n_text_ctx: dims.n_text_ctx,
            timing: Timing { input_stride, time_precision: input_stride as f64 * frame_seconds, frame_seconds },
            eot,
            timestamp_begin: generation.timestamp_begin,
            multilingual: generation.is_multilingual,
        })
    }
}

/// Long-form transcription of one model through a window decoder.
pub struct Transcriber<'a> {
    decoder: &'a mut dyn WindowDecoder,
    text: &'a dyn Detokenize,
    info: ModelInfo,
    mel: LogMel,
}

/// What every window of a transcription shares, derived once from the options.
struct Settings {
    timestamps: bool,
    ts_begin: u32,
    sample_len: usize,
    max_initial: Option<u32>,
}

/// One transcription in progress: OpenAI's window loop turned inside out (load a window,
/// decode it one temperature at a time, commit it), so that the windows of several
/// transcriptions can be decoded as one batch.
struct Job<S> {
    windows: Windows<S>,
    /// Log-mel of the current window.
    mel: Vec<f32>,
    /// Mel frames of audio in the current window (the rest is padding).
    segment_frames: usize,
    window_index: u64,
    /// Position in mel frames.
    seek: usize,
    language: Option<u32>,
    all_tokens: Vec<u32>,
    prompt_reset_since: usize,
    /// The current window is being decoded again without the earlier text.
    prompt_reset: bool,
    segments: Vec<Segment>,
    fallback: Fallback,
    /// Seconds of audio in all, when known.
    total: Option<f64>,
}

impl<'a> Transcriber<'a> {
    pub fn new(decoder: &'a mut dyn WindowDecoder, text: &'a dyn Detokenize, info: ModelInfo) -> Result<Self> {
        let mel = LogMel::new(info.n_mels)?;
        Ok(Transcriber { decoder, text, info, mel })
    }

    /// Transcribes samples held in memory.
    pub fn transcribe(&mut self, samples: &[f32], options: &TranscribeOptions) -> Result<Transcript> {
        self.transcribe_source(SliceSource::new(samples), options, &mut |_| {})
    }

    /// Transcribes a stream, window by window; `on_segment` sees each segment as it is made.
    pub fn transcribe_source<S: SampleSource>(
        &mut self,
        source: S,
        options: &TranscribeOptions,
        on_segment: &mut dyn FnMut(&Segment),
    ) -> Result<Transcript> {
        self.transcribe_events(source, options, &mut |e| {
            if let Event::Segment(s) = e {
                on_segment(s)
            }
        })
    }

    /// Transcribes a stream, window by window; `on_event` sees each segment as it is made and
    /// each window when it is done.
    pub fn transcribe_events<S: SampleSource>(
        &mut self,
        source: S,
        options: &TranscribeOptions,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Transcript> {
        let mut all = self.transcribe_sources_events(vec![source], options, 1, &mut |_, e| on_event(e))?;
        all.remove(0)
    }

    /// Transcribes several streams in lockstep, `batch_size` at a time: each round decodes the
    /// current window of every active transcription as one batch (at its own temperature, so
    /// a window falling back does not hold the others back), and a transcription that ends
    /// makes room for the next source. Each transcript is the one its source gives alone.
    /// `on_segment(i, segment)` sees each segment of source `i` as it is made; results come
    /// back in source order. A source that cannot be read or decoded (an audio error) gets its
    /// error in its place and the others go on; any other error stops the whole run.
    pub fn transcribe_sources<S: SampleSource>(
        &mut self,
        sources: Vec<S>,
        options: &TranscribeOptions,
        batch_size: usize,
        on_segment: &mut dyn FnMut(usize, &Segment),
    ) -> Result<Vec<Result<Transcript>>> {
        self.transcribe_sources_events(sources, options, batch_size, &mut |i, e| {
            if let Event::Segment(s) = e {
                on_segment(i, s)
            }
        })
    }

    /// [`Transcriber::transcribe_sources`] reporting every [`Event`] of source `i` as `(i, event)`.
    pub fn transcribe_sources_events<S: SampleSource>(
        &mut self,
        sources: Vec<S>,
        options: &TranscribeOptions,
        batch_size: usize,
        on_event: &mut dyn FnMut(usize, Event<'_>),
    ) -> Result<Vec<Result<Transcript>>> {
        if batch_size == 0 {
            return Err(Error::InvalidArgument("the batch size must be at least 1".into()));
        }
        let timestamps = options.timestamps && self.info.timestamp_begin.is_some();
        let settings = Settings {
            timestamps,
            ts_begin: self.info.timestamp_begin.unwrap_or(u32::MAX),
            sample_len: options.sample_len.unwrap_or(self.info.n_text_ctx / 2),
            max_initial: options
                .max_initial_timestamp
                .filter(|_| timestamps)
                .map(|s| (s as f64 / self.info.timing.time_precision).round().max(0.0) as u32),
        };
        let mut out: Vec<Option<Result<Transcript>>> = sources.iter().map(|_| None).collect();
        let mut pending = sources.into_iter().enumerate();
        let mut active: Vec<(usize, Job<S>)> = Vec::new();
        loop {
            while active.len() < batch_size {
                let Some((i, source)) = pending.next() else { break };
                let mut job = Job {
                    windows: Windows::new(source),
                    mel: vec![0f32; self.info.n_mels * N_FRAMES],
                    segment_frames: 0,
                    window_index: 0,
                    seek: 0,
                    language: options.language,
                    all_tokens: options.initial_prompt.clone(),
                    prompt_reset_since: 0,
                    prompt_reset: false,
                    segments: Vec::new(),
                    fallback: Fallback::default(),
                    total: None,
                };
                match self.load_window(&mut job, options, &mut |e| on_event(i, e)) {
                    Ok(true) => active.push((i, job)),
                    Ok(false) => out[i] = Some(Ok(finish(job))),
                    Err(e) if e.is_input() => out[i] = Some(Err(e)),
                    Err(e) => return Err(e),
                }
            }
            if active.is_empty() {
                break;
            }
            // One round: the decodes of every active window at its current temperature.
            let mut results = {
                let mut requests = Vec::new();
                let mut counts = Vec::new();
                for (_, job) in &active {
                    let w = job.window_index;
                    let seed = |t: usize, k: usize| mix(options.seed ^ mix(w) ^ mix((t as u64) << 32 | k as u64));
                    let r = job.fallback.requests(&self.request(job, &settings, options), &options.fallback, &seed);
                    counts.push(r.len());
                    requests.extend(r);
                }
                let results = self.decoder.decode(&requests)?;
                if results.len() != requests.len() {
                    return Err(Error::InvalidArgument(format!(
                        "the window decoder returned {} results for {} requests",
                        results.len(),
                        requests.len()
                    )));
                }
                let mut results = results.into_iter();
                counts.iter().map(|&c| results.by_ref().take(c).collect::<Vec<_>>()).collect::<Vec<_>>().into_iter()
            };
            let mut still = Vec::with_capacity(active.len());
            for (i, mut job) in active.drain(..) {
                let r = results.next().unwrap_or_default();
                let Some(d) = job.fallback.accept(r, self.text, self.info.eot, &options.fallback)? else {
                    still.push((i, job));
                    continue;
                };
                if self.retry_without_prompt(&mut job, &d, options) {
                    still.push((i, job));
                    continue;
                }
                self.commit(&mut job, d, &settings, options, &mut |e| on_event(i, e))?;
                match self.load_window(&mut job, options, &mut |e| on_event(i, e)) {
                    Ok(true) => still.push((i, job)),
                    Ok(false) => out[i] = Some(Ok(finish(job))),
                    Err(e) if e.is_input() => out[i] = Some(Err(e)),
                    Err(e) => return Err(e),
                }
            }
            active = still;
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Reads the window at the job's position and computes its log-mel, skipping (and
    /// reporting) digitally silent windows; false at the end of the audio.
    fn load_window<S: SampleSource>(
        &mut self,
        job: &mut Job<S>,
        options: &TranscribeOptions,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<bool> {
        let timing = self.info.timing;
        loop {
            // Known from the header before the end, exact after it.
            job.total = job.windows.len_hint().map(|n| n as f64 / SAMPLE_RATE as f64);
            let samples = job.windows.window((job.seek * HOP_LENGTH) as u64)?;
            if job.seek == 0 && samples.is_empty() {
                return Err(Error::InvalidAudio("the audio is empty (no samples to transcribe)".into()));
            }
            // Full windows while the source goes on; what is left of the audio at its end.
            job.segment_frames = (samples.len() / HOP_LENGTH).min(N_FRAMES);
            if job.segment_frames == 0 {
                return Ok(false);
            }
            let window = &samples[..job.segment_frames * HOP_LENGTH];
            if options.silence_peak.is_some_and(|peak| window.iter().all(|x| x.abs() < peak)) {
                let start = job.seek as f64 * timing.frame_seconds;
                job.seek += job.segment_frames;
                job.window_index += 1;
                on_event(Event::Window(&WindowReport {
                    start,
                    length: job.segment_frames as f64 * timing.frame_seconds,
                    next: job.seek as f64 * timing.frame_seconds,
                    held_back: false,
                    prompt_reset: false,
                    attempts: Vec::new(),
                    decision: WindowDecision::Quiet,
                    total: job.total,
                }));
                continue;
            }
            self.mel.compute_into(window, &mut job.mel)?;
            if job.language.is_none() && self.info.multilingual {
                job.language = self.decoder.detect_language(&job.mel)?.first().map(|&(id, _)| id);
            }
            job.fallback = Fallback::default();
            job.prompt_reset = false;
            return Ok(true);
        }
    }

    /// Whether the window must be decoded again without the earlier text: its kept decode
    /// holds no text, was conditioned on earlier text, and is not skipped as silence. Resets
    /// the prompt (for this window and the ones after it) when so.
    fn retry_without_prompt<S>(&self, job: &mut Job<S>, d: &Decoded, options: &TranscribeOptions) -> bool {
        let conditioned = job.prompt_reset_since < job.all_tokens.len();
        if job.prompt_reset || !conditioned || !d.text.trim().is_empty() || options.fallback.is_silence(&d.result) {
            return false;
        }
        job.prompt_reset_since = job.all_tokens.len();
        job.prompt_reset = true;
        job.fallback = Fallback::default();
        true
    }

    /// The decode of the job's current window (temperature and seed set by the fallback).
    fn request<'j, S>(&self, job: &'j Job<S>, s: &Settings, options: &TranscribeOptions) -> WindowRequest<'j> {
        WindowRequest {
            mel: &job.mel,
            previous: &job.all_tokens[job.prompt_reset_since..],
            language: job.language,
            task: options.task,
            timestamps: s.timestamps,
            temperature: 0.0,
            seed: 0,
            max_initial_timestamp_index: s.max_initial,
            max_new_tokens: Some(s.sample_len),
        }
    }

    /// Turns the kept decode of the current window into segments and moves past it.
    fn commit<S>(
        &mut self,
        job: &mut Job<S>,
        mut d: Decoded,
        s: &Settings,
        options: &TranscribeOptions,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<()> {
        let timing = self.info.timing;
        let segment_frames = job.segment_frames;
        job.window_index += 1;
        let time_offset = job.seek as f64 * timing.frame_seconds;
        let mut report = WindowReport {
            start: time_offset,
            length: segment_frames as f64 * timing.frame_seconds,
            next: 0.0,
            held_back: false,
            prompt_reset: job.prompt_reset,
            attempts: std::mem::take(&mut d.attempts),
            decision: WindowDecision::NoText,
            total: job.total,
        };
        if options.fallback.is_silence(&d.result) {
            // Whether the window was silent or the earlier text talked the model out of it,
            // the next window starts afresh (see the module notes).
            job.prompt_reset_since = job.all_tokens.len();
            job.seek += segment_frames;
            report.next = job.seek as f64 * timing.frame_seconds;
            report.decision = WindowDecision::NoSpeech;
            on_event(Event::Window(&report));
            return Ok(());
        }
        let mut c = cut(&d.result.tokens, s.ts_begin, segment_frames, timing);
        if let Some(margin) = options.seam_margin.filter(|_| s.timestamps && segment_frames == N_FRAMES) {
            report.held_back = hold_back_seam(&mut c, N_FRAMES as f64 * timing.frame_seconds, margin, timing);
        }
        for piece in c.pieces {
            let text_tokens: Vec<u32> = piece.tokens.iter().copied().filter(|&t| t < self.info.eot).collect();
            let mut seg = Segment {
                start: time_offset + piece.start,
                end: time_offset + piece.end,
                text: self.text.detokenize(&text_tokens)?,
                tokens: piece.tokens,
                temperature: d.temperature,
                avg_logprob: d.result.avg_logprob,
                compression_ratio: d.compression_ratio,
                no_speech_prob: d.result.no_speech_prob,
            };
            // An instantaneous segment, or one without text, keeps its place but says nothing.
            if seg.start == seg.end || seg.text.trim().is_empty() {
                seg.text.clear();
                seg.tokens.clear();
            }
            job.all_tokens.extend_from_slice(&seg.tokens);
            if !seg.text.is_empty() {
                report.decision = WindowDecision::Speech;
            }
            on_event(Event::Segment(&seg));
            job.segments.push(seg);
        }
        if !options.condition_on_previous_text || d.temperature > 0.5 {
            job.prompt_reset_since = job.all_tokens.len();
        }
        // A window must make progress (OpenAI would loop forever on `<|0.00|> ... <|0.00|><|0.00|>`).
        job.seek += if c.advance == 0 { segment_frames } else { c.advance };
        report.next = job.seek as f64 * timing.frame_seconds;
        on_event(Event::Window(&report));
        Ok(())
    }
}

/// The transcript of a finished job: the text is the segments' own, so that plain text says
/// exactly what the subtitles say.
fn finish<S: SampleSource>(job: Job<S>) -> Transcript {
    let text = job.segments.iter().map(|s| s.text.as_str()).collect();
    let duration = job.windows.total().unwrap_or(0) as f64 / SAMPLE_RATE as f64;
    Transcript { text, segments: job.segments, language: job.language, duration }
}

/// splitmix64's finaliser: distinct seeds for each window, temperature and sample.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
