//! End to end on the GPU: WAV -> log-mel -> encoder -> replayed decode steps -> tokens/text,
//! against the Hugging Face references for tiny.en.
mod common;
use common::*;
use whisper_wgpu::audio::{load_wav, log_mel_spectrogram};
use whisper_wgpu::backend::Backend;
use whisper_wgpu::checkpoint::Checkpoint;
use whisper_wgpu::decode::{RowPrompt, Session, SessionOptions};
use whisper_wgpu::graph::{state, STATE_WORDS};
use whisper_wgpu::model::{Model, WeightDtype};
use whisper_wgpu::tokenizer::Tokenizer;
use whisper_wgpu::transcribe::gpu::GpuWindowDecoder;
use whisper_wgpu::transcribe::{Task, TranscribeOptions, WindowDecoder, WindowRequest};
use whisper_wgpu::{Error, LoadedModel};

fn tiny_en() -> Option<(Model, Tokenizer)> {
    let ck = Checkpoint::load(&shared("models/whisper-tiny.en")).unwrap();
    let tok = Tokenizer::from_file(ck.tokenizer.as_ref().unwrap(), ck.generation.eot.unwrap()).unwrap();
    let backend: Box<dyn Backend + Send> = Box::new(gpu()?);
    Some((Model::new(backend, ck.dims, ck.generation, &ck.weights, WeightDtype::Auto).unwrap(), tok))
}

fn json_tokens(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect()
}

fn request(mel: &[f32], timestamps: bool) -> WindowRequest<'_> {
    WindowRequest {
        mel,
        previous: &[],
        language: None,
        task: Task::Transcribe,
        timestamps,
        temperature: 0.0,
        seed: 0,
        max_initial_timestamp_index: Some(50),
        max_new_tokens: None,
    }
}

#[test]
fn jfk_and_espeak_tokens_text_and_timestamps_match_reference() {
    let Some((model, tok)) = tiny_en() else { return };
    let jfk_ref: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shared("reference/tiny.en-jfk/reference.json")).unwrap())
            .unwrap();
    let espeak_ref: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shared("reference/espeak_sentence.json")).unwrap()).unwrap();
    let ts_ref: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shared("reference/tiny.en-jfk/timestamps.json")).unwrap())
            .unwrap();
    let jfk = log_mel_spectrogram(&load_wav(&shared("samples/jfk.wav")).unwrap(), 80).unwrap();
    let espeak = log_mel_spectrogram(&load_wav(&shared("samples/espeak_sentence.wav")).unwrap(), 80).unwrap();

    // Both files in one batch of two, then each alone: rows must not influence each other.
    let mut dec = GpuWindowDecoder::new(&model, 2).unwrap();
    let both = dec.decode(&[request(&jfk, false), request(&espeak, false)]).unwrap();
    let text_tokens = |v: &serde_json::Value| json_tokens(&v["text_tokens"]);
    assert_eq!(both[0].tokens, text_tokens(&jfk_ref));
    assert_eq!(both[1].tokens, text_tokens(&espeak_ref));
    assert!(both[0].finished && both[1].finished);
    assert_eq!(tok.decode(&both[0].tokens).unwrap(), jfk_ref["transcript"].as_str().unwrap());
    assert_eq!(tok.decode(&both[1].tokens).unwrap(), espeak_ref["transcript"].as_str().unwrap());
    assert!(both[0].avg_logprob < 0.0 && both[0].avg_logprob > -1.0, "avg logprob {}", both[0].avg_logprob);
    assert!(both[0].no_speech_prob < 0.1, "speech judged silent: {}", both[0].no_speech_prob);
    let alone = dec.decode(&[request(&espeak, false)]).unwrap();
    assert_eq!(alone[0].tokens, both[1].tokens);

    // With timestamps: HF generate(return_timestamps=True) tokens, end-of-text dropped.
    let with_ts = dec.decode(&[request(&jfk, true)]).unwrap();
    let mut want = json_tokens(&ts_ref["generated_tokens_as_returned_by_generate"]);
    if want.last() == model.generation.eot.as_ref() {
        want.pop();
    }
    assert_eq!(with_ts[0].tokens, want);
}

/// The replayed decode step gives the reference tokens however many steps go into one
/// submission: jfk and espeak without timestamps, jfk with them, decoded as one batch of three
/// rows (the encoder runs once; each K restarts the rows).
#[test]
fn steps_per_submit_does_not_change_tokens() {
    let Some((model, _)) = tiny_en() else { return };
    let read =
        |p: &str| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(shared(p)).unwrap()).unwrap() };
    let jfk_ref = read("reference/tiny.en-jfk/reference.json");
    let espeak_ref = read("reference/espeak_sentence.json");
    let ts_ref = read("reference/tiny.en-jfk/timestamps.json");
    let jfk = log_mel_spectrogram(&load_wav(&shared("samples/jfk.wav")).unwrap(), 80).unwrap();
    let espeak = log_mel_spectrogram(&load_wav(&shared("samples/espeak_sentence.wav")).unwrap(), 80).unwrap();
    let g = model.generation.clone();
    let (sot, eot) = (g.sot.unwrap(), g.eot.unwrap());
    let plain = RowPrompt {
        tokens: vec![sot, g.no_timestamps.unwrap()],
        eot: Some(eot),
        sot_index: Some(0),
        no_speech: g.no_speech,
        ..Default::default()
    };
    let timed =
        RowPrompt { tokens: vec![sot], timestamps: true, max_initial_timestamp_index: Some(50), ..plain.clone() };
    let mut want_ts = json_tokens(&ts_ref["generated_tokens_as_returned_by_generate"]);
    if want_ts.last() != Some(&eot) {
        want_ts.push(eot); // the session keeps the sampled end-of-text
    }
    let want = [json_tokens(&jfk_ref["tokens"]), json_tokens(&espeak_ref["tokens"])];

    let mut s = Session::new(&model, SessionOptions { rows: 3, ..Default::default() }).unwrap();
    s.encode(&[&jfk, &espeak, &jfk]).unwrap();
    s.set_rules_from(&g).unwrap();
    for k in [1usize, 4, 16] {
        s.start(&[plain.clone(), plain.clone(), timed.clone()]).unwrap();
        let mut steps = 0;
        while !s.step(k).unwrap().chunks(STATE_WORDS).all(|r| r[state::DONE] != 0) {
            steps += k;
            assert!(steps < 448, "K = {k}: decoding did not finish");
        }
        let rows = s.results().unwrap();
        assert_eq!(rows[0].tokens, want[0], "jfk, K = {k}");
        assert_eq!(rows[1].tokens, want[1], "espeak, K = {k}");
        assert_eq!(&rows[2].tokens[1..], &want_ts[..], "jfk with timestamps, K = {k}");
    }
}

/// Int8 weights (per-column scales, dequantized in the kernels) through the batched library
/// API: jfk and espeak in one batch of two transcribe to the f16 reference texts; token
/// differences from the f16 reference tokens are reported. Bad batch options are typed errors.
#[test]
fn int8_batch_transcribes_like_f16() {
    let ck = Checkpoint::load(&shared("models/whisper-tiny.en")).unwrap();
    let tokenizer = Tokenizer::from_file(ck.tokenizer.as_ref().unwrap(), ck.generation.eot.unwrap()).unwrap();
    let Some(gpu) = gpu() else { return };
    let model = Model::new(Box::new(gpu), ck.dims, ck.generation, &ck.weights, WeightDtype::Int8).unwrap();
    // The linears (all but the tied embedding, which int8 leaves in f16) take about half.
    let bytes = |m: &Model| (m.weights.matmul_bytes(), m.weights.token_embedding.bytes());
    let (f16_all, f16_emb) = {
        let cpu = whisper_wgpu::backend::cpu::CpuBackend::new();
        let ck = Checkpoint::load(&shared("models/whisper-tiny.en")).unwrap();
        bytes(&Model::new(Box::new(cpu), ck.dims, ck.generation, &ck.weights, WeightDtype::Auto).unwrap())
    };
    let (int8_all, int8_emb) = bytes(&model);
    eprintln!("matmul weights: f16 {f16_all} bytes, int8 {int8_all} bytes (tied embedding {int8_emb})");
    assert_eq!(int8_emb, f16_emb);
    let (f16_lin, int8_lin) = (f16_all - f16_emb, int8_all - int8_emb);
    assert!(int8_lin * 10 < f16_lin * 6, "int8 linears take {int8_lin} bytes, f16 ones {f16_lin}");
    let loaded = LoadedModel {
        model,
        kind: whisper_wgpu::config::ModelKind::Whisper,
        tokenizer: Some(tokenizer),
        dir: shared("models/whisper-tiny.en"),
    };
    let read =
        |p: &str| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(shared(p)).unwrap()).unwrap() };
    let refs = [read("reference/tiny.en-jfk/reference.json"), read("reference/espeak_sentence.json")];
    let audio =
        [load_wav(&shared("samples/jfk.wav")).unwrap(), load_wav(&shared("samples/espeak_sentence.wav")).unwrap()];
    let inputs: Vec<&[f32]> = audio.iter().map(|a| a.as_slice()).collect();
    let options = TranscribeOptions { timestamps: false, ..Default::default() };
    let got = loaded.transcribe_batch(&inputs, &options, 2).unwrap();
    assert_eq!(got.len(), 2);
    for (t, r) in got.iter().zip(&refs) {
        let tokens: Vec<u32> = t.segments.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        let want = json_tokens(&r["text_tokens"]);
        let same = tokens.iter().zip(&want).take_while(|(a, b)| a == b).count();
        eprintln!(
            "int8: {} of {} reference tokens before the first difference ({} vs {})",
            same,
            want.len(),
            tokens.len(),
            want.len()
        );
        assert_eq!(t.text, r["transcript"].as_str().unwrap());
    }

    assert!(matches!(loaded.transcribe_batch(&inputs, &options, 0), Err(Error::InvalidArgument(_))));
    assert!(matches!(WeightDtype::parse("int4"), Err(Error::InvalidArgument(_))));
    // A batch whose decoder buffers exceed what the device binds: a typed limit error.
    let huge = Session::new(&loaded.model, SessionOptions { rows: 1 << 20, ..Default::default() });
    assert!(matches!(huge, Err(Error::Limit(_))), "{:?}", huge.err());
}
