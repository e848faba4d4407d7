//! The replayed decode step: nothing is created on the hot path, finished rows stay finished,
//! and the full-capacity (masked) attention path gives the same tokens as the valid prefix.
mod common;
use common::*;
use whisper_wgpu::audio::{load_wav, log_mel_spectrogram};
use whisper_wgpu::backend::Backend;
use whisper_wgpu::checkpoint::Checkpoint;
use whisper_wgpu::decode::{RowPrompt, Session, SessionOptions};
use whisper_wgpu::graph::{state, STATE_WORDS};
use whisper_wgpu::model::{Model, WeightDtype};

fn tiny_en() -> Option<Model> {
    let ck = Checkpoint::load(&shared("models/whisper-tiny.en")).unwrap();
    let backend: Box<dyn Backend + Send> = Box::new(gpu()?);
    Some(Model::new(backend, ck.dims, ck.generation, &ck.weights, WeightDtype::Auto).unwrap())
}

fn prompt(model: &Model) -> RowPrompt {
    let g = &model.generation;
    RowPrompt {
        tokens: vec![g.sot.unwrap(), g.no_timestamps.unwrap()],
        eot: g.eot,
        sot_index: Some(0),
        no_speech: g.no_speech,
        ..Default::default()
    }
}

#[test]
fn no_device_objects_or_lookups_on_the_hot_path() {
    let Some(model) = tiny_en() else { return };
    let mel = log_mel_spectrogram(&load_wav(&shared("samples/jfk.wav")).unwrap(), 80).unwrap();
    let mut s = Session::new(&model, SessionOptions { steps_per_submit: 4, ..Default::default() }).unwrap();
    s.encode(&[&mel]).unwrap();
    s.set_rules_from(&model.generation.clone()).unwrap();
    s.start(&[prompt(&model)]).unwrap();
    // The first step may make the readback buffers it uses; after that, nothing.
    s.step(1).unwrap();
    s.results().unwrap();
    let before = model.backend().counters();
    let mut steps = 0;
    for _ in 0..6 {
        s.step(4).unwrap();
        steps += 4;
        s.results().unwrap();
    }
    let after = model.backend().counters();
    assert_eq!(before, after, "device objects or lookups were created during {steps} steps");
    // Starting over for the next utterance reuses everything as well.
    s.start(&[prompt(&model)]).unwrap();
    s.step(4).unwrap();
    assert_eq!(after, model.backend().counters(), "a new utterance created device objects");
    // Each decode step replays the same prebuilt dispatches.
    assert!(s.dispatches_per_step() > 0);
}

#[test]
fn finished_rows_do_no_work_and_masked_full_capacity_agrees() {
    let Some(model) = tiny_en() else { return };
    let mel = log_mel_spectrogram(&load_wav(&shared("samples/jfk.wav")).unwrap(), 80).unwrap();
    let mut tokens = Vec::new();
    for full in [false, true] {
        let opts = SessionOptions { steps_per_submit: 16, full_capacity_attention: full, ..Default::default() };
        let mut s = Session::new(&model, opts).unwrap();
        s.encode(&[&mel]).unwrap();
        s.set_rules_from(&model.generation.clone()).unwrap();
        s.start(&[prompt(&model)]).unwrap();
        s.run_to_end().unwrap();
        let done = s.results().unwrap().remove(0);
        assert!(done.done);
        // More steps after done change nothing: every kernel returns at once for the row.
        let st = s.step(16).unwrap();
        assert_eq!(st[state::DONE], 1);
        assert_eq!(s.results().unwrap().remove(0), done);
        assert!(st.len() == STATE_WORDS);
        tokens.push(done.tokens);
    }
    assert_eq!(tokens[0], tokens[1], "masked full-capacity attention changed the tokens");
}
