//! MIDI files <-> [`MidiDict`], with the rules of aria-utils `midi_to_dict` (reading, through
//! mido) and `dict_to_midi` (writing), so that written files are byte for byte what
//! `MidiDict.to_midi()` saves. The file format itself is midly's; its writer uses running
//! status and cancels it at meta events exactly as mido's does, and we hand it the events in
//! upstream's order, so no byte-level control beyond midly's is needed.
use super::midi_dict::{MidiDict, Note, Pedal, Program};
use super::time::Tempo;
use crate::{Error, Result};
use midly::num::{u15, u24, u28, u4, u7};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};
use std::collections::HashMap;

fn midi_err(e: impl std::fmt::Display) -> Error {
    Error::Midi(e.to_string())
}

impl MidiDict {
    /// Reads a MIDI file (any format; all tracks merged on absolute ticks). A note-on with
    /// velocity > 0 opens a note on its (pitch, channel); a note-off or zero-velocity note-on
    /// closes every open one that did not start on that tick; controller 64 gives pedal
    /// changes (down at >= 64). SMPTE timing is not supported.
    pub fn from_midi(bytes: &[u8]) -> Result<MidiDict> {
        let smf = Smf::parse(bytes).map_err(midi_err)?;
        let ticks_per_beat = match smf.header.timing {
            Timing::Metrical(t) if t.as_int() > 0 => t.as_int(),
            Timing::Metrical(_) => return Err(Error::Midi("0 ticks per beat".into())),
            Timing::Timecode(..) => return Err(Error::Midi("SMPTE timecode timing is not supported".into())),
        };
        let mut t = TrackData::default();
        for track in &smf.tracks {
            t.read_track(track);
        }
        t.tempos.sort_by_key(|m| m.tick);
        t.pedals.sort_by_key(|m| m.tick);
        t.programs.sort_by_key(|m| m.tick);
        Ok(MidiDict::new(t.notes, t.pedals, t.tempos, t.programs, ticks_per_beat))
    }

    /// The type-0 MIDI file `MidiDict.to_midi()` writes: overlaps resolved first (on a copy),
    /// then tempo, pedal (value 0/127), program, note-on and note-off events sorted stably by
    /// (tick, velocity) with non-note events counting as velocity 1000, and end of track.
    pub fn to_midi(&self) -> Result<Vec<u8>> {
        let mut dict = self.clone();
        dict.resolve_overlaps();
        let mut events = dict.unsorted_events()?;
        events.sort_by_key(|e| (e.0, e.1));
        let mut track = Vec::with_capacity(events.len() + 1);
        let mut tick = 0i64;
        for (time, _, kind) in events {
            let delta = u32::try_from(time - tick).ok().and_then(u28::try_from);
            let delta = delta.ok_or_else(|| Error::Midi(format!("tick {time} cannot be written")))?;
            track.push(TrackEvent { delta, kind });
            tick = time;
        }
        track.push(TrackEvent { delta: u28::new(0), kind: TrackEventKind::Meta(MetaMessage::EndOfTrack) });
        let timing = Timing::Metrical(u15::try_from(self.ticks_per_beat).ok_or_else(|| midi_err("ticks per beat"))?);
        let smf = Smf { header: Header::new(Format::SingleTrack, timing), tracks: vec![track] };
        let mut out = Vec::new();
        smf.write(&mut out).map_err(midi_err)?;
        Ok(out)
    }

    /// Every event with its absolute tick and sort velocity, in upstream's insertion order.
    fn unsorted_events(&self) -> Result<Vec<(i64, u32, TrackEventKind<'static>)>> {
        const NOT_A_NOTE: u32 = 1000;
        let mut ev = Vec::new();
        for t in &self.tempos {
            let tempo = u24::try_from(t.micros_per_beat).ok_or_else(|| midi_err("tempo out of range"))?;
            ev.push((t.tick, NOT_A_NOTE, TrackEventKind::Meta(MetaMessage::Tempo(tempo))));
        }
        for p in &self.pedals {
            let message =
                MidiMessage::Controller { controller: u7::new(64), value: u7::new(if p.down { 127 } else { 0 }) };
            ev.push((p.tick, NOT_A_NOTE, midi(p.channel, message)?));
        }
        for p in &self.programs {
            ev.push((p.tick, NOT_A_NOTE, midi(p.channel, MidiMessage::ProgramChange { program: seven(p.program)? })?));
        }
        for n in &self.notes {
            let on = MidiMessage::NoteOn { key: seven(n.pitch)?, vel: seven(n.velocity)? };
            ev.push((n.start, n.velocity as u32, midi(n.channel, on)?));
        }
        for n in self.note_offs() {
            ev.push((n.end, 0, midi(n.channel, MidiMessage::NoteOn { key: seven(n.pitch)?, vel: u7::new(0) })?));
        }
        if let Some(e) = ev.iter().find(|e| e.0 < 0) {
            return Err(Error::Midi(format!("negative tick {}", e.0)));
        }
        Ok(ev)
    }

    /// The notes whose note-off upstream writes, grouped by (channel, pitch) in order of first
    /// appearance: all but a note that another of its pitch both starts inside and outlasts.
    fn note_offs(&self) -> Vec<Note> {
        let mut groups: Vec<Vec<Note>> = Vec::new();
        for n in &self.notes {
            match groups.iter_mut().find(|g| (g[0].channel, g[0].pitch) == (n.channel, n.pitch)) {
                Some(g) => g.push(*n),
                None => groups.push(vec![*n]),
            }
        }
        let cut_short = |n: &Note, g: &[Note]| g.iter().any(|o| n.start < o.start && o.start < n.end && n.end < o.end);
        groups.iter().flat_map(|g| g.iter().filter(|n| !cut_short(n, g)).copied().collect::<Vec<_>>()).collect()
    }
}

fn seven(v: u8) -> Result<u7> {
    u7::try_from(v).ok_or_else(|| Error::Midi(format!("MIDI data byte {v} is over 127")))
}

fn midi(channel: u8, message: MidiMessage) -> Result<TrackEventKind<'static>> {
    let channel = u4::try_from(channel).ok_or_else(|| Error::Midi(format!("channel {channel} is over 15")))?;
    Ok(TrackEventKind::Midi { channel, message })
}

/// Notes open per (pitch, channel): (start tick, velocity) in note-on order.
type OpenNotes = HashMap<(u8, u8), Vec<(i64, u8)>>;

/// What `_extract_track_data` collects, over all tracks.
#[derive(Default)]
struct TrackData {
    notes: Vec<Note>,
    pedals: Vec<Pedal>,
    tempos: Vec<Tempo>,
    programs: Vec<Program>,
}

impl TrackData {
    fn read_track(&mut self, track: &[TrackEvent]) {
        let mut open = OpenNotes::new();
        let mut tick = 0i64;
        for ev in track {
            tick += ev.delta.as_int() as i64;
            match ev.kind {
                TrackEventKind::Meta(MetaMessage::Tempo(t)) => {
                    self.tempos.push(Tempo { tick, micros_per_beat: t.as_int() })
                }
                TrackEventKind::Midi { channel, message } => {
                    self.read_message(&mut open, tick, channel.as_int(), message)
                }
                _ => {}
            }
        }
    }

    fn read_message(&mut self, open: &mut OpenNotes, tick: i64, channel: u8, m: MidiMessage) {
        match m {
            MidiMessage::ProgramChange { program } => {
                self.programs.push(Program { tick, program: program.as_int(), channel })
            }
            MidiMessage::Controller { controller, value } if controller == 64 => {
                self.pedals.push(Pedal { tick, down: value >= 64, channel })
            }
            MidiMessage::NoteOn { key, vel } if vel > 0 => {
                open.entry((key.as_int(), channel)).or_default().push((tick, vel.as_int()))
            }
            MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                self.close_notes(open, tick, key.as_int(), channel)
            }
            _ => {}
        }
    }

    /// A note-off closes every open note of its key that started on another tick; notes that
    /// started on this very tick stay open only if some note was closed, else all are dropped.
    fn close_notes(&mut self, open: &mut OpenNotes, tick: i64, pitch: u8, channel: u8) {
        let Some(notes) = open.remove(&(pitch, channel)) else { return };
        let (closed, kept): (Vec<_>, Vec<_>) = notes.into_iter().partition(|(start, _)| *start != tick);
        for &(start, velocity) in &closed {
            self.notes.push(Note { pitch, velocity, start, end: tick, channel });
        }
        if !closed.is_empty() && !kept.is_empty() {
            open.insert((pitch, channel), kept);
        }
    }
}
