//! Bad input to the GPU-facing API gives typed errors, never panics.
mod common;
use common::*;
use whisper_wgpu::backend::wgpu::{AdapterChoice, WgpuBackend, WgpuOptions};
use whisper_wgpu::backend::Backend;
use whisper_wgpu::checkpoint::Checkpoint;
use whisper_wgpu::decode::{RowPrompt, Session, SessionOptions};
use whisper_wgpu::model::{Model, WeightDtype};
use whisper_wgpu::Error;

/// Runs in a child process whose Vulkan loader sees no driver at all.
#[test]
fn no_adapter_is_a_typed_error() {
    if std::env::var("WHISPER_WGPU_NO_ADAPTER_CHILD").is_ok() {
        match WgpuBackend::new(&WgpuOptions::default()) {
            Err(Error::NoAdapter(msg)) => {
                assert!(msg.contains("mesa-vulkan-drivers") || msg.contains("request_device"), "{msg}");
                return;
            }
            Err(e) => panic!("expected NoAdapter, got {e}"),
            Ok(b) => panic!("found an adapter with no Vulkan driver visible: {}", b.describe()),
        }
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "no_adapter_is_a_typed_error", "--nocapture"])
        .env("WHISPER_WGPU_NO_ADAPTER_CHILD", "1")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unknown_adapter_name_lists_the_available_ones() {
    if gpu().is_none() {
        return;
    }
    let opts =
        WgpuOptions { adapter: AdapterChoice { name: Some("no-such-adapter-xyz".into()) }, ..Default::default() };
    match WgpuBackend::new(&opts) {
        Err(Error::NoAdapter(msg)) => assert!(msg.contains("available"), "{msg}"),
        other => panic!("expected NoAdapter, got {:?}", other.err()),
    }
}

#[test]
fn bad_session_arguments_are_rejected() {
    let ck = Checkpoint::load(&shared("models/amt-random")).unwrap();
    let Some(g) = gpu() else { return };
    let backend: Box<dyn Backend + Send> = Box::new(g);
    let model = Model::new(backend, ck.dims, ck.generation, &ck.weights, WeightDtype::Auto).unwrap();
    let invalid = |r: whisper_wgpu::Result<()>, what: &str| match r {
        Err(Error::InvalidArgument(_)) => {}
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    };
    invalid(Session::new(&model, SessionOptions { rows: 0, ..Default::default() }).map(|_| ()), "zero rows");
    invalid(
        Session::new(&model, SessionOptions { steps_per_submit: 0, ..Default::default() }).map(|_| ()),
        "zero steps",
    );
    invalid(Session::new(&model, SessionOptions { capacity: Some(1), ..Default::default() }).map(|_| ()), "capacity 1");
    let mut s = Session::new(&model, SessionOptions::default()).unwrap();
    invalid(s.encode(&[&[0.0; 10]]), "a mel of the wrong size");
    invalid(s.encode(&[&[], &[]]), "more mels than rows");
    invalid(s.start(&[RowPrompt::default()]), "an empty prompt");
    invalid(s.start(&[RowPrompt { tokens: vec![5000], ..Default::default() }]), "a token outside the vocabulary");
    invalid(s.start(&[RowPrompt { tokens: vec![1; 5000], ..Default::default() }]), "a prompt longer than the context");
    invalid(
        s.start(&[RowPrompt { tokens: vec![1], temperature: f32::NAN, ..Default::default() }]),
        "a NaN temperature",
    );
    invalid(s.set_rules(&[99_999], &[]), "a suppressed token outside the vocabulary");
}

/// The small random checkpoint of the device-failure tests (HF layout, 1000-token vocabulary).
fn small_checkpoint(case: &str) -> (common::hf_model::HfModel, Checkpoint) {
    let dims = common::hf_model::HfDims {
        d_model: 64,
        heads: 4,
        encoder_layers: 1,
        decoder_layers: 1,
        ffn: 128,
        n_mels: 16,
        n_audio_ctx: 40,
        n_text_ctx: 32,
        vocab: 1000,
    };
    let dir = common::hf_model::HfModel::write(case, dims, safetensors::tensor::Dtype::F32, 1);
    let ck = Checkpoint::load(dir.path()).unwrap();
    (dir, ck)
}

/// A buffer the device cannot hold is an error from the error scope, not a panic; so is one
/// larger than a binding, before the device is asked.
#[test]
fn device_out_of_memory_is_a_typed_error() {
    let Some(mut g) = gpu() else { return };
    let limits = g.device().limits.clone();
    eprintln!(
        "max_buffer_size {} max_storage_buffer_binding_size {}",
        limits.max_buffer_size, limits.max_storage_buffer_binding_size
    );
    match g.create_buffer("too large", whisper_wgpu::graph::Elem::F32, (g.max_binding_bytes() / 4 + 1) as usize) {
        Err(Error::Limit(msg)) => assert!(msg.contains("too large"), "{msg}"),
        other => panic!("expected a limit error, got {other:?}"),
    }
    let dev = g.device();
    // Larger than the device's largest buffer: wgpu's validation, caught by the scope.
    let r = dev.scoped("an oversized buffer", || {
        dev.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("oversized"),
            size: limits.max_buffer_size.saturating_add(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    });
    match r {
        Err(Error::Gpu(msg) | Error::OutOfMemory(msg)) => assert!(msg.contains("an oversized buffer"), "{msg}"),
        Err(e) => panic!("expected a GPU or out-of-memory error, got {e}"),
        Ok(_) => panic!("a buffer beyond max_buffer_size was created"),
    }
    // The device still works.
    let b = g.create_buffer("after", whisper_wgpu::graph::Elem::F32, 4).unwrap();
    g.write(b, 0, bytemuck::cast_slice(&[1f32, 2.0, 3.0, 4.0])).unwrap();
    assert_eq!(g.read_f32(b, 0, 4).unwrap(), [1.0, 2.0, 3.0, 4.0]);
}

/// Destroying the device mid-decode makes the next call fail with `DeviceLost`; the session and
/// model then drop cleanly, and a new device works.
#[test]
fn device_loss_mid_decode_is_an_error() {
    let (_dir, ck) = small_checkpoint("device-loss");
    let Some(g) = gpu() else { return };
    let device = g.device().device.clone();
    let backend: Box<dyn Backend + Send> = Box::new(g);
    let model = Model::new(backend, ck.dims.clone(), ck.generation.clone(), &ck.weights, WeightDtype::Auto).unwrap();
    let mut s = Session::new(&model, SessionOptions::default()).unwrap();
    let mel = Rng::new(2).vec(16 * 80, 1.0);
    s.encode(&[&mel]).unwrap();
    s.start(&[RowPrompt { tokens: vec![998], max_new_tokens: Some(20), ..Default::default() }]).unwrap();
    s.step(2).unwrap();
    device.destroy();
    let err = (0..4).find_map(|_| s.step(2).err()).expect("decoding went on after the device was destroyed");
    assert!(matches!(err, Error::DeviceLost(_)), "expected DeviceLost, got {err:?}");
    assert!(matches!(s.results(), Err(Error::DeviceLost(_))));
    drop(s);
    drop(model);
    let Some(mut g) = gpu() else { return };
    let b = g.create_buffer("after", whisper_wgpu::graph::Elem::U32, 4).unwrap();
    g.write(b, 0, bytemuck::cast_slice(&[7u32; 4])).unwrap();
    assert_eq!(g.read_u32(b, 0, 4).unwrap(), [7; 4]);
}
