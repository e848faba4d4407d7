//! A model ready to transcribe: found (directory or hub name), read, uploaded, with its
//! tokenizer.
use crate::backend::wgpu::WgpuOptions;
use crate::backend::{self, BackendKind};
use crate::checkpoint::Checkpoint;
use crate::hub::{resolve_model, HubOptions};
use crate::model::{Model, WeightDtype};
use crate::tokenizer::Tokenizer;
use crate::transcribe::gpu::GpuWindowDecoder;
use crate::transcribe::{ModelInfo, TranscribeOptions, Transcriber, Transcript};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// How to load a model.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub backend: BackendKind,
    pub wgpu: WgpuOptions,
    pub dtype: WeightDtype,
}

/// A loaded model is shared between threads: `&LoadedModel` transcribes from any of them, each
/// call with its own session.
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

    /// Transcribes 16 kHz mono samples (any length) with OpenAI's long-form rules; see
    /// [`Transcriber`] for streaming and per-segment callbacks.
    ///
    /// ```no_run
    /// use whisper_wgpu::{audio, transcribe::TranscribeOptions, LoadOptions, LoadedModel};
    /// let model = LoadedModel::load("tiny.en", &LoadOptions::default(), &Default::default())?;
    /// let samples = audio::load_wav(std::path::Path::new("talk.wav"))?;
    /// let transcript = model.transcribe(&samples, &TranscribeOptions::default())?;
    /// for s in &transcript.segments {
    ///     println!("[{:.2} --> {:.2}] {}", s.start, s.end, s.text);
    /// }
    /// # Ok::<(), whisper_wgpu::Error>(())
    /// ```
    pub fn transcribe(&self, samples: &[f32], options: &TranscribeOptions) -> Result<Transcript> {
        let tokenizer = self.tokenizer.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!("{} has no tokenizer.json: it cannot produce text", self.dir.display()))
        })?;
        let info = ModelInfo::new(&self.model.dims, &self.model.generation)?;
        let mut decoder = GpuWindowDecoder::new(&self.model, options.fallback.best_of.max(1))?;
        Transcriber::new(&mut decoder, tokenizer, info)?.transcribe(samples, options)
    }
}

// One model, many threads: checked at compile time.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Model>();
    shared::<LoadedModel>();
};
