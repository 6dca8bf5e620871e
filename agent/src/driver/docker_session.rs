//! Interactive commands inside a running container ([`super::Driver::exec_session`] for
//! `docker`): Docker's exec API, attached to stdin, stdout and stderr, with a TTY when asked
//! (resized through Docker's exec resize). The command runs as the container's user, with
//! its environment and working directory. When the input's sender is dropped the command and
//! what it started are killed (Docker has no call for it: they are killed by pid); when the
//! output ends the last event is the exit code Docker reports.

use bollard::exec::{ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use futures::StreamExt;
use nomos_api::exec::{ExecEvent, ExecInput};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::docker::{exec_exit_code, kill_exec_process};
use super::{ExecSession, SessionRequest, SESSION_QUEUE};
use crate::error::AgentError;

/// Starts `req` in container `id` (running, as the caller checked).
pub(super) async fn start_session(
    docker: &Docker,
    id: &str,
    req: &SessionRequest,
) -> Result<ExecSession, AgentError> {
    let failed = |e: bollard::errors::Error| {
        AgentError::driver("docker", format!("exec {:?} in {id}: {e}", req.command))
    };
    let config = bollard::models::ExecConfig {
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(req.tty),
        cmd: Some(req.command.clone()),
        ..Default::default()
    };
    let exec_id = docker.create_exec(id, config).await.map_err(failed)?.id;
    let options = StartExecOptions {
        detach: false,
        tty: req.tty,
        output_capacity: None,
    };
    let StartExecResults::Attached { output, input } = docker
        .start_exec(&exec_id, Some(options))
        .await
        .map_err(failed)?
    else {
        return Err(AgentError::driver("docker", "exec started detached"));
    };
    let (input_tx, input_rx) = mpsc::channel(SESSION_QUEUE);
    let (events_tx, events) = mpsc::channel(SESSION_QUEUE);
    let exec = Exec {
        docker: docker.clone(),
        id: exec_id,
    };
    tokio::spawn(exec.run(output, input, input_rx, events_tx));
    Ok(ExecSession {
        input: input_tx,
        events,
    })
}

type Output = std::pin::Pin<
    Box<
        dyn futures::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>>
            + Send,
    >,
>;
type Input = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// One started exec.
struct Exec {
    docker: Docker,
    id: String,
}

impl Exec {
    /// Relays until the output ends (then sends the exit code) or the client goes away (then
    /// kills the command).
    async fn run(
        self,
        mut output: Output,
        input: Input,
        input_rx: mpsc::Receiver<ExecInput>,
        events: mpsc::Sender<ExecEvent>,
    ) {
        let relay_output = async {
            while let Some(Ok(item)) = output.next().await {
                use bollard::container::LogOutput;
                let event = match item {
                    LogOutput::StdErr { message } => ExecEvent::Stderr(message.to_vec()),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        ExecEvent::Stdout(message.to_vec())
                    }
                    LogOutput::StdIn { .. } => continue,
                };
                if events.send(event).await.is_err() {
                    return false;
                }
            }
            true
        };
        let ended = tokio::select! {
            ended = relay_output => ended,
            _ = self.feed(input, input_rx) => false,
        };
        if !ended {
            kill_exec_process(&self.docker, &self.id).await;
            return;
        }
        let exit_code = match exec_exit_code(&self.docker, &self.id).await {
            Ok(Some(code)) => code as i32,
            _ => -1,
        };
        let _ = events.send(ExecEvent::Exited { exit_code }).await;
    }

    /// Feeds stdin and resizes until the client goes away.
    async fn feed(&self, mut input: Input, mut frames: mpsc::Receiver<ExecInput>) {
        let mut open = true;
        while let Some(frame) = frames.recv().await {
            match frame {
                ExecInput::Stdin(data) if open => open = input.write_all(&data).await.is_ok(),
                ExecInput::StdinClose if open => {
                    open = false;
                    let _ = input.shutdown().await;
                }
                ExecInput::TtySize { height, width } => {
                    let size = ResizeExecOptions { height, width };
                    if let Err(e) = self.docker.resize_exec(&self.id, size).await {
                        tracing::debug!(exec = %self.id, error = %e, "resizing an exec failed");
                    }
                }
                _ => {}
            }
        }
    }
}
