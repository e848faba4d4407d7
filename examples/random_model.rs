//! Writes a Whisper-shaped model with random f16 weights (seed-style names and config, as in
//! ../shared/models/amt-random), for timing real dimensions without downloading a checkpoint:
//!
//! ```text
//! cargo run --release --example random_model -- --shape large-v3 --out /tmp/large-v3-random
//! cargo run --release --example bench -- --model /tmp/large-v3-random --backend cuda
//! ```
//!
//! Both backends then decode the same weights. Without a tokenizer the bench's prompt is
//! token 0, and the tokens are noise: only speed is meaningful.
use clap::Parser;
use half::f16;
use safetensors::tensor::{Dtype, TensorView};
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    /// tiny.en or large-v3 (the dimensions of OpenAI's checkpoints).
    #[arg(long, default_value = "tiny.en")]
    shape: String,
    /// Output directory (config.json, model.safetensors).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// (n_mels, state, heads, layers, text context, vocabulary).
fn dims(shape: &str) -> Option<(usize, usize, usize, usize, usize, usize)> {
    match shape {
        "tiny.en" => Some((80, 384, 6, 4, 448, 51864)),
        "large-v3" => Some((128, 1280, 20, 32, 448, 51866)),
        _ => None,
    }
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("random_model: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let (mels, d, heads, layers, text_ctx, vocab) =
        dims(&args.shape).ok_or_else(|| format!("--shape {}: expected tiny.en or large-v3", args.shape))?;
    let mut w = Writer { rng: args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, tensors: Vec::new() };
    w.add("encoder.conv1.weight", vec![d, mels, 3], (3.0 / (mels * 3) as f32).sqrt());
    w.add("encoder.conv1.bias", vec![d], 0.0);
    w.add("encoder.conv2.weight", vec![d, d, 3], (3.0 / (d * 3) as f32).sqrt());
    w.add("encoder.conv2.bias", vec![d], 0.0);
    for side in ["encoder", "decoder"] {
        for l in 0..layers {
            let b = format!("{side}.blocks.{l}");
            let attns: &[&str] = if side == "decoder" { &["attn", "cross_attn"] } else { &["attn"] };
            for a in attns {
                w.linear(&format!("{b}.{a}.query"), d, d, true);
                w.linear(&format!("{b}.{a}.key"), d, d, false);
                w.linear(&format!("{b}.{a}.value"), d, d, true);
                w.linear(&format!("{b}.{a}.out"), d, d, true);
                w.layernorm(&format!("{b}.{a}_ln"), d);
            }
            w.linear(&format!("{b}.mlp.0"), 4 * d, d, true);
            w.linear(&format!("{b}.mlp.2"), d, 4 * d, true);
            w.layernorm(&format!("{b}.mlp_ln"), d);
        }
    }
    w.layernorm("encoder.ln_post", d);
    w.layernorm("decoder.ln", d);
    w.add("decoder.token_embedding.weight", vec![vocab, d], 0.05);
    w.add("decoder.positional_embedding", vec![text_ctx, d], 0.02);
    let tensors = w.tensors;
    // The encoder's positions are a float32 sinusoid table in the seed's state dict.
    let half = d / 2;
    let step = (10000f64).ln() / (half - 1) as f64;
    let sinusoid: Vec<u8> = (0..1500)
        .flat_map(|p| {
            (0..d).map(move |i| {
                let t = p as f64 * (-(step * (i % half) as f64)).exp();
                (if i < half { t.sin() } else { t.cos() }) as f32
            })
        })
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::create_dir_all(&args.out)?;
    let mut views = Vec::new();
    for (name, shape, bytes) in &tensors {
        views.push((name.clone(), TensorView::new(Dtype::F16, shape.clone(), bytes)?));
    }
    views.push(("encoder.positional_embedding".into(), TensorView::new(Dtype::F32, vec![1500, d], &sinusoid)?));
    safetensors::serialize_to_file(views, None, &args.out.join("model.safetensors"))?;
    let config = serde_json::json!({
        "n_mels": mels, "n_audio_ctx": 1500, "n_audio_state": d, "n_audio_head": heads,
        "n_audio_layer": layers, "n_text_ctx": text_ctx, "n_text_state": d, "n_text_head": heads,
        "n_text_layer": layers, "n_vocab": vocab,
    });
    std::fs::write(args.out.join("config.json"), serde_json::to_string_pretty(&config)?)?;
    println!("{}: random {} ({} tensors)", args.out.display(), args.shape, tensors.len() + 1);
    Ok(())
}

/// Tensors as (name, shape, f16 bytes), filled from a xorshift64* generator.
struct Writer {
    rng: u64,
    tensors: Vec<(String, Vec<usize>, Vec<u8>)>,
}

impl Writer {
    fn uniform(&mut self) -> f32 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// Uniform in [-scale, scale) (zeros for scale 0).
    fn add(&mut self, name: &str, shape: Vec<usize>, scale: f32) {
        let n: usize = shape.iter().product();
        let bytes: Vec<u8> = (0..n).flat_map(|_| f16::from_f32(self.uniform() * scale).to_le_bytes()).collect();
        self.tensors.push((name.to_string(), shape, bytes));
    }
    /// A linear layer with the variance of a 1/sqrt(fan-in) init, and a small bias.
    fn linear(&mut self, name: &str, out: usize, inp: usize, bias: bool) {
        self.add(&format!("{name}.weight"), vec![out, inp], (3.0 / inp as f32).sqrt());
        if bias {
            self.add(&format!("{name}.bias"), vec![out], 0.02);
        }
    }
    /// The identity layernorm.
    fn layernorm(&mut self, name: &str, d: usize) {
        let one: Vec<u8> = (0..d).flat_map(|_| f16::from_f32(1.0).to_le_bytes()).collect();
        self.tensors.push((format!("{name}.weight"), vec![d], one));
        self.add(&format!("{name}.bias"), vec![d], 0.0);
    }
}
