//! Every Whisper size against the binding limit, on random-weight models the tests write.
//!
//! - Each published size (tiny ... large-v3, turbo) builds its weights and sessions with
//!   lavapipe's 128 MiB binding limit on a backend that only records buffer sizes.
//! - A model with large-v3's widths, vocabulary and mel bins (two layers each) loads on the GPU in
//!   f32 (its 51866x1280 embedding, 265 MB, split across bindings) and f16, and decodes.
//! - Weights split across bindings compute bit for bit what the unsplit weights compute.
mod common;
use common::hf_model::{HfDims, HfModel};
use common::*;
use safetensors::tensor::Dtype;
use whisper_wgpu::backend::wgpu::WgpuOptions;
use whisper_wgpu::backend::{Backend, Counters, PlanId};
use whisper_wgpu::checkpoint::Checkpoint;
use whisper_wgpu::config::{GenerationConfig, ModelDims};
use whisper_wgpu::decode::{RowPrompt, Session, SessionOptions};
use whisper_wgpu::graph::{BFormat, BufId, Elem, Op};
use whisper_wgpu::model::{Model, WeightDtype};
use whisper_wgpu::{Error, Result};

/// Lavapipe's `max_storage_buffer_binding_size`.
const LAVAPIPE_BINDING: u64 = 128 << 20;

/// A backend that records buffer sizes and enforces a binding limit, allocating nothing.
struct DryBackend {
    max_binding: u64,
    sizes: Vec<u64>,
    counters: Counters,
    largest: (u64, String),
}

impl DryBackend {
    fn new(max_binding: u64) -> DryBackend {
        DryBackend { max_binding, sizes: Vec::new(), counters: Counters::default(), largest: (0, String::new()) }
    }
}

impl Backend for DryBackend {
    fn describe(&self) -> String {
        "dry run".into()
    }
    fn max_binding_bytes(&self) -> u64 {
        self.max_binding
    }
    fn create_buffer(&mut self, label: &str, elem: Elem, len: usize) -> Result<BufId> {
        // Sized as the wgpu backend sizes its buffers.
        let bytes = (Elem::bytes(len, elem) as u64).max(16).next_multiple_of(16);
        if bytes > self.max_binding {
            return Err(Error::Limit(format!("buffer `{label}` needs {bytes} bytes")));
        }
        if bytes > self.largest.0 {
            self.largest = (bytes, label.to_string());
        }
        self.sizes.push(bytes);
        self.counters.buffers += 1;
        self.counters.live_bytes += bytes;
        Ok(BufId(self.sizes.len() as u32 - 1))
    }
    fn write(&mut self, _buf: BufId, _offset: usize, _data: &[u8]) -> Result<()> {
        Ok(())
    }
    fn read(&mut self, _buf: BufId, _offset: usize, len: usize) -> Result<Vec<u8>> {
        Ok(vec![0; len])
    }
    fn compile(&mut self, _ops: &[Op]) -> Result<PlanId> {
        self.counters.plans += 1;
        Ok(PlanId(self.counters.plans as u32 - 1))
    }
    fn run(&mut self, _plan: PlanId, _times: usize) -> Result<()> {
        Ok(())
    }
    fn free_buffer(&mut self, buf: BufId) {
        if let Some(s) = self.sizes.get_mut(buf.0 as usize) {
            self.counters.live_bytes -= std::mem::take(s);
        }
    }
    fn free_plan(&mut self, _plan: PlanId) {}
    fn counters(&self) -> Counters {
        self.counters
    }
    fn dispatch_count(&self, _plan: PlanId) -> usize {
        0
    }
}

/// The published sizes: (name, d_model, heads, encoder layers, decoder layers, mel bins, vocab).
const SIZES: [(&str, usize, usize, usize, usize, usize, usize); 8] = [
    ("tiny.en", 384, 6, 4, 4, 80, 51864),
    ("base", 512, 8, 6, 6, 80, 51865),
    ("small", 768, 12, 12, 12, 80, 51865),
    ("medium", 1024, 16, 24, 24, 80, 51865),
    ("large-v1", 1280, 20, 32, 32, 80, 51865),
    ("large-v2", 1280, 20, 32, 32, 80, 51865),
    ("large-v3", 1280, 20, 32, 32, 128, 51866),
    ("large-v3-turbo", 1280, 20, 32, 4, 128, 51866),
];

fn dims_of(h: &HfDims) -> (ModelDims, GenerationConfig) {
    let path = std::path::Path::new("config.json");
    let (dims, _) = ModelDims::from_json(path, &h.config_json()).unwrap();
    let generation = GenerationConfig::from_json(path, &h.generation_json(), dims.n_vocab).unwrap();
    (dims, generation)
}

/// Each size's weights and a 1-row and a 5-row session (best-of-5 fallback) build within
/// lavapipe's binding limit in f32, f16 and int8, with the expected weight bytes.
#[test]
fn every_whisper_size_fits_the_binding_limit() {
    for (name, d, heads, enc, dec, mels, vocab) in SIZES {
        let h = HfDims::whisper(d, heads, enc, dec, mels, vocab);
        let (dims, generation) = dims_of(&h);
        assert_eq!((dims.n_text_layer, dims.n_mels, dims.n_vocab), (dec, mels, vocab), "{name}");
        // Checkpoint parameters without the encoder positions (a table, kept f32) and layer
        // norms (f32 on the device): the matmul weights and their biases.
        let params = h.params() as u64;
        for (format, bytes_per) in [(BFormat::F32, 4.0), (BFormat::F16, 2.0), (BFormat::I8, 1.0)] {
            let backend = Box::new(DryBackend::new(LAVAPIPE_BINDING));
            let model = Model::layout_only(backend, dims.clone(), generation.clone(), format, false)
                .unwrap_or_else(|e| panic!("{name} {format:?}: {e}"));
            let weights = model.backend().counters().live_bytes;
            let chunks = model.weights.token_embedding.chunks.len();
            let embedding_bytes = (vocab * d) as f64 * bytes_per;
            assert_eq!(chunks, (embedding_bytes / LAVAPIPE_BINDING as f64).ceil() as usize, "{name} {format:?}");
            // Biases, norms and positional tables stay f32 (and int8's convolutions f16): a few
            // percent over `params * bytes_per`; int8 adds one scale per column.
            let (lo, hi) =
                (params as f64 * bytes_per, params as f64 * bytes_per * if format == BFormat::I8 { 1.3 } else { 1.05 });
            assert!((lo..=hi).contains(&(weights as f64)), "{name} {format:?}: {weights} bytes for {params} params");
            let mut session_bytes = Vec::new();
            for rows in [1, 5] {
                let before = model.backend().counters().live_bytes;
                let s = Session::new(&model, SessionOptions { rows, ..Default::default() })
                    .unwrap_or_else(|e| panic!("{name} {format:?} rows {rows}: {e}"));
                session_bytes.push(model.backend().counters().live_bytes - before);
                drop(s);
                assert_eq!(
                    model.backend().counters().live_bytes,
                    before,
                    "{name}: a dropped session frees its buffers"
                );
            }
            let b = model.backend();
            eprintln!(
                "{name:>15} {format:?}: weights {:7.1} MB in {:4} buffers ({chunks} embedding chunks), \
                 session 1 row {:6.1} MB, 5 rows {:6.1} MB",
                weights as f64 / 1e6,
                b.counters().buffers,
                session_bytes[0] as f64 / 1e6,
                session_bytes[1] as f64 / 1e6,
            );
        }
    }
}

/// Greedy steps after the multilingual prompt (sot, en, transcribe, notimestamps); returns
/// the tokens and the last step's logits.
fn decode_steps(session: &mut Session<'_>, g: &GenerationConfig, steps: usize) -> (Vec<u32>, Vec<f32>) {
    let en = g.lang_to_id.iter().find(|(k, _)| k == "<|en|>").unwrap().1;
    let prompt = vec![g.sot.unwrap(), en, g.transcribe.unwrap(), g.no_timestamps.unwrap()];
    session.set_rules_from(g).unwrap();
    let n = prompt.len();
    session
        .start(&[RowPrompt { tokens: prompt, max_new_tokens: Some(steps), eot: g.eot, ..Default::default() }])
        .unwrap();
    // The prompt's tokens are fed one step each, then `steps` are sampled.
    session.step(n - 1 + steps).unwrap();
    let r = session.results().unwrap().swap_remove(0);
    let logits = session.logits().unwrap().swap_remove(0);
    (r.tokens, logits)
}

#[test]
fn large_v3_widths_load_in_f32_and_f16_and_decode() {
    let h = HfDims { encoder_layers: 2, decoder_layers: 2, ..HfDims::whisper(1280, 20, 2, 2, 128, 51866) };
    let t0 = std::time::Instant::now();
    let dir = HfModel::write("large-v3-widths", h, Dtype::F16, 3);
    let ck = Checkpoint::load(dir.path()).unwrap();
    eprintln!("wrote and read the {} M-parameter checkpoint in {:.1?}", h.params() / 1_000_000, t0.elapsed());
    let mel = whisper_wgpu::audio::log_mel_spectrogram(
        &whisper_wgpu::audio::load_wav(&shared("samples/jfk.wav")).unwrap(),
        128,
    )
    .unwrap();
    // Lavapipe's binding limit everywhere, so that a GPU with larger bindings splits the same way.
    let options = WgpuOptions { max_binding_bytes: Some(LAVAPIPE_BINDING), ..Default::default() };
    let mut encoder_output = Vec::new();
    let mut decoded = Vec::new();
    for (dtype, bytes_per) in [(WeightDtype::F32, 4usize), (WeightDtype::F16, 2)] {
        let Some(gpu) = gpu_with(&options) else { return };
        assert!(gpu.max_binding_bytes() <= LAVAPIPE_BINDING);
        let t0 = std::time::Instant::now();
        let model = Model::new(Box::new(gpu), ck.dims.clone(), ck.generation.clone(), &ck.weights, dtype).unwrap();
        let emb = &model.weights.token_embedding;
        let weight_bytes = model.backend().counters().live_bytes;
        eprintln!(
            "{dtype:?}: uploaded {:.0} MB in {:.1?}; embedding in {} chunks",
            weight_bytes as f64 / 1e6,
            t0.elapsed(),
            emb.chunks.len()
        );
        let embedding_bytes = 51866 * 1280 * bytes_per;
        assert_eq!(emb.chunks.len(), embedding_bytes.div_ceil(LAVAPIPE_BINDING as usize), "{dtype:?}");
        assert!(emb.chunks.iter().all(|c| (c.n_pad * 1280 * bytes_per) as u64 <= LAVAPIPE_BINDING));
        let params = h.params();
        assert!(
            weight_bytes as usize >= params * bytes_per
                && (weight_bytes as usize) < params * bytes_per * 11 / 10 + (8 << 20),
            "{dtype:?}: {weight_bytes} device bytes for {params} parameters"
        );
        let mut s = Session::new(&model, SessionOptions::default()).unwrap();
        let session_bytes = model.backend().counters().live_bytes - weight_bytes;
        // Encoder activations (~110 MB, scores for as many heads as one binding holds: 126 MB)
        // and the decoder's caches (~20 MB): a few hundred MB, not gigabytes.
        eprintln!("{dtype:?}: one-row session holds {:.0} MB", session_bytes as f64 / 1e6);
        assert!(session_bytes < 320 << 20, "{dtype:?}: the session holds {session_bytes} bytes");
        let t0 = std::time::Instant::now();
        if encoder_output.is_empty() {
            // The encoder runs once (f32); the f16 model decodes from the same encoder output.
            s.encode(&[&mel]).unwrap();
            encoder_output = s.encoder_output(0).unwrap();
            assert!(encoder_output.iter().all(|v| v.is_finite()), "non-finite encoder output");
        } else {
            s.set_encoder_output(0, &encoder_output).unwrap();
        }
        let (tokens, logits) = decode_steps(&mut s, &model.generation, 3);
        eprintln!("{dtype:?}: encoder/cross K/V and 3 steps in {:.1?}; tokens {tokens:?}", t0.elapsed());
        assert_eq!(tokens.len(), 7, "{dtype:?}: {tokens:?}");
        assert!(tokens.iter().all(|&t| (t as usize) < 51866));
        assert!(logits.iter().all(|v| v.is_finite()), "{dtype:?}: non-finite logits");
        decoded.push((tokens, logits));
    }
    // The f16 checkpoint's values widen exactly to f32: both formats hold the same weights, and
    // differ only in how the kernels read them (f32 accumulation either way).
    let ((t32, l32), (t16, l16)) = (&decoded[0], &decoded[1]);
    assert_eq!(t32, t16, "f32 and f16 weights chose different tokens");
    let scale = l32.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert_close("last-step logits, f16 vs f32 weights", l32, l16, 1e-3 * scale.max(1.0));
}

/// A small model whose weights, encoder batch and attention heads are all split by a 22 KiB
/// binding limit computes exactly what the unsplit model computes.
#[test]
fn split_weights_compute_exactly_what_unsplit_ones_do() {
    let h = HfDims {
        d_model: 64,
        heads: 4,
        encoder_layers: 2,
        decoder_layers: 2,
        ffn: 128,
        n_mels: 16,
        n_audio_ctx: 40,
        n_text_ctx: 32,
        vocab: 1000,
    };
    let dir = HfModel::write("split", h, Dtype::F32, 11);
    let ck = Checkpoint::load(dir.path()).unwrap();
    let mut rng = Rng::new(5);
    let mels = [rng.vec(16 * 80, 1.0), rng.vec(16 * 80, 1.0)];
    let limit = 22 << 10;
    for dtype in [WeightDtype::F32, WeightDtype::F16] {
        let mut runs = Vec::new();
        for max_binding_bytes in [None, Some(limit)] {
            let Some(gpu) = gpu_with(&WgpuOptions { max_binding_bytes, ..Default::default() }) else { return };
            let model = Model::new(Box::new(gpu), ck.dims.clone(), ck.generation.clone(), &ck.weights, dtype).unwrap();
            let w = &model.weights;
            // The embedding (lookup and logits), a convolution, and a fused q/k/v whose chunk
            // boundaries fall inside its k or v columns.
            let chunks = [w.token_embedding.chunks.len(), w.conv2.chunks.len(), w.encoder[0].qkv.chunks.len()];
            if max_binding_bytes.is_some() {
                assert!(chunks.iter().all(|&c| c > 1), "{dtype:?}: not every weight split: {chunks:?}");
            } else {
                assert_eq!(chunks, [1; 3]);
            }
            let mut s = Session::new(&model, SessionOptions { rows: 2, ..Default::default() }).unwrap();
            s.encode(&[&mels[0], &mels[1]]).unwrap();
            let prompt = |t| RowPrompt { tokens: vec![998, t], max_new_tokens: Some(8), ..Default::default() };
            s.start(&[prompt(3), prompt(500)]).unwrap();
            s.step(9).unwrap();
            let results = s.results().unwrap();
            let logits = s.logits().unwrap();
            // Under the lowered limit the session encodes one window per run and keeps only the
            // last run's output, so each window's encoder output is read from a run of its own.
            let mut enc = Vec::new();
            for mel in &mels {
                s.encode(&[mel]).unwrap();
                enc.push(s.encoder_output(0).unwrap());
            }
            runs.push((enc, results, logits));
        }
        let (a, b) = (&runs[0], &runs[1]);
        let bits = |v: &Vec<Vec<f32>>| -> Vec<Vec<u32>> {
            v.iter().map(|r| r.iter().map(|x| x.to_bits()).collect()).collect()
        };
        assert!(bits(&a.0) == bits(&b.0), "{dtype:?}: encoder outputs differ");
        assert_eq!(a.1, b.1, "{dtype:?}: tokens or log-probabilities differ");
        assert!(bits(&a.2) == bits(&b.2), "{dtype:?}: logits differ");
        assert!(a.1.iter().all(|r| r.tokens.len() == 10), "{:?}", a.1);
    }
}
