//! The aria-amt note side (src/amt) against what the original Python computed, in
//! ../shared/reference/aria-amt-random (its README states the rules): the vocabulary, the
//! tokenizer windows of four test MIDIs, tokenising piano_synth.mid, the stop rule, the
//! per-step selection on recorded logits, and the whole stitching of four recorded runs down
//! to the MIDI bytes. Pure CPU.
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use whisper_wgpu::amt::vocab::{decode, encode, encode_lossy, tokens_from_json, VOCAB_SIZE};
use whisper_wgpu::amt::{
    apply_stop_rule, detokenize, process_silent_intervals, select, tokenize, Continuation, MidiDict, SilentInterval,
    Stitcher, StopReason, Token, WindowSeq,
};

fn shared(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("shared").join(rel)
}

fn reference(rel: &str) -> PathBuf {
    shared(&format!("reference/aria-amt-random/{rel}"))
}

fn json(rel: &str) -> Value {
    let path = reference(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| int(x) as u32).collect()
}

/// A `{"tokens", "ids"}` object's tokens, checked against its ids: upstream's encoding (tokens
/// outside the vocabulary as `<U>`), and both ways when all are in the vocabulary.
fn seq(v: &Value) -> Vec<Token> {
    let tokens = tokens_from_json(&v["tokens"]).unwrap();
    let ids = ids(&v["ids"]);
    assert_eq!(encode_lossy(&tokens), ids);
    if let Ok(exact) = encode(&tokens) {
        assert_eq!(exact, ids);
        assert_eq!(decode(&ids).unwrap(), tokens);
    }
    tokens
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        acc = acc << 6 | ALPHABET.iter().position(|&a| a == c).expect("base64 character") as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// A note as (pitch, start_ms, end_ms, velocity); a pedal change as (tick, ms, data).
type NoteRow = (i64, i64, i64, i64);
type PedalRow = (i64, i64, i64);

/// The reference's `notes` objects.
fn ref_notes(v: &Value) -> Vec<NoteRow> {
    let n = v.as_array().unwrap();
    n.iter().map(|n| (int(&n["pitch"]), int(&n["start_ms"]), int(&n["end_ms"]), int(&n["velocity"]))).collect()
}

fn ref_pedals(v: &Value) -> Vec<PedalRow> {
    v.as_array().unwrap().iter().map(|p| (int(&p["tick"]), int(&p["ms"]), int(&p["data"]))).collect()
}

/// What the reference reads back from a written MIDI file (1 tick = 1 ms there): notes sorted
/// by (start, pitch, end) as its generator sorts them, pedal changes in file order.
fn read_back(bytes: &[u8]) -> (Vec<NoteRow>, Vec<PedalRow>) {
    let m = MidiDict::from_midi(bytes).unwrap();
    let mut notes: Vec<_> = m.notes.iter().map(|n| (n.pitch as i64, n.start, n.end, n.velocity as i64)).collect();
    notes.sort_by_key(|&(pitch, start, end, _)| (start, pitch, end));
    let pedals = m.pedals.iter().map(|p| (p.tick, m.tick_to_ms(p.tick), p.down as i64)).collect();
    (notes, pedals)
}

#[test]
fn vocabulary_is_vocab_json() {
    let v = json("vocab.json");
    assert_eq!(int(&v["vocab_size"]), VOCAB_SIZE as i64);
    let tokens = v["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), VOCAB_SIZE as usize);
    for (id, t) in tokens.iter().enumerate() {
        let token = Token::from_json(t).unwrap();
        assert_eq!(token.id(), Some(id as u32), "{t}");
        assert_eq!(Token::from_id(id as u32), Some(token));
        assert_eq!(&token.to_json(), t);
    }
}

const TOKENIZER_CASES: [&str; 4] = ["basic", "bach", "147", "transcription"];

/// Every tokenizer window: ids, and detokenize -> notes, pedals and the exact MIDI bytes.
#[test]
fn tokenizer_windows_detokenize_to_the_reference_midi() {
    for case in TOKENIZER_CASES {
        for w in json(&format!("tokenizer/{case}.json"))["windows"].as_array().unwrap() {
            let what = format!("{case} {}..{}", w["start_ms"], w["end_ms"]);
            let tokens = seq(w);
            let midi = detokenize(&tokens, int(&w["detokenize_len_ms"])).unwrap();
            let bytes = midi.to_midi().unwrap();
            assert_eq!(sha256_hex(&bytes), w["detokenized_midi_sha256"].as_str().unwrap(), "{what}");
            assert_eq!(bytes, base64_decode(w["detokenized_midi_base64"].as_str().unwrap()), "{what}");
            let (notes, pedals) = read_back(&bytes);
            assert_eq!(notes, ref_notes(&w["detokenized_notes"]), "{what}");
            assert_eq!(pedals, ref_pedals(&w["detokenized_pedals"]), "{what}");
        }
    }
}

/// piano_synth.mid is bach.mid: tokenising it over each window gives the reference tokens.
#[test]
fn bach_midi_tokenizes_to_the_reference() {
    let bach = json("tokenizer/bach.json");
    let bytes = std::fs::read(shared("samples/piano_synth.mid")).unwrap();
    assert_eq!(sha256_hex(&bytes), bach["source_sha256"].as_str().unwrap());
    let midi = MidiDict::from_midi(&bytes).unwrap();
    for w in bach["windows"].as_array().unwrap() {
        assert!(w["max_pedal_len_ms"].is_null());
        let tokens = tokenize(&midi, int(&w["start_ms"]), int(&w["end_ms"])).unwrap();
        assert_eq!(tokens, seq(w), "window {}..{}", w["start_ms"], w["end_ms"]);
    }
}

const RUNS: [&str; 4] = ["oracle_piano_synth", "pipeline_piano_synth", "silence_gap_random", "silence_gap_oracle"];

fn intervals(v: &Value) -> Vec<SilentInterval> {
    let pairs = v.as_array().unwrap();
    pairs.iter().map(|p| SilentInterval { start_ms: int(&p[0]), end_ms: int(&p[1]) }).collect()
}

/// Whether the run's log has `msg` for window k.
fn logged(run: &Value, k: usize, msg: &str) -> bool {
    run["log"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| int(&l["window"]) == k as i64 && l["msg"].as_str().unwrap().contains(msg))
}

/// The recorded ids chosen at each step, through the stop rule, give the window's result.
fn check_stop_rule(w: &Value, prefix: &[Token], what: &str) -> Vec<Token> {
    let chosen = ids(&w["selected_every_step"]);
    let (result, stop, used) = apply_stop_rule(&encode(prefix).unwrap(), &chosen).unwrap();
    let reason = match stop.reason {
        StopReason::Eos => "eos",
        StopReason::LateOnset => "onset>=20000",
        StopReason::ContextFull => "context_full",
    };
    assert_eq!(reason, w["stop"]["reason"].as_str().unwrap(), "{what}");
    assert_eq!(stop.eos_idx, int(&w["stop"]["eos_idx"]), "{what}");
    assert_eq!(stop.last_step_idx, Some(int(&w["stop"]["last_step_idx"]) as usize), "{what}");
    assert_eq!(used as i64, int(&w["stop"]["n_steps"]), "{what}");
    assert_eq!(used, chosen.len(), "{what}");
    let tokens = seq(&w["result"]);
    assert_eq!(decode(&result).unwrap(), tokens, "{what}");
    assert_eq!(tokens[prefix.len().min(tokens.len())..], seq(&w["generated"])[..], "{what}");
    tokens
}

/// One window through the stitcher: silence pass, next prefix, log-visible decisions.
fn check_window(run: &Value, k: usize, st: &mut Stitcher, what: &str) {
    let w = &run["windows"][k];
    let result = check_stop_rule(w, st.prefix(), what);
    let silent = intervals(&w["silent_intervals_ms"]);
    let sp = &w["silence_pass"];
    assert_eq!(intervals(&sp["intervals_ms"]), silent, "{what}");
    let adjusted = process_silent_intervals(&result, &silent).unwrap();
    if !sp["adjusted"].is_null() {
        assert_eq!(adjusted, seq(&sp["adjusted"]), "{what}");
    }
    let report = st.push_window(&result, &silent).unwrap();
    assert_eq!(report.window, k);
    assert_eq!(report.silence.len_before as i64, int(&sp["len_before"]), "{what}");
    assert_eq!(report.silence.len_after as i64, int(&sp["len_after"]), "{what}");
    assert_eq!(report.silence.fired, sp["fired"].as_bool().unwrap(), "{what}");
    assert_eq!(report.saw_eos, logged(run, k, "Seen eos_tok"), "{what}");
    let trunc = &w["truncate_calls"][0];
    assert!(trunc.get("error").is_none_or(Value::is_null), "{what}: the reference's cut failed");
    let next = seq(&trunc["result"]);
    let skipped = logged(run, k, "(silence)");
    let expected = if skipped { Continuation::AppendedSilence } else { Continuation::Appended };
    assert_eq!(report.continuation, expected, "{what}");
    assert_eq!(st.prefix(), if skipped { &[Token::Bos][..] } else { &next[..] }, "{what}");
}

/// Each recorded run, window by window through the stitcher, then the final MIDI file.
#[test]
fn stitching_reproduces_the_recorded_runs() {
    for name in RUNS {
        let run = json(&format!("{name}.json"));
        let windows = run["windows"].as_array().unwrap();
        assert_eq!(windows.len() as i64, int(&run["n_windows"]));
        let mut st = Stitcher::new();
        for (k, w) in windows.iter().enumerate() {
            let what = format!("{name} window {k}");
            assert_eq!(int(&w["window"]), k as i64);
            assert_eq!(st.prefix(), seq(&w["prefix"]), "{what}");
            assert_eq!(st.prefix().len() as i64, int(&w["prefix_len"]), "{what}");
            check_window(&run, k, &mut st, &what);
        }
        assert_eq!(st.concat_seq(), seq(&run["concat_seq"]), "{name}");
        let out = st.finish().unwrap().expect("long enough to write");
        assert_eq!(sha256_hex(&out.bytes), run["midi_sha256"].as_str().unwrap(), "{name}");
        assert_eq!(out.bytes, std::fs::read(reference(&format!("{name}.mid"))).unwrap(), "{name}");
        let (notes, pedals) = read_back(&out.bytes);
        assert_eq!(notes, ref_notes(&run["notes"]), "{name}");
        assert_eq!(pedals, ref_pedals(&run["pedals"]), "{name}");
    }
}

/// The per-step `eos_idx` column of the random run: 4096 until the stop, then the cut.
#[test]
fn stop_rule_matches_the_recorded_steps() {
    let run = json("pipeline_piano_synth.json");
    for (k, w) in run["windows"].as_array().unwrap().iter().enumerate() {
        let steps = &w["steps"];
        assert_eq!(ids(&steps["selected"]), ids(&w["selected_every_step"]));
        let mut ws = WindowSeq::new(&ids(&w["prefix"]["ids"])).unwrap();
        for (i, &id) in ids(&steps["selected"]).iter().enumerate() {
            assert_eq!(ws.next_idx() as i64, int(&steps["idx"][i]), "window {k} step {i}");
            let stop = ws.push(id).unwrap();
            assert_eq!(stop.map_or(4096, |s| s.eos_idx), int(&steps["eos_idx"][i]), "window {k} step {i}");
        }
        assert!(ws.push(1).is_err(), "pushing after the stop");
        assert_eq!(ws.result().unwrap(), ids(&w["result"]["ids"]));
    }
}

fn tensor<T: bytemuck::Pod>(st: &safetensors::SafeTensors, name: &str) -> Vec<T> {
    bytemuck::pod_collect_to_vec(st.tensor(name).unwrap().data())
}

/// The selection rule on the 32 recorded raw logit rows of window 0: argmax, expected id
/// (to 1e-3; the reference computed it with PyTorch's reduction order) and the chosen id.
#[test]
fn selection_matches_the_recorded_logits() {
    let bytes = std::fs::read(reference("model_window0.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let step_idx: Vec<i64> = tensor(&st, "recorded_step_idx");
    let logits: Vec<f32> = tensor(&st, "logits_incremental");
    let steps = &json("pipeline_piano_synth.json")["windows"][0]["steps"];
    let idx = ids(&steps["idx"]);
    for (row, &s) in logits.chunks(VOCAB_SIZE as usize).zip(&step_idx) {
        let i = idx.iter().position(|&x| x as i64 == s).unwrap();
        let sel = select(row).unwrap();
        assert_eq!(sel.argmax as i64, int(&steps["argmax"][i]), "step {s}");
        assert_eq!(sel.selected as i64, int(&steps["selected"][i]), "step {s}");
        let ev = steps["ev"][i].as_f64().unwrap();
        assert!((sel.expected as f64 - ev).abs() < 1e-3, "step {s}: {} vs {ev}", sel.expected);
    }
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let bytes = std::fs::read(shared("samples/piano_synth.mid")).unwrap();
    for cut in [0, 4, 13, 14, 22, bytes.len() / 2, bytes.len() - 1] {
        assert!(MidiDict::from_midi(&bytes[..cut]).is_err(), "MIDI cut at {cut}");
    }
    assert!(MidiDict::from_midi(b"RIFF not a midi file at all").is_err());
    let (on, onset, vel) = (Token::On(60), Token::Onset(100), Token::Vel(40));
    let bad: [&[Token]; 7] = [
        &[],
        &[Token::Eos],
        &[on, onset, vel],                              // no <S>, not a prev
        &[Token::Bos, on, onset],                       // on without its velocity
        &[Token::Bos, on, vel, onset],                  // wrong order
        &[Token::Bos, Token::Prev(60), on, onset, vel], // prev after <S>
        &[Token::Bos, on, onset, vel, Token::Unk],      // special after <S>
    ];
    for tokens in bad {
        assert!(detokenize(tokens, 30000).is_err(), "{tokens:?}");
    }
    assert!(detokenize(&[Token::Bos], 0).is_err());
    assert!(whisper_wgpu::amt::write_midi(&[Token::Bos; 12]).is_err(), "no onset");
    let silent = [SilentInterval { start_ms: 0, end_ms: 100 }];
    assert!(process_silent_intervals(&[Token::Bos, Token::On(127), onset, vel], &silent).is_err());
    assert!(select(&[0.0; 10]).is_err());
    assert!(select(&vec![f32::NAN; VOCAB_SIZE as usize]).is_err());
    assert!(WindowSeq::new(&[]).is_err());
    assert!(tokenize(&MidiDict::from_midi(&bytes).unwrap(), 0, 30001).is_err());
}
