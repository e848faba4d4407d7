//! Audio for long-form transcription: 30 s windows read forward from a stream of 16 kHz mono
//! samples. Only the current window (plus one chunk of the source) is held in memory, so an
//! hours-long file costs the same as a short one.
use crate::audio::{AudioStream, WavStream, N_SAMPLES, SAMPLE_RATE};
use crate::{Error, Result};
use std::io::Read;

/// Something that yields 16 kHz mono samples in order.
pub trait SampleSource {
    /// Appends the next samples to `out` and returns how many; 0 means the end.
    fn read_chunk(&mut self, out: &mut Vec<f32>) -> Result<usize>;

    /// Total samples, when known in advance (progress reports only; may be approximate).
    fn len_hint(&self) -> Option<u64> {
        None
    }
}

impl<R: Read> SampleSource for WavStream<R> {
    fn read_chunk(&mut self, out: &mut Vec<f32>) -> Result<usize> {
        WavStream::read_chunk(self, out)
    }

    fn len_hint(&self) -> Option<u64> {
        let info = self.info();
        Some((info.frames as u128 * SAMPLE_RATE as u128 / info.sample_rate as u128) as u64)
    }
}

impl SampleSource for AudioStream {
    fn read_chunk(&mut self, out: &mut Vec<f32>) -> Result<usize> {
        AudioStream::read_chunk(self, out)
    }

    fn len_hint(&self) -> Option<u64> {
        AudioStream::len_hint(self)
    }
}

/// Samples already in memory, handed out one second at a time.
pub struct SliceSource<'a> {
    samples: &'a [f32],
    pos: usize,
}

impl<'a> SliceSource<'a> {
    pub fn new(samples: &'a [f32]) -> Self {
        SliceSource { samples, pos: 0 }
    }
}

impl SampleSource for SliceSource<'_> {
    fn read_chunk(&mut self, out: &mut Vec<f32>) -> Result<usize> {
        let end = (self.pos + SAMPLE_RATE as usize).min(self.samples.len());
        out.extend_from_slice(&self.samples[self.pos..end]);
        let n = end - self.pos;
        self.pos = end;
        Ok(n)
    }

    fn len_hint(&self) -> Option<u64> {
        Some(self.samples.len() as u64)
    }
}

/// A forward-only window over a [`SampleSource`].
pub struct Windows<S> {
    source: S,
    /// Samples from absolute index `start` on.
    buf: Vec<f32>,
    start: u64,
    /// The source has reported its end; `start + buf.len()` is then the total length.
    ended: bool,
}

impl<S: SampleSource> Windows<S> {
    pub fn new(source: S) -> Self {
        Windows { source, buf: Vec::with_capacity(N_SAMPLES + SAMPLE_RATE as usize), start: 0, ended: false }
    }

    /// The samples from absolute index `at` on, at most [`N_SAMPLES`] of them; fewer only when
    /// the audio ends within the window (empty when it ends before `at`). Windows must move
    /// forward: samples before `at` are dropped.
    pub fn window(&mut self, at: u64) -> Result<&[f32]> {
        if at < self.start {
            return Err(Error::InvalidArgument(format!(
                "audio windows move forward only (asked for sample {at}, the window starts at {})",
                self.start
            )));
        }
        loop {
            let drop = ((at - self.start) as usize).min(self.buf.len());
            if drop > 0 {
                self.buf.drain(..drop);
                self.start += drop as u64;
            }
            if self.ended || (self.start == at && self.buf.len() >= N_SAMPLES) {
                break;
            }
            if self.source.read_chunk(&mut self.buf)? == 0 {
                self.ended = true;
            }
        }
        let from = ((at - self.start) as usize).min(self.buf.len());
        let to = (from + N_SAMPLES).min(self.buf.len());
        Ok(&self.buf[from..to])
    }

    /// Total samples, once the source has ended (always after a window came back short).
    pub fn total(&self) -> Option<u64> {
        self.ended.then_some(self.start + self.buf.len() as u64)
    }

    pub fn len_hint(&self) -> Option<u64> {
        self.total().or_else(|| self.source.len_hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source of `n` samples (value = index) in chunks of `chunk`.
    struct Counting {
        n: usize,
        pos: usize,
        chunk: usize,
    }

    impl SampleSource for Counting {
        fn read_chunk(&mut self, out: &mut Vec<f32>) -> Result<usize> {
            let end = (self.pos + self.chunk).min(self.n);
            out.extend((self.pos..end).map(|i| i as f32));
            let k = end - self.pos;
            self.pos = end;
            Ok(k)
        }
    }

    #[test]
    fn windows_move_forward_and_stay_bounded() {
        let n = 3 * N_SAMPLES + 1234;
        let mut w = Windows::new(Counting { n, pos: 0, chunk: 7777 });
        let a = w.window(0).unwrap();
        assert_eq!((a.len(), a[0], a[N_SAMPLES - 1]), (N_SAMPLES, 0.0, (N_SAMPLES - 1) as f32));
        assert_eq!(w.total(), None);
        let b = w.window(12_345).unwrap();
        assert_eq!((b.len(), b[0]), (N_SAMPLES, 12_345.0));
        // Past what is buffered: skips ahead.
        let at = (2 * N_SAMPLES + 5000) as u64;
        let c = w.window(at).unwrap();
        assert_eq!((c.len(), c[0]), (n - at as usize, at as f32));
        assert_eq!(w.total(), Some(n as u64));
        assert!(w.buf.capacity() < 2 * N_SAMPLES, "buffer grew to {}", w.buf.capacity());
        assert!(w.window(n as u64 + 10).unwrap().is_empty());
        assert!(matches!(w.window(0), Err(Error::InvalidArgument(_))));
    }
}
