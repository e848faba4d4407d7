//! From audio to segments: the window decoder boundary ([`window`], [`gpu`]), long-form
//! transcription over it ([`longform`]: audio windows from [`source`], temperature fallback in
//! [`fallback`], segment cutting in [`segments`]) and output formats ([`output`]).
pub mod fallback;
pub mod gpu;
pub mod longform;
pub mod output;
pub mod segments;
pub mod source;
pub mod window;

pub use fallback::{compression_ratio, Attempt, Detokenize, FallbackRules, Retry};
pub use longform::{
    Event, ModelInfo, Segment, TranscribeOptions, Transcriber, Transcript, WindowDecision, WindowReport,
};
pub use source::{SampleSource, SliceSource, Windows};
pub use window::{Task, WindowDecoder, WindowRequest, WindowResult};
