//! EleutherAI aria-amt's log-mel spectrogram (`AudioTransform.log_mel` without augmentation), step
//! for step, for one 30 s window:
//!
//! 1. pad with zeros to 480 000 samples (more is an error: one window at a time);
//! 2. two power STFTs, hop 160, periodic Hann, centred with reflect padding, last frame dropped:
//!    n_fft 2048 (1025 bins) and n_fft 800 (401 bins), 3000 frames each;
//! 3. torchaudio `MelScale` filterbanks (HTK mel scale, `norm=None`): 384 mels over 30-8000 Hz on
//!    the large spectrum, 128 mels over 30-4000 Hz on the small one, concatenated large first
//!    -> 512 x 3000 (the n_fft-2048/256-mel "medium" spectrogram upstream computes is unused);
//! 4. `norm_mel`: log10(max(x, 1e-10)), floored at (max over the window - 8), then (x + 4) / 4.
//!
//! Precision: the STFT, mel energies and log run in f64 and only the result is rounded to f32
//! (torch runs them in f32; quiet bins 80 dB below a frame's peak are where f32 round-off shows,
//! and the README of the reference files measures 5.2e-5 between upstream's f32 and f64 runs).
//! The filter weights are torchaudio's own f32 values, bit for bit (see `corner_hz`): the same
//! formula in f64 differs by up to 5.5e-5 per weight, which moves the log-mel by up to 1.1e-3
//! where a strong partial sits on a triangle's foot.
use super::mel::{check_out_len, floor_and_scale, log10_energies, Band};
use super::stft::{check_window, PowerStft};
use super::{N_FRAMES, SAMPLE_RATE};
use crate::Result;
use std::ops::Range;

/// aria-amt's mel band count: 384 from the n_fft-2048 spectrum, then 128 from the n_fft-800 one.
pub const ARIA_N_MELS: usize = 512;

/// One spectrogram + filterbank pair of aria-amt's front end.
struct BranchSpec {
    n_fft: usize,
    n_mels: usize,
    f_min: f64,
    f_max: f64,
    /// Corrections, in f32 ulps, to 10^(m / 2595) at these corner indices: see [`corner_hz`].
    pow_ulps: &'static [(u16, i8)],
}

#[rustfmt::skip]
const LARGE: BranchSpec = BranchSpec { n_fft: 2048, n_mels: 384, f_min: 30.0, f_max: 8000.0, pow_ulps: &[
    (4, -1), (22, -1), (46, 1), (49, 1), (59, 1), (60, 1), (69, -1), (70, -1), (90, 1), (91, 1), (93, 1),
    (94, 1), (118, 1), (128, -1), (135, -1), (139, -2), (143, -2), (145, -1), (147, -1), (149, -1),
    (151, -2), (153, -1), (155, -1), (160, -1), (162, -2), (164, -1), (166, -1), (168, -1), (170, -2),
    (172, -1), (174, -2), (176, -2), (187, -2), (189, -2), (191, -2), (244, -1), (245, 1), (249, 1),
    (253, 1), (256, 1), (263, -2), (272, 2), (287, -3), (295, -4), (298, 2), (306, 2), (310, -5),
    (329, 1), (376, -1),
] };

#[rustfmt::skip]
const SMALL: BranchSpec = BranchSpec { n_fft: 800, n_mels: 128, f_min: 30.0, f_max: 4000.0, pow_ulps: &[
    (18, 1), (22, 1), (25, 1), (34, 1), (52, -1), (55, 1), (56, 1), (62, -2), (70, -1), (71, 2), (72, 1),
    (80, -1), (92, 2), (93, 1), (94, 1), (101, -2), (102, -2),
] };

/// HTK mel scale (torchaudio `mel_scale="htk"`), in f64 as Python computes the end points.
fn hz_to_mel_htk(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

/// `torch.linspace(start, end, steps)` in f32 (its scalar kernel): the first half counts up from
/// `start`, the second half down from `end`, so both ends are exact.
fn linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    let step = (end - start) / (steps - 1) as f32;
    (0..steps)
        .map(|i| if i < steps / 2 { start + step * i as f32 } else { end - step * (steps - 1 - i) as f32 })
        .collect()
}

/// torchaudio's f32 corner frequencies `700 * (10 ** (m / 2595) - 1)`, m = linspace(mel(f_min),
/// mel(f_max), n_mels + 2). Torch's vectorised float32 kernels land 10^(m / 2595) up to a few ulps
/// from what this computes (correctly rounded) at some corners, and `10^x - 1` cancels, so one
/// ulp there moves a 40 Hz corner by ~30 ulps and a filter weight by up to 5e-5; `pow_ulps`
/// (recovered from torchaudio 2.8's filterbanks, x86-64) puts those corners back where torch has
/// them, which makes both filterbanks bit-identical to torchaudio's.
fn corner_hz(spec: &BranchSpec) -> Vec<f32> {
    let (lo, hi) = (hz_to_mel_htk(spec.f_min) as f32, hz_to_mel_htk(spec.f_max) as f32);
    let mut pow: Vec<f32> =
        linspace_f32(lo, hi, spec.n_mels + 2).into_iter().map(|m| 10f64.powf((m / 2595.0) as f64) as f32).collect();
    for &(i, ulps) in spec.pow_ulps {
        // The powers are positive, so their bit patterns count ulps.
        pow[i as usize] = f32::from_bits(pow[i as usize].to_bits().wrapping_add_signed(ulps as i32));
    }
    pow.into_iter().map(|p| 700.0 * (p - 1.0)).collect()
}

/// torchaudio `melscale_fbanks(n_fft / 2 + 1, f_min, f_max, n_mels, 16000, norm=None,
/// mel_scale="htk")` with its float32 arithmetic, transposed to `[n_mels][n_fft / 2 + 1]`.
fn mel_filters(spec: &BranchSpec) -> Vec<f32> {
    let n_freqs = spec.n_fft / 2 + 1;
    let corners = corner_hz(spec);
    // all_freqs = linspace(0, sample_rate // 2, n_freqs): exactly the FFT bin frequencies.
    let bin_hz = (SAMPLE_RATE / 2) as f32 / (n_freqs - 1) as f32;
    let mut w = vec![0.0f32; spec.n_mels * n_freqs];
    for (row, c) in w.chunks_exact_mut(n_freqs).zip(corners.windows(3)) {
        let (lo_width, hi_width) = (c[1] - c[0], c[2] - c[1]);
        for (k, v) in row.iter_mut().enumerate() {
            let f = k as f32 * bin_hz;
            // Torch's operation order: slopes = corner - f, rising = -slopes / width.
            let rising = -(c[0] - f) / lo_width;
            let falling = (c[2] - f) / hi_width;
            *v = rising.min(falling).max(0.0);
        }
    }
    w
}

/// aria-amt's two filterbanks, `[n_mels][n_fft / 2 + 1]` row-major, bit-identical to torchaudio's
/// `MelScale(...).fb` (which is the transpose): (n_fft 2048, 384 mels, 30-8000 Hz) and (n_fft 800,
/// 128 mels, 30-4000 Hz), HTK scale, no normalisation.
pub fn aria_mel_filters() -> (Vec<f32>, Vec<f32>) {
    (mel_filters(&LARGE), mel_filters(&SMALL))
}

/// One planned spectrogram with its filterbank.
struct Branch {
    stft: PowerStft,
    bands: Vec<Band>,
    /// Where this branch's bands start in the 512-band output (large first).
    offset: usize,
}

impl Branch {
    fn new(spec: &BranchSpec, offset: usize) -> Self {
        let dense: Vec<f64> = mel_filters(spec).into_iter().map(f64::from).collect();
        Branch { stft: PowerStft::new(spec.n_fft), bands: Band::from_dense(&dense, spec.n_fft / 2 + 1), offset }
    }
}

/// The stages before the log for the first frames of a window, to check a port step by step
/// (aria-amt's reference files store them): f64, frame-major.
pub struct AriaStages {
    /// n_fft 2048 power spectrum, `[frames][1025]`.
    pub power_large: Vec<f64>,
    /// n_fft 800 power spectrum, `[frames][401]`.
    pub power_small: Vec<f64>,
    /// The concatenated mel energies (384 large, then 128 small), `[frames][512]`.
    pub mel_power: Vec<f64>,
}

/// aria-amt's planned log-mel extractor: two STFT plans and filterbanks, reused per window.
pub struct AriaLogMel {
    large: Branch,
    small: Branch,
}

impl Default for AriaLogMel {
    fn default() -> Self {
        Self::new()
    }
}

impl AriaLogMel {
    pub fn new() -> Self {
        AriaLogMel { large: Branch::new(&LARGE, 0), small: Branch::new(&SMALL, LARGE.n_mels) }
    }

    /// Log-mel of one 30 s window: `samples` (16 kHz mono, at most 480 000) are zero-padded to
    /// 480 000; the result is `[512][3000]` row-major, normalised by this window's maximum.
    pub fn compute(&self, samples: &[f32]) -> Result<Vec<f32>> {
        let mut out = vec![0.0; ARIA_N_MELS * N_FRAMES];
        self.compute_into(samples, &mut out)?;
        Ok(out)
    }

    /// As [`AriaLogMel::compute`], writing into `out` (length 512 * 3000). Frames are split
    /// over up to 4 threads (a window is ~0.1 s of work on one core).
    pub fn compute_into(&self, samples: &[f32], out: &mut [f32]) -> Result<()> {
        check_out_len(out, ARIA_N_MELS)?;
        check_window(samples)?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        let per_thread = N_FRAMES.div_ceil(threads);
        let mut logs = vec![0.0f64; N_FRAMES * ARIA_N_MELS];
        let max = std::thread::scope(|s| {
            let parts: Vec<_> = logs
                .chunks_mut(per_thread * ARIA_N_MELS)
                .enumerate()
                .map(|(i, rows)| {
                    let first = i * per_thread;
                    let frames = first..first + rows.len() / ARIA_N_MELS;
                    s.spawn(move || {
                        self.mel_energies(samples, frames, rows);
                        log10_energies(rows)
                    })
                })
                .collect();
            parts.into_iter().map(|p| p.join().expect("log-mel thread panicked")).fold(f64::NEG_INFINITY, f64::max)
        });
        // norm_mel's floor comes from the max over the whole window, both spectrograms.
        floor_and_scale(&logs, ARIA_N_MELS, max, out);
        Ok(())
    }

    /// The mel energies of `frames`, into frame-major `rows` (`[frames.len()][512]`).
    fn mel_energies(&self, samples: &[f32], frames: Range<usize>, rows: &mut [f64]) {
        for branch in [&self.large, &self.small] {
            branch.stft.for_each_frame(samples, frames.clone(), |t, power| {
                let row = &mut rows[(t - frames.start) * ARIA_N_MELS + branch.offset..][..branch.bands.len()];
                for (e, band) in row.iter_mut().zip(&branch.bands) {
                    *e = band.energy(power);
                }
            });
        }
    }

    /// The power spectra and mel energies of frames `0..n_frames` (at most 3000) of a window.
    pub fn stages(&self, samples: &[f32], n_frames: usize) -> Result<AriaStages> {
        check_window(samples)?;
        let n_frames = n_frames.min(N_FRAMES);
        let power = |stft: &PowerStft| {
            let mut p = Vec::with_capacity(n_frames * stft.n_bins());
            stft.for_each_frame(samples, 0..n_frames, |_, power| p.extend_from_slice(power));
            p
        };
        let mut mel_power = vec![0.0f64; n_frames * ARIA_N_MELS];
        self.mel_energies(samples, 0..n_frames, &mut mel_power);
        Ok(AriaStages { power_large: power(&self.large.stft), power_small: power(&self.small.stft), mel_power })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_ends_are_exact() {
        let v = linspace_f32(47.5, 2840.3, 386);
        assert_eq!((v[0], v[385]), (47.5, 2840.3));
        assert!(v.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn corners_span_the_band_limits() {
        for spec in [&LARGE, &SMALL] {
            let c = corner_hz(spec);
            assert!((c[0] as f64 - spec.f_min).abs() < 1e-3 && (c[c.len() - 1] as f64 - spec.f_max).abs() < 1e-2);
            assert!(c.windows(2).all(|w| w[1] > w[0]));
            assert!(spec.pow_ulps.iter().all(|&(i, _)| (i as usize) < c.len()));
        }
    }

    #[test]
    fn filter_rows_are_triangles_inside_their_range() {
        let (_, small) = aria_mel_filters();
        for row in small.chunks_exact(401) {
            assert!((0..401).filter(|&k| row[k] != 0.0).all(|k| k * 20 > 30 && k * 20 < 4000));
            assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)));
        }
    }
}
