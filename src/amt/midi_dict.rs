//! The note-level view of a MIDI file that the tokenizer works on, with aria-utils `MidiDict`'s
//! pedal and overlap rules. Times are MIDI ticks; in the dicts that detokenising makes (500
//! ticks per beat at 500000 us per beat) one tick is one millisecond.
use super::time::{duration_ms, Tempo};
use crate::{Error, Result};

/// Ticks per beat and tempo of every MIDI file aria-amt writes: 1 tick = 1 ms.
pub const TICKS_PER_BEAT: u16 = 500;
pub const TEMPO: u32 = 500_000;

/// A note, from its note-on to its note-off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note {
    pub pitch: u8,
    pub velocity: u8,
    pub start: i64,
    pub end: i64,
    pub channel: u8,
}

/// A sustain pedal (controller 64) change: `down` when the value was >= 64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pedal {
    pub tick: i64,
    pub down: bool,
    pub channel: u8,
}

/// A program change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Program {
    pub tick: i64,
    pub program: u8,
    pub channel: u8,
}

/// Notes (sorted by start, ties in the order they were closed), pedal changes, tempo map and
/// programs of a piece.
#[derive(Clone, Debug, PartialEq)]
pub struct MidiDict {
    pub notes: Vec<Note>,
    pub pedals: Vec<Pedal>,
    /// Sorted by tick, never empty.
    pub tempos: Vec<Tempo>,
    pub programs: Vec<Program>,
    pub ticks_per_beat: u16,
    /// Whether [`MidiDict::resolve_pedal`] has run (the tokenizer runs it once).
    pub pedal_resolved: bool,
}

impl MidiDict {
    /// A dict in the given order of notes (stably sorted by start here, as upstream's
    /// constructor does); an empty tempo map becomes 500000 us per beat and no programs
    /// becomes piano on channel 0.
    pub fn new(
        mut notes: Vec<Note>,
        pedals: Vec<Pedal>,
        mut tempos: Vec<Tempo>,
        mut programs: Vec<Program>,
        ticks_per_beat: u16,
    ) -> Self {
        notes.sort_by_key(|n| n.start);
        if tempos.is_empty() {
            tempos.push(Tempo { tick: 0, micros_per_beat: TEMPO });
        }
        if programs.is_empty() {
            programs.push(Program { tick: 0, program: 0, channel: 0 });
        }
        MidiDict { notes, pedals, tempos, programs, ticks_per_beat, pedal_resolved: false }
    }

    /// Milliseconds at a tick.
    pub fn tick_to_ms(&self, tick: i64) -> i64 {
        duration_ms(tick, &self.tempos, self.ticks_per_beat)
    }

    /// Sustain intervals `(down, up)` of one channel, as `_build_pedal_intervals`: pedal
    /// changes sorted by tick (stably, in place), a down opens an interval if none is open, an
    /// up closes it; one left open ends at the end of the last note (by start). A dict with
    /// no notes is an error, as upstream (it reads the last note unconditionally).
    pub fn pedal_intervals(&mut self, channel: u8) -> Result<Vec<(i64, i64)>> {
        let last_end = self.notes.last().map(|n| n.end).ok_or_else(|| Error::Midi("the piece has no notes".into()))?;
        self.pedals.sort_by_key(|p| p.tick);
        let mut intervals = Vec::new();
        let mut open = None;
        for p in self.pedals.iter().filter(|p| p.channel == channel) {
            match (p.down, open) {
                (true, None) => open = Some(p.tick),
                (false, Some(start)) => {
                    intervals.push((start, p.tick));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(start) = open {
            intervals.push((start, last_end));
        }
        Ok(intervals)
    }

    /// Extends every note that ends strictly inside a sustain interval of its channel to the
    /// interval's end, then resolves overlaps (`MidiDict.resolve_pedal`).
    pub fn resolve_pedal(&mut self) -> Result<()> {
        if self.notes.is_empty() {
            return Err(Error::Midi("the piece has no notes".into()));
        }
        let mut channels: Vec<u8> = self.notes.iter().map(|n| n.channel).collect();
        channels.sort_unstable();
        channels.dedup();
        // All intervals first: an unclosed one ends at the last note's end before any moves.
        let mut intervals = Vec::with_capacity(channels.len());
        for &channel in &channels {
            intervals.push((channel, self.pedal_intervals(channel)?));
        }
        for (channel, intervals) in intervals {
            for note in self.notes.iter_mut().filter(|n| n.channel == channel) {
                if let Some(&(_, up)) = intervals.iter().find(|&&(down, up)| down < note.end && note.end < up) {
                    note.end = up;
                }
            }
        }
        self.resolve_overlaps();
        self.pedal_resolved = true;
        Ok(())
    }

    /// Where two notes of one pitch and channel overlap, the earlier one ends where the later
    /// one starts (`MidiDict.resolve_overlaps`: notes of a pitch ordered by (start, end), each
    /// compared with the original end of the one before it). The note order is kept.
    pub fn resolve_overlaps(&mut self) {
        let mut groups: Vec<((u8, u8), Vec<usize>)> = Vec::new();
        for (i, n) in self.notes.iter().enumerate() {
            let key = (n.channel, n.pitch);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, idx)) => idx.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        for (_, mut idx) in groups {
            idx.sort_by_key(|&i| (self.notes[i].start, self.notes[i].end));
            let mut prev_end = -1;
            for k in 0..idx.len() {
                let (start, end) = (self.notes[idx[k]].start, self.notes[idx[k]].end);
                if prev_end > start {
                    self.notes[idx[k - 1]].end = start;
                }
                prev_end = end;
            }
        }
    }

    /// Drops pedal presses that lengthen no note (`MidiDict.remove_redundant_pedals`), channel
    /// by channel in ascending order, walking the pedal changes in their stored order.
    pub fn remove_redundant_pedals(&mut self) {
        let mut channels: Vec<u8> = self.pedals.iter().map(|p| p.channel).collect();
        channels.sort_unstable();
        channels.dedup();
        for channel in channels {
            let remove = self.redundant_pedals(channel);
            let mut i = 0;
            self.pedals.retain(|_| {
                i += 1;
                !remove.contains(&(i - 1))
            });
        }
    }

    /// Indices of the pedal changes of one channel that upstream removes: all of them when the
    /// channel has no notes; else a press that is the very last change, repeated presses and
    /// releases, and press/release pairs with no note ending in (down, up].
    fn redundant_pedals(&self, channel: u8) -> Vec<usize> {
        let notes: Vec<Note> = self.notes.iter().filter(|n| n.channel == channel).copied().collect();
        let of_channel = self.pedals.iter().enumerate().filter(|(_, p)| p.channel == channel);
        if notes.is_empty() {
            return of_channel.map(|(i, _)| i).collect();
        }
        let mut remove = Vec::new();
        let mut down: Option<(i64, usize)> = None;
        for (i, p) in of_channel {
            if i == self.pedals.len() - 1 && p.down {
                remove.push(i);
            }
            match (down, p.down) {
                (None, true) => down = Some((p.tick, i)),
                (None, false) | (Some(_), true) => remove.push(i),
                (Some((down_tick, down_idx)), false) => {
                    if !pedal_is_useful(down_tick, p.tick, &notes) {
                        remove.extend([down_idx, i]);
                    }
                    down = None;
                }
            }
        }
        remove
    }
}

/// Whether a note ends in (down, up]. Mirrors upstream's scan, which walks the notes (sorted
/// by start) while the previously read note started no later than `up`, so it also looks at
/// the first note starting after `up`.
fn pedal_is_useful(down: i64, up: i64, notes: &[Note]) -> bool {
    let mut last_start = notes[0].start;
    for note in notes {
        if last_start > up {
            break;
        }
        last_start = note.start;
        if down < note.end && note.end <= up {
            return true;
        }
    }
    false
}
