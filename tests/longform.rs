//! Long-form transcription over a scripted window decoder: seeking, segment times,
//! conditioning on earlier text, temperature fallback, silence skipping, streaming; and the
//! output formats.
mod common;
use common::subtitles::{parse_srt, parse_vtt, Cue};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use whisper_wgpu::audio::{WavStream, N_FRAMES, SAMPLE_RATE};
use whisper_wgpu::transcribe::output::{format_timestamp, timestamp_line, to_json, to_srt, to_text, to_vtt};
use whisper_wgpu::transcribe::segments::Timing;
use whisper_wgpu::transcribe::{
    Detokenize, Event, ModelInfo, Retry, Segment, SliceSource, TranscribeOptions, Transcriber, Transcript,
    WindowDecision, WindowDecoder, WindowRequest, WindowResult,
};
use whisper_wgpu::{Error, Result};

const EOT: u32 = 50256;
const TS0: u32 = 50363;

fn ts(seconds: f64) -> u32 {
    TS0 + (seconds / 0.02).round() as u32
}

fn info() -> ModelInfo {
    ModelInfo {
        n_mels: 80,
        n_text_ctx: 448,
        timing: Timing { input_stride: 2, time_precision: 0.02, frame_seconds: 0.01 },
        eot: EOT,
        timestamp_begin: Some(TS0),
        multilingual: false,
    }
}

/// Token `t` reads as ` w<t>`.
struct Words;
impl Detokenize for Words {
    fn detokenize(&self, tokens: &[u32]) -> Result<String> {
        Ok(tokens.iter().filter(|&&t| t < EOT).map(|t| format!(" w{t}")).collect())
    }
}

/// What the transcriber asked for.
#[derive(Clone, Debug)]
struct Seen {
    previous: Vec<u32>,
    temperature: f32,
    timestamps: bool,
    mel_len: usize,
    max_initial: Option<u32>,
    seed: u64,
}

/// Hands out scripted results in order and records each request.
struct Script {
    results: VecDeque<WindowResult>,
    seen: Rc<RefCell<Vec<Seen>>>,
}

impl WindowDecoder for Script {
    fn decode(&mut self, requests: &[WindowRequest<'_>]) -> Result<Vec<WindowResult>> {
        let mut out = Vec::new();
        for r in requests {
            self.seen.borrow_mut().push(Seen {
                previous: r.previous.to_vec(),
                temperature: r.temperature,
                timestamps: r.timestamps,
                mel_len: r.mel.len(),
                max_initial: r.max_initial_timestamp_index,
                seed: r.seed,
            });
            let res = self.results.pop_front().ok_or_else(|| Error::InvalidArgument("script exhausted".into()))?;
            out.push(res);
        }
        Ok(out)
    }
    fn detect_language(&mut self, _: &[f32]) -> Result<Vec<(u32, f32)>> {
        Err(Error::InvalidArgument("English-only".into()))
    }
    fn max_batch(&self) -> usize {
        8
    }
}

/// A result with the given tokens and scores.
fn res(tokens: Vec<u32>, avg_logprob: f32, no_speech_prob: f32) -> WindowResult {
    WindowResult {
        sum_logprob: avg_logprob * (tokens.len() + 1) as f32,
        tokens,
        avg_logprob,
        no_speech_prob,
        finished: true,
    }
}

fn run_script(
    seconds: f64,
    results: Vec<WindowResult>,
    options: &TranscribeOptions,
) -> (Result<Transcript>, Vec<Seen>, usize) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let mut dec = Script { results: results.into(), seen: seen.clone() };
    // Not digital silence, which the transcriber skips without decoding.
    let audio: Vec<f32> =
        (0..(seconds * SAMPLE_RATE as f64) as usize).map(|i| 0.01 * (i as f32 * 0.05).sin()).collect();
    let out = Transcriber::new(&mut dec, &Words, info()).unwrap().transcribe(&audio, options);
    let left = dec.results.len();
    let seen = seen.borrow().clone();
    (out, seen, left)
}

fn times(t: &Transcript) -> Vec<(f64, f64)> {
    t.segments.iter().map(|s| ((s.start * 100.0).round() / 100.0, (s.end * 100.0).round() / 100.0)).collect()
}

#[test]
fn seeks_to_the_last_complete_timestamp_and_offsets_segment_times() {
    let w1 = vec![ts(0.0), 1, 2, ts(5.0), ts(5.0), 3, ts(12.0), ts(12.0), 4, 5]; // tail unfinished
    let w2 = vec![ts(0.0), 4, 5, ts(8.0)]; // one segment: the whole window is consumed
    let w3 = vec![ts(0.0), 6, ts(3.0), ts(3.0), 7, ts(6.5)]; // single timestamp ending
    let (out, seen, left) =
        run_script(45.0, vec![res(w1, -0.2, 0.01), res(w2, -0.3, 0.01), res(w3, -0.1, 0.0)], &Default::default());
    let t = out.unwrap();
    assert_eq!(left, 0);
    // Windows at 0 s, 12 s (last complete timestamp), 42 s (12 + 30).
    assert_eq!(times(&t), vec![(0.0, 5.0), (5.0, 12.0), (12.0, 20.0), (42.0, 45.0), (45.0, 48.5)]);
    assert_eq!(t.segments[0].text, " w1 w2");
    assert_eq!(t.segments[2].tokens, vec![ts(0.0), 4, 5, ts(8.0)]);
    assert_eq!(t.text, " w1 w2 w3 w4 w5 w6 w7");
    assert!((t.duration - 45.0).abs() < 1e-9);
    // Every window decodes with timestamps, a 30 s mel and a first timestamp within 1 s.
    for s in &seen {
        assert!(s.timestamps && s.mel_len == 80 * N_FRAMES && s.max_initial == Some(50) && s.temperature == 0.0);
    }
    // Conditioning: each window sees every token of the segments before it.
    assert!(seen[0].previous.is_empty());
    assert_eq!(seen[1].previous, vec![ts(0.0), 1, 2, ts(5.0), ts(5.0), 3, ts(12.0)]);
    assert_eq!(seen[2].previous.len(), 7 + 4);
}

#[test]
fn temperature_fallback_on_low_logprob_and_on_repetition() {
    let good = vec![ts(0.0), 1, ts(2.0)];
    let looping: Vec<u32> = std::iter::once(ts(0.0)).chain([7, 8].repeat(30)).chain([ts(20.0)]).collect();
    let script = vec![
        res(good.clone(), -1.6, 0.1), // t = 0.0: too unlikely
        res(looping, -0.2, 0.1),      // t = 0.2: too repetitive
        res(good.clone(), -0.4, 0.1), // t = 0.4: kept
        res(good, -0.3, 0.1),         // second window (from 30 s) at t = 0.0
    ];
    // The window reports say why each temperature was left.
    let seen_rc = Rc::new(RefCell::new(Vec::new()));
    let mut dec = Script { results: script.into(), seen: seen_rc.clone() };
    let audio: Vec<f32> = (0..40 * SAMPLE_RATE as usize).map(|i| 0.01 * (i as f32 * 0.05).sin()).collect();
    let mut reasons = Vec::new();
    let out = Transcriber::new(&mut dec, &Words, info()).unwrap().transcribe_events(
        SliceSource::new(&audio),
        &Default::default(),
        &mut |e| {
            if let Event::Window(w) = e {
                reasons.push(w.attempts.iter().map(|a| (a.temperature, a.retry)).collect::<Vec<_>>());
            }
        },
    );
    let (left, seen) = (dec.results.len(), seen_rc.borrow().clone());
    assert_eq!(
        reasons,
        vec![vec![(0.0, Some(Retry::LogProb)), (0.2, Some(Retry::CompressionRatio)), (0.4, None)], vec![(0.0, None)]]
    );
    let t = out.unwrap();
    assert_eq!(left, 0);
    let temps: Vec<f32> = seen.iter().map(|s| s.temperature).collect();
    assert_eq!(temps, vec![0.0, 0.2, 0.4, 0.0]);
    assert_eq!(t.segments[0].temperature, 0.4);
    assert!((t.segments[0].avg_logprob + 0.4).abs() < 1e-6);
    assert_eq!(t.segments[1].temperature, 0.0);
    // Each sampling attempt gets its own seed.
    assert_ne!(seen[1].seed, seen[2].seed);
    // 0.4 <= 0.5: the second window is still conditioned on the first.
    assert_eq!(seen[3].previous, vec![ts(0.0), 1, ts(2.0)]);

    // All temperatures fail alike: the last decode is kept, as OpenAI does.
    let bad = || res(vec![ts(0.0), 1, ts(2.0)], -3.0, 0.1);
    let (out, seen, _) = run_script(10.0, (0..6).map(|_| bad()).collect(), &Default::default());
    assert_eq!(seen.len(), 6);
    assert_eq!(out.unwrap().segments[0].temperature, 1.0);
    // All fail: the most likely decode that is not repetitive wins, however hot.
    let looped = |lp| res(std::iter::once(ts(0.0)).chain([7, 8].repeat(30)).chain([ts(20.0)]).collect(), lp, 0.1);
    let unlikely = |lp| res(vec![ts(0.0), 1, ts(2.0)], lp, 0.1);
    let script = vec![looped(-0.1), unlikely(-1.5), unlikely(-1.2), looped(-0.2), unlikely(-1.9), unlikely(-2.5)];
    let (out, _, _) = run_script(10.0, script, &Default::default());
    let s = &out.unwrap().segments[0];
    assert_eq!((s.temperature, s.avg_logprob), (0.4, -1.2));
    // All repetitive: the most likely of them.
    let script = vec![looped(-0.5), looped(-0.1), looped(-0.3), looped(-0.9), looped(-0.4), looped(-0.2)];
    let (out, _, _) = run_script(10.0, script, &Default::default());
    assert_eq!(out.unwrap().segments[0].temperature, 0.2);
}

#[test]
fn a_hot_decode_resets_the_conditioning() {
    let ok = |lp| res(vec![ts(0.0), 1, 2, ts(4.0)], lp, 0.1);
    // Window 1 passes only at t = 0.8 (> 0.5): window 2 gets no previous text.
    let script = vec![ok(-2.0), ok(-2.0), ok(-2.0), ok(-2.0), ok(-0.5), ok(-0.2), ok(-0.2)];
    let (out, seen, left) = run_script(70.0, script, &Default::default());
    let t = out.unwrap();
    assert_eq!(left, 0);
    assert_eq!(seen[4].temperature, 0.8);
    assert!(seen[5].previous.is_empty(), "{:?}", seen[5].previous);
    assert_eq!(seen[6].previous, vec![ts(0.0), 1, 2, ts(4.0)]);
    assert_eq!(times(&t), vec![(0.0, 4.0), (30.0, 34.0), (60.0, 64.0)]);

    // Conditioning off: never any previous text, but the initial prompt on the first window.
    let opts =
        TranscribeOptions { condition_on_previous_text: false, initial_prompt: vec![42, 43], ..Default::default() };
    let (out, seen, _) = run_script(40.0, vec![ok(-0.1), ok(-0.1)], &opts);
    assert_eq!(seen[0].previous, vec![42, 43]);
    assert!(seen[1].previous.is_empty());
    assert_eq!(out.unwrap().text, " w1 w2 w1 w2", "the initial prompt is not part of the text");
}

#[test]
fn a_window_without_text_is_decoded_again_without_the_earlier_text() {
    let text = |a, b| res(vec![ts(0.0), a, b, ts(4.0)], -0.2, 0.1);
    let empty = || res(vec![], -0.1, 0.1);
    // Windows at 0, 30, 60 and 90 s. The second and third decode nothing while conditioned.
    let script = vec![text(1, 2), empty(), text(3, 4), empty(), empty(), text(5, 6)];
    let (out, seen, left) = run_script(100.0, script, &Default::default());
    let t = out.unwrap();
    assert_eq!((left, seen.len()), (0, 6));
    assert!(seen[0].previous.is_empty());
    assert_eq!(seen[1].previous, vec![ts(0.0), 1, 2, ts(4.0)]);
    assert!(seen[2].previous.is_empty(), "the empty window is decoded again without the earlier text");
    assert_eq!(seen[3].previous, vec![ts(0.0), 3, 4, ts(4.0)]);
    assert!(seen[4].previous.is_empty());
    // Still nothing: the window is passed, and the next one is not conditioned on what came
    // before the empty one (the same context would end it too).
    assert!(seen[5].previous.is_empty(), "{:?}", seen[5].previous);
    assert_eq!(t.text, " w1 w2 w3 w4 w5 w6");
    // The empty window keeps its place as a segment without text.
    assert_eq!(times(&t), vec![(0.0, 4.0), (30.0, 34.0), (60.0, 90.0), (90.0, 94.0)]);

    // Silence (the no-speech rule) is not decoded again, but the window after it starts afresh.
    let silent = res(vec![], -1.5, 0.9);
    let script = vec![text(1, 2), silent, text(3, 4), empty(), text(5, 6)];
    let (_, seen, left) = run_script(100.0, script, &Default::default());
    assert_eq!((left, seen.len()), (0, 5));
    assert_eq!(seen[1].previous.len(), 4);
    assert!(seen[2].previous.is_empty(), "conditioned across a skipped window: {:?}", seen[2].previous);
    assert_eq!(seen[3].previous.len(), 4);
    assert!(seen[4].previous.is_empty());
}

#[test]
fn silent_windows_are_skipped_without_fallback() {
    let silent = res(vec![ts(0.0), 9, ts(1.0)], -1.5, 0.9);
    let speech = res(vec![ts(0.0), 1, ts(3.0)], -0.2, 0.05);
    // Confident text despite a high no-speech probability is kept.
    let confident = res(vec![ts(0.0), 2, ts(2.0)], -0.5, 0.9);
    let (out, seen, left) = run_script(80.0, vec![silent, speech, confident], &Default::default());
    let t = out.unwrap();
    assert_eq!(left, 0);
    assert_eq!(seen.len(), 3, "a silent window must not be retried at higher temperatures");
    assert_eq!(times(&t), vec![(30.0, 33.0), (60.0, 62.0)]);
    assert_eq!(t.text, " w1 w2");
    assert!(seen[1].previous.is_empty(), "nothing from the skipped window is carried");
}

#[test]
fn without_timestamps_one_segment_per_window() {
    let opts = TranscribeOptions { timestamps: false, ..Default::default() };
    let (out, seen, _) =
        run_script(70.0, vec![res(vec![1, 2], -0.1, 0.0), res(vec![3], -0.1, 0.0), res(vec![4], -0.1, 0.0)], &opts);
    let t = out.unwrap();
    assert!(seen.iter().all(|s| !s.timestamps && s.max_initial.is_none()));
    assert_eq!(times(&t), vec![(0.0, 30.0), (30.0, 60.0), (60.0, 70.0)]);
    assert_eq!(t.text, " w1 w2 w3 w4");
}

#[test]
fn empty_and_instantaneous_segments_are_cleared() {
    // <1.00> w5 <1.00> | <1.00> w6 <2.00> | <2.00> | <3.00> <3.00>
    let toks = vec![ts(1.0), 5, ts(1.0), ts(1.0), 6, ts(2.0), ts(2.0), ts(3.0), ts(3.0)];
    let (out, _, left) = run_script(3.0, vec![res(toks, -0.1, 0.0)], &Default::default());
    let t = out.unwrap();
    assert_eq!(left, 0);
    assert_eq!(times(&t), vec![(1.0, 1.0), (1.0, 2.0), (2.0, 2.0), (3.0, 3.0)]);
    assert!(t.segments[0].text.is_empty() && t.segments[0].tokens.is_empty(), "instantaneous: cleared");
    assert_eq!(t.segments[1].text, " w6");
    assert!(t.segments[2].text.is_empty() && t.segments[3].text.is_empty());
    assert_eq!(t.text, " w6");
    assert_eq!(to_srt(&t.segments).matches("-->").count(), 1);
}

/// A window of digital silence is skipped before decoding; the next one is decoded.
#[test]
fn digitally_silent_windows_are_not_decoded() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let speech = res(vec![ts(0.0), 7, ts(2.0)], -0.2, 0.01);
    let mut dec = Script { results: vec![speech].into(), seen: seen.clone() };
    let mut audio = vec![0.0f32; 60 * SAMPLE_RATE as usize];
    audio[30 * SAMPLE_RATE as usize..].iter_mut().enumerate().for_each(|(i, x)| *x = 0.1 * (i as f32 * 0.05).sin());
    let mut reports = Vec::new();
    let t = Transcriber::new(&mut dec, &Words, info())
        .unwrap()
        .transcribe_events(SliceSource::new(&audio), &Default::default(), &mut |e| {
            if let Event::Window(w) = e {
                reports.push((w.start, w.next, w.decision, w.attempts.len()));
            }
        })
        .unwrap();
    assert_eq!(seen.borrow().len(), 1, "only the second window is decoded");
    assert_eq!(reports, vec![(0.0, 30.0, WindowDecision::Quiet, 0), (30.0, 60.0, WindowDecision::Speech, 1)]);
    assert_eq!(times(&t), vec![(30.0, 32.0)]);
    // Switched off, the silent window is decoded too.
    let (_, seen, _) = run_script(
        30.0,
        vec![res(vec![], -0.2, 0.01)],
        &TranscribeOptions { silence_peak: None, ..Default::default() },
    );
    assert_eq!(seen.len(), 1);
}

#[test]
fn empty_audio_is_a_typed_error() {
    let (out, seen, _) = run_script(0.0, vec![], &Default::default());
    assert!(matches!(out, Err(Error::InvalidAudio(_))), "{:?}", out.err());
    assert!(seen.is_empty());
}

/// A WAV reader that makes `seconds` of 16-bit 16 kHz mono silence on the fly (nothing held).
struct SilentWav {
    header: Vec<u8>,
    pos: u64,
    len: u64,
}

impl SilentWav {
    fn new(seconds: u64) -> SilentWav {
        let data = seconds * 16_000 * 2;
        let mut h = Vec::new();
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&((36 + data) as u32).to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes()); // PCM
        h.extend_from_slice(&1u16.to_le_bytes()); // mono
        h.extend_from_slice(&16_000u32.to_le_bytes());
        h.extend_from_slice(&32_000u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&(data as u32).to_le_bytes());
        let len = h.len() as u64 + data;
        SilentWav { header: h, pos: 0, len }
    }
}

impl std::io::Read for SilentWav {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.len - self.pos) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let p = self.pos as usize + i;
            *b = if p < self.header.len() { self.header[p] } else { 0 };
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// An hour streamed from a WAV reader: windows follow each other to the end, times stay right.
#[test]
fn an_hour_streams_window_by_window() {
    let windows = 120;
    let script: Vec<WindowResult> = (0..windows).map(|i| res(vec![ts(0.0), i, ts(29.0)], -0.1, 0.0)).collect();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let mut dec = Script { results: script.into(), seen: seen.clone() };
    let stream = WavStream::new(SilentWav::new(3600)).unwrap();
    let mut count = 0;
    let t = Transcriber::new(&mut dec, &Words, info())
        .unwrap()
        .transcribe_source(stream, &TranscribeOptions { silence_peak: None, ..Default::default() }, &mut |_| count += 1)
        .unwrap();
    assert_eq!((count, t.segments.len()), (windows as usize, windows as usize));
    assert!((t.duration - 3600.0).abs() < 0.05, "{}", t.duration);
    let last = t.segments.last().unwrap();
    assert!((last.start - 3570.0).abs() < 1e-6 && (last.end - 3599.0).abs() < 1e-6, "{last:?}");
    // Conditioning keeps only what the decoder can use (it trims to n_text_ctx / 2 - 1).
    assert!(seen.borrow().last().unwrap().previous.len() >= 3 * (windows as usize - 1));
}

fn seg(start: f64, end: f64, text: &str) -> Segment {
    Segment {
        start,
        end,
        text: text.into(),
        tokens: vec![1, 2],
        temperature: 0.0,
        avg_logprob: -0.25,
        compression_ratio: 1.1,
        no_speech_prob: 0.01,
    }
}

#[test]
fn timestamps_format_like_openai() {
    assert_eq!(format_timestamp(0.0, false, '.'), "00:00.000");
    assert_eq!(format_timestamp(5.12, false, '.'), "00:05.120");
    assert_eq!(format_timestamp(61.0004, true, ','), "00:01:01,000");
    assert_eq!(format_timestamp(3725.5, false, '.'), "01:02:05.500");
    assert_eq!(format_timestamp(59.9996, true, '.'), "00:01:00.000");
    assert_eq!(format_timestamp(-1.0, true, ','), "00:00:00,000");
    assert_eq!(format_timestamp(f64::NAN, false, '.'), "00:00.000");
    assert_eq!(timestamp_line(&seg(0.0, 5.12, " And so")), "[00:00.000 --> 00:05.120] And so");
}

#[test]
fn srt_vtt_text_and_json() {
    let segs = vec![seg(0.0, 5.12, " Hello there."), seg(5.12, 5.12, ""), seg(3661.0, 3662.5, " A --> B")];
    let srt = to_srt(&segs);
    let vtt = to_vtt(&segs);
    assert_eq!(srt, "1\n00:00:00,000 --> 00:00:05,120\nHello there.\n\n2\n01:01:01,000 --> 01:01:02,500\nA -> B\n\n");
    assert_eq!(
        vtt,
        "WEBVTT\n\n00:00:00.000 --> 00:00:05.120\nHello there.\n\n01:01:01.000 --> 01:01:02.500\nA -> B\n\n"
    );
    let want = vec![
        Cue { start_ms: 0, end_ms: 5120, text: "Hello there.".into() },
        Cue { start_ms: 3_661_000, end_ms: 3_662_500, text: "A -> B".into() },
    ];
    assert_eq!(parse_srt(&srt).unwrap(), want);
    assert_eq!(parse_vtt(&vtt).unwrap(), want);
    assert_eq!(to_text(&segs), "Hello there.\nA --> B\n");
    let t = Transcript { text: " Hello there. A --> B".into(), segments: segs, language: None, duration: 3663.0 };
    let json = to_json(&t, Some("en"));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["language"], "en");
    assert_eq!(v["segments"][2]["id"], 2);
    assert_eq!(v["segments"][0]["avg_logprob"], -0.25);
    // The segments, text and duration come back exactly (floats included).
    let back: Vec<Segment> = serde_json::from_value(v["segments"].clone()).unwrap();
    assert_eq!(back, t.segments);
    assert_eq!((v["text"].as_str(), v["duration"].as_f64()), (Some(t.text.as_str()), Some(t.duration)));
}

/// Subtitle text keeps to one cue: blank lines inside a segment's text would end the cue.
#[test]
fn multi_line_segment_text_stays_one_cue() {
    let segs = vec![seg(1.0, 2.0, " one\n\ntwo  "), seg(2.0, 3.0, " three")];
    let cues = parse_srt(&to_srt(&segs)).unwrap();
    assert_eq!(cues.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(), vec!["one\ntwo", "three"]);
    assert_eq!(parse_vtt(&to_vtt(&segs)).unwrap(), cues);
}

#[test]
fn the_strict_parsers_refuse_what_players_would_misread() {
    assert!(parse_srt("1\n00:00:00,000 --> 00:00:01,000\nhi\n\n").is_ok());
    for bad in [
        "1\n00:00:00,000 --> 00:00:01,000\nhi\n",           // no blank line at the end
        "2\n00:00:00,000 --> 00:00:01,000\nhi\n\n",         // numbered from 2
        "1\n00:00:00.000 --> 00:00:01,000\nhi\n\n",         // VTT separator
        "1\n00:00:02,000 --> 00:00:01,000\nhi\n\n",         // ends before it starts
        "1\n00:60:00,000 --> 01:00:01,000\nhi\n\n",         // 60 minutes
        "1\n00:00:00,00 --> 00:00:01,000\nhi\n\n",          // two-digit milliseconds
        "1\n00:00:00,000 --> 00:00:01,000\n\n",             // no text
        "1\n00:00:00,000 --> 00:00:01,000\na --> b\n\n",    // arrow in the text
        "1\r\n00:00:00,000 --> 00:00:01,000\r\nhi\r\n\r\n", // CRLF
    ] {
        assert!(parse_srt(bad).is_err(), "accepted {bad:?}");
    }
    assert!(parse_vtt("WEBVTT\n\n00:01.000 --> 00:00:02.500\nhi\n\n").is_ok());
    assert!(parse_vtt("WEBVTT\n00:01.000 --> 00:02.500\nhi\n\n").is_err());
    assert!(parse_vtt("WEBVTT\n\n00:01,000 --> 00:02.500\nhi\n\n").is_err());
}

/// Decodes each request as a pure function of what it asks (its mel, conditioning and
/// temperature), so a window gives the same result alone or in any batch; records the size of
/// every batch it is handed.
struct Pure {
    batches: Vec<usize>,
}

impl WindowDecoder for Pure {
    fn decode(&mut self, requests: &[WindowRequest<'_>]) -> Result<Vec<WindowResult>> {
        self.batches.push(requests.len());
        Ok(requests
            .iter()
            .map(|r| {
                let h = r
                    .mel
                    .iter()
                    .fold(r.previous.len() as u64, |h, v| h.wrapping_mul(31).wrapping_add(v.to_bits() as u64));
                let word = 100 + (h % 50) as u32;
                // Every third window is unlikely at temperature 0: it falls back to 0.2.
                let lp = if r.temperature == 0.0 && h % 3 == 0 { -2.0 } else { -0.3 };
                res(vec![ts(0.0), word, ts(5.0), ts(5.0), word + 1, ts(12.0)], lp, 0.1)
            })
            .collect())
    }
    fn detect_language(&mut self, _: &[f32]) -> Result<Vec<(u32, f32)>> {
        Err(Error::InvalidArgument("English-only".into()))
    }
    fn max_batch(&self) -> usize {
        8
    }
}

/// Noise of the given length, different for every seed.
fn noise(seconds: f64, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..(seconds * SAMPLE_RATE as f64) as usize)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

#[test]
fn sources_in_lockstep_give_each_source_its_own_transcript() {
    let audio = [noise(45.0, 1), noise(70.0, 2), noise(10.0, 3)];
    let options = TranscribeOptions::default();
    let alone: Vec<Transcript> = audio
        .iter()
        .map(|a| {
            let mut dec = Pure { batches: Vec::new() };
            Transcriber::new(&mut dec, &Words, info()).unwrap().transcribe(a, &options).unwrap()
        })
        .collect();
    let mut dec = Pure { batches: Vec::new() };
    let mut seen = vec![0usize; 3];
    let sources = audio.iter().map(|a| whisper_wgpu::transcribe::SliceSource::new(a)).collect();
    let together: Vec<Transcript> = Transcriber::new(&mut dec, &Words, info())
        .unwrap()
        .transcribe_sources(sources, &options, 2, &mut |i, _| seen[i] += 1)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(together, alone);
    assert_eq!(seen, alone.iter().map(|t| t.segments.len()).collect::<Vec<_>>());
    assert!(alone.iter().any(|t| t.segments.iter().any(|s| s.temperature > 0.0)), "no window fell back");
    // Two sources at a time: rows of 2 until the sources run out, never more.
    assert_eq!(dec.batches.iter().max(), Some(&2));
    assert!(dec.batches.iter().filter(|&&b| b == 2).count() >= 3, "{:?}", dec.batches);
    let zero = Transcriber::new(&mut dec, &Words, info()).unwrap().transcribe_sources(
        vec![whisper_wgpu::transcribe::SliceSource::new(&audio[0])],
        &options,
        0,
        &mut |_, _| {},
    );
    assert!(matches!(zero, Err(Error::InvalidArgument(_))), "{zero:?}");
}

/// Samples in memory that fail to read after `fail_after` of them (a file truncated or
/// corrupt part-way), or never.
struct Breaking<'a> {
    samples: &'a [f32],
    pos: usize,
    fail_after: Option<usize>,
}

impl whisper_wgpu::transcribe::SampleSource for Breaking<'_> {
    fn read_chunk(&mut self, out: &mut Vec<f32>) -> Result<usize> {
        if self.fail_after.is_some_and(|n| self.pos >= n) {
            return Err(Error::Audio { path: "broken.wav".into(), msg: "truncated".into() });
        }
        let end = (self.pos + SAMPLE_RATE as usize).min(self.samples.len());
        out.extend_from_slice(&self.samples[self.pos..end]);
        let n = end - self.pos;
        self.pos = end;
        Ok(n)
    }
}

#[test]
fn a_source_that_breaks_fails_alone() {
    let audio = [noise(45.0, 1), noise(70.0, 2), noise(10.0, 3)];
    let options = TranscribeOptions::default();
    let alone: Vec<Transcript> = audio
        .iter()
        .map(|a| {
            Transcriber::new(&mut Pure { batches: Vec::new() }, &Words, info())
                .unwrap()
                .transcribe(a, &options)
                .unwrap()
        })
        .collect();
    // The broken source first, in the middle, last; at batch sizes 1 and 2. It breaks after
    // its first window (40 s in), or at once.
    for bad in [0, 2, 3] {
        for (batch, fail_after) in [(1, 40), (2, 40), (2, 0)] {
            let mut sources: Vec<Breaking> =
                audio.iter().map(|a| Breaking { samples: a, pos: 0, fail_after: None }).collect();
            let broken = Breaking { samples: &audio[1], pos: 0, fail_after: Some(fail_after * SAMPLE_RATE as usize) };
            sources.insert(bad, broken);
            let out = Transcriber::new(&mut Pure { batches: Vec::new() }, &Words, info())
                .unwrap()
                .transcribe_sources(sources, &options, batch, &mut |_, _| {})
                .unwrap();
            assert_eq!(out.len(), 4);
            let mut good = alone.iter();
            for (i, r) in out.iter().enumerate() {
                match r {
                    Err(Error::Audio { msg, .. }) if i == bad => assert_eq!(msg, "truncated"),
                    Ok(t) if i != bad => assert_eq!(Some(t), good.next()),
                    r => panic!("source {i} (broken: {bad}, batch {batch}): {r:?}"),
                }
            }
        }
    }
}
