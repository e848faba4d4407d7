//! The one error type of the crate.
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, named by what the user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("audio {}: {msg}", path.display())]
    Audio { path: PathBuf, msg: String },
    #[error("invalid audio: {0}")]
    InvalidAudio(String),
    #[error("model config {}: {msg}", path.display())]
    Config { path: PathBuf, msg: String },
    #[error("model file {}: {msg}", path.display())]
    ModelFile { path: PathBuf, msg: String },
    #[error("tensor `{name}`: {msg}")]
    Tensor { name: String, msg: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A MIDI file that cannot be read or a note list that cannot be written as one.
    #[error("MIDI: {0}")]
    Midi(String),
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    #[error("GPU error: {0}")]
    Gpu(String),
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    #[error("limit exceeded: {0}")]
    Limit(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("model download: {0}")]
    Download(String),
    #[error("CUDA: {0}")]
    Cuda(String),
    /// A library the CUDA backend loads at run time (the driver's libcuda, or NVRTC) is not
    /// on this machine, or lacks a function the backend calls.
    #[error("CUDA is not available: {library} {detail}")]
    CudaUnavailable { library: String, detail: String },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn tensor(name: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Tensor { name: name.into(), msg: msg.into() }
    }

    /// The input audio could not be read or decoded: that input fails, the others go on.
    pub fn is_input(&self) -> bool {
        matches!(self, Error::Audio { .. } | Error::InvalidAudio(_))
    }
}
