//! Benchmark of the encoder and the replayed decode step.
//!
//! ```text
//! cargo run --release --example bench -- --model ../shared/models/whisper-tiny.en \
//!     --capacity 448,1024,4096 --full-capacity --steps 200 --steps-per-submit 8
//! cargo run --release --example bench -- --batch 1,2,4,8,16 --dtype f16,int8 --steps 96
//! cargo run --release --example bench -- --model ../shared/models/amt-random \
//!     --capacity 4096 --steps 3100 --full-capacity
//! ```
//!
//! For every weight dtype, KV capacity, batch size (and, with `--full-capacity`, also for the
//! comparison mode in which attention runs over the whole capacity with a mask) it reports:
//! the cross-attention K/V of every layer and row, decode ms per step (median over
//! submissions, each of `--steps-per-submit` steps; a step advances every row by one token),
//! tokens/s over all rows, device bytes of the matmul weights and of the KV caches, host
//! microseconds per step spent encoding and submitting commands, dispatches per step, and
//! ms/step by position. The encoder is timed once per dtype on one window; every row of a batch
//! decodes from that window's encoding. End-of-text is not honoured, so every step runs and
//! positions grow to `--steps`. Configurations are measured interleaved (one submission of each
//! in turn), so drifts in machine load affect all alike. Output: a Markdown table, then one
//! JSON object per configuration (also written to `--json FILE`).
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
use whisper_wgpu::{Error, LoadOptions, LoadedModel};

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
    /// Encoder runs to time per dtype (after one warm-up run; 0: untimed).
    #[arg(long, default_value_t = 3)]
    encoder_runs: usize,
    /// Print device time per kernel of one decode step of each configuration, and of the encoder.
    #[arg(long)]
    profile: bool,
    /// Weight storage formats to compare (comma-separated): auto, f32, f16, int8, int8-all.
    #[arg(long, value_delimiter = ',', default_value = "auto")]
    dtype: Vec<String>,
    /// Batch sizes (rows decoded together) to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    batch: Vec<usize>,
    /// KV-cache element type: f16 or f32.
    #[arg(long, default_value = "f16")]
    kv: String,
    /// Backend variants to compare, each with every dtype (comma-separated): default, the
    /// CPU-adapter load paths turned off one at a time (no-int64, no-subgroups), or the
    /// GPUs' split-K mat-vec on a CPU adapter (split-k).
    #[arg(long, value_delimiter = ',', default_value = "default")]
    variant: Vec<String>,
    /// Also write the JSON results to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One measured configuration.
struct Run {
    dtype: String,
    batch: usize,
    capacity: usize,
    full: bool,
    cross_kv_ms: f64,
    ms_per_step: f64,
    host_us_per_step: f64,
    dispatches: usize,
    weight_bytes: usize,
    kv_self_bytes: usize,
    kv_cross_bytes: usize,
    /// (position after the submission, ms/step of the submission).
    by_position: Vec<(usize, f64)>,
}

/// A session to measure and what it is.
struct Config<'m> {
    dtype: usize,
    batch: usize,
    capacity: usize,
    full: bool,
    session: Session<'m>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median ms/step of the submissions whose position lies within `window` of `pos`.
fn near(by_position: &[(usize, f64)], pos: usize, window: usize) -> f64 {
    median(by_position.iter().filter(|(p, _)| p.abs_diff(pos) <= window).map(|&(_, t)| t).collect())
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(b) = args.batch.iter().find(|&&b| b == 0) {
        return Err(Error::InvalidArgument(format!("--batch {b}: a batch holds at least one row")).into());
    }
    // One model per (dtype, variant), labelled by its dtype and, when several are compared,
    // its variant.
    let mut models = Vec::new();
    let mut labels = Vec::new();
    for d in &args.dtype {
        for v in &args.variant {
            let mut wgpu = WgpuOptions { adapter: AdapterChoice { name: args.adapter.clone() }, ..Default::default() };
            match v.as_str() {
                "default" => {}
                "no-int64" => wgpu.no_int64 = true,
                "no-subgroups" => wgpu.no_subgroups = true,
                "split-k" => wgpu.split_k_on_cpu = true,
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "--variant {other}: expected default, no-int64, no-subgroups or split-k"
                    ))
                    .into())
                }
            }
            let options =
                LoadOptions { wgpu, dtype: WeightDtype::parse(d)?, backend: BackendKind::parse(&args.backend)? };
            models.push(LoadedModel::from_dir(&args.model, &options)?);
            labels.push(if args.variant.len() > 1 { format!("{d} {v}") } else { d.clone() });
        }
    }
    let Some(first) = models.first() else {
        return Err(Error::InvalidArgument("--dtype: name at least one weight format".into()).into());
    };
    let device = first.model.describe_device();
    let dims = first.model.dims.clone();
    let g = first.model.generation.clone();
    let kv = match args.kv.as_str() {
        "f16" => Elem::F16,
        "f32" => Elem::F32,
        other => return Err(format!("--kv {other}: expected f16 or f32").into()),
    };
    let mel = log_mel_spectrogram(&load_wav(&args.audio)?, dims.n_mels)?;
    let prompt: Vec<u32> = match (g.sot, g.no_timestamps) {
        (Some(sot), Some(nt)) => vec![sot, nt],
        (Some(sot), None) => vec![sot],
        _ => vec![0],
    };
    let k = args.steps_per_submit.max(1);
    let capacities = if args.capacity.is_empty() { vec![dims.n_text_ctx] } else { args.capacity.clone() };
    let name = args.model.file_name().unwrap_or_default().to_string_lossy().to_string();

    // The encoder, once per dtype on one window (interleaved rounds, round 0 warms up).
    let mut encoders = Vec::new();
    for m in &models {
        encoders.push(Session::new(&m.model, SessionOptions { kv, ..Default::default() })?);
    }
    let mut enc = vec![Vec::new(); models.len()];
    // With --encoder-runs 0 the encoder runs once, untimed (its output is still needed).
    for round in 0..=args.encoder_runs {
        for (i, s) in encoders.iter_mut().enumerate() {
            let t = Instant::now();
            s.run_encoder(&[&mel])?;
            s.state()?; // waits for the device
            if round > 0 {
                enc[i].push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let encoder_ms: Vec<f64> = enc.into_iter().map(median).collect();
    let encoded: Vec<Vec<f32>> = encoders.iter_mut().map(|s| s.encoder_output(0)).collect::<Result<_, _>>()?;
    drop(encoders);

    // One session per configuration, all alive at once: every measurement round visits each
    // configuration in turn, so slow phases of a shared machine hit all of them alike.
    let mut configs = Vec::new();
    let mut cross = Vec::new();
    for (di, m) in models.iter().enumerate() {
        for &capacity in &capacities {
            for full in [false, true] {
                if full && !args.full_capacity {
                    continue;
                }
                for &batch in &args.batch {
                    let opts = SessionOptions {
                        rows: batch,
                        capacity: Some(capacity),
                        steps_per_submit: k,
                        full_capacity_attention: full,
                        kv,
                    };
                    let mut session = Session::new(&m.model, opts)?;
                    let rows = vec![encoded[di].as_slice(); batch];
                    // The second computation is timed (the first touches fresh buffers).
                    session.set_encoder_outputs(&rows)?;
                    session.state()?;
                    let t = Instant::now();
                    session.set_encoder_outputs(&rows)?;
                    session.state()?;
                    cross.push(t.elapsed().as_secs_f64() * 1e3);
                    configs.push(Config { dtype: di, batch, capacity, full, session });
                }
            }
        }
    }
    let n = configs.len();
    let max_new =
        configs.iter().map(|c| args.steps.min(c.session.shape().max_len - prompt.len() - 1)).min().unwrap_or(0);
    let row = RowPrompt { tokens: prompt.clone(), max_new_tokens: Some(max_new), ..Default::default() };
    for c in configs.iter_mut() {
        c.session.set_rules_from(&g)?;
        c.session.start(&vec![row.clone(); c.batch])?;
        c.session.step(k)?; // warm-up submission
    }
    let (mut per_step, mut host, mut by_position) = (vec![Vec::new(); n], vec![Vec::new(); n], vec![Vec::new(); n]);
    let mut pos = prompt.len() - 1 + k;
    while pos + k < max_new + prompt.len() {
        pos += k;
        for (i, c) in configs.iter_mut().enumerate() {
            let t = Instant::now();
            c.session.submit(k)?;
            let submitted = t.elapsed().as_secs_f64();
            c.session.state()?;
            let ms = t.elapsed().as_secs_f64() * 1e3 / k as f64;
            per_step[i].push(ms);
            host[i].push(submitted * 1e6 / k as f64);
            by_position[i].push((pos, ms));
        }
    }
    let mut runs = Vec::new();
    for (i, c) in configs.iter_mut().enumerate() {
        let dtype = labels[c.dtype].clone();
        if args.profile {
            println!(
                "profile, dtype {dtype}, batch {}, capacity {}{}:",
                c.batch,
                c.capacity,
                if c.full { ", full capacity" } else { "" }
            );
            print_profile(&mut c.session, &vec![row.clone(); c.batch])?;
        }
        let (kv_self_bytes, kv_cross_bytes) = c.session.kv_cache_bytes();
        runs.push(Run {
            dtype,
            batch: c.batch,
            capacity: c.capacity,
            full: c.full,
            cross_kv_ms: cross[i],
            ms_per_step: median(std::mem::take(&mut per_step[i])),
            host_us_per_step: median(std::mem::take(&mut host[i])),
            dispatches: c.session.dispatches_per_step(),
            weight_bytes: models[c.dtype].model.weights.matmul_bytes(),
            kv_self_bytes,
            kv_cross_bytes,
            by_position: std::mem::take(&mut by_position[i]),
        });
    }

    println!("device: {device}; {k} steps per submission; KV cache {}", args.kv);
    // `--encoder-runs 0` leaves the encoder untimed (NaN).
    for (d, ms) in labels.iter().zip(&encoder_ms).filter(|(_, ms)| ms.is_finite()) {
        println!("encoder ({d} weights, one 30 s window): {ms:.0} ms");
    }
    println!(
        "| model | dtype | batch | capacity | attention | cross K/V ms | decode ms/step | tokens/s (all rows) | \
         weights MiB | KV self MiB | KV cross MiB | host us/step | dispatches/step |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {name} | {} | {} | {} | {} | {:.0} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            r.dtype,
            r.batch,
            r.capacity,
            if r.full { "full capacity, masked" } else { "valid prefix" },
            r.cross_kv_ms,
            r.ms_per_step,
            r.batch as f64 * 1e3 / r.ms_per_step,
            mib(r.weight_bytes),
            mib(r.kv_self_bytes),
            mib(r.kv_cross_bytes),
            r.host_us_per_step,
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
            "ms/step by position ({}, batch {}, capacity {}, {}): {}",
            r.dtype,
            r.batch,
            r.capacity,
            if r.full { "full" } else { "prefix" },
            if at.is_empty() { "-".into() } else { at.join(", ") }
        );
        let di = labels.iter().position(|d| *d == r.dtype).unwrap_or(0);
        objects.push(json!({
            "model": name,
            "device": device,
            "dtype": r.dtype,
            "batch": r.batch,
            "capacity": r.capacity,
            "attention": if r.full { "full_capacity_masked" } else { "valid_prefix" },
            "steps_per_submit": k,
            "kv": args.kv,
            "encoder_ms": encoder_ms[di],
            "cross_kv_ms": r.cross_kv_ms,
            "decode_ms_per_step": r.ms_per_step,
            "tokens_per_s": r.batch as f64 * 1e3 / r.ms_per_step,
            "weight_bytes": r.weight_bytes,
            "kv_self_bytes": r.kv_self_bytes,
            "kv_cross_bytes": r.kv_cross_bytes,
            "host_us_per_step": r.host_us_per_step,
            "dispatches_per_step": r.dispatches,
            "ms_per_step_by_position": r.by_position.iter().map(|&(p, t)| json!([p, t])).collect::<Vec<_>>(),
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

/// Device time per kernel of one live decode step and of the encoder, largest first.
fn print_profile(s: &mut Session, rows: &[RowPrompt]) -> Result<(), Box<dyn std::error::Error>> {
    // Profile a live step: after the timed loop the rows are done and kernels exit early.
    s.start(rows)?;
    s.step(16)?;
    let (step, encoder) = s.profile()?;
    for (what, prof) in [("decode step", step), ("encoder (one window)", encoder)] {
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
