//! `model.safetensors` as a [`TensorSource`].
use super::TensorSource;
use crate::tensor::HostTensor;
use crate::{Error, Result};
use half::{bf16, f16};
use safetensors::tensor::{Dtype, Metadata};
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

/// What `torch.compile` puts before every name of a model's state dict; training checkpoints
/// (aria-amt's among them) are saved with it.
const COMPILED_PREFIX: &str = "_orig_mod.";

/// A whole safetensors file held in memory, its header parsed and validated.
pub struct SafetensorsFile {
    path: PathBuf,
    bytes: Vec<u8>,
    data_start: usize,
    metadata: Metadata,
    /// [`COMPILED_PREFIX`] when every tensor name carries it, else empty: names are looked up
    /// without it.
    prefix: &'static str,
}

impl SafetensorsFile {
    pub fn open(path: &Path) -> Result<SafetensorsFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(path, bytes)
    }

    /// Parses `bytes`; `path` only names the file in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<SafetensorsFile> {
        // The crate checks the header length, the JSON, that offsets tile the data without gaps
        // or overlaps, and that the data section is exactly as long as the header says.
        let (header_len, metadata) = SafeTensors::read_metadata(&bytes).map_err(|e| Error::ModelFile {
            path: path.to_path_buf(),
            msg: format!("not a valid safetensors file: {e}"),
        })?;
        let names = metadata.tensors();
        let compiled = !names.is_empty() && names.keys().all(|n| n.starts_with(COMPILED_PREFIX));
        let prefix = if compiled { COMPILED_PREFIX } else { "" };
        Ok(SafetensorsFile { path: path.to_path_buf(), data_start: 8 + header_len, bytes, metadata, prefix })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names (without a `_orig_mod.` prefix).
    pub fn names(&self) -> Vec<String> {
        self.metadata.tensors().into_keys().map(|n| n[self.prefix.len()..].to_string()).collect()
    }

    /// The shape of a tensor, without reading it.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.metadata.info(&format!("{}{name}", self.prefix)).map(|i| i.shape.clone())
    }
}

impl TensorSource for SafetensorsFile {
    fn get(&self, name: &str) -> Result<Option<HostTensor>> {
        let Some(info) = self.metadata.info(&format!("{}{name}", self.prefix)) else {
            return Ok(None);
        };
        let (start, end) = info.data_offsets;
        let raw = &self.bytes[self.data_start + start..self.data_start + end];
        let shape = info.shape.clone();
        let t = match info.dtype {
            Dtype::F32 => HostTensor::f32(
                shape,
                raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            ),
            Dtype::F16 => {
                HostTensor::f16(shape, raw.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]])).collect())
            }
            Dtype::BF16 => HostTensor::f32(
                shape,
                raw.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            ),
            other => {
                return Err(Error::tensor(
                    name,
                    format!("has dtype {other:?} in {}; only F32, F16 and BF16 are supported", self.path.display()),
                ))
            }
        };
        Ok(Some(t))
    }
}
