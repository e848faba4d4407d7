//! `model.safetensors` as a [`TensorSource`].
use super::TensorSource;
use crate::tensor::HostTensor;
use crate::{Error, Result};
use half::{bf16, f16};
use safetensors::tensor::{Dtype, Metadata};
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

/// A whole safetensors file held in memory, its header parsed and validated.
pub struct SafetensorsFile {
    path: PathBuf,
    bytes: Vec<u8>,
    data_start: usize,
    metadata: Metadata,
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
        Ok(SafetensorsFile { path: path.to_path_buf(), data_start: 8 + header_len, bytes, metadata })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn names(&self) -> Vec<String> {
        self.metadata.tensors().into_keys().collect()
    }
}

impl TensorSource for SafetensorsFile {
    fn get(&self, name: &str) -> Result<Option<HostTensor>> {
        let Some(info) = self.metadata.info(name) else {
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
