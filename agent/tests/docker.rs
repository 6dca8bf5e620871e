//! The docker driver against the real Docker engine (this machine has no registry: the test
//! image is built locally `FROM scratch` with a static busybox). Fails loudly without a daemon.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::{BuildImageOptions, InspectContainerOptions};
use bollard::Docker;
use common::*;
use futures::StreamExt;
use nomos_agent::driver::docker::{
    container_name, DockerDriver, LABEL_ALLOC, LABEL_JOB, LABEL_TASK,
};
use nomos_agent::logs::LogStream;
use nomos_api::{ClientStatus, JobType, Task, Template};
use nomos_store::{EmbeddedStore, Store};

const IMAGE: &str = "nomos-test/busybox:1";
const BUSYBOX: &str = "/bin/busybox";

async fn docker() -> Docker {
    let d = DockerDriver::new().await;
    d.client()
        .expect("the Docker daemon must be running for the docker driver tests")
        .clone()
}

/// Builds `nomos-test/busybox:1` from a tar context: `FROM scratch`, the static busybox.
async fn build_test_image(docker: &Docker) {
    assert!(
        std::path::Path::new(BUSYBOX).exists(),
        "{BUSYBOX} (Debian's busybox-static) is needed to build the test image"
    );
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(BUSYBOX, ctx.path().join("busybox")).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\", \"sleep\", \"3600\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new("tar")
        .arg("-C")
        .arg(ctx.path())
        .arg("-cf")
        .arg("-")
        .arg(".")
        .output()
        .expect("running tar");
    assert!(out.status.success(), "tar failed");
    let opts = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(IMAGE.into()),
        rm: true,
        ..Default::default()
    };
    let mut stream = docker.build_image(
        opts,
        None,
        Some(bollard::body_full(bytes::Bytes::from(out.stdout))),
    );
    while let Some(item) = stream.next().await {
        let info = item.expect("building the test image");
        assert!(info.error_detail.is_none(), "image build failed: {info:?}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn docker_task(name: &str, image: &str, args: &[&str]) -> Task {
    let mut t = Task {
        name: name.into(),
        driver: "docker".into(),
        kill_timeout_ns: 1_000_000_000,
        ..Default::default()
    };
    t.config.insert("image".into(), serde_json::json!(image));
    t.config
        .insert("command".into(), serde_json::json!("/bin/busybox"));
    t.config.insert("args".into(), serde_json::json!(args));
    t
}

fn http_get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.contains("200 OK").then_some(body)
}

fn docker_config(name: &str, dir: &std::path::Path) -> nomos_agent::AgentConfig {
    let mut c = test_config(name, dir);
    c.enable_docker = true;
    c
}

#[tokio::test]
async fn a_docker_task_runs_with_ports_env_labels_limits_and_is_removed_on_stop() {
    let docker = docker().await;
    build_test_image(&docker).await;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(docker_config("dn1", dir.path()), store.clone());

    let mut t = docker_task(
        "web",
        IMAGE,
        &["httpd", "-f", "-p", "${NOMAD_PORT_http}", "-h", "/local"],
    );
    t.config.insert("ports".into(), serde_json::json!(["http"]));
    t.resources.memory_mb = 64;
    t.resources.memory_max_mb = 128;
    t.resources.cpu = 200;
    t.templates.push(Template {
        data: "hello from ${NOMAD_ALLOC_ID} in ${NOMAD_TASK_DIR}\n".into(),
        destination: "local/index.html".into(),
        ..Default::default()
    });
    let job = job("site", JobType::Service, vec![t]);
    let port = free_port();
    let mut a = alloc("dock-1", "dn1", &job, 0);
    a.ports.push(nomos_api::AllocatedPort {
        label: "http".into(),
        value: port,
        to: 8080,
        host_ip: "127.0.0.1".into(),
    });
    place(&*store, &a, &job).await;
    status_where(&store, "dn1", "dock-1", "container running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;

    let body = eventually("http answer from the container", || async move {
        http_get(port)
    })
    .await;
    assert!(body.contains("hello from dock-1 in /local"), "{body}");

    let c = docker
        .inspect_container(
            &container_name("dock-1", "web"),
            None::<InspectContainerOptions>,
        )
        .await
        .unwrap();
    let labels = c.config.as_ref().unwrap().labels.clone().unwrap();
    assert_eq!(labels[LABEL_ALLOC], "dock-1");
    assert_eq!(labels[LABEL_JOB], "site");
    assert_eq!(labels[LABEL_TASK], "web");
    let env = c.config.as_ref().unwrap().env.clone().unwrap();
    assert!(env.contains(&"NOMAD_PORT_http=8080".to_string()), "{env:?}");
    assert!(
        env.contains(&format!("NOMAD_HOST_PORT_http={port}")),
        "{env:?}"
    );
    assert!(
        env.contains(&"NOMOS_ALLOC_ID=dock-1".to_string()),
        "{env:?}"
    );
    let hc = c.host_config.unwrap();
    assert_eq!(hc.memory, Some(128 << 20));
    assert_eq!(hc.memory_reservation, Some(64 << 20));
    assert_eq!(hc.cpu_shares, Some(200));

    stop_alloc(&*store, &a).await;
    status_where(&store, "dn1", "dock-1", "stopped", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    let gone = docker
        .inspect_container(
            &container_name("dock-1", "web"),
            None::<InspectContainerOptions>,
        )
        .await;
    assert!(gone.is_err(), "the container is removed after stop");
    agent.shutdown().await;
}

#[tokio::test]
async fn a_missing_image_that_cannot_be_pulled_is_a_driver_failure_naming_it() {
    let _ = docker().await;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(docker_config("dn2", dir.path()), store.clone());
    let mut job = job(
        "ghost",
        JobType::Service,
        vec![docker_task("t", "nomos-test/does-not-exist:42", &["true"])],
    );
    job.groups[0].restart.as_mut().unwrap().attempts = 0;
    place(&*store, &alloc("dock-2", "dn2", &job, 0), &job).await;
    let s = status_where(&store, "dn2", "dock-2", "failed", |s| {
        s.client_status == ClientStatus::Failed
    })
    .await;
    let ev = &s.task_states["t"].events;
    let failure = ev
        .iter()
        .find(|e| e.event_type == "Driver Failure")
        .unwrap_or_else(|| panic!("no Driver Failure event: {ev:?}"));
    assert!(
        failure.message.contains("nomos-test/does-not-exist:42"),
        "{}",
        failure.message
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn a_restarted_agent_adopts_its_containers_without_restarting_them() {
    let docker = docker().await;
    build_test_image(&docker).await;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let cfg = docker_config("dn3", dir.path());
    let agent = RunningAgent::start(cfg.clone(), store.clone());
    let job = job(
        "idle",
        JobType::Service,
        vec![docker_task(
            "t",
            IMAGE,
            &[
                "sh",
                "-c",
                "echo hello-docker; echo to-stderr >&2; exec sleep 3600",
            ],
        )],
    );
    let a = alloc("dock-3", "dn3", &job, 0);
    place(&*store, &a, &job).await;
    status_where(&store, "dn3", "dock-3", "running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
    let before = docker
        .inspect_container(
            &container_name("dock-3", "t"),
            None::<InspectContainerOptions>,
        )
        .await
        .unwrap();
    let data = dir.path().join("dn3");
    let read = |s| {
        let c = nomos_agent::logs::read_task_logs(&data, "dock-3", "t", s, 0, 1 << 20);
        String::from_utf8(c.map(|c| c.data).unwrap_or_default()).unwrap()
    };
    eventually("container output in the log files", || async {
        (read(LogStream::Stdout) == "hello-docker\n").then_some(())
    })
    .await;
    eventually("container stderr in the log files", || async {
        (read(LogStream::Stderr) == "to-stderr\n").then_some(())
    })
    .await;
    agent.shutdown().await;

    let agent = RunningAgent::start(cfg, store.clone());
    status_where(&store, "dn3", "dock-3", "healthy after restart", |s| {
        s.client_status == ClientStatus::Running && s.healthy == Some(true)
    })
    .await;
    let after = docker
        .inspect_container(
            &container_name("dock-3", "t"),
            None::<InspectContainerOptions>,
        )
        .await
        .unwrap();
    assert_eq!(before.id, after.id, "same container");
    assert_eq!(
        before.state.unwrap().started_at,
        after.state.unwrap().started_at,
        "not restarted"
    );
    let s = status(&*store, "dn3", "dock-3").await.unwrap();
    assert_eq!(s.task_states["t"].restarts, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        read(LogStream::Stdout),
        "hello-docker\n",
        "re-attached log shipping does not duplicate output"
    );
    stop_alloc(&*store, &a).await;
    status_where(&store, "dn3", "dock-3", "stopped", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    agent.shutdown().await;
}

#[tokio::test]
async fn a_container_exceeding_memory_max_is_killed_and_reported_as_oom() {
    let docker = docker().await;
    build_test_image(&docker).await;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(docker_config("dn4", dir.path()), store.clone());
    // dd allocates its block size: 256 MiB against a 32 MiB hard limit.
    let mut t = docker_task(
        "hog",
        IMAGE,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
    );
    t.resources.memory_mb = 16;
    t.resources.memory_max_mb = 32;
    let mut job = job("hog", JobType::Batch, vec![t]);
    job.groups[0].restart.as_mut().unwrap().attempts = 0;
    place(&*store, &alloc("dock-4", "dn4", &job, 0), &job).await;
    let s = status_where(&store, "dn4", "dock-4", "failed", |s| {
        s.client_status == ClientStatus::Failed
    })
    .await;
    let ev = &s.task_states["hog"].events;
    let term = ev
        .iter()
        .find(|e| e.event_type == "Terminated")
        .unwrap_or_else(|| panic!("{ev:?}"));
    assert!(term.oom_killed, "{ev:?}");
    assert!(term.message.contains("OOM Killed"), "{}", term.message);
    agent.shutdown().await;
}

#[tokio::test]
async fn a_container_whose_child_is_oom_killed_while_its_main_process_exits_0_completes() {
    let docker = docker().await;
    build_test_image(&docker).await;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(docker_config("dn6", dir.path()), store.clone());
    // The shell (the container's main process) outlives dd, which the kernel kills.
    let mut t = docker_task(
        "hog",
        IMAGE,
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/null bs=256M count=1; exit 0",
        ],
    );
    t.resources.memory_mb = 16;
    t.resources.memory_max_mb = 32;
    let mut job = job("childhog", JobType::Batch, vec![t]);
    job.groups[0].restart.as_mut().unwrap().attempts = 0;
    place(&*store, &alloc("dock-6", "dn6", &job, 0), &job).await;
    let s = status_where(&store, "dn6", "dock-6", "finished", |s| {
        s.client_status.is_terminal()
    })
    .await;
    let ev = &s.task_states["hog"].events;
    let term = ev
        .iter()
        .find(|e| e.event_type == "Terminated")
        .unwrap_or_else(|| panic!("{ev:?}"));
    assert_eq!(s.client_status, ClientStatus::Complete, "{ev:?}");
    assert_eq!(term.exit_code, Some(0), "{ev:?}");
    assert!(!term.oom_killed, "{ev:?}");
    assert!(
        term.message
            .contains("a process in the task was OOM-killed"),
        "{}",
        term.message
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn containers_of_allocations_the_node_no_longer_runs_are_cleaned_at_start() {
    use bollard::models::ContainerCreateBody;
    use bollard::query_parameters::CreateContainerOptions;
    let docker = docker().await;
    build_test_image(&docker).await;
    let dir = tempfile::tempdir().unwrap();
    let node_id = format!("orphan-test-{}", std::process::id());
    std::fs::create_dir_all(dir.path().join("dn5")).unwrap();
    std::fs::write(dir.path().join("dn5/node-id"), &node_id).unwrap();
    let labels = std::collections::HashMap::from([
        (
            nomos_agent::driver::docker::LABEL_NODE.to_string(),
            node_id.clone(),
        ),
        (LABEL_ALLOC.to_string(), "gone-alloc".to_string()),
    ]);
    let name = format!("t-gone-alloc-{}", std::process::id());
    let body = ContainerCreateBody {
        image: Some(IMAGE.into()),
        labels: Some(labels),
        ..Default::default()
    };
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
        .unwrap();
    docker.start_container(&created.id, None).await.unwrap();

    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let agent = RunningAgent::start(docker_config("dn5", dir.path()), store.clone());
    eventually("the orphan container is removed", || {
        let docker = docker.clone();
        let name = name.clone();
        async move {
            docker
                .inspect_container(&name, None::<InspectContainerOptions>)
                .await
                .is_err()
                .then_some(())
        }
    })
    .await;
    agent.shutdown().await;
}

/// `docker exec` through the driver: the command runs in the container (it sees the image's
/// filesystem and the task's mounts, not the host's), a command past its timeout is killed,
/// output past its limit is dropped, and a removed container says its task is not running.
#[tokio::test]
async fn a_command_run_inside_a_docker_task_runs_in_its_container() {
    use nomos_agent::driver::{Driver, ExecRequest, TaskSpec, EXEC_OUTPUT_LIMIT};
    let docker = docker().await;
    build_test_image(&docker).await;
    let dir = tempfile::tempdir().unwrap();
    let driver = DockerDriver::new().await;
    let mut config = indexmap::IndexMap::new();
    config.insert("image".to_string(), serde_json::json!(IMAGE));
    config.insert("hostname".to_string(), serde_json::json!("inside-the-task"));
    let alloc = format!("exec-{}", std::process::id());
    let spec = TaskSpec {
        alloc_id: alloc.clone(),
        task: "t".into(),
        config,
        env: [("GREETING".to_string(), "hello".to_string())].into(),
        task_dir: dir.path().join("t"),
        alloc_dir: dir.path().join("alloc"),
        log_dir: dir.path().join("alloc/logs"),
        ..Default::default()
    };
    let h = driver.start(&spec).await.expect("container starts");
    let req = |script: &str, timeout_ms: u64| ExecRequest {
        command: BUSYBOX.into(),
        args: vec!["sh".into(), "-c".into(), script.into()],
        timeout: Duration::from_millis(timeout_ms),
        output_limit: EXEC_OUTPUT_LIMIT,
    };
    // The image holds only /bin/busybox: no /usr, which the host has; /alloc is the task's.
    let script =
        "hostname; echo $GREETING; test -d /alloc && ! test -e /usr && echo image-only; exit 1";
    let out = driver.exec(&h, &req(script, 10_000)).await.unwrap();
    assert_eq!(out.exit_code, Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.output),
        "inside-the-task\nhello\nimage-only\n"
    );
    let err = driver.exec(&h, &req("sleep 41", 500)).await.unwrap_err();
    assert!(
        matches!(err, nomos_agent::AgentError::ExecTimedOut { .. }),
        "{err}"
    );
    let ps = driver.exec(&h, &req("ps", 10_000)).await.unwrap();
    let ps = String::from_utf8_lossy(&ps.output).to_string();
    assert!(
        !ps.contains("sleep 41"),
        "the timed-out command was killed: {ps}"
    );
    let big = driver
        .exec(&h, &req("head -c 100000 /dev/zero", 10_000))
        .await
        .unwrap();
    assert_eq!((big.output.len(), big.truncated), (EXEC_OUTPUT_LIMIT, true));
    driver.destroy(&h).await.unwrap();
    let err = driver.exec(&h, &req("true", 1_000)).await.unwrap_err();
    assert!(
        matches!(err, nomos_agent::AgentError::TaskNotRunning { .. }),
        "{err}"
    );
}

/// A batch docker job mounting the host volume `shared` at `/data` and the read-only `certs` at
/// `/certs`: it prints what the previous allocation left, leaves its own id, and tries to write
/// to `/certs`.
fn volume_job() -> nomos_api::Job {
    let script = "echo \"saw: $(cat /data/last 2>/dev/null || echo nothing)\"; \
                  echo $NOMAD_ALLOC_ID > /data/last; \
                  if echo x > /certs/try; then echo 'certs: written'; else echo 'certs: refused'; fi";
    let mut t = docker_task("db", IMAGE, &["sh", "-c", script]);
    let mount = |volume: &str, destination: &str| nomos_api::VolumeMount {
        volume: volume.into(),
        destination: destination.into(),
        ..Default::default()
    };
    t.volume_mounts = vec![mount("data", "/data"), mount("certs", "/certs")];
    let mut job = job("pg", JobType::Batch, vec![t]);
    job.groups[0].restart.as_mut().unwrap().attempts = 0;
    for (name, source, read_only) in [("data", "shared", false), ("certs", "certs", true)] {
        let request = nomos_api::VolumeRequest {
            name: name.into(),
            volume_type: "host".into(),
            source: source.into(),
            read_only,
        };
        job.groups[0].volumes.insert(name.into(), request);
    }
    job
}

#[tokio::test]
async fn a_docker_task_keeps_data_on_a_host_volume_and_cannot_write_a_read_only_one() {
    let docker = docker().await;
    build_test_image(&docker).await;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::create_dir_all(&certs).unwrap();
    let mut config = docker_config("dn9", dir.path());
    let volume = |path: &std::path::Path, read_only: bool| nomos_api::HostVolume {
        path: path.display().to_string(),
        read_only,
    };
    config
        .host_volumes
        .insert("shared".into(), volume(&shared, false));
    config
        .host_volumes
        .insert("certs".into(), volume(&certs, true));
    let data_dir = config.data_dir.clone();
    let agent = RunningAgent::start(config, store.clone());
    let job = volume_job();

    let mut outputs = Vec::new();
    for id in ["dock-vol-1", "dock-vol-2"] {
        place(&*store, &alloc(id, "dn9", &job, 0), &job).await;
        status_where(&store, "dn9", id, "complete", |s| {
            s.client_status == ClientStatus::Complete
        })
        .await;
        outputs.push(stdout_of(&data_dir, id, "db"));
    }
    assert_eq!(outputs[0], "saw: nothing\ncerts: refused\n");
    assert_eq!(outputs[1], "saw: dock-vol-1\ncerts: refused\n");
    let last = std::fs::read_to_string(shared.join("last")).unwrap();
    assert_eq!(last.trim(), "dock-vol-2", "the data is on the host");
    assert!(!certs.join("try").exists());

    // The host directory removed after the agent started: the task does not start, and says why.
    std::fs::remove_dir_all(&shared).unwrap();
    place(&*store, &alloc("dock-vol-3", "dn9", &job, 0), &job).await;
    let s = status_where(&store, "dn9", "dock-vol-3", "failed", |s| {
        s.client_status == ClientStatus::Failed
    })
    .await;
    let ev = &s.task_states["db"].events;
    let why = ev
        .iter()
        .find(|e| e.message.contains("host volume path"))
        .unwrap_or_else(|| panic!("{ev:?}"));
    assert!(
        why.message.contains(&format!(
            "{} for volume \"data\" cannot be mounted",
            shared.display()
        )),
        "{}",
        why.message
    );
    agent.shutdown().await;
}

/// An interactive `docker exec` through the driver (`nctl alloc exec`'s agent side): it runs
/// in the container, stdin reaches it, the exit code comes last, and with a TTY it has a
/// terminal resized on request.
#[tokio::test]
async fn an_exec_session_runs_in_the_container_with_stdin_and_a_tty() {
    use nomos_agent::driver::{Driver, ExecSession, SessionRequest, TaskSpec};
    use nomos_api::exec::{ExecEvent, ExecInput};
    let docker = docker().await;
    build_test_image(&docker).await;
    let dir = tempfile::tempdir().unwrap();
    let driver = DockerDriver::new().await;
    let mut config = indexmap::IndexMap::new();
    config.insert("image".to_string(), serde_json::json!(IMAGE));
    config.insert("hostname".to_string(), serde_json::json!("in-the-box"));
    let spec = TaskSpec {
        alloc_id: format!("session-{}", std::process::id()),
        task: "t".into(),
        config,
        task_dir: dir.path().join("t"),
        alloc_dir: dir.path().join("alloc"),
        log_dir: dir.path().join("alloc/logs"),
        ..Default::default()
    };
    let h = driver.start(&spec).await.expect("container starts");
    let start = |script: &str, tty: bool| SessionRequest {
        command: vec![BUSYBOX.into(), "sh".into(), "-c".into(), script.into()],
        tty,
    };
    async fn finish(s: &mut ExecSession) -> (String, Option<i32>) {
        let mut out = String::new();
        let read = async {
            while let Some(event) = s.events.recv().await {
                match event {
                    ExecEvent::Stdout(d) | ExecEvent::Stderr(d) => {
                        out.push_str(&String::from_utf8_lossy(&d))
                    }
                    ExecEvent::Exited { exit_code } => return Some(exit_code),
                    ExecEvent::Heartbeat => {}
                }
            }
            None
        };
        let code = tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("the exec ends");
        (out, code)
    }
    let script = "hostname; ! test -e /usr && echo image-only; read line; echo got $line; exit 4";
    let mut s = driver
        .exec_session(&h, &start(script, false))
        .await
        .unwrap();
    s.input
        .send(ExecInput::Stdin(b"hello\n".to_vec()))
        .await
        .unwrap();
    s.input.send(ExecInput::StdinClose).await.unwrap();
    assert_eq!(
        finish(&mut s).await,
        ("in-the-box\nimage-only\ngot hello\n".to_string(), Some(4))
    );

    let mut s = driver
        .exec_session(&h, &start("read go; stty size; exit 0", true))
        .await
        .unwrap();
    s.input
        .send(ExecInput::TtySize {
            height: 21,
            width: 63,
        })
        .await
        .unwrap();
    // The session applies frames in order: the resize lands before `read` returns.
    s.input
        .send(ExecInput::Stdin(b"go\r".to_vec()))
        .await
        .unwrap();
    let (out, code) = finish(&mut s).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("21 63"), "{out}");
    driver.destroy(&h).await.unwrap();
    let err = driver
        .exec_session(&h, &start("true", false))
        .await
        .unwrap_err();
    assert!(
        matches!(err, nomos_agent::AgentError::TaskNotRunning { .. }),
        "{err}"
    );
}
