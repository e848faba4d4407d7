//! whisper-wgpu: Whisper-architecture encoder-decoder models on any GPU through wgpu.
pub mod audio;
pub mod config;
pub mod error;
pub mod tensor;

pub use error::{Error, Result};
