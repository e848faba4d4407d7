//! Model configuration: the dimensions of the network and the rules of generation.
//!
//! Two spellings are read: Hugging Face Whisper `config.json` (+ `generation_config.json`) and the
//! seed-style `ModelConfig` (OpenAI's `ModelDimensions` field names: n_mels, n_audio_ctx, ...).
use crate::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// The dimensions of a Whisper-architecture encoder-decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelDims {
    pub n_mels: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_audio_mlp: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
    pub n_text_mlp: usize,
    pub n_vocab: usize,
}

/// Which tensor-naming convention a checkpoint uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// Hugging Face transformers `WhisperForConditionalGeneration` (`model.encoder.layers.N...`).
    HuggingFace,
    /// OpenAI / the seed (`encoder.blocks.N.attn.query.weight`, ...).
    OpenAi,
}

impl ModelDims {
    /// Reads `config.json` in either spelling; returns the dims and which naming the file implies.
    pub fn from_json(path: &Path, text: &str) -> Result<(ModelDims, Naming)> {
        Self::from_json_with_vocab(path, text, None)
    }

    /// [`ModelDims::from_json`] for configs that may leave out the vocabulary size (aria-amt's
    /// take it from their tokenizer): `vocab` (the token embedding's rows) fills it in.
    pub fn from_json_with_vocab(path: &Path, text: &str, vocab: Option<usize>) -> Result<(ModelDims, Naming)> {
        let err = |msg: String| Error::Config { path: path.to_path_buf(), msg };
        let v: Value = serde_json::from_str(text).map_err(|e| err(format!("not valid JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| err("top level is not a JSON object".into()))?;
        let get = |key: &str| -> Result<Option<usize>> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_u64()
                    .map(|n| Some(n as usize))
                    .ok_or_else(|| err(format!("`{key}` must be a non-negative integer, found {x}"))),
            }
        };
        let need = |key: &str| -> Result<usize> { get(key)?.ok_or_else(|| err(format!("missing `{key}`"))) };
        let (dims, naming) = if obj.contains_key("n_audio_state") || obj.contains_key("n_mels") {
            let n_audio_state = need("n_audio_state")?;
            let n_text_state = need("n_text_state")?;
            (
                ModelDims {
                    n_mels: need("n_mels")?,
                    n_audio_ctx: need("n_audio_ctx")?,
                    n_audio_state,
                    n_audio_head: need("n_audio_head")?,
                    n_audio_layer: need("n_audio_layer")?,
                    n_audio_mlp: get("n_audio_mlp")?.unwrap_or(4 * n_audio_state),
                    n_text_ctx: need("n_text_ctx")?,
                    n_text_state,
                    n_text_head: need("n_text_head")?,
                    n_text_layer: need("n_text_layer")?,
                    n_text_mlp: get("n_text_mlp")?.unwrap_or(4 * n_text_state),
                    n_vocab: match (get("n_vocab")?, vocab) {
                        (Some(n), _) | (None, Some(n)) => n,
                        (None, None) => {
                            return Err(err("missing `n_vocab`, and no token embedding to take it from".into()))
                        }
                    },
                },
                Naming::OpenAi,
            )
        } else {
            let d = need("d_model")?;
            (
                ModelDims {
                    n_mels: need("num_mel_bins")?,
                    n_audio_ctx: need("max_source_positions")?,
                    n_audio_state: d,
                    n_audio_head: need("encoder_attention_heads")?,
                    n_audio_layer: need("encoder_layers")?,
                    n_audio_mlp: get("encoder_ffn_dim")?.unwrap_or(4 * d),
                    n_text_ctx: need("max_target_positions")?,
                    n_text_state: d,
                    n_text_head: need("decoder_attention_heads")?,
                    n_text_layer: need("decoder_layers")?,
                    n_text_mlp: get("decoder_ffn_dim")?.unwrap_or(4 * d),
                    n_vocab: need("vocab_size")?,
                },
                Naming::HuggingFace,
            )
        };
        dims.validate().map_err(err)?;
        Ok((dims, naming))
    }

    /// Rejects dimensions the kernels cannot run (zero sizes, widths not divisible by heads, ...).
    pub fn validate(&self) -> std::result::Result<(), String> {
        let fields = [
            ("n_mels", self.n_mels),
            ("n_audio_ctx", self.n_audio_ctx),
            ("n_audio_state", self.n_audio_state),
            ("n_audio_head", self.n_audio_head),
            ("n_audio_layer", self.n_audio_layer),
            ("n_audio_mlp", self.n_audio_mlp),
            ("n_text_ctx", self.n_text_ctx),
            ("n_text_state", self.n_text_state),
            ("n_text_head", self.n_text_head),
            ("n_text_layer", self.n_text_layer),
            ("n_text_mlp", self.n_text_mlp),
            ("n_vocab", self.n_vocab),
        ];
        for (name, v) in fields {
            if v == 0 {
                return Err(format!("`{name}` is zero"));
            }
            // Far beyond any Whisper; keeps size arithmetic far from overflow.
            if v > 1 << 20 {
                return Err(format!("`{name}` = {v} is implausibly large"));
            }
        }
        // Context lengths size per-session buffers and computed position tables before any
        // tensor backs them: far beyond Whisper's 1500 / 448 (and the seed's 4096), but bounded.
        for (name, v) in [("n_audio_ctx", self.n_audio_ctx), ("n_text_ctx", self.n_text_ctx)] {
            if v > 1 << 16 {
                return Err(format!("`{name}` = {v} is implausibly large (at most 65536)"));
            }
        }
        for (state, heads, what) in
            [(self.n_audio_state, self.n_audio_head, "audio"), (self.n_text_state, self.n_text_head, "text")]
        {
            if state % heads != 0 {
                return Err(format!("n_{what}_state {state} is not divisible by n_{what}_head {heads}"));
            }
            if (state / heads) % 4 != 0 {
                return Err(format!("{what} head width {} is not a multiple of 4", state / heads));
            }
        }
        if self.n_audio_state != self.n_text_state {
            return Err(format!(
                "n_audio_state {} != n_text_state {}: cross-attention needs equal widths",
                self.n_audio_state, self.n_text_state
            ));
        }
        for (v, what) in [
            (self.n_audio_state, "n_audio_state"),
            (self.n_audio_mlp, "n_audio_mlp"),
            (self.n_text_mlp, "n_text_mlp"),
            (self.n_mels, "n_mels"),
        ] {
            if v % 4 != 0 {
                return Err(format!("`{what}` = {v} is not a multiple of 4"));
            }
        }
        Ok(())
    }

    /// Number of audio frames the encoder consumes (the conv stem halves them).
    pub fn n_frames(&self) -> usize {
        2 * self.n_audio_ctx
    }
}

/// Which family a model belongs to: it decides the audio front end, what the tokens mean and
/// how the next one is chosen. Everything between (the network) is shared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModelKind {
    /// Whisper and models built like it (and the seed-era music model): Whisper's log-mel,
    /// text tokens (when the checkpoint has a tokenizer), Whisper's decoding rules.
    #[default]
    Whisper,
    /// EleutherAI aria-amt piano transcription: its two-resolution 512-band log-mel, the note
    /// vocabulary, and its token selection (see [`crate::amt`]).
    AriaAmt,
}

impl ModelKind {
    /// The `front_end` key of `config.json` (`"whisper"` or `"aria-amt"`); without it,
    /// OpenAI-style configs with 512 mel bands are aria-amt's (its released configs have no
    /// such key, and no Whisper has 512 bands), everything else is Whisper.
    pub fn from_json(path: &Path, text: &str, dims: &ModelDims, naming: Naming) -> Result<ModelKind> {
        let err = |msg: String| Error::Config { path: path.to_path_buf(), msg };
        let v: Value = serde_json::from_str(text).map_err(|e| err(format!("not valid JSON: {e}")))?;
        match v.get("front_end") {
            None | Some(Value::Null) if naming == Naming::OpenAi && dims.n_mels == 512 => Ok(ModelKind::AriaAmt),
            None | Some(Value::Null) => Ok(ModelKind::Whisper),
            Some(Value::String(s)) if s == "whisper" => Ok(ModelKind::Whisper),
            Some(Value::String(s)) if s == "aria-amt" => match dims.n_mels {
                512 => Ok(ModelKind::AriaAmt),
                n => Err(err(format!("aria-amt's front end makes 512 mel bands; `n_mels` is {n}"))),
            },
            Some(other) => Err(err(format!("unknown front end {other} (known: \"whisper\", \"aria-amt\")"))),
        }
    }
}

/// How each decode step chooses its token (on the GPU, in the replayed step).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Selection {
    /// Whisper's: suppression lists and timestamp rules, then greedy or sampled.
    #[default]
    Whisper,
    /// aria-amt's: the pedal-off logit scaled by 1.05, the argmax, then the probability-weighted
    /// id among velocity and onset ids within 2 of it; a row ends at `<E>` or at an onset of
    /// 20 s or more.
    AriaAmt,
}

/// How a decode is steered: special tokens and suppression lists. Whisper models carry it in
/// `generation_config.json`; seed-style models have none, and every field is then empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerationConfig {
    /// How the next token is chosen from the logits.
    pub selection: Selection,
    pub eot: Option<u32>,
    pub sot: Option<u32>,
    pub no_timestamps: Option<u32>,
    pub suppress_tokens: Vec<u32>,
    pub begin_suppress_tokens: Vec<u32>,
    /// Tokens after `<|startoftranscript|>` forced by the checkpoint (position, token); `None`
    /// entries leave the slot open (the language of multilingual models).
    pub forced_decoder_ids: Vec<(usize, Option<u32>)>,
    pub is_multilingual: bool,
    pub lang_to_id: Vec<(String, u32)>,
    pub translate: Option<u32>,
    pub transcribe: Option<u32>,
    pub start_of_prev: Option<u32>,
    pub no_speech: Option<u32>,
    pub timestamp_begin: Option<u32>,
    pub max_initial_timestamp_index: Option<u32>,
    pub max_length: Option<usize>,
}

impl GenerationConfig {
    /// Reads Hugging Face `generation_config.json`. Missing fields stay empty; `n_vocab` fixes the
    /// ids of the special tokens the file does not list (Whisper's layout is fixed by its vocabulary).
    pub fn from_json(path: &Path, text: &str, n_vocab: usize) -> Result<GenerationConfig> {
        let err = |msg: String| Error::Config { path: path.to_path_buf(), msg };
        let v: Value = serde_json::from_str(text).map_err(|e| err(format!("not valid JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| err("top level is not a JSON object".into()))?;
        let id = |key: &str| -> Result<Option<u32>> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_u64()
                    .filter(|&n| (n as usize) < n_vocab)
                    .map(|n| Some(n as u32))
                    .ok_or_else(|| err(format!("`{key}` = {x} is not a token id below {n_vocab}"))),
            }
        };
        let ids = |key: &str| -> Result<Vec<u32>> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(vec![]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_u64()
                            .filter(|&n| (n as usize) < n_vocab)
                            .map(|n| n as u32)
                            .ok_or_else(|| err(format!("`{key}` holds {x}, not a token id below {n_vocab}")))
                    })
                    .collect(),
                Some(x) => Err(err(format!("`{key}` must be a list, found {x}"))),
            }
        };
        let mut g = GenerationConfig {
            eot: id("eos_token_id")?,
            sot: id("decoder_start_token_id")?,
            no_timestamps: id("no_timestamps_token_id")?,
            suppress_tokens: ids("suppress_tokens")?,
            begin_suppress_tokens: ids("begin_suppress_tokens")?,
            is_multilingual: obj.get("is_multilingual").and_then(Value::as_bool).unwrap_or(false),
            start_of_prev: id("prev_sot_token_id")?,
            max_initial_timestamp_index: obj
                .get("max_initial_timestamp_index")
                .and_then(Value::as_u64)
                .map(|n| n as u32),
            max_length: obj.get("max_length").and_then(Value::as_u64).map(|n| n as usize),
            ..Default::default()
        };
        if let Some(Value::Array(pairs)) = obj.get("forced_decoder_ids") {
            for p in pairs {
                let pair = p.as_array().filter(|a| a.len() == 2);
                let pos = pair.and_then(|a| a[0].as_u64());
                match (pair, pos) {
                    (Some(a), Some(pos)) => {
                        let tok = a[1].as_u64().filter(|&n| (n as usize) < n_vocab).map(|n| n as u32);
                        if tok.is_none() && !a[1].is_null() {
                            return Err(err(format!("forced_decoder_ids entry {p} is not [pos, token]")));
                        }
                        g.forced_decoder_ids.push((pos as usize, tok));
                    }
                    _ => return Err(err(format!("forced_decoder_ids entry {p} is not [pos, token]"))),
                }
            }
        }
        if let Some(Value::Object(m)) = obj.get("lang_to_id") {
            for (k, v) in m {
                if let Some(n) = v.as_u64().filter(|&n| (n as usize) < n_vocab) {
                    g.lang_to_id.push((k.clone(), n as u32));
                }
            }
            g.lang_to_id.sort_by_key(|(_, id)| *id);
        }
        if let Some(Value::Object(m)) = obj.get("task_to_id") {
            g.translate = m.get("translate").and_then(Value::as_u64).map(|n| n as u32);
            g.transcribe = m.get("transcribe").and_then(Value::as_u64).map(|n| n as u32);
        }
        g.fill_whisper_specials(n_vocab);
        Ok(g)
    }

    /// Whisper's special tokens sit at fixed offsets from the end of the text vocabulary:
    /// eot, sot, languages, translate, transcribe, startoflm, startofprev, nospeech,
    /// notimestamps, then 1501 timestamps. Fills what the file left out.
    pub fn fill_whisper_specials(&mut self, n_vocab: usize) {
        let multilingual = n_vocab >= 51865;
        let eot = if multilingual { 50257 } else { 50256 };
        if n_vocab < 51864 {
            return; // not a Whisper vocabulary
        }
        let n_langs = n_vocab as u32 - (eot + 2) - 1507;
        let first_lang = eot + 2;
        let translate = first_lang + n_langs;
        self.eot.get_or_insert(eot);
        self.sot.get_or_insert(eot + 1);
        self.translate.get_or_insert(translate);
        self.transcribe.get_or_insert(translate + 1);
        self.start_of_prev.get_or_insert(translate + 3);
        self.no_speech.get_or_insert(translate + 4);
        self.no_timestamps.get_or_insert(translate + 5);
        self.timestamp_begin.get_or_insert(translate + 6);
        self.is_multilingual |= multilingual;
    }
}
