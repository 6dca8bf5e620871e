//! `artifact` blocks: fetch a file over http(s), or from a path inside the task directory (a
//! host path or `file://` URL only when the agent's `allow_host_paths` is on), verify its
//! `checksum`, and unpack tar, tar.gz/tgz, gz and zip archives ([`crate::unpack`]) into the task
//! directory, before the task starts. Decisions (checksum syntax, archive kind) are pure
//! functions; nothing is written outside the task directory ([`crate::confine`]). A failed
//! fetch is a task event and counts as a failed start for the `restart` policy; a refused path
//! fails the task.

use std::path::{Path, PathBuf};

use nomos_api::Artifact;
use sha2::Digest;

use crate::confine::{is_single_component, read_source, rel_path, Beneath};
use crate::error::AgentError;
use crate::interp::{interpolate, Vars};
use crate::unpack::unpack;
pub use crate::unpack::{archive_kind, ArchiveKind};

/// A checksum to verify: algorithm and lowercase hex digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algo: String,
    pub hex: String,
}

/// Parses `sha256:<hex>` / `sha512:<hex>` (go-getter's syntax).
pub fn parse_checksum(s: &str) -> Result<Checksum, String> {
    let (algo, hex) = s
        .split_once(':')
        .ok_or_else(|| format!("checksum {s:?} is not <type>:<hex>"))?;
    let want_len = match algo {
        "sha256" => 64,
        "sha512" => 128,
        other => {
            return Err(format!(
                "checksum type {other:?} is not supported (sha256, sha512)"
            ))
        }
    };
    if hex.len() != want_len || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("checksum {s:?} is not a {algo} digest"));
    }
    Ok(Checksum {
        algo: algo.into(),
        hex: hex.to_ascii_lowercase(),
    })
}

/// Splits `source` into the location and a `?checksum=` / `?archive=` query go-getter style.
pub fn split_source(source: &str) -> (String, Option<String>, Option<String>) {
    let Some((base, query)) = source.split_once('?') else {
        return (source.to_string(), None, None);
    };
    let mut checksum = None;
    let mut archive = None;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("checksum", v)) => checksum = Some(v.to_string()),
            Some(("archive", v)) => archive = Some(v.to_string()),
            _ => rest.push(pair),
        }
    }
    let base = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (base, checksum, archive)
}

fn fail(source: &str, msg: impl std::fmt::Display) -> AgentError {
    AgentError::driver("artifact", format!("artifact {source:?}: {msg}"))
}

fn verify(bytes: &[u8], c: &Checksum) -> Result<(), String> {
    let got = match c.algo.as_str() {
        "sha256" => format!("{:x}", sha2::Sha256::digest(bytes)),
        _ => format!("{:x}", sha2::Sha512::digest(bytes)),
    };
    if got == c.hex {
        Ok(())
    } else {
        Err(format!(
            "checksum mismatch: expected {}:{}, got {}:{got}",
            c.algo, c.hex, c.algo
        ))
    }
}

async fn download(
    location: &str,
    task: &Beneath,
    allow_host_paths: bool,
) -> Result<Vec<u8>, AgentError> {
    if !(location.starts_with("http://") || location.starts_with("https://")) {
        return read_source(task, "Artifact", location, allow_host_paths);
    }
    let failed = |e: String| fail(location, format!("download failed: {e}"));
    let resp = reqwest::get(location)
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(failed(format!("HTTP {}", resp.status())));
    }
    resp.bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| failed(e.to_string()))
}

/// The file name an artifact is saved under: the last segment of its location, or `artifact`
/// when that is no usable name.
fn file_name(location: &str) -> String {
    let last = location.rsplit('/').next().unwrap_or_default();
    let name = last.split('?').next().unwrap_or_default();
    if is_single_component(name) {
        name.to_string()
    } else {
        "artifact".to_string()
    }
}

/// Names the artifact in an error: a sandbox refusal becomes the artifact's (with its source),
/// any other failure a failed download.
fn named(source: &str, e: AgentError) -> AgentError {
    match e {
        AgentError::Sandbox { ref what, .. } if what == "Artifact" => e,
        AgentError::Sandbox { .. } => e.about("Artifact", &format!("source {source:?}")),
        AgentError::Driver { .. } => e,
        e => fail(source, e),
    }
}

/// Fetches one artifact into the task directory `task` (nothing is read or written outside
/// it: see [`crate::confine`]); a local source outside it needs `allow_host_paths`. Returns
/// where it landed.
pub async fn fetch(
    artifact: &Artifact,
    task: &Beneath,
    vars: &Vars,
    allow_host_paths: bool,
) -> Result<PathBuf, AgentError> {
    let source = interpolate(&artifact.source, vars);
    let (location, q_checksum, q_archive) = split_source(&source);
    let checksum = artifact
        .options
        .get("checksum")
        .cloned()
        .or(q_checksum)
        .map(|c| parse_checksum(&interpolate(&c, vars)))
        .transpose()
        .map_err(|e| fail(&source, e))?;
    let dest_rel = if artifact.destination.is_empty() {
        "local/".to_string()
    } else {
        interpolate(&artifact.destination, vars)
    };
    let dest = rel_path(&dest_rel).ok_or_else(|| {
        AgentError::sandbox(
            "Artifact",
            format!("destination {dest_rel:?} is outside the task directory"),
        )
    })?;
    let bytes = download(&location, task, allow_host_paths)
        .await
        .map_err(|e| named(&source, e))?;
    if let Some(c) = &checksum {
        verify(&bytes, c).map_err(|e| fail(&source, e))?;
    }
    let name = file_name(&location);
    let archive_opt = artifact.options.get("archive").cloned().or(q_archive);
    let placed = if artifact.mode == "file" {
        task.write(&dest, &bytes, 0o644)
    } else {
        task.dir(&dest)
            .and_then(|dir| match archive_kind(&name, archive_opt.as_deref()) {
                Some(kind) => unpack(&bytes, kind, &dir, &name),
                None => dir.write(Path::new(&name), &bytes, 0o644),
            })
    };
    placed.map_err(|e| named(&source, e))?;
    Ok(task.path().join(dest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn checksum_parsing_table() {
        let ok = "sha256:".to_string() + &"a".repeat(64);
        assert_eq!(parse_checksum(&ok).unwrap().algo, "sha256");
        for bad in [
            "nocolon",
            "md5:abcd",
            "sha256:abc",
            &("sha256:".to_string() + &"z".repeat(64)),
        ] {
            assert!(parse_checksum(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn archive_kind_table() {
        let cases = [
            ("a.tar.gz", None, Some(ArchiveKind::TarGz)),
            ("a.TGZ", None, Some(ArchiveKind::TarGz)),
            ("a.tar", None, Some(ArchiveKind::Tar)),
            ("a.gz", None, Some(ArchiveKind::Gz)),
            ("a.zip", None, Some(ArchiveKind::Zip)),
            ("a.zip", Some("false"), None),
            ("binary", None, None),
        ];
        for (name, opt, want) in cases {
            assert_eq!(archive_kind(name, opt), want, "{name}");
        }
    }

    #[test]
    fn sources_split_their_query() {
        assert_eq!(
            split_source("http://h/a.tgz?checksum=sha256:ab&x=1"),
            ("http://h/a.tgz?x=1".into(), Some("sha256:ab".into()), None)
        );
        assert_eq!(
            split_source("/tmp/f?archive=false"),
            ("/tmp/f".into(), None, Some("false".into()))
        );
        assert_eq!(split_source("plain"), ("plain".into(), None, None));
    }

    fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut t = tar::Builder::new(gz);
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, name, *data).unwrap();
        }
        t.into_inner().unwrap().finish().unwrap()
    }

    #[tokio::test]
    async fn local_archives_are_verified_and_unpacked() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("bundle.tar.gz");
        let bytes = tgz(&[("conf/app.conf", b"x=1\n")]);
        std::fs::File::create(&src)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        let sum = format!("sha256:{:x}", sha2::Sha256::digest(&bytes));
        let task_dir = dir.path().join("task");
        let task = Beneath::open(&task_dir).unwrap();
        let mut a = Artifact {
            source: src.display().to_string(),
            ..Default::default()
        };
        a.options.insert("checksum".into(), sum);
        fetch(&a, &task, &Vars::default(), true).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(task_dir.join("local/conf/app.conf")).unwrap(),
            "x=1\n"
        );

        a.options
            .insert("checksum".into(), format!("sha256:{}", "0".repeat(64)));
        let err = fetch(&a, &task, &Vars::default(), true).await.unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");

        let escape = Artifact {
            source: src.display().to_string(),
            destination: "../../etc".into(),
            ..Default::default()
        };
        let err = fetch(&escape, &task, &Vars::default(), true)
            .await
            .unwrap_err();
        let want = r#"Artifact: destination "../../etc" is outside the task directory"#;
        assert_eq!(err.to_string(), want);
        let host = fetch(&escape, &task, &Vars::default(), false).await;
        assert!(matches!(host, Err(AgentError::Sandbox { .. })), "{host:?}");
    }

    #[tokio::test]
    async fn http_artifacts_are_downloaded() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let found = String::from_utf8_lossy(&buf[..n]).starts_with("GET /tool ");
                let resp: &[u8] = if found {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
                } else {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                };
                let _ = s.write_all(resp).await;
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let task = Beneath::open(dir.path()).unwrap();
        let a = Artifact {
            source: format!("http://{addr}/tool"),
            destination: "local/bin/tool".into(),
            mode: "file".into(),
            ..Default::default()
        };
        fetch(&a, &task, &Vars::default(), false).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("local/bin/tool")).unwrap(),
            "hello"
        );
        let missing = Artifact {
            source: format!("http://{addr}/nope"),
            ..Default::default()
        };
        let err = fetch(&missing, &task, &Vars::default(), false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("404"), "{err}");
    }

    /// `https://` sources speak TLS (rustls): the server sees a TLS ClientHello, not a plain
    /// request, and a peer that is not a valid TLS server fails the download with an error.
    #[tokio::test]
    async fn https_artifacts_speak_tls() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 16];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let _ = tx.send(buf[..n].to_vec());
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let task = Beneath::open(dir.path()).unwrap();
        let a = Artifact {
            source: format!("https://localhost:{}/tool", addr.port()),
            destination: "local".into(),
            ..Default::default()
        };
        let err = fetch(&a, &task, &Vars::default(), false).await.unwrap_err();
        assert!(err.to_string().contains("download failed"), "{err}");
        let hello = rx.await.expect("the client connected");
        // 0x16 = TLS handshake record, 0x03 = TLS major version.
        assert_eq!(&hello[..2], &[0x16, 0x03], "{hello:?}");
    }
}
