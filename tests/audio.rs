//! The audio front end against the PyTorch/HF references in `../shared/reference`, plus WAV
//! decoding of every supported format, the resampler's accuracy, and malformed input.
use std::io::Cursor;
use std::path::{Path, PathBuf};
use whisper_wgpu::audio::{
    self, decode_wav, decode_wav_with, load_wav, log_mel_spectrogram, mel_filters, LogMel, Resampler, WavOptions,
    WavStream, N_FRAMES, N_SAMPLES,
};
use whisper_wgpu::Error;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// Reads an f32 tensor from a safetensors file: (shape, values).
fn read_tensor(path: &Path, key: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let t = st.tensor(key).expect("tensor present");
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{key}");
    let values = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    (t.shape().to_vec(), values)
}

// ---------------------------------------------------------------------------------------------
// Mel filterbank and log-mel against the references
// ---------------------------------------------------------------------------------------------

/// HF builds the filterbank in float64 and the reference stores it rounded to float32; we also
/// compute in f64 and round once, so the two can differ only when the f64 values straddle an f32
/// rounding boundary: at most one f32 ulp (relative 2^-23 ~ 1.2e-7). Measured: bit-identical.
#[test]
fn mel_filters_match_reference() {
    for n_mels in [80usize, 128] {
        let path = shared().join(format!("reference/mel_filters_{n_mels}.safetensors"));
        let (shape, want) = read_tensor(&path, "mel_filters");
        assert_eq!(shape, vec![n_mels, 201]);
        let got = mel_filters(n_mels).unwrap();
        assert_eq!(got.len(), want.len());
        let mut max_rel = 0.0f64;
        let mut differing = 0;
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            if g != w {
                differing += 1;
            }
            let rel = (g as f64 - w as f64).abs() / (w.abs() as f64).max(1e-30);
            assert!(g == w || rel <= 2.0f64.powi(-23), "n_mels {n_mels} [{}][{}]: {g} vs {w}", i / 201, i % 201);
            max_rel = max_rel.max(if g == w { 0.0 } else { rel });
        }
        eprintln!("mel_filters({n_mels}): {differing} values differ, max relative diff {max_rel:.3e}");
    }
}

/// The reference is HF's WhisperFeatureExtractor on the torch path: a float32 STFT, float32
/// filterbank matmul and float32 log10; we compute the spectrum in f64. The difference is the
/// reference's float32 rounding, amplified where the power is tiny (log of a small number; the
/// padded silence sits on the max-8 floor and matches exactly). Measured on jfk.wav:
/// max |diff| 4.43e-5 (band 0, frame 144: the lowest, weakest band), mean |diff| 3.1e-8 over
/// the window and 8.4e-8 over the 1100 speech frames; HF's own numpy and torch paths differ by
/// 4.42e-5. Tolerance: max 2e-4, mean over speech 2e-6, far below what the encoder notices.
#[test]
fn log_mel_matches_reference_jfk() {
    let samples = load_wav(&shared().join("samples/jfk.wav")).unwrap();
    assert_eq!(samples.len(), 176_000);
    let (shape, want) = read_tensor(&shared().join("reference/tiny.en-jfk/reference.safetensors"), "log_mel");
    assert_eq!(shape, vec![80, N_FRAMES]);
    let got = log_mel_spectrogram(&samples, 80).unwrap();
    assert_eq!(got.len(), want.len());
    let (mut max, mut sum, mut at) = (0.0f32, 0.0f64, 0);
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let d = (g - w).abs();
        sum += d as f64;
        if d > max {
            max = d;
            at = i;
        }
    }
    let mean = sum / got.len() as f64;
    // jfk.wav is 11 s: frames past 1100 are padding, on the floor in both.
    let speech: f64 = (0..80)
        .flat_map(|m| (0..1100).map(move |t| m * N_FRAMES + t))
        .map(|i| (got[i] - want[i]).abs() as f64)
        .sum::<f64>()
        / (80.0 * 1100.0);
    eprintln!(
        "log-mel vs reference: max |diff| {max:.3e} at [{}][{}], mean |diff| {mean:.3e} \
         (over the speech frames: {speech:.3e})",
        at / N_FRAMES,
        at % N_FRAMES
    );
    assert!(max < 2e-4, "max |diff| {max}");
    assert!(speech < 2e-6, "mean |diff| over speech {speech}");
}

#[test]
fn log_mel_pads_to_thirty_seconds_and_refuses_more() {
    let tone: Vec<f32> = (0..20_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
    let mel = LogMel::new(80).unwrap();
    let short = mel.compute(&tone).unwrap();
    let mut padded = tone.clone();
    padded.resize(N_SAMPLES, 0.0);
    assert_eq!(short, mel.compute(&padded).unwrap());
    // One sample over a window is an error (an hour of audio is not silently cut to 30 s).
    let mut long = padded.clone();
    long.push(0.0);
    match mel.compute(&long) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("480001") && m.contains("Transcriber"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn log_mel_any_band_count() {
    let tone: Vec<f32> = (0..N_SAMPLES).map(|i| (i as f32 * 0.07).sin() * 0.2).collect();
    for n_mels in [1usize, 80, 128, 256] {
        let m = log_mel_spectrogram(&tone, n_mels).unwrap();
        assert_eq!(m.len(), n_mels * N_FRAMES);
        assert!(m.iter().all(|v| v.is_finite()));
        let max = m.iter().cloned().fold(f32::MIN, f32::max);
        let min = m.iter().cloned().fold(f32::MAX, f32::min);
        // (x + 4) / 4 after clamping to max - 8: the range is at most 2.
        assert!(max - min <= 2.0 + 1e-6, "n_mels {n_mels}: {min}..{max}");
        assert_eq!(mel_filters(n_mels).unwrap().len(), n_mels * 201);
    }
    assert!(matches!(log_mel_spectrogram(&tone, 0), Err(Error::InvalidArgument(_))));
    let mut bad = tone.clone();
    bad[77] = f32::NAN;
    match log_mel_spectrogram(&bad, 80) {
        Err(Error::InvalidAudio(m)) => assert!(m.contains("77"), "{m}"),
        other => panic!("expected InvalidAudio, got {other:?}"),
    }
}

/// Not an assertion: `cargo test --release --test audio -- --ignored --nocapture` prints it.
#[test]
#[ignore]
fn log_mel_timing() {
    let samples = load_wav(&shared().join("samples/jfk.wav")).unwrap();
    for n_mels in [80usize, 128] {
        let mel = LogMel::new(n_mels).unwrap();
        let _ = mel.compute(&samples).unwrap();
        let runs = 20;
        let t = std::time::Instant::now();
        for _ in 0..runs {
            std::hint::black_box(mel.compute(&samples).unwrap());
        }
        let per = t.elapsed().as_secs_f64() * 1e3 / runs as f64;
        eprintln!("log-mel 30 s window, {n_mels} mels: {per:.2} ms");
    }
    let t = std::time::Instant::now();
    let _ = LogMel::new(128).unwrap();
    eprintln!("LogMel::new(128): {:.3} ms", t.elapsed().as_secs_f64() * 1e3);
}

// ---------------------------------------------------------------------------------------------
// WAV formats
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Fmt {
    Int(u16),
    Float,
}

const TONE_HZ: f64 = 440.0;
const TONE_AMP: f64 = 0.4;

fn tone(t: f64) -> f64 {
    TONE_AMP * (2.0 * std::f64::consts::PI * TONE_HZ * t).sin()
}

/// Channel gains with mean 1, so the down-mix equals the tone itself.
fn gains(channels: u16) -> Vec<f64> {
    match channels {
        1 => vec![1.0],
        2 => vec![1.5, 0.5],
        6 => vec![0.5, 1.5, 1.0, 1.0, 0.25, 1.75],
        _ => vec![1.0; channels as usize],
    }
}

/// A WAV holding `frames` frames of the test tone, written by hound.
fn write_wav(fmt: Fmt, channels: u16, rate: u32, frames: usize, f: impl Fn(usize, u16) -> f64) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: match fmt {
            Fmt::Int(b) => b,
            Fmt::Float => 32,
        },
        sample_format: match fmt {
            Fmt::Int(_) => hound::SampleFormat::Int,
            Fmt::Float => hound::SampleFormat::Float,
        },
    };
    let mut cur = Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
        for i in 0..frames {
            for c in 0..channels {
                let x = f(i, c);
                match fmt {
                    Fmt::Int(bits) => {
                        let full = 2f64.powi(bits as i32 - 1);
                        let q = (x * full).round().clamp(-full, full - 1.0);
                        w.write_sample(q as i32).unwrap();
                    }
                    Fmt::Float => w.write_sample(x as f32).unwrap(),
                }
            }
        }
        w.finalize().unwrap();
    }
    cur.into_inner()
}

fn tone_wav(fmt: Fmt, channels: u16, rate: u32, seconds: f64) -> Vec<u8> {
    let g = gains(channels);
    let frames = (seconds * rate as f64).round() as usize;
    write_wav(fmt, channels, rate, frames, |i, c| tone(i as f64 / rate as f64) * g[c as usize])
}

/// Every format, channel count and rate decodes to the same 16 kHz tone: same length, and equal
/// to the analytic tone (which checks amplitude, frequency and phase at once) away from the
/// first and last 10 ms, where the resampler sees the signal's hard start and end.
/// Tolerances: 8-bit quantisation (step 1/128, down-mixing adds up to six such errors) 2e-2;
/// otherwise 1e-3 (16-bit step 3e-5; the resampler's passband ripple at 440 Hz is ~1e-5).
#[test]
fn wav_formats_decode_to_the_same_tone() {
    let seconds = 0.25;
    for fmt in [Fmt::Int(8), Fmt::Int(16), Fmt::Int(24), Fmt::Int(32), Fmt::Float] {
        for channels in [1u16, 2, 6] {
            for rate in [8_000u32, 16_000, 44_100, 48_000] {
                let bytes = tone_wav(fmt, channels, rate, seconds);
                let audio = decode_wav(&bytes).unwrap_or_else(|e| panic!("{fmt:?} {channels}ch {rate}: {e}"));
                let what = format!("{fmt:?} {channels}ch {rate} Hz");
                assert_eq!(audio.source.sample_rate, rate, "{what}");
                assert_eq!(audio.source.channels, channels, "{what}");
                assert_eq!(audio.samples.len(), (seconds * 16_000.0).round() as usize, "{what}");
                let tol = if let Fmt::Int(8) = fmt { 2e-2 } else { 1e-3 };
                let mut max_err = 0.0f64;
                for (n, &y) in audio.samples.iter().enumerate().skip(160).take(audio.samples.len() - 320) {
                    max_err = max_err.max((y as f64 - tone(n as f64 / 16_000.0)).abs());
                }
                assert!(max_err < tol, "{what}: max error {max_err:.3e} over tolerance {tol:e}");
            }
        }
    }
}

/// 16-bit 16 kHz mono is read as int16 / 32768 with no resampling: bit-exact.
#[test]
fn int16_at_16k_is_exact() {
    let bytes = write_wav(Fmt::Int(16), 1, 16_000, 1000, |i, _| (i as f64 * 0.1).sin() * 0.9);
    let audio = decode_wav(&bytes).unwrap();
    for (i, &y) in audio.samples.iter().enumerate() {
        let q = ((i as f64 * 0.1).sin() * 0.9 * 32768.0).round().clamp(-32768.0, 32767.0);
        assert_eq!(y, q as f32 / 32768.0);
    }
}

#[test]
fn load_wav_reads_files_and_names_them_in_errors() {
    let dir = std::env::temp_dir().join(format!("whisper-wgpu-audio-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("tone.wav");
    std::fs::write(&good, tone_wav(Fmt::Int(16), 2, 44_100, 0.1)).unwrap();
    assert_eq!(load_wav(&good).unwrap().len(), 1600);
    let bad = dir.join("notes.wav");
    std::fs::write(&bad, b"this is a text file, not audio\n").unwrap();
    match load_wav(&bad) {
        Err(Error::Audio { path, msg }) => {
            assert_eq!(path, bad);
            assert!(msg.contains("not a WAV"), "{msg}");
        }
        other => panic!("expected Error::Audio, got {other:?}"),
    }
    assert!(matches!(load_wav(&dir.join("missing.wav")), Err(Error::Io { .. })));
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------------------------
// Resampler
// ---------------------------------------------------------------------------------------------

fn sine(freq: f64, rate: u32, n: usize) -> Vec<f32> {
    (0..n).map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin() as f32 * 0.5).collect()
}

/// 1 kHz at 44.1 kHz -> 16 kHz equals the analytic 16 kHz sine (amplitude 0.5) to within 1e-5
/// away from the first and last 10 ms. Measured 9.5e-7: f32 rounding of the 192-tap dot
/// product; the passband ripple at 1 kHz is far below that.
#[test]
fn resampled_sine_matches_analytic() {
    let x = sine(1000.0, 44_100, 44_100);
    let y = audio::resample(&x, 44_100, 16_000).unwrap();
    assert_eq!(y.len(), 16_000);
    let want = sine(1000.0, 16_000, 16_000);
    let max_err = y[160..15_840].iter().zip(&want[160..15_840]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!("1 kHz 44.1k->16k: max error {max_err:.3e}");
    assert!(max_err < 1e-5, "{max_err}");
}

/// A 12 kHz tone cannot exist at 16 kHz; without filtering it would alias to 4 kHz at full
/// amplitude. Required: at least 40 dB down; measured -140 dB (f32 noise level), so the test
/// asserts -80 dB to catch a regression in the filter design.
#[test]
fn resampler_suppresses_aliasing() {
    let x = sine(12_000.0, 48_000, 48_000);
    let y = audio::resample(&x, 48_000, 16_000).unwrap();
    let rms = |v: &[f32]| (v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    let ratio = rms(&y[400..15_600]) / rms(&x);
    let db = 20.0 * ratio.max(1e-300).log10();
    eprintln!("12 kHz at 48k -> 16k: {db:.1} dB");
    assert!(db < -80.0, "{db} dB");
}

#[test]
fn resampler_streaming_equals_one_shot() {
    for (src, dst) in [(44_100u32, 16_000u32), (48_000, 16_000), (8_000, 16_000), (22_050, 16_000), (44_099, 16_000)] {
        let x: Vec<f32> = (0..30_011).map(|i| ((i as f32 * 0.013).sin() + (i as f32 * 0.31).cos()) * 0.3).collect();
        let whole = audio::resample(&x, src, dst).unwrap();
        let mut r = Resampler::new(src, dst).unwrap();
        let mut streamed = Vec::new();
        let (mut at, mut k) = (0, 0);
        let sizes = [1usize, 7, 333, 4097, 2, 991];
        while at < x.len() {
            let n = sizes[k % sizes.len()].min(x.len() - at);
            r.process(&x[at..at + n], &mut streamed);
            at += n;
            k += 1;
        }
        r.finish(&mut streamed);
        assert_eq!(whole.len(), r.output_len(x.len() as u64) as usize);
        assert!(whole == streamed, "{src} -> {dst}: streaming differs from one-shot");
    }
}

#[test]
fn resampler_identity_is_bit_exact() {
    let x: Vec<f32> = (0..1234).map(|i| (i as f32 * 0.7).sin()).collect();
    assert_eq!(audio::resample(&x, 16_000, 16_000).unwrap(), x);
}

#[test]
fn wav_stream_equals_whole_file() {
    let bytes = tone_wav(Fmt::Int(24), 2, 44_100, 1.3);
    let whole = decode_wav(&bytes).unwrap().samples;
    for chunk in [1usize, 777, 44_100, 1 << 20] {
        let mut stream = WavStream::new(&bytes[..]).unwrap().with_chunk_frames(chunk);
        let mut got = Vec::new();
        while stream.read_chunk(&mut got).unwrap() > 0 {}
        assert!(got == whole, "chunk {chunk}");
        assert_eq!(stream.read_chunk(&mut got).unwrap(), 0);
    }
    let iterated: Vec<f32> = WavStream::new(&bytes[..]).unwrap().flat_map(|c| c.unwrap()).collect();
    assert!(iterated == whole);
}

// ---------------------------------------------------------------------------------------------
// Bad input: typed errors, never a panic
// ---------------------------------------------------------------------------------------------

fn invalid(result: whisper_wgpu::Result<audio::Audio>, needle: &str) -> String {
    match result {
        Err(Error::InvalidAudio(msg)) => {
            assert!(msg.to_lowercase().contains(needle), "message `{msg}` lacks `{needle}`");
            msg
        }
        Err(other) => panic!("expected InvalidAudio containing `{needle}`, got {other:?}"),
        Ok(a) => panic!("expected InvalidAudio containing `{needle}`, decoded {} samples", a.samples.len()),
    }
}

/// A canonical 44-byte header (PCM, `fmt ` of 16 bytes) followed by `data`.
fn header(channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let block_align = channels.wrapping_mul(bits / 8);
    let mut h = Vec::new();
    h.extend(b"RIFF");
    h.extend((36 + data.len() as u32).to_le_bytes());
    h.extend(b"WAVEfmt ");
    h.extend(16u32.to_le_bytes());
    h.extend(1u16.to_le_bytes());
    h.extend(channels.to_le_bytes());
    h.extend(rate.to_le_bytes());
    h.extend((block_align as u32).wrapping_mul(rate).to_le_bytes());
    h.extend(block_align.to_le_bytes());
    h.extend(bits.to_le_bytes());
    h.extend(b"data");
    h.extend((data.len() as u32).to_le_bytes());
    h.extend(data);
    h
}

#[test]
fn truncated_files_are_rejected() {
    let bytes = tone_wav(Fmt::Int(16), 1, 16_000, 0.1);
    invalid(decode_wav(&bytes[..30]), "truncated");
    invalid(decode_wav(&bytes[..5]), "");
    let cut = &bytes[..44 + 1000 + 1]; // 500 whole samples and half of one
    invalid(decode_wav(cut), "truncated");
    // Opting in keeps the whole frames that are there.
    let opts = WavOptions { allow_truncated: true, ..WavOptions::default() };
    let audio = decode_wav_with(cut, &opts).unwrap();
    assert_eq!(audio.samples.len(), 500);
    assert_eq!(audio.samples[..], decode_wav(&bytes).unwrap().samples[..500]);
    // Not one whole frame: nothing to keep.
    invalid(decode_wav_with(&bytes[..45], &opts), "empty");
}

#[test]
fn non_wav_input_is_rejected() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    invalid(decode_wav(&random), "not a wav");
    invalid(decode_wav(b"Hello, this is a plain text file.\nNothing to hear here.\n"), "not a wav");
    invalid(decode_wav(b""), "");
    // RIFF but not WAVE (an AVI, say).
    invalid(decode_wav(b"RIFF\x04\x00\x00\x00AVI LIST"), "not a wav");
}

#[test]
fn empty_wav_is_rejected() {
    let bytes = write_wav(Fmt::Int(16), 1, 16_000, 0, |_, _| 0.0);
    invalid(decode_wav(&bytes), "empty");
    invalid(decode_wav(&header(2, 44_100, 16, &[])), "empty");
}

#[test]
fn zero_channels_are_rejected() {
    invalid(decode_wav(&header(0, 16_000, 16, &[0; 64])), "zero channels");
}

#[test]
fn absurd_sample_rates_are_rejected() {
    invalid(decode_wav(&header(1, 1, 16, &[0; 64])), "sample rate");
    invalid(decode_wav(&header(1, 10_000_000, 16, &[0; 64])), "sample rate");
    invalid(decode_wav(&header(1, 0, 16, &[0; 64])), "sample rate");
    invalid(decode_wav(&header(1, 999, 16, &[0; 64])), "sample rate");
    assert!(decode_wav(&header(1, 1_000, 16, &[0; 64])).is_ok());
    assert!(decode_wav(&header(1, 1_000_000, 16, &[0; 64])).is_ok());
}

#[test]
fn non_finite_float_samples_are_rejected() {
    let bytes = write_wav(Fmt::Float, 1, 16_000, 4000, |i, _| if i == 1234 { f64::NAN } else { 0.1 });
    let msg = invalid(decode_wav(&bytes), "1234");
    assert!(msg.contains("NaN"), "{msg}");
    let bytes = write_wav(Fmt::Float, 2, 48_000, 4000, |i, c| if i == 3000 && c == 1 { f64::INFINITY } else { 0.1 });
    let msg = invalid(decode_wav(&bytes), "6001");
    assert!(msg.contains("channel 1"), "{msg}");
}

#[test]
fn long_audio_needs_the_stream() {
    let bytes = tone_wav(Fmt::Int(16), 1, 8_000, 0.25);
    let opts = WavOptions { max_seconds: 0.2, ..WavOptions::default() };
    invalid(decode_wav_with(&bytes, &opts), "wavstream");
    // A header that claims ~37 hours of data in a 44-byte file: refused up front, no allocation.
    let mut lying = header(1, 16_000, 16, &[]);
    lying[40..44].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    invalid(decode_wav(&lying), "limit");
    // The stream takes it and fails cleanly where the data ends.
    let mut s = WavStream::new(&lying[..]).unwrap();
    assert!(matches!(s.read_chunk(&mut Vec::new()), Err(Error::InvalidAudio(_))));
}

/// Every single-byte corruption of a valid header decodes or fails with an error; none panics.
#[test]
fn corrupted_headers_never_panic() {
    let valid = tone_wav(Fmt::Int(16), 2, 44_100, 0.05);
    let float = tone_wav(Fmt::Float, 1, 48_000, 0.05);
    for base in [valid, float] {
        for pos in 0..48 {
            for v in [0x00u8, 0x01, 0x03, 0x7f, 0x80, 0xfe, 0xff] {
                let mut b = base.clone();
                b[pos] = v;
                let _ = decode_wav(&b);
            }
        }
    }
}
