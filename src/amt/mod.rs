//! Piano transcription with EleutherAI aria-amt checkpoints: the note side, pure Rust and
//! GPU-free. A port of the semantics of aria-amt's `AmtTokenizer` and of aria-utils'
//! `MidiDict` (Apache-2.0).
//!
//! - [`vocab`]: ids <-> [`Token`];
//! - [`MidiDict`] and its MIDI file reading and writing.
pub mod midi_dict;
pub mod midi_io;
pub mod time;
pub mod vocab;

pub use midi_dict::{MidiDict, Note, Pedal, Program};
pub use time::Tempo;
pub use vocab::Token;
