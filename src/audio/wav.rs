//! WAV decoding (through `hound`) into 16 kHz mono f32, whole-file or streamed.
//!
//! Every path goes through [`WavStream`]: header checks, then frames are read in chunks,
//! down-mixed (mean of channels), scaled to [-1, 1) and resampled. Reading a whole file is the
//! same loop, so streamed and whole-file results are identical bit for bit.
//!
//! Errors: decoding bytes or a reader gives `Error::InvalidAudio(msg)`; reading a file gives
//! `Error::Audio { path, msg }` for bad content and `Error::Io { path, .. }` for I/O failures.
//!
//! Truncation: a data chunk shorter than its header claims is an error by default (a cut file
//! is more often a failed copy than a recording to transcribe). `allow_truncated` keeps the
//! whole frames that are there; that is safe because nothing is allocated from the header's
//! claim (the whole-file reader reserves at most 30 s up front and grows as data arrives).
use super::resample::Resampler;
use super::{MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, N_SAMPLES, SAMPLE_RATE};
use crate::{Error, Result};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the WAV header says about the stored audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavInfo {
    pub sample_rate: u32,
    pub channels: u16,
    pub bits_per_sample: u16,
    /// IEEE float samples (else integer PCM).
    pub float: bool,
    /// Frames (samples per channel) the header declares.
    pub frames: u64,
}

impl WavInfo {
    /// Declared duration in seconds.
    pub fn duration_s(&self) -> f64 {
        self.frames as f64 / self.sample_rate as f64
    }
}

/// Options for reading a whole WAV into memory.
#[derive(Clone, Debug, PartialEq)]
pub struct WavOptions {
    /// Longest audio (declared duration, seconds) read whole; longer files need [`WavStream`].
    pub max_seconds: f64,
    /// Keep the frames of a data chunk that ends before its header says, instead of failing.
    pub allow_truncated: bool,
}

/// One hour: 230 MB of 16 kHz f32.
pub const DEFAULT_MAX_SECONDS: f64 = 3600.0;

impl Default for WavOptions {
    fn default() -> Self {
        WavOptions { max_seconds: DEFAULT_MAX_SECONDS, allow_truncated: false }
    }
}

/// Decoded audio: 16 kHz mono samples and what the file held.
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    /// 16 kHz mono, in [-1, 1) for integer sources.
    pub samples: Vec<f32>,
    pub source: WavInfo,
}

impl Audio {
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / SAMPLE_RATE as f64
    }
}

/// Passes reads through and remembers whether the source ran dry, which is how a truncated
/// file is told apart from other read errors (hound reports both as the same I/O error).
struct EofFlag<R> {
    inner: R,
    hit: Arc<AtomicBool>,
}

impl<R: Read> Read for EofFlag<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.hit.store(true, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// Builds the error for bad content: named by path when there is one.
fn content_error(path: &Option<PathBuf>, msg: String) -> Error {
    match path {
        Some(p) => Error::Audio { path: p.clone(), msg },
        None => Error::InvalidAudio(msg),
    }
}

fn hound_error(path: &Option<PathBuf>, e: hound::Error, ran_dry: bool, what: &str) -> Error {
    let msg = match e {
        _ if ran_dry => format!("truncated: the file ends inside the {what}"),
        hound::Error::IoError(source) => match path {
            Some(p) => return Error::io(p, source),
            None => format!("read error in the {what}: {source}"),
        },
        hound::Error::FormatError(m) if m.contains("RIFF") || m.contains("WAVE") => {
            format!("not a WAV file ({m})")
        }
        hound::Error::FormatError(m) => format!("malformed WAV {what}: {m}"),
        hound::Error::Unsupported => {
            let readable = "8/16/24/32-bit integer PCM, 32-bit float";
            format!("unsupported WAV encoding (readable: {readable})")
        }
        other => format!("cannot decode the WAV {what}: {other}"),
    };
    content_error(path, msg)
}

/// Where a chunk read stopped early.
enum Stop {
    /// The data ended before the frames the header declares.
    Eof,
    Hound(hound::Error),
    NonFinite {
        index: u64,
        value: f32,
    },
}

/// Streaming WAV reader yielding 16 kHz mono chunks in bounded memory (the hour-long-file path).
///
/// ```no_run
/// # fn main() -> whisper_wgpu::Result<()> {
/// let mut stream = whisper_wgpu::audio::WavStream::open(std::path::Path::new("talk.wav"))?;
/// let mut window = Vec::new();
/// while stream.read_chunk(&mut window)? > 0 {
///     if window.len() >= whisper_wgpu::audio::N_SAMPLES {
///         // transcribe window[..N_SAMPLES], keep the rest
///         window.drain(..whisper_wgpu::audio::N_SAMPLES);
///     }
/// }
/// # Ok(()) }
/// ```
pub struct WavStream<R: Read> {
    reader: hound::WavReader<EofFlag<R>>,
    ran_dry: Arc<AtomicBool>,
    info: WavInfo,
    path: Option<PathBuf>,
    resampler: Resampler,
    /// Integer samples are scaled by 2^-(bits-1): int16 / 32768 as Whisper does.
    scale: f32,
    frames_read: u64,
    chunk_frames: usize,
    allow_truncated: bool,
    done: bool,
    mono: Vec<f32>,
}

impl WavStream<BufReader<File>> {
    /// Opens a WAV file and checks its header.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Self::with_path(BufReader::with_capacity(1 << 16, file), Some(path.to_path_buf()))
    }
}

impl<R: Read> WavStream<R> {
    /// Reads and checks the header from `reader` (positioned at the start of the RIFF file).
    pub fn new(reader: R) -> Result<Self> {
        Self::with_path(reader, None)
    }

    fn with_path(reader: R, path: Option<PathBuf>) -> Result<Self> {
        let ran_dry = Arc::new(AtomicBool::new(false));
        let flagged = EofFlag { inner: reader, hit: ran_dry.clone() };
        let reader = hound::WavReader::new(flagged)
            .map_err(|e| hound_error(&path, e, ran_dry.load(Ordering::Relaxed), "header"))?;
        let spec = reader.spec();
        let info = WavInfo {
            sample_rate: spec.sample_rate,
            channels: spec.channels,
            bits_per_sample: spec.bits_per_sample,
            float: spec.sample_format == hound::SampleFormat::Float,
            frames: reader.duration() as u64,
        };
        let bad = |msg: String| Err(content_error(&path, msg));
        if info.channels == 0 {
            return bad("the header declares zero channels".into());
        }
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&info.sample_rate) {
            return bad(format!(
                "sample rate {} Hz is outside the supported {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz",
                info.sample_rate
            ));
        }
        let supported = match info.float {
            true => info.bits_per_sample == 32,
            false => matches!(info.bits_per_sample, 8 | 16 | 24 | 32),
        };
        if !supported {
            return bad(format!(
                "unsupported sample format: {}-bit {} (readable: 8/16/24/32-bit integer, 32-bit float)",
                info.bits_per_sample,
                if info.float { "float" } else { "integer" }
            ));
        }
        if info.frames == 0 {
            return bad("the audio is empty (the data chunk holds no samples)".into());
        }
        let resampler =
            Resampler::new(info.sample_rate, SAMPLE_RATE).map_err(|e| content_error(&path, e.to_string()))?;
        Ok(WavStream {
            reader,
            ran_dry,
            info,
            path,
            resampler,
            scale: 1.0 / (1u64 << (info.bits_per_sample - 1)) as f32,
            frames_read: 0,
            chunk_frames: info.sample_rate as usize,
            allow_truncated: false,
            done: false,
            mono: Vec::new(),
        })
    }

    /// Input frames read per chunk (default: one second of the source).
    pub fn with_chunk_frames(mut self, frames: usize) -> Self {
        self.chunk_frames = frames.max(1);
        self
    }

    /// Keep what is there when the data chunk ends early, instead of failing.
    pub fn allow_truncated(mut self, allow: bool) -> Self {
        self.allow_truncated = allow;
        self
    }

    pub fn info(&self) -> &WavInfo {
        &self.info
    }

    /// Appends the next 16 kHz mono samples to `out` and returns how many; 0 means the end.
    pub fn read_chunk(&mut self, out: &mut Vec<f32>) -> Result<usize> {
        let before = out.len();
        // The resampler holds back a few hundred samples, so a tiny chunk may emit nothing yet.
        while out.len() == before && !self.done {
            let want = (self.info.frames - self.frames_read).min(self.chunk_frames as u64);
            let stop = self.read_frames(want as usize);
            self.resampler.process(&self.mono, out);
            let truncated = match stop {
                None => false,
                Some(Stop::Eof) if self.allow_truncated => true,
                Some(stop) => {
                    self.done = true;
                    return Err(self.stop_error(stop));
                }
            };
            if truncated || self.frames_read == self.info.frames {
                self.resampler.finish(out);
                self.done = true;
            }
        }
        Ok(out.len() - before)
    }

    /// Reads up to `want` frames into `self.mono` (down-mixed, scaled).
    fn read_frames(&mut self, want: usize) -> Option<Stop> {
        let ch = self.info.channels as usize;
        let (scale, first) = (self.scale, self.frames_read);
        self.mono.clear();
        let mono = &mut self.mono;
        let stop = if self.info.float {
            let mut it = self.reader.samples::<f32>();
            read_loop(want, ch, mono, |c, f| match it.next() {
                Some(Ok(v)) if v.is_finite() => Ok(v),
                Some(Ok(v)) => Err(Stop::NonFinite { index: (first + f) * ch as u64 + c as u64, value: v }),
                Some(Err(e)) => Err(Stop::Hound(e)),
                None => Err(Stop::Eof),
            })
        } else {
            let mut it = self.reader.samples::<i32>();
            read_loop(want, ch, mono, |_, _| match it.next() {
                Some(Ok(v)) => Ok(v as f32 * scale),
                Some(Err(e)) => Err(Stop::Hound(e)),
                None => Err(Stop::Eof),
            })
        };
        self.frames_read += self.mono.len() as u64;
        match stop {
            Some(Stop::Hound(_)) if self.ran_dry.load(Ordering::Relaxed) => Some(Stop::Eof),
            s => s,
        }
    }

    fn stop_error(&self, stop: Stop) -> Error {
        let msg = match stop {
            Stop::Eof => format!(
                "truncated: the header declares {} frames but the data ends after {} \
                 (allow_truncated keeps what is there)",
                self.info.frames, self.frames_read
            ),
            Stop::NonFinite { index, value } => {
                let ch = self.info.channels as u64;
                format!(
                    "sample {index} (frame {}, channel {}, {:.3} s) is {value}: float audio must be finite",
                    index / ch,
                    index % ch,
                    (index / ch) as f64 / self.info.sample_rate as f64
                )
            }
            Stop::Hound(e) => return hound_error(&self.path, e, false, "data"),
        };
        content_error(&self.path, msg)
    }
}

/// Reads `want` frames of `ch` channels through `next(channel, frame)`, pushing channel means
/// to `mono`; stops at the first failure and drops that partial frame.
fn read_loop(
    want: usize,
    ch: usize,
    mono: &mut Vec<f32>,
    mut next: impl FnMut(usize, u64) -> std::result::Result<f32, Stop>,
) -> Option<Stop> {
    mono.reserve(want);
    for f in 0..want {
        let mut acc = 0.0f32;
        for c in 0..ch {
            match next(c, f as u64) {
                Ok(v) => acc += v,
                Err(stop) => return Some(stop),
            }
        }
        mono.push(if ch == 1 { acc } else { acc / ch as f32 });
    }
    None
}

impl<R: Read> Iterator for WavStream<R> {
    type Item = Result<Vec<f32>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut out = Vec::new();
        match self.read_chunk(&mut out) {
            Ok(0) => None,
            Ok(_) => Some(Ok(out)),
            Err(e) => Some(Err(e)),
        }
    }
}

/// Reads a whole stream, refusing audio longer than `opts.max_seconds`.
fn read_all<R: Read>(stream: WavStream<R>, opts: &WavOptions) -> Result<Audio> {
    let mut stream = stream.allow_truncated(opts.allow_truncated);
    let info = stream.info;
    if info.duration_s() > opts.max_seconds {
        return Err(content_error(
            &stream.path,
            format!(
                "the audio is {:.1} s long, over the {:.1} s limit for reading a whole file; \
                 read it window by window with WavStream (or raise WavOptions::max_seconds)",
                info.duration_s(),
                opts.max_seconds
            ),
        ));
    }
    // Reserve what the header promises, but never more than 30 s: the header may lie.
    let expected = stream.resampler.output_len(info.frames).min(N_SAMPLES as u64);
    let mut samples = Vec::with_capacity(expected as usize);
    while stream.read_chunk(&mut samples)? > 0 {}
    if samples.is_empty() {
        // Only reachable with allow_truncated and not one whole frame present.
        let msg = "the audio is empty (the data chunk ends before its first frame)".to_string();
        return Err(content_error(&stream.path, msg));
    }
    Ok(Audio { samples, source: info })
}

/// Reads a WAV file as 16 kHz mono f32 (default options: at most an hour, no truncated files).
pub fn load_wav(path: &Path) -> Result<Vec<f32>> {
    load_wav_with(path, &WavOptions::default()).map(|a| a.samples)
}

/// Reads a WAV file as 16 kHz mono f32 with the source's description.
pub fn load_wav_with(path: &Path, opts: &WavOptions) -> Result<Audio> {
    read_all(WavStream::open(path)?, opts)
}

/// Decodes WAV bytes held in memory (default options).
pub fn decode_wav(bytes: &[u8]) -> Result<Audio> {
    decode_wav_with(bytes, &WavOptions::default())
}

/// Decodes WAV bytes held in memory.
pub fn decode_wav_with(bytes: &[u8], opts: &WavOptions) -> Result<Audio> {
    read_wav(bytes, opts)
}

/// Decodes a WAV from any reader (wrap files in a `BufReader`).
pub fn read_wav<R: Read>(reader: R, opts: &WavOptions) -> Result<Audio> {
    read_all(WavStream::new(reader)?, opts)
}
