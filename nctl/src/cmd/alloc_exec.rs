//! `nctl alloc exec [-i] [-t] [--task T] ALLOC CMD...`: runs a command inside a running task
//! through the server's exec websocket (Nomad's `/v1/client/allocation/:id/exec`), as
//! `nomad alloc exec` does. With `-t` the local terminal is put in raw mode (restored on every
//! way out, by [`RawMode`]'s drop), its size is sent and sent again on SIGWINCH. Stdin is read
//! on a thread of its own (a blocked read must not hold the process at exit), stdout and
//! stderr are written as they come, and the exit code is the command's.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;

use futures::{SinkExt, StreamExt};
use nomos_api::exec::{ExecEvent, ExecInput, EXEC_CHUNK_BYTES, EXEC_MAX_FRAME_BYTES};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;
use tungstenite::client::IntoClientRequest;

use super::client::{escape, ApiError};
use super::Global;

/// `nctl alloc exec`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// Pass stdin to the command (`-i=false`: the command's stdin is closed at once).
    #[arg(short = 'i', long = "stdin", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub stdin: bool,
    /// Give the command a pseudo-terminal (default: when stdin is a terminal).
    #[arg(short = 't', long = "tty", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub tty: Option<bool>,
    /// The task to run in (needed when the allocation has several).
    #[arg(long = "task")]
    pub task: Option<String>,
    /// The allocation: its ID or a unique prefix.
    pub alloc: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Runs the command; returns its exit code.
pub async fn run(g: &Global, args: ExecArgs) -> anyhow::Result<i32> {
    let tty = args.tty.unwrap_or_else(|| std::io::stdin().is_terminal());
    let request = exec_request(g, &args, tty)?;
    let connector = match g.tls.client_tls() {
        tls if tls == nomos_tls::ClientTls::default() => None,
        tls => Some(tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(
            nomos_tls::client_config(&tls)?,
        ))),
    };
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(EXEC_MAX_FRAME_BYTES));
    let (socket, _) =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), false, connector)
            .await
            .map_err(|e| refused(e, &g.address))?;
    let raw = if tty && std::io::stdin().is_terminal() {
        Some(RawMode::enter()?)
    } else {
        None
    };
    let code = session(socket, args.stdin, raw.is_some()).await;
    drop(raw);
    code
}

/// The websocket request: `ws(s)://ADDR/v1/client/allocation/ID/exec?...` with the token.
fn exec_request(
    g: &Global,
    args: &ExecArgs,
    tty: bool,
) -> anyhow::Result<tungstenite::handshake::client::Request> {
    let address = g.address.trim_end_matches('/');
    let base = if let Some(rest) = address.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        format!(
            "ws://{}",
            address.strip_prefix("http://").unwrap_or(address)
        )
    };
    let mut url = format!(
        "{base}/v1/client/allocation/{}/exec?namespace={}&tty={tty}&command={}",
        escape(&args.alloc),
        escape(&g.namespace),
        escape(&serde_json::to_string(&args.command)?)
    );
    if let Some(task) = &args.task {
        url.push_str(&format!("&task={}", escape(task)));
    }
    let mut request = url.into_client_request()?;
    if let Some(token) = g.token() {
        request
            .headers_mut()
            .insert("X-Nomad-Token", token.parse()?);
    }
    Ok(request)
}

/// A refused or failed connection: the server's answer as an [`ApiError`], or why it could
/// not be reached.
fn refused(e: tungstenite::Error, address: &str) -> anyhow::Error {
    match e {
        tungstenite::Error::Http(resp) => {
            let body = resp.body().as_deref().unwrap_or_default();
            ApiError::new(resp.status().as_u16(), &String::from_utf8_lossy(body)).into()
        }
        e => anyhow::anyhow!(
            "cannot reach the Nomos server at {address}: {e}\n(set NOMOS_ADDR or --address)"
        ),
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Relays stdin, terminal sizes and output until the command exits; its exit code.
async fn session(socket: Socket, forward_stdin: bool, tty: bool) -> anyhow::Result<i32> {
    let (mut to_server, mut from_server) = socket.split();
    let (input, mut inputs) = mpsc::channel::<ExecInput>(16);
    if forward_stdin {
        read_stdin(input.clone());
    } else {
        input.try_send(ExecInput::StdinClose).ok();
    }
    if tty {
        watch_terminal_size(input.clone())?;
    }
    drop(input);
    let send = async {
        while let Some(frame) = inputs.recv().await {
            let msg = tungstenite::Message::Text(frame.to_json().into());
            if to_server.send(msg).await.is_err() {
                break;
            }
        }
        // Nothing more to send: wait for the output to end.
        std::future::pending::<()>().await;
    };
    let receive = async {
        while let Some(msg) = from_server.next().await {
            let text = match msg? {
                tungstenite::Message::Text(t) => t,
                tungstenite::Message::Close(_) => break,
                _ => continue,
            };
            match ExecEvent::parse(&text)? {
                ExecEvent::Stdout(data) => write_out(&mut std::io::stdout(), &data)?,
                ExecEvent::Stderr(data) => write_out(&mut std::io::stderr(), &data)?,
                ExecEvent::Exited { exit_code } => return Ok(exit_code),
                ExecEvent::Heartbeat => {}
            }
        }
        anyhow::bail!("the exec session ended before the command did (no exit code came)")
    };
    tokio::select! {
        code = receive => code,
        _ = send => unreachable!("sending never ends by itself"),
    }
}

fn write_out(out: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    out.write_all(data)?;
    out.flush()
}

/// Reads stdin on a thread of its own into `input`, ending with [`ExecInput::StdinClose`].
fn read_stdin(input: mpsc::Sender<ExecInput>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; EXEC_CHUNK_BYTES];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if input
                        .blocking_send(ExecInput::Stdin(buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        let _ = input.blocking_send(ExecInput::StdinClose);
    });
}

/// Sends the terminal's size now and on every SIGWINCH.
fn watch_terminal_size(input: mpsc::Sender<ExecInput>) -> anyhow::Result<()> {
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    tokio::spawn(async move {
        loop {
            if let Some((height, width)) = terminal_size() {
                if input
                    .send(ExecInput::TtySize { height, width })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if winch.recv().await.is_none() {
                return;
            }
        }
    });
    Ok(())
}

/// The local terminal's rows and columns, when stdin or stdout is one.
fn terminal_size() -> Option<(u16, u16)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    [libc::STDIN_FILENO, libc::STDOUT_FILENO]
        .into_iter()
        // SAFETY: TIOCGWINSZ writes one winsize through a valid pointer.
        .find(|fd| unsafe { libc::ioctl(*fd, libc::TIOCGWINSZ, &mut size) } == 0)
        .map(|_| (size.ws_row, size.ws_col))
        .filter(|(rows, cols)| *rows > 0 && *cols > 0)
}

/// The local terminal in raw mode, restored to how it was when dropped.
struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    fn enter() -> anyhow::Result<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{tcsetattr, SetArg};
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        exec: ExecArgs,
    }

    fn parse(args: &[&str]) -> ExecArgs {
        Cli::try_parse_from(std::iter::once("exec").chain(args.iter().copied()))
            .unwrap()
            .exec
    }

    /// (arguments, stdin, tty, task, command)
    type ParseCase<'a> = (
        &'a [&'a str],
        bool,
        Option<bool>,
        Option<&'a str>,
        &'a [&'a str],
    );

    #[test]
    fn flags_read_as_nomads() {
        let cases: &[ParseCase] = &[
            (&["a1", "sh"], true, None, None, &["sh"]),
            (
                &["-i", "-t", "a1", "/bin/sh"],
                true,
                Some(true),
                None,
                &["/bin/sh"],
            ),
            (&["-i=false", "a1", "ls"], false, None, None, &["ls"]),
            (&["-t=false", "a1", "ls"], true, Some(false), None, &["ls"]),
            (
                &["--task", "web", "a1", "sh", "-c", "exit 3"],
                true,
                None,
                Some("web"),
                &["sh", "-c", "exit 3"],
            ),
            (
                &["a1", "ls", "-la", "/"],
                true,
                None,
                None,
                &["ls", "-la", "/"],
            ),
        ];
        for (args, stdin, tty, task, command) in cases {
            let got = parse(args);
            assert_eq!(got.stdin, *stdin, "{args:?}");
            assert_eq!(got.tty, *tty, "{args:?}");
            assert_eq!(got.task.as_deref(), *task, "{args:?}");
            assert_eq!(got.alloc, "a1");
            assert_eq!(got.command, *command, "{args:?}");
        }
    }

    #[test]
    fn a_command_is_required() {
        assert!(Cli::try_parse_from(["exec", "a1"]).is_err());
    }
}
