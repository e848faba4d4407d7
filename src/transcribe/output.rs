//! Renderings of a transcript: plain text, SRT, WebVTT, JSON, and the `[start --> end] text`
//! lines OpenAI's CLI prints. Segments without text (see [`Segment`]) are left out of the
//! subtitle formats.
use super::longform::{Segment, Transcript};

/// `seconds` as `[HH:]MM:SS<marker>mmm`, rounded to the millisecond (negative and NaN times as
/// 0). Hours appear when `always_hours` or when there are any.
pub fn format_timestamp(seconds: f64, always_hours: bool, marker: char) -> String {
    let ms = if seconds.is_finite() && seconds > 0.0 { (seconds * 1000.0).round() as u64 } else { 0 };
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if always_hours || h > 0 {
        format!("{h:02}:{m:02}:{s:02}{marker}{ms:03}")
    } else {
        format!("{m:02}:{s:02}{marker}{ms:03}")
    }
}

/// `[00:00.000 --> 00:05.120] text` (the text trimmed).
pub fn timestamp_line(seg: &Segment) -> String {
    format!(
        "[{} --> {}] {}",
        format_timestamp(seg.start, false, '.'),
        format_timestamp(seg.end, false, '.'),
        seg.text.trim()
    )
}

fn spoken(segments: &[Segment]) -> impl Iterator<Item = &Segment> {
    segments.iter().filter(|s| !s.text.trim().is_empty())
}

/// Subtitle text: trimmed, without the cue arrow (it would read as a timing line) and without
/// blank or padded lines (a blank line ends the cue).
fn cue_text(seg: &Segment) -> String {
    let text = seg.text.replace("-->", "->").replace('\r', "");
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines.join("\n")
}

/// One line per segment, trimmed.
pub fn to_text(segments: &[Segment]) -> String {
    spoken(segments).map(|s| format!("{}\n", s.text.trim())).collect()
}

/// SubRip: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, blank line after each.
pub fn to_srt(segments: &[Segment]) -> String {
    spoken(segments)
        .enumerate()
        .map(|(i, s)| {
            format!(
                "{}\n{} --> {}\n{}\n\n",
                i + 1,
                format_timestamp(s.start, true, ','),
                format_timestamp(s.end, true, ','),
                cue_text(s)
            )
        })
        .collect()
}

/// WebVTT: the `WEBVTT` header, then `HH:MM:SS.mmm --> HH:MM:SS.mmm` cues.
pub fn to_vtt(segments: &[Segment]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for s in spoken(segments) {
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            format_timestamp(s.start, true, '.'),
            format_timestamp(s.end, true, '.'),
            cue_text(s)
        ));
    }
    out
}

/// The transcript as JSON: `text`, `language` (the code given, e.g. `"en"`), `duration` and
/// `segments` (each with `id`, `start`, `end`, `text`, `tokens`, `temperature`, `avg_logprob`,
/// `compression_ratio`, `no_speech_prob`), as OpenAI's `--output_format json` writes them.
pub fn to_json(transcript: &Transcript, language: Option<&str>) -> String {
    let segments: Vec<serde_json::Value> = transcript
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("id".into(), i.into());
            }
            v
        })
        .collect();
    let v = serde_json::json!({
        "text": transcript.text,
        "language": language,
        "duration": transcript.duration,
        "segments": segments,
    });
    // Serialising a Value whose keys are strings cannot fail.
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
