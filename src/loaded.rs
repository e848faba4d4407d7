//! A model ready to transcribe: found (directory or hub name), read, uploaded, with its
//! tokenizer.
use crate::backend::wgpu::WgpuOptions;
use crate::backend::{self, BackendKind};
use crate::checkpoint::Checkpoint;
use crate::hub::{resolve_model, HubOptions};
use crate::model::{Model, WeightDtype};
use crate::tokenizer::Tokenizer;
use crate::Result;
use std::path::{Path, PathBuf};

/// How to load a model.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub backend: BackendKind,
    pub wgpu: WgpuOptions,
    pub dtype: WeightDtype,
}

pub struct LoadedModel {
    pub model: Model,
    /// `None` for models without `tokenizer.json` (the seed-style music models).
    pub tokenizer: Option<Tokenizer>,
    pub dir: PathBuf,
}

impl LoadedModel {
    /// `spec` is a model directory or a name the hub knows (`tiny.en`, `base`); the empty
    /// string means the default model.
    pub fn load(spec: &str, options: &LoadOptions, hub: &HubOptions<'_>) -> Result<LoadedModel> {
        let dir = resolve_model(spec, hub)?;
        Self::from_dir(&dir, options)
    }

    pub fn from_dir(dir: &Path, options: &LoadOptions) -> Result<LoadedModel> {
        let ck = Checkpoint::load(dir)?;
        let tokenizer = match (&ck.tokenizer, ck.generation.eot) {
            (Some(path), Some(eot)) => Some(Tokenizer::from_file(path, eot)?),
            _ => None,
        };
        let backend = backend::open(options.backend, &options.wgpu)?;
        let model = Model::new(backend, ck.dims, ck.generation, &ck.weights, options.dtype)?;
        Ok(LoadedModel { model, tokenizer, dir: dir.to_path_buf() })
    }
}
