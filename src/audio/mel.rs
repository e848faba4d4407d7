//! Whisper's log-mel spectrogram, step for step as OpenAI's `log_mel_spectrogram` and Hugging
//! Face's `WhisperFeatureExtractor` compute it for one 30 s window:
//!
//! 1. pad with zeros to 480 000 samples (more is an error: one window at a time);
//! 2. STFT: n_fft 400, hop 160, periodic Hann window, reflect padding of 200 on both sides
//!    (torch.stft center=True, pad_mode="reflect") -> 3001 frames of 201 bins;
//! 3. power |X|^2, dropping the last frame (`stft[..., :-1]`) -> 3000 frames;
//! 4. Slaney mel filterbank (librosa.filters.mel(sr=16000, n_fft=400, n_mels), fmax 8000);
//! 5. log10(max(x, 1e-10)), then max(x, max_over_window - 8), then (x + 4) / 4.
//!
//! The STFT and filterbank run in f64 and only the result is rounded to f32.
use super::fft::{RealFft, C64};
use super::{HOP_LENGTH, N_FFT, N_FRAMES, N_FREQS, N_SAMPLES, SAMPLE_RATE};
use crate::{Error, Result};

/// Largest mel count accepted: beyond a few hundred most filters are empty (the bins are 40 Hz
/// apart), so anything larger is a config error rather than a model.
pub const MAX_MELS: usize = 1024;

/// Slaney's mel scale (librosa `htk=False`): linear below 1 kHz, logarithmic above.
fn hz_to_mel(f: f64) -> f64 {
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = 15.0;
    // Same operation order as HF's `hertz_to_mel(mel_scale="slaney")`.
    if f >= MIN_LOG_HZ {
        MIN_LOG_MEL + (f / MIN_LOG_HZ).ln() * (27.0 / 6.4f64.ln())
    } else {
        3.0 * f / 200.0
    }
}

fn mel_to_hz(m: f64) -> f64 {
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = 15.0;
    if m >= MIN_LOG_MEL {
        MIN_LOG_HZ * ((6.4f64.ln() / 27.0) * (m - MIN_LOG_MEL)).exp()
    } else {
        200.0 * m / 3.0
    }
}

fn check_n_mels(n_mels: usize) -> Result<()> {
    if n_mels == 0 || n_mels > MAX_MELS {
        return Err(Error::InvalidArgument(format!("n_mels must be in 1..={MAX_MELS}, got {n_mels}")));
    }
    Ok(())
}

/// The filterbank in f64, `[n_mels][N_FREQS]` row-major.
fn mel_filters_f64(n_mels: usize) -> Vec<f64> {
    let (mel_min, mel_max) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE as f64 / 2.0));
    // np.linspace(mel_min, mel_max, n_mels + 2): start + i * step, last point exactly mel_max.
    let step = (mel_max - mel_min) / (n_mels + 1) as f64;
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| if i == n_mels + 1 { mel_max } else { mel_min + i as f64 * step })
        .map(mel_to_hz)
        .collect();
    let bin_hz = SAMPLE_RATE as f64 / N_FFT as f64;
    let mut w = vec![0.0; n_mels * N_FREQS];
    for m in 0..n_mels {
        let (lo, mid, hi) = (edges[m], edges[m + 1], edges[m + 2]);
        // Slaney normalisation: each triangle has unit area in Hz (times 2 / width).
        let enorm = 2.0 / (hi - lo);
        for (k, v) in w[m * N_FREQS..(m + 1) * N_FREQS].iter_mut().enumerate() {
            let f = k as f64 * bin_hz;
            let up = (f - lo) / (mid - lo);
            let down = (hi - f) / (hi - mid);
            *v = up.min(down).max(0.0) * enorm;
        }
    }
    w
}

/// Whisper's mel filterbank for `n_mels` bands over the 201 STFT bins, `[n_mels][201]` row-major,
/// equal (to f32 rounding) to `librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels)`.
pub fn mel_filters(n_mels: usize) -> Result<Vec<f32>> {
    check_n_mels(n_mels)?;
    Ok(mel_filters_f64(n_mels).into_iter().map(|v| v as f32).collect())
}

/// One mel band stored sparsely: its nonzero bins are `start..start + weights.len()`.
struct Band {
    start: usize,
    weights: Vec<f64>,
}

/// A planned log-mel extractor: window, FFT plan and filterbank built once, reused per window.
pub struct LogMel {
    n_mels: usize,
    window: Vec<f64>,
    fft: RealFft,
    bands: Vec<Band>,
}

impl LogMel {
    /// Plans the extractor for `n_mels` bands (80 and 128 for Whisper, 256 for the music model).
    pub fn new(n_mels: usize) -> Result<Self> {
        check_n_mels(n_mels)?;
        let dense = mel_filters_f64(n_mels);
        let bands = dense
            .chunks_exact(N_FREQS)
            .map(|row| {
                let start = row.iter().position(|&v| v != 0.0).unwrap_or(0);
                let end = row.iter().rposition(|&v| v != 0.0).map_or(start, |e| e + 1);
                Band { start, weights: row[start..end].to_vec() }
            })
            .collect();
        // Periodic Hann (torch.hann_window default): 0.5 - 0.5 cos(2 pi i / N), i < N.
        let window =
            (0..N_FFT).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos()).collect();
        Ok(LogMel { n_mels, window, fft: RealFft::new(N_FFT), bands })
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Log-mel of one 30 s window: `samples` (16 kHz mono, at most 480 000 of them) are
    /// zero-padded to 480 000, and the result is `[n_mels][3000]` row-major. The max normalisation is over this
    /// window only, as in HF's per-chunk feature extraction.
    pub fn compute(&self, samples: &[f32]) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.n_mels * N_FRAMES];
        self.compute_into(samples, &mut out)?;
        Ok(out)
    }

    /// As [`LogMel::compute`], writing into `out` (length `n_mels * 3000`).
    pub fn compute_into(&self, samples: &[f32], out: &mut [f32]) -> Result<()> {
        if out.len() != self.n_mels * N_FRAMES {
            return Err(Error::InvalidArgument(format!(
                "log-mel output buffer holds {} values, expected {} x {N_FRAMES}",
                out.len(),
                self.n_mels
            )));
        }
        // Longer audio is an error, not trimmed: dropping all but the first 30 s silently would
        // lose what a caller meant to transcribe (the long-form `Transcriber` streams windows).
        if samples.len() > N_SAMPLES {
            return Err(Error::InvalidArgument(format!(
                "{} samples are longer than one 30 s window ({N_SAMPLES}); transcribe longer audio \
                 with transcribe::Transcriber, which streams it window by window",
                samples.len()
            )));
        }
        if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidAudio(format!("sample {i} is {} (audio must be finite)", samples[i])));
        }
        let signal = samples;
        let padded = reflect_pad(signal);

        let mut frame = vec![0.0f64; N_FFT];
        let mut spec = vec![C64::default(); self.fft.bins()];
        let (mut s1, mut s2) = (vec![C64::default(); N_FFT / 2], vec![C64::default(); N_FFT / 2]);
        let mut power = vec![0.0f64; N_FREQS];
        // log10 values, frame-major while computing; transposed at the end.
        let mut logs = vec![0.0f64; N_FRAMES * self.n_mels];
        let mut max = f64::NEG_INFINITY;
        for t in 0..N_FRAMES {
            let seg = &padded[t * HOP_LENGTH..t * HOP_LENGTH + N_FFT];
            for ((f, &x), &w) in frame.iter_mut().zip(seg).zip(&self.window) {
                *f = x * w;
            }
            self.fft.forward(&frame, &mut spec, &mut s1, &mut s2);
            for (p, c) in power.iter_mut().zip(&spec) {
                *p = c.re * c.re + c.im * c.im;
            }
            let row = &mut logs[t * self.n_mels..(t + 1) * self.n_mels];
            for (l, band) in row.iter_mut().zip(&self.bands) {
                let p = &power[band.start..band.start + band.weights.len()];
                let e: f64 = p.iter().zip(&band.weights).map(|(a, b)| a * b).sum();
                *l = e.max(1e-10).log10();
                max = max.max(*l);
            }
        }
        let floor = max - 8.0;
        for t in 0..N_FRAMES {
            for m in 0..self.n_mels {
                let v = logs[t * self.n_mels + m].max(floor);
                out[m * N_FRAMES + t] = ((v + 4.0) / 4.0) as f32;
            }
        }
        Ok(())
    }
}

/// Zero-pads `signal` to 480 000 samples and reflect-pads n_fft/2 on both sides (torch's
/// "reflect": the edge sample is not repeated).
fn reflect_pad(signal: &[f32]) -> Vec<f64> {
    const P: usize = N_FFT / 2;
    let mut x = vec![0.0f64; N_SAMPLES + 2 * P];
    for (d, &s) in x[P..].iter_mut().zip(signal) {
        *d = s as f64;
    }
    for i in 0..P {
        x[P - 1 - i] = x[P + 1 + i];
        x[P + N_SAMPLES + i] = x[P + N_SAMPLES - 2 - i];
    }
    x
}

/// Log-mel spectrogram of one 30 s window of 16 kHz mono audio: `[n_mels][3000]` row-major.
/// Plans a [`LogMel`] each call; keep a `LogMel` when computing many windows.
pub fn log_mel_spectrogram(samples: &[f32], n_mels: usize) -> Result<Vec<f32>> {
    LogMel::new(n_mels)?.compute(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_scale_round_trips() {
        for f in [0.0, 100.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(f)) - f).abs() < 1e-9);
        }
    }

    #[test]
    fn reflect_pad_mirrors_without_repeating_the_edge() {
        let s: Vec<f32> = (1..=N_SAMPLES).map(|i| i as f32).collect();
        let x = reflect_pad(&s);
        assert_eq!(x[N_FFT / 2], 1.0);
        assert_eq!(x[N_FFT / 2 - 1], 2.0);
        assert_eq!(x[0], (N_FFT / 2 + 1) as f64);
        assert_eq!(x[x.len() - 1], (N_SAMPLES - N_FFT / 2) as f64);
    }
}
