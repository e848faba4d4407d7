//! Piano transcription with EleutherAI aria-amt checkpoints: the note side, pure Rust and
//! GPU-free. A port of the semantics of aria-amt's `AmtTokenizer` and inference stitching and
//! of aria-utils' `MidiDict` (Apache-2.0), checked against outputs of the original Python in
//! `shared/reference/aria-amt-random` (tests/amt_notes.rs).
//!
//! The pieces, in pipeline order:
//! - [`select()`] chooses each step's id from the decoder logits, and [`WindowSeq`] applies the
//!   stop rule and yields the window's result ids;
//! - [`Stitcher::push_window`] takes each window's result tokens and the silent intervals of
//!   its audio, and gives the next window's prefix; [`Stitcher::finish`] the MIDI file;
//! - [`PianoTranscriber`] runs it all on a model: recordings in, windows decoded on the GPU
//!   (several recordings as rows of one batch), MIDI out;
//! - underneath: [`vocab`] (ids <-> [`Token`]), [`tokenize()`] / [`detokenize()`], [`MidiDict`]
//!   and its MIDI file reading and writing, [`process_silent_intervals`].
//!
//! Upstream shuffles the `prev` tokens of a prefix; here they are sorted (pitches ascending,
//! then the pedal), as in the reference data.
pub mod detokenize;
pub mod midi_dict;
pub mod midi_io;
pub mod select;
pub mod silence;
pub mod stitch;
pub mod time;
pub mod tokenize;
pub mod transcribe;
pub mod vocab;

pub use detokenize::detokenize;
pub use midi_dict::{MidiDict, Note, Pedal, Program};
pub use select::{apply_stop_rule, select, Selection, Stop, StopReason, WindowSeq};
pub use silence::{process_silent_intervals, SilentInterval};
pub use stitch::{truncate_seq, write_midi, Continuation, SilencePass, Stitcher, Transcription, WindowReport};
pub use time::Tempo;
pub use tokenize::tokenize;
pub use transcribe::{PianoOptions, PianoTranscriber, PianoTranscript, PianoWindow};
pub use vocab::Token;
