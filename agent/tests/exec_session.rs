//! `Driver::exec_session` for the process drivers against real processes (`nctl alloc exec`'s
//! agent side): with pipes, stdin reaches the command, stdout and stderr come apart and the
//! exit code comes last; with a TTY the command has a pseudo-terminal as its controlling
//! terminal, resized on request; dropping the input kills the command and what it started;
//! inside an `exec` task the command sees the task's root and runs as its user; a stopped
//! task and a driver without exec say so.

use std::path::Path;
use std::time::Duration;

use nomos_agent::driver::exec::{detect_support, ExecDriver};
use nomos_agent::driver::raw_exec::RawExecDriver;
use nomos_agent::driver::{Driver, ExecSession, SessionRequest, TaskHandle, TaskSpec};
use nomos_agent::logs::{read_logs, LogStream};
use nomos_agent::AgentError;
use nomos_api::exec::{ExecEvent, ExecInput};

fn spec(dir: &Path, alloc: &str) -> TaskSpec {
    let mut config = indexmap::IndexMap::new();
    config.insert("command".to_string(), serde_json::json!("sh"));
    config.insert(
        "args".to_string(),
        serde_json::json!(["-c", "echo ready; exec sleep 300"]),
    );
    let alloc_dir = dir.join(alloc);
    TaskSpec {
        alloc_id: alloc.into(),
        task: "t".into(),
        config,
        env: [("GREETING".to_string(), "hello from the task".to_string())].into(),
        task_dir: alloc_dir.join("t"),
        alloc_dir: alloc_dir.join("alloc"),
        log_dir: alloc_dir.join("alloc/logs"),
        resources: nomos_api::Resources {
            memory_mb: 64,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Starts a task and returns once it printed `ready`.
async fn running(driver: &dyn Driver, spec: &TaskSpec) -> TaskHandle {
    let h = driver.start(spec).await.expect("task starts");
    for _ in 0..200 {
        let out = read_logs(&h.log_dir, &h.task, LogStream::Stdout, 0, 1 << 16)
            .map(|c| c.data)
            .unwrap_or_default();
        if String::from_utf8_lossy(&out).contains("ready") {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task never printed ready");
}

fn request(script: &str, tty: bool) -> SessionRequest {
    SessionRequest {
        command: vec!["sh".into(), "-c".into(), script.into()],
        tty,
    }
}

/// What a session printed on stdout and stderr, and its exit code.
#[derive(Debug, Default)]
struct Outcome {
    stdout: String,
    stderr: String,
    exit_code: Option<i32>,
}

/// Reads a session's events until it exits (at most 20 s).
async fn outcome(session: &mut ExecSession) -> Outcome {
    let mut out = Outcome::default();
    let read = async {
        while let Some(event) = session.events.recv().await {
            match event {
                ExecEvent::Stdout(d) => out.stdout.push_str(&String::from_utf8_lossy(&d)),
                ExecEvent::Stderr(d) => out.stderr.push_str(&String::from_utf8_lossy(&d)),
                ExecEvent::Exited { exit_code } => {
                    out.exit_code = Some(exit_code);
                    break;
                }
                ExecEvent::Heartbeat => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the session ends");
    out
}

async fn start(driver: &dyn Driver, h: &TaskHandle, script: &str, tty: bool) -> ExecSession {
    driver
        .exec_session(h, &request(script, tty))
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

fn nobody() -> u32 {
    nix::unistd::User::from_name("nobody")
        .unwrap()
        .unwrap()
        .uid
        .as_raw()
}

/// Whether a process whose command line holds `needle` runs on the host.
fn host_runs(needle: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        std::fs::read(p.path().join("cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn a_raw_exec_session_streams_stdin_stdout_stderr_and_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = RawExecDriver;
    let h = running(&d, &spec(dir.path(), "s1")).await;

    let mut s = start(&d, &h, "echo \"$GREETING\"; echo oops >&2; exit 3", false).await;
    let out = outcome(&mut s).await;
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str(), out.exit_code),
        ("hello from the task\n", "oops\n", Some(3))
    );

    let mut s = start(&d, &h, "cat", false).await;
    s.input
        .send(ExecInput::Stdin(b"hello\n".to_vec()))
        .await
        .unwrap();
    s.input.send(ExecInput::StdinClose).await.unwrap();
    let out = outcome(&mut s).await;
    assert_eq!((out.stdout.as_str(), out.exit_code), ("hello\n", Some(0)));

    let mut s = start(&d, &h, "kill -9 $$", false).await;
    assert_eq!(outcome(&mut s).await.exit_code, Some(137), "128 + SIGKILL");
    d.stop(&h, "SIGKILL", Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn a_tty_session_has_a_resizable_controlling_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = RawExecDriver;
    let h = running(&d, &spec(dir.path(), "s2")).await;
    // `read` waits for the resize to have happened before the size is printed.
    let mut s = start(&d, &h, "tty; read go; stty size; exit 5", true).await;
    s.input
        .send(ExecInput::TtySize {
            height: 33,
            width: 77,
        })
        .await
        .unwrap();
    s.input
        .send(ExecInput::Stdin(b"go\n".to_vec()))
        .await
        .unwrap();
    let out = outcome(&mut s).await;
    assert_eq!(out.exit_code, Some(5), "{out:?}");
    // The terminal echoes what was typed, so `go` may come first.
    assert!(
        out.stdout.contains("\r\n/dev/pts/") || out.stdout.starts_with("/dev/pts/"),
        "{out:?}"
    );
    assert!(out.stdout.contains("33 77"), "{out:?}");
    assert_eq!(out.stderr, "", "a terminal has one output stream");
    d.stop(&h, "SIGKILL", Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn dropping_a_sessions_input_kills_the_command_and_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let d = RawExecDriver;
    let h = running(&d, &spec(dir.path(), "s3")).await;
    for tty in [false, true] {
        // Distinct per case and from other tests' sleeps (raw_exec sees the host's).
        let marker = if tty { "sleep 4243" } else { "sleep 4242" };
        let mut s = start(&d, &h, &format!("{marker} & echo started; wait"), tty).await;
        match s.events.recv().await {
            Some(ExecEvent::Stdout(d)) => assert!(String::from_utf8_lossy(&d).contains("started")),
            other => panic!("expected output, got {other:?}"),
        }
        assert!(host_runs(marker));
        drop(s.input);
        tokio::time::timeout(Duration::from_secs(10), async {
            while s.events.recv().await.is_some() {}
        })
        .await
        .expect("the session ends once its input is gone");
        let mut gone = false;
        for _ in 0..100 {
            if !host_runs(marker) {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(gone, "{marker} outlived its session (tty {tty})");
    }
    d.stop(&h, "SIGKILL", Duration::from_secs(1)).await.unwrap();
    d.wait(&h).await.unwrap();
    let err = d
        .exec_session(&h, &request("true", false))
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::TaskNotRunning { .. }), "{err}");
}

#[tokio::test]
async fn an_exec_session_sees_the_tasks_root_and_runs_as_its_user() {
    let support = detect_support();
    if let Some(why) = support.refusal() {
        panic!("this test needs exec isolation (cgroups and pid namespaces, as root): {why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("host-only-marker");
    std::fs::write(&marker, "host").unwrap();
    let d = ExecDriver::new(1000);
    let alloc = format!("xs{}", std::process::id());
    let mut spec = spec(dir.path(), &alloc);
    spec.user = "nobody".into();
    let h = running(&d, &spec).await;
    let script = format!(
        "id -u; ls -1 /; if [ -e {m} ]; then echo marker-visible; else echo marker-hidden; fi",
        m = marker.display()
    );
    for tty in [false, true] {
        let mut s = start(&d, &h, &script, tty).await;
        let out = outcome(&mut s).await;
        assert_eq!(out.exit_code, Some(0), "{out:?}");
        let text = out.stdout.replace("\r\n", "\n");
        assert!(text.starts_with(&format!("{}\n", nobody())), "{out:?}");
        assert!(text.contains("marker-hidden"), "{out:?}");
        // The chroot's view: system binds and the task's own directories, nothing else of
        // the host's `/`.
        let chroot = [
            "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr",
            "alloc", "local", "secrets",
        ];
        let root: Vec<&str> = text
            .lines()
            .skip(1)
            .filter(|l| !l.starts_with("marker-"))
            .collect();
        assert!(root.contains(&"usr"), "{out:?}");
        assert!(root.iter().all(|e| chroot.contains(e)), "{out:?}");
    }
    d.stop(&h, "SIGKILL", Duration::from_secs(1)).await.unwrap();
    d.wait(&h).await.unwrap();
    let _ = d.destroy(&h).await;
}

/// A driver that has no exec (the trait's default) answers with a clear error.
#[tokio::test]
async fn a_driver_without_exec_says_so() {
    struct NoExec;
    #[async_trait::async_trait]
    impl Driver for NoExec {
        fn name(&self) -> &'static str {
            "qemu"
        }
        async fn fingerprint(&self) -> nomos_api::DriverInfo {
            Default::default()
        }
        async fn start(&self, _: &TaskSpec) -> Result<TaskHandle, AgentError> {
            unimplemented!()
        }
        async fn recover(&self, _: &TaskHandle) -> Result<bool, AgentError> {
            Ok(true)
        }
        async fn wait(
            &self,
            _: &TaskHandle,
        ) -> Result<nomos_agent::driver::ExitResult, AgentError> {
            unimplemented!()
        }
        async fn signal(&self, _: &TaskHandle, _: &str) -> Result<(), AgentError> {
            Ok(())
        }
        async fn stop(&self, _: &TaskHandle, _: &str, _: Duration) -> Result<(), AgentError> {
            Ok(())
        }
        async fn destroy(&self, _: &TaskHandle) -> Result<(), AgentError> {
            Ok(())
        }
        async fn stats(
            &self,
            _: &TaskHandle,
        ) -> Result<nomos_agent::driver::TaskStats, AgentError> {
            Ok(Default::default())
        }
        async fn exec(
            &self,
            _: &TaskHandle,
            _: &nomos_agent::driver::ExecRequest,
        ) -> Result<nomos_agent::driver::ExecOutput, AgentError> {
            unimplemented!()
        }
    }
    let err = NoExec
        .exec_session(&TaskHandle::default(), &request("true", false))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "driver qemu does not support exec");
}
