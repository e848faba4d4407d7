//! Random-weight Whisper checkpoints in the Hugging Face layout (`config.json`,
//! `generation_config.json`, `model.safetensors` with `model.encoder.layers.N...` names), written
//! into a temporary directory: any size can be tested without a download.
#![allow(dead_code)]
use super::Rng;
use half::f16;
use safetensors::tensor::{Dtype, TensorView};
use std::path::{Path, PathBuf};

/// The dimensions of a Whisper checkpoint in Hugging Face's spelling.
#[derive(Clone, Copy, Debug)]
pub struct HfDims {
    pub d_model: usize,
    pub heads: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub ffn: usize,
    pub n_mels: usize,
    pub n_audio_ctx: usize,
    pub n_text_ctx: usize,
    pub vocab: usize,
}

impl HfDims {
    /// A published Whisper size: widths, heads and layers as in its `config.json`.
    pub fn whisper(
        d_model: usize,
        heads: usize,
        encoder_layers: usize,
        decoder_layers: usize,
        n_mels: usize,
        vocab: usize,
    ) -> HfDims {
        HfDims {
            d_model,
            heads,
            encoder_layers,
            decoder_layers,
            ffn: 4 * d_model,
            n_mels,
            n_audio_ctx: 1500,
            n_text_ctx: 448,
            vocab,
        }
    }

    pub fn config_json(&self) -> String {
        serde_json::json!({
            "architectures": ["WhisperForConditionalGeneration"],
            "model_type": "whisper",
            "d_model": self.d_model,
            "encoder_attention_heads": self.heads,
            "decoder_attention_heads": self.heads,
            "encoder_layers": self.encoder_layers,
            "decoder_layers": self.decoder_layers,
            "encoder_ffn_dim": self.ffn,
            "decoder_ffn_dim": self.ffn,
            "num_mel_bins": self.n_mels,
            "max_source_positions": self.n_audio_ctx,
            "max_target_positions": self.n_text_ctx,
            "vocab_size": self.vocab,
        })
        .to_string()
    }

    /// Whisper's special tokens for its vocabularies (51864: English-only, 51865: multilingual,
    /// 51866: large-v3's extra language); for other vocabularies the last token ends the text.
    pub fn generation_json(&self) -> String {
        if self.vocab < 51864 {
            let eot = self.vocab as u64 - 1;
            return serde_json::json!({ "eos_token_id": eot, "decoder_start_token_id": eot - 1 }).to_string();
        }
        let multilingual = self.vocab >= 51865;
        let eot: u64 = if multilingual { 50257 } else { 50256 };
        let mut g = serde_json::json!({
            "eos_token_id": eot,
            "decoder_start_token_id": eot + 1,
            "suppress_tokens": [1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63],
            "begin_suppress_tokens": [220, eot],
            "is_multilingual": multilingual,
            "max_initial_timestamp_index": 50,
        });
        if multilingual {
            g["lang_to_id"] = serde_json::json!({ "<|en|>": eot + 2, "<|de|>": eot + 4 });
        }
        g.to_string()
    }

    /// Every tensor name and shape, as transformers' `WhisperForConditionalGeneration` saves them.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let (d, f) = (self.d_model, self.ffn);
        let mut t: Vec<(String, Vec<usize>)> = Vec::new();
        let mut add = |name: String, shape: Vec<usize>| t.push((name, shape));
        let linear = |add: &mut dyn FnMut(String, Vec<usize>), p: String, out: usize, inp: usize, bias: bool| {
            add(format!("{p}.weight"), vec![out, inp]);
            if bias {
                add(format!("{p}.bias"), vec![out]);
            }
        };
        let norm = |add: &mut dyn FnMut(String, Vec<usize>), p: String| {
            add(format!("{p}.weight"), vec![d]);
            add(format!("{p}.bias"), vec![d]);
        };
        let attention = |add: &mut dyn FnMut(String, Vec<usize>), p: String| {
            linear(add, format!("{p}.q_proj"), d, d, true);
            linear(add, format!("{p}.k_proj"), d, d, false);
            linear(add, format!("{p}.v_proj"), d, d, true);
            linear(add, format!("{p}.out_proj"), d, d, true);
        };
        add("model.encoder.conv1.weight".into(), vec![d, self.n_mels, 3]);
        add("model.encoder.conv1.bias".into(), vec![d]);
        add("model.encoder.conv2.weight".into(), vec![d, d, 3]);
        add("model.encoder.conv2.bias".into(), vec![d]);
        add("model.encoder.embed_positions.weight".into(), vec![self.n_audio_ctx, d]);
        for i in 0..self.encoder_layers {
            let p = format!("model.encoder.layers.{i}");
            attention(&mut add, format!("{p}.self_attn"));
            norm(&mut add, format!("{p}.self_attn_layer_norm"));
            linear(&mut add, format!("{p}.fc1"), f, d, true);
            linear(&mut add, format!("{p}.fc2"), d, f, true);
            norm(&mut add, format!("{p}.final_layer_norm"));
        }
        norm(&mut add, "model.encoder.layer_norm".into());
        add("model.decoder.embed_tokens.weight".into(), vec![self.vocab, d]);
        add("model.decoder.embed_positions.weight".into(), vec![self.n_text_ctx, d]);
        for i in 0..self.decoder_layers {
            let p = format!("model.decoder.layers.{i}");
            attention(&mut add, format!("{p}.self_attn"));
            norm(&mut add, format!("{p}.self_attn_layer_norm"));
            attention(&mut add, format!("{p}.encoder_attn"));
            norm(&mut add, format!("{p}.encoder_attn_layer_norm"));
            linear(&mut add, format!("{p}.fc1"), f, d, true);
            linear(&mut add, format!("{p}.fc2"), d, f, true);
            norm(&mut add, format!("{p}.final_layer_norm"));
        }
        norm(&mut add, "model.decoder.layer_norm".into());
        t
    }

    /// Parameters of the checkpoint.
    pub fn params(&self) -> usize {
        self.tensors().iter().map(|(_, s)| s.iter().product::<usize>()).sum()
    }
}

/// Random values for one tensor: weights uniform with scale 1/sqrt(fan-in) (activations keep
/// their size through the layers), layer norms near (1, 0), biases and embeddings small.
fn values(name: &str, shape: &[usize], rng: &mut Rng) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let scale = if name.ends_with("layer_norm.weight") {
        return (0..n).map(|_| 1.0 + 0.1 * rng.uniform()).collect();
    } else if name.ends_with(".bias") || name.contains("embed") {
        0.05
    } else {
        let fan_in: usize = shape[1..].iter().product();
        1.0 / (fan_in as f32).sqrt()
    };
    rng.vec(n, scale)
}

/// A model directory in the temporary folder, removed on drop.
pub struct HfModel {
    pub dir: PathBuf,
    pub dims: HfDims,
}

impl HfModel {
    /// Writes a random checkpoint with `dims`, tensors stored as `dtype` (F16 or F32).
    pub fn write(case: &str, dims: HfDims, dtype: Dtype, seed: u64) -> HfModel {
        let dir = std::env::temp_dir().join(format!("whisper-wgpu-hf-{}-{case}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), dims.config_json()).unwrap();
        std::fs::write(dir.join("generation_config.json"), dims.generation_json()).unwrap();
        let mut rng = Rng::new(seed);
        let layout = dims.tensors();
        let bytes: Vec<Vec<u8>> = layout
            .iter()
            .map(|(name, shape)| {
                let v = values(name, shape, &mut rng);
                match dtype {
                    Dtype::F16 => v.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect(),
                    Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    other => panic!("random checkpoints are F16 or F32, not {other:?}"),
                }
            })
            .collect();
        let views = layout
            .iter()
            .zip(&bytes)
            .map(|((name, shape), b)| (name.clone(), TensorView::new(dtype, shape.clone(), b).unwrap()));
        safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
        HfModel { dir, dims }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for HfModel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
