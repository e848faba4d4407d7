//! Long-form transcription end to end on the GPU: tiny.en over 39 s of audio (jfk.wav, 17 s of
//! silence, jfk.wav again). The first window holds the first sentence and the start of the
//! second, so the second window starts at the first window's last complete timestamp.
//!
//! (With short gaps a window holds the same sentence two or three times; its text then
//! compresses better than 2.4:1 and OpenAI's rules retry it at every temperature up to 1.0,
//! which is right but makes a slow test that depends on sampling.)
mod common;
use common::subtitles::{parse_srt, parse_vtt};
use common::*;
use whisper_wgpu::audio::{load_wav, SAMPLE_RATE};
use whisper_wgpu::backend::Backend;
use whisper_wgpu::checkpoint::Checkpoint;
use whisper_wgpu::model::{Model, WeightDtype};
use whisper_wgpu::tokenizer::Tokenizer;
use whisper_wgpu::transcribe::gpu::GpuWindowDecoder;
use whisper_wgpu::transcribe::{output, Event, ModelInfo, SliceSource, Transcriber, WindowDecision, WindowReport};

fn tiny_en_model() -> Option<(Model, Tokenizer)> {
    let ck = Checkpoint::load(&shared("models/whisper-tiny.en")).unwrap();
    let tok = Tokenizer::from_file(ck.tokenizer.as_ref().unwrap(), ck.generation.eot.unwrap()).unwrap();
    let backend: Box<dyn Backend + Send> = Box::new(gpu()?);
    Some((Model::new(backend, ck.dims, ck.generation, &ck.weights, WeightDtype::Auto).unwrap(), tok))
}

#[test]
fn jfk_twice_gives_two_sentences_at_increasing_times() {
    let ck = Checkpoint::load(&shared("models/whisper-tiny.en")).unwrap();
    let tok = Tokenizer::from_file(ck.tokenizer.as_ref().unwrap(), ck.generation.eot.unwrap()).unwrap();
    let Some(gpu) = gpu() else { return };
    let backend: Box<dyn Backend + Send> = Box::new(gpu);
    let model = Model::new(backend, ck.dims, ck.generation, &ck.weights, WeightDtype::Auto).unwrap();

    let jfk = load_wav(&shared("samples/jfk.wav")).unwrap();
    let gap = vec![0.0f32; SAMPLE_RATE as usize * 17];
    let audio: Vec<f32> = [&jfk[..], &gap, &jfk].concat();
    let jfk_s = jfk.len() as f64 / SAMPLE_RATE as f64;
    let period = jfk_s + 17.0;

    let mut dec = GpuWindowDecoder::new(&model, 1).unwrap();
    let info = ModelInfo::new(&model.dims, &model.generation).unwrap();
    let started = std::time::Instant::now();
    let t = Transcriber::new(&mut dec, &tok, info).unwrap().transcribe(&audio, &Default::default()).unwrap();
    let lines: Vec<String> = t.segments.iter().map(output::timestamp_line).collect();
    eprintln!("{:.1} s of audio in {:.1} s:\n{}", t.duration, started.elapsed().as_secs_f64(), lines.join("\n"));

    // Real output: the subtitles parse strictly, the JSON gives the segments back.
    let cues = parse_srt(&output::to_srt(&t.segments)).unwrap();
    assert_eq!(cues.len(), t.segments.iter().filter(|s| !s.text.trim().is_empty()).count(), "{lines:?}");
    assert_eq!(parse_vtt(&output::to_vtt(&t.segments)).unwrap(), cues);
    let v: serde_json::Value = serde_json::from_str(&output::to_json(&t, Some("en"))).unwrap();
    let back: Vec<whisper_wgpu::transcribe::Segment> = serde_json::from_value(v["segments"].clone()).unwrap();
    assert_eq!(back, t.segments);

    let sentence = "ask not what your country can do for you";
    assert!(t.text.matches(sentence).count() >= 2, "{}", t.text);
    // Segment times increase and stay inside the audio.
    for w in t.segments.windows(2) {
        assert!(w[0].start <= w[1].start && w[0].start <= w[0].end, "{lines:?}");
    }
    assert!(t.segments.iter().all(|s| s.end <= t.duration + 0.5), "{lines:?}");
    // Each repetition ends with "... for your country" where the sentence ends in the audio.
    // (Starts are looser: a window's first timestamp is at most 1 s in, so the segment after
    // the seek may begin in the silence before the speech, as OpenAI's does.)
    let ends: Vec<f64> = t.segments.iter().filter(|s| s.text.contains("for your country")).map(|s| s.end).collect();
    assert_eq!(ends.len(), 2, "{lines:?}");
    for (k, &e) in ends.iter().enumerate() {
        let want = k as f64 * period + jfk_s;
        assert!((e - want).abs() < 1.5, "repetition {k} ends at {e:.2} s, expected about {want:.2}: {lines:?}");
    }
}

/// Reports of every window and the transcript of `audio`.
fn transcribe_reporting(
    model: &Model,
    tok: &Tokenizer,
    audio: &[f32],
) -> (whisper_wgpu::transcribe::Transcript, Vec<WindowReport>) {
    let mut dec = GpuWindowDecoder::new(model, 1).unwrap();
    let info = ModelInfo::new(&model.dims, &model.generation).unwrap();
    let mut reports = Vec::new();
    let t = Transcriber::new(&mut dec, tok, info)
        .unwrap()
        .transcribe_events(SliceSource::new(audio), &Default::default(), &mut |e| {
            if let Event::Window(w) = e {
                reports.push(w.clone());
            }
        })
        .unwrap();
    (t, reports)
}

/// 30 s of digital silence and 30 s of white noise (uniform, peak 0.3) give no text, and the
/// window reports say which rule decided.
///
/// Silence is skipped before decoding (every sample below -60 dBFS). Decoded, tiny.en writes
/// " you" on it with no-speech probability 0.948 but average log-probability -0.70, which
/// OpenAI's no-speech rule (that also needs the log-probability below -1) lets through.
#[test]
fn silence_and_white_noise_give_no_text() {
    let Some((model, tok)) = tiny_en_model() else { return };
    let n = 30 * SAMPLE_RATE as usize;
    let silence = vec![0.0f32; n];
    let noise = Rng::new(7).vec(n, 0.3);

    let (t, reports) = transcribe_reporting(&model, &tok, &silence);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!((reports[0].decision, reports[0].attempts.len()), (WindowDecision::Quiet, 0), "{reports:?}");
    assert!(t.text.is_empty() && t.segments.is_empty(), "silence: {:?}", t.text);

    let started = std::time::Instant::now();
    let (t, reports) = transcribe_reporting(&model, &tok, &noise);
    eprintln!("white noise: {:.1} s, text {:?}, windows {reports:?}", started.elapsed().as_secs_f64(), t.text);
    assert_eq!(reports.len(), 1, "{reports:?}");
    let w = &reports[0];
    let kept = w.attempts.last().unwrap();
    // OpenAI's no-speech rule: <|nospeech|> likely (> 0.6) and the text unlikely (average
    // log-probability not above -1), so the window is skipped at temperature 0, no fallback.
    assert_eq!(w.decision, WindowDecision::NoSpeech, "{w:?}");
    assert_eq!(w.attempts.len(), 1, "no fallback for a silent window: {w:?}");
    assert!(kept.temperature == 0.0 && kept.no_speech_prob > 0.6 && kept.avg_logprob <= -1.0, "{kept:?}");
    assert!(t.text.trim().is_empty() && t.segments.is_empty(), "white noise: hallucinated {:?}", t.text);
    assert_eq!(w.next, 30.0);
}
