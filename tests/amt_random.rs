//! The seed-style music model (random weights, 256 mels, 4096-token context) against the
//! PyTorch reference in ../shared/reference/amt-random.
mod common;
use common::*;
use safetensors::SafeTensors;
use whisper_wgpu::backend::Backend;
use whisper_wgpu::checkpoint::Checkpoint;
use whisper_wgpu::decode::{RowPrompt, Session, SessionOptions};
use whisper_wgpu::model::{Model, WeightDtype};

fn tensor<T: bytemuck::Pod>(st: &SafeTensors, name: &str) -> Vec<T> {
    bytemuck::pod_collect_to_vec(st.tensor(name).unwrap().data())
}

#[test]
fn amt_random_teacher_forced_logits_and_free_running_tokens() {
    let ck = Checkpoint::load(&shared("models/amt-random")).unwrap();
    let Some(gpu) = gpu() else { return };
    let backend: Box<dyn Backend + Send> = Box::new(gpu);
    let model = Model::new(backend, ck.dims, ck.generation, &ck.weights, WeightDtype::Auto).unwrap();
    let bytes = std::fs::read(shared("reference/amt-random/reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mel: Vec<f32> = tensor(&st, "mel");
    let tokens: Vec<i64> = tensor(&st, "tokens");
    let tokens: Vec<u32> = tokens.iter().map(|&t| t as u32).collect();
    let logits_all: Vec<f32> = tensor(&st, "logits_all");
    let margins: Vec<f32> = tensor(&st, "margins");
    let v = model.dims.n_vocab;

    let mut s = Session::new(&model, SessionOptions { steps_per_submit: 1, ..Default::default() }).unwrap();
    s.encode(&[&mel]).unwrap();
    let enc_ref: Vec<f32> = tensor(&st, "encoder_output");
    let (d, _) = max_abs_diff(&enc_ref, &s.encoder_output(0).unwrap());
    eprintln!("encoder max |diff| {d:e}");

    // Teacher forcing: the whole reference sequence as the prompt.
    s.start(&[RowPrompt { tokens: tokens.clone(), ..Default::default() }]).unwrap();
    s.step(2).unwrap();
    let mut worst = (0f32, 0usize);
    for step in 0..700 {
        s.step(1).unwrap();
        let l = &s.logits().unwrap()[0];
        let (d, _) = max_abs_diff(&logits_all[step * v..(step + 1) * v], l);
        if d > worst.0 {
            worst = (d, step);
        }
    }
    eprintln!("teacher-forced logits: max |diff| {:e} at step {}", worst.0, worst.1);

    // Free running from the 3-token prompt.
    s.start(&[RowPrompt { tokens: tokens[..3].to_vec(), max_new_tokens: Some(700), ..Default::default() }]).unwrap();
    s.run_to_end().unwrap();
    let got = &s.results().unwrap()[0].tokens;
    let first_diff = got.iter().zip(&tokens).position(|(a, b)| a != b);
    eprintln!(
        "free-running: first differing token index {first_diff:?} (margin there {:?})",
        first_diff.map(|i| margins[i - 3])
    );
}
