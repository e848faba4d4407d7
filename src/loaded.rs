//! A model ready to transcribe: found (directory or hub name), read, uploaded, with its
//! tokenizer.
use crate::amt::{PianoOptions, PianoTranscriber, PianoTranscript, PianoWindow};
use crate::backend::wgpu::WgpuOptions;
use crate::backend::{self, BackendKind};
use crate::checkpoint::Checkpoint;
use crate::config::ModelKind;
use crate::hub::{resolve_model, HubOptions};
use crate::model::{Model, WeightDtype};
use crate::tokenizer::Tokenizer;
use crate::transcribe::gpu::GpuWindowDecoder;
use crate::transcribe::{Event, ModelInfo, SampleSource, SliceSource, TranscribeOptions, Transcriber, Transcript};
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
    /// Speech (Whisper) or piano (aria-amt): its front end, tokens and decoding rules.
    pub kind: ModelKind,
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
        Ok(LoadedModel { model, kind: ck.kind, tokenizer, dir: dir.to_path_buf() })
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
        self.transcribe_source(SliceSource::new(samples), options, &mut |_| {})
    }

    /// Transcribes a stream (a [`crate::audio::AudioStream`], a `WavStream`, samples in memory)
    /// window by window in bounded memory; `on_event` sees each segment as soon as its window
    /// is decoded, and each window when it is done (for progress: [`Event::Window`] carries
    /// where the next window starts and the audio's length when known).
    ///
    /// ```no_run
    /// use whisper_wgpu::transcribe::{Event, TranscribeOptions};
    /// use whisper_wgpu::{audio, LoadOptions, LoadedModel};
    /// let model = LoadedModel::load("tiny.en", &LoadOptions::default(), &Default::default())?;
    /// let stream = audio::AudioStream::open(std::path::Path::new("talk.flac"))?;
    /// model.transcribe_source(stream, &TranscribeOptions::default(), &mut |e| match e {
    ///     Event::Segment(s) => println!("[{:.2} --> {:.2}] {}", s.start, s.end, s.text),
    ///     Event::Window(w) => eprintln!("{:.0} s done", w.next),
    /// })?;
    /// # Ok::<(), whisper_wgpu::Error>(())
    /// ```
    pub fn transcribe_source<S: SampleSource>(
        &self,
        source: S,
        options: &TranscribeOptions,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Transcript> {
        let tokenizer = self.tokenizer()?;
        let info = ModelInfo::new(&self.model.dims, &self.model.generation)?;
        let mut decoder = GpuWindowDecoder::new(&self.model, options.fallback.best_of.max(1))?;
        Transcriber::new(&mut decoder, tokenizer, info)?.transcribe_events(source, options, on_event)
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
        let sources = inputs.iter().map(|s| SliceSource::new(s)).collect();
        self.transcribe_sources(sources, options, batch_size, &mut |_, _| {})?.into_iter().collect()
    }

    /// [`LoadedModel::transcribe_batch`] over streams; `on_event(i, event)` reports the
    /// segments and windows of input `i` as they are decoded. An input that cannot be read or
    /// decoded gets its error in its place (the others are still transcribed); any other error
    /// (model, GPU) stops the run.
    pub fn transcribe_sources<S: SampleSource>(
        &self,
        sources: Vec<S>,
        options: &TranscribeOptions,
        batch_size: usize,
        on_event: &mut dyn FnMut(usize, Event<'_>),
    ) -> Result<Vec<Result<Transcript>>> {
        let tokenizer = self.tokenizer()?;
        if batch_size == 0 {
            return Err(Error::InvalidArgument("the batch size must be at least 1".into()));
        }
        let info = ModelInfo::new(&self.model.dims, &self.model.generation)?;
        let rows = batch_size.min(sources.len().max(1)).max(options.fallback.best_of);
        let mut decoder = GpuWindowDecoder::new(&self.model, rows)?;
        Transcriber::new(&mut decoder, tokenizer, info)?
            .transcribe_sources_events(sources, options, batch_size, on_event)
    }

    /// Transcribes a piano recording with an aria-amt model: windows decoded on the GPU,
    /// stitched as aria-amt does; `on_window` sees each window (and the notes it added) when
    /// it is done. Write `transcript.midi`'s bytes to a `.mid` file.
    pub fn transcribe_piano<S: SampleSource>(
        &self,
        source: S,
        options: &PianoOptions,
        on_window: &mut dyn FnMut(&PianoWindow),
    ) -> Result<PianoTranscript> {
        let mut all = self.transcribe_piano_sources(vec![source], options, &mut |_, w| on_window(w))?;
        all.remove(0)
    }

    /// Several piano recordings, their current windows decoded together (up to
    /// `options.batch_size` rows); results in input order, a recording that cannot be read in
    /// its place as an error.
    pub fn transcribe_piano_sources<S: SampleSource>(
        &self,
        sources: Vec<S>,
        options: &PianoOptions,
        on_window: &mut dyn FnMut(usize, &PianoWindow),
    ) -> Result<Vec<Result<PianoTranscript>>> {
        if self.kind != ModelKind::AriaAmt {
            return Err(Error::InvalidArgument(format!(
                "{} is a speech model: piano transcription needs an aria-amt checkpoint",
                self.dir.display()
            )));
        }
        PianoTranscriber::new(&self.model, options.clone())?.transcribe_sources(sources, on_window)
    }

    fn tokenizer(&self) -> Result<&Tokenizer> {
        if self.kind == ModelKind::AriaAmt {
            return Err(Error::InvalidArgument(format!(
                "{} is a piano transcription model (aria-amt): it writes notes, not text",
                self.dir.display()
            )));
        }
        self.tokenizer.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!("{} has no tokenizer.json: it cannot produce text", self.dir.display()))
        })
    }

    /// The language token for a code (`de`, `<|de|>`); `None` for English on an English-only
    /// model, which has no language tokens.
    pub fn language_token(&self, code: &str) -> Result<Option<u32>> {
        let g = &self.model.generation;
        let code = code.trim().trim_start_matches("<|").trim_end_matches("|>").to_ascii_lowercase();
        if !g.is_multilingual {
            return match code.as_str() {
                "en" | "english" => Ok(None),
                _ => Err(Error::InvalidArgument(format!("language `{code}`: this model is English-only (use en)"))),
            };
        }
        let token = format!("<|{code}|>");
        match g.lang_to_id.iter().find(|(t, _)| *t == token) {
            Some(&(_, id)) => Ok(Some(id)),
            None => {
                let known: Vec<&str> =
                    g.lang_to_id.iter().map(|(t, _)| t.trim_start_matches("<|").trim_end_matches("|>")).collect();
                Err(Error::InvalidArgument(format!("unknown language `{code}` (this model knows {})", known.join(" "))))
            }
        }
    }

    /// The code of a language token (`<|de|>` -> `de`).
    pub fn language_code(&self, id: u32) -> Option<String> {
        let g = &self.model.generation;
        let (t, _) = g.lang_to_id.iter().find(|&&(_, i)| i == id)?;
        Some(t.trim_start_matches("<|").trim_end_matches("|>").to_string())
    }
}

// One model, many threads: checked at compile time.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Model>();
    shared::<LoadedModel>();
};
