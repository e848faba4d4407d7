//! Each WGSL kernel against the plain-Rust reference backend, on random inputs of awkward sizes
//! (not multiples of the workgroup or block sizes).
//!
//! Tolerances: both sides accumulate in f32 in the same order, but the GPU may fuse multiply-adds
//! and uses a polynomial erf (|error| < 1.5e-7) and its own exp; with sums of ~100 terms of
//! magnitude ~1, differences stay around 1e-6 relative. 1e-4 absolute (on values of order 1-10)
//! leaves a margin of ~10x without hiding a wrong index (which shows as errors of order 1).
//! f16 results are compared after both sides round to f16, where one rounding step is 2^-11
//! relative: those get 2e-3 relative.
mod common;
use common::*;
use whisper_wgpu::backend::wgpu::WgpuBackend;
use whisper_wgpu::backend::Backend;
use whisper_wgpu::graph::*;
use whisper_wgpu::model::pack::quantize_i8;

const TOL: f32 = 1e-4;

/// Packs `w` (`[n][k]`, PyTorch's `[out, in]`) k-major with columns padded to 16.
fn pack_kmajor(w: &[f32], n: usize, k: usize) -> (Vec<f32>, usize) {
    let n_pad = n.next_multiple_of(16);
    let mut out = vec![0f32; k * n_pad];
    for o in 0..n {
        for i in 0..k {
            out[i * n_pad + o] = w[o * k + i];
        }
    }
    (out, n_pad)
}

/// Packs `w` (`[n][k]`) as `BFormat::F16Blocked` lays it out: columns in blocks of 8 (padded
/// to 16), each block's k-run contiguous.
fn pack_blocked(w: &[f32], n: usize, k: usize) -> (Vec<f32>, usize) {
    let n_pad = n.next_multiple_of(16);
    let mut out = vec![0f32; k * n_pad];
    for o in 0..n {
        for i in 0..k {
            out[(o / 8) * 8 * k + 8 * i + o % 8] = w[o * k + i];
        }
    }
    (out, n_pad)
}

/// `y = x · B` with no epilogue: `m` rows of `k` in `x`, one f32 output segment.
fn plain_matmul(m: usize, n: usize, k: usize, x: BufId, b: BOperand, y: BufId) -> Op {
    Op::Matmul(Matmul {
        m,
        n,
        k,
        z_outer: 1,
        z_inner: 1,
        x: Rows { buf: x, base: 0, row: k, outer: 0, inner: 0 },
        b,
        bias: None,
        gelu: false,
        add: None,
        accumulate: false,
        out: vec![seg(n, y, Elem::F32, 0, n, 1)],
        state: None,
    })
}

/// A buffer made on the twin's backends and on `other` (same id and contents on all three).
fn buffer_beside(t: &mut Twin, other: &mut WgpuBackend, elem: Elem, len: usize, bytes: &[u8]) -> BufId {
    let id = t.buffer(elem, len, bytes);
    assert_eq!(other.create_buffer("t", elem, len).unwrap(), id);
    if !bytes.is_empty() {
        other.write(id, 0, bytes).unwrap();
    }
    id
}

/// The `n`x`k` weights `w` (row per output column) packed in `format` on the twin's backends
/// and on `other`: the buffer and, for int8, where its scales start.
fn weights_beside(
    t: &mut Twin,
    other: &mut WgpuBackend,
    format: BFormat,
    w: &[f32],
    n: usize,
    k: usize,
) -> (BufId, usize) {
    let mut both = |elem: Elem, len: usize, bytes: &[u8]| buffer_beside(t, other, elem, len, bytes);
    match format {
        BFormat::F32 => {
            let wp = pack_kmajor(w, n, k).0;
            (both(Elem::F32, wp.len(), bytemuck::cast_slice(&wp)), 0)
        }
        BFormat::F16 => {
            let wp = pack_kmajor(w, n, k).0;
            (both(Elem::F16, wp.len(), &f16_words(&wp)), 0)
        }
        BFormat::F16Blocked => {
            let wp = pack_blocked(w, n, k).0;
            (both(Elem::F16, wp.len(), &f16_words(&wp)), 0)
        }
        BFormat::I8 => {
            let (words, scale_base) = quantize_i8(k, n.next_multiple_of(16), n, |kk, c| w[c * k + kk]);
            (both(Elem::U32, words.len(), bytemuck::cast_slice(&words)), scale_base)
        }
    }
}

/// Runs `op` on the twin and on `other`; returns `len` f32 of `y` from the reference, the
/// twin's GPU and `other`.
fn run_beside(t: &mut Twin, other: &mut WgpuBackend, op: Op, y: BufId, len: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    t.run(std::slice::from_ref(&op), 1);
    let plan = other.compile(&[op]).unwrap();
    other.run(plan, 1).unwrap();
    let (reference, gpu) = t.read_f32(y, len);
    (reference, gpu, other.read_f32(y, 0, len).unwrap())
}

fn seg(end: usize, buf: BufId, elem: Elem, base: usize, row: usize, col: usize) -> OutSegment {
    OutSegment { end, buf, elem, base, row, col, outer: 0, inner: 0, pos: 0 }
}

#[test]
fn matmul_f16_weights_bias_gelu() {
    let Some(mut t) = Twin::new() else { return };
    let mut rng = Rng::new(1);
    for &(m, n, k) in &[(37usize, 203usize, 76usize), (1, 1000, 388), (9, 16, 4), (130, 77, 60)] {
        let x = rng.vec(m * k, 1.0);
        let w = rng.vec(n * k, 0.2);
        let (wp, n_pad) = pack_kmajor(&w, n, k);
        let xb = t.f32(&x);
        let wb = t.f16(&wp);
        let bias = t.f32(&rng.vec(n, 0.5));
        let y = t.zeros(m * n);
        let op = Op::Matmul(Matmul {
            m,
            n,
            k,
            z_outer: 1,
            z_inner: 1,
            x: Rows { buf: xb, base: 0, row: k, outer: 0, inner: 0 },
            b: BOperand { buf: wb, format: BFormat::F16, base: 0, k_stride: n_pad, outer: 0, inner: 0, scale_base: 0 },
            bias: Some((bias, 0)),
            gelu: true,
            add: None,
            accumulate: false,
            out: vec![seg(n, y, Elem::F32, 0, n, 1)],
            state: None,
        });
        t.run(&[op], 1);
        let (a, b) = t.read_f32(y, m * n);
        assert_close(&format!("matmul f16 {m}x{n}x{k}"), &a, &b, TOL);
        assert!(a.iter().any(|v| v.abs() > 0.1), "reference output is degenerate");
    }
}

#[test]
fn matmul_batched_strided_with_split_outputs() {
    let Some(mut t) = Twin::new() else { return };
    let mut rng = Rng::new(2);
    // x: [zo=2][zi=3][m=21][k=44] inside a larger buffer with padding between blocks.
    let (zo, zi, m, n, k) = (2usize, 3usize, 21usize, 45usize, 44usize);
    let (x_row, x_inner, x_outer, x_base) = (48usize, 21 * 48 + 8, 3 * (21 * 48 + 8) + 4, 12usize);
    let x = rng.vec(x_base + zo * x_outer, 1.0);
    // B: f32 activations [zo][zi][k][n] with k stride 64 (n padded to 48 <= 64).
    let (b_k, b_inner, b_outer, b_base) = (64usize, 44 * 64, 3 * 44 * 64 + 8, 4usize);
    let bmat = rng.vec(b_base + zo * b_outer, 0.3);
    let xb = t.f32(&x);
    let bb = t.f32(&bmat);
    let add = t.f32(&rng.vec(zo * zi * m * n, 1.0));
    // Segment 0: columns [0, 16) row-major, accumulating into existing values.
    let y0_init = rng.vec(zo * zi * m * 16, 1.0);
    let y0 = t.f32(&y0_init);
    // Segment 1: columns [16, 32) transposed f32: [z][col][row] with row stride 1, col stride 24.
    let y1 = t.zeros(zo * zi * 16 * 24);
    // Segment 2: columns [32, 45) transposed f16: col stride 22 (even), rows adjacent.
    let y2 = t.buffer(Elem::F16, zo * zi * 13 * 22 + 2, &[]);
    let z = |s: OutSegment, outer: usize, inner: usize| OutSegment { outer, inner, ..s };
    let op = Op::Matmul(Matmul {
        m,
        n,
        k,
        z_outer: zo,
        z_inner: zi,
        x: Rows { buf: xb, base: x_base, row: x_row, outer: x_outer, inner: x_inner },
        b: BOperand {
            buf: bb,
            format: BFormat::F32,
            base: b_base,
            k_stride: b_k,
            outer: b_outer,
            inner: b_inner,
            scale_base: 0,
        },
        bias: None,
        gelu: false,
        add: Some(Rows { buf: add, base: 0, row: n, outer: zi * m * n, inner: m * n }),
        accumulate: true,
        out: vec![
            z(seg(16, y0, Elem::F32, 0, 16, 1), zi * m * 16, m * 16),
            z(seg(32, y1, Elem::F32, 0, 1, 24), zi * 16 * 24, 16 * 24),
            z(seg(45, y2, Elem::F16, 0, 1, 22), zi * 13 * 22, 13 * 22),
        ],
        state: None,
    });
    t.run(&[op], 1);
    let (a, b) = t.read_f32(y0, zo * zi * m * 16);
    assert_close("segment 0 (accumulated)", &a, &b, TOL);
    assert!(a.iter().zip(&y0_init).any(|(r, i)| (r - i).abs() > 0.1), "accumulate did nothing");
    let (a, b) = t.read_f32(y1, zo * zi * 16 * 24);
    assert_close("segment 1 (transposed)", &a, &b, TOL);
    let (a, b) = t.read_f16(y2, zo * zi * 13 * 22);
    for (i, (r, g)) in a.iter().zip(&b).enumerate() {
        assert!((r - g).abs() <= 2e-3 * r.abs().max(1.0), "segment 2 (f16) at {i}: {r} vs {g}");
    }
}

/// Decode rows: done rows are skipped; f16 cache segments are written at each row's position.
#[test]
fn matmul_decode_rows_write_kv_cache() {
    let Some(mut t) = Twin::new() else { return };
    let mut rng = Rng::new(3);
    let (m, d, k, cap) = (3usize, 32usize, 36usize, 48usize);
    let n = 3 * d;
    let w = rng.vec(n * k, 0.3);
    let (wp, n_pad) = pack_kmajor(&w, n, k);
    let xb = t.f32(&rng.vec(m * k, 1.0));
    let wb = t.f16(&wp);
    let mut state = vec![0u32; m * STATE_WORDS];
    for (r, pos) in [(0usize, 5u32), (1, 0), (2, 47)] {
        state[r * STATE_WORDS + state::POS] = pos;
    }
    state[STATE_WORDS + state::DONE] = 1; // row 1 finished: must be left alone
    let st = t.u32(&state);
    let q = t.f32(&vec![7.0; m * d]);
    let kc = t.buffer(Elem::F16, m * d * cap, &[]);
    let vc = t.buffer(Elem::F16, m * d * cap, &[]);
    let cache = |end, buf| OutSegment {
        end,
        buf,
        elem: Elem::F16,
        base: 0,
        row: d * cap,
        col: cap,
        outer: 0,
        inner: 0,
        pos: 1,
    };
    let op = Op::Matmul(Matmul {
        m,
        n,
        k,
        z_outer: 1,
        z_inner: 1,
        x: Rows { buf: xb, base: 0, row: k, outer: 0, inner: 0 },
        b: BOperand { buf: wb, format: BFormat::F16, base: 0, k_stride: n_pad, outer: 0, inner: 0, scale_base: 0 },
        bias: None,
        gelu: false,
        add: None,
        accumulate: false,
        out: vec![seg(d, q, Elem::F32, 0, d, 1), cache(2 * d, kc), cache(3 * d, vc)],
        state: Some(st),
    });
    t.run(&[op], 1);
    let (a, b) = t.read_f32(q, m * d);
    assert_close("q rows", &a, &b, TOL);
    assert!(a[d..2 * d].iter().all(|&v| v == 7.0), "the done row was written");
    for buf in [kc, vc] {
        let (a, b) = t.read_f16(buf, m * d * cap);
        for (i, (r, g)) in a.iter().zip(&b).enumerate() {
            assert!((r - g).abs() <= 2e-3 * r.abs().max(1.0), "cache at {i}: {r} vs {g}");
        }
        assert!(a[5] != 0.0 && a[2 * d * cap + 47] != 0.0, "positions were not written");
    }
}

#[test]
fn matmul_conv_as_overlapping_rows() {
    // A kernel-3 convolution with stride 2 as a GEMM: row t reads input rows 2t-1 .. 2t+1,
    // i.e. a window of 3*c values starting at (2t)*c in a buffer with one zero row in front.
    let Some(mut t) = Twin::new() else { return };
    let mut rng = Rng::new(4);
    let (c_in, c_out, t_in) = (20usize, 40usize, 31usize);
    let mut input = vec![0f32; (t_in + 2) * c_in];
    input[c_in..(t_in + 1) * c_in].copy_from_slice(&rng.vec(t_in * c_in, 1.0));
    let t_out = t_in.div_ceil(2);
    let w = rng.vec(c_out * 3 * c_in, 0.3);
    let (wp, n_pad) = pack_kmajor(&w, c_out, 3 * c_in);
    let xb = t.f32(&input);
    let wb = t.f16(&wp);
    let pos = t.f32(&rng.vec(t_out * c_out, 1.0));
    let y = t.zeros(t_out * c_out);
    let op = Op::Matmul(Matmul {
        m: t_out,
        n: c_out,
        k: 3 * c_in,
        z_outer: 1,
        z_inner: 1,
        x: Rows { buf: xb, base: 0, row: 2 * c_in, outer: 0, inner: 0 },
        b: BOperand { buf: wb, format: BFormat::F16, base: 0, k_stride: n_pad, outer: 0, inner: 0, scale_base: 0 },
        bias: Some((t.f32(&rng.vec(c_out + 3, 0.1)), 3)),
        gelu: true,
        add: Some(Rows { buf: pos, base: 0, row: c_out, outer: 0, inner: 0 }),
        accumulate: false,
        out: vec![seg(c_out, y, Elem::F32, 0, c_out, 1)],
        state: None,
    });
    t.run(&[op], 1);
    let (a, b) = t.read_f32(y, t_out * c_out);
    assert_close("strided conv", &a, &b, TOL);
}

#[test]
fn layernorm_strided_rows() {
    let Some(mut t) = Twin::new() else { return };
    let mut rng = Rng::new(5);
    let (rows, dim, x_row, y_row) = (67usize, 92usize, 100usize, 96usize);
    // Large offset values check the two-pass variance.
    let x: Vec<f32> = rng.vec(rows * x_row + 4, 3.0).iter().map(|v| v + 40.0).collect();
    let xb = t.f32(&x);
    let g = t.f32(&rng.vec(dim, 1.0));
    let bt = t.f32(&rng.vec(dim, 1.0));
    let y = t.zeros(rows * y_row + 8);
    let op = Op::LayerNorm(LayerNorm {
        rows,
        dim,
        x: xb,
        x_base: 4,
        x_row,
        gamma: g,
        beta: bt,
        y,
        y_base: 8,
        y_row,
        eps: 1e-5,
        state: None,
    });
    t.run(&[op], 1);
    let (a, b) = t.read_f32(y, rows * y_row + 8);
    assert_close("layernorm", &a, &b, TOL);
}

#[test]
fn softmax_rows_in_place() {
    let Some(mut t) = Twin::new() else { return };
    let mut rng = Rng::new(6);
    let (z, rows, cols, row, zs) = (3usize, 71usize, 45usize, 48usize, 71 * 48 + 4);
    let buf = t.f32(&rng.vec(z * zs, 8.0));
    let op = Op::Softmax(Softmax { buf, rows, cols, base: 0, row, col: 1, z, z_stride: zs, scale: 0.125 });
    t.run(&[op], 1);
    let (a, b) = t.read_f32(buf, z * zs);
    // Probabilities: f32 exp differences of ~1e-7 relative.
    assert_close("softmax", &a, &b, 1e-6);
}

/// The encoder's layout: vectors side by side (row 1), values a key stride apart. 72 vectors
/// take the four-vectors-per-invocation path, 71 the one-vector path; 45 values leave a tail
/// after the blocks of four.
#[test]
fn softmax_columns_in_place() {
    let Some(mut t) = Twin::new() else { return };
    let mut rng = Rng::new(16);
    for rows in [72usize, 71] {
        let (z, cols, col) = (2usize, 45usize, 80usize);
        let zs = cols * col + 8;
        let buf = t.f32(&rng.vec(4 + z * zs, 8.0));
        let op = Op::Softmax(Softmax { buf, rows, cols, base: 4, row: 1, col, z, z_stride: zs, scale: 0.125 });
        t.run(&[op], 1);
        let (a, b) = t.read_f32(buf, 4 + z * zs);
        // As above.
        assert_close(&format!("softmax over columns, {rows} vectors"), &a, &b, 1e-6);
    }
}

#[test]
fn embed_from_state_across_chunks() {
    let Some(mut t) = Twin::new() else { return };
    let mut rng = Rng::new(7);
    let (rows, dim, vocab, ctx) = (4usize, 40usize, 150usize, 9usize);
    // Two chunks: tokens [0, 96) and [96, 150), each packed k-major with its own padding.
    let emb = rng.vec(vocab * dim, 1.0);
    let chunk = |lo: usize, hi: usize, t: &mut Twin| {
        let w: Vec<f32> = emb[lo * dim..hi * dim].to_vec();
        let (p, n_pad) = pack_kmajor(&w, hi - lo, dim);
        EmbeddingChunk {
            buf: t.f16(&p),
            format: BFormat::F16,
            col_start: lo,
            cols: hi - lo,
            row_elems: n_pad,
            scale_base: 0,
        }
    };
    let table = vec![chunk(0, 96, &mut t), chunk(96, 150, &mut t)];
    let positional = t.f32(&rng.vec(ctx * dim, 1.0));
    let mut state = vec![0u32; rows * STATE_WORDS];
    for (r, (tok, pos)) in [(3u32, 0u32), (149, 8), (96, 4), (95, 2)].into_iter().enumerate() {
        state[r * STATE_WORDS + state::TOKEN] = tok;
        state[r * STATE_WORDS + state::POS] = pos;
    }
    let st = t.u32(&state);
    let y = t.zeros(rows * dim);
    t.run(&[Op::Embed(Embed { rows, dim, table, positional, state: st, y })], 1);
    let (a, b) = t.read_f32(y, rows * dim);
    assert_close("embed", &a, &b, 1e-6);
    assert!(a.iter().all(|v| *v != 0.0), "some row was not written");
}

fn attend_case(t: &mut Twin, rng: &mut Rng, fixed: Option<usize>, full: bool, kv: Elem, positions: &[u32]) {
    attend_case_dims(t, rng, 64, fixed, full, kv, positions)
}

fn attend_case_dims(
    t: &mut Twin,
    rng: &mut Rng,
    hd: usize,
    fixed: Option<usize>,
    full: bool,
    kv: Elem,
    positions: &[u32],
) {
    let (heads, cap) = (3usize, 1040usize);
    let rows = positions.len();
    let q = t.f32(&rng.vec(rows * heads * hd + 4, 1.0));
    let cache = |t: &mut Twin, v: &[f32]| if kv == Elem::F16 { t.f16(v) } else { t.f32(v) };
    let kt = cache(t, &rng.vec(rows * heads * hd * cap, 1.0));
    let vt = cache(t, &rng.vec(rows * heads * hd * cap, 1.0));
    let mut state = vec![0u32; rows * STATE_WORDS];
    for (r, &p) in positions.iter().enumerate() {
        state[r * STATE_WORDS + state::POS] = p;
    }
    let st = t.u32(&state);
    let out = t.zeros(rows * heads * hd);
    let mut op = attend_op((rows, heads, hd, cap), fixed, kv, full, [q, kt, vt, out, st]);
    op.q_base = 4;
    op.partials = t.zeros(op.partials_len());
    t.run(&[Op::Attend(op)], 1);
    let (a, b) = t.read_f32(out, rows * heads * hd);
    // Softmax-weighted means of values in [-1, 1]: errors well below 1e-5.
    assert_close(&format!("attend hd={hd} fixed={fixed:?} full={full} {kv:?} positions={positions:?}"), &a, &b, 2e-5);
}

#[test]
fn attend_reads_valid_prefix_with_split_chunks() {
    let Some(mut t) = Twin::new() else { return };
    let mut rng = Rng::new(8);
    // Row 0 spans both 1024-key chunks; row 1 sits in the first; row 2 has a single key.
    attend_case(&mut t, &mut rng, None, false, Elem::F16, &[1030, 5, 0]);
    attend_case(&mut t, &mut rng, Some(1037), false, Elem::F16, &[0, 0]);
    attend_case(&mut t, &mut rng, None, true, Elem::F16, &[700, 1039]);
    attend_case(&mut t, &mut rng, None, false, Elem::F32, &[1030, 17]);
    attend_case(&mut t, &mut rng, Some(1037), true, Elem::F32, &[3]);
    // Head sizes other than 64: one pass over part of the lanes, two passes.
    attend_case_dims(&mut t, &mut rng, 40, None, false, Elem::F16, &[300, 2]);
    attend_case_dims(&mut t, &mut rng, 128, Some(1037), false, Elem::F16, &[0]);
    attend_case_dims(&mut t, &mut rng, 128, None, true, Elem::F32, &[1030]);
}

#[test]
fn select_applies_rules_prompt_and_eot() {
    let Some(mut t) = Twin::new() else { return };
    let mut rng = Rng::new(9);
    let (rows, vocab, cap) = (4usize, 1003usize, 20usize);
    let mut logits = rng.vec(rows * 1008, 5.0);
    // Row 0's best token is suppressed; row 2's best is the begin-suppressed token at its
    // first sample; row 3 is still inside its prompt; row 1 hits eot.
    logits[500] = 50.0;
    logits[1008 + 7] = 60.0;
    logits[2 * 1008 + 9] = 70.0;
    let lb = t.f32(&logits);
    let words = vocab.div_ceil(32);
    let mut rules = vec![0u32; 2 * words];
    rules[500 / 32] |= 1 << (500 % 32);
    rules[words] |= 1 << 9; // token 9 lives in word 0 of the begin-suppress mask
    let rb = t.u32(&rules);
    let mut state = vec![0u32; rows * STATE_WORDS];
    let mut history = vec![0u32; rows * cap];
    for r in 0..rows {
        let s = r * STATE_WORDS;
        state[s + state::POS] = 3;
        state[s + state::PROMPT_LEN] = if r == 3 { 6 } else { 2 };
        state[s + state::SAMPLE_BEGIN] = 4;
        state[s + state::MAX_LEN] = cap as u32;
        state[s + state::EOT] = 7;
        state[s + state::SOT_POS] = 3;
        state[s + state::NO_SPEECH] = if r == 0 { 11 } else { state::NONE };
        history[r * cap + 4] = 333;
    }
    let st = t.u32(&state);
    let hb = t.u32(&history);
    let lp = t.zeros(rows * cap);
    let op = Op::SelectToken(SelectToken {
        rows,
        vocab,
        logits: lb,
        logits_row: 1008,
        rules: rb,
        state: st,
        history: hb,
        logprobs: lp,
        cap,
        ts_begin: None,
        no_timestamps: None,
        rule: whisper_wgpu::config::Selection::Whisper,
    });
    t.run(&[op], 1);
    let (sa, sb) = t.read_u32(st, rows * STATE_WORDS);
    let (ha, hb2) = t.read_u32(hb, rows * cap);
    assert_eq!(ha, hb2, "history");
    for r in 0..rows {
        let s = r * STATE_WORDS;
        for w in [state::TOKEN, state::POS, state::DONE, state::N_GENERATED] {
            assert_eq!(sa[s + w], sb[s + w], "row {r} state word {w}");
        }
        for w in [state::SUM_LOGPROB, state::NO_SPEECH_PROB] {
            let (x, y) = (f32::from_bits(sa[s + w]), f32::from_bits(sb[s + w]));
            assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "row {r} word {w}: {x} vs {y}");
        }
    }
    assert_ne!(sa[state::TOKEN], 500, "suppressed token chosen");
    assert_eq!(sa[STATE_WORDS + state::DONE], 1, "eot did not finish row 1");
    assert_ne!(sa[2 * STATE_WORDS + state::TOKEN], 9, "begin-suppressed token chosen");
    assert_eq!(sa[3 * STATE_WORDS + state::TOKEN], 333, "prompt token not forced");
    assert!(f32::from_bits(sa[state::NO_SPEECH_PROB]) > 0.0);
    let (a, b) = t.read_f32(lp, rows * cap);
    assert_close("logprobs", &a, &b, 1e-5);
}

/// aria-amt's selection on the GPU against the CPU reference (`amt::select`): crafted rows
/// (smoothing between onset neighbours, a note id that is never smoothed, the pedal-off logit
/// winning only through its 1.05 scale, the velocity/onset boundary, `<E>`, a late onset, a
/// forced prompt token) and the 32 decoder logit rows aria-amt recorded for window 0 of its
/// reference run, whose chosen ids must come out exactly.
#[test]
fn aria_selection_matches_the_reference() {
    use whisper_wgpu::amt;
    use whisper_wgpu::config::Selection;
    let Some(mut t) = Twin::new() else { return };
    let vocab = amt::vocab::VOCAB_SIZE as usize;
    let mut rng = Rng::new(31);
    let mut rows: Vec<Vec<f32>> = Vec::new();
    let mut crafted = |peaks: &[(usize, f32)]| {
        let mut row = rng.vec(vocab, 2.0);
        for &(i, v) in peaks {
            row[i] = v;
        }
        rows.push(row);
    };
    crafted(&[(1500, 12.0), (1499, 11.5), (1501, 11.8), (1502, 10.0)]); // onset: smoothed
    crafted(&[(200, 12.0), (201, 11.9), (199, 11.9)]); // a note-on: only the argmax counts
    crafted(&[(389, 10.0), (390, 10.4)]); // pedal off wins by its 1.05 scale
    crafted(&[(417, 12.0), (418, 11.9), (416, 11.0), (419, 11.5)]); // velocity/onset boundary
    crafted(&[(1, 15.0)]); // <E>: the row ends
    crafted(&[(2500, 15.0), (2501, 14.5)]); // an onset past 20 s: the row ends
    crafted(&[(900, 15.0)]); // forced: the prompt's token wins whatever the logits
    let forced_row = rows.len() - 1;
    if let Ok(bytes) = std::fs::read(shared("reference/aria-amt-random/model_window0.safetensors")) {
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let recorded: Vec<f32> = bytemuck::pod_collect_to_vec(st.tensor("logits_incremental").unwrap().data());
        rows.extend(recorded.chunks(vocab).map(<[f32]>::to_vec));
    }
    let (n, cap) = (rows.len(), 16usize);
    let logits_row = vocab.next_multiple_of(16);
    let mut flat = vec![0f32; n * logits_row];
    for (r, row) in rows.iter().enumerate() {
        flat[r * logits_row..r * logits_row + vocab].copy_from_slice(row);
    }
    let mut state = vec![0u32; n * STATE_WORDS];
    let mut history = vec![0u32; n * cap];
    for r in 0..n {
        let s = r * STATE_WORDS;
        state[s + state::POS] = 3;
        state[s + state::PROMPT_LEN] = if r == forced_row { 6 } else { 2 };
        state[s + state::MAX_LEN] = cap as u32;
        history[r * cap + 4] = 777;
    }
    let (lb, rb) = (t.f32(&flat), t.u32(&vec![0u32; 2 * vocab.div_ceil(32)]));
    let (st, hb, lp) = (t.u32(&state), t.u32(&history), t.zeros(n * cap));
    let op = Op::SelectToken(SelectToken {
        rows: n,
        vocab,
        logits: lb,
        logits_row,
        rules: rb,
        state: st,
        history: hb,
        logprobs: lp,
        cap,
        ts_begin: None,
        no_timestamps: None,
        rule: Selection::AriaAmt,
    });
    t.run(&[op], 1);
    let (cpu, gpu) = t.read_u32(st, n * STATE_WORDS);
    for (r, row) in rows.iter().enumerate() {
        let s = r * STATE_WORDS;
        let want = if r == forced_row { 777 } else { amt::select(row).unwrap().selected };
        assert_eq!((cpu[s + state::TOKEN], gpu[s + state::TOKEN]), (want, want), "row {r}");
        assert_eq!(cpu[s + state::DONE], gpu[s + state::DONE], "row {r} done");
    }
    let token = |r: usize| gpu[r * STATE_WORDS + state::TOKEN];
    assert!((token(0) as i64 - 1500).abs() <= 1, "an onset is smoothed between neighbours");
    assert_eq!(token(1), 200);
    assert_eq!(token(2), amt::vocab::PEDAL_OFF_ID);
    assert_eq!(gpu[4 * STATE_WORDS + state::DONE], 1, "<E> ends the row");
    assert_eq!(gpu[5 * STATE_WORDS + state::DONE], 1, "a late onset ends the row");
    assert_eq!(gpu[state::DONE], 0);
    let (a, b) = t.read_f32(lp, n * cap);
    assert_close("aria logprobs", &a, &b, 1e-4);

    // A vocabulary that is not aria-amt's is refused, on every backend.
    let bad = Op::SelectToken(SelectToken {
        rows: 1,
        vocab: 100,
        logits: lb,
        logits_row,
        rules: rb,
        state: st,
        history: hb,
        logprobs: lp,
        cap,
        ts_begin: None,
        no_timestamps: None,
        rule: Selection::AriaAmt,
    });
    assert!(t.cpu.compile(std::slice::from_ref(&bad)).is_err());
    assert!(t.gpu.compile(std::slice::from_ref(&bad)).is_err());
}

/// Whisper's timestamp rules and seeded sampling: rows in many situations (just after a
/// timestamp pair, mid-pair, first token with a max-initial limit, suppressed ranges), decoded
/// for several steps so each step's choice feeds the next; greedy and sampled.
#[test]
fn select_timestamp_rules_and_sampling_over_steps() {
    let Some(mut t) = Twin::new() else { return };
    let mut rng = Rng::new(10);
    let (rows, vocab, cap) = (24usize, 300usize, 40usize);
    let (eot, no_ts, ts_begin) = (150u32, 199u32, 200u32);
    let words = vocab.div_ceil(32);
    let mut rules = vec![0u32; 2 * words];
    for tok in [3usize, 77, 151] {
        rules[tok / 32] |= 1 << (tok % 32);
    }
    rules[words + 220 / 32] |= 1 << (220 % 32); // begin-suppress a timestamp
    let rb = t.u32(&rules);
    let mut state = vec![0u32; rows * STATE_WORDS];
    let mut history = vec![0u32; rows * cap];
    for r in 0..rows {
        let s = r * STATE_WORDS;
        let sample_begin = 3usize;
        // Sampled so far: 0..4 tokens mixing text and (non-decreasing) timestamps.
        let n = r % 5;
        let mut seq = Vec::new();
        let mut last_ts = state::NONE;
        let mut ts = ts_begin + 5;
        for i in 0..n {
            let pick_ts = (r / 5 + i) % 2 == 0;
            if pick_ts {
                ts += rng.below(3) as u32;
                seq.push(ts);
                last_ts = ts;
            } else {
                seq.push(10 + rng.below(100) as u32);
            }
        }
        for (i, &tok) in [1u32, 2, 4].iter().chain(&seq).enumerate() {
            history[r * cap + i] = tok;
        }
        let pos = sample_begin + n - 1;
        state[s + state::POS] = pos as u32;
        state[s + state::TOKEN] = history[r * cap + pos];
        state[s + state::PROMPT_LEN] = sample_begin as u32;
        state[s + state::SAMPLE_BEGIN] = sample_begin as u32;
        state[s + state::MAX_LEN] = cap as u32;
        state[s + state::EOT] = eot;
        state[s + state::SOT_POS] = state::NONE;
        state[s + state::NO_SPEECH] = state::NONE;
        state[s + state::LAST_TS] = last_ts;
        state[s + state::MAX_INITIAL_TS] = if r % 3 == 0 { 10 } else { state::NONE };
        let sample = r % 2 == 1;
        state[s + state::FLAGS] = state::FLAG_TIMESTAMPS | if sample { state::FLAG_SAMPLE } else { 0 };
        state[s + state::TEMPERATURE] = 0.7f32.to_bits();
        state[s + state::SEED] = 1234 + r as u32;
    }
    // Row 0 starts at the prompt's end; pos = sample_begin - 1 for it (n = 0).
    let st = t.u32(&state);
    let hb = t.u32(&history);
    let lp = t.zeros(rows * cap);
    // Logits: text moderately likely, timestamps sometimes dominant in total mass.
    let mut logits = Vec::new();
    for r in 0..rows {
        for tok in 0..vocab {
            let base = if tok >= ts_begin as usize {
                if r % 4 == 0 {
                    1.5
                } else {
                    -1.0
                }
            } else {
                0.0
            };
            logits.push(base + rng.uniform() * 3.0);
        }
    }
    let lb = t.f32(&logits);
    let op = Op::SelectToken(SelectToken {
        rows,
        vocab,
        logits: lb,
        logits_row: vocab,
        rules: rb,
        state: st,
        history: hb,
        logprobs: lp,
        cap,
        ts_begin: Some(ts_begin),
        no_timestamps: Some(no_ts),
        rule: whisper_wgpu::config::Selection::Whisper,
    });
    // Five steps over the same logits: the rules see the tokens chosen before.
    t.run(&[op], 5);
    let (ha, hg) = t.read_u32(hb, rows * cap);
    assert_eq!(ha, hg, "histories differ");
    let (sa, sg) = t.read_u32(st, rows * STATE_WORDS);
    for r in 0..rows {
        let s = r * STATE_WORDS;
        for w in [state::TOKEN, state::POS, state::DONE, state::LAST_TS, state::N_GENERATED] {
            assert_eq!(sa[s + w], sg[s + w], "row {r} word {w}");
        }
    }
    let (a, b) = t.read_f32(lp, rows * cap);
    assert_close("logprobs", &a, &b, 1e-5);
    // The rules themselves, on the reference's output: timestamps never decrease, never three
    // in a row, no <|notimestamps|>, no suppressed token, first sampled token a timestamp.
    let mut saw_ts = false;
    for r in 0..rows {
        let row = &ha[r * cap..r * cap + sa[r * STATE_WORDS + state::POS] as usize + 1];
        let seq = &row[3..];
        assert!(seq.first().is_none_or(|&x| x >= ts_begin || x == eot) || r % 5 != 0, "row {r}: {seq:?}");
        let mut last = 0;
        for w in seq.windows(3) {
            assert!(!(w[0] >= ts_begin && w[1] >= ts_begin && w[2] >= ts_begin), "row {r}: three timestamps {seq:?}");
        }
        for &x in seq {
            assert!(x != no_ts && x != 3 && x != 77 && x != 151, "row {r}: forbidden {x} in {seq:?}");
            if x >= ts_begin {
                assert!(x >= last, "row {r}: decreasing timestamps {seq:?}");
                last = x;
                saw_ts = true;
            }
        }
    }
    assert!(saw_ts, "no timestamps were produced at all");
}

/// Int8 weights (per-column scales, k-rows interleaved in pairs): the GPU against the
/// reference on the same quantized bytes (tight), and the quantized product against the f32
/// one (bounded by half a quantization step per term).
#[test]
fn matmul_int8_weights_and_embedding() {
    let Some(mut t) = Twin::new() else { return };
    let mut rng = Rng::new(11);
    for &(m, n, k) in &[(1usize, 203usize, 76usize), (37, 50, 388), (9, 1000, 64)] {
        let x = rng.vec(m * k, 1.0);
        let w = rng.vec(n * k, 0.3); // [n][k]
        let n_pad = n.next_multiple_of(16);
        let (words, scale_base) = quantize_i8(k, n_pad, n, |kk, c| w[c * k + kk]);
        let xb = t.f32(&x);
        let wb = t.u32(&words);
        let y = t.zeros(m * n);
        let op = Op::Matmul(Matmul {
            m,
            n,
            k,
            z_outer: 1,
            z_inner: 1,
            x: Rows { buf: xb, base: 0, row: k, outer: 0, inner: 0 },
            b: BOperand { buf: wb, format: BFormat::I8, base: 0, k_stride: n_pad, outer: 0, inner: 0, scale_base },
            bias: None,
            gelu: false,
            add: None,
            accumulate: false,
            out: vec![seg(n, y, Elem::F32, 0, n, 1)],
            state: None,
        });
        t.run(&[op], 1);
        let (a, b) = t.read_f32(y, m * n);
        assert_close(&format!("int8 matmul {m}x{n}x{k}"), &a, &b, TOL);
        let scales: Vec<f32> = words[scale_base..].iter().map(|&b| f32::from_bits(b)).collect();
        for r in 0..m {
            let xabs: f32 = x[r * k..(r + 1) * k].iter().map(|v| v.abs()).sum();
            for c in 0..n {
                let exact: f32 = (0..k).map(|kk| x[r * k + kk] * w[c * k + kk]).sum();
                let bound = xabs * scales[c] * 0.5 + 1e-4;
                assert!((exact - a[r * n + c]).abs() <= bound, "quantization error beyond half a step at ({r}, {c})");
            }
        }
    }
    // The embedding lookup reads the same int8 table.
    let (rows, dim, vocab) = (3usize, 36usize, 40usize);
    let emb = rng.vec(vocab * dim, 1.0);
    let n_pad = vocab.next_multiple_of(16);
    let (words, scale_base) = quantize_i8(dim, n_pad, vocab, |kk, c| emb[c * dim + kk]);
    let table = vec![EmbeddingChunk {
        buf: t.u32(&words),
        format: BFormat::I8,
        col_start: 0,
        cols: vocab,
        row_elems: n_pad,
        scale_base,
    }];
    let positional = t.f32(&rng.vec(4 * dim, 1.0));
    let mut state = vec![0u32; rows * STATE_WORDS];
    for (r, (tok, pos)) in [(0u32, 0u32), (39, 3), (17, 1)].into_iter().enumerate() {
        state[r * STATE_WORDS + state::TOKEN] = tok;
        state[r * STATE_WORDS + state::POS] = pos;
    }
    let st = t.u32(&state);
    let y = t.zeros(rows * dim);
    t.run(&[Op::Embed(Embed { rows, dim, table, positional, state: st, y })], 1);
    let (a, b) = t.read_f32(y, rows * dim);
    assert_close("int8 embed", &a, &b, 1e-6);
}

/// The GEMM and the mat-vec with their x rows shared through 8-lane subgroups (lavapipe)
/// compute bit for bit what the plain loads do, and both match the reference: shapes with one
/// row group per workgroup (where sharing applies), partly filled last subgroups (lanes past
/// the last column serve broadcasts without storing), every weight format, a tile with fewer
/// than 16 rows, and 7 decode rows (the mat-vec, 7 of a subgroup's 8 lanes loading x).
#[test]
fn matmul_shared_rows_match_plain_loads() {
    use whisper_wgpu::backend::wgpu::WgpuOptions;
    let Some(mut t) = Twin::new() else { return };
    let Some(mut plain) = gpu_with(&WgpuOptions { no_subgroups: true, ..Default::default() }) else { return };
    if t.gpu.adapter().name.contains("llvmpipe") {
        assert!(t.gpu.uses_subgroups(), "lavapipe has 8-lane subgroups: the shared path must be under test");
    }
    assert!(!plain.uses_subgroups());
    let mut rng = Rng::new(31);
    for (i, &(m, n, k)) in [(21usize, 1100usize, 64usize), (7, 200, 36), (40, 45, 20), (16, 1024, 8)].iter().enumerate()
    {
        // Blocked f16 (the decoder's layout on CPU adapters) in one shape: each GEMM variant
        // costs 10-15 s of JIT on a cold shader cache.
        let blocked = (i == 0).then_some(BFormat::F16Blocked);
        for format in [BFormat::F32, BFormat::F16, BFormat::I8].into_iter().chain(blocked) {
            let x = rng.vec(m * k, 1.0);
            let w = rng.vec(n * k, 0.3);
            let n_pad = n.next_multiple_of(16);
            // The plain backend gets the same buffers (so the same ids) and contents.
            let (b_buf, scale_base) = weights_beside(&mut t, &mut plain, format, &w, n, k);
            let mut both = |elem: Elem, len: usize, bytes: &[u8]| buffer_beside(&mut t, &mut plain, elem, len, bytes);
            let xb = both(Elem::F32, x.len(), bytemuck::cast_slice(&x));
            let y = both(Elem::F32, m * n, &[]);
            let b = BOperand { buf: b_buf, format, base: 0, k_stride: n_pad, outer: 0, inner: 0, scale_base };
            let op = plain_matmul(m, n, k, xb, b, y);
            let (reference, shared, unshared) = run_beside(&mut t, &mut plain, op, y, m * n);
            let what = format!("{format:?} matmul {m}x{n}x{k}");
            assert_close(&what, &reference, &shared, TOL);
            assert!(shared == unshared, "{what}: shared and plain x loads differ");
            assert!(reference.iter().any(|v| v.abs() > 0.1), "{what}: reference output is degenerate");
        }
    }
}

/// The mat-vec entry point (decode rows, m <= 8): every weight format, split-K shapes (small n,
/// long k) and wide ones, the fused epilogue (bias, GELU, residual accumulate), strided input
/// rows and a finished row that must be left alone. The k range is split across a workgroup on
/// GPUs and not on CPU adapters, so a second backend forced to split runs the GPU shape here.
#[test]
fn matvec_rows_every_format_and_split_k() {
    use whisper_wgpu::backend::wgpu::WgpuOptions;
    let Some(mut t) = Twin::new() else { return };
    let Some(mut split) = gpu_with(&WgpuOptions { split_k_on_cpu: true, ..Default::default() }) else { return };
    assert!(split.uses_split_k());
    let mut rng = Rng::new(21);
    let shapes = [(1usize, 200usize, 388usize), (5, 37, 1540), (8, 1000, 68), (3, 2056, 12)];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        for format in [BFormat::F32, BFormat::F16, BFormat::F16Blocked, BFormat::I8] {
            let x_row = k + 4 * (i % 2); // strided rows in some cases
            let x = rng.vec(m * x_row, 1.0);
            let w = rng.vec(n * k, 0.2);
            let n_pad = n.next_multiple_of(16);
            let (wb, scale_base) = weights_beside(&mut t, &mut split, format, &w, n, k);
            let mut both = |elem: Elem, len: usize, bytes: &[u8]| buffer_beside(&mut t, &mut split, elem, len, bytes);
            let mut state = vec![0u32; m * STATE_WORDS];
            if m > 1 {
                state[STATE_WORDS + state::DONE] = 1;
            }
            let st = both(Elem::U32, state.len(), bytemuck::cast_slice(&state));
            let y0 = rng.vec(m * n, 1.0);
            let y = both(Elem::F32, y0.len(), bytemuck::cast_slice(&y0));
            let xb = both(Elem::F32, x.len(), bytemuck::cast_slice(&x));
            let bias = rng.vec(n, 0.5);
            let bias = both(Elem::F32, n, bytemuck::cast_slice(&bias));
            let accumulate = i % 2 == 0;
            let op = Op::Matmul(Matmul {
                m,
                n,
                k,
                z_outer: 1,
                z_inner: 1,
                x: Rows { buf: xb, base: 0, row: x_row, outer: 0, inner: 0 },
                b: BOperand { buf: wb, format, base: 0, k_stride: n_pad, outer: 0, inner: 0, scale_base },
                bias: Some((bias, 0)),
                gelu: !accumulate,
                add: None,
                accumulate,
                out: vec![seg(n, y, Elem::F32, 0, n, 1)],
                state: Some(st),
            });
            let (reference, gpu, split_y) = run_beside(&mut t, &mut split, op, y, m * n);
            // Sums of up to 1540 terms of |x w| <= 0.2 in another order: 1e-4 relative.
            let tol = 1e-4 * (k as f32).sqrt();
            let what = format!("matvec {m}x{n}x{k} {format:?}");
            assert_close(&what, &reference, &gpu, tol);
            assert_close(&format!("{what}, k split"), &reference, &split_y, tol);
            if m > 1 {
                assert_eq!(&gpu[n..2 * n], &y0[n..2 * n], "{what}: the finished row was written");
                assert_eq!(&split_y[n..2 * n], &y0[n..2 * n], "{what}, k split: the finished row was written");
            }
        }
    }
}

/// The 64-bit loads of B and x (shaders/int64.wgsl, on lavapipe) give bit for bit what 32-bit
/// loads give, and both match the reference: the mat-vec on blocked f16 weights (as CPU
/// adapters store the decoder's) over split-K and wide shapes and several rows, and the GEMM
/// on k-major f32, and decode attention's f16 K/V; and the embedding lookup reads a blocked
/// table.
#[test]
fn int64_loads_match_32_bit_loads_and_blocked_embedding() {
    use whisper_wgpu::backend::wgpu::WgpuOptions;
    let Some(mut t) = Twin::new() else { return };
    let Some(mut narrow) = gpu_with(&WgpuOptions { no_int64: true, ..Default::default() }) else { return };
    if t.gpu.adapter().name.contains("llvmpipe") {
        assert!(t.gpu.uses_int64(), "lavapipe has 64-bit integers: the 64-bit loads must be under test");
    }
    assert!(!narrow.uses_int64());
    let mut rng = Rng::new(41);
    let blocked = BFormat::F16Blocked;
    let cases = [
        (1usize, 51872usize / 8, 384usize, blocked),
        (1, 384, 1536, blocked),
        (3, 1152, 384, blocked),
        (8, 40, 20, blocked),
        // The GEMM's 64-bit path (k-major f32: two loads per 16 columns); its f16 one is
        // checked against the reference in the tests above.
        (37, 45, 20, BFormat::F32),
    ];
    for &(m, n, k, format) in &cases {
        let x = rng.vec(m * k, 1.0);
        let w = rng.vec(n * k, 0.2);
        let (wb, _) = weights_beside(&mut t, &mut narrow, format, &w, n, k);
        let mut both = |elem: Elem, len: usize, bytes: &[u8]| buffer_beside(&mut t, &mut narrow, elem, len, bytes);
        let xb = both(Elem::F32, x.len(), bytemuck::cast_slice(&x));
        let y = both(Elem::F32, m * n, &[]);
        let b =
            BOperand { buf: wb, format, base: 0, k_stride: n.next_multiple_of(16), outer: 0, inner: 0, scale_base: 0 };
        let op = plain_matmul(m, n, k, xb, b, y);
        let (reference, wide, narrow_y) = run_beside(&mut t, &mut narrow, op, y, m * n);
        let what = format!("{format:?} matmul {m}x{n}x{k}");
        // Sums of up to 1536 terms of |x w| <= 0.2 in another order: 1e-4 relative.
        assert_close(&what, &reference, &wide, 1e-4 * (k as f32).sqrt());
        assert!(wide == narrow_y, "{what}: 64-bit and 32-bit loads differ");
    }
    // Decode attention reads its f16 caches through vec2<u64> views (shaders/attend_kv64.wgsl):
    // self-attention over two chunks and a short prefix, and cross-attention.
    let (rows, heads, hd, cap) = (2usize, 3usize, 64usize, 1040usize);
    for fixed_len in [None, Some(1037)] {
        let qv = rng.vec(rows * heads * hd, 1.0);
        let kv = [rng.vec(rows * heads * hd * cap, 1.0), rng.vec(rows * heads * hd * cap, 1.0)];
        let mut state = vec![0u32; rows * STATE_WORDS];
        state[state::POS] = 1030;
        state[STATE_WORDS + state::POS] = 5;
        let mut both = |elem: Elem, len: usize, bytes: &[u8]| buffer_beside(&mut t, &mut narrow, elem, len, bytes);
        let q = both(Elem::F32, qv.len(), bytemuck::cast_slice(&qv));
        let k_t = both(Elem::F16, kv[0].len(), &f16_words(&kv[0]));
        let v_t = both(Elem::F16, kv[1].len(), &f16_words(&kv[1]));
        let st = both(Elem::U32, state.len(), bytemuck::cast_slice(&state));
        let out = both(Elem::F32, rows * heads * hd, &[]);
        let mut op = attend_op((rows, heads, hd, cap), fixed_len, Elem::F16, false, [q, k_t, v_t, out, st]);
        op.partials = both(Elem::F32, op.partials_len(), &[]);
        let (reference, wide, narrow_out) = run_beside(&mut t, &mut narrow, Op::Attend(op), out, rows * heads * hd);
        let what = format!("attention fixed_len={fixed_len:?}");
        // As in attend_case: softmax-weighted means of values in [-1, 1].
        assert_close(&what, &reference, &wide, 2e-5);
        assert!(wide == narrow_out, "{what}: 64-bit and 32-bit K/V loads differ");
    }
    // The embedding lookup reads the blocked table (tokens in the first, a middle and the last,
    // partly filled block).
    let (rows, dim, vocab) = (3usize, 36usize, 43usize);
    let emb = rng.vec(vocab * dim, 1.0);
    let (wp, n_pad) = pack_blocked(&emb, vocab, dim);
    let table = vec![EmbeddingChunk {
        buf: t.f16(&wp),
        format: BFormat::F16Blocked,
        col_start: 0,
        cols: vocab,
        row_elems: n_pad,
        scale_base: 0,
    }];
    let positional = t.f32(&rng.vec(4 * dim, 1.0));
    let mut state = vec![0u32; rows * STATE_WORDS];
    for (r, (tok, pos)) in [(0u32, 0u32), (42, 3), (17, 1)].into_iter().enumerate() {
        state[r * STATE_WORDS + state::TOKEN] = tok;
        state[r * STATE_WORDS + state::POS] = pos;
    }
    let st = t.u32(&state);
    let y = t.zeros(rows * dim);
    t.run(&[Op::Embed(Embed { rows, dim, table, positional, state: st, y })], 1);
    let (a, b) = t.read_f32(y, rows * dim);
    assert_close("blocked f16 embed", &a, &b, 1e-6);
}
