//! Tokens -> notes, as aria-amt `AmtTokenizer._detokenize_midi_dict`: the dict it returns has
//! 500 ticks per beat at 500000 us per beat, so ticks are milliseconds.
use super::midi_dict::{MidiDict, Note, Pedal, Program, TEMPO, TICKS_PER_BEAT};
use super::time::Tempo;
use super::vocab::Token;
use crate::{Error, Result};

/// Velocity of the notes a `prev` token opens.
pub const PREV_VELOCITY: u8 = 60;
/// Longest note detokenising makes, in ms.
pub const MAX_NOTE_MS: i64 = 5000;

/// Open notes by pitch: (start, velocity). Kept in first-opened order like upstream's dict, a
/// second `on` of a pitch replacing the first in place, so the unclosed ones come out in that
/// order.
#[derive(Default)]
struct OpenNotes(Vec<(u8, i64, u8)>);

impl OpenNotes {
    fn open(&mut self, pitch: u8, start: i64, velocity: u8) {
        match self.0.iter_mut().find(|n| n.0 == pitch) {
            Some(n) => *n = (pitch, start, velocity),
            None => self.0.push((pitch, start, velocity)),
        }
    }

    fn close(&mut self, pitch: u8) -> Option<(i64, u8)> {
        let at = self.0.iter().position(|n| n.0 == pitch)?;
        let (_, start, velocity) = self.0.remove(at);
        Some((start, velocity))
    }
}

fn note(pitch: u8, start: i64, end: i64, velocity: u8) -> Note {
    Note { pitch, velocity, start, end: end.min(start + MAX_NOTE_MS), channel: 0 }
}

fn bad(msg: String) -> Error {
    Error::Tokenizer(format!("cannot detokenize: {msg}"))
}

/// The notes and pedal changes of a token sequence (`len_ms` > 0 ends the notes left open).
///
/// The sequence is cut at the first `<E>`, then at the first `<P>`. Before `<S>` only `prev`
/// tokens may stand: each opens a note at 0 with velocity 60 (the pedal one presses the pedal
/// at 0). After `<S>`, each token is read with the two after it: `on` needs `onset`, `vel` and
/// (re)opens its pitch; `off` needs `onset` and closes the open note of its pitch (ignored
/// when none is open); `pedal` takes the next token's value as its tick; `onset` and `vel` on
/// their own are skipped. The last token is only ever read as a follower. Notes longer than
/// 5000 ms are cut to 5000. Errors where upstream raises: a special or `prev` token after
/// `<S>`, an `on`/`off` without its followers, anything but `prev` before `<S>`, an empty
/// sequence. One deliberate difference: a `pedal` followed by `["prev", "pedal"]` is an error
/// here, where upstream stores the string "pedal" as a tick and fails later, if at all.
pub fn detokenize(tokens: &[Token], len_ms: i64) -> Result<MidiDict> {
    if len_ms <= 0 {
        return Err(Error::InvalidArgument(format!("detokenize length {len_ms} ms must be positive")));
    }
    let mut seq = tokens;
    for stop in [Token::Eos, Token::Pad] {
        if let Some(at) = seq.iter().position(|&t| t == stop) {
            seq = &seq[..at];
        }
    }
    let mut open = OpenNotes::default();
    let mut pedals = Vec::new();
    let body = read_prefix(seq, &mut open, &mut pedals)?;
    let mut notes = read_events(body, &mut open, &mut pedals)?;
    notes.extend(open.0.iter().map(|&(pitch, start, velocity)| note(pitch, start, len_ms, velocity)));
    let tempo = Tempo { tick: 0, micros_per_beat: TEMPO };
    let piano = Program { tick: 0, program: 0, channel: 0 };
    Ok(MidiDict::new(notes, pedals, vec![tempo], vec![piano], TICKS_PER_BEAT))
}

/// Reads the `prev` tokens before `<S>`; returns the tokens after `<S>` (none without one).
fn read_prefix<'a>(seq: &'a [Token], open: &mut OpenNotes, pedals: &mut Vec<Pedal>) -> Result<&'a [Token]> {
    if seq.is_empty() {
        return Err(bad("empty sequence".into()));
    }
    for (i, &t) in seq.iter().enumerate() {
        match t {
            Token::Bos => return Ok(&seq[i + 1..]),
            Token::Prev(p) => open.open(p, 0, PREV_VELOCITY),
            Token::PrevPedal => pedals.push(Pedal { tick: 0, down: true, channel: 0 }),
            _ => return Err(bad(format!("{t:?} at {i} before <S>"))),
        }
    }
    Ok(&[])
}

/// Reads the events after `<S>`; returns the notes they close, in closing order.
fn read_events(body: &[Token], open: &mut OpenNotes, pedals: &mut Vec<Pedal>) -> Result<Vec<Note>> {
    let mut notes = Vec::new();
    if body.len() < 2 {
        return Ok(notes);
    }
    if let Some(t) = body.iter().find(|t| t.is_special()) {
        return Err(bad(format!("{t:?} after <S>")));
    }
    for i in 0..body.len() - 1 {
        let (t1, t2, t3) = (body[i], body[i + 1], body.get(i + 2).copied());
        match (t1, t2, t3) {
            (Token::Prev(_) | Token::PrevPedal, ..) => return Err(bad(format!("{t1:?} after <S>"))),
            (Token::Pedal(down), ..) => {
                let tick = t2.int_value().ok_or_else(|| bad(format!("pedal followed by {t2:?}")))?;
                pedals.push(Pedal { tick, down, channel: 0 });
            }
            (Token::On(p), Token::Onset(ms), Some(Token::Vel(v))) => open.open(p, ms as i64, v),
            (Token::Off(p), Token::Onset(ms), _) => {
                if let Some((start, velocity)) = open.close(p) {
                    notes.push(note(p, start, ms as i64, velocity));
                }
            }
            (Token::On(_) | Token::Off(_), ..) => {
                return Err(bad(format!("{t1:?} followed by {t2:?}, {t3:?} at {i} after <S>")))
            }
            _ => {}
        }
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Token::{Bos, Eos, Off, On, Onset, Prev, Unk, Vel};

    fn notes(tokens: &[Token], len_ms: i64) -> Vec<(u8, i64, i64, u8)> {
        let m = detokenize(tokens, len_ms).unwrap();
        m.notes.iter().map(|n| (n.pitch, n.start, n.end, n.velocity)).collect()
    }

    #[test]
    fn amt_detokenize_follows_upstream_quirks() {
        // A prev note starts at 0 with velocity 60; a stray off is ignored; open notes end at
        // len_ms, capped at 5 s.
        let seq = [Prev(50), Bos, Off(61), Onset(10), On(60), Onset(100), Vel(40), Off(50), Onset(200)];
        assert_eq!(notes(&seq, 9000), [(50, 0, 200, 60), (60, 100, 5100, 40)]);
        // A second on replaces the first; the last token is only ever a follower.
        let seq = [Bos, On(60), Onset(100), Vel(40), On(60), Onset(300), Vel(50), Off(60)];
        assert_eq!(notes(&seq, 1000), [(60, 300, 1000, 50)]);
        // A pedal takes whatever value follows as its tick; everything after <E> is ignored.
        let m = detokenize(&[Bos, Token::Pedal(true), Vel(45), Eos, Unk], 1000).unwrap();
        assert_eq!(m.pedals, [Pedal { tick: 45, down: true, channel: 0 }]);
    }
}
