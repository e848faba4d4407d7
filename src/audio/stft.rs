//! The power spectrogram that both log-mel front ends start from, as `torch.stft` computes it
//! with `center=True, pad_mode="reflect"`, a periodic Hann window as long as the frame, power 2,
//! over one 30 s window zero-padded to 480 000 samples, hop 160, with the last of the 3001
//! frames dropped (`[..., :-1]` in both Whisper and aria-amt) -> 3000 frames.
//!
//! Arithmetic is f64 (the FFT is f64 only): quiet bins sit up to 80 dB below a frame's peak,
//! where f32 round-off would be a visible part of their energy.
use super::fft::{RealFft, C64};
use super::{HOP_LENGTH, N_FRAMES, N_SAMPLES};
use crate::{Error, Result};
use std::ops::Range;

/// The periodic Hann window of `torch.hann_window(n)`: 0.5 - 0.5 cos(2 pi i / n) for i < n.
pub fn periodic_hann(n: usize) -> Vec<f64> {
    (0..n).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()).collect()
}

/// Checks one window of samples: at most 480 000 of them, all finite.
pub(super) fn check_window(samples: &[f32]) -> Result<()> {
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
    Ok(())
}

/// Zero-pads `signal` to 480 000 samples and reflect-pads `pad` samples on both sides (torch's
/// "reflect": the edge sample is not repeated). `pad` must be below 480 000.
pub(super) fn reflect_pad(signal: &[f32], pad: usize) -> Vec<f64> {
    let mut x = vec![0.0f64; N_SAMPLES + 2 * pad];
    for (d, &s) in x[pad..].iter_mut().zip(signal) {
        *d = s as f64;
    }
    for i in 0..pad {
        x[pad - 1 - i] = x[pad + 1 + i];
        x[pad + N_SAMPLES + i] = x[pad + N_SAMPLES - 2 - i];
    }
    x
}

/// A planned power STFT of one frame length (even), reused across windows.
pub(super) struct PowerStft {
    window: Vec<f64>,
    fft: RealFft,
}

impl PowerStft {
    pub fn new(n_fft: usize) -> Self {
        PowerStft { window: periodic_hann(n_fft), fft: RealFft::new(n_fft) }
    }

    /// Frequency bins per frame, n_fft / 2 + 1.
    pub fn n_bins(&self) -> usize {
        self.fft.bins()
    }

    /// Computes |X|^2 of frames `frames` (within 0..3000) of `samples` (already checked by
    /// [`check_window`]) and hands each to `each(frame, power)` in frame order.
    pub fn for_each_frame(&self, samples: &[f32], frames: Range<usize>, mut each: impl FnMut(usize, &[f64])) {
        let n_fft = self.window.len();
        let padded = reflect_pad(samples, n_fft / 2);
        let mut frame = vec![0.0f64; n_fft];
        let mut spec = vec![C64::default(); self.n_bins()];
        let (mut s1, mut s2) = (vec![C64::default(); n_fft / 2], vec![C64::default(); n_fft / 2]);
        let mut power = vec![0.0f64; self.n_bins()];
        debug_assert!(frames.end <= N_FRAMES);
        for t in frames {
            let seg = &padded[t * HOP_LENGTH..t * HOP_LENGTH + n_fft];
            for ((f, &x), &w) in frame.iter_mut().zip(seg).zip(&self.window) {
                *f = x * w;
            }
            self.fft.forward(&frame, &mut spec, &mut s1, &mut s2);
            for (p, c) in power.iter_mut().zip(&spec) {
                *p = c.re * c.re + c.im * c.im;
            }
            each(t, &power);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_pad_mirrors_without_repeating_the_edge() {
        let p = 200;
        let s: Vec<f32> = (1..=N_SAMPLES).map(|i| i as f32).collect();
        let x = reflect_pad(&s, p);
        assert_eq!(x[p], 1.0);
        assert_eq!(x[p - 1], 2.0);
        assert_eq!(x[0], (p + 1) as f64);
        assert_eq!(x[x.len() - 1], (N_SAMPLES - p) as f64);
    }

    #[test]
    fn hann_is_periodic() {
        let w = periodic_hann(8);
        assert_eq!(w[0], 0.0);
        assert!((w[4] - 1.0).abs() < 1e-15 && (w[2] - 0.5).abs() < 1e-15 && (w[1] - w[7]).abs() < 1e-15);
    }
}
