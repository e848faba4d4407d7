//! The CUDA backend on a real device: kernels against the CPU reference on random inputs,
//! tiny.en against the Hugging Face reference with graph replay and with plain launches, and
//! no device objects made on the hot path. CI has no NVIDIA GPU and does not run this file;
//! `scripts/gpu-check.sh` does. Without a CUDA device every test fails (never skips).
//!
//! Tolerances: both sides compute in f32 from the same inputs and differ only in summation
//! order: 1e-3 absolute on sums of a few hundred unit-sized products (measured differences
//! are ~1e-5); f16 outputs one f16 step at the values' size (1e-2 below 8).
#![cfg(feature = "cuda")]
mod common;
use common::*;
use whisper_wgpu::backend::cpu::CpuBackend;
use whisper_wgpu::backend::cuda::{CudaBackend, CudaOptions};
use whisper_wgpu::backend::Backend;
use whisper_wgpu::graph::*;

fn device(graphs: bool) -> CudaBackend {
    CudaBackend::new(&CudaOptions { device: 0, graphs })
        .unwrap_or_else(|e| panic!("the CUDA device tests need an NVIDIA GPU and driver: {e}"))
}

/// The CPU reference and the CUDA device given the same buffers and ops.
struct Pair {
    cpu: CpuBackend,
    dev: CudaBackend,
}

impl Pair {
    fn new() -> Pair {
        Pair { cpu: CpuBackend::new(), dev: device(true) }
    }
    fn buffer(&mut self, elem: Elem, len: usize, bytes: &[u8]) -> BufId {
        let a = self.cpu.create_buffer("t", elem, len).unwrap();
        let b = self.dev.create_buffer("t", elem, len).unwrap();
        assert_eq!(a, b);
        if !bytes.is_empty() {
            self.cpu.write(a, 0, bytes).unwrap();
            self.dev.write(b, 0, bytes).unwrap();
        }
        a
    }
    fn f32(&mut self, v: &[f32]) -> BufId {
        self.buffer(Elem::F32, v.len(), bytemuck::cast_slice(v))
    }
    fn f16(&mut self, v: &[f32]) -> BufId {
        self.buffer(Elem::F16, v.len(), &f16_words(v))
    }
    fn u32(&mut self, v: &[u32]) -> BufId {
        self.buffer(Elem::U32, v.len(), bytemuck::cast_slice(v))
    }
    fn run(&mut self, ops: &[Op], times: usize) {
        let a = self.cpu.compile(ops).unwrap();
        let b = self.dev.compile(ops).unwrap();
        self.cpu.run(a, times).unwrap();
        self.dev.run(b, times).unwrap();
    }
    fn f32s(&mut self, buf: BufId, len: usize) -> (Vec<f32>, Vec<f32>) {
        (self.cpu.read_f32(buf, 0, len).unwrap(), self.dev.read_f32(buf, 0, len).unwrap())
    }
    fn u32s(&mut self, buf: BufId, len: usize) -> (Vec<u32>, Vec<u32>) {
        (self.cpu.read_u32(buf, 0, len).unwrap(), self.dev.read_u32(buf, 0, len).unwrap())
    }
    fn f16s(&mut self, buf: BufId, len: usize) -> (Vec<f32>, Vec<f32>) {
        let conv = |w: Vec<u32>| -> Vec<f32> {
            let h: Vec<u16> = bytemuck::cast_slice(&w).to_vec();
            h[..len].iter().map(|&b| half::f16::from_bits(b).to_f32()).collect()
        };
        let (a, b) = self.u32s(buf, len.div_ceil(2));
        (conv(a), conv(b))
    }
}

/// A random weight of k x n (columns padded to 16) in `format`, as graph::BFormat lays it out.
fn weight(p: &mut Pair, rng: &mut Rng, k: usize, n: usize, format: BFormat) -> BOperand {
    let n_pad = n.next_multiple_of(16);
    let mut b = BOperand { buf: BufId(0), format, base: 0, k_stride: n_pad, outer: 0, inner: 0, scale_base: 0 };
    match format {
        BFormat::F32 => b.buf = p.f32(&rng.vec(k * n_pad, 0.5)),
        BFormat::F16 => b.buf = p.f16(&rng.vec(k * n_pad, 0.5)),
        BFormat::F16Blocked => unreachable!("the CUDA kernels read k-major weights only"),
        BFormat::I8 => {
            let k2 = k.next_multiple_of(2);
            let mut bytes = vec![0u8; k2 * n_pad];
            for kk in 0..k {
                for c in 0..n {
                    bytes[(kk / 2) * 2 * n_pad + 2 * c + kk % 2] = (rng.below(255) as i32 - 127) as i8 as u8;
                }
            }
            b.scale_base = bytes.len() / 4;
            let scales: Vec<f32> = (0..n_pad).map(|_| 0.004 + 0.002 * rng.uniform()).collect();
            bytes.extend_from_slice(bytemuck::cast_slice(&scales));
            b.buf = p.buffer(Elem::U32, bytes.len() / 4, &bytes);
        }
    }
    b
}

fn state_rows(positions: &[u32], done: &[bool]) -> Vec<u32> {
    let mut st = vec![0u32; positions.len() * STATE_WORDS];
    for (r, (&pos, &d)) in positions.iter().zip(done).enumerate() {
        st[r * STATE_WORDS + state::POS] = pos;
        st[r * STATE_WORDS + state::DONE] = d as u32;
        st[r * STATE_WORDS + state::TOKEN] = 7 + r as u32;
    }
    st
}

#[test]
fn matmul_matches_the_reference() {
    let mut rng = Rng::new(11);
    for format in [BFormat::F32, BFormat::F16, BFormat::I8] {
        // (m, n, k, batch): decode rows (mat-vec), a GEMM with ragged edges, a batched GEMM.
        for (m, n, k, z) in [(1, 200, 384, (1, 1)), (5, 1000, 64, (1, 1)), (37, 72, 100, (1, 1)), (20, 48, 64, (2, 3))]
        {
            if format == BFormat::I8 && z != (1, 1) {
                continue;
            }
            let mut p = Pair::new();
            let zs = z.0 * z.1;
            let x = p.f32(&rng.vec(zs * m * k, 1.0));
            let mut b = weight(&mut p, &mut rng, k, n, format);
            if zs > 1 {
                // Batched B: each (zo, zi) block in turn.
                let n_pad = n.next_multiple_of(16);
                let words = rng.vec(zs * k * n_pad, 0.5);
                b.buf = if format == BFormat::F16 { p.f16(&words) } else { p.f32(&words) };
                b.inner = k * n_pad;
                b.outer = z.1 * k * n_pad;
            }
            let bias = p.f32(&rng.vec(n, 0.3));
            let add = p.f32(&rng.vec(zs * m * n, 1.0));
            let y0 = rng.vec(zs * m * n, 1.0);
            let y = p.f32(&y0);
            // Decode rows also write a second segment as f16 at the row's position (a KV cache).
            let decode = m <= 8 && zs == 1;
            let split = if decode { (n / 2).next_multiple_of(16) } else { n };
            let cap = 64;
            let kv = p.f16(&vec![0.0; m * (n - split).max(1) * cap]);
            let st = p.u32(&state_rows(&(0..m as u32).map(|r| 3 * r + 1).collect::<Vec<_>>(), &vec![false; m]));
            let rows = |buf, row| Rows { buf, base: 0, row, outer: z.1 * m * row, inner: m * row };
            let mut out = vec![OutSegment {
                end: split,
                buf: y,
                elem: Elem::F32,
                base: 0,
                row: n,
                col: 1,
                outer: z.1 * m * n,
                inner: m * n,
                pos: 0,
            }];
            if decode {
                out.push(OutSegment {
                    end: n,
                    buf: kv,
                    elem: Elem::F16,
                    base: 0,
                    row: (n - split) * cap,
                    col: cap,
                    outer: 0,
                    inner: 0,
                    pos: 1,
                });
            }
            let op = Matmul {
                m,
                n,
                k,
                z_outer: z.0,
                z_inner: z.1,
                x: rows(x, k),
                b,
                bias: Some((bias, 0)),
                gelu: true,
                add: Some(rows(add, n)),
                accumulate: true,
                out,
                state: decode.then_some(st),
            };
            p.run(&[Op::Matmul(op)], 1);
            let what = format!("{format:?} {m}x{n}x{k} batch {z:?}");
            let (a, b) = p.f32s(y, zs * m * n);
            assert_close(&format!("{what} f32 segment"), &a, &b, 1e-3);
            if decode {
                let (a, b) = p.f16s(kv, m * (n - split) * cap);
                assert_close(&format!("{what} f16 segment"), &a, &b, 1e-2);
            }
        }
    }
}

#[test]
fn layernorm_softmax_and_embed_match_the_reference() {
    let mut rng = Rng::new(5);
    let mut p = Pair::new();
    let (rows, dim) = (3, 384);
    let x = p.f32(&rng.vec(rows * dim, 4.0));
    let gamma = p.f32(&rng.vec(dim, 1.0));
    let beta = p.f32(&rng.vec(dim, 1.0));
    let y = p.f32(&vec![0.0; rows * dim]);
    let st = p.u32(&state_rows(&[2, 9, 4], &[false, true, false]));
    let ln = LayerNorm {
        rows,
        dim,
        x,
        x_base: 0,
        x_row: dim,
        gamma,
        beta,
        y,
        y_base: 0,
        y_row: dim,
        eps: 1e-5,
        state: Some(st),
    };
    let scores = p.f32(&rng.vec(2 * 7 * 1500, 8.0));
    let sm =
        Softmax { buf: scores, rows: 7, cols: 1500, base: 0, row: 1500, col: 1, z: 2, z_stride: 7 * 1500, scale: 0.3 };
    // The encoder's transposed layout: 7 vectors side by side, values 8 apart.
    let scores_t = p.f32(&rng.vec(2 * 8 * 1500, 8.0));
    let sm_t =
        Softmax { buf: scores_t, rows: 7, cols: 1500, base: 0, row: 1, col: 8, z: 2, z_stride: 8 * 1500, scale: 0.3 };
    // The tied embedding in two chunks of 40 and 24 tokens, f16 then int8.
    let table0 = weight(&mut p, &mut rng, dim, 40, BFormat::F16);
    let table1 = weight(&mut p, &mut rng, dim, 24, BFormat::I8);
    let positional = p.f32(&rng.vec(16 * dim, 0.1));
    let e = p.f32(&vec![0.0; rows * dim]);
    let mut st2 = state_rows(&[3, 5, 15], &[false, false, false]);
    st2[state::TOKEN] = 39;
    st2[STATE_WORDS + state::TOKEN] = 40;
    st2[2 * STATE_WORDS + state::TOKEN] = 63;
    let st2 = p.u32(&st2);
    let chunk = |b: BOperand, col_start, cols| EmbeddingChunk {
        buf: b.buf,
        format: b.format,
        col_start,
        cols,
        row_elems: b.k_stride,
        scale_base: b.scale_base,
    };
    let emb =
        Embed { rows, dim, table: vec![chunk(table0, 0, 40), chunk(table1, 40, 24)], positional, state: st2, y: e };
    p.run(&[Op::LayerNorm(ln), Op::Softmax(sm), Op::Softmax(sm_t), Op::Embed(emb)], 1);
    let (a, b) = p.f32s(y, rows * dim);
    assert_close("layernorm", &a, &b, 1e-4);
    let (a, b) = p.f32s(scores, 2 * 7 * 1500);
    assert_close("softmax", &a, &b, 1e-6);
    let (a, b) = p.f32s(scores_t, 2 * 8 * 1500);
    assert_close("softmax over columns", &a, &b, 1e-6);
    let (a, b) = p.f32s(e, rows * dim);
    assert_close("embed", &a, &b, 1e-6);
}

#[test]
fn attention_matches_the_reference() {
    let mut rng = Rng::new(3);
    for kv in [Elem::F16, Elem::F32] {
        // Self-attention at positions 5 and 3000 over a 4096 capacity (split, merged), with and
        // without the masked full-capacity mode; cross-attention over 1500 fixed keys.
        for (fixed_len, full) in [(None, false), (None, true), (Some(1500), false)] {
            let mut p = Pair::new();
            let (rows, heads, hd, cap) = (3, 4, 64, 4096);
            let n = rows * heads * hd * cap;
            let cache = |p: &mut Pair, rng: &mut Rng| {
                let v = rng.vec(n, 1.0);
                if kv == Elem::F16 {
                    p.f16(&v)
                } else {
                    p.f32(&v)
                }
            };
            let k_t = cache(&mut p, &mut rng);
            let v_t = cache(&mut p, &mut rng);
            let q = p.f32(&rng.vec(rows * heads * hd, 0.5));
            let out = p.f32(&vec![0.0; rows * heads * hd]);
            let st = p.u32(&state_rows(&[5, 3000, 100], &[false, false, true]));
            let mut a = attend_op((rows, heads, hd, cap), fixed_len, kv, full, [q, k_t, v_t, out, st]);
            a.partials = p.f32(&vec![0.0; a.partials_len()]);
            p.run(&[Op::Attend(a)], 1);
            let (x, y) = p.f32s(out, rows * heads * hd);
            assert_close(&format!("{kv:?} fixed {fixed_len:?} full {full}"), &x, &y, 1e-4);
        }
    }
}

#[test]
fn token_selection_matches_the_reference() {
    let mut rng = Rng::new(9);
    let (rows, vocab, cap) = (4, 1000, 32);
    let ts_begin = 900;
    for step in 0..2 {
        let mut p = Pair::new();
        let logits = p.f32(&rng.vec(rows * vocab, 6.0));
        let mut masks = vec![0u32; 2 * vocab.div_ceil(32)];
        masks[3] = 0xffff_0000; // tokens 112..128 always suppressed
        masks[vocab.div_ceil(32)] = 0xff; // tokens 0..8 at the first sample
        let rules = p.u32(&masks);
        let mut st = vec![0u32; rows * STATE_WORDS];
        let mut history = vec![0u32; rows * cap];
        for r in 0..rows {
            let w = &mut st[r * STATE_WORDS..(r + 1) * STATE_WORDS];
            w[state::POS] = 3 + step;
            w[state::PROMPT_LEN] = 3;
            w[state::SAMPLE_BEGIN] = 3;
            w[state::MAX_LEN] = cap as u32;
            w[state::EOT] = 999;
            w[state::SOT_POS] = 3;
            w[state::NO_SPEECH] = if r == 0 { 5 } else { state::NONE };
            w[state::LAST_TS] = state::NONE;
            w[state::MAX_INITIAL_TS] = if r == 2 { 10 } else { state::NONE };
            // Row 0 greedy text, 1 sampled, 2 and 3 with the timestamp rules (3 sampled).
            w[state::FLAGS] = [0, state::FLAG_SAMPLE, state::FLAG_TIMESTAMPS, 3][r];
            w[state::TEMPERATURE] = 0.7f32.to_bits();
            w[state::SEED] = 1234 + r as u32;
            if step == 1 {
                history[r * cap + 3] = ts_begin + 4; // one timestamp sampled
                w[state::LAST_TS] = ts_begin + 4;
            }
        }
        let state_buf = p.u32(&st);
        let hist = p.u32(&history);
        let logprobs = p.f32(&vec![0.0; rows * cap]);
        let op = SelectToken {
            rows,
            vocab,
            logits,
            logits_row: vocab,
            rules,
            state: state_buf,
            history: hist,
            logprobs,
            cap,
            ts_begin: Some(ts_begin),
            no_timestamps: Some(ts_begin - 1),
            rule: whisper_wgpu::config::Selection::Whisper,
        };
        p.run(&[Op::SelectToken(op)], 1);
        let (a, b) = p.u32s(state_buf, rows * STATE_WORDS);
        for r in 0..rows {
            let (x, y) = (&a[r * STATE_WORDS..(r + 1) * STATE_WORDS], &b[r * STATE_WORDS..(r + 1) * STATE_WORDS]);
            for w in [state::TOKEN, state::POS, state::DONE, state::N_GENERATED, state::LAST_TS] {
                assert_eq!(x[w], y[w], "step {step} row {r} word {w}");
            }
            for w in [state::SUM_LOGPROB, state::NO_SPEECH_PROB] {
                let (fx, fy) = (f32::from_bits(x[w]), f32::from_bits(y[w]));
                assert!((fx - fy).abs() <= 1e-4, "step {step} row {r} word {w}: {fx} vs {fy}");
            }
        }
        let (a, b) = p.u32s(hist, rows * cap);
        assert_eq!(a, b, "history");
        let (a, b) = p.f32s(logprobs, rows * cap);
        assert_close("logprobs", &a, &b, 1e-4);
    }
}

/// tiny.en from the reference log-mel (as tests/tiny_en.rs does on wgpu): encoder output and
/// the first five steps' logits within the same tolerances, and the greedy tokens exactly, with
/// graph replay and with plain launches, 1 and 8 steps per host synchronisation.
#[test]
fn tiny_en_matches_the_reference() {
    use safetensors::SafeTensors;
    use whisper_wgpu::checkpoint::Checkpoint;
    use whisper_wgpu::decode::{RowPrompt, Session, SessionOptions};
    use whisper_wgpu::model::{Model, WeightDtype};
    let f32s =
        |st: &SafeTensors, name: &str| -> Vec<f32> { bytemuck::pod_collect_to_vec(st.tensor(name).unwrap().data()) };
    let ck = Checkpoint::load(&shared("models/whisper-tiny.en")).unwrap();
    let bytes = std::fs::read(shared("reference/tiny.en-jfk/reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shared("reference/tiny.en-jfk/reference.json")).unwrap())
            .unwrap();
    let want: Vec<u32> = json["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect();
    let mel = f32s(&st, "log_mel");
    let logits_ref = f32s(&st, "logits_first5");
    for graphs in [true, false] {
        let backend: Box<dyn Backend + Send> = Box::new(device(graphs));
        let model =
            Model::new(backend, ck.dims.clone(), ck.generation.clone(), &ck.weights, WeightDtype::Auto).unwrap();
        let v = model.dims.n_vocab;
        let g = model.generation.clone();
        for (kv, tol, k) in [(Elem::F32, 5e-4f32, 1), (Elem::F16, 2e-2, 8)] {
            let mut s = Session::new(&model, SessionOptions { steps_per_submit: k, kv, ..Default::default() }).unwrap();
            s.encode(&[&mel]).unwrap();
            let (d, i) = max_abs_diff(&f32s(&st, "encoder_output"), &s.encoder_output(0).unwrap());
            assert!(d < 2e-4, "graphs {graphs}: encoder output differs by {d:e} at {i}");
            let prompt =
                RowPrompt { tokens: vec![g.sot.unwrap(), g.no_timestamps.unwrap()], eot: g.eot, ..Default::default() };
            s.start(&[prompt]).unwrap();
            s.step(1).unwrap();
            for i in 0..5 {
                s.step(1).unwrap();
                let (d, at) = max_abs_diff(&logits_ref[i * v..(i + 1) * v], &s.logits().unwrap()[0]);
                eprintln!("graphs {graphs}, {kv:?} KV, step {i}: logits max |diff| {d:e} at {at}");
                assert!(d < tol, "graphs {graphs}, {kv:?} KV: step {i} logits differ by {d:e} at {at}");
            }
            s.set_rules_from(&g).unwrap();
            s.start(&[RowPrompt { tokens: want[..2].to_vec(), eot: g.eot, ..Default::default() }]).unwrap();
            let before = model.backend().counters();
            s.run_to_end().unwrap();
            assert_eq!(model.backend().counters(), before, "device objects made on the hot path");
            assert_eq!(s.results().unwrap()[0].tokens, want, "graphs {graphs}, {kv:?} KV tokens");
        }
    }
}
