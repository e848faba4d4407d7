//! Notes of a time window -> tokens, as aria-amt `AmtTokenizer._tokenize_midi_dict` (with the
//! reference data's one change: `prev` tokens sorted instead of shuffled).
use super::midi_dict::MidiDict;
use super::time::{quantize_onset, quantize_velocity};
use super::vocab::{Token, ONSET_MAX};
use crate::{Error, Result};

/// One event of the window, with its onset relative to the window start.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Event {
    On { pitch: u8, onset: i64, velocity: u8 },
    Off { pitch: u8, onset: i64 },
    Pedal { down: bool, onset: i64 },
}

impl Event {
    /// Events sort by onset, then pedal before off before on.
    fn key(&self) -> (i64, u8) {
        match *self {
            Event::Pedal { onset, .. } => (onset, 0),
            Event::Off { onset, .. } => (onset, 1),
            Event::On { onset, .. } => (onset, 2),
        }
    }

    fn push_tokens(&self, out: &mut Vec<Token>) {
        let onset = |ms: i64| Token::Onset(ms as u32);
        match *self {
            Event::On { pitch, onset: t, velocity } => out.extend([Token::On(pitch), onset(t), Token::Vel(velocity)]),
            Event::Off { pitch, onset: t } => out.extend([Token::Off(pitch), onset(t)]),
            Event::Pedal { down, onset: t } => out.extend([Token::Pedal(down), onset(t)]),
        }
    }
}

/// What is sounding when the window starts.
#[derive(Default)]
struct Prev {
    pitches: Vec<u8>,
    pedals: usize,
}

/// Tokens of the window [start_ms, end_ms) (at most 30 s long): `prev` tokens (pitches
/// ascending, the pedal last), `<S>`, the events sorted by (onset, pedal < off < on) with
/// onsets relative to `start_ms` on the 10 ms grid, and `<E>` if every note ends before
/// `end_ms`. Sustain is resolved first (note ends extended) unless the dict says it was; only
/// channel 0's pedal is tokenised. A dict without notes is an error, as upstream.
pub fn tokenize(midi: &MidiDict, start_ms: i64, end_ms: i64) -> Result<Vec<Token>> {
    if end_ms - start_ms > ONSET_MAX as i64 {
        return Err(Error::InvalidArgument(format!("window {start_ms}..{end_ms} ms is longer than 30 s")));
    }
    let mut midi = midi.clone();
    if !midi.pedal_resolved {
        midi.resolve_pedal()?;
    }
    let (mut events, mut prev, last_end_ms) = note_events(&midi, start_ms, end_ms);
    pedal_events(&mut midi, start_ms, end_ms, &mut events, &mut prev)?;
    events.sort_by_key(Event::key);

    prev.pitches.sort_unstable();
    let mut out: Vec<Token> = prev.pitches.iter().map(|&p| Token::Prev(p)).collect();
    out.extend(std::iter::repeat_n(Token::PrevPedal, prev.pedals));
    out.push(Token::Bos);
    for e in &events {
        e.push_tokens(&mut out);
    }
    if last_end_ms < end_ms {
        out.push(Token::Eos);
    }
    Ok(out)
}

/// Note events and `prev` pitches of the window, and the latest note end in ms (over all
/// notes). A note already sounding at `start_ms` becomes a `prev` (plus its `off` if it ends in
/// the window) unless its pitch is already one, in which case upstream tokenises it as an `on`
/// at onset 0; an `on` whose quantised start and end coincide, or that repeats an earlier `on`
/// exactly, is dropped.
fn note_events(midi: &MidiDict, start_ms: i64, end_ms: i64) -> (Vec<Event>, Prev, i64) {
    let mut events = Vec::new();
    let mut prev = Prev::default();
    let mut last_end_ms = -1;
    for n in &midi.notes {
        let (start, end) = (midi.tick_to_ms(n.start), midi.tick_to_ms(n.end));
        last_end_ms = last_end_ms.max(end);
        let (onset, offset) = (quantize_onset(start - start_ms), quantize_onset(end - start_ms));
        let off = Event::Off { pitch: n.pitch, onset: offset };
        if start >= end || end <= start_ms || start >= end_ms {
            continue;
        }
        if start < start_ms && !prev.pitches.contains(&n.pitch) {
            prev.pitches.push(n.pitch);
        } else {
            let on = Event::On { pitch: n.pitch, onset, velocity: quantize_velocity(n.velocity) };
            if onset == offset || events.contains(&on) {
                continue;
            }
            events.push(on);
        }
        if end < end_ms {
            events.push(off);
        }
    }
    (events, prev, last_end_ms)
}

/// Channel 0's sustain intervals as events: one down before the window becomes a `prev`
/// pedal, a release inside the window an `off`.
fn pedal_events(
    midi: &mut MidiDict,
    start_ms: i64,
    end_ms: i64,
    events: &mut Vec<Event>,
    prev: &mut Prev,
) -> Result<()> {
    for (down, up) in midi.pedal_intervals(0)? {
        let (down, up) = (midi.tick_to_ms(down), midi.tick_to_ms(up));
        if up <= start_ms || down >= end_ms {
            continue;
        }
        if down < start_ms {
            prev.pedals += 1;
        } else {
            events.push(Event::Pedal { down: true, onset: quantize_onset(down - start_ms) });
        }
        if up < end_ms {
            events.push(Event::Pedal { down: false, onset: quantize_onset(up - start_ms) });
        }
    }
    Ok(())
}
