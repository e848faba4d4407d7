//! Cutting one window's tokens into segments at timestamp pairs, and where the next window
//! starts: OpenAI whisper's `transcribe()` rules, step for step.
//!
//! - Two timestamps in a row (`<|1.00|><|1.00|>` or `<|1.00|><|1.20|>`) end one segment and
//!   start the next; every slice ending in such a pair is a segment from its first to its last
//!   timestamp.
//! - A window ending in a single timestamp has nothing after it: the whole window is consumed
//!   (the tail after the last pair becomes a segment too).
//! - Otherwise the unfinished tail is dropped and the next window starts at the last complete
//!   timestamp.
//! - No pair at all (one segment, or decoding without timestamps): one segment for the window,
//!   ending at its last timestamp when there is one, and the whole window is consumed.
//!
//! One rule of our own on top ([`hold_back_seam`]): a last segment that ends in the final
//! moments of a full window was most likely cut by the window's end, and is decoded again
//! from its start in the next window.

/// One segment of a window, times relative to the window's start.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    pub start: f64,
    pub end: f64,
    /// The slice's tokens, timestamps included.
    pub tokens: Vec<u32>,
}

/// What a window's tokens give.
#[derive(Clone, Debug, PartialEq)]
pub struct Cut {
    pub pieces: Vec<Piece>,
    /// Mel frames to move forward by.
    pub advance: usize,
}

/// Timing of a model's windows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Mel frames per timestamp step (Whisper: 3000 frames / 1500 encoder positions = 2).
    pub input_stride: usize,
    /// Seconds per timestamp step (Whisper: 0.02).
    pub time_precision: f64,
    /// Seconds per mel frame (0.01).
    pub frame_seconds: f64,
}

/// Cuts `tokens` (sampled tokens of one window, end-of-text excluded) of a window of
/// `segment_frames` mel frames; `timestamp_begin` is `<|0.00|>`.
pub fn cut(tokens: &[u32], timestamp_begin: u32, segment_frames: usize, timing: Timing) -> Cut {
    let is_ts: Vec<bool> = tokens.iter().map(|&t| t >= timestamp_begin).collect();
    // Steps after <|0.00|>; a text token where a timestamp belongs (a decoder without the
    // timestamp rules) counts as the window's start.
    let pos = |t: u32| t.saturating_sub(timestamp_begin) as f64;
    let single_timestamp_ending = is_ts.len() >= 2 && !is_ts[is_ts.len() - 2] && is_ts[is_ts.len() - 1];
    // Index after each pair of consecutive timestamps.
    let mut slices: Vec<usize> = (1..tokens.len()).filter(|&i| is_ts[i - 1] && is_ts[i]).collect();
    let mut pieces = Vec::new();
    if !slices.is_empty() {
        if single_timestamp_ending {
            slices.push(tokens.len());
        }
        let mut last = 0;
        for &s in &slices {
            let slice = &tokens[last..s];
            pieces.push(Piece {
                start: pos(slice[0]) * timing.time_precision,
                end: pos(slice[slice.len() - 1]) * timing.time_precision,
                tokens: slice.to_vec(),
            });
            last = s;
        }
        let advance =
            if single_timestamp_ending { segment_frames } else { pos(tokens[last - 1]) as usize * timing.input_stride };
        return Cut { pieces, advance };
    }
    let mut duration = segment_frames as f64 * timing.frame_seconds;
    if let Some(&last_ts) = tokens.iter().rev().find(|&&t| t >= timestamp_begin) {
        if last_ts != timestamp_begin {
            duration = pos(last_ts) * timing.time_precision;
        }
    }
    pieces.push(Piece { start: 0.0, end: duration, tokens: tokens.to_vec() });
    Cut { pieces, advance: segment_frames }
}

/// Holds back the last of several segments when it ends within `margin` seconds of the end of
/// a full window of `window_seconds`, moving the next window to that segment's start.
///
/// Why: speech that runs past the window's end is cut mid-word, and small models then close
/// the segment anyway with a timestamp just before the cut and words they guessed ("can do
/// for your country" for a cut "can do for you"). OpenAI's rule would keep that text and start
/// the next window at the closing timestamp, inside the sentence, where the model also places
/// the following timestamps seconds early. Decoding the sentence again from its start, with
/// the audio after the cut in view, gives both back. Only a segment starting in the window's
/// second half is held back (and never the first), so every window still moves forward by at
/// least half its length: speech that never pauses costs at most twice the windows. Returns
/// whether a segment was held back.
pub fn hold_back_seam(c: &mut Cut, window_seconds: f64, margin: f64, timing: Timing) -> bool {
    let [.., _, last] = c.pieces.as_slice() else { return false };
    if last.end < window_seconds - margin || last.start < window_seconds / 2.0 {
        return false;
    }
    c.advance = (last.start / timing.time_precision).round() as usize * timing.input_stride;
    c.pieces.pop();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: u32 = 1000;
    const TIMING: Timing = Timing { input_stride: 2, time_precision: 0.02, frame_seconds: 0.01 };

    fn ts(seconds: f64) -> u32 {
        TS + (seconds / 0.02).round() as u32
    }

    #[test]
    fn pairs_cut_segments_and_seek_to_the_last_complete_one() {
        // <0.00> a b <2.00><2.40> c <5.00><5.00> d (unfinished)
        let toks = [ts(0.0), 1, 2, ts(2.0), ts(2.4), 3, ts(5.0), ts(5.0), 4];
        let c = cut(&toks, TS, 3000, TIMING);
        assert_eq!(c.pieces.len(), 2);
        assert_eq!((c.pieces[0].start, c.pieces[0].end), (0.0, 2.0));
        assert_eq!(c.pieces[0].tokens, vec![ts(0.0), 1, 2, ts(2.0)]);
        assert!((c.pieces[1].start - 2.4).abs() < 1e-9 && (c.pieces[1].end - 5.0).abs() < 1e-9);
        // The last complete timestamp is <5.00>: 250 steps of 2 frames.
        assert_eq!(c.advance, 500);
    }

    #[test]
    fn a_single_timestamp_ending_consumes_the_window() {
        let toks = [ts(0.0), 1, ts(2.0), ts(2.0), 2, ts(4.0)];
        let c = cut(&toks, TS, 2500, TIMING);
        assert_eq!(c.pieces.len(), 2);
        assert_eq!(c.pieces[1].tokens, vec![ts(2.0), 2, ts(4.0)]);
        assert_eq!(c.advance, 2500);
    }

    #[test]
    fn without_pairs_one_segment_for_the_window() {
        let plain = cut(&[1, 2, 3], TS, 3000, TIMING);
        assert_eq!(plain.pieces, vec![Piece { start: 0.0, end: 30.0, tokens: vec![1, 2, 3] }]);
        assert_eq!(plain.advance, 3000);
        let one = cut(&[ts(0.0), 1, 2, ts(7.0)], TS, 3000, TIMING);
        assert_eq!((one.pieces[0].end, one.advance), (7.0, 3000));
        let zero = cut(&[1, 2, ts(0.0)], TS, 1000, TIMING);
        assert_eq!(zero.pieces[0].end, 10.0);
        assert_eq!(cut(&[], TS, 3000, TIMING).pieces[0].end, 30.0);
    }

    #[test]
    fn a_last_segment_closed_at_a_full_windows_end_is_decoded_again() {
        // <0.00> a <8.00><8.00> b <23.00><23.00> c <29.00>: c ends a second before the cut.
        let toks = [ts(0.0), 1, ts(8.0), ts(8.0), 2, ts(23.0), ts(23.0), 3, ts(29.0)];
        let mut c = cut(&toks, TS, 3000, TIMING);
        assert_eq!((c.pieces.len(), c.advance), (3, 3000));
        assert!(hold_back_seam(&mut c, 30.0, 1.5, TIMING));
        assert_eq!(c.pieces.len(), 2);
        assert_eq!(c.advance, 2300, "the next window starts where the held-back segment began");
        // Ending 2 s before the window's end: kept, as is a window's only segment.
        let mut early = cut(&[ts(0.0), 1, ts(8.0), ts(8.0), 2, ts(28.0), ts(28.0)], TS, 3000, TIMING);
        assert!(!hold_back_seam(&mut early, 30.0, 1.5, TIMING));
        assert_eq!((early.pieces.len(), early.advance), (2, 2800));
        let mut only = cut(&[ts(0.0), 1, ts(29.5), ts(29.5)], TS, 3000, TIMING);
        assert!(!hold_back_seam(&mut only, 30.0, 1.5, TIMING));
        assert_eq!(only.advance, 2950);
        // A long last segment (starting in the first half) is kept: the next window would
        // otherwise move on by only its first segment.
        let mut long = cut(&[ts(0.0), 1, ts(0.5), ts(0.5), 2, ts(29.5), ts(29.5)], TS, 3000, TIMING);
        assert!(!hold_back_seam(&mut long, 30.0, 1.5, TIMING));
        assert_eq!(long.advance, 2950);
    }

    #[test]
    fn text_before_the_first_timestamp_starts_at_the_window() {
        let c = cut(&[1, 2, ts(3.0), ts(3.0), 3, ts(4.0)], TS, 3000, TIMING);
        assert_eq!((c.pieces[0].start, c.pieces[0].end), (0.0, 3.0));
        assert_eq!(c.advance, 3000);
    }
}
