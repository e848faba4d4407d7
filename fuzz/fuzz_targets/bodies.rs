//! What each fuzz target does with its input, shared with the regression test
//! (`tests/fuzz_regressions.rs`) so that a kept crashing input replays exactly.
//! Every call must return (an error is fine); a panic or an abort is the bug.
#![allow(dead_code)]
use std::path::Path;
use whisper_wgpu::audio::{decode_wav_with, WavOptions, WavStream};
use whisper_wgpu::config::{GenerationConfig, ModelDims};
use whisper_wgpu::weights::ct2::{parse_model_bin, read_ct2_bytes, Ct2Sidecar};
use whisper_wgpu::weights::safetensors::SafetensorsFile;
use whisper_wgpu::weights::{ModelWeights, TensorSource};

/// The WAV reader, whole-file and streamed.
pub fn wav(data: &[u8]) {
    // A minute at most, so a header claiming hours is refused rather than read slowly.
    for allow_truncated in [false, true] {
        let _ = decode_wav_with(data, &WavOptions { max_seconds: 60.0, allow_truncated });
    }
    // Streamed in small chunks, bounded by the data that is there.
    if let Ok(stream) = WavStream::new(data) {
        let mut stream = stream.with_chunk_frames(977).allow_truncated(true);
        let mut out = Vec::new();
        for _ in 0..1000 {
            match stream.read_chunk(&mut out) {
                Ok(0) | Err(_) => break,
                Ok(_) => out.clear(),
            }
        }
    }
}

/// The checkpoint loader: `config.json`, a NUL byte, then `model.safetensors`.
pub fn safetensors(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (config, weights) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let config = String::from_utf8_lossy(config);
    let dims = ModelDims::from_json(Path::new("config.json"), &config);
    if let Ok((dims, _)) = &dims {
        let _ = GenerationConfig::from_json(Path::new("generation_config.json"), &config, dims.n_vocab);
    }
    let Ok(file) = SafetensorsFile::from_bytes(Path::new("model.safetensors"), weights.to_vec()) else { return };
    for name in file.names() {
        let _ = file.get(&name);
    }
    if let Ok((dims, naming)) = dims {
        let _ = ModelWeights::load(&file, &dims, naming);
    }
}

/// The CTranslate2 `model.bin` container, then its conversion to Hugging Face names.
pub fn ct2(data: &[u8]) {
    let _ = parse_model_bin(data, data.len() as u64, Path::new("model.bin"));
    let side = Ct2Sidecar { config_json: Some("{}"), tokenizer_json: None };
    let _ = read_ct2_bytes(data, &side);
}
