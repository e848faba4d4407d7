//! Band-limited resampling by windowed sinc (Kaiser window), streaming.
//!
//! Output sample n sits at input time t = n * src / dst, and is
//! `y[n] = sum_k x[k] h(t - k)` with `h(tau) = 2w sinc(2w tau) kaiser(tau / W)`, a low-pass at
//! `w = ROLLOFF * min(src, dst) / 2` (in cycles per input sample, after dividing by `src`) that
//! is both the anti-aliasing filter (downsampling) and the interpolator (upsampling).
//!
//! With `src / dst = m / l` in lowest terms, t mod 1 takes only `l` values, so `h` is tabulated
//! per phase. When `l` is large (an odd rate such as 44 099 Hz) the table keeps `MAX_PHASES`
//! phases and interpolates linearly between neighbours; the kernel is so smooth at that spacing
//! that the error is below -100 dB. Time is tracked with integers, so a stream fed in any chunk
//! sizes computes exactly the same numbers as one call over the whole signal.
use super::{MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
use crate::{Error, Result};

/// Passband edge as a fraction of the lower Nyquist frequency. With `ZEROS` and `BETA` below the
/// transition band is about 0.9 .. 1.0 of the lower Nyquist (7.2 .. 8.0 kHz into 16 kHz).
const ROLLOFF: f64 = 0.945;
/// Zero crossings of the sinc kept on each side: sets the steepness of the transition band.
const ZEROS: f64 = 32.0;
/// Kaiser shape: about 90 dB of stopband attenuation.
const BETA: f64 = 9.0;
/// Phases tabulated when the rate ratio has a large denominator.
const MAX_PHASES: u64 = 512;

/// Streaming sample-rate converter. Feed input with [`Resampler::process`], then call
/// [`Resampler::finish`] at the end: the total output is `round(n_in * dst / src)` samples, the first
/// one aligned with the first input sample, the signal taken as zero outside the input.
pub struct Resampler {
    /// Output n is at input time n * m / l.
    l: u64,
    m: u64,
    /// Rows in the table minus one; equals `l` when exact (no interpolation).
    phases: u64,
    /// Taps per output sample, and how many of them lie before the sample at floor(t).
    taps: usize,
    left: usize,
    /// `(phases + 1) x taps`: row p holds h(p / phases + left - j) for tap j.
    table: Vec<f32>,
    /// Pending input; `buf[0]` is absolute input index `buf_start` (negative = leading zeros).
    buf: Vec<f32>,
    buf_start: i64,
    n_in: u64,
    n_out: u64,
    /// Input time of output `n_out` as floor and remainder over `l`, stepped by m / l per output
    /// (no division in the loop).
    pos_i: u64,
    pos_rem: u64,
    passthrough: bool,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for the
/// arguments a Kaiser window uses).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, q) = (1.0, 1.0, x * x / 4.0);
    for k in 1..200 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

impl Resampler {
    /// A converter from `src` Hz to `dst` Hz; both must lie in the accepted range
    /// ([`MIN_SAMPLE_RATE`], [`MAX_SAMPLE_RATE`]).
    pub fn new(src: u32, dst: u32) -> Result<Self> {
        for (what, r) in [("source", src), ("target", dst)] {
            if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&r) {
                return Err(Error::InvalidAudio(format!(
                    "{what} sample rate {r} Hz is outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz"
                )));
            }
        }
        let g = gcd(src as u64, dst as u64);
        let (l, m) = (dst as u64 / g, src as u64 / g);
        let mut r = Resampler {
            l,
            m,
            phases: 0,
            taps: 0,
            left: 0,
            table: Vec::new(),
            buf: Vec::new(),
            buf_start: 0,
            n_in: 0,
            n_out: 0,
            pos_i: 0,
            pos_rem: 0,
            passthrough: src == dst,
        };
        if r.passthrough {
            return Ok(r);
        }
        // Cutoff in cycles per input sample, and the kernel half-width in input samples.
        let w = ROLLOFF * 0.5 * (src.min(dst) as f64) / src as f64;
        let half_width = ZEROS / (2.0 * w);
        // Row `phases` (t mod 1 = 1) needs taps down to 1 - (ceil(W) + 1) <= -W.
        let half = half_width.ceil() as usize + 1;
        r.left = half - 1;
        // Round up to a multiple of 8 so the dot product has no remainder loop; the extra taps
        // fall outside the kernel's support and are zero.
        r.taps = (2 * half).div_ceil(8) * 8;
        r.phases = if l <= MAX_PHASES { l } else { MAX_PHASES };
        let i0_beta = bessel_i0(BETA);
        r.table = Vec::with_capacity((r.phases as usize + 1) * r.taps);
        for p in 0..=r.phases {
            let frac = p as f64 / r.phases as f64;
            let row: Vec<f64> = (0..r.taps)
                .map(|j| {
                    let tau = frac + r.left as f64 - j as f64;
                    let u = tau / half_width;
                    if u.abs() >= 1.0 {
                        0.0
                    } else {
                        let win = bessel_i0(BETA * (1.0 - u * u).sqrt()) / i0_beta;
                        2.0 * w * sinc(2.0 * w * tau) * win
                    }
                })
                .collect();
            // Unit DC gain per phase, exactly (the unnormalised sums differ from 1 by ~1e-9).
            let sum: f64 = row.iter().sum();
            r.table.extend(row.iter().map(|&v| (v / sum) as f32));
        }
        r.reset();
        Ok(r)
    }

    /// Forgets all input: the next sample fed is the first of a new signal.
    pub fn reset(&mut self) {
        // Leading zeros stand for the signal before the first sample.
        self.buf.clear();
        self.buf.resize(self.left, 0.0);
        self.buf_start = -(self.left as i64);
        self.n_in = 0;
        self.n_out = 0;
        self.pos_i = 0;
        self.pos_rem = 0;
    }

    /// Number of output samples a whole input of `n_in` samples produces: round(n_in * dst / src).
    pub fn output_len(&self, n_in: u64) -> u64 {
        let (l, m) = (self.l as u128, self.m as u128);
        ((2 * n_in as u128 * l + m) / (2 * m)) as u64
    }

    /// Feeds `input`, appending every output sample that is now fully determined to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.n_in += input.len() as u64;
        if self.passthrough {
            out.extend_from_slice(input);
            self.n_out += input.len() as u64;
            return;
        }
        self.buf.extend_from_slice(input);
        self.emit(self.n_in as i64, u64::MAX, out);
    }

    /// Flushes the tail (the input is taken as zero past its end), then resets, so the
    /// converter can take a new signal.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        if self.passthrough {
            self.reset();
            return;
        }
        let total = self.output_len(self.n_in);
        if total > self.n_out {
            let (i_last, _) = self.position(total - 1);
            let end = i_last as i64 + (self.taps - self.left) as i64;
            let have = self.buf_start + self.buf.len() as i64;
            if end > have {
                self.buf.resize(self.buf.len() + (end - have) as usize, 0.0);
            }
            self.emit(end, total, out);
        }
        self.reset();
    }

    /// Integer part and numerator (over `l`) of the input time of output `n`.
    fn position(&self, n: u64) -> (u64, u64) {
        let num = n as u128 * self.m as u128;
        ((num / self.l as u128) as u64, (num % self.l as u128) as u64)
    }

    /// Emits outputs while their last tap is below absolute index `avail` and n < `limit`.
    fn emit(&mut self, avail: i64, limit: u64, out: &mut Vec<f32>) {
        let taps = self.taps;
        let (step_i, step_rem) = (self.m / self.l, self.m % self.l);
        while self.n_out < limit {
            let (i, rem) = (self.pos_i, self.pos_rem);
            let start = i as i64 - self.left as i64;
            if start + taps as i64 > avail {
                break;
            }
            let x = &self.buf[(start - self.buf_start) as usize..][..taps];
            let y = if self.phases == self.l {
                dot(x, self.row(rem as usize))
            } else {
                // Between tabulated phases p and p + 1; exact integer split of rem / l.
                let pos = rem * self.phases;
                let p = (pos / self.l) as usize;
                let f = (pos % self.l) as f32 / self.l as f32;
                let a = dot(x, self.row(p));
                if f == 0.0 {
                    a
                } else {
                    a + f * (dot(x, self.row(p + 1)) - a)
                }
            };
            out.push(y);
            self.n_out += 1;
            self.pos_i += step_i;
            self.pos_rem += step_rem;
            if self.pos_rem >= self.l {
                self.pos_rem -= self.l;
                self.pos_i += 1;
            }
        }
        // Drop input no later output can reach.
        let keep_from = (self.pos_i as i64 - self.left as i64).max(self.buf_start);
        let drop = ((keep_from - self.buf_start) as usize).min(self.buf.len());
        self.buf.drain(..drop);
        self.buf_start += drop as i64;
    }

    fn row(&self, p: usize) -> &[f32] {
        &self.table[p * self.taps..(p + 1) * self.taps]
    }
}

/// Dot product with eight independent accumulators so it vectorises (`a.len()` is a multiple
/// of 8 here).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let (x, y): (&[f32; 8], &[f32; 8]) = match (x.try_into(), y.try_into()) {
            (Ok(x), Ok(y)) => (x, y),
            _ => unreachable!(),
        };
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum()
}

/// Resamples a whole signal from `src` Hz to `dst` Hz; a copy when the rates are equal.
pub fn resample(samples: &[f32], src: u32, dst: u32) -> Result<Vec<f32>> {
    let mut r = Resampler::new(src, dst)?;
    let mut out = Vec::with_capacity(r.output_len(samples.len() as u64) as usize);
    r.process(samples, &mut out);
    r.finish(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bessel_matches_known_values() {
        assert!((bessel_i0(0.0) - 1.0).abs() < 1e-15);
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_4).abs() < 1e-13);
        assert!((bessel_i0(9.0) - 1_093.588_354_511_374_5).abs() < 1e-9);
    }

    #[test]
    fn output_length_rounds() {
        let r = Resampler::new(44_100, 16_000).unwrap();
        assert_eq!(r.output_len(44_100), 16_000);
        assert_eq!(r.output_len(3), 1); // 1.088 -> 1
        assert_eq!(r.output_len(0), 0);
    }

    #[test]
    fn dc_passes_with_unit_gain() {
        let x = vec![0.5f32; 48_000];
        let y = resample(&x, 48_000, 16_000).unwrap();
        assert_eq!(y.len(), 16_000);
        for v in &y[200..15_800] {
            assert!((v - 0.5).abs() < 1e-5, "{v}");
        }
    }
}
