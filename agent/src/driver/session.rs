//! Interactive commands inside a running process task, for `raw_exec` and `exec`
//! ([`super::Driver::exec_session`], behind `nctl alloc exec`).
//!
//! The command enters the task as [`super::inside`] has a checked command enter it (the task's
//! user, environment and directory; for `exec` also its namespaces, root and cgroup), in its
//! own session and process group. Its stdio is three pipes, or with a TTY one pseudo-terminal
//! that is also its controlling terminal. Three parts run it: a writer feeding stdin (and
//! resizing the terminal) from the session's input, readers turning output into events, and
//! the owner that waits for the command. When the input's sender is dropped the owner kills
//! the command's process group; when the command exits the group is killed too, so nothing
//! it left behind keeps the output open, and the last event is its exit code.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::sync::Arc;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use nomos_api::exec::{ExecEvent, ExecInput, EXEC_CHUNK_BYTES};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::inside::{command_in, enter_task, target_process, Entry};
use super::{ExecSession, SessionRequest, TaskHandle, SESSION_QUEUE};
use crate::error::AgentError;

/// The terminal type a TTY session gets when the task's environment names none.
const DEFAULT_TERM: &str = "xterm";

/// Starts `req` inside the process task of `handle`.
pub(crate) async fn start_session(
    handle: &TaskHandle,
    req: &SessionRequest,
    entry: Entry,
) -> Result<ExecSession, AgentError> {
    let (program, args) = req
        .command
        .split_first()
        .ok_or_else(|| AgentError::Config("exec needs a command".into()))?;
    let target = target_process(handle, entry)?;
    let mut cmd = command_in(target, entry, program, args)?;
    enter_task(&mut cmd, handle, entry);
    let failed = |e: std::io::Error| {
        AgentError::driver(
            &handle.driver,
            format!("starting {program:?} in task {}: {e}", handle.task),
        )
    };
    let (input, input_rx) = mpsc::channel(SESSION_QUEUE);
    let (events_tx, events) = mpsc::channel(SESSION_QUEUE);
    if req.tty {
        let terminal = Terminal::attach(&mut cmd).map_err(failed)?;
        let child = spawn(cmd).map_err(failed)?;
        tokio::spawn(run_with_terminal(child, terminal, input_rx, events_tx));
    } else {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = spawn(cmd).map_err(failed)?;
        tokio::spawn(run_with_pipes(child, input_rx, events_tx));
    }
    Ok(ExecSession { input, events })
}

fn spawn(cmd: std::process::Command) -> std::io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let child = cmd.spawn();
    // The parent's copies of the terminal's or pipes' child ends go with `cmd`, so reads end
    // when the command's do.
    drop(cmd);
    child
}

/// Kills the command's process group when dropped: the session ended, however it ended.
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

/// Runs a command with pipes: stdin from the input, stdout and stderr as their events.
async fn run_with_pipes(
    mut child: tokio::process::Child,
    mut input: mpsc::Receiver<ExecInput>,
    events: mpsc::Sender<ExecEvent>,
) {
    let group = GroupKill(child.id().map(|id| id as i32));
    let mut stdin = child.stdin.take();
    let readers = [
        child
            .stdout
            .take()
            .map(|r| forward(r, events.clone(), ExecEvent::Stdout)),
        child
            .stderr
            .take()
            .map(|r| forward(r, events.clone(), ExecEvent::Stderr)),
    ];
    let feed = async {
        while let Some(frame) = input.recv().await {
            match frame {
                ExecInput::Stdin(data) => {
                    if let Some(pipe) = stdin.as_mut() {
                        if pipe.write_all(&data).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                ExecInput::StdinClose => stdin = None,
                ExecInput::TtySize { .. } | ExecInput::Heartbeat => {}
            }
        }
    };
    finish(child, group, feed, readers.into_iter().flatten(), events).await;
}

/// Runs a command on a pseudo-terminal: stdin and resizes go to it, its output is stdout.
async fn run_with_terminal(
    child: tokio::process::Child,
    terminal: Terminal,
    mut input: mpsc::Receiver<ExecInput>,
    events: mpsc::Sender<ExecEvent>,
) {
    let group = GroupKill(child.id().map(|id| id as i32));
    let master = terminal.master.clone();
    let reader = forward(
        PtyReader(terminal.master.clone()),
        events.clone(),
        ExecEvent::Stdout,
    );
    let feed = async {
        while let Some(frame) = input.recv().await {
            let done = match frame {
                ExecInput::Stdin(data) => master.write_all(&data).await,
                // End of input on a terminal is its EOF character (^D).
                ExecInput::StdinClose => master.write_all(&[4]).await,
                ExecInput::TtySize { height, width } => master.resize(height, width),
                ExecInput::Heartbeat => Ok(()),
            };
            if done.is_err() {
                break;
            }
        }
        // Keep waiting for the client to go away; what it sends now has nowhere to go.
        while input.recv().await.is_some() {}
    };
    finish(child, group, feed, [reader], events).await;
}

/// Waits for the command, or kills it when `feed` ends (the client went away); then kills
/// what it left in its group, lets the readers drain and sends the exit code.
async fn finish(
    mut child: tokio::process::Child,
    group: GroupKill,
    feed: impl std::future::Future<Output = ()>,
    readers: impl IntoIterator<Item = tokio::task::JoinHandle<()>>,
    events: mpsc::Sender<ExecEvent>,
) {
    let readers: Vec<_> = readers.into_iter().collect();
    let status = tokio::select! {
        status = child.wait() => status,
        _ = feed => {
            drop(group);
            for r in &readers {
                r.abort();
            }
            let _ = child.wait().await;
            return;
        }
    };
    drop(group);
    for r in readers {
        let _ = r.await;
    }
    let exit_code = match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(_) => -1,
    };
    let _ = events.send(ExecEvent::Exited { exit_code }).await;
}

/// Copies `source` into events made by `wrap`, one chunk at most [`EXEC_CHUNK_BYTES`] each,
/// until it ends or no one listens.
fn forward<R>(
    mut source: R,
    events: mpsc::Sender<ExecEvent>,
    wrap: fn(Vec<u8>) -> ExecEvent,
) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut buf = vec![0u8; EXEC_CHUNK_BYTES];
        loop {
            match source.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if events.send(wrap(buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// A pseudo-terminal whose other end is a command's stdio and controlling terminal.
struct Terminal {
    master: Arc<PtyMaster>,
}

impl Terminal {
    /// Opens a pseudo-terminal and makes its other end `cmd`'s stdin, stdout, stderr and
    /// controlling terminal (after the session [`enter_task`] starts).
    fn attach(cmd: &mut std::process::Command) -> std::io::Result<Terminal> {
        let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
        let child_end: OwnedFd = pty.slave;
        cmd.stdin(child_end.try_clone()?)
            .stdout(child_end.try_clone()?)
            .stderr(child_end);
        if !cmd.get_envs().any(|(k, v)| k == "TERM" && v.is_some()) {
            cmd.env("TERM", DEFAULT_TERM);
        }
        // SAFETY: one ioctl on the child's stdin between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(Terminal {
            master: Arc::new(PtyMaster::new(pty.master)?),
        })
    }
}

/// The agent's end of a pseudo-terminal, read and written without blocking.
struct PtyMaster(AsyncFd<OwnedFd>);

impl PtyMaster {
    fn new(fd: OwnedFd) -> std::io::Result<PtyMaster> {
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        // SAFETY: an `OwnedFd` is open and stays the same descriptor until it is dropped,
        // which happens only with the `AsyncFd` that owns it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(PtyMaster(fd))
    }

    async fn write_all(&self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let mut ready = self.0.writable().await?;
            // SAFETY: writes from a valid buffer of its own length.
            let written = ready.try_io(|fd| {
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match written {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Sets the terminal's size; the command gets SIGWINCH.
    fn resize(&self, height: u16, width: u16) -> std::io::Result<()> {
        let size = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        if unsafe { libc::ioctl(self.0.as_raw_fd(), libc::TIOCSWINSZ, &size) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// [`PtyMaster`] as an [`AsyncRead`], for [`forward`].
struct PtyReader(Arc<PtyMaster>);

impl AsyncRead for PtyReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        loop {
            let mut ready = match self.0 .0.poll_read_ready(cx) {
                Poll::Ready(Ok(r)) => r,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            let unfilled = buf.initialize_unfilled();
            let read = ready.try_io(|fd| {
                // SAFETY: reads into the initialised unfilled part of `buf`.
                let n = unsafe {
                    libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len())
                };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match read {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}
