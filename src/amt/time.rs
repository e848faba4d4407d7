//! Time and value quantisation with upstream's exact arithmetic: tick -> ms through a tempo
//! map (aria-utils `get_duration_ms`), and the nearest grid value (`Tokenizer._find_closest_int`).
use super::vocab::{ONSET_MAX, ONSET_STEP, VEL_MAX, VEL_STEP};

/// A tempo change: microseconds per beat from `tick` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tempo {
    pub tick: i64,
    pub micros_per_beat: u32,
}

/// Milliseconds from tick 0 to `end_tick` under a tempo map sorted by tick (not empty), as
/// `get_duration_ms(0, end_tick, ...)`: seconds summed in f64 interval by interval (mido's
/// `tick * (tempo * 1e-6 / ticks_per_beat)`), times 1000, rounded half to even like Python's
/// `round`. The first tempo also covers the ticks before it.
pub fn duration_ms(end_tick: i64, tempos: &[Tempo], ticks_per_beat: u16) -> i64 {
    let seconds = |ticks: i64, tempo: u32| ticks as f64 * (tempo as f64 * 1e-6 / ticks_per_beat as f64);
    let mut duration = 0.0f64;
    let mut cur_tick = 0i64;
    let mut finished = false;
    for pair in tempos.windows(2) {
        let (cur, next) = (pair[0], pair[1]);
        let to = if end_tick < next.tick { end_tick } else { next.tick };
        duration += seconds(to - cur_tick, cur.micros_per_beat);
        if end_tick < next.tick {
            finished = true;
            break;
        }
        cur_tick = next.tick;
    }
    let last = tempos[tempos.len() - 1];
    // Upstream adds the tail past the last tempo change only when end_tick lies beyond it.
    if !finished && end_tick > last.tick {
        duration += seconds(end_tick - cur_tick, last.micros_per_beat);
    }
    (duration * 1e3).round_ties_even() as i64
}

/// The value of `grid(0..len)` (ascending) nearest to `n`, found by upstream's binary search:
/// the first value is the initial answer and a later probe replaces it only when strictly
/// closer, so ties go wherever the search path leads (onsets: 35 -> 40, 45 -> 40,
/// 995 -> 1000, 1005 -> 1000, 29995 -> 29990).
fn find_closest(n: i64, len: usize, grid: impl Fn(usize) -> i64) -> i64 {
    let (mut left, mut right) = (0i64, len as i64 - 1);
    let mut closest = grid(0);
    while left <= right {
        let mid = (left + right) / 2;
        let value = grid(mid as usize);
        if (value - n).abs() < (closest - n).abs() {
            closest = value;
        }
        if value < n {
            left = mid + 1;
        } else {
            right = mid - 1;
        }
    }
    closest
}

/// An onset in ms on the 10 ms grid 0..=30000 (negative times go to 0, later ones to 30000).
pub fn quantize_onset(ms: i64) -> i64 {
    let step = ONSET_STEP as i64;
    find_closest(ms, (ONSET_MAX / ONSET_STEP + 1) as usize, |i| i as i64 * step)
}

/// A MIDI velocity on the grid 0, 5, ..., 125; a non-zero velocity never becomes 0 (it is 5).
pub fn quantize_velocity(velocity: u8) -> u8 {
    let step = VEL_STEP as i64;
    let q = find_closest(velocity as i64, (VEL_MAX / VEL_STEP + 1) as usize, |i| i as i64 * step);
    if q == 0 && velocity != 0 {
        VEL_STEP as u8
    } else {
        q as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amt_closest_int_ties_follow_the_search_path() {
        for (n, q) in [(35, 40), (45, 40), (995, 1000), (1005, 1000), (29995, 29990), (-7, 0), (30007, 30000), (4, 0)] {
            assert_eq!(quantize_onset(n), q, "{n}");
        }
        assert_eq!(quantize_velocity(0), 0);
        assert_eq!(quantize_velocity(1), 5);
        assert_eq!(quantize_velocity(127), 125);
    }

    #[test]
    fn amt_duration_follows_the_tempo_map() {
        let one = [Tempo { tick: 0, micros_per_beat: 500_000 }];
        assert_eq!(duration_ms(1234, &one, 500), 1234);
        // 480 ticks per beat at 120 bpm, then 60 bpm from tick 960.
        let two = [Tempo { tick: 0, micros_per_beat: 500_000 }, Tempo { tick: 960, micros_per_beat: 1_000_000 }];
        assert_eq!(duration_ms(960, &two, 480), 1000);
        assert_eq!(duration_ms(1440, &two, 480), 2000);
        assert_eq!(duration_ms(480, &two, 480), 500);
        // A lone tempo after tick 0 gives 0 before it, as upstream does.
        assert_eq!(duration_ms(10, &[Tempo { tick: 100, micros_per_beat: 500_000 }], 480), 0);
    }
}
