//! tiny.en against the Hugging Face reference (../shared/reference/tiny.en-jfk): encoder output,
//! the first five steps' logits, and the greedy tokens, from the reference log-mel.
mod common;
use common::*;
use safetensors::SafeTensors;
use whisper_wgpu::backend::Backend;
use whisper_wgpu::checkpoint::Checkpoint;
use whisper_wgpu::decode::{RowPrompt, Session, SessionOptions};
use whisper_wgpu::model::{Model, WeightDtype};

fn reference() -> (Vec<u8>, serde_json::Value) {
    let bytes = std::fs::read(shared("reference/tiny.en-jfk/reference.safetensors")).unwrap();
    let json = std::fs::read_to_string(shared("reference/tiny.en-jfk/reference.json")).unwrap();
    (bytes, serde_json::from_str(&json).unwrap())
}

fn f32s(st: &SafeTensors, name: &str) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(st.tensor(name).unwrap().data())
}

fn load(dtype: WeightDtype) -> Option<Model> {
    let ck = Checkpoint::load(&shared("models/whisper-tiny.en")).unwrap();
    let backend: Box<dyn Backend + Send> = Box::new(gpu()?);
    Some(Model::new(backend, ck.dims, ck.generation, &ck.weights, dtype).unwrap())
}

#[test]
fn encoder_logits_and_tokens_match_reference() {
    let Some(model) = load(WeightDtype::Auto) else { return };
    let (bytes, json) = reference();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mel = f32s(&st, "log_mel");
    let mut s = Session::new(&model, SessionOptions { steps_per_submit: 1, ..Default::default() }).unwrap();
    s.encode(&[&mel]).unwrap();

    let enc = s.encoder_output(0).unwrap();
    let enc_ref = f32s(&st, "encoder_output");
    let (d, i) = max_abs_diff(&enc_ref, &enc);
    eprintln!("encoder output max |diff| {d:e} at {i}");

    s.set_rules_from(&model.generation.clone()).unwrap();
    let g = &model.generation;
    let prompt = RowPrompt { tokens: vec![g.sot.unwrap(), g.no_timestamps.unwrap()], eot: g.eot, ..Default::default() };
    s.start(&[prompt]).unwrap();
    let logits_ref = f32s(&st, "logits_first5");
    let v = model.dims.n_vocab;
    // Step 0 feeds <|startoftranscript|> (its logits predict the forced <|notimestamps|>);
    // reference step i is our step i + 1.
    s.step(1).unwrap();
    for i in 0..5 {
        s.step(1).unwrap();
        let l = &s.logits().unwrap()[0];
        let (d, at) = max_abs_diff(&logits_ref[i * v..(i + 1) * v], l);
        eprintln!("step {i}: logits max |diff| {d:e} at {at}");
    }
    s.run_to_end().unwrap();
    let r = &s.results().unwrap()[0];
    let want: Vec<u32> = json["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect();
    assert_eq!(r.tokens, want);
}
