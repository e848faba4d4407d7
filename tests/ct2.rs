//! The CTranslate2 reader against synthetic `model.bin` files: the Hugging Face mapping and values
//! (exact), the inferred dims and generation rules, and one error per kind of malformed input.
mod common;

use common::ct2_builder::{whisper, Bin, Dims, Raw, Rng, Store, SMALL};
use half::f16;
use whisper_wgpu::config::{GenerationConfig, ModelDims};
use whisper_wgpu::tensor::HostTensor;
use whisper_wgpu::weights::ct2::{parse_model_bin, read_ct2_bytes, Ct2Model, Ct2Sidecar};
use whisper_wgpu::Error;

fn read(bin: &Bin) -> whisper_wgpu::Result<Ct2Model> {
    read_ct2_bytes(&bin.encode(), &Ct2Sidecar::default())
}

/// The values of CT2 variable `name` (aliases followed) as the HF tensor should hold them,
/// computed here independently of the crate: f16 kept, f32 kept, bf16 widened, integers divided
/// by their `_scale`.
fn expected(bin: &Bin, name: &str) -> HostTensor {
    let mut name = name.to_string();
    while let Some((_, t)) = bin.aliases.iter().find(|(a, _)| *a == name) {
        if bin.vars.iter().any(|v| v.name == name) {
            break;
        }
        name = t.clone();
    }
    let v = bin.get(&name);
    let shape: Vec<usize> = v.dims.iter().map(|&d| d as usize).collect();
    let scale = |rows: usize| -> Vec<f32> {
        let Raw::F32(s) = &bin.get(&format!("{name}_scale")).raw else { panic!("scale type") };
        if s.len() == 1 {
            vec![s[0]; rows]
        } else {
            s.clone()
        }
    };
    let dequant = |q: Vec<f32>| {
        let rows = shape[0];
        let s = scale(rows);
        let row_len = q.len() / rows;
        q.iter().enumerate().map(|(i, x)| x / s[i / row_len]).collect::<Vec<f32>>()
    };
    match &v.raw {
        Raw::F32(x) => HostTensor::f32(shape, x.clone()),
        Raw::F16(x) => HostTensor::f16(shape, x.clone()),
        Raw::Bf16(x) => HostTensor::f32(shape, x.iter().map(|&b| f32::from_bits((b as u32) << 16)).collect()),
        Raw::I8(x) => HostTensor::f32(shape.clone(), dequant(x.iter().map(|&q| q as f32).collect())),
        Raw::I16(x) => HostTensor::f32(shape.clone(), dequant(x.iter().map(|&q| q as f32).collect())),
        Raw::I32(_) => panic!("int32"),
    }
}

/// Block `i` of `n` equal row blocks.
fn rows(t: &HostTensor, n: usize, i: usize) -> HostTensor {
    let mut shape = t.shape.clone();
    shape[0] /= n;
    let block = t.len() / n;
    match &t.data {
        whisper_wgpu::tensor::TensorData::F32(v) => HostTensor::f32(shape, v[i * block..(i + 1) * block].to_vec()),
        whisper_wgpu::tensor::TensorData::F16(v) => HostTensor::f16(shape, v[i * block..(i + 1) * block].to_vec()),
    }
}

/// The whole HF model a CT2 model should become, in the converter's order.
fn expected_model(bin: &Bin, enc_layers: usize, dec_layers: usize) -> Vec<(String, HostTensor)> {
    let mut out: Vec<(String, HostTensor)> = vec![];
    let mut put = |hf: String, t: HostTensor| out.push((hf, t));
    let e = |n: &str| expected(bin, n);
    let ln = |put: &mut dyn FnMut(String, HostTensor), hf: &str, ct2: &str| {
        put(format!("{hf}.weight"), e(&format!("{ct2}/gamma")));
        put(format!("{hf}.bias"), e(&format!("{ct2}/beta")));
    };
    let lin = |put: &mut dyn FnMut(String, HostTensor), hf: &str, ct2: &str| {
        put(format!("{hf}.weight"), e(&format!("{ct2}/weight")));
        put(format!("{hf}.bias"), e(&format!("{ct2}/bias")));
    };
    let self_attn = |put: &mut dyn FnMut(String, HostTensor), hf: &str, ct2: &str| {
        let (w, b) = (e(&format!("{ct2}/linear_0/weight")), e(&format!("{ct2}/linear_0/bias")));
        put(format!("{hf}.q_proj.weight"), rows(&w, 3, 0));
        put(format!("{hf}.q_proj.bias"), rows(&b, 3, 0));
        put(format!("{hf}.k_proj.weight"), rows(&w, 3, 1));
        put(format!("{hf}.v_proj.weight"), rows(&w, 3, 2));
        put(format!("{hf}.v_proj.bias"), rows(&b, 3, 2));
        lin(put, &format!("{hf}.out_proj"), &format!("{ct2}/linear_1"));
    };
    put("model.encoder.conv1.weight".into(), e("encoder/conv1/weight"));
    put("model.encoder.conv1.bias".into(), e("encoder/conv1/bias"));
    put("model.encoder.conv2.weight".into(), e("encoder/conv2/weight"));
    put("model.encoder.conv2.bias".into(), e("encoder/conv2/bias"));
    put("model.encoder.embed_positions.weight".into(), e("encoder/position_encodings/encodings"));
    for i in 0..enc_layers {
        let (hf, ct2) = (format!("model.encoder.layers.{i}"), format!("encoder/layer_{i}"));
        self_attn(&mut put, &format!("{hf}.self_attn"), &format!("{ct2}/self_attention"));
        ln(&mut put, &format!("{hf}.self_attn_layer_norm"), &format!("{ct2}/self_attention/layer_norm"));
        lin(&mut put, &format!("{hf}.fc1"), &format!("{ct2}/ffn/linear_0"));
        lin(&mut put, &format!("{hf}.fc2"), &format!("{ct2}/ffn/linear_1"));
        ln(&mut put, &format!("{hf}.final_layer_norm"), &format!("{ct2}/ffn/layer_norm"));
    }
    ln(&mut put, "model.encoder.layer_norm", "encoder/layer_norm");
    put("model.decoder.embed_tokens.weight".into(), e("decoder/embeddings/weight"));
    put("model.decoder.embed_positions.weight".into(), e("decoder/position_encodings/encodings"));
    for i in 0..dec_layers {
        let (hf, ct2) = (format!("model.decoder.layers.{i}"), format!("decoder/layer_{i}"));
        self_attn(&mut put, &format!("{hf}.self_attn"), &format!("{ct2}/self_attention"));
        ln(&mut put, &format!("{hf}.self_attn_layer_norm"), &format!("{ct2}/self_attention/layer_norm"));
        let x = format!("{hf}.encoder_attn");
        lin(&mut put, &format!("{x}.q_proj"), &format!("{ct2}/attention/linear_0"));
        let (w, b) = (e(&format!("{ct2}/attention/linear_1/weight")), e(&format!("{ct2}/attention/linear_1/bias")));
        put(format!("{x}.k_proj.weight"), rows(&w, 2, 0));
        put(format!("{x}.v_proj.weight"), rows(&w, 2, 1));
        put(format!("{x}.v_proj.bias"), rows(&b, 2, 1));
        lin(&mut put, &format!("{x}.out_proj"), &format!("{ct2}/attention/linear_2"));
        ln(&mut put, &format!("{hf}.encoder_attn_layer_norm"), &format!("{ct2}/attention/layer_norm"));
        lin(&mut put, &format!("{hf}.fc1"), &format!("{ct2}/ffn/linear_0"));
        lin(&mut put, &format!("{hf}.fc2"), &format!("{ct2}/ffn/linear_1"));
        ln(&mut put, &format!("{hf}.final_layer_norm"), &format!("{ct2}/ffn/layer_norm"));
    }
    ln(&mut put, "model.decoder.layer_norm", "decoder/layer_norm");
    out
}

/// Tensors equal bit for bit (NaN-safe: compares the stored bits).
fn assert_same(got: &[(String, HostTensor)], want: &[(String, HostTensor)]) {
    let sorted = |v: &[(String, HostTensor)]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let (got, want) = (sorted(got), sorted(want));
    let names = |v: &[(String, HostTensor)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want));
    for ((name, g), (_, w)) in got.iter().zip(&want) {
        assert_eq!(g.shape, w.shape, "{name}");
        assert_eq!(g.dtype(), w.dtype(), "{name}");
        let bits = |t: &HostTensor| -> Vec<u32> {
            match &t.data {
                whisper_wgpu::tensor::TensorData::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
                whisper_wgpu::tensor::TensorData::F16(v) => v.iter().map(|x| x.to_bits() as u32).collect(),
            }
        };
        assert!(bits(g) == bits(w), "{name}: values differ");
    }
}

fn small_dims(heads: usize) -> ModelDims {
    ModelDims {
        n_mels: 4,
        n_audio_ctx: 6,
        n_audio_state: 8,
        n_audio_head: heads,
        n_audio_layer: 1,
        n_audio_mlp: 16,
        n_text_ctx: 5,
        n_text_state: 8,
        n_text_head: heads,
        n_text_layer: 1,
        n_text_mlp: 16,
        n_vocab: 11,
    }
}

#[test]
fn every_storage_type_and_version_maps_exactly() {
    for version in [1, 2, 3, 4, 5, 6] {
        // Before version 4 the item size alone says the type: only f32, i16, i8 exist.
        let stores: &[Store] = if version >= 4 {
            &[Store::F32, Store::F16, Store::Bf16, Store::Int8, Store::Int16]
        } else {
            &[Store::F32]
        };
        for &store in stores {
            let bin = whisper(version, SMALL, store, 7 + version as u64);
            let model = read(&bin).unwrap_or_else(|e| panic!("v{version} {store:?}: {e}"));
            assert_same(&model.tensors, &expected_model(&bin, 1, 1));
            assert_eq!(model.dims, small_dims(2), "v{version} {store:?}");
            assert_eq!(model.binary_version, version);
            let want = match store {
                Store::F16 => whisper_wgpu::tensor::DType::F16,
                _ => whisper_wgpu::tensor::DType::F32,
            };
            assert!(model.tensors.iter().all(|(_, t)| t.dtype() == want), "v{version} {store:?}");
        }
    }
}

#[test]
fn integer_weights_divide_by_their_scale() {
    let bin = whisper(6, SMALL, Store::Int8, 3);
    let model = read(&bin).unwrap();
    let Raw::I8(q) = &bin.get("encoder/layer_0/ffn/linear_0/weight").raw else { panic!() };
    let Raw::F32(s) = &bin.get("encoder/layer_0/ffn/linear_0/weight_scale").raw else { panic!() };
    let got = model.tensor("model.encoder.layers.0.fc1.weight").unwrap().to_f32();
    // Row r of a [16, 8] weight uses scale r.
    assert_eq!(got[8 * 5 + 3], q[8 * 5 + 3] as f32 / s[5]);
}

#[test]
fn multi_layer_models_count_their_layers() {
    let dims = Dims { enc_layers: 3, dec_layers: 2, ..SMALL };
    let bin = whisper(6, dims, Store::F16, 11);
    let model = read(&bin).unwrap();
    assert_eq!((model.dims.n_audio_layer, model.dims.n_text_layer), (3, 2));
    assert_same(&model.tensors, &expected_model(&bin, 3, 2));
}

#[test]
fn heads_default_to_64_wide_without_the_scalars() {
    let dims = Dims { d: 128, heads: None, ..SMALL };
    let model = read(&whisper(6, dims, Store::F16, 5)).unwrap();
    assert_eq!((model.dims.n_audio_head, model.dims.n_text_head), (2, 2));
}

#[test]
fn aliases_may_stand_for_any_variable() {
    // CTranslate2 aliases variables with equal values; chains must be followed too.
    let mut bin = whisper(6, SMALL, Store::F16, 9);
    let gamma = bin.remove("encoder/layer_0/ffn/layer_norm/gamma");
    bin.alias("encoder/layer_0/ffn/layer_norm/gamma", "tmp/a");
    bin.alias("tmp/a", "encoder/layer_0/self_attention/layer_norm/gamma");
    let model = read(&bin).unwrap();
    assert_same(&model.tensors, &expected_model(&bin, 1, 1));
    assert_ne!(
        model.tensor("model.encoder.layers.0.final_layer_norm.weight").unwrap().data,
        HostTensor::f16(
            vec![8],
            match gamma.raw {
                Raw::F16(v) => v,
                _ => unreachable!(),
            }
        )
        .data
    );
}

#[test]
fn the_output_projection_must_be_tied() {
    // A stored copy equal to the embedding is dropped like an alias.
    let mut bin = whisper(6, SMALL, Store::F16, 13);
    bin.aliases.clear();
    let emb = bin.get("decoder/embeddings/weight").clone();
    bin.add("decoder/projection/weight", &emb.dims, emb.raw.clone());
    bin.add("decoder/projection/bias", &[11], Raw::F32(vec![0.0; 11]));
    let model = read(&bin).unwrap();
    assert!(model.tensor("proj_out.weight").is_none());
    assert_same(&model.tensors, &expected_model(&bin, 1, 1));

    let Raw::F16(v) = &mut bin.get_mut("decoder/projection/weight").raw else { panic!() };
    v[3] = f16::from_f32(9.0);
    assert!(
        matches!(read(&bin), Err(Error::Tensor { name, msg }) if name == "decoder/projection/weight" && msg.contains("untied"))
    );

    let mut bin = whisper(6, SMALL, Store::F16, 13);
    bin.add("decoder/projection/bias", &[11], Raw::F32((0..11).map(|i| i as f32).collect()));
    assert!(matches!(read(&bin), Err(Error::Tensor { name, .. }) if name == "decoder/projection/bias"));
}

#[test]
fn key_biases_are_dropped() {
    let model = read(&whisper(6, SMALL, Store::F32, 1)).unwrap();
    assert!(model.tensor("model.encoder.layers.0.self_attn.k_proj.bias").is_none());
    assert!(model.tensor("model.decoder.layers.0.encoder_attn.k_proj.bias").is_none());
    assert_eq!(model.tensor("model.decoder.layers.0.encoder_attn.v_proj.weight").unwrap().shape, vec![8, 8]);
}

// ---- generation config

fn whisper_vocab(vocab: u32) -> Bin {
    whisper(6, Dims { vocab, ..SMALL }, Store::F16, 17)
}

#[test]
fn english_generation_config_follows_the_vocabulary() {
    let bin = whisper_vocab(51864).encode();
    let config = r#"{"suppress_ids": [1, 2, 50362], "alignment_heads": [[0, 1]], "lang_ids": []}"#;
    let side = Ct2Sidecar { config_json: Some(config), tokenizer_json: None };
    let m = read_ct2_bytes(&bin, &side).unwrap();
    let g = &m.generation;
    assert_eq!((g.eot, g.sot, g.no_timestamps, g.start_of_prev), (Some(50256), Some(50257), Some(50362), Some(50360)));
    assert_eq!(g.suppress_tokens, vec![1, 2, 50362]);
    assert_eq!(g.begin_suppress_tokens, vec![220, 50256]);
    assert_eq!(g.forced_decoder_ids, vec![(1, Some(50362))]);
    assert!(!g.is_multilingual && g.lang_to_id.is_empty());
    assert_eq!((g.max_initial_timestamp_index, g.max_length), (Some(50), Some(5)));
    assert_eq!(m.alignment_heads, vec![(0, 1)]);
}

#[test]
fn multilingual_generation_config_names_the_languages() {
    let bin = whisper_vocab(51865).encode();
    let tokenizer = r#"{"added_tokens": [
        {"id": 50257, "content": "<|endoftext|>"}, {"id": 50258, "content": "<|startoftranscript|>"},
        {"id": 50260, "content": "<|zh|>"}, {"id": 50259, "content": "<|en|>"},
        {"id": 50358, "content": "<|translate|>"}]}"#;
    let side = Ct2Sidecar { config_json: Some(r#"{"suppress_ids_begin": [220]}"#), tokenizer_json: Some(tokenizer) };
    let g = read_ct2_bytes(&bin, &side).unwrap().generation;
    assert!(g.is_multilingual);
    assert_eq!((g.eot, g.sot, g.translate, g.transcribe), (Some(50257), Some(50258), Some(50358), Some(50359)));
    assert_eq!(g.lang_to_id, vec![("<|en|>".to_string(), 50259), ("<|zh|>".to_string(), 50260)]);
    assert_eq!(g.forced_decoder_ids, vec![(1, None), (2, Some(50359))]);
    assert_eq!(g.begin_suppress_tokens, vec![220]);
    assert!(g.suppress_tokens.is_empty());
}

#[test]
fn a_non_whisper_vocabulary_has_no_special_tokens() {
    let g = read(&whisper(6, SMALL, Store::F32, 2)).unwrap().generation;
    assert_eq!(g, GenerationConfig { max_length: Some(5), ..Default::default() });
}

#[test]
fn bad_ct2_config_is_a_config_error() {
    let bin = whisper_vocab(51864).encode();
    for config in
        ["{", "[]", r#"{"suppress_ids": [99999999]}"#, r#"{"suppress_ids": 3}"#, r#"{"alignment_heads": [[7, 0]]}"#]
    {
        let side = Ct2Sidecar { config_json: Some(config), tokenizer_json: None };
        assert!(matches!(read_ct2_bytes(&bin, &side), Err(Error::Config { .. })), "{config}");
    }
}

// ---- malformed files: each must be a typed error, never a panic

fn is_file_error(r: &whisper_wgpu::Result<Ct2Model>, needle: &str) -> bool {
    matches!(r, Err(Error::ModelFile { msg, .. }) if msg.contains(needle))
}

fn header(version: u32, n_vars: u32) -> Vec<u8> {
    let mut b = version.to_le_bytes().to_vec();
    common::ct2_builder::put_str(&mut b, b"WhisperSpec");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&n_vars.to_le_bytes());
    b
}

/// One variable record with free-form fields.
fn record(name: &[u8], dims: &[u32], dtype: u8, n_bytes: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![];
    common::ct2_builder::put_str(&mut b, name);
    b.push(dims.len() as u8);
    dims.iter().for_each(|d| b.extend_from_slice(&d.to_le_bytes()));
    b.push(dtype);
    b.extend_from_slice(&n_bytes.to_le_bytes());
    b.extend_from_slice(payload);
    b
}

fn raw(bytes: &[u8]) -> whisper_wgpu::Result<Ct2Model> {
    read_ct2_bytes(bytes, &Ct2Sidecar::default())
}

#[test]
fn unsupported_versions() {
    assert!(is_file_error(&raw(&[]), "truncated"));
    for v in [0u32, 7, u32::MAX] {
        assert!(is_file_error(&raw(&v.to_le_bytes()), "version"), "{v}");
    }
}

#[test]
fn sizes_beyond_the_file_are_refused_before_allocating() {
    // 1 GiB declared, 4 bytes present: must fail on the size, not try to allocate.
    let mut b = header(6, 1);
    b.extend(record(b"x", &[1 << 30], 1, 1 << 30, &[0; 4]));
    assert!(is_file_error(&raw(&b), "truncated"));
    // A string longer than the rest of the file.
    let mut b = header(6, 1);
    b.extend_from_slice(&60000u16.to_le_bytes());
    b.extend_from_slice(b"abc");
    assert!(is_file_error(&raw(&b), "truncated"));
}

#[test]
fn dims_product_overflow() {
    let mut b = header(6, 1);
    b.extend(record(b"x", &[u32::MAX, u32::MAX, u32::MAX], 0, 4, &[0; 4]));
    assert!(is_file_error(&raw(&b), "overflows"));
}

#[test]
fn payload_size_must_match_dims() {
    let mut b = header(6, 1);
    b.extend(record(b"x", &[3], 0, 8, &[0; 8]));
    assert!(is_file_error(&raw(&b), "do not match shape"));
    // Version 3: element count times item size, and only sizes 1, 2, 4.
    let mut b = 3u32.to_le_bytes().to_vec();
    common::ct2_builder::put_str(&mut b, b"WhisperSpec");
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend(record(b"x", &[2], 3, 2, &[0; 6]));
    assert!(is_file_error(&raw(&b), "item size 3"));
}

#[test]
fn unknown_dtype() {
    let mut b = header(6, 1);
    b.extend(record(b"x", &[1], 9, 4, &[0; 4]));
    assert!(is_file_error(&raw(&b), "unknown dtype id 9"));
}

#[test]
fn names_must_be_utf8() {
    let mut b = header(6, 1);
    b.extend(record(&[b'a', 0xff, 0xfe], &[1], 0, 4, &[0; 4]));
    assert!(is_file_error(&raw(&b), "not UTF-8"));
}

#[test]
fn duplicate_variables_and_aliases() {
    let mut bin = whisper(6, SMALL, Store::F32, 1);
    let v = bin.get("encoder/conv1/bias").clone();
    bin.add("encoder/conv1/bias", &v.dims, v.raw);
    assert!(is_file_error(&read(&bin), "stored twice"));
    let mut bin = whisper(6, SMALL, Store::F32, 1);
    bin.alias("decoder/projection/weight", "decoder/embeddings/weight");
    assert!(is_file_error(&read(&bin), "defined twice"));
}

#[test]
fn alias_cycles() {
    let mut bin = whisper(6, SMALL, Store::F32, 1);
    bin.alias("a", "b");
    bin.alias("b", "c");
    bin.alias("c", "a");
    assert!(is_file_error(&read(&bin), "alias cycle"));
}

#[test]
fn trailing_bytes() {
    let mut b = whisper(6, SMALL, Store::F32, 1).encode();
    b.push(0);
    assert!(is_file_error(&raw(&b), "trailing"));
}

#[test]
fn missing_variables() {
    for name in [
        "encoder/conv2/bias",
        "decoder/embeddings/weight",
        "decoder/layer_0/attention/linear_1/bias",
        "encoder/layer_norm/beta",
    ] {
        let mut bin = whisper(6, SMALL, Store::F32, 1);
        bin.remove(name);
        assert!(is_file_error(&read(&bin), &format!("missing variable `{name}`")), "{name}");
    }
    // A model without layers names a variable of the first one.
    let mut bin = whisper(6, SMALL, Store::F32, 1);
    bin.vars.retain(|v| !v.name.starts_with("decoder/layer_"));
    assert!(is_file_error(&read(&bin), "missing variable `decoder/layer_0/"));
}

/// Gives variable `name` a new shape (and zero f32 values to fill it).
fn reshape(bin: &mut Bin, name: &str, dims: &[u32]) {
    let v = bin.get_mut(name);
    v.dims = dims.to_vec();
    v.raw = Raw::F32(vec![0.0; dims.iter().product::<u32>() as usize]);
}

#[test]
fn shapes_must_agree() {
    let cases: &[(&str, &[u32])] = &[
        ("encoder/layer_0/ffn/linear_0/weight", &[8, 16]), // transposed
        ("decoder/layer_0/self_attention/linear_0/weight", &[16, 8]), // not 3 * d rows
        ("decoder/layer_0/attention/linear_1/bias", &[8]), // not 2 * d
        ("encoder/layer_norm/gamma", &[2, 4]),             // rank
        ("decoder/position_encodings/encodings", &[5, 4]), // width
    ];
    for &(name, dims) in cases {
        let mut bin = whisper(6, SMALL, Store::F32, 1);
        reshape(&mut bin, name, dims);
        assert!(matches!(read(&bin), Err(Error::Tensor { name: n, .. }) if n == name), "{name} {dims:?}");
    }
    // The embedding must be a matrix.
    let mut bin = whisper(6, SMALL, Store::F32, 1);
    reshape(&mut bin, "decoder/embeddings/weight", &[88]);
    assert!(matches!(read(&bin), Err(Error::Tensor { name, .. }) if name == "decoder/embeddings/weight"));
}

#[test]
fn inconsistent_dims_are_refused() {
    // Encoder and decoder widths differ (the dims check, after inference).
    let mut bin = whisper(6, SMALL, Store::F32, 1);
    reshape(&mut bin, "encoder/conv1/weight", &[16, 4, 3]);
    assert!(is_file_error(&read(&bin), "n_audio_state 16 != n_text_state 8"));
    // Heads that do not divide the width.
    let mut bin = whisper(6, SMALL, Store::F32, 1);
    bin.get_mut("decoder/num_heads").raw = Raw::I16(vec![3]);
    assert!(is_file_error(&read(&bin), "not divisible"));
    let mut bin = whisper(6, SMALL, Store::F32, 1);
    bin.get_mut("decoder/num_heads").raw = Raw::I16(vec![0]);
    assert!(matches!(read(&bin), Err(Error::Tensor { name, .. }) if name == "decoder/num_heads"));
}

#[test]
fn not_a_whisper_spec() {
    let mut bin = whisper(6, SMALL, Store::F32, 1);
    bin.spec = "TransformerSpec".into();
    assert!(is_file_error(&read(&bin), "not a Whisper model"));
}

#[test]
fn integer_weights_need_a_usable_scale() {
    let name = "encoder/layer_0/ffn/linear_1/weight";
    let mut bin = whisper(6, SMALL, Store::Int8, 1);
    bin.remove(&format!("{name}_scale"));
    assert!(matches!(read(&bin), Err(Error::Tensor { name: n, msg }) if n == name && msg.contains("_scale")));
    let mut bin = whisper(6, SMALL, Store::Int8, 1);
    let s = bin.get_mut(&format!("{name}_scale"));
    s.raw = Raw::F32(vec![1.0; 3]);
    s.dims = vec![3];
    assert!(matches!(read(&bin), Err(Error::Tensor { name: n, .. }) if n == format!("{name}_scale")));
    let mut bin = whisper(6, SMALL, Store::F32, 1);
    bin.get_mut(name).raw = Raw::I32(vec![1; 8 * 16]);
    assert!(matches!(read(&bin), Err(Error::Tensor { name: n, .. }) if n == name));
}

#[test]
fn every_truncation_is_an_error() {
    let b = whisper(6, SMALL, Store::F16, 1).encode();
    for len in 0..b.len() {
        assert!(raw(&b[..len]).is_err(), "prefix of {len} bytes was accepted");
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let good = whisper(6, SMALL, Store::Int8, 1).encode();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for _ in 0..3000 {
        let mut b = good.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(b.len() as u32) as usize;
            b[i] = rng.next_u32() as u8;
        }
        // Ok or a typed error: only a panic fails this test.
        let _ = raw(&b);
        let _ = parse_model_bin(b.as_slice(), b.len() as u64, std::path::Path::new("x"));
    }
}

#[test]
fn streamed_input_shorter_than_declared() {
    let b = whisper(6, SMALL, Store::F32, 1).encode();
    let r = whisper_wgpu::weights::ct2::read_ct2_from(
        &b[..100],
        b.len() as u64,
        std::path::Path::new("s"),
        &Ct2Sidecar::default(),
    );
    assert!(is_file_error(&r, "truncated"));
    let mut longer = b.clone();
    longer.push(1);
    let r = whisper_wgpu::weights::ct2::read_ct2_from(
        longer.as_slice(),
        b.len() as u64,
        std::path::Path::new("s"),
        &Ct2Sidecar::default(),
    );
    assert!(is_file_error(&r, "past its declared length"));
}
