//! The audio front end: WAV -> 16 kHz mono f32 -> log-mel spectrogram (Whisper's or aria-amt's).
//!
//! - [`wav`]: decoding through `hound` (8/16/24/32-bit integer PCM, 32-bit float, any channel
//!   count), down-mixing and resampling, whole-file ([`load_wav`], [`decode_wav`]) or streamed
//!   in bounded memory ([`WavStream`]).
//! - [`stream`]: any readable file as a stream ([`AudioStream`]): WAV, and with the `formats`
//!   feature FLAC, MP3 and Ogg Vorbis through symphonia (`compressed`).
//! - [`mod@resample`]: a streaming windowed-sinc (Kaiser) resampler.
//! - [`mel`]: the log-mel spectrogram of one 30 s window, exactly as Whisper computes it, for
//!   any number of mel bands.
//! - [`aria_mel`]: EleutherAI aria-amt's 512-band log-mel (two STFTs, HTK mels), and
//!   [`aria_silence`]: the silent stretches its stitching looks for.
//! - [`frontend`]: [`FrontEnd`], either log-mel behind one `compute_into`, chosen by model config.
//! - `stft`: the centred, reflect-padded power STFT (periodic Hann) the log-mel front ends share.
pub mod aria_mel;
pub mod aria_silence;
#[cfg(feature = "formats")]
mod compressed;
mod fft;
pub mod frontend;
pub mod mel;
pub mod resample;
mod stft;
pub mod stream;
pub mod wav;

pub use aria_mel::{aria_mel_filters, AriaLogMel, AriaStages, ARIA_N_MELS};
pub use aria_silence::{frame_levels_db, silent_intervals_ms};
pub use frontend::{FrontEnd, FrontEndKind};
pub use mel::{log_mel_spectrogram, mel_filters, LogMel, MAX_MELS};
pub use resample::{resample, Resampler};
pub use stft::periodic_hann;
pub use stream::AudioStream;
pub use wav::{
    decode_wav, decode_wav_with, load_wav, load_wav_with, read_wav, Audio, WavInfo, WavOptions, WavStream,
    DEFAULT_MAX_SECONDS,
};

/// Sample rate the models take.
pub const SAMPLE_RATE: u32 = 16_000;
/// STFT frame length (25 ms).
pub const N_FFT: usize = 400;
/// STFT hop (10 ms).
pub const HOP_LENGTH: usize = 160;
/// Length of one model window in seconds.
pub const CHUNK_LENGTH: usize = 30;
/// Samples in one 30 s window.
pub const N_SAMPLES: usize = CHUNK_LENGTH * SAMPLE_RATE as usize;
/// Mel frames in one window (the STFT's last frame is dropped, as Whisper does).
pub const N_FRAMES: usize = N_SAMPLES / HOP_LENGTH;
/// Frequency bins of the one-sided spectrum.
pub const N_FREQS: usize = N_FFT / 2 + 1;
/// Lowest source sample rate accepted (below this a file is almost certainly corrupt).
pub const MIN_SAMPLE_RATE: u32 = 1_000;
/// Highest source sample rate accepted (keeps the resampler's kernel bounded).
pub const MAX_SAMPLE_RATE: u32 = 1_000_000;
