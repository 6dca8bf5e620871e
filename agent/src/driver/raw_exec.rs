//! The `raw_exec` driver: a plain process with the task's environment, started in its own
//! session and process group so it outlives the agent.
//!
//! The process runs under a tiny `/bin/sh` wrapper that waits for it and writes its exit status
//! to a file, so the status is known even when the agent that started it is gone. The wrapper
//! traps (without ignoring, so the task still gets default dispositions) the usual signals;
//! signals are sent to the whole process group. stdout and stderr go straight to append-mode
//! files that the agent rotates from outside (see [`crate::logs`]).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use nomos_api::DriverInfo;

use super::inside::{exec_in_process, Entry};
use super::{
    config_list, config_str, now_ms, parse_signal, Driver, ExecOutput, ExecRequest, ExecSession,
    ExitResult, SessionRequest, TaskHandle, TaskSpec, TaskStats, AGENT_ID_ENV,
};
use crate::error::AgentError;
use crate::logs::{self, LogStream};
use crate::procfs::{self, Liveness};
use crate::volume_mounts::bind_args;

/// The wrapper: `$0` is the exit file, `$@` the command.
const WRAPPER: &str = r#"trap : HUP INT QUIT TERM USR1 USR2 ALRM PIPE
"$@"
code=$?
printf '%s' "$code" > "$0.tmp" && mv "$0.tmp" "$0"
exit $code"#;

/// How often liveness is polled for tasks the agent may not be the parent of.
const POLL: Duration = Duration::from_millis(100);

/// How often liveness is read anyway while a pidfd waits for the task's exit (a safety net;
/// the pidfd wakes the wait the moment the process exits).
const PIDFD_RECHECK: Duration = Duration::from_secs(10);

/// How long a stop waits for the task to go after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Runs tasks as plain processes.
#[derive(Debug, Default, Clone)]
pub struct RawExecDriver;

/// Options for [`spawn_process`] that differ between `raw_exec` and `exec`.
#[derive(Debug, Default, Clone)]
pub(crate) struct SpawnOptions {
    pub driver: &'static str,
    /// Keep the agent's own environment under the task's (raw_exec does, as in Nomad).
    pub inherit_env: bool,
    /// A cgroup directory (v2, or v1 memory) to move the process into before it runs the task.
    pub cgroup: Option<PathBuf>,
    /// Run in a new pid and mount namespace (util-linux `unshare`), chrooted into `chroot` when
    /// set (see [`ISOLATE`]).
    pub isolate: Option<Isolate>,
}

/// How `exec` isolates a task beyond its cgroup.
#[derive(Debug, Clone)]
pub(crate) struct Isolate {
    /// The chroot to build (`None`: the task sees the host's filesystem).
    pub chroot: Option<PathBuf>,
    /// Bind-mounted into the chroot at its own path, so the task's paths stay valid.
    pub alloc_root: PathBuf,
}

/// Binds host volumes (see [`crate::volume_mounts::bind_args`] for the arguments: the count,
/// then host directory, target and `ro`/`rw` for each), making each target directory first and
/// remounting a read-only bind read-only. Runs under `set -e`: a bind that fails stops the task
/// before it starts, with mount's message in its stderr.
macro_rules! bind_volumes {
    () => {
        r#"N=$1
shift
while [ "$N" -gt 0 ]; do
  mkdir -p "$2"
  mount --bind "$1" "$2"
  if [ "$3" = ro ]; then mount -o remount,bind,ro "$2"; fi
  shift 3
  N=$((N - 1))
done
"#
    };
}

/// Runs as pid 1's parent shell inside the new pid and mount namespaces: builds the chroot (`$1`,
/// or `/` for none) with read-only binds of the host's system directories, `/dev`, a fresh
/// `/proc` and the allocation dir (`$2`) at its own path, binds the host volumes (the arguments
/// after `$5`, see [`bind_volumes`]), then runs the wrapper (`$5`) chrooted, in the task dir
/// (`$3`), as the user (`$4`, may be empty). The mounts vanish with the namespace.
pub(crate) const ISOLATE: &str = concat!(
    r#"R=$1 A=$2 T=$3 U=$4 W=$5
shift 5
set -e
if [ "$R" != / ]; then
  mkdir -p "$R"
  for d in /bin /sbin /lib /lib32 /lib64 /libx32 /usr /etc; do
    if [ -L "$d" ]; then
      [ -e "$R$d" ] || [ -L "$R$d" ] || ln -s "$(readlink "$d")" "$R$d"
    elif [ -d "$d" ]; then
      mkdir -p "$R$d"
      mount --bind "$d" "$R$d"
      mount -o remount,bind,ro "$R$d"
    fi
  done
  mkdir -p "$R/dev" "$R/proc" "$R/tmp" "$R$A"
  chmod 1777 "$R/tmp"
  mount --rbind /dev "$R/dev"
  mount --bind "$A" "$R$A"
fi
"#,
    bind_volumes!(),
    r#"mount -t proc proc "$R/proc"
set +e
exec chroot ${U:+"--userspec=$U"} "$R" /bin/sh -c 'cd "$0" || exit 127; exec /bin/sh -c "$@"' "$T" "$W" "$@""#
);

/// A `raw_exec` task with host volumes runs in a mount namespace of its own
/// (`unshare --mount`, same process): this binds the volumes there, then runs the rest of its
/// arguments. The binds vanish with the task.
pub(crate) const BIND_VOLUMES: &str = concat!("set -e\n", bind_volumes!(), "set +e\nexec \"$@\"");

/// Starts a task process under the wrapper, in a new session.
pub(crate) async fn spawn_process(
    spec: &TaskSpec,
    opts: SpawnOptions,
) -> Result<TaskHandle, AgentError> {
    let driver = opts.driver;
    let command = config_str(&spec.config, "command")
        .ok_or_else(|| AgentError::driver(driver, "config.command is required"))?;
    let args = config_list(&spec.config, "args");
    std::fs::create_dir_all(&spec.task_dir).map_err(|e| AgentError::io(&spec.task_dir, e))?;
    let path_var = spec.env.get("PATH").cloned();
    let resolved = procfs::resolve_command(&command, path_var.as_deref(), &spec.task_dir)
        .ok_or_else(|| {
            AgentError::driver(
                driver,
                format!("command {command:?} not found or not executable"),
            )
        })?;

    let state_dir = spec.task_dir.join(".nomos");
    let exit_file = state_dir.join("exit-status");
    let begun = state_dir.join(SPAWN_BEGUN);
    // A task started by an agent that died before recording it: adopt it, never run it twice.
    // Only a task dir where a spawn was begun can have one, so a first start skips the search
    // (it reads all of /proc: milliseconds per start, O(tasks) with many running).
    if spawn_begun(&begun) {
        if let Some(leader) = started_before(spec, driver)? {
            return Ok(process_handle(
                spec,
                opts,
                leader.pid,
                leader.start_time,
                exit_file,
            ));
        }
    }
    let stdout = logs::open_for_task(&spec.log_dir, &spec.task, LogStream::Stdout)
        .map_err(|e| AgentError::io(&spec.log_dir, e))?;
    let stderr = logs::open_for_task(&spec.log_dir, &spec.task, LogStream::Stderr)
        .map_err(|e| AgentError::io(&spec.log_dir, e))?;
    std::fs::create_dir_all(&state_dir).map_err(|e| AgentError::io(&state_dir, e))?;
    let _ = std::fs::remove_file(&exit_file);
    // Before the spawn, so that an agent dying right after it still searches next time (no
    // fsync: a crash of the machine ends the task too).
    std::fs::write(&begun, b"").map_err(|e| AgentError::io(&begun, e))?;

    let mut cmd = wrapper_command(spec, &opts, &exit_file, &resolved, &args);
    cmd.stdout(stdout).stderr(stderr);
    if !spec.user.is_empty() {
        run_as_user(&mut cmd, spec, &opts, &state_dir)?;
    }
    in_new_session(&mut cmd, opts.cgroup.clone());
    let mut child = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|e| AgentError::driver(driver, format!("starting {command:?}: {e}")))?;
    let pid = child
        .id()
        .ok_or_else(|| AgentError::driver(driver, "process exited before its pid was read"))?
        as i32;
    let start_time = procfs::stat(pid).map(|s| s.start_time).unwrap_or(0);
    // Reap the wrapper when it exits while this agent is its parent; liveness itself is read
    // from /proc so that re-attached tasks (not our children) are waited for the same way.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(process_handle(spec, opts, pid, start_time, exit_file))
}

/// The file in a task's `.nomos` dir that says a spawn of the task was begun there.
const SPAWN_BEGUN: &str = "spawn-begun";

/// Whether `begun` may exist: only a sure "not found" says no spawn was ever begun.
fn spawn_begun(begun: &Path) -> bool {
    match std::fs::symlink_metadata(begun) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// The group leader of a process of this task that this agent started before but never
/// recorded (it died in between), found in `/proc` by the allocation, task and agent ids.
fn started_before(spec: &TaskSpec, driver: &str) -> Result<Option<procfs::ProcStat>, AgentError> {
    let (Some(alloc), Some(task)) = (
        spec.env.get("NOMOS_ALLOC_ID"),
        spec.env.get("NOMOS_TASK_NAME"),
    ) else {
        return Ok(None);
    };
    let found = procfs::find_group_leaders_with_env(&[
        ("NOMOS_ALLOC_ID", alloc),
        ("NOMOS_TASK_NAME", task),
        (AGENT_ID_ENV, &spec.agent_id),
    ])
    .map_err(|e| {
        AgentError::driver(
            driver,
            format!("looking in /proc for a process of this task started before: {e}"),
        )
    })?;
    let leader = found.into_iter().next();
    if let Some(leader) = &leader {
        tracing::info!(pid = leader.pid, alloc = %alloc, task = %task, "adopting a running task process");
    }
    Ok(leader)
}

/// The handle of a task process: its group leader's pid and start time, and its exit file.
fn process_handle(
    spec: &TaskSpec,
    opts: SpawnOptions,
    pid: i32,
    start_time: u64,
    exit_file: PathBuf,
) -> TaskHandle {
    TaskHandle {
        driver: opts.driver.to_string(),
        task: spec.task.clone(),
        agent_id: spec.agent_id.clone(),
        pid: Some(pid),
        start_time: Some(start_time),
        exit_file: Some(exit_file),
        cgroup: opts.cgroup,
        container_id: None,
        log_dir: spec.log_dir.clone(),
        started_at_ms: now_ms(),
    }
}

/// The command that runs the task under the wrapper (inside [`ISOLATE`] when isolated), in its
/// directory, with its environment and no stdin.
fn wrapper_command(
    spec: &TaskSpec,
    opts: &SpawnOptions,
    exit_file: &Path,
    resolved: &Path,
    args: &[String],
) -> std::process::Command {
    let mut cmd = match &opts.isolate {
        None if spec.volume_mounts.is_empty() => {
            let mut c = std::process::Command::new("/bin/sh");
            c.arg("-c");
            c
        }
        None => {
            let mut c = std::process::Command::new("unshare");
            c.args(["--mount", "--propagation", "private"])
                .arg("/bin/sh")
                .arg("-c")
                .arg(BIND_VOLUMES)
                .arg("nomos-volumes")
                .args(bind_args(
                    &spec.volume_mounts,
                    Path::new("/"),
                    &spec.task_dir,
                ))
                .args(["/bin/sh", "-c"]);
            c
        }
        Some(iso) => {
            let mut c = std::process::Command::new("unshare");
            let root = iso.chroot.clone().unwrap_or_else(|| PathBuf::from("/"));
            c.args(["--pid", "--fork", "--mount", "--propagation", "private"])
                .arg("/bin/sh")
                .arg("-c")
                .arg(ISOLATE)
                .arg("nomos-isolate")
                .arg(&root)
                .arg(&iso.alloc_root)
                .arg(&spec.task_dir)
                .arg(&spec.user)
                .arg(WRAPPER)
                .args(bind_args(&spec.volume_mounts, &root, &spec.task_dir));
            c
        }
    };
    if opts.isolate.is_none() {
        cmd.arg(WRAPPER);
    }
    cmd.arg(exit_file).arg(resolved).args(args);
    if !opts.inherit_env {
        cmd.env_clear();
        cmd.env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    }
    cmd.envs(&spec.env);
    // Set last, over the task's env and the agent's own (an agent may run under another one).
    if spec.agent_id.is_empty() {
        cmd.env_remove(AGENT_ID_ENV);
    } else {
        cmd.env(AGENT_ID_ENV, &spec.agent_id);
    }
    cmd.current_dir(&spec.task_dir)
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs the task as `spec.user`: hands it its directories and log files, switches user (unless
/// isolated) and sets `USER` and `HOME`.
fn run_as_user(
    cmd: &mut std::process::Command,
    spec: &TaskSpec,
    opts: &SpawnOptions,
    state_dir: &Path,
) -> Result<(), AgentError> {
    let user = nix::unistd::User::from_name(&spec.user)
        .ok()
        .flatten()
        .ok_or_else(|| {
            AgentError::driver(
                opts.driver,
                format!("user {:?} does not exist on this node", spec.user),
            )
        })?;
    // Never through a link: the task may have put one under any of these names on an earlier
    // run, pointing at a host file it wants to own.
    let chown = |p: &Path| {
        let no_follow = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
        let at = nix::fcntl::AT_FDCWD;
        let _ = nix::unistd::fchownat(at, p, Some(user.uid), Some(user.gid), no_follow);
    };
    for p in [spec.task_dir.as_path(), state_dir, spec.log_dir.as_path()] {
        chown(p);
    }
    for s in [LogStream::Stdout, LogStream::Stderr] {
        chown(&logs::live_path(&spec.log_dir, &spec.task, s));
    }
    // Isolated tasks switch user in `chroot --userspec`, after the namespaces are set up.
    if opts.isolate.is_none() {
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    cmd.env("USER", &spec.user).env("HOME", &user.dir);
    Ok(())
}

/// Makes the process start a new session (and so its own process group) and join `cgroup`
/// before it runs the wrapper.
pub(crate) fn in_new_session(cmd: &mut std::process::Command, cgroup: Option<PathBuf>) {
    // SAFETY: only async-signal-safe calls (setsid, open/write/close through libc) run between
    // fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(cg) = &cgroup {
                join_cgroup(cg)?;
            }
            Ok(())
        });
    }
}

/// Writes the calling process's pid into `cgroup.procs` (runs between fork and exec).
fn join_cgroup(cg: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(cg.join("cgroup.procs").as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("nul in cgroup path"))?;
    // "0" means "the writing process".
    // SAFETY: plain open/write/close on a valid C string.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, b"0".as_ptr().cast(), 1);
        libc::close(fd);
        if n != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn pid_of(handle: &TaskHandle) -> Option<(i32, u64)> {
    Some((handle.pid?, handle.start_time?))
}

/// What `/proc` says about the task's group leader.
pub(crate) fn process_liveness(handle: &TaskHandle) -> Liveness {
    match pid_of(handle) {
        Some((pid, start_time)) => procfs::liveness(pid, start_time),
        None => Liveness::Gone,
    }
}

/// The error for a task whose process `/proc` could not tell about.
fn proc_unreadable(handle: &TaskHandle, e: std::io::Error) -> AgentError {
    AgentError::io(format!("/proc/{}/stat", handle.pid.unwrap_or(0)), e)
}

/// Whether the task still runs, for a re-attach: an error when `/proc` cannot be read now, and
/// [`AgentError::NotOurs`] when the process does not carry the agent id its handle names.
pub(crate) fn recover_process(handle: &TaskHandle) -> Result<bool, AgentError> {
    match process_liveness(handle) {
        Liveness::Alive => check_marker(handle).map(|()| true),
        Liveness::Gone => Ok(false),
        Liveness::Unknown(e) => Err(proc_unreadable(handle, e)),
    }
}

/// Checks that the task's live group leader carries the agent id of its handle (handles of
/// agents without ids are trusted by pid and start time alone).
fn check_marker(handle: &TaskHandle) -> Result<(), AgentError> {
    let Some(pid) = handle.pid.filter(|_| !handle.agent_id.is_empty()) else {
        return Ok(());
    };
    match procfs::environ_matches(pid, &[(AGENT_ID_ENV, &handle.agent_id)]) {
        Ok(true) => Ok(()),
        Ok(false) => Err(AgentError::NotOurs {
            task: handle.task.clone(),
            why: format!(
                "process {pid} does not carry {AGENT_ID_ENV}={}",
                handle.agent_id
            ),
        }),
        Err(e) => Err(AgentError::io(format!("/proc/{pid}/environ"), e)),
    }
}

/// Reads the wrapper's exit file into an [`ExitResult`]; no file means the wrapper itself was
/// killed. An error when the file exists but cannot be read now.
pub(crate) fn read_exit(handle: &TaskHandle) -> std::io::Result<ExitResult> {
    let text = match handle.exit_file.as_ref().map(std::fs::read_to_string) {
        Some(Ok(text)) => Some(text),
        Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => None,
        Some(Err(e)) => return Err(e),
        None => None,
    };
    Ok(match text.and_then(|t| t.trim().parse::<i32>().ok()) {
        Some(code) if code > 128 && code < 128 + 65 => ExitResult {
            exit_code: Some(code),
            signal: Some(code - 128),
            ..Default::default()
        },
        Some(code) => ExitResult {
            exit_code: Some(code),
            ..Default::default()
        },
        // The wrapper itself was killed (SIGKILL after the kill timeout, or from outside).
        None => ExitResult {
            exit_code: None,
            signal: Some(Signal::SIGKILL as i32),
            ..Default::default()
        },
    })
}

/// A pidfd of the task's process, readable once it exits; `None` where pidfds are missing
/// (Linux before 5.3) or the process is already gone, and the wait polls `/proc` instead.
fn exit_notifier(handle: &TaskHandle) -> Option<tokio::io::unix::AsyncFd<procfs::PidFd>> {
    let fd = procfs::pidfd_open(pid_of(handle)?.0).ok()?;
    // SAFETY: the AsyncFd owns the PidFd, which stays open and the same until it is dropped.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .ok()
}

/// Waits until the task's process is gone and returns how it ended. `/proc` or an exit file
/// that cannot be read (the agent out of file descriptors, ...) is no exit: the task is taken as
/// running, the failure is logged (once until reads work again), and it is looked at again on
/// the next poll.
pub(crate) async fn wait_process(handle: &TaskHandle) -> ExitResult {
    let mut unreadable = false;
    // Opened before the first liveness read, which then proves it names the task's process.
    let mut exit_fd = exit_notifier(handle);
    loop {
        let looked = match process_liveness(handle) {
            Liveness::Alive => Ok(()),
            Liveness::Gone => match read_exit(handle) {
                Ok(exit) => return exit,
                Err(e) => Err(e),
            },
            Liveness::Unknown(e) => Err(e),
        };
        match looked {
            Err(e) if !unreadable => {
                tracing::warn!(task = %handle.task, pid = ?handle.pid, error = %e,
                    "cannot read the task's process state; taking it as running and looking again");
                unreadable = true;
            }
            Ok(()) if unreadable => {
                tracing::info!(task = %handle.task, pid = ?handle.pid, "the task's process state can be read again");
                unreadable = false;
            }
            _ => {}
        }
        match &exit_fd {
            Some(fd) if !unreadable => {
                // Readable once the process exited; it stays so, hence polling from then on.
                if let Ok(Ok(_)) = tokio::time::timeout(PIDFD_RECHECK, fd.readable()).await {
                    exit_fd = None;
                }
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// Signals the task's process group if the task runs; an error when `/proc` cannot tell (a
/// signal never goes to a pid whose owner is not known).
pub(crate) fn signal_group(handle: &TaskHandle, sig: Signal) -> Result<(), AgentError> {
    match process_liveness(handle) {
        Liveness::Alive => killpg_task(handle, sig),
        Liveness::Gone => Ok(()),
        Liveness::Unknown(e) => Err(proc_unreadable(handle, e)),
    }
}

fn killpg_task(handle: &TaskHandle, sig: Signal) -> Result<(), AgentError> {
    let Some((pid, _)) = pid_of(handle) else {
        return Ok(());
    };
    match killpg(Pid::from_raw(pid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(AgentError::driver(
            &handle.driver,
            format!("signal {sig} to process group {pid}: {e}"),
        )),
    }
}

/// [`signal_group`], waiting (until `deadline`) for `/proc` to become readable.
async fn signal_when_seen(
    handle: &TaskHandle,
    sig: Signal,
    deadline: tokio::time::Instant,
) -> Result<(), AgentError> {
    loop {
        match process_liveness(handle) {
            Liveness::Alive => return killpg_task(handle, sig),
            Liveness::Gone => return Ok(()),
            Liveness::Unknown(e) if tokio::time::Instant::now() >= deadline => {
                return Err(proc_unreadable(handle, e))
            }
            Liveness::Unknown(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Polls until the task is gone or `deadline` passes.
async fn wait_gone(handle: &TaskHandle, deadline: tokio::time::Instant) {
    while !matches!(process_liveness(handle), Liveness::Gone)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(POLL).await;
    }
}

/// Sends `signal`, waits up to `timeout`, then SIGKILL; whatever is left of the process group
/// goes too.
pub(crate) async fn stop_process(
    handle: &TaskHandle,
    signal: &str,
    timeout: Duration,
) -> Result<(), AgentError> {
    let sig = parse_signal(signal)?;
    let deadline = tokio::time::Instant::now() + timeout;
    signal_when_seen(handle, sig, deadline).await?;
    wait_gone(handle, deadline).await;
    let kill_deadline = tokio::time::Instant::now() + KILL_WAIT;
    signal_when_seen(handle, Signal::SIGKILL, kill_deadline).await?;
    wait_gone(handle, kill_deadline).await;
    // Whatever else is left in the group (children that ignored the signal) goes too: killpg
    // reaches exactly the group's members (ESRCH when none is left), without reading /proc.
    if let Some((pid, _)) = pid_of(handle) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    Ok(())
}

pub(crate) fn process_stats(handle: &TaskHandle) -> TaskStats {
    let Some((pid, _)) = pid_of(handle) else {
        return TaskStats::default();
    };
    if !matches!(process_liveness(handle), Liveness::Alive) {
        return TaskStats::default();
    }
    let members = procfs::group_members(pid);
    let ticks = procfs::clock_ticks();
    let page = procfs::page_size();
    TaskStats {
        memory_rss_bytes: members.iter().map(|m| m.rss_pages * page).sum(),
        cpu_total_ns: members
            .iter()
            .map(|m| (m.utime + m.stime) * 1_000_000_000 / ticks)
            .sum(),
        pids: members.len() as u32,
        source: super::StatsSource::Procfs,
    }
}

#[async_trait]
impl Driver for RawExecDriver {
    fn name(&self) -> &'static str {
        "raw_exec"
    }

    async fn fingerprint(&self) -> DriverInfo {
        let mut info = DriverInfo {
            detected: true,
            healthy: true,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        };
        info.attributes.insert("driver.raw_exec".into(), "1".into());
        info
    }

    async fn start(&self, spec: &TaskSpec) -> Result<TaskHandle, AgentError> {
        if !spec.volume_mounts.is_empty() && !spec.user.is_empty() {
            // The binds need root; the task would switch user before making them.
            return Err(AgentError::driver(
                "raw_exec",
                format!(
                    "volume_mount with user {:?} is not supported: raw_exec tasks with host volumes run as the agent's user",
                    spec.user
                ),
            ));
        }
        spawn_process(
            spec,
            SpawnOptions {
                driver: "raw_exec",
                inherit_env: true,
                cgroup: None,
                isolate: None,
            },
        )
        .await
    }

    async fn recover(&self, handle: &TaskHandle) -> Result<bool, AgentError> {
        recover_process(handle)
    }

    async fn wait(&self, handle: &TaskHandle) -> Result<ExitResult, AgentError> {
        Ok(wait_process(handle).await)
    }

    async fn signal(&self, handle: &TaskHandle, signal: &str) -> Result<(), AgentError> {
        signal_group(handle, parse_signal(signal)?)
    }

    async fn stop(
        &self,
        handle: &TaskHandle,
        signal: &str,
        timeout: Duration,
    ) -> Result<(), AgentError> {
        stop_process(handle, signal, timeout).await
    }

    async fn destroy(&self, _handle: &TaskHandle) -> Result<(), AgentError> {
        Ok(())
    }

    async fn stats(&self, handle: &TaskHandle) -> Result<TaskStats, AgentError> {
        Ok(process_stats(handle))
    }

    async fn exec(&self, handle: &TaskHandle, req: &ExecRequest) -> Result<ExecOutput, AgentError> {
        exec_in_process(handle, req, Entry::AsProcess).await
    }

    async fn exec_session(
        &self,
        handle: &TaskHandle,
        req: &SessionRequest,
    ) -> Result<ExecSession, AgentError> {
        super::session::start_session(handle, req, Entry::AsProcess).await
    }
}
