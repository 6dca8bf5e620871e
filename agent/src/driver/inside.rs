//! Running a command inside a running process task, for `raw_exec` and `exec`
//! ([`super::Driver::exec`]).
//!
//! What "inside" means is read from the task's own process, so it holds after an agent restart
//! too: its user and group, its environment and its working directory. A `raw_exec` command
//! runs with those, as the task does. An `exec` command goes through util-linux `nsenter` into
//! the task's mount and pid namespaces, its chroot and working directory, and joins its cgroup,
//! so it sees what the task sees and no more. The command runs in its own process group,
//! killed whole when it outlives its timeout; stdout and stderr share one pipe, of which the
//! first `output_limit` bytes are kept.

use std::os::unix::process::CommandExt;
use std::process::Stdio;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;

use super::raw_exec::{in_new_session, recover_process};
use super::{ExecOutput, ExecRequest, OutputCap, TaskHandle, AGENT_ID_ENV};
use crate::error::AgentError;
use crate::procfs;

/// How a command enters its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// As the task's process runs: its user, environment and directory (`raw_exec`).
    AsProcess,
    /// Also into its namespaces, root and cgroup (`exec`).
    Isolated,
}

/// Runs `req` inside the process task of `handle`.
pub(crate) async fn exec_in_process(
    handle: &TaskHandle,
    req: &ExecRequest,
    entry: Entry,
) -> Result<ExecOutput, AgentError> {
    let target = target_process(handle, entry)?;
    let mut cmd = command_in(target, entry, &req.command, &req.args)?;
    cmd.stdin(Stdio::null());
    enter_task(&mut cmd, handle, entry);
    run_capped(cmd, handle, req).await
}

/// Marks `cmd` as a command run inside the task and has it start its own session (its own
/// process group, killed whole) in the task's cgroup when the task is isolated.
pub(super) fn enter_task(cmd: &mut std::process::Command, handle: &TaskHandle, entry: Entry) {
    // Marked as no task process of this agent's: a search for a task started but not recorded
    // (`raw_exec::spawn_process`) must never adopt a command run inside it.
    cmd.env(AGENT_ID_ENV, format!("exec:{}", handle.agent_id));
    let cgroup = handle.cgroup.clone().filter(|_| entry == Entry::Isolated);
    in_new_session(cmd, cgroup);
}

/// The process whose view the command takes: the task's group leader for `raw_exec`; for
/// `exec`, the first process of the task's pid namespace (the child `unshare --fork` waits for,
/// chrooted and running as the task's user).
pub(super) fn target_process(handle: &TaskHandle, entry: Entry) -> Result<i32, AgentError> {
    let gone = || AgentError::TaskNotRunning {
        task: handle.task.clone(),
    };
    if !recover_process(handle)? {
        return Err(gone());
    }
    let pid = handle.pid.ok_or_else(gone)?;
    match entry {
        Entry::AsProcess => Ok(pid),
        Entry::Isolated => procfs::children(pid).into_iter().next().ok_or_else(gone),
    }
}

/// The command line that runs `program` with `args` as `target` runs, with its environment.
pub(super) fn command_in(
    target: i32,
    entry: Entry,
    program: &str,
    args: &[String],
) -> Result<std::process::Command, AgentError> {
    let proc_err = |what: &str, e| AgentError::io(format!("/proc/{target}/{what}"), e);
    let (uid, gid) = procfs::credentials(target).map_err(|e| proc_err("status", e))?;
    let env = procfs::environ(target).map_err(|e| proc_err("environ", e))?;
    let mut cmd = match entry {
        Entry::AsProcess => {
            let cwd = std::fs::read_link(format!("/proc/{target}/cwd"))
                .map_err(|e| proc_err("cwd", e))?;
            let mut cmd = std::process::Command::new(program);
            cmd.current_dir(cwd);
            // A task of the agent's own user keeps the agent's groups, as the task did.
            if (uid, gid)
                != (
                    nix::unistd::getuid().as_raw(),
                    nix::unistd::getgid().as_raw(),
                )
            {
                cmd.uid(uid).gid(gid);
            }
            cmd
        }
        Entry::Isolated => {
            let mut cmd = std::process::Command::new("nsenter");
            cmd.arg(format!("--target={target}"))
                .args(["--mount", "--pid", "--root", "--wd"])
                .arg(format!("--setgid={gid}"))
                .arg(format!("--setuid={uid}"))
                .arg("--")
                .arg(program);
            cmd
        }
    };
    cmd.args(args).env_clear().envs(env);
    Ok(cmd)
}

/// Spawns `cmd` with stdout and stderr on one pipe, keeps the first `output_limit` bytes of
/// it, and waits for it; past `timeout` its process group is killed.
async fn run_capped(
    mut cmd: std::process::Command,
    handle: &TaskHandle,
    req: &ExecRequest,
) -> Result<ExecOutput, AgentError> {
    let task = &handle.task;
    let failed = |e: std::io::Error| {
        AgentError::driver(
            &handle.driver,
            format!("running {:?} in task {task}: {e}", req.command),
        )
    };
    let (reader, writer) = std::io::pipe().map_err(failed)?;
    cmd.stdout(writer.try_clone().map_err(failed)?)
        .stderr(writer);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn().map_err(failed)?;
    // The command's copies of the pipe's write end go with it, so the read ends with the output.
    drop(cmd);
    let group = child.id().map(|id| id as i32);
    let mut pipe =
        tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into()).map_err(failed)?;
    let run = async {
        let mut cap = OutputCap::new(req.output_limit);
        let mut buf = vec![0u8; 8192];
        loop {
            let n = pipe.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            cap.push(&buf[..n]);
        }
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((cap, status))
    };
    match tokio::time::timeout(req.timeout, run).await {
        Ok(Ok((cap, status))) => {
            use std::os::unix::process::ExitStatusExt;
            let (output, truncated) = cap.finish();
            Ok(ExecOutput {
                exit_code: status.code(),
                signal: status.signal(),
                output,
                truncated,
            })
        }
        Ok(Err(e)) => Err(failed(e)),
        Err(_) => {
            if let Some(pgid) = group {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
            let _ = child.wait().await;
            Err(AgentError::ExecTimedOut {
                task: task.clone(),
                command: req.command.clone(),
                timeout: req.timeout,
            })
        }
    }
}
