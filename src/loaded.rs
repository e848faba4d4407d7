//! A model ready to transcribe: found (directory or hub name), read, uploaded, with its
//! tokenizer.
use crate::backend::wgpu::WgpuOptions;
use crate::backend::{self, BackendKind};
use crate::checkpoint::Checkpoint;
use crate::hub::{resolve_model, HubOptions};
use crate::model::{Model, WeightDtype};
use crate::tokenizer::Tokenizer;
use crate::transcribe::gpu::GpuWindowDecoder;
use crate::transcribe::{ModelInfo, SliceSource, TranscribeOptions, Transcriber, Transcript};
use crate::{Error, Result};
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
        let tokenizer = self.tokenizer()?;
        let info = ModelInfo::new(&self.model.dims, &self.model.generation)?;
        let mut decoder = GpuWindowDecoder::new(&self.model, options.fallback.best_of.max(1))?;
        Transcriber::new(&mut decoder, tokenizer, info)?.transcribe(samples, options)
    }

    /// Transcribes several recordings, decoding the current windows of up to `batch_size` of
    /// them together on the GPU (each row advancing and finishing on its own); transcripts come
    /// back in input order, each the one [`LoadedModel::transcribe`] gives for that input alone.
    pub fn transcribe_batch(
        &self,
        inputs: &[&[f32]],
        options: &TranscribeOptions,
        batch_size: usize,
    ) -> Result<Vec<Transcript>> {
        let tokenizer = self.tokenizer()?;
        if batch_size == 0 {
            return Err(Error::InvalidArgument("the batch size must be at least 1".into()));
        }
        let info = ModelInfo::new(&self.model.dims, &self.model.generation)?;
        let rows = batch_size.max(options.fallback.best_of);
        let mut decoder = GpuWindowDecoder::new(&self.model, rows)?;
        let sources = inputs.iter().map(|s| SliceSource::new(s)).collect();
        Transcriber::new(&mut decoder, tokenizer, info)?.transcribe_sources(
            sources,
            options,
            batch_size,
            &mut |_, _| {},
        )
    }

    fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!("{} has no tokenizer.json: it cannot produce text", self.dir.display()))
        })
    }
}
