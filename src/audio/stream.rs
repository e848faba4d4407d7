//! An audio file of any readable format as a stream of 16 kHz mono samples: WAV through
//! `hound` ([`WavStream`]), FLAC, MP3 and Ogg Vorbis through symphonia (the `formats`
//! feature). The format is told by the file's first bytes, not its name.
use super::wav::WavStream;
use super::SAMPLE_RATE;
use crate::{Error, Result};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

#[cfg(feature = "formats")]
pub use super::compressed::CompressedStream;

/// An opened audio file, read forward in chunks.
pub enum AudioStream {
    Wav(WavStream<BufReader<File>>),
    #[cfg(feature = "formats")]
    Compressed(CompressedStream),
}

/// True when `head` (a file's first bytes) starts a RIFF/RF64 WAVE file.
fn is_wav(head: &[u8]) -> bool {
    head.len() >= 12 && matches!(&head[..4], b"RIFF" | b"RF64" | b"BW64") && &head[8..12] == b"WAVE"
}

impl AudioStream {
    /// Opens `path` and checks its header (a bad file fails here, before any model work).
    pub fn open(path: &Path) -> Result<AudioStream> {
        let mut head = [0u8; 12];
        let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
        let n = read_up_to(&mut f, &mut head).map_err(|e| Error::io(path, e))?;
        drop(f);
        if n == 0 {
            return Err(Error::Audio { path: path.to_path_buf(), msg: "the file is empty".into() });
        }
        if is_wav(&head[..n]) {
            return WavStream::open(path).map(AudioStream::Wav);
        }
        #[cfg(feature = "formats")]
        {
            CompressedStream::open(path).map(AudioStream::Compressed)
        }
        #[cfg(not(feature = "formats"))]
        Err(Error::Audio {
            path: path.to_path_buf(),
            msg: "not a WAV file, and this build reads WAV only (the `formats` feature adds FLAC, MP3 and Ogg Vorbis)"
                .into(),
        })
    }

    /// Appends the next 16 kHz mono samples to `out` and returns how many; 0 means the end.
    pub fn read_chunk(&mut self, out: &mut Vec<f32>) -> Result<usize> {
        match self {
            AudioStream::Wav(w) => w.read_chunk(out),
            #[cfg(feature = "formats")]
            AudioStream::Compressed(c) => c.read_chunk(out),
        }
    }

    /// 16 kHz samples the header announces (`None` when the container does not say).
    pub fn len_hint(&self) -> Option<u64> {
        let (frames, rate) = match self {
            AudioStream::Wav(w) => (Some(w.info().frames), w.info().sample_rate),
            #[cfg(feature = "formats")]
            AudioStream::Compressed(c) => (c.frames(), c.sample_rate()),
        };
        frames.map(|f| (f as u128 * SAMPLE_RATE as u128 / rate.max(1) as u128) as u64)
    }

    /// Reads the whole stream (tests and short files; long ones should be streamed).
    pub fn read_all(&mut self) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.len_hint().unwrap_or(0).min(1 << 28) as usize);
        while self.read_chunk(&mut out)? > 0 {}
        Ok(out)
    }
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
