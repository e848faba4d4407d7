//! Piano transcription of whole recordings with an aria-amt model, as aria-amt's
//! `transcribe_file` and `process_file` do it: 30 s windows every 10 s, each decoded from the
//! notes of the window before it (its prefix), stitched into one piece and written as MIDI.
//!
//! Audio is read forward from a [`SampleSource`], one window at a time (hours in bounded
//! memory). Several recordings are transcribed in lockstep: their current windows go to the
//! GPU as rows of one batch, each with its own prefix; a recording's windows depend on each
//! other, so one recording alone decodes one row at a time.
//!
//! Per window: aria-amt's log-mel ([`AriaLogMel`]), the encoder, the decode steps replayed on
//! the GPU with aria-amt's token selection until a row stops ([`WindowSeq`] applies the stop
//! rule to the chosen ids), the silent intervals of the window's audio, then the
//! [`Stitcher`].
use super::detokenize::detokenize;
use super::midi_dict::Note;
use super::select::{StopReason, WindowSeq, MAX_BLOCK_LEN};
use super::silence::SilentInterval;
use super::stitch::{Continuation, SilencePass, Stitcher, Transcription, STEP_MS, WINDOW_MS};
use super::vocab::{self, Token};
use crate::audio::{silent_intervals_ms, AriaLogMel, N_SAMPLES, SAMPLE_RATE};
use crate::decode::{RowPrompt, Session, SessionOptions};
use crate::graph::Elem;
use crate::model::Model;
use crate::transcribe::{SampleSource, Windows};
use crate::{Error, Result};
use std::collections::HashMap;

/// Samples between window starts (10 s).
const STEP_SAMPLES: usize = SAMPLE_RATE as usize * STEP_MS as usize / 1000;

/// How to transcribe.
#[derive(Clone, Debug)]
pub struct PianoOptions {
    /// Recordings whose windows are decoded together (rows of one GPU batch).
    pub batch_size: usize,
    /// Decode steps per GPU submission.
    pub steps_per_submit: usize,
    /// Element type of the KV caches: F16 (half the memory traffic) or F32 (the reference's
    /// precision, for comparisons).
    pub kv_cache: Elem,
}

impl Default for PianoOptions {
    fn default() -> Self {
        PianoOptions { batch_size: 8, steps_per_submit: 16, kv_cache: Elem::F16 }
    }
}

/// One window of a recording, as it was decoded and stitched.
#[derive(Clone, Debug)]
pub struct PianoWindow {
    /// Window k covers [10 k, 10 k + 30) s.
    pub index: usize,
    /// Seconds of the recording, when known (from the file's header while it is read).
    pub total: Option<f64>,
    pub prefix_len: usize,
    /// Ids the decoder chose for the window (the stop included).
    pub generated: usize,
    pub stop: StopReason,
    pub silence: SilencePass,
    pub continuation: Continuation,
    /// The notes this window added to the piece, in ms of the recording: the window's new
    /// tokens alone, so a note still sounding where they end ends there. The MIDI written at
    /// the end stitches them exactly as aria-amt does.
    pub notes: Vec<Note>,
}

/// A whole recording's transcription.
#[derive(Clone, Debug)]
pub struct PianoTranscript {
    /// The MIDI file and its notes; `None` when the piece holds too few tokens to write
    /// (aria-amt writes nothing then).
    pub midi: Option<Transcription>,
    /// The stitched token sequence (`<S>` first, onsets in ms of the recording).
    pub tokens: Vec<Token>,
    pub windows: usize,
    /// Seconds of audio.
    pub duration: f64,
}

/// One recording in progress.
struct Job<S> {
    windows: Windows<S>,
    stitcher: Stitcher,
    /// The current window: its spectrogram and silent intervals.
    mel: Vec<f32>,
    silent: Vec<SilentInterval>,
}

/// Decodes windows of an aria-amt model: sessions by row count, made on first use.
pub struct PianoTranscriber<'m> {
    model: &'m Model,
    options: PianoOptions,
    mel: AriaLogMel,
    sessions: HashMap<usize, Session<'m>>,
}

impl<'m> PianoTranscriber<'m> {
    pub fn new(model: &'m Model, options: PianoOptions) -> Result<Self> {
        if model.generation.selection != crate::config::Selection::AriaAmt {
            return Err(Error::InvalidArgument("piano transcription needs an aria-amt model".into()));
        }
        if options.batch_size == 0 || options.steps_per_submit == 0 {
            return Err(Error::InvalidArgument("the batch size and steps per submission must be at least 1".into()));
        }
        Ok(PianoTranscriber { model, options, mel: AriaLogMel::new(), sessions: HashMap::new() })
    }

    /// Transcribes several recordings in lockstep, `batch_size` at a time; `on_window(i, w)`
    /// sees each window of recording `i` when it is stitched. A recording that cannot be read,
    /// or whose stitching fails as aria-amt's would, gets its error in its place; a model or
    /// GPU error stops the run.
    pub fn transcribe_sources<S: SampleSource>(
        &mut self,
        sources: Vec<S>,
        on_window: &mut dyn FnMut(usize, &PianoWindow),
    ) -> Result<Vec<Result<PianoTranscript>>> {
        let mut out: Vec<Option<Result<PianoTranscript>>> = sources.iter().map(|_| None).collect();
        let mut pending = sources.into_iter().enumerate();
        let mut active: Vec<(usize, Job<S>)> = Vec::new();
        loop {
            while active.len() < self.options.batch_size {
                let Some((i, source)) = pending.next() else { break };
                let mut job = Job {
                    windows: Windows::new(source),
                    stitcher: Stitcher::new(),
                    mel: Vec::new(),
                    silent: Vec::new(),
                };
                match self.load_window(&mut job) {
                    Ok(true) => active.push((i, job)),
                    Ok(false) => out[i] = Some(finish(job)),
                    Err(e) if e.is_input() => out[i] = Some(Err(e)),
                    Err(e) => return Err(e),
                }
            }
            if active.is_empty() {
                break;
            }
            let jobs: Vec<&Job<S>> = active.iter().map(|(_, j)| j).collect();
            let decoded = self.decode(&jobs)?;
            let mut still = Vec::with_capacity(active.len());
            for ((i, mut job), seq) in active.drain(..).zip(decoded) {
                let next = stitch(&mut job, &seq).and_then(|w| {
                    on_window(i, &w);
                    self.load_window(&mut job)
                });
                match next {
                    Ok(true) => still.push((i, job)),
                    Ok(false) => out[i] = Some(finish(job)),
                    Err(e) if e.is_input() || matches!(e, Error::Tokenizer(_)) => out[i] = Some(Err(e)),
                    Err(e) => return Err(e),
                }
            }
            active = still;
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Reads the job's next window (aria-amt's windowing: window k = samples
    /// [160000 k, 160000 k + 480000), zero padded; `ceil(n / 160000) - 1` of them for
    /// recordings over 30 s, one otherwise) and computes its spectrogram and silent
    /// intervals; false when the recording has no more windows.
    fn load_window<S: SampleSource>(&mut self, job: &mut Job<S>) -> Result<bool> {
        let k = job.stitcher.window();
        let samples = job.windows.window((k * STEP_SAMPLES) as u64)?;
        if k == 0 && samples.is_empty() {
            return Err(Error::InvalidAudio("the audio is empty (no samples to transcribe)".into()));
        }
        // Window 1 exists when the recording is longer than 30 s, later ones while more than
        // 10 s follow their start.
        let needed = if k == 1 { N_SAMPLES - STEP_SAMPLES } else { STEP_SAMPLES };
        if k > 0 && samples.len() <= needed {
            return Ok(false);
        }
        let mut window = samples.to_vec();
        window.resize(N_SAMPLES, 0.0);
        job.mel = self.mel.compute(&window)?;
        job.silent = silent_intervals_ms(&window)
            .into_iter()
            .map(|(start, end)| SilentInterval { start_ms: start as i64, end_ms: end as i64 })
            .collect();
        Ok(true)
    }

    /// Decodes the current window of every job as one batch; returns each row's window
    /// sequence, stopped.
    fn decode<S>(&mut self, jobs: &[&Job<S>]) -> Result<Vec<WindowSeq>> {
        let prefixes: Vec<Vec<u32>> = jobs.iter().map(|j| vocab::encode(j.stitcher.prefix())).collect::<Result<_>>()?;
        let mut seqs: Vec<WindowSeq> = prefixes.iter().map(|p| WindowSeq::new(p)).collect::<Result<_>>()?;
        // A prefix that fills the context has stopped already: no row for it.
        let rows: Vec<usize> = (0..jobs.len()).filter(|&r| seqs[r].stop().is_none()).collect();
        if rows.is_empty() {
            return Ok(seqs);
        }
        let prompts: Vec<RowPrompt> = rows
            .iter()
            .map(|&r| RowPrompt {
                tokens: prefixes[r].clone(),
                // Upstream's loop fills positions P..=4094.
                max_new_tokens: Some(MAX_BLOCK_LEN - 1 - prefixes[r].len()),
                eot: Some(vocab::EOS_ID),
                ..Default::default()
            })
            .collect();
        let mels: Vec<&[f32]> = rows.iter().map(|&r| jobs[r].mel.as_slice()).collect();
        let session = self.session(rows.len())?;
        session.encode(&mels)?;
        session.start(&prompts)?;
        session.run_to_end()?;
        for (result, &r) in session.results()?.into_iter().zip(&rows) {
            for &id in &result.tokens[result.prompt_len..] {
                if seqs[r].push(id)?.is_some() {
                    break;
                }
            }
            if seqs[r].stop().is_none() {
                return Err(Error::Gpu("a window's decoding ended without aria-amt's stop rule firing".into()));
            }
        }
        Ok(seqs)
    }

    fn session(&mut self, rows: usize) -> Result<&mut Session<'m>> {
        if !self.sessions.contains_key(&rows) {
            let options = SessionOptions {
                rows,
                steps_per_submit: self.options.steps_per_submit,
                kv: self.options.kv_cache,
                ..Default::default()
            };
            self.sessions.insert(rows, Session::new(self.model, options)?);
        }
        Ok(self.sessions.get_mut(&rows).expect("inserted above"))
    }
}

/// Hands a decoded window to the job's stitcher and describes it.
fn stitch<S: SampleSource>(job: &mut Job<S>, seq: &WindowSeq) -> Result<PianoWindow> {
    let stop = seq.stop().ok_or_else(|| Error::InvalidArgument("the window has not stopped".into()))?;
    let result = vocab::decode(seq.result().unwrap_or_default())?;
    let before = job.stitcher.concat_seq().len();
    let report = job.stitcher.push_window(&result, &job.silent)?;
    let added = &job.stitcher.concat_seq()[before..];
    Ok(PianoWindow {
        index: report.window,
        total: job.windows.len_hint().map(|n| n as f64 / SAMPLE_RATE as f64),
        prefix_len: seq.prefix_len(),
        generated: stop.last_step_idx.map_or(0, |i| i + 1 - seq.prefix_len()),
        stop: stop.reason,
        silence: report.silence,
        continuation: report.continuation,
        notes: window_notes(added),
    })
}

/// The notes of a window's new tokens (onsets already on the recording's time line).
fn window_notes(added: &[Token]) -> Vec<Note> {
    let last_onset = added.iter().rev().find_map(|t| match t {
        Token::Onset(ms) => Some(*ms as i64),
        _ => None,
    });
    let Some(end) = last_onset else { return Vec::new() };
    let tokens: Vec<Token> = std::iter::once(Token::Bos).chain(added.iter().copied()).collect();
    // Onsets past 30 s do not fit the vocabulary's 30 s range, but detokenising only reads
    // their values; a failure only means the window shows no notes of its own.
    detokenize(&tokens, end.max(WINDOW_MS)).map(|m| m.notes).unwrap_or_default()
}

fn finish<S: SampleSource>(job: Job<S>) -> Result<PianoTranscript> {
    let duration = job.windows.total().unwrap_or(0) as f64 / SAMPLE_RATE as f64;
    Ok(PianoTranscript {
        midi: job.stitcher.finish()?,
        tokens: job.stitcher.concat_seq().to_vec(),
        windows: job.stitcher.window(),
        duration,
    })
}
