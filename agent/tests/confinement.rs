//! Templates, artifacts and names never take the agent (root) outside the task directory:
//! absolute and `..` sources and destinations, links planted in the task directory, `file://`
//! and host-path artifacts, archive entries with `..`, and task names or allocation ids that are
//! not one path component are refused with a task event before the task starts, and nothing
//! outside is read or written. Relative sources, http artifacts and (with `allow_host_paths`)
//! host paths keep working.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use nomos_api::{AllocStatus, Artifact, ClientStatus, JobType, Task, TaskEvent, Template};
use nomos_store::{EmbeddedStore, Store};

fn store() -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::in_memory())
}

/// A test's world: a temp dir holding the agent's data dir (`n1`) and host files beside it.
struct World {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    agent: Option<RunningAgent>,
}

impl World {
    fn start(allow_host_paths: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = store();
        let mut cfg = test_config("n1", dir.path());
        cfg.allow_host_paths = allow_host_paths;
        let agent = Some(RunningAgent::start(cfg, store.clone()));
        World { dir, store, agent }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A host file outside the data dir, with `content`.
    fn host_file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    /// The directory the agent gives task `task` of allocation `alloc`.
    fn task_dir(&self, alloc: &str, task: &str) -> PathBuf {
        self.path("n1/allocs").join(alloc).join(task)
    }

    /// Runs `task` as a batch job in allocation `id` and waits until it completes or fails.
    async fn run(&self, id: &str, task: Task) -> AllocStatus {
        let job = job(id, JobType::Batch, vec![task]);
        place(&*self.store, &alloc(id, "n1", &job, 0), &job).await;
        status_where(&self.store, "n1", id, "finished", |s| {
            matches!(
                s.client_status,
                ClientStatus::Complete | ClientStatus::Failed
            )
        })
        .await
    }

    fn stdout(&self, alloc: &str, task: &str) -> String {
        stdout_of(&self.path("n1"), alloc, task)
    }

    /// Runs `task` (named `t`) in allocation `id`: it completes and prints `stdout`.
    async fn prints(&self, id: &str, task: Task, stdout: &str) {
        let s = self.run(id, task).await;
        assert_eq!(s.client_status, ClientStatus::Complete, "{s:?}");
        assert_eq!(self.stdout(id, "t"), stdout);
    }

    async fn stop(mut self) {
        if let Some(a) = self.agent.take() {
            a.shutdown().await;
        }
    }
}

/// The task failed before it started, with an event of `kind` whose message starts with
/// `message`.
fn refused(s: &AllocStatus, task: &str, kind: &str, message: &str) -> TaskEvent {
    assert_eq!(s.client_status, ClientStatus::Failed, "{s:?}");
    let events = &s.task_states[task].events;
    assert!(
        !events.iter().any(|e| e.event_type == "Started"),
        "{events:?}"
    );
    let e = events
        .iter()
        .find(|e| e.event_type == kind)
        .unwrap_or_else(|| panic!("no {kind:?} event in {events:?}"));
    assert!(e.message.starts_with(message), "{}", e.message);
    e.clone()
}

fn cat_task(file: &str) -> Task {
    raw_task("t", "cat", &[file])
}

fn template(source: &str, data: &str, destination: &str) -> Template {
    Template {
        source: source.into(),
        data: data.into(),
        destination: destination.into(),
        ..Default::default()
    }
}

fn artifact(source: &str, destination: &str) -> Artifact {
    Artifact {
        source: source.into(),
        destination: destination.into(),
        ..Default::default()
    }
}

/// Serves `files` (path → body) over plain HTTP on 127.0.0.1; 404 for anything else.
async fn serve(files: Vec<(&'static str, Vec<u8>)>) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = req.split(' ').nth(1).unwrap_or_default().to_string();
            let body = files.iter().find(|(p, _)| *p == path).map(|(_, b)| b);
            let head = match body {
                Some(b) => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", b.len()),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n".into(),
            };
            let _ = s
                .write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
                .await;
            let _ = s
                .write_all(body.map(Vec::as_slice).unwrap_or_default())
                .await;
        }
    });
    addr
}

/// A tar archive of one regular file whose header names `path` as written (`tar::Builder`
/// refuses `..`, which is the point here).
fn tar_with_entry(path: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(512 + data.len().div_ceil(512) * 512 + 1024, 0);
    out
}

#[tokio::test]
async fn a_template_with_an_absolute_source_is_refused() {
    let w = World::start(false);
    let secret = w.host_file("secret.txt", "SECRET");
    let mut t = cat_task("local/out.txt");
    let src = secret.display().to_string();
    t.templates.push(template(&src, "", "local/out.txt"));
    let s = w.run("abs-src", t).await;
    let want = format!("Template: source {src:?} is outside the task directory");
    refused(&s, "t", "Setup Failure", &want);
    assert!(!w.task_dir("abs-src", "t").join("local/out.txt").exists());
    w.stop().await;
}

#[tokio::test]
async fn a_template_source_leaving_the_task_dir_with_dotdot_is_refused() {
    let w = World::start(false);
    w.host_file("secret.txt", "SECRET");
    // task dir = <tmp>/n1/allocs/<alloc>/t: four levels up is <tmp>.
    let src = "../../../../secret.txt";
    let mut t = cat_task("local/out.txt");
    t.templates.push(template(src, "", "local/out.txt"));
    let s = w.run("dotdot-src", t).await;
    let want = format!("Template: source {src:?} is outside the task directory");
    refused(&s, "t", "Setup Failure", &want);
    assert!(!w.stdout("dotdot-src", "t").contains("SECRET"));
    w.stop().await;
}

#[tokio::test]
async fn a_template_destination_leaving_the_task_dir_is_refused() {
    let w = World::start(false);
    let dest = "../../../../escaped.txt";
    let mut t = cat_task("local/out.txt");
    t.templates.push(template("", "pwned", dest));
    let s = w.run("dotdot-dest", t).await;
    let want = format!("Template: destination {dest:?} is outside the task directory");
    refused(&s, "t", "Setup Failure", &want);
    assert!(!w.path("escaped.txt").exists());
    w.stop().await;
}

/// What a task running as `nobody` could do to its own directory before a restart: put a link
/// where the agent renders a template. The agent (root) must not write through it.
#[tokio::test]
async fn a_link_planted_in_the_task_dir_is_not_written_through_by_a_template() {
    let w = World::start(false);
    let victim = w.host_file("victim", "keep");
    let local = w.task_dir("planted", "t").join("local");
    std::fs::create_dir_all(&local).unwrap();
    std::os::unix::fs::symlink(&victim, local.join("out")).unwrap();
    let mut t = cat_task("local/out");
    t.templates.push(template("", "pwned", "local/out"));
    let s = w.run("planted", t).await;
    let e = refused(
        &s,
        "t",
        "Setup Failure",
        "Template: destination \"local/out\": ",
    );
    assert!(e.message.contains("symbolic link"), "{}", e.message);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    w.stop().await;
}

/// The same with a directory link where an artifact unpacks.
#[tokio::test]
async fn a_link_planted_in_the_task_dir_is_not_unpacked_through_by_an_artifact() {
    let w = World::start(false);
    let victim_dir = w.path("victim-dir");
    std::fs::create_dir_all(&victim_dir).unwrap();
    let local = w.task_dir("planted-art", "t").join("local");
    std::fs::create_dir_all(&local).unwrap();
    std::os::unix::fs::symlink(&victim_dir, local.join("dir")).unwrap();
    let addr = serve(vec![("/a.tar", tar_with_entry("pwned.txt", b"pwned"))]).await;
    let mut t = cat_task("local/dir/pwned.txt");
    t.artifacts
        .push(artifact(&format!("http://{addr}/a.tar"), "local/dir"));
    let s = w.run("planted-art", t).await;
    let e = refused(&s, "t", "Failed Artifact Download", "Artifact: ");
    assert!(e.message.contains("symbolic link"), "{}", e.message);
    assert!(!victim_dir.join("pwned.txt").exists());
    w.stop().await;
}

/// A host file given as an artifact's source, spelled by `source`, is refused and not fetched.
async fn host_artifact_is_refused(id: &str, source: impl Fn(&Path) -> String) {
    let w = World::start(false);
    let src = source(&w.host_file("secret.txt", "SECRET"));
    let mut t = cat_task("local/secret.txt");
    t.artifacts.push(artifact(&src, ""));
    let s = w.run(id, t).await;
    let want = format!("Artifact: source {src:?} is outside the task directory");
    refused(&s, "t", "Failed Artifact Download", &want);
    assert!(!w.task_dir(id, "t").join("local/secret.txt").exists());
    w.stop().await;
}

#[tokio::test]
async fn a_file_url_artifact_is_refused() {
    host_artifact_is_refused("file-url", |p| format!("file://{}", p.display())).await;
}

#[tokio::test]
async fn an_absolute_host_path_artifact_is_refused() {
    host_artifact_is_refused("host-path", |p| p.display().to_string()).await;
}

#[tokio::test]
async fn an_archive_entry_with_dotdot_is_refused() {
    let w = World::start(false);
    let addr = serve(vec![(
        "/evil.tar",
        tar_with_entry("../../escaped.txt", b"x"),
    )])
    .await;
    let mut t = cat_task("local/escaped.txt");
    t.artifacts
        .push(artifact(&format!("http://{addr}/evil.tar"), "local/"));
    let s = w.run("evil-tar", t).await;
    let e = refused(&s, "t", "Failed Artifact Download", "Artifact: source ");
    assert!(
        e.message.contains("outside the destination"),
        "{}",
        e.message
    );
    assert!(!w.path("n1/allocs/evil-tar/escaped.txt").exists());
    w.stop().await;
}

/// A name becomes a directory and log files: `../x` and an absolute path are refused before
/// anything is made of them (the API refuses such names too; the agent does not rely on it).
#[tokio::test]
async fn a_task_named_dotdot_x_or_an_absolute_path_is_refused() {
    let w = World::start(false);
    let abs = w.path("abs-task").display().to_string();
    for (id, name) in [("bad-name", "../x"), ("abs-name", abs.as_str())] {
        let t = raw_task(name, "true", &[]);
        let s = w.run(id, t).await;
        let want = format!("Task: name {name:?} is not a single path component");
        refused(&s, name, "Failed Validation", &want);
    }
    assert!(!w.path("n1/allocs/x").exists());
    assert!(!w.path("n1/allocs/bad-name/alloc/x.stdout").exists());
    assert!(!w.path("abs-task").exists());
    w.stop().await;
}

#[tokio::test]
async fn an_allocation_id_that_is_not_one_path_component_is_refused() {
    let w = World::start(false);
    let job = job("j", JobType::Batch, vec![raw_task("t", "true", &[])]);
    let id = "../escape";
    place(&*w.store, &alloc(id, "n1", &job, 0), &job).await;
    let s = status_where(&w.store, "n1", id, "failed", |s| {
        s.client_status == ClientStatus::Failed
    })
    .await;
    let want = "cannot start: Allocation: id \"../escape\" is not a single path component";
    assert!(s.client_description.starts_with(want), "{s:?}");
    assert!(!w.path("n1/escape").exists());
    assert!(!w.path("n1/state/escape.json").exists());
    w.stop().await;
}

#[tokio::test]
async fn a_relative_template_source_inside_the_task_dir_renders() {
    let w = World::start(false);
    let mut t = cat_task("local/b.txt");
    t.templates
        .push(template("", "task $${NOMAD_TASK_NAME}\n", "local/a.tpl"));
    t.templates
        .push(template("./local/a.tpl", "", "/local/b.txt"));
    w.prints("rel-src", t, "task t\n").await;
    w.stop().await;
}

#[tokio::test]
async fn an_http_artifact_from_127_0_0_1_is_unpacked_into_the_task_dir() {
    let w = World::start(false);
    let addr = serve(vec![("/ok.tar", tar_with_entry("conf/app.conf", b"x=1\n"))]).await;
    let mut t = cat_task("local/conf/app.conf");
    t.artifacts
        .push(artifact(&format!("http://{addr}/ok.tar"), ""));
    w.prints("http-art", t, "x=1\n").await;
    w.stop().await;
}

#[tokio::test]
async fn host_paths_are_read_when_allow_host_paths_is_on() {
    let w = World::start(true);
    let src = w.host_file("host.tpl", "from the host\n");
    let mut t = cat_task("local/out.txt");
    t.templates
        .push(template(&src.display().to_string(), "", "local/out.txt"));
    w.prints("host-ok", t, "from the host\n").await;
    assert!(Path::new(&src).exists());
    w.stop().await;
}

#[tokio::test]
async fn go_templates_render_and_an_env_template_sets_the_tasks_environment() {
    let w = World::start(false);
    let mut t = raw_task(
        "t",
        "/bin/sh",
        &["-c", "echo \"$DB_USER:$DB_PASS\"; cat local/page"],
    );
    let mut env = template(
        "",
        "DB_USER={{ env \"NOMAD_TASK_NAME\" | toUpper }}\nDB_PASS=\"a b\"\n",
        "secrets/app.env",
    );
    env.env = true;
    t.templates.push(env);
    t.templates.push(template(
        "",
        "{{ range $i, $x := split \",\" \"a,b\" }}{{ $i }}={{ $x }} {{ end }}",
        "local/page",
    ));
    w.prints("env-tpl", t, "T:a b\n0=a 1=b ").await;
    w.stop().await;
}

#[tokio::test]
async fn an_env_template_that_is_not_key_value_lines_fails_the_task() {
    let w = World::start(false);
    let mut t = cat_task("local/x");
    let mut env = template("", "PASSWORD: hunter2\n", "secrets/app.env");
    env.env = true;
    t.templates.push(env);
    let s = w.run("env-bad", t).await;
    assert_eq!(s.client_status, ClientStatus::Failed, "{s:?}");
    let events = &s.task_states["t"].events;
    assert!(
        events.iter().any(|e| e.event_type == "Task hook failed"
            && e.message.contains("line 1: expected KEY=VALUE")),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e.event_type == "Started"),
        "{events:?}"
    );
    w.stop().await;
}
