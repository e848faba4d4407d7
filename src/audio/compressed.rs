//! FLAC, MP3 and Ogg Vorbis through symphonia, streamed: packets are decoded as the window
//! loop asks for samples, down-mixed to mono and resampled to 16 kHz, so only one packet and
//! the resampler's kernel are held at a time.
use super::resample::Resampler;
use super::{MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, SAMPLE_RATE};
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// A compressed audio file read forward as 16 kHz mono.
pub struct CompressedStream {
    path: PathBuf,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track: u32,
    rate: u32,
    frames: Option<u64>,
    resampler: Resampler,
    /// The current packet, interleaved, then down-mixed.
    interleaved: Option<SampleBuffer<f32>>,
    mono: Vec<f32>,
    done: bool,
}

impl CompressedStream {
    /// Opens `path`, finds its first audio track and makes its decoder.
    pub fn open(path: &Path) -> Result<CompressedStream> {
        let bad = |msg: String| Error::Audio { path: path.to_path_buf(), msg };
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        // Gapless: MP3 encoder delay and padding are trimmed, so times match the source.
        let fmt = FormatOptions { enable_gapless: true, ..Default::default() };
        let probed = symphonia::default::get_probe()
            .format(&hint, mss, &fmt, &MetadataOptions::default())
            .map_err(|e| bad(format!("not a readable audio file (WAV, FLAC, MP3, Ogg Vorbis): {e}")))?;
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| bad("the file holds no audio track".into()))?;
        let params = track.codec_params.clone();
        let rate = params.sample_rate.ok_or_else(|| bad("the audio track does not say its sample rate".into()))?;
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
            return Err(bad(format!(
                "sample rate {rate} Hz is outside the supported {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz"
            )));
        }
        if params.n_frames == Some(0) {
            return Err(bad("the audio is empty (the track holds no samples)".into()));
        }
        let decoder = symphonia::default::get_codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|e| bad(format!("no decoder for this track: {e}")))?;
        let resampler = Resampler::new(rate, SAMPLE_RATE).map_err(|e| bad(e.to_string()))?;
        Ok(CompressedStream {
            path: path.to_path_buf(),
            track: track.id,
            format,
            decoder,
            rate,
            frames: params.n_frames,
            resampler,
            interleaved: None,
            mono: Vec::new(),
            done: false,
        })
    }

    /// The source's sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Frames the container announces, when it does.
    pub fn frames(&self) -> Option<u64> {
        self.frames
    }

    fn error(&self, msg: String) -> Error {
        Error::Audio { path: self.path.clone(), msg }
    }

    /// Appends the next 16 kHz mono samples to `out` and returns how many; 0 means the end.
    pub fn read_chunk(&mut self, out: &mut Vec<f32>) -> Result<usize> {
        let before = out.len();
        while out.len() == before && !self.done {
            let packet = match self.format.next_packet() {
                Ok(p) => p,
                // The end of the stream (symphonia reports it as an unexpected EOF), or a new
                // chained stream, which this reader does not follow.
                Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.finish(out);
                    break;
                }
                Err(SymphoniaError::ResetRequired) => {
                    self.finish(out);
                    break;
                }
                Err(e) => {
                    self.done = true;
                    return Err(self.error(format!("reading: {e}")));
                }
            };
            if packet.track_id() != self.track {
                continue;
            }
            let decoded = match self.decoder.decode(&packet) {
                Ok(d) => d,
                // A corrupt frame: skip it, as players do (the decoder resynchronises).
                Err(SymphoniaError::DecodeError(_)) => continue,
                Err(e) => {
                    self.done = true;
                    return Err(self.error(format!("decoding: {e}")));
                }
            };
            let spec = *decoded.spec();
            if spec.rate != self.rate {
                self.done = true;
                return Err(self.error(format!(
                    "the sample rate changes from {} Hz to {} Hz within the stream",
                    self.rate, spec.rate
                )));
            }
            let channels = spec.channels.count().max(1);
            let capacity = decoded.capacity() as u64;
            let buf = match &mut self.interleaved {
                Some(b) if b.capacity() as u64 >= capacity * channels as u64 => b,
                slot => slot.insert(SampleBuffer::new(capacity, spec)),
            };
            buf.copy_interleaved_ref(decoded);
            self.mono.clear();
            let scale = 1.0 / channels as f32;
            self.mono.extend(buf.samples().chunks_exact(channels).map(|f| f.iter().sum::<f32>() * scale));
            if let Some(i) = self.mono.iter().position(|v| !v.is_finite()) {
                self.done = true;
                return Err(self.error(format!("decoded sample {i} of a packet is not finite")));
            }
            self.resampler.process(&self.mono, out);
        }
        Ok(out.len() - before)
    }

    fn finish(&mut self, out: &mut Vec<f32>) {
        self.resampler.finish(out);
        self.done = true;
    }
}
