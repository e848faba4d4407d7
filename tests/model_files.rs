//! Bad model files give typed errors that name what is wrong, never a panic.
//!
//! Each case is a small synthetic checkpoint in a temporary directory: the tensor names of
//! `amt-random` (seed-style naming) with every dimension scaled down, written with the
//! `safetensors` crate, then broken one way.
mod common;
use common::*;
use safetensors::tensor::{Dtype, TensorView};
use std::io::Read;
use std::path::{Path, PathBuf};
use whisper_wgpu::checkpoint::Checkpoint;
use whisper_wgpu::Error;

/// The dims of the small checkpoint, in the seed-style config spelling.
const CONFIG: &str = r#"{
  "n_mels": 4, "n_audio_ctx": 4, "n_audio_state": 32, "n_audio_head": 8, "n_audio_layer": 2,
  "n_text_ctx": 8, "n_text_state": 32, "n_text_head": 8, "n_text_layer": 2, "n_vocab": 16
}"#;

/// amt-random's dimension -> the small checkpoint's.
fn shrink(d: usize) -> usize {
    match d {
        512 => 32,   // state
        2048 => 128, // mlp
        256 => 4,    // mels
        1500 => 4,   // audio ctx
        4096 => 8,   // text ctx
        1024 => 16,  // vocab
        other => other,
    }
}

/// Tensor names and shapes of amt-random, read from its safetensors header only.
fn amt_layout() -> Vec<(String, Vec<usize>)> {
    let mut f = std::fs::File::open(shared("models/amt-random/model.safetensors")).unwrap();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).unwrap();
    let mut header = vec![0u8; u64::from_le_bytes(len) as usize];
    f.read_exact(&mut header).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&header).unwrap();
    let mut out: Vec<(String, Vec<usize>)> = v
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, t)| {
            let shape = t["shape"].as_array().unwrap().iter().map(|d| shrink(d.as_u64().unwrap() as usize)).collect();
            (k.clone(), shape)
        })
        .collect();
    out.sort();
    out
}

/// One tensor to write: name, dtype, shape, little-endian bytes.
struct T {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn f32_tensor(name: &str, shape: Vec<usize>) -> T {
    let n: usize = shape.iter().product();
    let bytes = (0..n).flat_map(|i| (((i % 17) as f32 - 8.0) * 0.01).to_le_bytes()).collect();
    T { name: name.into(), dtype: Dtype::F32, shape, bytes }
}

fn good_tensors() -> Vec<T> {
    amt_layout().into_iter().map(|(name, shape)| f32_tensor(&name, shape)).collect()
}

fn serialize(tensors: &[T]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|t| (t.name.clone(), TensorView::new(t.dtype, t.shape.clone(), &t.bytes).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// A temporary model directory, removed on drop.
struct ModelDir(PathBuf);

impl ModelDir {
    fn new(case: &str, config: &str, weights: &[u8]) -> ModelDir {
        let dir = std::env::temp_dir().join(format!("whisper-wgpu-model-files-{}-{case}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), config).unwrap();
        std::fs::write(dir.join("model.safetensors"), weights).unwrap();
        ModelDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ModelDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load_err(case: &str, config: &str, weights: &[u8]) -> Error {
    let dir = ModelDir::new(case, config, weights);
    match Checkpoint::load(dir.path()) {
        Ok(_) => panic!("{case}: the broken checkpoint loaded"),
        Err(e) => e,
    }
}

#[test]
fn the_small_checkpoint_loads() {
    let dir = ModelDir::new("good", CONFIG, &serialize(&good_tensors()));
    let ck = Checkpoint::load(dir.path()).unwrap();
    assert_eq!((ck.dims.n_mels, ck.dims.n_vocab, ck.dims.n_text_layer), (4, 16, 2));
    assert_eq!(ck.weights.decoder.blocks.len(), 2);
}

#[test]
fn a_missing_tensor_is_named() {
    let missing = "decoder.blocks.1.mlp.2.weight";
    let tensors: Vec<T> = good_tensors().into_iter().filter(|t| t.name != missing).collect();
    match load_err("missing", CONFIG, &serialize(&tensors)) {
        Error::Tensor { name, msg } => {
            assert_eq!(name, missing);
            assert!(msg.contains("missing"), "{msg}");
        }
        other => panic!("expected a tensor error, got {other}"),
    }
}

#[test]
fn a_misshaped_tensor_gives_both_shapes() {
    let bad = "encoder.blocks.0.attn.query.weight";
    let tensors: Vec<T> =
        good_tensors().into_iter().map(|t| if t.name == bad { f32_tensor(bad, vec![32, 31]) } else { t }).collect();
    let e = load_err("misshaped", CONFIG, &serialize(&tensors));
    let text = e.to_string();
    match e {
        Error::Tensor { name, msg } => {
            assert_eq!(name, bad);
            assert!(msg.contains("[32, 31]") && msg.contains("[32, 32]"), "{msg}");
        }
        other => panic!("expected a tensor error, got {other}"),
    }
    assert!(text.contains(bad), "{text}");
}

#[test]
fn an_unsupported_dtype_is_named() {
    let bad = "decoder.ln.weight";
    let tensors: Vec<T> =
        good_tensors().into_iter().map(|t| if t.name == bad { T { dtype: Dtype::I32, ..t } } else { t }).collect();
    match load_err("dtype", CONFIG, &serialize(&tensors)) {
        Error::Tensor { name, msg } => {
            assert_eq!(name, bad);
            assert!(msg.contains("I32"), "{msg}");
        }
        other => panic!("expected a tensor error, got {other}"),
    }
}

#[test]
fn non_finite_weights_are_named() {
    let bad = "encoder.ln_post.bias";
    for (case, value) in [("nan", f32::NAN), ("inf", f32::INFINITY), ("-inf", f32::NEG_INFINITY)] {
        let mut tensors = good_tensors();
        let t = tensors.iter_mut().find(|t| t.name == bad).expect("amt-random has ln_post");
        t.bytes[4..8].copy_from_slice(&value.to_le_bytes());
        match load_err(case, CONFIG, &serialize(&tensors)) {
            Error::Tensor { name, msg } => assert!(name == bad && msg.contains("NaN or infinite"), "{name}: {msg}"),
            other => panic!("{case}: expected a tensor error, got {other}"),
        }
    }
}

#[test]
fn truncated_or_garbage_safetensors_are_file_errors() {
    let good = serialize(&good_tensors());
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut huge_header = good.clone();
    huge_header[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut rng = Rng::new(7);
    let garbage: Vec<u8> = (0..4096).map(|_| rng.below(256) as u8).collect();
    // Headers that lie about the data: a tensor of 4 GB in a 16-byte data section, a shape whose
    // size disagrees with its offsets, a shape whose element count overflows.
    let lying = |json: &str| -> Vec<u8> {
        let mut b = (json.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(json.as_bytes());
        b.extend_from_slice(&[0u8; 16]);
        b
    };
    let name = "model.decoder.embed_tokens.weight";
    let beyond =
        lying(&format!(r#"{{"{name}":{{"dtype":"F32","shape":[1000000,1000],"data_offsets":[0,4000000000]}}}}"#));
    let disagree = lying(&format!(r#"{{"{name}":{{"dtype":"F32","shape":[4,4],"data_offsets":[0,16]}}}}"#));
    let overflow =
        lying(&format!(r#"{{"{name}":{{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,16]}}}}"#));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("beyond-the-file", beyond),
        ("shape-disagrees", disagree),
        ("shape-overflows", overflow),
        ("empty", vec![]),
        ("short", good[..5].to_vec()),
        ("cut-in-header", good[..8 + header_len / 2].to_vec()),
        ("cut-in-data", good[..good.len() - 100].to_vec()),
        ("huge-header", huge_header),
        ("garbage", garbage),
    ];
    for (case, bytes) in cases {
        match load_err(case, CONFIG, &bytes) {
            Error::ModelFile { path, msg } => {
                assert!(path.ends_with("model.safetensors"), "{case}: {}", path.display());
                assert!(msg.contains("safetensors"), "{case}: {msg}");
            }
            other => panic!("{case}: expected a model-file error, got {other}"),
        }
    }
}

#[test]
fn bad_configs_are_config_errors() {
    let weights = serialize(&good_tensors());
    let missing_field = CONFIG.replace(r#""n_text_ctx": 8, "#, "");
    let wrong_type = CONFIG.replace(r#""n_vocab": 16"#, r#""n_vocab": "16""#);
    let zero = CONFIG.replace(r#""n_audio_layer": 2"#, r#""n_audio_layer": 0"#);
    let heads = CONFIG.replace(r#""n_text_head": 8"#, r#""n_text_head": 5"#);
    let cases: [(&str, &str, &str); 6] = [
        ("not-json", "{ n_mels: 4", "not valid JSON"),
        ("not-object", "[1, 2]", "not a JSON object"),
        ("missing-field", &missing_field, "missing `n_text_ctx`"),
        ("wrong-type", &wrong_type, "`n_vocab`"),
        ("zero", &zero, "zero"),
        ("heads", &heads, "divisible"),
    ];
    for (case, config, want) in cases {
        match load_err(case, config, &weights) {
            Error::Config { path, msg } => {
                assert!(path.ends_with("config.json"), "{case}: {}", path.display());
                assert!(msg.contains(want), "{case}: {msg}");
            }
            other => panic!("{case}: expected a config error, got {other}"),
        }
    }
}

#[test]
fn missing_files_are_io_errors_naming_the_path() {
    let dir = ModelDir::new("no-weights", CONFIG, &[]);
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    match Checkpoint::load(dir.path()) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("model.safetensors"), "{}", path.display()),
        other => panic!("expected an I/O error, got {:?}", other.err()),
    }
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    match Checkpoint::load(dir.path()) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("config.json"), "{}", path.display()),
        other => panic!("expected an I/O error, got {:?}", other.err()),
    }
    let gone = dir.path().join("nonexistent");
    assert!(matches!(Checkpoint::load(&gone), Err(Error::Io { .. })));
}

#[test]
fn a_bad_generation_config_is_a_config_error() {
    let dir = ModelDir::new("generation", CONFIG, &serialize(&good_tensors()));
    std::fs::write(dir.path().join("generation_config.json"), r#"{"eos_token_id": 99999}"#).unwrap();
    match Checkpoint::load(dir.path()) {
        Err(Error::Config { path, msg }) => {
            assert!(path.ends_with("generation_config.json") && msg.contains("eos_token_id"), "{msg}")
        }
        other => panic!("expected a config error, got {:?}", other.err()),
    }
}
