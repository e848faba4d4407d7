//! CTranslate2 (faster-whisper) `model.bin` files: reading them and turning a Whisper model into
//! Hugging Face tensor names, dims and generation rules.
//!
//! Three steps, one submodule each:
//! - [`format`]: the binary container (versions 1..6): header, variables, aliases. Every size is
//!   checked against the bytes that remain before anything is allocated.
//! - [`hf`]: CT2 Whisper variable names -> HF `WhisperForConditionalGeneration` names, with the
//!   fused attention projections split, int8/int16 weights dequantised and the output projection
//!   checked to be tied to the token embedding.
//! - [`generation`]: the [`GenerationConfig`] of the model from the CT2 `config.json` (suppressed
//!   tokens, alignment heads) and, for multilingual models, `tokenizer.json` (language tokens).
use crate::config::{GenerationConfig, ModelDims};
use crate::tensor::HostTensor;
use crate::{Error, Result};
use half::f16;
use std::io::Read;
use std::path::{Path, PathBuf};

mod format;
mod generation;
mod hf;

/// The values of a CT2 variable in their stored type.
#[derive(Clone, Debug, PartialEq)]
pub enum Ct2Data {
    F32(Vec<f32>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    F16(Vec<f16>),
    /// bfloat16, kept as raw bits (the upper half of an f32).
    Bf16(Vec<u16>),
}

impl Ct2Data {
    pub fn len(&self) -> usize {
        match self {
            Ct2Data::F32(v) => v.len(),
            Ct2Data::I8(v) => v.len(),
            Ct2Data::I16(v) => v.len(),
            Ct2Data::I32(v) => v.len(),
            Ct2Data::F16(v) => v.len(),
            Ct2Data::Bf16(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The CT2 name of the stored type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Ct2Data::F32(_) => "float32",
            Ct2Data::I8(_) => "int8",
            Ct2Data::I16(_) => "int16",
            Ct2Data::I32(_) => "int32",
            Ct2Data::F16(_) => "float16",
            Ct2Data::Bf16(_) => "bfloat16",
        }
    }
    /// The values as f32 (integers converted exactly where they fit, bf16 widened).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Ct2Data::F32(v) => v.clone(),
            Ct2Data::I8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            Ct2Data::I16(v) => v.iter().map(|&x| f32::from(x)).collect(),
            Ct2Data::I32(v) => v.iter().map(|&x| x as f32).collect(),
            Ct2Data::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Ct2Data::Bf16(v) => v.iter().map(|&b| bf16_to_f32(b)).collect(),
        }
    }
}

/// bfloat16 is the upper half of an f32: widening is exact.
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// One stored variable: its name, shape (empty for a scalar) and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Ct2Variable {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: Ct2Data,
}

/// A parsed `model.bin`, before any interpretation of the names.
#[derive(Clone, Debug, PartialEq)]
pub struct Ct2File {
    /// Where the bytes came from; errors name it.
    pub origin: PathBuf,
    pub binary_version: u32,
    /// The model spec (`WhisperSpec`); absent in binary version 1.
    pub spec: Option<String>,
    pub spec_revision: u32,
    /// In file order (CT2 writes them sorted by name).
    pub variables: Vec<Ct2Variable>,
    /// `(alias, target)`: the alias names the same values as the target.
    pub aliases: Vec<(String, String)>,
}

/// The JSON files that sit beside `model.bin` in a CT2 model directory. Both are optional: without
/// `config.json` nothing is suppressed, without `tokenizer.json` a multilingual model gets no
/// language table.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ct2Sidecar<'a> {
    /// The CT2 `config.json` (`suppress_ids`, `suppress_ids_begin`, `alignment_heads`, ...).
    pub config_json: Option<&'a str>,
    /// The Hugging Face `tokenizer.json` shipped with the model.
    pub tokenizer_json: Option<&'a str>,
}

/// A CT2 Whisper model in Hugging Face terms.
#[derive(Clone, Debug, PartialEq)]
pub struct Ct2Model {
    /// HF tensor names (`model.encoder.conv1.weight`, ...) in a fixed order: encoder stem, encoder
    /// layers, decoder embeddings, decoder layers. f16 and f32 stay as stored; bf16 and
    /// dequantised int8/int16 weights are f32.
    pub tensors: Vec<(String, HostTensor)>,
    pub dims: ModelDims,
    pub generation: GenerationConfig,
    /// `(layer, head)` pairs for word timestamps, from the CT2 `config.json`.
    pub alignment_heads: Vec<(usize, usize)>,
    pub binary_version: u32,
    pub spec_revision: u32,
}

impl Ct2Model {
    /// The tensor named `name`, if the model has it.
    pub fn tensor(&self, name: &str) -> Option<&HostTensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// Reads a `model.bin` and converts it; `config.json` and `tokenizer.json` next to it are used
/// when present.
pub fn read_ct2(path: &Path) -> Result<Ct2Model> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let dir = path.parent().unwrap_or(Path::new("."));
    let config = read_optional(&dir.join("config.json"))?;
    let tokenizer = read_optional(&dir.join("tokenizer.json"))?;
    let side = Ct2Sidecar { config_json: config.as_deref(), tokenizer_json: tokenizer.as_deref() };
    read_ct2_from(std::io::BufReader::with_capacity(1 << 20, file), len, path, &side)
}

/// Converts a `model.bin` held in memory (errors name it `model.bin`).
pub fn read_ct2_bytes(bytes: &[u8], side: &Ct2Sidecar) -> Result<Ct2Model> {
    read_ct2_from(bytes, bytes.len() as u64, Path::new("model.bin"), side)
}

/// Converts a `model.bin` streamed from `reader`, which must yield exactly `len` bytes (a file, or
/// the parts of a split download chained together). `origin` is the name errors give.
pub fn read_ct2_from(reader: impl Read, len: u64, origin: &Path, side: &Ct2Sidecar) -> Result<Ct2Model> {
    let file = parse_model_bin(reader, len, origin)?;
    hf::convert(file, side)
}

/// Parses the container only: variables and aliases as stored.
pub fn parse_model_bin(reader: impl Read, len: u64, origin: &Path) -> Result<Ct2File> {
    format::parse(reader, len, origin)
}

impl Ct2File {
    /// Interprets the variables as a Whisper model with Hugging Face names.
    pub fn into_model(self, side: &Ct2Sidecar) -> Result<Ct2Model> {
        hf::convert(self, side)
    }
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}
