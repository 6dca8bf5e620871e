//! An allocation's files, logs and resource usage through Nomad's client API
//! (`/v1/client/fs/{logs,stream,ls,stat,cat,readat}/{alloc}`, `/v1/client/allocation/{alloc}/stats`,
//! `/v1/client/stats`), read from the node's real agent endpoint over HTTP, and from this
//! process's files when it holds the node's (as under `nctl dev`): frames and `plain`,
//! offsets from the start or the end, following, and the refusals (paths out of the
//! allocation directory, links, secrets, bad parameters, missing objects).

mod acl_support;
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::{agent_over, seed_alloc_on_n1, TestServer};
use nomos_api::allocfs::AllocFileInfo;
use nomos_server::nomad::fs_source::AllocFiles;
use nomos_server::ServerError;
use serde_json::Value;

const ALLOC: &str = "aaaa1111-0000";

/// An agent data directory with allocation `ALLOC`: task `server`'s logs, a file in its
/// `local/`, a secret, and a link out to the host.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("allocs").join(ALLOC);
    for d in ["alloc/logs", "server/local", "server/secrets"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("alloc/logs/server.stdout"), "hello\nworld\n").unwrap();
    std::fs::write(root.join("alloc/logs/server.stderr"), "oops\n").unwrap();
    std::fs::write(root.join("server/local/app.conf"), "port = 8080\n").unwrap();
    std::fs::write(root.join("server/secrets/token"), "s3cret").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("server/local/host")).unwrap();
    dir
}

fn alloc_root(data: &Path) -> PathBuf {
    data.join("allocs").join(ALLOC)
}

/// A server, an agent over a fresh data directory, and the allocation on its node.
async fn through_agent() -> (TestServer, tempfile::TempDir) {
    let data = data_dir();
    let srv = TestServer::start().await;
    seed_alloc_on_n1(
        &srv,
        &agent_over(data.path()).await,
        ALLOC,
        "server",
        "running",
    )
    .await;
    (srv, data)
}

async fn text(srv: &TestServer, path: &str) -> (u16, String) {
    let resp = srv.client.get(srv.url(path)).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The frames of a framed answer, with their data decoded.
fn frames(body: &str) -> Vec<(Value, String)> {
    body.lines()
        .map(|l| {
            let f: Value = serde_json::from_str(l).expect("a frame is JSON");
            let data = base64::engine::general_purpose::STANDARD
                .decode(f["Data"].as_str().unwrap_or(""))
                .unwrap();
            (f, String::from_utf8(data).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn logs_come_framed_or_plain_from_the_start_or_the_end() {
    let (srv, _data) = through_agent().await;
    let (code, body) = text(&srv, &format!("/v1/client/fs/logs/{ALLOC}?task=server")).await;
    assert_eq!(code, 200, "{body}");
    let got = frames(&body);
    assert_eq!(got.len(), 1, "{body}");
    assert_eq!(got[0].0["File"], "alloc/logs/server.stdout");
    assert_eq!(got[0].0["Offset"], 12);
    assert_eq!(got[0].1, "hello\nworld\n");

    for (query, want) in [
        ("task=server&plain=true", "hello\nworld\n"),
        ("plain=true", "hello\nworld\n"),
        ("task=server&plain=true&offset=6", "world\n"),
        ("task=server&plain=true&origin=end&offset=6", "world\n"),
        ("task=server&plain=true&type=stderr", "oops\n"),
        ("task=server&plain=true&offset=99", ""),
    ] {
        let (code, body) = text(&srv, &format!("/v1/client/fs/logs/aaaa1111?{query}")).await;
        assert_eq!((code, body.as_str()), (200, want), "{query}");
    }
    for (query, want) in [
        ("task=server&type=stdin", 400),
        ("task=server&offset=-1", 400),
        ("task=server&origin=middle", 400),
        ("task=nope", 404),
    ] {
        let (code, body) = text(&srv, &format!("/v1/client/fs/logs/{ALLOC}?{query}")).await;
        assert_eq!(code, want, "{query}: {body}");
    }
    let (code, _) = text(&srv, "/v1/client/fs/logs/ffff?task=server").await;
    assert_eq!(code, 404);
    srv.stop().await;
}

#[tokio::test]
async fn followed_logs_carry_what_the_task_writes_later() {
    let (srv, data) = through_agent().await;
    let mut resp = srv
        .client
        .get(srv.url(&format!(
            "/v1/client/fs/logs/{ALLOC}?task=server&follow=true&plain=true"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let first = resp.chunk().await.unwrap().expect("the log so far");
    assert_eq!(&first[..], b"hello\nworld\n");
    let log = alloc_root(data.path()).join("alloc/logs/server.stdout");
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    std::io::Write::write_all(&mut f, b"later\n").unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .expect("the new line within 5s")
        .unwrap()
        .expect("stream open");
    assert_eq!(&next[..], b"later\n");
    srv.stop().await;
}

#[tokio::test]
async fn files_are_listed_stated_and_read() {
    let (srv, _data) = through_agent().await;
    let (code, root) = srv.get(&format!("/v1/client/fs/ls/{ALLOC}")).await;
    assert_eq!(code, 200, "{root}");
    let names: Vec<&str> = root
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["Name"].as_str())
        .collect();
    assert_eq!(names, ["alloc", "server"]);
    assert_eq!(root[0]["IsDir"], true);
    assert!(root[0]["FileMode"].as_str().unwrap().starts_with('d'));

    let (code, st) = srv
        .get(&format!(
            "/v1/client/fs/stat/{ALLOC}?path=/server/local/app.conf"
        ))
        .await;
    assert_eq!(code, 200, "{st}");
    let info: AllocFileInfo = serde_json::from_value(st).unwrap();
    assert_eq!(
        (info.name.as_str(), info.size, info.is_dir),
        ("app.conf", 12, false)
    );
    assert!(info.mod_time.ends_with('Z'), "{}", info.mod_time);

    let (code, body) = text(
        &srv,
        &format!("/v1/client/fs/cat/{ALLOC}?path=server/local/app.conf"),
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "port = 8080\n"));
    let (code, body) = text(
        &srv,
        &format!("/v1/client/fs/readat/{ALLOC}?path=server/local/app.conf&offset=7&limit=4"),
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "8080"));
    let (code, body) = text(
        &srv,
        &format!("/v1/client/fs/stream/{ALLOC}?path=alloc/logs/server.stderr&follow=false"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let got = frames(&body);
    assert_eq!(got[0].0["File"], "alloc/logs/server.stderr");
    assert_eq!(got[0].1, "oops\n");
    srv.stop().await;
}

#[tokio::test]
async fn paths_out_of_the_allocation_directory_links_and_secrets_are_refused() {
    let (srv, _data) = through_agent().await;
    for (path, want) in [
        ("/v1/client/fs/cat/{A}?path=../../../etc/passwd", 400),
        ("/v1/client/fs/ls/{A}?path=/../", 400),
        ("/v1/client/fs/cat/{A}?path=server/local/host", 400),
        ("/v1/client/fs/stat/{A}?path=server/local/host/x", 400),
        ("/v1/client/fs/cat/{A}?path=server/secrets/token", 400),
        ("/v1/client/fs/ls/{A}?path=server/secrets", 400),
        ("/v1/client/fs/cat/{A}?path=server", 400),
        (
            "/v1/client/fs/readat/{A}?path=server/local/app.conf&limit=99999999999",
            400,
        ),
        (
            "/v1/client/fs/readat/{A}?path=server/local/app.conf&offset=x",
            400,
        ),
        ("/v1/client/fs/cat/{A}?path=server/local/missing", 404),
        ("/v1/client/fs/ls/ffff?path=/", 404),
    ] {
        let path = path.replace("{A}", ALLOC);
        let (code, body) = text(&srv, &path).await;
        assert_eq!(code, want, "{path}: {body}");
        assert!(
            !body.contains("s3cret") && !body.contains("root:"),
            "{path}: {body}"
        );
    }
    let (_, listing) = srv
        .get(&format!("/v1/client/fs/ls/{ALLOC}?path=server/local"))
        .await;
    let host = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["Name"] == "host")
        .unwrap();
    assert!(
        host["FileMode"].as_str().unwrap().starts_with('L'),
        "{host}"
    );
    srv.stop().await;
}

/// The files of node `n1` held by this process, read as `nctl dev` reads them.
struct Held(PathBuf);

fn refusal(e: nomos_agent::allocfs::FsError) -> ServerError {
    match e {
        nomos_agent::allocfs::FsError::NotFound(_) => ServerError::NotFound(e.to_string()),
        _ => ServerError::BadRequest(e.to_string()),
    }
}

impl AllocFiles for Held {
    fn holds(&self, node: &str) -> bool {
        node == "n1"
    }
    fn read_log(
        &self,
        alloc: &str,
        task: &str,
        stderr: bool,
        offset: u64,
        limit: usize,
    ) -> Result<(Vec<u8>, u64), ServerError> {
        let stream = if stderr {
            nomos_agent::logs::LogStream::Stderr
        } else {
            nomos_agent::logs::LogStream::Stdout
        };
        let c = nomos_agent::logs::read_task_logs(&self.0, alloc, task, stream, offset, limit)
            .map_err(|e| ServerError::BadRequest(e.to_string()))?;
        Ok((c.data, c.next_offset))
    }
    fn list(&self, alloc: &str, path: &str) -> Result<Vec<AllocFileInfo>, ServerError> {
        nomos_agent::allocfs::list(&self.0.join("allocs").join(alloc), alloc, path).map_err(refusal)
    }
    fn stat(&self, alloc: &str, path: &str) -> Result<AllocFileInfo, ServerError> {
        nomos_agent::allocfs::stat(&self.0.join("allocs").join(alloc), alloc, path).map_err(refusal)
    }
    fn read_at(
        &self,
        alloc: &str,
        path: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<u8>, ServerError> {
        nomos_agent::allocfs::read_at(
            &self.0.join("allocs").join(alloc),
            alloc,
            path,
            offset,
            limit,
        )
        .map_err(refusal)
    }
}

#[tokio::test]
async fn files_held_by_this_process_are_read_without_an_agent() {
    let data = data_dir();
    let held = Held(data.path().to_path_buf());
    let srv = TestServer::start_with(
        |mut s| {
            s.files = Some(Arc::new(held));
            s
        },
        nomos_server::DEFAULT_BODY_LIMIT,
    )
    .await;
    // The node serves no HTTP: every read is local.
    seed_alloc_on_n1(&srv, "", ALLOC, "server", "running").await;
    let (code, body) = text(
        &srv,
        &format!("/v1/client/fs/logs/{ALLOC}?task=server&plain=true"),
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "hello\nworld\n"));
    let (code, body) = text(
        &srv,
        &format!("/v1/client/fs/cat/{ALLOC}?path=server/local/app.conf"),
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "port = 8080\n"));
    let (code, _) = text(
        &srv,
        &format!("/v1/client/fs/cat/{ALLOC}?path=server/secrets/token"),
    )
    .await;
    assert_eq!(code, 400);
    srv.stop().await;
}

#[tokio::test]
async fn usage_is_asked_of_the_allocations_agent() {
    let (srv, _data) = through_agent().await;
    let (code, host) = srv.get("/v1/client/stats").await;
    assert_eq!(code, 200, "{host}");
    assert!(host["Memory"]["Total"].as_u64().unwrap() > 0, "{host}");
    assert!(!host["CPU"].as_array().unwrap().is_empty(), "{host}");
    assert!(host["DiskStats"][0]["Size"].as_u64().unwrap() > 0, "{host}");
    assert!(host["Uptime"].as_u64().is_some() && host["Timestamp"].as_i64().unwrap() > 0);
    let (code, _) = srv.get("/v1/client/stats?node_id=n1-0000").await;
    assert_eq!(code, 200);
    let (code, _) = srv.get("/v1/client/stats?node_id=nope").await;
    assert_eq!(code, 404);
    // The agent runs no task of the allocation (it was seeded, not started).
    let (code, body) = srv
        .get(&format!("/v1/client/allocation/{ALLOC}/stats"))
        .await;
    assert_eq!(code, 404, "{body}");
    let (code, _) = srv.get("/v1/client/allocation/ffff/stats").await;
    assert_eq!(code, 404);
    srv.stop().await;
}

#[tokio::test]
async fn a_node_without_an_http_address_says_why_its_files_cannot_be_read() {
    let data = data_dir();
    let srv = TestServer::start().await;
    seed_alloc_on_n1(&srv, "", ALLOC, "server", "running").await;
    let (code, body) = srv.get(&format!("/v1/client/fs/ls/{ALLOC}")).await;
    assert_eq!(code, 502, "{body}");
    assert!(
        body.to_string().contains("registered no HTTP address"),
        "{body}"
    );
    drop(data);
    srv.stop().await;
}

#[tokio::test]
async fn logs_need_read_logs_and_files_need_read_fs_in_the_allocations_namespace() {
    let data = data_dir();
    let srv = acl_support::acl_server().await;
    let root = acl_support::bootstrap(&srv).await;
    seed_alloc_on_n1(
        &srv,
        &agent_over(data.path()).await,
        ALLOC,
        "server",
        "running",
    )
    .await;
    for (name, caps) in [
        ("logs", "read-logs"),
        ("fs", "read-fs"),
        ("jobs", "read-job"),
    ] {
        let rules = format!("namespace \"default\" {{\n  capabilities = [\"{caps}\"]\n}}");
        acl_support::policy(&srv, &root, name, &rules).await;
    }
    let logs = format!("/v1/client/fs/logs/{ALLOC}?task=server&plain=true");
    let ls = format!("/v1/client/fs/ls/{ALLOC}");
    let stats = format!("/v1/client/allocation/{ALLOC}/stats");
    for (policy, path, want) in [
        ("logs", &logs, 200),
        ("logs", &ls, 403),
        ("fs", &ls, 200),
        ("fs", &logs, 403),
        ("jobs", &ls, 403),
        ("jobs", &logs, 403),
        // Allowed; the agent runs no task of the seeded allocation.
        ("jobs", &stats, 404),
        ("fs", &stats, 403),
    ] {
        let (_, secret) = acl_support::token(&srv, &root, &[policy]).await;
        let (code, body) = acl_support::call(&srv, "GET", path, Some(&secret), None).await;
        assert_eq!(code, want, "{policy} {path}: {body}");
    }
    srv.stop().await;
}
