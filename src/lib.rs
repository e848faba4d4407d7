//! whisper-wgpu: Whisper-architecture encoder-decoder models on any GPU through wgpu.
pub mod config;
pub mod error;
pub mod hub;
pub mod tensor;
pub mod weights;

pub use error::{Error, Result};
