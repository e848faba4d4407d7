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
