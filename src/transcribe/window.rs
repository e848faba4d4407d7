//! The boundary between long-form transcription (seeking, segments, fallback, outputs) and
//! the model: decoding a batch of 30-second windows, each with its own prompt and temperature.
use crate::Result;

/// Transcribe in the spoken language, or translate to English.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Task {
    #[default]
    Transcribe,
    Translate,
}

/// One window to decode.
#[derive(Clone, Debug)]
pub struct WindowRequest<'a> {
    /// Log-mel spectrogram of the window, `[n_mels][n_frames]` (padded/trimmed to 30 s).
    pub mel: &'a [f32],
    /// Text tokens of earlier windows (and/or an initial prompt) to condition on; the decoder
    /// prefixes `<|startofprev|>` and keeps the last `n_text_ctx / 2 - 1`. Empty: no conditioning.
    pub previous: &'a [u32],
    /// Language token (`<|en|>`, ...) for multilingual models; `None` for English-only ones.
    pub language: Option<u32>,
    pub task: Task,
    /// Emit timestamp tokens (Whisper's timestamp rules) or decode with `<|notimestamps|>`.
    pub timestamps: bool,
    /// 0 = greedy; above 0 samples from softmax(logits / temperature).
    pub temperature: f32,
    /// Seed of the sampling noise (used when temperature > 0).
    pub seed: u64,
    /// Latest allowed first timestamp, in timestamp steps of 0.02 s (OpenAI: 1 s = 50).
    pub max_initial_timestamp_index: Option<u32>,
    /// Sampled tokens at most (the context limit applies regardless).
    pub max_new_tokens: Option<usize>,
}

/// What decoding a window produced.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowResult {
    /// Sampled tokens (text and timestamps), without the prompt and the end-of-text token.
    pub tokens: Vec<u32>,
    /// Sum of the log-probabilities of the sampled tokens, end-of-text included.
    pub sum_logprob: f32,
    /// `sum_logprob / (tokens.len() + 1)`, as OpenAI's decoder reports it.
    pub avg_logprob: f32,
    /// Probability of `<|nospeech|>` at the start-of-transcript position (0 when the model
    /// has no such token).
    pub no_speech_prob: f32,
    /// True when end-of-text was sampled; false when the context limit stopped the window.
    pub finished: bool,
}

/// Something that decodes windows: the GPU session in [`super::gpu`], or a mock in tests.
pub trait WindowDecoder {
    /// Decodes each request; results come back in request order. Implementations may run
    /// the requests as one batch.
    fn decode(&mut self, requests: &[WindowRequest<'_>]) -> Result<Vec<WindowResult>>;

    /// Probabilities of each language token for a window (multilingual models), highest first.
    fn detect_language(&mut self, mel: &[f32]) -> Result<Vec<(u32, f32)>>;

    /// Largest number of windows one `decode` call runs together.
    fn max_batch(&self) -> usize;
}
