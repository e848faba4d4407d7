//! The model cache: where it is, when a model in it is complete, and how a new one is put there
//! atomically (built in a temporary directory beside it, then renamed).
use crate::config::{GenerationConfig, ModelDims};
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The files a model directory must hold to be used.
pub(crate) const REQUIRED_FILES: [&str; 4] =
    ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"];

/// Prefix of the temporary directories a download is built in.
const PARTIAL_PREFIX: &str = ".partial-";
/// Temporary directories older than this are left over from killed runs and may be removed.
const STALE_AFTER: Duration = Duration::from_secs(6 * 3600);

/// `$WHISPER_WGPU_CACHE`, else `$XDG_CACHE_HOME/whisper-wgpu`, else `~/.cache/whisper-wgpu`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("WHISPER_WGPU_CACHE") {
        return Some(dir);
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return Some(dir.join("whisper-wgpu"));
    }
    let home = var("HOME").or_else(|| var("USERPROFILE"))?;
    Some(home.join(".cache").join("whisper-wgpu"))
}

/// True when `dir` holds every file a model needs.
pub fn is_complete(dir: &Path) -> bool {
    REQUIRED_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Checks that a freshly made model directory loads: both configs parse and the weights and
/// tokenizer are there.
pub(crate) fn check_model_dir(dir: &Path) -> Result<()> {
    for f in REQUIRED_FILES {
        if !dir.join(f).is_file() {
            return Err(Error::ModelFile { path: dir.join(f), msg: "missing".into() });
        }
    }
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read_to_string(&p).map(|t| (p.clone(), t)).map_err(|e| Error::io(&p, e))
    };
    let (path, text) = read("config.json")?;
    let (dims, _) = ModelDims::from_json(&path, &text)?;
    let (path, text) = read("generation_config.json")?;
    GenerationConfig::from_json(&path, &text, dims.n_vocab)?;
    Ok(())
}

/// A temporary directory under the cache root, removed on drop unless committed.
pub(crate) struct Staging {
    path: PathBuf,
    committed: bool,
}

impl Staging {
    /// Makes `<root>/.partial-<name>-<pid>-<nanos>`, first clearing stale ones of earlier runs.
    pub(crate) fn new(root: &Path, name: &str) -> Result<Staging> {
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        remove_stale(root);
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = root.join(format!("{PARTIAL_PREFIX}{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Staging { path, committed: false })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the finished directory to `dest`. A complete `dest` made meanwhile by another process
    /// wins; an incomplete one is replaced.
    pub(crate) fn commit(mut self, dest: &Path) -> Result<()> {
        if dest.exists() {
            if is_complete(dest) {
                return Ok(()); // dropping self removes our copy
            }
            std::fs::remove_dir_all(dest).map_err(|e| Error::io(dest, e))?;
        }
        match std::fs::rename(&self.path, dest) {
            Ok(()) => {
                self.committed = true;
                Ok(())
            }
            Err(_) if is_complete(dest) => Ok(()),
            Err(e) => Err(Error::io(dest, e)),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Removes `.partial-*` directories that no live download can still be using.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_string_lossy().starts_with(PARTIAL_PREFIX)
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_AFTER);
        if stale {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
