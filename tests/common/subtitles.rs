//! Strict SubRip and WebVTT parsers: every rule a player relies on is checked, and anything
//! else is an error naming the line.
//!
//! SRT: cues numbered 1, 2, ... in order; `HH:MM:SS,mmm --> HH:MM:SS,mmm` (two-digit minutes
//! and seconds below 60, three-digit milliseconds); one or more non-empty text lines without
//! `-->`; each cue ends with one blank line. WebVTT: `WEBVTT` and a blank line, then cues with
//! an optional identifier, `[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm`, the same text rules. In both,
//! a cue's start is not after its end, starts do not decrease, and there is no `\r`.

#[derive(Clone, Debug, PartialEq)]
pub struct Cue {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// `HH:MM:SS<sep>mmm`, or `MM:SS<sep>mmm` when `hours_optional`.
fn timestamp(s: &str, sep: char, hours_optional: bool) -> Result<u64, String> {
    let (hms, ms) = s.split_once(sep).ok_or_else(|| format!("`{s}`: no `{sep}` before the milliseconds"))?;
    if ms.len() != 3 || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{s}`: milliseconds must be three digits"));
    }
    let parts: Vec<&str> = hms.split(':').collect();
    let (h, m, sec) = match parts[..] {
        [h, m, sec] => (h, m, sec),
        [m, sec] if hours_optional => ("0", m, sec),
        _ => return Err(format!("`{s}`: expected HH:MM:SS{sep}mmm")),
    };
    let num = |x: &str, what: &str, two: bool| -> Result<u64, String> {
        if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) || (two && x.len() != 2) {
            return Err(format!("`{s}`: bad {what} `{x}`"));
        }
        Ok(x.parse().unwrap())
    };
    let (h, m, sec) =
        (num(h, "hours", parts.len() == 3 && h.len() < 2)?, num(m, "minutes", true)?, num(sec, "seconds", true)?);
    if m >= 60 || sec >= 60 {
        return Err(format!("`{s}`: minutes and seconds must be below 60"));
    }
    Ok(((h * 60 + m) * 60 + sec) * 1000 + ms.parse::<u64>().unwrap())
}

fn timing(line: &str, sep: char, hours_optional: bool) -> Result<(u64, u64), String> {
    let (a, b) = line.split_once(" --> ").ok_or_else(|| format!("`{line}`: not a timing line"))?;
    let (start, end) = (timestamp(a, sep, hours_optional)?, timestamp(b, sep, hours_optional)?);
    if start > end {
        return Err(format!("`{line}`: starts after it ends"));
    }
    Ok((start, end))
}

/// The cue blocks: the text must end with a blank line after the last cue, blocks are
/// separated by exactly one blank line.
fn blocks(text: &str) -> Result<Vec<Vec<&str>>, String> {
    if text.contains('\r') {
        return Err("carriage return in the document".into());
    }
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let body = text.strip_suffix("\n\n").ok_or("the document must end with a blank line")?;
    body.split("\n\n")
        .map(|b| {
            let lines: Vec<&str> = b.split('\n').collect();
            if lines.iter().any(|l| l.is_empty()) {
                return Err(format!("more than one blank line near `{b}`"));
            }
            Ok(lines)
        })
        .collect()
}

fn cue_text(lines: &[&str]) -> Result<String, String> {
    if lines.is_empty() {
        return Err("a cue without text".into());
    }
    for l in lines {
        if l.contains("-->") || l.trim() != *l {
            return Err(format!("bad text line `{l}`"));
        }
    }
    Ok(lines.join("\n"))
}

fn ordered(cues: Vec<Cue>) -> Result<Vec<Cue>, String> {
    for w in cues.windows(2) {
        if w[1].start_ms < w[0].start_ms {
            return Err(format!("cue `{}` starts before the one before it", w[1].text));
        }
    }
    Ok(cues)
}

pub fn parse_srt(text: &str) -> Result<Vec<Cue>, String> {
    let mut cues = Vec::new();
    for (i, b) in blocks(text)?.into_iter().enumerate() {
        if b.len() < 3 {
            return Err(format!("cue {}: needs a number, a timing line and text: {b:?}", i + 1));
        }
        if b[0] != (i + 1).to_string() {
            return Err(format!("cue {}: numbered `{}`", i + 1, b[0]));
        }
        let (start_ms, end_ms) = timing(b[1], ',', false)?;
        cues.push(Cue { start_ms, end_ms, text: cue_text(&b[2..])? });
    }
    ordered(cues)
}

pub fn parse_vtt(text: &str) -> Result<Vec<Cue>, String> {
    let rest = text.strip_prefix("WEBVTT\n\n").ok_or("a WebVTT file starts with `WEBVTT` and a blank line")?;
    let mut cues = Vec::new();
    for b in blocks(rest)? {
        // An optional identifier line comes before the timing line.
        let t = if b[0].contains("-->") { 0 } else { 1 };
        if b.len() < t + 2 {
            return Err(format!("a cue needs a timing line and text: {b:?}"));
        }
        let (start_ms, end_ms) = timing(b[t], '.', true)?;
        cues.push(Cue { start_ms, end_ms, text: cue_text(&b[t + 1..])? });
    }
    ordered(cues)
}
