//! A transient failure to read `/proc` is not the death of a task: while the agent's process has
//! run out of file descriptors (every open fails with EMFILE), a running task stays running, with
//! the same pid and no restart, and the agent looks again once `/proc` can be read.
//!
//! This file holds a single test because it lowers the file descriptor limit of the whole test
//! process (each file under `tests/` is a process of its own).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use nomos_api::{ClientStatus, JobType};
use nomos_store::{EmbeddedStore, Store};

/// Lowers the soft `RLIMIT_NOFILE` of this process to 3 (stdin, stdout and stderr stay open, no
/// new descriptor can be had) and puts the old limit back when dropped.
struct DescriptorsExhausted(libc::rlimit);

impl DescriptorsExhausted {
    fn now() -> Self {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
            let low = libc::rlimit {
                rlim_cur: 3,
                rlim_max: old.rlim_max,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &low), 0);
        }
        DescriptorsExhausted(old)
    }
}

impl Drop for DescriptorsExhausted {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe {
            libc::setrlimit(libc::RLIMIT_NOFILE, &self.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_stays_running_with_the_same_pid_while_proc_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let cfg = test_config("fd1", dir.path());
    let data = cfg.data_dir.clone();
    let agent = RunningAgent::start(cfg, store.clone());
    let id = format!("fd-{}", std::process::id());
    let job = job(
        "fd",
        JobType::Service,
        vec![raw_task("t", "sleep", &["300"])],
    );
    let a = alloc(&id, "fd1", &job, 0);
    place(&*store, &a, &job).await;
    status_where(&store, "fd1", &id, "running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
    let pid = persisted_pid(&data, &id, "t").expect("pid");

    {
        let _exhausted = DescriptorsExhausted::now();
        let err = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(libc::EMFILE),
            "reading /proc fails: {err}"
        );
        // Many polls of the task's liveness (every 100 ms) happen in this time.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    assert!(alive(pid), "the task itself never stopped");
    // The agent sees the task again; give it a few polls to report anything it concluded.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = status(&*store, "fd1", &id).await.expect("status");
    let t = &s.task_states["t"];
    assert_eq!(s.client_status, ClientStatus::Running, "{s:?}");
    assert_eq!(t.restarts, 0, "{s:?}");
    assert!(
        !events(&s, "t").iter().any(|e| e == "Terminated"),
        "{:?}",
        events(&s, "t")
    );
    assert_eq!(persisted_pid(&data, &id, "t"), Some(pid));

    stop_alloc(&*store, &a).await;
    status_where(&store, "fd1", &id, "stopped", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    assert!(!alive(pid));
    agent.shutdown().await;
}
