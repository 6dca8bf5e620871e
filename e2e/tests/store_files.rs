//! The embedded store's files under faults, with the real `nctl`: a server refuses a data dir
//! whose database was lost (and says what to do); a server started again on an emptied data dir
//! makes a new cluster, and the agents of the old one keep their tasks running and say why; a
//! server on a full disk answers writes with 503 and still stops on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::*;

const DB_FILE: &str = "nomos-store.sqlite";
const ID_FILE: &str = "nomos-store.id";

/// A service job whose one task is a single long `sleep` (so its pid never changes).
fn sleep_job(id: &str) -> String {
    format!(
        r#"job "{id}" {{
  datacenters = ["*"]
  group "g" {{
    task "sleep" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["600"]
      }}
      resources {{
        cpu    = 10
        memory = 10
      }}
    }}
  }}
}}
"#
    )
}

/// Runs `nctl server` on `data_dir` and waits (at most 60 s) for it to exit; returns whether
/// it succeeded and what it printed on stderr.
fn server_exit(data_dir: &Path) -> (bool, String) {
    let mut child = Command::new(nctl_bin())
        .args(["server", "--data-dir"])
        .arg(data_dir)
        .args(["--http-addr", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nctl server");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nctl server kept running on a data dir whose database is lost");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.success(), stderr)
}

#[test]
fn a_server_refuses_a_data_dir_whose_database_is_missing_or_empty() {
    let mut c = Cluster::start_server("lostdb");
    c.interrupt();
    let db = c.data_dir.join(DB_FILE);
    assert!(db.exists() && c.data_dir.join(ID_FILE).exists());
    for (case, damage) in [
        (
            "emptied",
            Box::new(|p: &Path| std::fs::write(p, b"").unwrap()) as Box<dyn Fn(&Path)>,
        ),
        (
            "removed",
            Box::new(|p: &Path| std::fs::remove_file(p).unwrap()),
        ),
    ] {
        damage(&db);
        let (ok, stderr) = server_exit(&c.data_dir);
        assert!(
            !ok,
            "nctl server exits non-zero when its database was {case}: {stderr}"
        );
        assert!(
            stderr.contains("refusing to open the store")
                && stderr.contains(DB_FILE)
                && stderr.contains("restore")
                && stderr.contains("remove the data directory"),
            "the error names the file and what to do ({case}): {stderr}"
        );
    }
    assert!(!db.exists(), "a refused start creates no new database");
}

fn wait_for_log(path: &Path, needle: &str, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.matches(needle).count() >= count {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "the log never said {needle:?} {count} times:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_agent_keeps_its_task_when_its_server_comes_back_with_an_empty_store() {
    let mut c = Cluster::start_server("newcluster");
    let agent = c.start_agent("n1");
    c.wait_nodes_ready(&["n1"]);
    let file = c.write_file("keep.hcl", &sleep_job("keep"));
    c.ok(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    let running = c.running("keep");
    assert_eq!(running.len(), 1, "{running:?}");
    let id = running[0]["ID"].as_str().unwrap().to_string();
    let pids = pids_of_alloc(&id);
    assert!(!pids.is_empty(), "the task runs");

    c.kill9();
    for name in [
        DB_FILE.to_string(),
        format!("{DB_FILE}-wal"),
        ID_FILE.to_string(),
    ] {
        let _ = std::fs::remove_file(c.data_dir.join(name));
    }
    c.restart();
    // The agent says why, more than once (it keeps retrying), and leaves the task alone.
    let log = wait_for_log(&agent.log_path, "but this agent belongs to cluster", 4);
    assert!(
        log.contains("nctl agent purge"),
        "it says what to do:\n{log}"
    );
    assert_eq!(pids_of_alloc(&id), pids, "the task runs on, same pid");
    assert!(
        c.allocs("keep").is_empty(),
        "the new cluster has no allocation"
    );
    drop(agent);
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    _parent: tempfile::TempDir,
    mount: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let root = std::fs::read_to_string("/proc/self/status")
            .map(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")))
            .unwrap_or(false);
        assert!(
            root,
            "this test mounts a tmpfs and must run as root (CI does)"
        );
        let parent = tempfile::tempdir().unwrap();
        let mount = parent.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .status()
            .expect("running mount")
            .success();
        assert!(ok, "mounting a tmpfs on {}", mount.display());
        Tmpfs {
            _parent: parent,
            mount,
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

/// Fills the file system holding `dir` up to its last byte.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
}

/// `PUT /v1/var/<path>` with a 4 KiB item; returns the HTTP status and body.
fn put_var(addr: &str, path: &str) -> (u16, String) {
    let body = format!(r#"{{"Items":{{"blob":"{}"}}}}"#, "x".repeat(4096));
    let out = Command::new("curl")
        .args([
            "-s",
            "-X",
            "PUT",
            "-w",
            "\n%{http_code}",
            "--max-time",
            "30",
        ])
        .arg(format!("{addr}/v1/var/{path}"))
        .args(["-H", "Content-Type: application/json", "-d", &body])
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn a_server_on_a_full_disk_answers_writes_with_503_and_stops_on_sigterm() {
    let disk = Tmpfs::mount("32m");
    let data = disk.mount.join("data");
    let c = Cluster::start_custom("fulldisk", Mode::Server, |c| {
        vec![
            "server".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--http-addr".into(),
            c.http_addr.clone(),
        ]
    });
    let (code, body) = put_var(&c.addr, "before");
    assert_eq!(code, 200, "a write with room on disk: {body}");
    fill(&disk.mount);
    let mut refused = None;
    for i in 0..2000 {
        let (code, body) = put_var(&c.addr, &format!("v{i}"));
        if code != 200 {
            refused = Some((code, body));
            break;
        }
    }
    let (code, body) = refused.expect("writes were refused before 2000 × 4 KiB fitted on the disk");
    assert_eq!(code, 503, "a write on a full disk is answered 503: {body}");
    assert!(body.contains("database space exceeded"), "{body}");
    let reads = c.nctl(&["get", "jobs"]);
    assert!(reads.status.success(), "reads still answer: {reads:?}");
    let pid = pid_with_arg(&data.display().to_string()).expect("the server's pid");
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM {pid}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !exited(pid) {
        assert!(
            Instant::now() < deadline,
            "nctl server did not exit within 60 s of SIGTERM on a full disk; log:\n{}",
            c.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pid of the process one of whose arguments is `arg`.
fn pid_with_arg(arg: &str) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        cmdline
            .split(|b| *b == 0)
            .any(|a| a == arg.as_bytes())
            .then_some(pid)
    })
}

/// Whether `pid` has exited (gone, or a zombie its parent has not reaped yet).
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}
