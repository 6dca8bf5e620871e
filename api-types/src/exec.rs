//! The frames of Nomad's exec websocket (`/v1/client/allocation/:alloc_id/exec`): JSON text
//! messages carrying a command's stdin and terminal size one way ([`ExecInput`]) and its
//! output and exit code the other ([`ExecEvent`]), with bytes in base64. Servers, agents and
//! `nctl` all speak them through [`ExecInput::parse`] / [`ExecEvent::to_json`] and back.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The most bytes of output one frame carries (a frame is about 4/3 of it in base64).
pub const EXEC_CHUNK_BYTES: usize = 16 << 10;
/// The largest frame a peer accepts; a bigger one closes the session.
pub const EXEC_MAX_FRAME_BYTES: usize = 1 << 20;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecInput {
    Stdin(Vec<u8>),
    /// The client's stdin ended: the command's stdin is closed.
    StdinClose,
    TtySize {
        height: u16,
        width: u16,
    },
    /// `{}`: keeps the session from going idle.
    Heartbeat,
}

/// What a command sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The command ended; the last frame of a session.
    Exited {
        exit_code: i32,
    },
    /// `{}`, sent while nothing else is.
    Heartbeat,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Frame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stdin: Option<Stream>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stdout: Option<Stream>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stderr: Option<Stream>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tty_size: Option<TtySize>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    exited: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<ExitedResult>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stream {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    data: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    close: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TtySize {
    height: u16,
    width: u16,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ExitedResult {
    exit_code: i32,
}

fn bad(why: impl std::fmt::Display) -> ApiError {
    ApiError::BadFrame(why.to_string())
}

fn encode(data: &[u8]) -> Stream {
    Stream {
        data: base64::engine::general_purpose::STANDARD.encode(data),
        close: false,
    }
}

fn decode(stream: &Stream, name: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(&stream.data)
        .map_err(|e| bad(format!("{name}.data must be base64: {e}")))
}

fn parse_frame(text: &str) -> Result<Frame, ApiError> {
    serde_json::from_str(text).map_err(|e| bad(format!("expected an exec frame: {e}")))
}

fn to_json(frame: &Frame) -> String {
    serde_json::to_string(frame).unwrap_or_else(|_| "{}".to_string())
}

impl ExecInput {
    /// Reads a client's frame. A frame with none of `stdin`, `tty_size` (Nomad's `{}`, or its
    /// `{"version", "auth_token"}` handshake) is a heartbeat.
    pub fn parse(text: &str) -> Result<ExecInput, ApiError> {
        let frame = parse_frame(text)?;
        if let Some(size) = frame.tty_size {
            return Ok(ExecInput::TtySize {
                height: size.height,
                width: size.width,
            });
        }
        match frame.stdin {
            Some(s) if s.close => Ok(ExecInput::StdinClose),
            Some(s) => Ok(ExecInput::Stdin(decode(&s, "stdin")?)),
            None => Ok(ExecInput::Heartbeat),
        }
    }

    pub fn to_json(&self) -> String {
        let frame = match self {
            ExecInput::Stdin(data) => Frame {
                stdin: Some(encode(data)),
                ..Default::default()
            },
            ExecInput::StdinClose => Frame {
                stdin: Some(Stream {
                    close: true,
                    ..Default::default()
                }),
                ..Default::default()
            },
            ExecInput::TtySize { height, width } => Frame {
                tty_size: Some(TtySize {
                    height: *height,
                    width: *width,
                }),
                ..Default::default()
            },
            ExecInput::Heartbeat => Frame::default(),
        };
        to_json(&frame)
    }
}

impl ExecEvent {
    /// Reads a server's frame; `{"stdout": {"close": true}}` and `{}` are heartbeats.
    pub fn parse(text: &str) -> Result<ExecEvent, ApiError> {
        let frame = parse_frame(text)?;
        if frame.exited {
            let result = frame
                .result
                .ok_or_else(|| bad("an exited frame must carry result.exit_code"))?;
            return Ok(ExecEvent::Exited {
                exit_code: result.exit_code,
            });
        }
        match (&frame.stdout, &frame.stderr) {
            (Some(s), _) if !s.data.is_empty() => Ok(ExecEvent::Stdout(decode(s, "stdout")?)),
            (_, Some(s)) if !s.data.is_empty() => Ok(ExecEvent::Stderr(decode(s, "stderr")?)),
            _ => Ok(ExecEvent::Heartbeat),
        }
    }

    pub fn to_json(&self) -> String {
        let frame = match self {
            ExecEvent::Stdout(data) => Frame {
                stdout: Some(encode(data)),
                ..Default::default()
            },
            ExecEvent::Stderr(data) => Frame {
                stderr: Some(encode(data)),
                ..Default::default()
            },
            ExecEvent::Exited { exit_code } => Frame {
                exited: true,
                result: Some(ExitedResult {
                    exit_code: *exit_code,
                }),
                ..Default::default()
            },
            ExecEvent::Heartbeat => Frame::default(),
        };
        to_json(&frame)
    }
}

/// The first frame of a session opened with `?ws_handshake=true` (browsers cannot set
/// headers on a websocket): `{"version":1,"auth_token":"SECRET"}`, an empty token meaning
/// anonymous.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExecHandshake {
    pub version: u32,
    #[serde(default)]
    pub auth_token: String,
}

/// The handshake version this side speaks (Nomad's).
pub const EXEC_HANDSHAKE_VERSION: u32 = 1;

impl ExecHandshake {
    /// Reads a handshake frame; anything else (a stdin frame, another version) is refused.
    pub fn parse(text: &str) -> Result<ExecHandshake, ApiError> {
        let handshake: ExecHandshake = serde_json::from_str(text).map_err(|e| {
            bad(format!(
                "expected the handshake {{\"version\":1,\"auth_token\":\"...\"}} as the first frame: {e}"
            ))
        })?;
        if handshake.version != EXEC_HANDSHAKE_VERSION {
            return Err(bad(format!(
                "handshake version must be {EXEC_HANDSHAKE_VERSION}, found {}",
                handshake.version
            )));
        }
        Ok(handshake)
    }
}

/// Reads the `command` parameter: a JSON array of at least one string, the program first.
pub fn parse_command(param: Option<&str>) -> Result<Vec<String>, ApiError> {
    let text = param.filter(|p| !p.trim().is_empty()).ok_or_else(|| {
        bad("missing command: expected ?command= with a JSON array such as [\"/bin/sh\"]")
    })?;
    let command: Vec<String> = serde_json::from_str(text).map_err(|e| {
        bad(format!(
            "command must be a JSON array of strings such as [\"/bin/sh\"], found {text:?}: {e}"
        ))
    })?;
    match command.first() {
        Some(program) if !program.is_empty() => Ok(command),
        _ => Err(bad(
            "command must name a program: found an empty array or name",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_read_as_nomad_writes_them() {
        let cases = [
            (
                r#"{"stdin":{"data":"aGk="}}"#,
                ExecInput::Stdin(b"hi".to_vec()),
            ),
            (r#"{"stdin":{"close":true}}"#, ExecInput::StdinClose),
            (
                r#"{"tty_size":{"height":24,"width":80}}"#,
                ExecInput::TtySize {
                    height: 24,
                    width: 80,
                },
            ),
            ("{}", ExecInput::Heartbeat),
            (r#"{"version":1,"auth_token":"x"}"#, ExecInput::Heartbeat),
        ];
        for (text, want) in cases {
            assert_eq!(ExecInput::parse(text).unwrap(), want, "{text}");
            assert_eq!(ExecInput::parse(&want.to_json()).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn hostile_client_frames_are_refused_with_the_reason() {
        let cases = [
            ("not json", "expected an exec frame"),
            (r#"{"stdin":{"data":"%%%"}}"#, "stdin.data must be base64"),
            (
                r#"{"tty_size":{"height":-1,"width":80}}"#,
                "expected an exec frame",
            ),
            ("[1]", "expected an exec frame"),
        ];
        for (text, want) in cases {
            let err = ExecInput::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn server_frames_have_nomads_shapes() {
        let cases = [
            (
                ExecEvent::Stdout(b"hi".to_vec()),
                r#"{"stdout":{"data":"aGk="}}"#,
            ),
            (
                ExecEvent::Stderr(b"hi".to_vec()),
                r#"{"stderr":{"data":"aGk="}}"#,
            ),
            (
                ExecEvent::Exited { exit_code: 3 },
                r#"{"exited":true,"result":{"exit_code":3}}"#,
            ),
            (ExecEvent::Heartbeat, "{}"),
        ];
        for (event, want) in cases {
            assert_eq!(event.to_json(), want);
            assert_eq!(ExecEvent::parse(want).unwrap(), event);
        }
        assert_eq!(
            ExecEvent::parse(r#"{"stdout":{"close":true}}"#).unwrap(),
            ExecEvent::Heartbeat
        );
        assert!(ExecEvent::parse(r#"{"exited":true}"#).is_err());
    }

    #[test]
    fn a_handshake_carries_version_one_and_the_token() {
        let h = ExecHandshake::parse(r#"{"version":1,"auth_token":"abc"}"#).unwrap();
        assert_eq!(h.auth_token, "abc");
        assert_eq!(
            ExecHandshake::parse(r#"{"version":1}"#).unwrap().auth_token,
            ""
        );
        let refused = [
            (r#"{"stdin":{"data":"aGk="}}"#, "expected the handshake"),
            ("{}", "expected the handshake"),
            (r#"{"version":2,"auth_token":"abc"}"#, "version must be 1"),
            ("not json", "expected the handshake"),
        ];
        for (text, want) in refused {
            let err = ExecHandshake::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn commands_are_json_arrays_naming_a_program() {
        let ok = [
            (r#"["/bin/sh"]"#, vec!["/bin/sh"]),
            (r#"["sh","-c","exit 3"]"#, vec!["sh", "-c", "exit 3"]),
        ];
        for (text, want) in ok {
            assert_eq!(parse_command(Some(text)).unwrap(), want, "{text}");
        }
        let refused = [
            (None, "missing command"),
            (Some(""), "missing command"),
            (Some("[]"), "must name a program"),
            (Some(r#"[""]"#), "must name a program"),
            (Some("/bin/sh"), "must be a JSON array"),
            (Some("[1]"), "must be a JSON array"),
        ];
        for (param, want) in refused {
            let err = parse_command(param).unwrap_err().to_string();
            assert!(err.contains(want), "{param:?}: {err}");
        }
    }
}
