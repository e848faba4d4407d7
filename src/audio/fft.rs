//! A small mixed-radix FFT, enough for the STFT of the log-mel front end.
//!
//! Whisper's frame is 400 samples, not a power of two, so this is a decimation-in-time
//! Cooley-Tukey over any factorisation (radix 4, 2, 3, 5 butterflies, a plain DFT for other
//! primes). Everything is planned once: the digit-reversal permutation and per-stage twiddles.
//! Real input of even length goes through a complex FFT of half the length (the classic
//! even/odd packing), which halves the work. Arithmetic is f64: the log-mel is computed more
//! accurately than the f32 reference, so any difference is the reference's rounding.
use std::f64::consts::PI;

/// A complex number; kept local so the crate needs no numeric dependency.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct C64 {
    pub re: f64,
    pub im: f64,
}

impl C64 {
    pub const fn new(re: f64, im: f64) -> Self {
        C64 { re, im }
    }
    /// e^{-2 pi i k / n}: the forward-transform twiddle.
    fn twiddle(k: usize, n: usize) -> Self {
        let a = -2.0 * PI * (k as f64) / (n as f64);
        C64::new(a.cos(), a.sin())
    }
    #[inline(always)]
    fn add(self, o: C64) -> C64 {
        C64::new(self.re + o.re, self.im + o.im)
    }
    #[inline(always)]
    fn sub(self, o: C64) -> C64 {
        C64::new(self.re - o.re, self.im - o.im)
    }
    #[inline(always)]
    fn mul(self, o: C64) -> C64 {
        C64::new(self.re * o.re - self.im * o.im, self.re * o.im + self.im * o.re)
    }
    #[inline(always)]
    fn scale(self, s: f64) -> C64 {
        C64::new(self.re * s, self.im * s)
    }
    /// Multiplication by -i (a quarter turn clockwise).
    #[inline(always)]
    fn mul_neg_i(self) -> C64 {
        C64::new(self.im, -self.re)
    }
    #[inline(always)]
    fn conj(self) -> C64 {
        C64::new(self.re, -self.im)
    }
}

/// One combine stage: `radix` sub-transforms of length `m` become one of length `radix * m`.
struct Stage {
    radix: usize,
    m: usize,
    /// `twiddles[k * radix + j]` = W_{radix*m}^{j*k}, for k < m, j < radix.
    twiddles: Vec<C64>,
    /// W_radix^{j}, used by the generic butterfly.
    roots: Vec<C64>,
}

/// A planned forward complex FFT of one length.
pub(crate) struct Fft {
    n: usize,
    /// Input index feeding each slot of the working buffer (mixed-radix digit reversal).
    perm: Vec<usize>,
    stages: Vec<Stage>,
}

/// Factors `n`, preferring radix 4 (fewest multiplies), then 2, 3, 5, then any prime.
fn factorize(mut n: usize) -> Vec<usize> {
    let mut f = Vec::new();
    for r in [4, 2, 3, 5] {
        while n % r == 0 {
            f.push(r);
            n /= r;
        }
    }
    let mut p = 7;
    while n > 1 {
        while n % p == 0 {
            f.push(p);
            n /= p;
        }
        p += 2;
    }
    f
}

impl Fft {
    /// Plans a transform of length `n` (n >= 1).
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        // factors[0] is the outermost split: x[j], x[j + r0], ... form sub-sequence j.
        let factors = factorize(n);
        let mut perm = Vec::with_capacity(n);
        // Slot order: the sub-sequence x[offset + j*stride ..] of each split, depth first.
        fn digits(stride: usize, offset: usize, factors: &[usize], out: &mut Vec<usize>) {
            match factors.split_first() {
                None => out.push(offset),
                Some((&r, rest)) => {
                    for j in 0..r {
                        digits(stride * r, offset + j * stride, rest, out);
                    }
                }
            }
        }
        digits(1, 0, &factors, &mut perm);

        // Combine from the innermost factor outwards.
        let mut stages = Vec::with_capacity(factors.len());
        let mut m = 1;
        for &radix in factors.iter().rev() {
            let size = radix * m;
            let mut twiddles = Vec::with_capacity(size);
            for k in 0..m {
                for j in 0..radix {
                    twiddles.push(C64::twiddle(j * k, size));
                }
            }
            let roots = (0..radix).map(|j| C64::twiddle(j, radix)).collect();
            stages.push(Stage { radix, m, twiddles, roots });
            m = size;
        }
        Fft { n, perm, stages }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    /// Forward transform of `input` into `out` (both of length `n`): X[k] = sum x[t] e^{-2 pi i kt/n}.
    pub fn forward(&self, input: &[C64], out: &mut [C64]) {
        debug_assert!(input.len() == self.n && out.len() == self.n);
        for (o, &p) in out.iter_mut().zip(&self.perm) {
            *o = input[p];
        }
        let mut scratch = [C64::default(); 16];
        for st in &self.stages {
            let span = st.radix * st.m;
            for group in out.chunks_exact_mut(span) {
                for k in 0..st.m {
                    let tw = &st.twiddles[k * st.radix..(k + 1) * st.radix];
                    match st.radix {
                        2 => butterfly2(group, k, st.m, tw),
                        3 => butterfly3(group, k, st.m, tw),
                        4 => butterfly4(group, k, st.m, tw),
                        5 => butterfly5(group, k, st.m, tw),
                        _ => butterfly_generic(group, k, st.m, tw, &st.roots, &mut scratch),
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn butterfly2(g: &mut [C64], k: usize, m: usize, tw: &[C64]) {
    let a = g[k];
    let b = g[k + m].mul(tw[1]);
    g[k] = a.add(b);
    g[k + m] = a.sub(b);
}

#[inline(always)]
fn butterfly3(g: &mut [C64], k: usize, m: usize, tw: &[C64]) {
    // W_3 = -1/2 - i sqrt(3)/2
    const S: f64 = 0.866_025_403_784_438_6;
    let a = g[k];
    let b = g[k + m].mul(tw[1]);
    let c = g[k + 2 * m].mul(tw[2]);
    let s = b.add(c);
    let d = b.sub(c).mul_neg_i().scale(S);
    let h = a.sub(s.scale(0.5));
    g[k] = a.add(s);
    g[k + m] = h.add(d);
    g[k + 2 * m] = h.sub(d);
}

#[inline(always)]
fn butterfly4(g: &mut [C64], k: usize, m: usize, tw: &[C64]) {
    let a = g[k];
    let b = g[k + m].mul(tw[1]);
    let c = g[k + 2 * m].mul(tw[2]);
    let d = g[k + 3 * m].mul(tw[3]);
    let ac0 = a.add(c);
    let ac1 = a.sub(c);
    let bd0 = b.add(d);
    let bd1 = b.sub(d).mul_neg_i();
    g[k] = ac0.add(bd0);
    g[k + m] = ac1.add(bd1);
    g[k + 2 * m] = ac0.sub(bd0);
    g[k + 3 * m] = ac1.sub(bd1);
}

#[inline(always)]
fn butterfly5(g: &mut [C64], k: usize, m: usize, tw: &[C64]) {
    // cos/sin of 2 pi/5 and 4 pi/5.
    const C1: f64 = 0.309_016_994_374_947_45;
    const C2: f64 = -0.809_016_994_374_947_5;
    const S1: f64 = 0.951_056_516_295_153_5;
    const S2: f64 = 0.587_785_252_292_473_1;
    let x0 = g[k];
    let x1 = g[k + m].mul(tw[1]);
    let x2 = g[k + 2 * m].mul(tw[2]);
    let x3 = g[k + 3 * m].mul(tw[3]);
    let x4 = g[k + 4 * m].mul(tw[4]);
    let s14 = x1.add(x4);
    let d14 = x1.sub(x4);
    let s23 = x2.add(x3);
    let d23 = x2.sub(x3);
    let r1 = x0.add(s14.scale(C1)).add(s23.scale(C2));
    let r2 = x0.add(s14.scale(C2)).add(s23.scale(C1));
    // -i * (S1 d14 + S2 d23) and -i * (S2 d14 - S1 d23)
    let i1 = d14.scale(S1).add(d23.scale(S2)).mul_neg_i();
    let i2 = d14.scale(S2).sub(d23.scale(S1)).mul_neg_i();
    g[k] = x0.add(s14).add(s23);
    g[k + m] = r1.add(i1);
    g[k + 4 * m] = r1.sub(i1);
    g[k + 2 * m] = r2.add(i2);
    g[k + 3 * m] = r2.sub(i2);
}

/// Plain O(r^2) DFT for a prime radix above 5 (never hit by Whisper's sizes).
fn butterfly_generic(g: &mut [C64], k: usize, m: usize, tw: &[C64], roots: &[C64], scratch: &mut [C64; 16]) {
    let r = roots.len();
    let mut heap;
    let t: &mut [C64] = if r <= scratch.len() {
        &mut scratch[..r]
    } else {
        heap = vec![C64::default(); r];
        &mut heap
    };
    for j in 0..r {
        t[j] = g[k + j * m].mul(tw[j]);
    }
    for q in 0..r {
        let mut acc = C64::default();
        for (j, &v) in t.iter().enumerate() {
            acc = acc.add(v.mul(roots[(j * q) % r]));
        }
        g[k + q * m] = acc;
    }
}

/// A planned FFT of real input of even length `n`, giving the `n/2 + 1` non-negative bins.
pub(crate) struct RealFft {
    half: Fft,
    /// W_n^k for k in 0..n/2.
    twiddles: Vec<C64>,
}

impl RealFft {
    /// `n` must be even and at least 2.
    pub fn new(n: usize) -> Self {
        debug_assert!(n >= 2 && n % 2 == 0);
        let h = n / 2;
        RealFft { half: Fft::new(h), twiddles: (0..h).map(|k| C64::twiddle(k, n)).collect() }
    }

    /// Number of output bins, `n/2 + 1`.
    pub fn bins(&self) -> usize {
        self.half.len() + 1
    }

    /// Spectrum of `input` (length n) into `out` (length n/2 + 1), using `packed` and `z`
    /// (length n/2 each) as scratch so the caller can reuse them across frames.
    pub fn forward(&self, input: &[f64], out: &mut [C64], packed: &mut [C64], z: &mut [C64]) {
        let h = self.half.len();
        debug_assert!(input.len() == 2 * h && out.len() == h + 1);
        // z[t] = x[2t] + i x[2t+1]; Z = FFT_h(z).
        for (p, pair) in packed.iter_mut().zip(input.chunks_exact(2)) {
            *p = C64::new(pair[0], pair[1]);
        }
        self.half.forward(packed, z);
        // Split: E[k] = (Z[k] + conj Z[h-k]) / 2 (even samples), O[k] = (Z[k] - conj Z[h-k]) / 2i,
        // X[k] = E[k] + W_n^k O[k].
        // Bins 0 and h both pair Z[0] with itself (no `% h` in the hot loop: it cost ~10%).
        let split = |zk: C64, zc: C64, w: C64| {
            let e = zk.add(zc).scale(0.5);
            let o = zk.sub(zc).scale(0.5).mul_neg_i();
            e.add(w.mul(o))
        };
        out[0] = split(z[0], z[0].conj(), self.twiddles[0]);
        for k in 1..h {
            out[k] = split(z[k], z[h - k].conj(), self.twiddles[k]);
        }
        out[h] = split(z[0], z[0].conj(), C64::new(-1.0, 0.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[C64]) -> Vec<C64> {
        let n = x.len();
        (0..n)
            .map(|k| {
                x.iter().enumerate().fold(C64::default(), |acc, (t, &v)| acc.add(v.mul(C64::twiddle((k * t) % n, n))))
            })
            .collect()
    }

    fn signal(n: usize) -> Vec<C64> {
        (0..n).map(|i| C64::new((i as f64 * 0.37).sin() + 0.1, (i as f64 * 1.3).cos())).collect()
    }

    #[test]
    fn matches_naive_dft_for_mixed_sizes() {
        for n in [1, 2, 3, 4, 5, 6, 7, 8, 12, 15, 16, 20, 25, 49, 60, 77, 100, 200, 400] {
            let x = signal(n);
            let mut out = vec![C64::default(); n];
            Fft::new(n).forward(&x, &mut out);
            let want = naive(&x);
            for (a, b) in out.iter().zip(&want) {
                assert!((a.re - b.re).abs() < 1e-9 && (a.im - b.im).abs() < 1e-9, "n={n}");
            }
        }
    }

    #[test]
    fn real_fft_matches_complex() {
        for n in [2, 4, 10, 400] {
            let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.91).sin() * (i as f64 * 0.05).cos()).collect();
            let xc: Vec<C64> = x.iter().map(|&v| C64::new(v, 0.0)).collect();
            let want = naive(&xc);
            let rf = RealFft::new(n);
            let mut out = vec![C64::default(); rf.bins()];
            let (mut a, mut b) = (vec![C64::default(); n / 2], vec![C64::default(); n / 2]);
            rf.forward(&x, &mut out, &mut a, &mut b);
            for (k, o) in out.iter().enumerate() {
                assert!((o.re - want[k].re).abs() < 1e-9 && (o.im - want[k].im).abs() < 1e-9, "n={n} k={k}");
            }
        }
    }
}
