//! whisper-wgpu: Whisper-architecture encoder-decoder models on any GPU through wgpu.
pub mod amt;
pub mod audio;
pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod decode;
pub mod error;
pub mod graph;
pub mod hub;
pub mod loaded;
pub mod model;
pub mod tensor;
pub mod tokenizer;
pub mod transcribe;
pub mod weights;

pub use error::{Error, Result};
pub use loaded::{LoadOptions, LoadedModel};
