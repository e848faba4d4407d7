//! Benchmark of the encoder and the replayed decode step.
//!
//! cargo run --release --example bench -- --model ../shared/models/whisper-tiny.en \
//!     --steps 200 --capacity 448 --steps-per-submit 8
//!
//! Prints a table and one JSON object per configuration.
use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;
use whisper_wgpu::backend::wgpu::{AdapterChoice, WgpuBackend, WgpuOptions};
use whisper_wgpu::backend::Backend;
use whisper_wgpu::checkpoint::Checkpoint;
use whisper_wgpu::decode::{RowPrompt, Session, SessionOptions};
use whisper_wgpu::graph::{state, STATE_WORDS};
use whisper_wgpu::model::{Model, WeightDtype};

#[derive(Parser)]
struct Args {
    /// Model directory (Hugging Face or seed-style layout).
    #[arg(long, default_value = "../shared/models/whisper-tiny.en")]
    model: PathBuf,
    /// Decode steps to time (end-of-text is ignored so every step runs).
    #[arg(long, default_value_t = 128)]
    steps: usize,
    /// KV-cache capacities to measure (comma-separated); default: the model's context.
    #[arg(long, value_delimiter = ',')]
    capacity: Vec<usize>,
    /// Decode steps per submission.
    #[arg(long, default_value_t = 8)]
    steps_per_submit: usize,
    /// Adapter name substring or index.
    #[arg(long)]
    adapter: Option<String>,
    /// Also time attention over the full capacity with a mask (PyTorch's static-cache path).
    #[arg(long)]
    full_capacity: bool,
    /// Encoder runs to time.
    #[arg(long, default_value_t = 3)]
    encoder_runs: usize,
    /// Print device time per kernel for one decode step and one encoder run.
    #[arg(long)]
    profile: bool,
    /// Weight storage: auto, f32, f16.
    #[arg(long, default_value = "auto")]
    dtype: String,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

struct Row {
    capacity: usize,
    full: bool,
    encoder_ms: f64,
    ms_per_token: f64,
    host_us_per_token: f64,
    dispatches: usize,
    by_position: Vec<(usize, f64)>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let ck = Checkpoint::load(&args.model)?;
    let options = WgpuOptions { adapter: AdapterChoice { name: args.adapter.clone() }, ..Default::default() };
    let backend = WgpuBackend::new(&options)?;
    let device = backend.describe();
    let boxed: Box<dyn Backend + Send> = Box::new(backend);
    let model =
        Model::new(boxed, ck.dims.clone(), ck.generation.clone(), &ck.weights, WeightDtype::parse(&args.dtype)?)?;
    let dims = &model.dims;
    let capacities = if args.capacity.is_empty() { vec![dims.n_text_ctx] } else { args.capacity.clone() };
    let mel = vec![-0.5f32; dims.n_mels * dims.n_frames()];
    let first = model.generation.sot.unwrap_or(1);
    let k = args.steps_per_submit;
    let mut rows = Vec::new();
    for &capacity in &capacities {
        for full in [false, true] {
            if full && !args.full_capacity {
                continue;
            }
            let opts = SessionOptions {
                capacity: Some(capacity),
                steps_per_submit: k,
                full_capacity_attention: full,
                ..Default::default()
            };
            let mut s = Session::new(&model, opts)?;
            let mut enc = Vec::new();
            for _ in 0..args.encoder_runs.max(1) + 1 {
                let t = Instant::now();
                s.encode(&[&mel])?;
                s.results()?; // waits for the device
                enc.push(t.elapsed().as_secs_f64() * 1e3);
            }
            enc.remove(0); // first run compiles shaders and warms caches
            let max_new = args.steps.min(s.shape().max_len - 2);
            s.start(&[RowPrompt { tokens: vec![first], max_new_tokens: Some(max_new), ..Default::default() }])?;
            s.step(k)?; // warm-up submission
            let (mut per_token, mut host, mut by_pos) = (Vec::new(), Vec::new(), Vec::new());
            let mut pos = k;
            while pos + k <= max_new {
                let t = Instant::now();
                let mut b = model.backend();
                let st_before = Instant::now();
                drop(b);
                let st = {
                    let t_run = Instant::now();
                    b = model.backend();
                    drop(b);
                    let st = s.step(k)?;
                    host.push(t_run.elapsed().as_secs_f64());
                    st
                };
                let _ = st_before;
                let dt = t.elapsed().as_secs_f64() * 1e3 / k as f64;
                per_token.push(dt);
                by_pos.push((pos, dt));
                pos += k;
                if st[state::DONE] != 0 {
                    break;
                }
                let _ = STATE_WORDS;
            }
            let _ = host;
            if args.profile {
                // Profile a live step (after the loop every row is done and kernels exit early).
                s.start(&[RowPrompt { tokens: vec![first], max_new_tokens: Some(max_new), ..Default::default() }])?;
                s.step(16)?;
                let (step, encoder) = s.profile()?;
                for (what, prof) in [("decode step", step), ("encoder", encoder)] {
                    let Some(prof) = prof else { continue };
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
                    let total: f64 = agg.iter().map(|a| a.1).sum();
                    println!("{what}: {total:.2} ms device time");
                    for (label, ms, n) in agg {
                        println!("  {ms:9.3} ms  {n:3}x  {label}");
                    }
                }
            }
            rows.push(Row {
                capacity,
                full,
                encoder_ms: median(&mut enc),
                ms_per_token: median(&mut per_token),
                host_us_per_token: f64::NAN,
                dispatches: s.dispatches_per_step(),
                by_position: by_pos,
            });
        }
    }
    println!("device: {device}");
    println!("| model | capacity | attention | encoder ms | decode ms/token | tokens/s | dispatches/step |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.1} | {} |",
            args.model.file_name().unwrap_or_default().to_string_lossy(),
            r.capacity,
            if r.full { "full capacity, masked" } else { "valid prefix" },
            r.encoder_ms,
            r.ms_per_token,
            1e3 / r.ms_per_token,
            r.dispatches
        );
    }
    for r in &rows {
        let buckets: Vec<String> = r
            .by_position
            .iter()
            .step_by((r.by_position.len() / 8).max(1))
            .map(|(p, t)| format!("{p}:{t:.2}"))
            .collect();
        println!("ms/token by position (cap {}, full {}): {}", r.capacity, r.full, buckets.join(" "));
        let _ = r.host_us_per_token;
    }
    Ok(())
}
