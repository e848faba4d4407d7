//! aria-amt's audio front end against what its Python computes (`../shared/reference/aria-amt-random`,
//! see its README): the log-mel of two windows of piano_synth.wav and the pieces that make it, and
//! the silent intervals of every window of the plain and the gapped piano_synth audio.
use std::path::{Path, PathBuf};
use whisper_wgpu::audio::{
    aria_mel_filters, frame_levels_db, load_wav, periodic_hann, silent_intervals_ms, AriaLogMel, FrontEnd,
    FrontEndKind, N_FRAMES, N_SAMPLES,
};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared").join(rel)
}

fn reference(file: &str) -> PathBuf {
    shared("reference/aria-amt-random").join(file)
}

/// The tensors of one safetensors file.
struct Tensors(Vec<u8>);

impl Tensors {
    fn open(file: &str) -> Self {
        let path = reference(file);
        Tensors(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }

    fn get(&self, key: &str, dtype: safetensors::Dtype) -> (Vec<usize>, Vec<u8>) {
        let st = safetensors::SafeTensors::deserialize(&self.0).expect("valid safetensors");
        let t = st.tensor(key).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(t.dtype(), dtype, "{key}");
        (t.shape().to_vec(), t.data().to_vec())
    }

    fn f32(&self, key: &str) -> (Vec<usize>, Vec<f32>) {
        let (shape, data) = self.get(key, safetensors::Dtype::F32);
        (shape, data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
    }

    fn i64(&self, key: &str) -> Vec<i64> {
        let data = self.get(key, safetensors::Dtype::I64).1;
        data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect()
    }
}

/// piano_synth.wav as aria-amt reads it: int16 / 32768, which `load_wav` must give exactly.
fn piano() -> Vec<f32> {
    let path = shared("samples/piano_synth.wav");
    let samples = load_wav(&path).unwrap();
    let mut reader = hound::WavReader::open(&path).unwrap();
    let ints: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
    assert_eq!(samples.len(), ints.len());
    assert!(samples.iter().zip(&ints).all(|(&f, &i)| f == i as f32 / 32768.0), "load_wav is not int16/32768");
    samples
}

/// Window k of a file: samples [160000 k, 160000 k + 480000), zero-padded past the end.
fn window(samples: &[f32], k: usize) -> Vec<f32> {
    let start = (160_000 * k).min(samples.len());
    let mut w = samples[start..(start + N_SAMPLES).min(samples.len())].to_vec();
    w.resize(N_SAMPLES, 0.0);
    w
}

/// Max |a - b| over paired values.
fn max_abs_diff(a: impl IntoIterator<Item = f64>, b: impl IntoIterator<Item = f64>) -> f64 {
    a.into_iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// torch builds the window in float32 (i * 2 pi / n, cos, * -0.5 + 0.5), so it is a few f32 ulps
/// from our f64 one: measured 2.5e-7 (n 800), 2.0e-7 (n 2048). Tolerance 1e-6.
#[test]
fn hann_windows_match() {
    let fe = Tensors::open("frontend.safetensors");
    for n in [2048, 800] {
        let (shape, want) = fe.f32(&format!("hann_{n}"));
        assert_eq!(shape, vec![n]);
        let d = max_abs_diff(periodic_hann(n), want.iter().map(|&v| v as f64));
        eprintln!("hann_{n}: max |diff| {d:.3e}");
        assert!(d <= 1e-6, "hann_{n}: {d:.3e}");
    }
}

/// Bit-identical (see `corner_hz` in aria_mel.rs for how): with torchaudio's own float32 filter
/// weights, the log-mel differs from the reference only by the reference's float32 STFT.
#[test]
fn filterbanks_match() {
    let fe = Tensors::open("frontend.safetensors");
    let (large, small) = aria_mel_filters();
    for (name, n_fft, n_mels, got) in [("large", 2048, 384, large), ("small", 800, 128, small)] {
        let n_freqs = n_fft / 2 + 1;
        assert_eq!(fe.i64(&format!("mel_fb_{name}_shape")), vec![n_freqs as i64, n_mels as i64]);
        let index = fe.i64(&format!("mel_fb_{name}_coo_index"));
        let (_, value) = fe.f32(&format!("mel_fb_{name}_coo_value"));
        // Reference, transposed to our [n_mels][n_freqs].
        let mut want = vec![0.0f32; n_mels * n_freqs];
        for (ij, &v) in index.chunks_exact(2).zip(&value) {
            want[ij[1] as usize * n_freqs + ij[0] as usize] = v;
        }
        let differ = got.iter().zip(&want).filter(|(g, w)| g.to_bits() != w.to_bits()).count();
        let d = max_abs_diff(got.iter().map(|&v| v as f64), want.iter().map(|&v| v as f64));
        eprintln!("mel_fb_{name}: {} nonzeros, {differ} weights differ, max |diff| {d:.3e}", value.len());
        assert_eq!(differ, 0, "mel_fb_{name}: max |diff| {d:.3e}");
    }
}

/// The reference is torch's float32 STFT; ours is f64. An f32 FFT's error is a few eps * log2(n)
/// of the frame's peak, not of each bin, so the error is measured relative to each frame's peak:
/// measured 2.7e-7 (power n_fft 2048), 4.5e-7 (power n_fft 800), 2.7e-7 (mel energies).
/// Tolerance 5e-6 for all three.
#[test]
fn stages_match() {
    let fe = Tensors::open("frontend.safetensors");
    let st = AriaLogMel::new().stages(&window(&piano(), 0), 10).unwrap();
    for (key, got, rows) in [
        ("power_large_window0_frames0_9", &st.power_large, 1025),
        ("power_small_window0_frames0_9", &st.power_small, 401),
        ("mel_power_window0_frames0_9", &st.mel_power, 512),
    ] {
        let (shape, want) = fe.f32(key);
        assert_eq!(shape, vec![rows, 10]);
        // Reference [rows][10], ours [10][rows]: error per frame relative to that frame's peak.
        let mut worst = 0.0f64;
        for t in 0..10 {
            let ours = &got[t * rows..(t + 1) * rows];
            let peak = ours.iter().copied().fold(0.0, f64::max);
            let d = max_abs_diff(ours.iter().copied(), (0..rows).map(|r| want[r * 10 + t] as f64));
            worst = worst.max(d / peak);
        }
        eprintln!("{key}: max |diff| / frame peak {worst:.3e}");
        assert!(worst <= 5e-6, "{key}: {worst:.3e}");
    }
}

/// The README measures 5.2e-5 between float32 and float64 runs of aria-amt's own code; ours is the
/// float64 side (with torchaudio's exact float32 filter weights), and measures max |diff| 5.13e-5
/// in both windows (band 380, a bin just above the max - 8 floor: a quiet bin 80 dB below the
/// window's peak, where the reference's f32 round-off is largest), mean 2.3e-7 / 2.0e-7.
/// Tolerance: max 1e-4 (the README's bound for an f32 port), mean 2e-6.
#[test]
fn log_mel_matches() {
    let fe = Tensors::open("frontend.safetensors");
    let piano = piano();
    let mel = FrontEnd::new(FrontEndKind::AriaAmt).unwrap();
    for k in [0, 2] {
        let (shape, want) = fe.f32(&format!("log_mel_window{k}"));
        assert_eq!(shape, vec![512, N_FRAMES]);
        let got = mel.compute(&window(&piano, k)).unwrap();
        let diffs: Vec<f64> = got.iter().zip(&want).map(|(&g, &w)| (g as f64 - w as f64).abs()).collect();
        let (i, d) = diffs.iter().copied().enumerate().fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
        let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
        // (max - 8 + 4) / 4 = max' - 2 in output units.
        let floor = want.iter().copied().fold(f32::NEG_INFINITY, f32::max) - 2.0;
        eprintln!(
            "log_mel_window{k}: max |diff| {d:.3e} at [{}][{}] (ref {}, floor {floor}), mean {mean:.3e}",
            i / N_FRAMES,
            i % N_FRAMES,
            want[i]
        );
        assert!(d <= 1e-4 && mean <= 2e-6, "log_mel_window{k}: max {d:.3e}, mean {mean:.3e}");
    }
}

fn read_json(file: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(reference(file)).unwrap()).unwrap()
}

/// One window of a reference run: its samples [start, end) of the file and its silent intervals.
struct RecordedWindow {
    span: (usize, usize),
    silent_ms: Vec<(u32, u32)>,
}

fn recorded_windows(json: &serde_json::Value) -> Vec<RecordedWindow> {
    let int = |v: &serde_json::Value| v.as_u64().unwrap();
    let windows = json["windows"].as_array().unwrap().iter();
    windows
        .map(|w| RecordedWindow {
            span: (int(&w["audio_samples"][0]) as usize, int(&w["audio_samples"][1]) as usize),
            silent_ms: w["silent_intervals_ms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (int(&p[0]) as u32, int(&p[1]) as u32))
                .collect(),
        })
        .collect()
}

fn check_silences(samples: &[f32], file: &str) {
    for (k, w) in recorded_windows(&read_json(file)).iter().enumerate() {
        assert_eq!(w.span, (160_000 * k, 160_000 * k + N_SAMPLES), "{file} window {k}");
        let got = silent_intervals_ms(&window(samples, k));
        eprintln!("{file} window {k}: {got:?}");
        assert_eq!(got, w.silent_ms, "{file} window {k}");
    }
}

/// piano_synth [0, 20 s) + 8 s of zeros + the rest, as the reference README builds it.
fn gapped(piano: &[f32]) -> Vec<f32> {
    piano[..320_000].iter().chain(&vec![0.0; 128_000]).chain(&piano[320_000..]).copied().collect()
}

/// Exact equality: the intervals are integers. A frame's level is compared with -45 dB; librosa
/// works in float32, we in f64, so a frame within float32 round-off of the threshold could differ
/// (none does here: see `silence_levels_keep_clear_of_the_threshold`).
#[test]
fn silent_intervals_of_piano_synth() {
    check_silences(&piano(), "pipeline_piano_synth.json");
}

#[test]
fn silent_intervals_of_the_gapped_audio() {
    use sha2::{Digest, Sha256};
    let gapped = gapped(&piano());
    let json = read_json("silence_gap_random.json");
    assert_eq!(json["audio"]["n_samples"].as_u64(), Some(gapped.len() as u64));
    let pcm: Vec<u8> = gapped.iter().flat_map(|&v| ((v * 32768.0) as i16).to_le_bytes()).collect();
    let sha: String = Sha256::digest(&pcm).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(json["audio"]["pcm_int16_sha256"].as_str(), Some(sha.as_str()));
    check_silences(&gapped, "silence_gap_random.json");
}

/// How close any frame of the reference windows comes to the -45 dB threshold: far more than
/// float32 round-off (~1e-5 dB) means librosa's float32 and our f64 agree on every frame.
#[test]
fn silence_levels_keep_clear_of_the_threshold() {
    let piano = piano();
    let gapped = gapped(&piano);
    let mut closest = f64::INFINITY;
    for (audio, n_windows) in [(&piano, 4), (&gapped, 5)] {
        for k in 0..n_windows {
            let levels = frame_levels_db(&window(audio, k));
            assert_eq!(levels.len(), 938);
            closest = levels.iter().map(|db| (db + 45.0).abs()).fold(closest, f64::min);
        }
    }
    eprintln!("closest frame level to -45 dB: {closest:.3e} dB away");
    assert!(closest > 1e-3, "{closest:.3e} dB");
}

/// Not an assertion: `cargo test --release --test aria_frontend -- --ignored --nocapture`.
#[test]
#[ignore]
fn aria_log_mel_timing() {
    let w = window(&piano(), 0);
    let t = std::time::Instant::now();
    let mel = AriaLogMel::new();
    eprintln!("AriaLogMel::new: {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
    let mut out = vec![0.0f32; 512 * N_FRAMES];
    mel.compute_into(&w, &mut out).unwrap();
    let n = 10;
    let t = std::time::Instant::now();
    for _ in 0..n {
        mel.compute_into(&w, &mut out).unwrap();
    }
    eprintln!("aria-amt log-mel, one 30 s window: {:.1} ms", t.elapsed().as_secs_f64() * 1e3 / n as f64);
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(silent_intervals_ms(&w));
    }
    eprintln!("silent_intervals_ms, one window: {:.2} ms", t.elapsed().as_secs_f64() * 1e3 / n as f64);
}
