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
use super::stft::{check_window, PowerStft};
use super::{N_FFT, N_FRAMES, N_FREQS, SAMPLE_RATE};
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
pub(super) struct Band {
    start: usize,
    weights: Vec<f64>,
}

impl Band {
    /// The bands of a dense `[n_mels][n_freqs]` filterbank.
    pub fn from_dense(dense: &[f64], n_freqs: usize) -> Vec<Band> {
        dense
            .chunks_exact(n_freqs)
            .map(|row| {
                let start = row.iter().position(|&v| v != 0.0).unwrap_or(0);
                let end = row.iter().rposition(|&v| v != 0.0).map_or(start, |e| e + 1);
                Band { start, weights: row[start..end].to_vec() }
            })
            .collect()
    }

    /// The band's energy in one frame's power spectrum.
    #[inline]
    pub fn energy(&self, power: &[f64]) -> f64 {
        let p = &power[self.start..self.start + self.weights.len()];
        p.iter().zip(&self.weights).map(|(a, b)| a * b).sum()
    }
}

/// The first half of the normalisation Whisper and aria-amt share: log10(max(x, 1e-10)) in
/// place; returns the largest log, from which the floor is taken.
pub(super) fn log10_energies(energies: &mut [f64]) -> f64 {
    let mut max = f64::NEG_INFINITY;
    for e in energies.iter_mut() {
        *e = e.max(1e-10).log10();
        max = max.max(*e);
    }
    max
}

/// The second half: max(x, `max` - 8), then (x + 4) / 4, with `max` over the whole window, from
/// frame-major `logs` (`[3000][n_mels]`) into `out` (`[n_mels][3000]` row-major).
pub(super) fn floor_and_scale(logs: &[f64], n_mels: usize, max: f64, out: &mut [f32]) {
    let floor = max - 8.0;
    for (t, row) in logs.chunks_exact(n_mels).enumerate() {
        for (m, &v) in row.iter().enumerate() {
            out[m * N_FRAMES + t] = ((v.max(floor) + 4.0) / 4.0) as f32;
        }
    }
}

/// Checks that a caller's output buffer holds `n_mels x 3000` values.
pub(super) fn check_out_len(out: &[f32], n_mels: usize) -> Result<()> {
    if out.len() != n_mels * N_FRAMES {
        return Err(Error::InvalidArgument(format!(
            "log-mel output buffer holds {} values, expected {n_mels} x {N_FRAMES}",
            out.len()
        )));
    }
    Ok(())
}

/// A planned log-mel extractor: window, FFT plan and filterbank built once, reused per window.
pub struct LogMel {
    n_mels: usize,
    stft: PowerStft,
    bands: Vec<Band>,
}

impl LogMel {
    /// Plans the extractor for `n_mels` bands (80 and 128 for Whisper, 256 for the music model).
    pub fn new(n_mels: usize) -> Result<Self> {
        check_n_mels(n_mels)?;
        let bands = Band::from_dense(&mel_filters_f64(n_mels), N_FREQS);
        Ok(LogMel { n_mels, stft: PowerStft::new(N_FFT), bands })
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
        check_out_len(out, self.n_mels)?;
        check_window(samples)?;
        // Mel energies, frame-major while computing; transposed at the end.
        let mut energies = vec![0.0f64; N_FRAMES * self.n_mels];
        self.stft.for_each_frame(samples, 0..N_FRAMES, |t, power| {
            let row = &mut energies[t * self.n_mels..(t + 1) * self.n_mels];
            for (e, band) in row.iter_mut().zip(&self.bands) {
                *e = band.energy(power);
            }
        });
        let max = log10_energies(&mut energies);
        floor_and_scale(&energies, self.n_mels, max, out);
        Ok(())
    }
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
}
