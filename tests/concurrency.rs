//! One loaded model serves transcriptions from several threads at once: the weights are
//! shared, each transcription has its own session (buffers, plans, state), and the results
//! are identical to serial runs.
mod common;
use common::*;
use whisper_wgpu::audio::load_wav;
use whisper_wgpu::backend::Backend;
use whisper_wgpu::checkpoint::Checkpoint;
use whisper_wgpu::model::{Model, WeightDtype};
use whisper_wgpu::tokenizer::Tokenizer;
use whisper_wgpu::transcribe::{TranscribeOptions, Transcript};
use whisper_wgpu::LoadedModel;

fn tiny_en() -> Option<LoadedModel> {
    let dir = shared("models/whisper-tiny.en");
    let ck = Checkpoint::load(&dir).unwrap();
    let tokenizer = Tokenizer::from_file(ck.tokenizer.as_ref().unwrap(), ck.generation.eot.unwrap()).unwrap();
    let backend: Box<dyn Backend + Send> = Box::new(gpu()?);
    let model = Model::new(backend, ck.dims, ck.generation, &ck.weights, WeightDtype::Auto).unwrap();
    Some(LoadedModel { model, kind: whisper_wgpu::config::ModelKind::Whisper, tokenizer: Some(tokenizer), dir })
}

/// 4 threads x 2 files (jfk, espeak) against one model, each thread in its own order.
#[test]
fn four_threads_share_one_model_and_match_serial_runs() {
    let Some(model) = tiny_en() else { return };
    let audio =
        [load_wav(&shared("samples/jfk.wav")).unwrap(), load_wav(&shared("samples/espeak_sentence.wav")).unwrap()];
    let options = TranscribeOptions::default();
    let t0 = std::time::Instant::now();
    let serial: Vec<Transcript> = audio.iter().map(|a| model.transcribe(a, &options).unwrap()).collect();
    eprintln!("serial: 2 transcriptions in {:.1?}", t0.elapsed());
    assert!(serial[0].text.contains("ask not what your country can do for you"), "{}", serial[0].text);
    let t0 = std::time::Instant::now();
    let threaded: Vec<Vec<(usize, Transcript)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (model, audio, options) = (&model, &audio, &options);
                scope.spawn(move || {
                    let order = if t % 2 == 0 { [0, 1] } else { [1, 0] };
                    order.map(|i| (i, model.transcribe(&audio[i], options).unwrap())).to_vec()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!("threaded: 8 transcriptions on 4 threads in {:.1?}", t0.elapsed());
    for (t, results) in threaded.iter().enumerate() {
        for (i, transcript) in results {
            assert_eq!(transcript, &serial[*i], "thread {t}, file {i} differs from the serial run");
        }
    }
}
