//! Writing a converted CT2 model as a Hugging Face Whisper directory.
use super::cache::{check_model_dir, Staging};
use crate::config::GenerationConfig;
use crate::tensor::{HostTensor, TensorData};
use crate::weights::ct2::{read_ct2, Ct2Model};
use crate::{Error, Result};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::path::Path;

/// Writes `model.safetensors` (tensors in their stored type), `config.json`,
/// `generation_config.json`, `preprocessor_config.json` and `tokenizer.json` into `dir`.
pub fn write_hf_model(model: &Ct2Model, tokenizer_json: &str, dir: &Path) -> Result<()> {
    let weights = dir.join("model.safetensors");
    let metadata = [("format".to_string(), "pt".to_string())].into_iter().collect();
    let views = model.tensors.iter().map(|(name, t)| (name.as_str(), View(t)));
    safetensors::serialize_to_file(views, Some(metadata), &weights)
        .map_err(|e| Error::ModelFile { path: weights.clone(), msg: format!("writing: {e}") })?;
    let config = dir.join("config.json");
    write_json(&config, &config_json(model))?;
    // safetensors writes through a private temp file (mode 0600 on Unix): give the weights the
    // permissions every other file of the model gets.
    let perms = std::fs::metadata(&config).map_err(|e| Error::io(&config, e))?.permissions();
    std::fs::set_permissions(&weights, perms).map_err(|e| Error::io(&weights, e))?;
    write_json(&dir.join("generation_config.json"), &generation_json(model))?;
    write_json(&dir.join("preprocessor_config.json"), &preprocessor_json(model.dims.n_mels))?;
    let tok = dir.join("tokenizer.json");
    std::fs::write(&tok, tokenizer_json).map_err(|e| Error::io(&tok, e))
}

/// Converts a CTranslate2 Whisper model (`model.bin` with `config.json` and `tokenizer.json` beside
/// it, as faster-whisper downloads them) into a Hugging Face directory `out_dir`, which must not
/// exist yet; it appears complete or not at all.
pub fn convert_ct2(model_bin: &Path, out_dir: &Path) -> Result<()> {
    if out_dir.exists() {
        return Err(Error::InvalidArgument(format!("{} already exists", out_dir.display())));
    }
    let tok_path = model_bin.with_file_name("tokenizer.json");
    let tokenizer = std::fs::read_to_string(&tok_path).map_err(|e| Error::io(&tok_path, e))?;
    let model = read_ct2(model_bin)?;
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = out_dir.file_name().map_or("model".into(), |n| n.to_string_lossy().into_owned());
    let staging = Staging::new(parent, &name)?;
    write_hf_model(&model, &tokenizer, staging.path())?;
    check_model_dir(staging.path())?;
    staging.commit(out_dir)
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let mut text =
        serde_json::to_string_pretty(v).map_err(|e| Error::Config { path: path.into(), msg: e.to_string() })?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// A host tensor as safetensors sees it (little-endian bytes).
struct View<'a>(&'a HostTensor);

impl safetensors::View for View<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        match self.0.data {
            TensorData::F32(_) => safetensors::Dtype::F32,
            TensorData::F16(_) => safetensors::Dtype::F16,
        }
    }
    fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        let bytes: &[u8] = match &self.0.data {
            TensorData::F32(v) => bytemuck::cast_slice(v),
            TensorData::F16(v) => bytemuck::cast_slice(v),
        };
        if cfg!(target_endian = "little") {
            return Cow::Borrowed(bytes);
        }
        let size = match self.0.data {
            TensorData::F32(_) => 4,
            TensorData::F16(_) => 2,
        };
        let mut owned = bytes.to_vec();
        owned.chunks_exact_mut(size).for_each(<[u8]>::reverse);
        Cow::Owned(owned)
    }
    fn data_len(&self) -> usize {
        match &self.0.data {
            TensorData::F32(v) => v.len() * 4,
            TensorData::F16(v) => v.len() * 2,
        }
    }
}

fn opt(v: Option<u32>) -> Value {
    v.map_or(Value::Null, Value::from)
}

/// `config.json` in transformers' spelling, as the OpenAI checkpoints on the hub have it.
fn config_json(model: &Ct2Model) -> Value {
    let (d, g) = (&model.dims, &model.generation);
    let dtype = match model.tensor("model.decoder.embed_tokens.weight").map(HostTensor::dtype) {
        Some(crate::tensor::DType::F16) => "float16",
        _ => "float32",
    };
    // The legacy config-level forced ids name every slot (language = first language token).
    let forced = if g.is_multilingual {
        json!([[1, opt(g.sot.map(|s| s + 1))], [2, opt(g.transcribe)], [3, opt(g.no_timestamps)]])
    } else {
        forced_json(g)
    };
    let mut v = json!({
        "_name_or_path": "converted-from-ctranslate2",
        "activation_dropout": 0.0,
        "activation_function": "gelu",
        "apply_spec_augment": false,
        "architectures": ["WhisperForConditionalGeneration"],
        "attention_dropout": 0.0,
        "begin_suppress_tokens": g.begin_suppress_tokens,
        "bos_token_id": opt(g.sot),
        "classifier_proj_size": 256,
        "d_model": d.n_audio_state,
        "decoder_attention_heads": d.n_text_head,
        "decoder_ffn_dim": d.n_text_mlp,
        "decoder_layerdrop": 0.0,
        "decoder_layers": d.n_text_layer,
        "decoder_start_token_id": opt(g.sot),
        "dropout": 0.0,
        "encoder_attention_heads": d.n_audio_head,
        "encoder_ffn_dim": d.n_audio_mlp,
        "encoder_layerdrop": 0.0,
        "encoder_layers": d.n_audio_layer,
        "eos_token_id": opt(g.eot),
        "forced_decoder_ids": forced,
        "init_std": 0.02,
        "is_encoder_decoder": true,
        "max_length": d.n_text_ctx,
        "max_source_positions": d.n_audio_ctx,
        "max_target_positions": d.n_text_ctx,
        "median_filter_width": 7,
        "model_type": "whisper",
        "num_hidden_layers": d.n_audio_layer,
        "num_mel_bins": d.n_mels,
        "pad_token_id": opt(g.eot),
        "scale_embedding": false,
        "torch_dtype": dtype,
        "use_cache": true,
        "use_weighted_layer_sum": false,
        "vocab_size": d.n_vocab,
    });
    if !g.suppress_tokens.is_empty() {
        v["suppress_tokens"] = json!(g.suppress_tokens);
    }
    v
}

fn forced_json(g: &GenerationConfig) -> Value {
    Value::Array(g.forced_decoder_ids.iter().map(|&(pos, tok)| json!([pos, opt(tok)])).collect())
}

/// `generation_config.json` with every field [`GenerationConfig::from_json`] reads.
fn generation_json(model: &Ct2Model) -> Value {
    let g = &model.generation;
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            m.insert(k.to_string(), v);
        }
    };
    put("begin_suppress_tokens", json!(g.begin_suppress_tokens));
    put("bos_token_id", opt(g.sot));
    put("decoder_start_token_id", opt(g.sot));
    put("eos_token_id", opt(g.eot));
    put("forced_decoder_ids", forced_json(g));
    put("is_multilingual", json!(g.is_multilingual));
    put("max_initial_timestamp_index", opt(g.max_initial_timestamp_index));
    put("max_length", g.max_length.map_or(Value::Null, Value::from));
    put("no_timestamps_token_id", opt(g.no_timestamps));
    put("pad_token_id", opt(g.eot));
    put("prev_sot_token_id", opt(g.start_of_prev));
    put("return_timestamps", json!(false));
    if !g.suppress_tokens.is_empty() {
        put("suppress_tokens", json!(g.suppress_tokens));
    }
    if !model.alignment_heads.is_empty() {
        put("alignment_heads", json!(model.alignment_heads.iter().map(|&(l, h)| [l, h]).collect::<Vec<_>>()));
    }
    if !g.lang_to_id.is_empty() {
        let langs: Map<String, Value> = g.lang_to_id.iter().map(|(k, id)| (k.clone(), json!(id))).collect();
        put("lang_to_id", Value::Object(langs));
    }
    if g.is_multilingual {
        put("task_to_id", json!({ "translate": opt(g.translate), "transcribe": opt(g.transcribe) }));
    }
    Value::Object(m)
}

/// The feature extractor of every Whisper checkpoint (16 kHz, 25 ms windows, 10 ms hop, 30 s).
fn preprocessor_json(n_mels: usize) -> Value {
    json!({
        "chunk_length": 30,
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": n_mels,
        "hop_length": 160,
        "n_fft": 400,
        "n_samples": 480000,
        "nb_max_frames": 3000,
        "padding_side": "right",
        "padding_value": 0.0,
        "processor_class": "WhisperProcessor",
        "return_attention_mask": false,
        "sampling_rate": 16000
    })
}
