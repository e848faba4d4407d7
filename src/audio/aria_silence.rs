//! aria-amt's audio-side silence detection (`_get_silent_intervals` in `amt/inference/transcribe.py`),
//! which its stitching uses to drop notes the model writes into silent stretches of a window.
//!
//! Per frame of 2048 samples, hop 512, centred with zero padding (librosa `feature.rms`,
//! `center=True, pad_mode="constant"`): the RMS level in dB relative to the loudest frame of
//! the window (`amplitude_to_db(rms, ref=np.max)`, amin 1e-5 on the amplitude); a frame is
//! non-silent when that is above -45 dB (librosa `_signal_to_frame_nonsilent(top_db=45)`). Runs of
//! silent frames longer than 156 frames (5 s) are reported as (start * 32, (end - 1) * 32) ms,
//! `end` exclusive (32 = int(512 / 16 kHz in ms): upstream truncates 32.0 ms per hop).
use super::{N_SAMPLES, SAMPLE_RATE};

const FRAME_LEN: usize = 2048;
const HOP_LEN: usize = 512;
const TOP_DB: f64 = 45.0;
/// Upstream's `(SAMPLE_RATE // HOP_LEN) * 5 + 1` = 31 * 5 + 1 (31, not 31.25, hops per second).
const MIN_SILENT_FRAMES: usize = (SAMPLE_RATE as usize / HOP_LEN) * 5 + 1;
/// Upstream's `int(HOP_LEN * 1e3 / SAMPLE_RATE)`.
const MS_PER_HOP: u32 = (HOP_LEN as u32 * 1000) / SAMPLE_RATE;

/// Each frame's RMS level in dB relative to the window's loudest frame (0 for that frame,
/// negative elsewhere), as librosa `amplitude_to_db(rms(window), ref=np.max)` computes it:
/// 10 log10(max(ms, 1e-10)) - 10 log10(max(max_ms, 1e-10)) with ms the frame's mean square.
/// A window shorter than 480 000 samples is zero-padded to 480 000 first (as aria-amt's windows
/// are); there are 1 + len / 512 frames (938 for a 30 s window). Computed in f64, where the mean
/// of int16-derived squares is exact.
pub fn frame_levels_db(window: &[f32]) -> Vec<f64> {
    let len = window.len().max(N_SAMPLES);
    let n_frames = 1 + len / HOP_LEN;
    // Frame f covers samples [f * 512 - 1024, f * 512 + 1024); outside the window counts as 0.
    let sample = |i: isize| if i < 0 { 0.0 } else { window.get(i as usize).map_or(0.0, |&v| v as f64) };
    let mean_square: Vec<f64> = (0..n_frames)
        .map(|f| {
            let first = (f * HOP_LEN) as isize - (FRAME_LEN / 2) as isize;
            (first..first + FRAME_LEN as isize).map(|i| sample(i) * sample(i)).sum::<f64>() / FRAME_LEN as f64
        })
        .collect();
    let db = |ms: f64| 10.0 * ms.max(1e-10).log10();
    // With all frames at 0 this is 0 dB everywhere: digital silence has no silent interval.
    let reference = db(mean_square.iter().copied().fold(0.0, f64::max));
    mean_square.into_iter().map(|ms| db(ms) - reference).collect()
}

/// The silent stretches of one 30 s window as aria-amt reports them: (start_ms, end_ms) per run
/// of more than 156 frames at or below -45 dB (see [`frame_levels_db`]), with
/// start_ms = first silent frame * 32 and end_ms = last silent frame * 32, in window time.
pub fn silent_intervals_ms(window: &[f32]) -> Vec<(u32, u32)> {
    let silent: Vec<bool> = frame_levels_db(window).into_iter().map(|db| db <= -TOP_DB).collect();
    let mut intervals = Vec::new();
    let mut t = 0;
    while t < silent.len() {
        if !silent[t] {
            t += 1;
            continue;
        }
        let start = t;
        while t < silent.len() && silent[t] {
            t += 1;
        }
        // Strictly longer, as upstream's `lengths > MIN_WINDOW_STEPS`.
        if t - start > MIN_SILENT_FRAMES {
            intervals.push((start as u32 * MS_PER_HOP, (t as u32 - 1) * MS_PER_HOP));
        }
    }
    intervals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_upstream() {
        assert_eq!((MIN_SILENT_FRAMES, MS_PER_HOP), (156, 32));
    }

    #[test]
    fn digital_silence_is_not_silent() {
        assert!(silent_intervals_ms(&[]).is_empty());
        assert!(frame_levels_db(&vec![0.0; N_SAMPLES]).iter().all(|&d| d == 0.0));
    }

    #[test]
    fn a_quiet_stretch_is_reported_in_hop_units() {
        // Loud first 10 s, then 20 s of zeros: frames whose 2048-sample span touches the loud
        // part are loud; the rest run to the last frame (937).
        let mut w = vec![0.0f32; N_SAMPLES];
        w[..160_000].iter_mut().enumerate().for_each(|(i, v)| *v = 0.5 * (i as f32 * 0.1).sin());
        let first_silent = 315; // frame 314 spans [159 744, 161 792): 256 loud samples, about -9 dB
        assert_eq!(silent_intervals_ms(&w), vec![(first_silent as u32 * 32, 937 * 32)]);
    }

    #[test]
    fn runs_of_156_frames_or_fewer_are_ignored() {
        // Zeroing samples [100 * 512, (100 + gap) * 512) silences frames 102..=gap + 98: the
        // frames whose 2048-sample span lies inside, gap - 3 of them.
        for (gap, want) in [(159, vec![]), (160, vec![(102 * 32, 258 * 32)])] {
            let mut w = vec![0.5f32; N_SAMPLES];
            w[100 * 512..(100 + gap) * 512].iter_mut().for_each(|v| *v = 0.0);
            assert_eq!(silent_intervals_ms(&w), want, "gap of {gap} hops");
        }
    }
}
