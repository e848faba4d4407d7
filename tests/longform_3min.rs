//! The 3-minute long-form file on the GPU, in a test binary of its own: the peak
//! memory it measures is the process's, so no other test may run beside it.
//!
//! About 2 minutes on lavapipe (two cores). Set WHISPER_WGPU_SKIP_LONG_TESTS=1 to leave it out.
mod common;
use common::subtitles::{parse_srt, parse_vtt};
use common::*;
use whisper_wgpu::audio::{load_wav, SAMPLE_RATE};
use whisper_wgpu::backend::Backend;
use whisper_wgpu::checkpoint::Checkpoint;
use whisper_wgpu::model::{Model, WeightDtype};
use whisper_wgpu::tokenizer::Tokenizer;
use whisper_wgpu::transcribe::gpu::GpuWindowDecoder;
use whisper_wgpu::transcribe::{output, Event, FallbackRules, ModelInfo, TranscribeOptions, Transcriber};

fn tiny_en_model() -> Option<(Model, Tokenizer)> {
    let ck = Checkpoint::load(&shared("models/whisper-tiny.en")).unwrap();
    let tok = Tokenizer::from_file(ck.tokenizer.as_ref().unwrap(), ck.generation.eot.unwrap()).unwrap();
    let backend: Box<dyn Backend + Send> = Box::new(gpu()?);
    Some((Model::new(backend, ck.dims, ck.generation, &ck.weights, WeightDtype::Auto).unwrap(), tok))
}

/// Peak and current resident memory, kB (Linux).
fn vm_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The 3-minute file: jfk.wav 16 times with 0.5 s of silence between (183.5 s),
/// written to disk as 16-bit WAV and streamed from it as the CLI does. Every sentence must be
/// found near where it was placed, timestamps must not decrease, sentences word for word and
/// within 1 s of their place are counted (greedy decoding, as the peer figures), and
/// the process's peak memory may not grow while it runs by as much as the whole file's samples
/// would take.
///
#[test]
fn three_minutes_of_jfk_sentences_in_place() {
    if std::env::var("WHISPER_WGPU_SKIP_LONG_TESTS").as_deref() == Ok("1") {
        eprintln!("three_minutes_of_jfk_sentences_in_place: skipped (WHISPER_WGPU_SKIP_LONG_TESTS=1)");
        return;
    }
    let Some((model, tok)) = tiny_en_model() else { return };
    let jfk = load_wav(&shared("samples/jfk.wav")).unwrap();
    let (copies, gap) = (16usize, SAMPLE_RATE as usize / 2);
    let period = (jfk.len() + gap) as f64 / SAMPLE_RATE as f64;
    let jfk_s = jfk.len() as f64 / SAMPLE_RATE as f64;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("jfk_x16.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for k in 0..copies {
        if k > 0 {
            (0..gap).for_each(|_| w.write_sample(0i16).unwrap());
        }
        // load_wav scales int16 by 1/32768, so this gives the file's samples back exactly.
        jfk.iter().for_each(|&x| w.write_sample((x * 32768.0).round() as i16).unwrap());
    }
    w.finalize().unwrap();

    // Greedy, as the peers' figures were measured: with temperature fallback every window of
    // this file is retried, because the right text of 2.5 repeated sentences compresses 2.5 to
    // 3.4 times (above 2.4), and the samples kept at 0.4 to 1.0 garble words.
    let greedy = TranscribeOptions {
        fallback: FallbackRules { temperatures: vec![0.0], ..Default::default() },
        ..Default::default()
    };
    let stream = whisper_wgpu::audio::AudioStream::open(&path).unwrap();
    let mut dec = GpuWindowDecoder::new(&model, 1).unwrap();
    let info = ModelInfo::new(&model.dims, &model.generation).unwrap();
    let started = std::time::Instant::now();
    let mut windows = Vec::new();
    let mut rss_after_first = None;
    let t = Transcriber::new(&mut dec, &tok, info)
        .unwrap()
        .transcribe_events(stream, &greedy, &mut |e| {
            if let Event::Window(w) = e {
                if windows.is_empty() {
                    // Everything made once (the session, its buffers) exists now: measure the
                    // peak from here on.
                    let _ = std::fs::write("/proc/self/clear_refs", "5");
                    rss_after_first = vm_kb("VmRSS:");
                }
                windows.push(w.clone());
            }
        })
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    for w in &windows {
        let tried: Vec<String> = w
            .attempts
            .iter()
            .map(|a| {
                let why = a.retry.map_or(String::new(), |r| format!(" {r:?}"));
                let mark = if a.kept { " kept" } else { "" };
                format!("T={} lp={:.2} cr={:.2}{why}{mark}", a.temperature, a.avg_logprob, a.compression_ratio)
            })
            .collect();
        eprintln!(
            "window {:.2}..{:.2} -> {:.2}{} {:?}: {}",
            w.start,
            w.start + w.length,
            w.next,
            if w.held_back { " (last segment held back)" } else { "" },
            w.decision,
            tried.join("; ")
        );
    }
    let lines: Vec<String> = t.segments.iter().map(output::timestamp_line).collect();
    eprintln!("{:.1} s of audio in {secs:.1} s, {} windows:\n{}", t.duration, windows.len(), lines.join("\n"));
    assert!((t.duration - (copies as f64 * period - 0.5)).abs() < 0.01, "{}", t.duration);

    // Timestamps never go back.
    for (i, s) in t.segments.iter().enumerate() {
        assert!(s.start <= s.end, "{}", lines[i]);
        if i > 0 {
            assert!(t.segments[i - 1].end <= s.start + 1e-9, "{} then {}", lines[i - 1], lines[i]);
        }
    }
    // Each segment belongs to the copy its middle falls in.
    const SENTENCE: &str =
        "And so my fellow Americans ask not what your country can do for you, ask what you can do for your country.";
    let (mut exact, mut in_place) = (0, 0);
    for k in 0..copies {
        let (from, to) = (k as f64 * period - gap as f64 / 2.0 / SAMPLE_RATE as f64, (k + 1) as f64 * period);
        let mine: Vec<_> = t
            .segments
            .iter()
            .filter(|s| !s.text.is_empty() && (from..to).contains(&((s.start + s.end) / 2.0)))
            .collect();
        assert!(!mine.is_empty(), "copy {k}: no segment\n{}", lines.join("\n"));
        let text = mine.iter().map(|s| s.text.trim()).collect::<Vec<_>>().join(" ");
        let (start, end) = (mine[0].start, mine[mine.len() - 1].end);
        let (want_start, want_end) = (k as f64 * period, k as f64 * period + jfk_s);
        eprintln!("copy {k}: {start:.2}..{end:.2} (placed {want_start:.2}..{want_end:.2}) {text}");
        assert!(text.contains("your country"), "copy {k}: {text}");
        in_place += ((start - want_start).abs() <= 1.0 && (end - want_end).abs() <= 1.0) as usize;
        // Word for word: case and punctuation aside (a segment cut drops the comma).
        let words = |s: &str| -> Vec<String> {
            s.split_whitespace().map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase()).collect()
        };
        exact += (words(&text) == words(SENTENCE)) as usize;
    }
    eprintln!("{exact} of {copies} sentences exact, {in_place} of {copies} within 1 s of their place");
    // The issue asks for 15 exact and all 16 in place. OpenAI's seek rule alone gave 13 exact
    // and 12 in place (faster-whisper 1.2.1 with the same CTranslate2 tiny.en, greedy: 13 and
    // 12): the windows ending at 30, 87 and 145 s cut a sentence after "can do for you", tiny.en
    // closes it a second before the cut as "can do for your country", and the next window,
    // starting inside the sentence, places everything about 2 s early. With the seam rule
    // (TranscribeOptions::seam_margin) each such window holds its last segment back and the
    // next one starts at that sentence: measured 16 exact, 16 in place.
    assert!(windows.iter().any(|w| w.held_back), "no window held its last segment back");
    assert!(exact >= 15, "{exact} of {copies} exact");
    assert_eq!(in_place, copies, "{in_place} of {copies} in place");

    // Memory: the whole file as f32 samples would be 11.7 MB.
    if let (Some(base), Some(peak)) = (rss_after_first, vm_kb("VmHWM:")) {
        let whole = copies * (jfk.len() + gap) * 4 / 1024;
        eprintln!(
            "peak resident memory grew by {} kB after the first window (whole file: {whole} kB)",
            peak.saturating_sub(base)
        );
        // Measured: 4.7 MB (lavapipe's submissions, the segments). Holding the file would pass
        // the bound by itself.
        assert!(peak.saturating_sub(base) < whole as u64, "peak {peak} kB, {base} kB after the first window");
    }
    // The subtitles of a real transcript parse strictly, cue for cue.
    let cues = parse_srt(&output::to_srt(&t.segments)).unwrap();
    assert_eq!(cues.len(), t.segments.iter().filter(|s| !s.text.trim().is_empty()).count());
    assert_eq!(parse_vtt(&output::to_vtt(&t.segments)).unwrap(), cues);
}
