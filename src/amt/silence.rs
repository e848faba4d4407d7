//! The silence pass over a window's tokens, as aria-amt `_process_silent_intervals`: notes
//! and pedal presses that start inside a silent interval of the audio are dropped, and
//! releases inside one move to its start.
use super::time::quantize_onset;
use super::vocab::Token;
use crate::{Error, Result};

/// A silent stretch of the window's audio, in ms from the window start (inclusive ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SilentInterval {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// What is sounding while the pass walks the sequence. Upstream keys pitches 0..=126 and the
/// pedal up front; pitch 127 only exists once a `prev` token names it, and an `on`/`off` for
/// it before that raises (the whole file then fails), which this reproduces as an error.
struct Active {
    pitches: [Option<bool>; 128],
    pedal: bool,
}

#[derive(Clone, Copy)]
enum Key {
    Pitch(u8),
    Pedal,
}

impl Active {
    fn new() -> Self {
        let mut pitches = [Some(false); 128];
        pitches[127] = None;
        Active { pitches, pedal: false }
    }

    fn get(&self, key: Key) -> Result<bool> {
        match key {
            Key::Pedal => Ok(self.pedal),
            Key::Pitch(p) => self.pitches[p as usize].ok_or_else(|| {
                Error::Tokenizer(format!("silence pass: pitch {p} without a prev token (upstream KeyError)"))
            }),
        }
    }

    fn set(&mut self, key: Key, on: bool) {
        match key {
            Key::Pedal => self.pedal = on,
            Key::Pitch(p) => self.pitches[p as usize] = Some(on),
        }
    }
}

/// The start of the interval that holds `ms`, else `ms`.
fn adjust(ms: i64, intervals: &[SilentInterval]) -> i64 {
    intervals.iter().find(|i| i.start_ms <= ms && ms <= i.end_ms).map_or(ms, |i| i.start_ms)
}

/// The value upstream reads as an onset from whatever token follows (`tok[1]`, unchecked);
/// `["prev", "pedal"]` there makes upstream's comparison raise.
fn time_of(t: Token) -> Result<i64> {
    t.int_value().ok_or_else(|| Error::Tokenizer(format!("silence pass: {t:?} read as a time")))
}

/// The sequence with the silence rules applied; no intervals returns it unchanged. Special
/// and `prev` tokens are kept; lone `onset`/`vel` tokens are dropped. An `on` (or pedal press)
/// followed by the right number of tuple tokens is kept with them, unless its pitch is already
/// sounding or its time (the next token's value) lies in an interval. An `off` (or release)
/// of a sounding pitch is kept, its time moved to the interval start and requantised.
/// Errors where upstream raises: an `on`/`off` of pitch 127 before any `prev` 127, and a
/// `["prev", "pedal"]` in the place of a time.
pub fn process_silent_intervals(seq: &[Token], intervals: &[SilentInterval]) -> Result<Vec<Token>> {
    if intervals.is_empty() {
        return Ok(seq.to_vec());
    }
    let mut out = Vec::with_capacity(seq.len());
    let mut active = Active::new();
    for (i, &t1) in seq.iter().enumerate() {
        // Upstream pads the look-ahead with <P>, a special token like the end of `seq`.
        let t2 = seq.get(i + 1).copied().unwrap_or(Token::Pad);
        let t3 = seq.get(i + 2).copied().unwrap_or(Token::Pad);
        let (key, press) = match t1 {
            Token::Prev(p) => {
                out.push(t1);
                active.set(Key::Pitch(p), true);
                continue;
            }
            Token::PrevPedal => {
                out.push(t1);
                active.set(Key::Pedal, true);
                continue;
            }
            Token::Bos | Token::Eos | Token::Pad | Token::Unk | Token::Dim => {
                out.push(t1);
                continue;
            }
            Token::Onset(_) | Token::Vel(_) => continue,
            Token::Pedal(down) => (Key::Pedal, down),
            Token::On(p) => (Key::Pitch(p), true),
            Token::Off(p) => (Key::Pitch(p), false),
        };
        if press {
            press_token(&mut out, &mut active, intervals, key, [t1, t2, t3])?;
        } else {
            release_token(&mut out, &mut active, intervals, key, [t1, t2])?;
        }
    }
    Ok(out)
}

fn press_token(
    out: &mut Vec<Token>,
    active: &mut Active,
    intervals: &[SilentInterval],
    key: Key,
    toks: [Token; 3],
) -> Result<()> {
    let is_note = matches!(key, Key::Pitch(_));
    if toks[1].is_special() || (is_note && toks[2].is_special()) || active.get(key)? {
        return Ok(());
    }
    let onset = time_of(toks[1])?;
    if adjust(onset, intervals) == onset {
        active.set(key, true);
        out.extend_from_slice(&toks[..if is_note { 3 } else { 2 }]);
    }
    Ok(())
}

fn release_token(
    out: &mut Vec<Token>,
    active: &mut Active,
    intervals: &[SilentInterval],
    key: Key,
    toks: [Token; 2],
) -> Result<()> {
    if toks[1].is_special() || !active.get(key)? {
        return Ok(());
    }
    let offset = adjust(time_of(toks[1])?, intervals);
    out.extend([toks[0], Token::Onset(quantize_onset(offset) as u32)]);
    active.set(key, false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Token::*;

    #[test]
    fn amt_silence_pass_drops_and_moves() {
        let silent = [SilentInterval { start_ms: 1000, end_ms: 2000 }];
        let seq = [Prev(127), Bos, On(60), Onset(1500), Vel(40), On(61), Onset(500), Vel(40), Off(61), Onset(1510)];
        let out = process_silent_intervals(&seq, &silent).unwrap();
        assert_eq!(out, [Prev(127), Bos, On(61), Onset(500), Vel(40), Off(61), Onset(1000)]);
        // Pitch 127 is known once a prev names it; without one upstream raises.
        assert!(process_silent_intervals(&[Prev(127), Bos, Off(127), Onset(10)], &silent).is_ok());
        assert!(process_silent_intervals(&[Bos, Off(127), Onset(10)], &silent).is_err());
    }
}
