//! The seed-style music model (random weights, 256 mels, 4096-token context) against the
//! PyTorch reference in ../shared/reference/amt-random: encoder output, teacher-forced logits at
//! all 700 recorded steps, and free-running greedy tokens.
//!
//! Tolerances. The reference computes in f32 from the same f16 weights; an independent float64
//! implementation agrees with it to 2e-5 (encoder) and 3e-4 (logits). Our kernels accumulate in
//! f32 in another order, so with f32 KV caches we allow 1e-4 on the encoder output and 2e-3 on
//! logits (measured 4.5e-5 and 6.9e-4). The default f16 KV caches round every key and value to 11 significant bits; this
//! model's attention is deliberately sharp (q/k weights std 0.12), which turns that rounding
//! into logit errors of a few 1e-2 (measured max 5.7e-2 over 700 steps): we allow 1e-1, still
//! far below the median top-1/top-2 margin of 1.16.
mod common;
use common::*;
use safetensors::SafeTensors;
use whisper_wgpu::backend::Backend;
use whisper_wgpu::checkpoint::Checkpoint;
use whisper_wgpu::decode::{RowPrompt, Session, SessionOptions};
use whisper_wgpu::graph::Elem;
use whisper_wgpu::model::{Model, WeightDtype};

struct Reference {
    mel: Vec<f32>,
    encoder: Vec<f32>,
    tokens: Vec<u32>,
    logits: Vec<f32>,
    margins: Vec<f32>,
}

fn tensor<T: bytemuck::Pod>(st: &SafeTensors, name: &str) -> Vec<T> {
    bytemuck::pod_collect_to_vec(st.tensor(name).unwrap().data())
}

fn reference() -> Reference {
    let bytes = std::fs::read(shared("reference/amt-random/reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let tokens: Vec<i64> = tensor(&st, "tokens");
    Reference {
        mel: tensor(&st, "mel"),
        encoder: tensor(&st, "encoder_output"),
        tokens: tokens.iter().map(|&t| t as u32).collect(),
        logits: tensor(&st, "logits_all"),
        margins: tensor(&st, "margins"),
    }
}

fn model() -> Option<Model> {
    let ck = Checkpoint::load(&shared("models/amt-random")).unwrap();
    let backend: Box<dyn Backend + Send> = Box::new(gpu()?);
    Some(Model::new(backend, ck.dims, ck.generation, &ck.weights, WeightDtype::Auto).unwrap())
}

/// Teacher forcing: the whole reference sequence is the prompt, so every step feeds the
/// reference token; returns the largest logit difference over the 700 steps.
fn teacher_forced_max_diff(s: &mut Session, r: &Reference, v: usize) -> (f32, usize) {
    s.start(&[RowPrompt { tokens: r.tokens.clone(), ..Default::default() }]).unwrap();
    s.step(2).unwrap(); // positions 0 and 1 predict prompt tokens
    let mut worst = (0f32, 0usize);
    for step in 0..700 {
        s.step(1).unwrap(); // feeds position 2 + step
        let l = &s.logits().unwrap()[0];
        let (d, _) = max_abs_diff(&r.logits[step * v..(step + 1) * v], l);
        if d > worst.0 {
            worst = (d, step);
        }
    }
    worst
}

fn free_running(s: &mut Session, r: &Reference) -> Vec<u32> {
    s.start(&[RowPrompt { tokens: r.tokens[..3].to_vec(), max_new_tokens: Some(700), ..Default::default() }]).unwrap();
    s.run_to_end().unwrap();
    s.results().unwrap().remove(0).tokens
}

fn agreeing_steps(got: &[u32], want: &[u32]) -> usize {
    got[3..].iter().zip(&want[3..]).take_while(|(a, b)| a == b).count()
}

#[test]
fn amt_random_with_f32_kv_cache() {
    let Some(model) = model() else { return };
    let r = reference();
    let opts = SessionOptions { steps_per_submit: 1, kv: Elem::F32, ..Default::default() };
    let mut s = Session::new(&model, opts).unwrap();
    s.encode(&[&r.mel]).unwrap();
    assert_close("encoder output", &r.encoder, &s.encoder_output(0).unwrap(), 1e-4);
    let (d, at) = teacher_forced_max_diff(&mut s, &r, model.dims.n_vocab);
    eprintln!("f32 KV: teacher-forced logits max |diff| {d:e} at step {at}");
    assert!(d < 2e-3, "teacher-forced logits differ by {d} at step {at}");
    let tokens = free_running(&mut s, &r);
    let n = agreeing_steps(&tokens, &r.tokens);
    eprintln!("f32 KV: free-running greedy agrees for {n} of 700 steps");
    assert!(n >= 150, "free running diverged at step {n} (reference margin there {})", r.margins[n.min(699)]);
}

#[test]
fn amt_random_with_f16_kv_cache_and_any_steps_per_submit() {
    let Some(model) = model() else { return };
    let r = reference();
    let mut s = Session::new(&model, SessionOptions { steps_per_submit: 1, ..Default::default() }).unwrap();
    s.encode(&[&r.mel]).unwrap();
    let (d, at) = teacher_forced_max_diff(&mut s, &r, model.dims.n_vocab);
    eprintln!("f16 KV: teacher-forced logits max |diff| {d:e} at step {at}");
    assert!(d < 1e-1, "teacher-forced logits differ by {d} at step {at}");
    let mut runs = Vec::new();
    for k in [1usize, 4, 16] {
        let mut s = Session::new(&model, SessionOptions { steps_per_submit: k, ..Default::default() }).unwrap();
        s.encode(&[&r.mel]).unwrap();
        runs.push(free_running(&mut s, &r));
    }
    assert_eq!(runs[0], runs[1], "4 steps per submission changed the tokens");
    assert_eq!(runs[0], runs[2], "16 steps per submission changed the tokens");
    let n = agreeing_steps(&runs[0], &r.tokens);
    eprintln!(
        "f16 KV: free-running greedy agrees for {n} of 700 steps (margin at the first difference {:?})",
        r.margins.get(n)
    );
    assert!(n >= 150, "free running diverged at step {n}");
}

/// Two windows decoded as one batch against the reference's batched run (`batch_tokens`:
/// greedy on [mel, mel2], 64 generated tokens each): the second row's encoder output and prefill
/// logits within the f32-KV tolerances above, both rows' tokens exactly; and row 0 exactly as
/// a session of one row decodes it from the same encoding.
#[test]
fn amt_random_batch_of_two_matches_the_batched_reference() {
    let Some(model) = model() else { return };
    let bytes = std::fs::read(shared("reference/amt-random/reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mel: Vec<f32> = tensor(&st, "mel");
    let mel2: Vec<f32> = tensor(&st, "mel2");
    let enc2: Vec<f32> = tensor(&st, "encoder_output_mel2");
    let prefill: Vec<f32> = tensor(&st, "batch_logits_prefill");
    let want: Vec<u32> = tensor::<i64>(&st, "batch_tokens").iter().map(|&t| t as u32).collect();
    let (v, len) = (model.dims.n_vocab, want.len() / 2);
    let prompt = RowPrompt { tokens: want[..3].to_vec(), max_new_tokens: Some(len - 3), ..Default::default() };

    let opts = SessionOptions { rows: 2, kv: Elem::F32, ..Default::default() };
    let mut s = Session::new(&model, opts.clone()).unwrap();
    s.encode(&[&mel, &mel2]).unwrap();
    assert_close("batched encoder output, row 1", &enc2, &s.encoder_output(1).unwrap(), 1e-4);
    let row0 = s.encoder_output(0).unwrap();
    s.start(&[prompt.clone(), prompt.clone()]).unwrap();
    s.step(3).unwrap(); // the prompt: the third step's logits predict the first generated token
    let logits = s.logits().unwrap();
    for r in 0..2 {
        let (d, _) = max_abs_diff(&prefill[r * v..(r + 1) * v], &logits[r]);
        assert!(d < 2e-3, "row {r}: prefill logits differ by {d}");
    }
    s.run_to_end().unwrap();
    let rows = s.results().unwrap();
    assert_eq!(rows[0].tokens, want[..len], "row 0");
    assert_eq!(rows[1].tokens, want[len..], "row 1");

    let mut one = Session::new(&model, SessionOptions { rows: 1, ..opts }).unwrap();
    one.set_encoder_output(0, &row0).unwrap();
    one.start(&[prompt]).unwrap();
    one.run_to_end().unwrap();
    assert_eq!(one.results().unwrap()[0].tokens, rows[0].tokens, "row 0 alone");
}
