//! Audio files beyond WAV (the `formats` feature): jfk.wav encoded by the reference tools
//! (`flac --best`; `lame -b 48`; `oggenc -q 2 --resample 44100` of a stereo copy whose right
//! channel is the left at half level) decodes to the WAV's samples: exactly for lossless FLAC,
//! and for the lossy codecs with the same length and a waveform correlation above 0.97 with no
//! shift (gapless trimming of the MP3 encoder delay).
#![cfg(feature = "formats")]
use std::path::{Path, PathBuf};
use whisper_wgpu::audio::{load_wav, AudioStream, SAMPLE_RATE};
use whisper_wgpu::Error;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn jfk() -> Vec<f32> {
    load_wav(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples/jfk.wav")).unwrap()
}

fn decode(name: &str) -> (Vec<f32>, Option<u64>) {
    let mut s = AudioStream::open(&data(name)).unwrap();
    let hint = s.len_hint();
    let mut out = Vec::new();
    let mut chunks = 0;
    while s.read_chunk(&mut out).unwrap() > 0 {
        chunks += 1;
    }
    assert!(chunks > 10, "{name}: decoded in {chunks} chunks (expected packet by packet)");
    (out, hint)
}

/// Normalised correlation of `a` and `b` shifted by `lag` samples (b[i + lag] against a[i]).
fn correlation(a: &[f32], b: &[f32], lag: i64) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (i, &x) in a.iter().enumerate() {
        let j = i as i64 + lag;
        if j < 0 || j as usize >= b.len() {
            continue;
        }
        let y = b[j as usize] as f64;
        ab += x as f64 * y;
        aa += (x as f64).powi(2);
        bb += y * y;
    }
    ab / (aa * bb).sqrt().max(1e-30)
}

#[test]
fn flac_decodes_to_the_wav_samples_exactly() {
    let want = jfk();
    let (got, hint) = decode("jfk.flac");
    assert_eq!(hint, Some(want.len() as u64));
    assert_eq!(got.len(), want.len());
    let first_diff = got.iter().zip(&want).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "FLAC sample differs from the WAV");
}

#[test]
fn mp3_and_resampled_stereo_ogg_match_the_wav() {
    let want = jfk();
    for name in ["jfk.mp3", "jfk.ogg"] {
        let (got, hint) = decode(name);
        let secs = |n: usize| n as f64 / SAMPLE_RATE as f64;
        assert!((secs(got.len()) - secs(want.len())).abs() < 0.01, "{name}: {} s", secs(got.len()));
        if let Some(h) = hint {
            assert!((secs(h as usize) - secs(want.len())).abs() < 0.01, "{name}: header says {} s", secs(h as usize));
        }
        // The best shift over +-10 ms must be none, and the waveforms must agree.
        let best = (-160i64..=160).max_by(|&a, &b| correlation(&want, &got, a).total_cmp(&correlation(&want, &got, b)));
        let c = correlation(&want, &got, 0);
        eprintln!("{name}: {} samples, correlation {c:.4}, best lag {best:?}", got.len());
        assert_eq!(best, Some(0), "{name}: the decoded audio is shifted");
        assert!(c > 0.97, "{name}: correlation {c}");
    }
}

#[test]
fn unreadable_files_are_typed_errors() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("formats");
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, &[u8]); 3] =
        [("empty.flac", b""), ("text.mp3", b"this is not audio at all, just some text\n"), ("cut.flac", b"fLaC\0\0")];
    for (name, bytes) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        match AudioStream::open(&p) {
            Err(Error::Audio { path, msg }) => {
                assert_eq!(path, p);
                eprintln!("{name}: {msg}");
            }
            Err(e) => panic!("{name}: wrong error kind {e:?}"),
            Ok(_) => panic!("{name}: opened"),
        }
    }
    assert!(matches!(AudioStream::open(&dir.join("missing.ogg")), Err(Error::Io { .. })));
    // A truncated FLAC (half the file): what is there decodes, no panic, then the end.
    let full = std::fs::read(data("jfk.flac")).unwrap();
    let p = dir.join("half.flac");
    std::fs::write(&p, &full[..full.len() / 2]).unwrap();
    let mut s = AudioStream::open(&p).unwrap();
    let mut out = Vec::new();
    let mut result = Ok(1);
    while matches!(result, Ok(n) if n > 0) {
        result = s.read_chunk(&mut out);
    }
    assert!(out.len() > SAMPLE_RATE as usize * 3, "{} samples", out.len());
    if let Err(e) = result {
        assert!(matches!(e, Error::Audio { .. }), "{e:?}");
    }
}
