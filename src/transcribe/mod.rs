//! From audio to segments: the window decoder boundary and (in submodules) long-form
//! transcription and output formats.
pub mod gpu;
pub mod window;

pub use window::{Task, WindowDecoder, WindowRequest, WindowResult};
