//! HTTP GETs for the model sources: small JSON documents, and large files streamed to disk while
//! their sha256 is computed.
use super::{HubOptions, Progress};
use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;
use ureq::tls::{PemItem, RootCerts, TlsConfig};

/// Connecting (DNS, TCP, TLS) must be quick: an unreachable source is skipped, not waited for.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A transfer that stalls this long is abandoned.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Progress is reported about every this many bytes.
const REPORT_EVERY: u64 = 1 << 20;

pub(super) struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub(super) fn new() -> Http {
        let config = ureq::Agent::config_builder()
            .timeout_resolve(Some(CONNECT_TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(READ_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            .user_agent(concat!("whisper-wgpu/", env!("CARGO_PKG_VERSION")))
            .tls_config(TlsConfig::builder().root_certs(root_certs()).build())
            .build();
        Http { agent: config.into() }
    }

    /// The body of `url` as text, at most `limit` bytes.
    pub(super) fn get_text(&self, url: &str, limit: u64) -> Result<String> {
        let mut resp = self.agent.get(url).call().map_err(|e| fail(url, e))?;
        resp.body_mut().with_config().limit(limit).read_to_string().map_err(|e| fail(url, e))
    }

    /// Streams `url` into `dest` (through `dest.part`, renamed when complete) and returns the
    /// sha256 of the bytes as lowercase hex. With `expect_sha256`, a mismatch deletes the file and
    /// is an error.
    pub(super) fn download(
        &self,
        url: &str,
        dest: &Path,
        expect_sha256: Option<&str>,
        opts: &HubOptions,
    ) -> Result<String> {
        let label = dest.file_name().map_or_else(|| url.to_string(), |n| n.to_string_lossy().into_owned());
        let resp = self.agent.get(url).call().map_err(|e| fail(url, e))?;
        // A compressed transfer's length says nothing about the bytes we will write.
        let encoded = resp.headers().contains_key("content-encoding");
        let total = resp.body().content_length().filter(|_| !encoded);
        let mut body = resp.into_body().into_reader();
        let part = dest.with_file_name(format!("{label}.part"));
        let result = (|| {
            let mut out = std::fs::File::create(&part).map_err(|e| Error::io(&part, e))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            let (mut done, mut reported) = (0u64, 0u64);
            opts.report(Progress::Download { file: &label, done, total });
            loop {
                let n = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::Download(format!("{url}: after {done} bytes: {e}"))),
                };
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(|e| Error::io(&part, e))?;
                done += n as u64;
                if done - reported >= REPORT_EVERY {
                    reported = done;
                    opts.report(Progress::Download { file: &label, done, total });
                }
            }
            opts.report(Progress::Download { file: &label, done, total });
            if let Some(total) = total.filter(|&t| t != done) {
                return Err(Error::Download(format!("{url}: got {done} of {total} bytes")));
            }
            out.sync_all().map_err(|e| Error::io(&part, e))?;
            let digest = hex(&hasher.finalize());
            if let Some(want) = expect_sha256.filter(|w| !w.eq_ignore_ascii_case(&digest)) {
                return Err(Error::Download(format!("{url}: sha256 {digest}, expected {want}")));
            }
            Ok(digest)
        })();
        match result {
            Ok(digest) => {
                std::fs::rename(&part, dest).map_err(|e| Error::io(dest, e))?;
                Ok(digest)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                Err(e)
            }
        }
    }
}

/// The sha256 of a file on disk, lowercase hex.
pub(super) fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut f, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fail(url: &str, e: ureq::Error) -> Error {
    Error::Download(format!("{url}: {e}"))
}

/// The system's CA bundle when there is one (it also holds the roots of TLS-inspecting proxies
/// that corporate and CI networks install), else the Mozilla roots built into ureq.
fn root_certs() -> RootCerts {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let known = [
        "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Arch, Alpine
        "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
        "/etc/ssl/ca-bundle.pem",             // openSUSE
        "/etc/ssl/cert.pem",                  // macOS, BSDs
    ];
    for path in from_env.into_iter().chain(known.iter().map(Into::into)) {
        let Ok(pem) = std::fs::read(&path) else {
            continue;
        };
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if !certs.is_empty() {
            return RootCerts::from(certs);
        }
    }
    RootCerts::WebPki
}
