//! Stitching 30 s windows taken every 10 s into one piece, as aria-amt `transcribe_file`, and
//! the final MIDI, as `process_file`, with the model left out: each window's decoded tokens go
//! in, the next window's prefix and at the end the MIDI file come out.
use super::detokenize::detokenize;
use super::midi_dict::MidiDict;
use super::silence::{process_silent_intervals, SilentInterval};
use super::tokenize::tokenize;
use super::vocab::Token;
use crate::{Error, Result};

/// A window's length, and the step between windows, in ms.
pub const WINDOW_MS: i64 = 30_000;
pub const STEP_MS: i64 = 10_000;
/// The silence pass replaces a window's tokens only when it removes more than this many.
const SILENCE_MIN_REMOVED: usize = 15;
/// `process_file` writes nothing for a stitched sequence shorter than this.
const MIN_TOKENS_TO_WRITE: usize = 10;

/// The prefix for the window after `seq`'s (`_truncate_seq`): `seq` detokenised over 30 s and
/// retokenised over [start_ms, end_ms - 1) (the - 1 keeps notes that end at `end_ms` open),
/// without its `<E>`; just `<S>` when `seq` holds no notes. Errors when `seq` cannot be
/// detokenised or tokenised. (Upstream's `start_ms == end_ms` mode is not needed here and is
/// refused.)
pub fn truncate_seq(seq: &[Token], start_ms: i64, end_ms: i64) -> Result<Vec<Token>> {
    if start_ms == end_ms {
        return Err(Error::InvalidArgument("truncate_seq with start_ms == end_ms is not supported".into()));
    }
    let midi = detokenize(seq, WINDOW_MS)?;
    if midi.notes.is_empty() {
        return Ok(vec![Token::Bos]);
    }
    let mut out = tokenize(&midi, start_ms, end_ms - 1)?;
    if out.last() == Some(&Token::Eos) {
        out.pop();
    }
    Ok(out)
}

/// What the silence pass did to a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SilencePass {
    pub len_before: usize,
    pub len_after: usize,
    /// Whether the pass removed more than 15 tokens, so its output replaced the window's.
    pub fired: bool,
}

/// How the stitcher went on after a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Continuation {
    /// The window's new tokens were appended; the next prefix is cut from its end.
    Appended,
    /// Appended, but the window's last 20 s held no notes: the next prefix is `[<S>]`
    /// (upstream logs "Skipping audio chunk (silence)").
    AppendedSilence,
    /// The window's tokens could not be cut into a prefix (the error says why): they were
    /// dropped, and the next prefix was rebuilt from this window's own prefix
    /// (`_truncate_seq(prefix, 9998, 10000)`).
    Dropped { error: String },
    /// As `Dropped`, and rebuilding failed too: the next prefix is `[<S>]`.
    DroppedReset { error: String, recovery_error: String },
}

/// What happened to one window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowReport {
    pub window: usize,
    pub silence: SilencePass,
    /// The (possibly silence-adjusted) tokens ended with `<E>`, which was removed.
    pub saw_eos: bool,
    pub continuation: Continuation,
}

/// The MIDI file of a stitched piece.
#[derive(Clone, Debug)]
pub struct Transcription {
    /// The notes and pedals written (redundant pedals removed, overlaps resolved).
    pub midi: MidiDict,
    /// The type-0 MIDI file.
    pub bytes: Vec<u8>,
}

/// The stitching state of one recording: the prefix for the next window and the sequence
/// stitched so far (starting `[<S>]`, onsets on the recording's time line).
#[derive(Clone, Debug)]
pub struct Stitcher {
    prefix: Vec<Token>,
    concat: Vec<Token>,
    window: usize,
}

impl Default for Stitcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Stitcher {
    pub fn new() -> Self {
        Stitcher { prefix: vec![Token::Bos], concat: vec![Token::Bos], window: 0 }
    }

    /// The tokens to prefill the next window's decoder with.
    pub fn prefix(&self) -> &[Token] {
        &self.prefix
    }

    /// Index of the next window (window k covers [10 k, 10 k + 30) s).
    pub fn window(&self) -> usize {
        self.window
    }

    /// The stitched sequence so far.
    pub fn concat_seq(&self) -> &[Token] {
        &self.concat
    }

    /// Takes the decoded tokens of window [`Stitcher::window`] (its prefix plus what was
    /// generated, as the stop rule cut it) and the silent intervals of its audio: runs the
    /// silence pass, cuts the next prefix from the result, appends the tokens past the prefix
    /// with onsets shifted to the recording's time line, and drops a final `<E>`. When the cut
    /// fails the window is dropped (see [`Continuation`]). An error means the silence pass
    /// failed, which upstream lets fail the whole recording; the state is then unchanged.
    pub fn push_window(&mut self, result: &[Token], silent: &[SilentInterval]) -> Result<WindowReport> {
        let adjusted = process_silent_intervals(result, silent)?;
        let fired = adjusted.len() + SILENCE_MIN_REMOVED < result.len();
        let silence = SilencePass { len_before: result.len(), len_after: adjusted.len(), fired };
        let mut seq = if fired { adjusted } else { result.to_vec() };
        let mut saw_eos = false;
        let continuation = match truncate_seq(&seq, STEP_MS, WINDOW_MS - STEP_MS) {
            Ok(next) => {
                saw_eos = seq.last() == Some(&Token::Eos);
                if saw_eos {
                    seq.pop();
                }
                // Upstream slices at the prefix's length even if the silence pass shortened it.
                let new = seq.get(self.prefix.len()..).unwrap_or_default();
                let shift = (self.window as i64 * STEP_MS) as u32;
                self.concat.extend(new.iter().map(|&t| shift_onset(t, shift)));
                self.continue_with(next)
            }
            Err(e) => self.recover(e),
        };
        self.window += 1;
        Ok(WindowReport { window: self.window - 1, silence, saw_eos, continuation })
    }

    fn continue_with(&mut self, next: Vec<Token>) -> Continuation {
        if next.len() == 1 {
            self.prefix = vec![Token::Bos];
            Continuation::AppendedSilence
        } else {
            self.prefix = next;
            Continuation::Appended
        }
    }

    fn recover(&mut self, error: Error) -> Continuation {
        let error = error.to_string();
        match truncate_seq(&self.prefix, STEP_MS - 2, STEP_MS) {
            Ok(prefix) => {
                self.prefix = prefix;
                Continuation::Dropped { error }
            }
            Err(e) => {
                self.prefix = vec![Token::Bos];
                Continuation::DroppedReset { error, recovery_error: e.to_string() }
            }
        }
    }

    /// The MIDI file of the stitched sequence (see [`write_midi`]).
    pub fn finish(&self) -> Result<Option<Transcription>> {
        write_midi(&self.concat)
    }
}

fn shift_onset(t: Token, shift: u32) -> Token {
    match t {
        Token::Onset(ms) => Token::Onset(ms + shift),
        t => t,
    }
}

/// `process_file`'s MIDI of a stitched sequence: None when it has fewer than 10 tokens; else
/// detokenised up to its last onset (notes left open end there, none lasts over 5 s),
/// redundant pedals removed, written as type-0 MIDI. Errors where upstream logs "Failed to
/// save" and writes nothing: no onset token, a last onset of 0, a sequence that does not
/// detokenise.
pub fn write_midi(concat: &[Token]) -> Result<Option<Transcription>> {
    if concat.len() < MIN_TOKENS_TO_WRITE {
        return Ok(None);
    }
    let last_onset = concat.iter().rev().find_map(|t| match t {
        Token::Onset(ms) => Some(*ms as i64),
        _ => None,
    });
    let last_onset = last_onset.ok_or_else(|| Error::Tokenizer("no onset token in the stitched sequence".into()))?;
    let mut midi = detokenize(concat, last_onset)?;
    midi.remove_redundant_pedals();
    midi.resolve_overlaps();
    let bytes = midi.to_midi()?;
    Ok(Some(Transcription { midi, bytes }))
}
