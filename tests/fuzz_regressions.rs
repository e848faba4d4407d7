//! Inputs kept from fuzzing (`fuzz/`, `scripts/fuzz.sh`) and hand-made hostile files, replayed
//! through the same code the fuzz targets run (`fuzz/fuzz_targets/bodies.rs`): each must give a
//! result or an error, never a panic. Files live in `tests/fuzz_regressions/TARGET/`.
#[path = "../fuzz/fuzz_targets/bodies.rs"]
mod bodies;
mod common;
use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = common::root().join("tests/fuzz_regressions").join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no inputs in {}", dir.display());
    out
}

fn replay(target: &str, body: fn(&[u8])) {
    for (path, bytes) in inputs(target) {
        eprintln!("{target}: {}", path.display());
        body(&bytes);
    }
}

#[test]
fn wav_inputs_never_panic() {
    replay("wav", bodies::wav);
}

#[test]
fn safetensors_inputs_never_panic() {
    replay("safetensors", bodies::safetensors);
}

#[test]
fn ct2_inputs_never_panic() {
    replay("ct2", bodies::ct2);
}

/// Not a check: `cargo test --test fuzz_regressions -- --ignored` writes a small valid CT2
/// model (the tests' builder) into `fuzz/corpus/ct2/`, a seed `scripts/fuzz.sh` starts from.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    use common::ct2_builder::{whisper, Store, SMALL};
    let dir = common::root().join("fuzz/corpus/ct2");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, store) in [Store::F16, Store::Int8].into_iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}.bin")), whisper(6, SMALL, store, 1).encode()).unwrap();
    }
}
