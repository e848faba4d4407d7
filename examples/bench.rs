//! Benchmark of the encoder and the replayed decode step.
//!
//! ```text
//! cargo run --release --example bench -- --model ../shared/models/whisper-tiny.en \
//!     --capacity 448,1024,4096 --full-capacity --steps 200 --steps-per-submit 8
//! cargo run --release --example bench -- --model ../shared/models/amt-random \
//!     --capacity 4096 --steps 3100 --full-capacity
//! ```
//!
//! For every KV capacity (and, with `--full-capacity`, also for the comparison mode in which
//! attention runs over the whole capacity with a mask) it reports: encoder wall time, the
//! per-utterance cross-attention K/V of every layer, decode ms/token (median over submissions, each of
//! `--steps-per-submit` steps), tokens/s, host microseconds per token spent encoding and
//! submitting commands, dispatches per step, and ms/token by position. End-of-text is not
//! honoured, so every step runs and positions grow to `--steps`. Configurations are measured
//! interleaved (one submission of each in turn), so drifts in machine load affect all alike. Output: a Markdown table, then
//! one JSON object per configuration (also written to `--json FILE`).
use clap::Parser;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;
use whisper_wgpu::audio::{load_wav, log_mel_spectrogram};
use whisper_wgpu::backend::wgpu::{AdapterChoice, WgpuOptions};
use whisper_wgpu::backend::BackendKind;
use whisper_wgpu::decode::{RowPrompt, Session, SessionOptions};
use whisper_wgpu::graph::Elem;
use whisper_wgpu::model::WeightDtype;
use whisper_wgpu::{LoadOptions, LoadedModel};

#[derive(Parser)]
struct Args {
    /// Model directory (Hugging Face or seed-style layout).
    #[arg(long, default_value = "../shared/models/whisper-tiny.en")]
    model: PathBuf,
    /// Audio to encode and decode from (its first 30 s).
    #[arg(long, default_value = "examples/jfk.wav")]
    audio: PathBuf,
    /// Decode steps to time per configuration (capped by the context).
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// KV-cache capacities to measure (comma-separated); default: the model's context.
    #[arg(long, value_delimiter = ',')]
    capacity: Vec<usize>,
    /// Decode steps per submission.
    #[arg(long, default_value_t = 8)]
    steps_per_submit: usize,
    /// Adapter name substring or index (see `wgpu` adapters on this machine).
    #[arg(long)]
    adapter: Option<String>,
    /// wgpu (default) or cuda (a build with `--features cuda`; WHISPER_WGPU_CUDA_GRAPHS=0
    /// replays with plain launches instead of CUDA graphs).
    #[arg(long, default_value = "wgpu", value_parser = ["wgpu", "cuda"])]
    backend: String,
    /// Also time attention over the full capacity with a mask (PyTorch's static-cache path).
    #[arg(long)]
    full_capacity: bool,
    /// Encoder runs to time (after one warm-up run).
    #[arg(long, default_value_t = 3)]
    encoder_runs: usize,
    /// Print device time per kernel for one decode step and one encoder run.
    #[arg(long)]
    profile: bool,
    /// Weight storage: auto, f32, f16, int8.
    #[arg(long, default_value = "auto")]
    dtype: String,
    /// KV-cache element type: f16 or f32.
    #[arg(long, default_value = "f16")]
    kv: String,
    /// Also write the JSON results to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One measured configuration.
struct Run {
    capacity: usize,
    full: bool,
    encoder_ms: f64,
    cross_kv_ms: f64,
    ms_per_token: f64,
    host_us_per_token: f64,
    dispatches: usize,
    /// (position after the submission, ms/token of the submission).
    by_position: Vec<(usize, f64)>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median ms/token of the submissions whose position lies within `window` of `pos`.
fn near(by_position: &[(usize, f64)], pos: usize, window: usize) -> f64 {
    median(by_position.iter().filter(|(p, _)| p.abs_diff(pos) <= window).map(|&(_, t)| t).collect())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let options = LoadOptions {
        backend: BackendKind::parse(&args.backend)?,
        wgpu: WgpuOptions { adapter: AdapterChoice { name: args.adapter.clone() }, ..Default::default() },
        dtype: WeightDtype::parse(&args.dtype)?,
    };
    let loaded = LoadedModel::from_dir(&args.model, &options)?;
    let model = &loaded.model;
    let device = model.describe_device();
    let dims = model.dims.clone();
    let kv = match args.kv.as_str() {
        "f16" => Elem::F16,
        "f32" => Elem::F32,
        other => return Err(format!("--kv {other}: expected f16 or f32").into()),
    };
    let mel = log_mel_spectrogram(&load_wav(&args.audio)?, dims.n_mels)?;
    let g = &model.generation;
    let prompt: Vec<u32> = match (g.sot, g.no_timestamps) {
        (Some(sot), Some(nt)) => vec![sot, nt],
        (Some(sot), None) => vec![sot],
        _ => vec![0],
    };
    let k = args.steps_per_submit.max(1);
    let capacities = if args.capacity.is_empty() { vec![dims.n_text_ctx] } else { args.capacity.clone() };
    let name = args.model.file_name().unwrap_or_default().to_string_lossy().to_string();
    // One session per configuration, all alive at once: every measurement round visits each
    // configuration in turn, so slow phases of a shared machine hit all of them alike.
    let mut configs = Vec::new();
    for &capacity in &capacities {
        for full in [false, true] {
            if full && !args.full_capacity {
                continue;
            }
            let opts = SessionOptions {
                capacity: Some(capacity),
                steps_per_submit: k,
                full_capacity_attention: full,
                kv,
                ..Default::default()
            };
            configs.push((capacity, full, Session::new(model, opts)?));
        }
    }
    let n = configs.len();
    let (mut enc, mut cross) = (vec![Vec::new(); n], vec![Vec::new(); n]);
    for round in 0..=args.encoder_runs.max(1) {
        for (i, (_, _, s)) in configs.iter_mut().enumerate() {
            let t = Instant::now();
            s.run_encoder(&[&mel])?;
            s.state()?; // waits for the device
            let t_cross = Instant::now();
            s.compute_cross_kv()?;
            s.state()?;
            if round > 0 {
                // Round 0 warms caches up.
                enc[i].push((t_cross - t).as_secs_f64() * 1e3);
                cross[i].push(t_cross.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let max_new = configs.iter().map(|c| args.steps.min(c.2.shape().max_len - prompt.len() - 1)).min().unwrap_or(0);
    let row = RowPrompt { tokens: prompt.clone(), max_new_tokens: Some(max_new), ..Default::default() };
    for (_, _, s) in configs.iter_mut() {
        s.set_rules_from(g)?;
        s.start(std::slice::from_ref(&row))?;
        s.step(k)?; // warm-up submission
    }
    let (mut per_token, mut host, mut by_position) = (vec![Vec::new(); n], vec![Vec::new(); n], vec![Vec::new(); n]);
    let mut pos = prompt.len() - 1 + k;
    while pos + k < max_new + prompt.len() {
        pos += k;
        for (i, (_, _, s)) in configs.iter_mut().enumerate() {
            let t = Instant::now();
            s.submit(k)?;
            let submitted = t.elapsed().as_secs_f64();
            s.state()?;
            let ms = t.elapsed().as_secs_f64() * 1e3 / k as f64;
            per_token[i].push(ms);
            host[i].push(submitted * 1e6 / k as f64);
            by_position[i].push((pos, ms));
        }
    }
    let mut runs = Vec::new();
    for (i, (capacity, full, s)) in configs.iter_mut().enumerate() {
        if args.profile {
            println!("profile, capacity {capacity}{}:", if *full { ", full capacity" } else { "" });
            print_profile(s, &row)?;
        }
        runs.push(Run {
            capacity: *capacity,
            full: *full,
            encoder_ms: median(std::mem::take(&mut enc[i])),
            cross_kv_ms: median(std::mem::take(&mut cross[i])),
            ms_per_token: median(std::mem::take(&mut per_token[i])),
            host_us_per_token: median(std::mem::take(&mut host[i])),
            dispatches: s.dispatches_per_step(),
            by_position: std::mem::take(&mut by_position[i]),
        });
    }

    println!("device: {device}; {k} steps per submission; KV cache {}", args.kv);
    println!(
        "| model | capacity | attention | encoder ms | cross K/V ms | decode ms/token | tokens/s | host us/token | dispatches/step |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {name} | {} | {} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} | {} |",
            r.capacity,
            if r.full { "full capacity, masked" } else { "valid prefix" },
            r.encoder_ms,
            r.cross_kv_ms,
            r.ms_per_token,
            1e3 / r.ms_per_token,
            r.host_us_per_token,
            r.dispatches
        );
    }
    let mut objects = Vec::new();
    for r in &runs {
        let (first, last) = (r.by_position.first().map_or(0, |p| p.0), r.by_position.last().map_or(0, |p| p.0));
        let mut marks = vec![first];
        // Medians over the submissions within 4 submissions of each mark.
        let w = 4 * k;
        marks.extend([100, 500, 1000, 2000, 3000].into_iter().filter(|&p| p > first + w && p + w < last));
        marks.push(last);
        let at: Vec<String> = marks.iter().map(|&p| format!("{p}: {:.2}", near(&r.by_position, p, w))).collect();
        println!(
            "ms/token by position (capacity {}, {}): {}",
            r.capacity,
            if r.full { "full" } else { "prefix" },
            if at.is_empty() { "-".into() } else { at.join(", ") }
        );
        objects.push(json!({
            "model": name,
            "device": device,
            "capacity": r.capacity,
            "attention": if r.full { "full_capacity_masked" } else { "valid_prefix" },
            "steps_per_submit": k,
            "kv": args.kv,
            "dtype": args.dtype,
            "encoder_ms": r.encoder_ms,
            "cross_kv_ms": r.cross_kv_ms,
            "decode_ms_per_token": r.ms_per_token,
            "tokens_per_s": 1e3 / r.ms_per_token,
            "host_us_per_token": r.host_us_per_token,
            "dispatches_per_step": r.dispatches,
            "ms_per_token_by_position": r.by_position.iter().map(|&(p, t)| json!([p, t])).collect::<Vec<_>>(),
        }));
    }
    for o in &objects {
        println!("{o}");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&objects)?)?;
    }
    Ok(())
}

/// Device time per kernel of one live decode step and one encoder run, largest first.
fn print_profile(s: &mut Session, row: &RowPrompt) -> Result<(), Box<dyn std::error::Error>> {
    // Profile a live step: after the timed loop the row is done and kernels exit early.
    s.start(std::slice::from_ref(row))?;
    s.step(16)?;
    let (step, encoder) = s.profile()?;
    for (what, prof) in [("decode step", step), ("encoder", encoder)] {
        let Some(prof) = prof else {
            println!("{what}: this adapter has no timestamp queries");
            continue;
        };
        let mut agg: Vec<(String, f64, usize)> = Vec::new();
        for (label, ms) in prof {
            match agg.iter_mut().find(|a| a.0 == label) {
                Some(a) => {
                    a.1 += ms;
                    a.2 += 1;
                }
                None => agg.push((label, ms, 1)),
            }
        }
        agg.sort_by(|a, b| b.1.total_cmp(&a.1));
        println!("{what}: {:.2} ms device time", agg.iter().map(|a| a.1).sum::<f64>());
        for (label, ms, n) in agg {
            println!("  {ms:9.3} ms  {n:3}x  {label}");
        }
    }
    Ok(())
}
