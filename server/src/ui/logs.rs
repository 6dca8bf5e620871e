//! Live logs on the allocation page: `GET /ui/logs/{alloc}?task=&type=stdout|stderr&lines=N`
//! answers server-sent events relaying one task's log from its node's agent (or this
//! process's files under `nctl dev`), starting with the last `lines` lines.
//!
//! - `event: lines`, `id: OFFSET`, one `data:` field per log line: complete lines, the id the
//!   byte offset after them, so a browser that reconnects (`Last-Event-ID`) resumes there
//!   instead of repeating the tail;
//! - `event: end` with the reason, once the task or its allocation has finished and nothing
//!   more is written, after [`UiLogConfig::idle`] without output, or when the server shuts
//!   down; the page then stops following;
//! - a `: keepalive` comment every [`KEEPALIVE`], which also notices a browser that left.
//!
//! Limits: one task's stream per request, [`MAX_LINES`] lines of tail, at most
//! [`UiLogConfig::streams`] open at once (one more answers 429), lines cut at
//! [`MAX_LINE_BYTES`]. The route needs `read-logs` in the allocation's namespace.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use nomos_api::TaskRunState;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::UiError;
use crate::allocs::{find_alloc, pick_task};
use crate::error::ServerError;
use crate::nomad::fs_source::Source;
use crate::nomad::query::QueryOptions;
use crate::AppState;

/// Lines of tail when the request names none.
pub const DEFAULT_LINES: usize = 200;
/// Most lines of tail a request may ask for (the page keeps as many).
pub const MAX_LINES: usize = 5000;
/// Longest line relayed whole; a longer one goes out in pieces of this size.
pub const MAX_LINE_BYTES: usize = 16 << 10;
/// How often an idle stream writes a keepalive comment.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// Most bytes read back from the end to find the last lines.
const TAIL_SCAN_BYTES: u64 = 4 << 20;
/// Bytes asked of the agent per read.
const READ_BYTES: usize = 64 << 10;
/// How often a followed log is polled.
const POLL: Duration = Duration::from_millis(250);
/// Idle polls between checks whether the task has finished.
const POLLS_PER_CHECK: u32 = 8;

/// The relay's limits, kept in [`super::UiState`].
#[derive(Debug, Clone)]
pub struct UiLogConfig {
    /// Open streams, across the server.
    pub streams: Arc<Semaphore>,
    pub max_streams: usize,
    /// A stream with no new output for this long ends.
    pub idle: Duration,
}

impl UiLogConfig {
    pub fn new(max_streams: usize, idle: Duration) -> Self {
        UiLogConfig {
            streams: Arc::new(Semaphore::new(max_streams)),
            max_streams,
            idle,
        }
    }

    fn admit(&self) -> Result<OwnedSemaphorePermit, ServerError> {
        self.streams.clone().try_acquire_owned().map_err(|_| {
            ServerError::Busy(format!(
                "too many log streams are open (at most {}); close a tab or retry later",
                self.max_streams
            ))
        })
    }
}

impl Default for UiLogConfig {
    fn default() -> Self {
        UiLogConfig::new(64, Duration::from_secs(10 * 60))
    }
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq)]
struct LogRequest {
    task: Option<String>,
    stderr: bool,
    lines: usize,
    /// `Last-Event-ID`: a reconnecting browser's offset.
    resume_at: Option<u64>,
}

impl LogRequest {
    fn parse(q: &QueryOptions, headers: &HeaderMap) -> Result<Self, ServerError> {
        let stderr = match q.param("type") {
            None | Some("") | Some("stdout") => false,
            Some("stderr") => true,
            Some(other) => {
                return Err(ServerError::BadRequest(format!(
                    "type must be stdout or stderr, found {other:?}"
                )))
            }
        };
        let lines = match q.param("lines") {
            None | Some("") => DEFAULT_LINES,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LINES).contains(n))
                .ok_or_else(|| {
                    ServerError::BadRequest(format!(
                        "lines must be a whole number from 1 to {MAX_LINES}, found {v:?}"
                    ))
                })?,
        };
        let resume_at = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok()?.trim().parse().ok());
        Ok(LogRequest {
            task: q
                .param("task")
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            stderr,
            lines,
            resume_at,
        })
    }
}

/// `GET /ui/logs/{alloc}`.
pub async fn stream(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: QueryOptions,
) -> Result<Response, UiError> {
    let request = LogRequest::parse(&q, &headers)?;
    let view = find_alloc(&st, &id).await?;
    let task = pick_task(&st, &view, request.task.as_deref()).await?;
    let src = Source::of(&st, &view).await?;
    let start = match request.resume_at {
        Some(offset) => offset,
        None => tail_offset(&src, &task, request.stderr, request.lines).await?,
    };
    let permit = st.ui.logs.admit()?;
    let follow = Follow {
        st: st.clone(),
        src,
        alloc: view.allocation.id.clone(),
        task,
        stderr: request.stderr,
    };
    let body = follow
        .events(start)
        .map(move |event| {
            let _held = &permit;
            Ok::<_, std::convert::Infallible>(Bytes::from(event))
        })
        .take_until(st.closed());
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::Extension(crate::Unbuffered),
        Body::from_stream(body),
    )
        .into_response())
}

/// The offset where the last `lines` lines of the log begin (reading back at most
/// [`TAIL_SCAN_BYTES`]).
async fn tail_offset(
    src: &Source,
    task: &str,
    stderr: bool,
    lines: usize,
) -> Result<u64, ServerError> {
    let (_, end) = src.log(task, stderr, u64::MAX, 0).await?;
    let floor = end.saturating_sub(TAIL_SCAN_BYTES);
    let mut from = end;
    let mut tail: Vec<u8> = Vec::new();
    while from > floor {
        let at = from.saturating_sub(READ_BYTES as u64).max(floor);
        let (mut chunk, _) = src.log(task, stderr, at, (from - at) as usize).await?;
        if chunk.is_empty() {
            break; // rotated away: start from what is left
        }
        chunk.extend_from_slice(&tail);
        tail = chunk;
        from = at;
        if let Some(i) = tail_start(&tail, lines) {
            return Ok(from + i as u64);
        }
    }
    Ok(from)
}

/// Where in `buf` its last `lines` lines begin (a final newline ends the last line, it does
/// not start another); `None` when `buf` holds fewer, so more must be read.
pub fn tail_start(buf: &[u8], lines: usize) -> Option<usize> {
    let body = buf.strip_suffix(b"\n").unwrap_or(buf);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == lines {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Cuts bytes into lines, holding back an unfinished last line until its newline comes.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// The complete lines `data` finishes (without their `\n` or `\r\n`); a line longer than
    /// [`MAX_LINE_BYTES`] comes out in pieces.
    pub fn push(&mut self, data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for b in data {
            if *b == b'\n' {
                out.push(self.take());
            } else {
                self.pending.push(*b);
                if self.pending.len() >= MAX_LINE_BYTES {
                    out.push(self.take());
                }
            }
        }
        out
    }

    /// The unfinished line, if any (when the stream ends, or output pauses mid-line).
    pub fn flush(&mut self) -> Option<String> {
        (!self.pending.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let line = std::mem::take(&mut self.pending);
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        String::from_utf8_lossy(line).into_owned()
    }
}

/// One `lines` event: the lines as `data:` fields, `offset` as its id. A line's `\r` would
/// end an SSE line early, so it becomes a space.
pub fn lines_event(lines: &[String], offset: u64) -> String {
    let mut out = format!("event: lines\nid: {offset}\n");
    for line in lines {
        out.push_str("data: ");
        out.push_str(&line.replace('\r', " "));
        out.push('\n');
    }
    out.push('\n');
    out
}

/// The `end` event, after which the page stops following.
pub fn end_event(reason: &str) -> String {
    format!(
        "event: end\ndata: {}\n\n",
        reason.replace(['\r', '\n'], " ")
    )
}

/// One followed log.
struct Follow {
    st: AppState,
    src: Source,
    alloc: String,
    task: String,
    stderr: bool,
}

/// Where a follow stands between events.
struct Cursor {
    offset: u64,
    splitter: LineSplitter,
    idle_polls: u32,
    last_output: Instant,
    last_write: Instant,
    ended: bool,
}

impl Follow {
    /// The events from `start` until the log ends (see the module's doc).
    fn events(self, start: u64) -> impl Stream<Item = String> + Send {
        let now = Instant::now();
        let cursor = Cursor {
            offset: start,
            splitter: LineSplitter::default(),
            idle_polls: 0,
            last_output: now,
            last_write: now,
            ended: false,
        };
        let this = Arc::new(self);
        futures::stream::unfold(cursor, move |mut c| {
            let this = this.clone();
            async move {
                if c.ended {
                    return None;
                }
                let event = this.next_event(&mut c).await;
                c.last_write = Instant::now();
                Some((event, c))
            }
        })
    }

    /// Polls until there is something to send: lines, a keepalive, or the end.
    async fn next_event(&self, c: &mut Cursor) -> String {
        loop {
            let (data, next) = match self
                .src
                .log(&self.task, self.stderr, c.offset, READ_BYTES)
                .await
            {
                Ok(read) => read,
                Err(e) => return self.end(c, &format!("reading the log failed: {e}")),
            };
            let mut lines = c.splitter.push(&data);
            c.offset = next;
            if data.is_empty() {
                // Output paused mid-line (a prompt): show what there is.
                lines.extend(c.splitter.flush());
            }
            if !lines.is_empty() {
                c.idle_polls = 0;
                c.last_output = Instant::now();
                return lines_event(&lines, c.offset);
            }
            c.idle_polls += 1;
            if c.idle_polls.is_multiple_of(POLLS_PER_CHECK) && self.finished().await {
                return self.end(c, "the task has finished");
            }
            if c.last_output.elapsed() >= self.st.ui.logs.idle {
                let why = format!(
                    "no output for {:?}; reload to follow again",
                    self.st.ui.logs.idle
                );
                return self.end(c, &why);
            }
            if c.last_write.elapsed() >= KEEPALIVE {
                return ": keepalive\n\n".to_string();
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn end(&self, c: &mut Cursor, reason: &str) -> String {
        c.ended = true;
        end_event(reason)
    }

    /// Whether the task is dead, or its allocation finished or gone.
    async fn finished(&self) -> bool {
        match find_alloc(&self.st, &self.alloc).await {
            Ok(v) => {
                let dead = v
                    .status
                    .as_ref()
                    .and_then(|s| s.task_states.get(&self.task))
                    .is_some_and(|t| t.state == TaskRunState::Dead);
                dead || v.client_status().is_terminal()
            }
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_starts_after_the_nth_newline_from_the_end() {
        let log = b"a\nb\nc\nd\n";
        assert_eq!(tail_start(log, 1), Some(6));
        assert_eq!(tail_start(log, 2), Some(4));
        assert_eq!(tail_start(log, 3), Some(2));
        assert_eq!(tail_start(log, 4), None, "four lines: all of it, read on");
        assert_eq!(tail_start(b"a\nb\nunfinished", 1), Some(4));
        assert_eq!(tail_start(b"", 1), None);
    }

    #[test]
    fn lines_come_out_whole_with_unfinished_ones_held_back() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"one\r\ntw"), vec!["one"]);
        assert_eq!(s.push(b"o\nthree"), vec!["two"]);
        assert_eq!(s.flush().as_deref(), Some("three"));
        assert_eq!(s.flush(), None);
        assert_eq!(s.push(b"\xff\n"), vec!["\u{fffd}"]);
        let long = vec![b'x'; MAX_LINE_BYTES + 1];
        let pieces = s.push(&long);
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].len(), MAX_LINE_BYTES);
        assert_eq!(s.flush().as_deref(), Some("x"));
    }

    #[test]
    fn events_carry_each_line_in_a_data_field_and_the_offset_as_id() {
        let lines = vec!["hello".to_string(), "a\rb".to_string(), String::new()];
        assert_eq!(
            lines_event(&lines, 42),
            "event: lines\nid: 42\ndata: hello\ndata: a b\ndata: \n\n"
        );
        assert_eq!(end_event("done\nnow"), "event: end\ndata: done now\n\n");
    }

    #[test]
    fn requests_name_a_stream_and_a_bounded_line_count() {
        let q = |s: &str| QueryOptions::parse(s).unwrap();
        let mut headers = HeaderMap::new();
        let r = LogRequest::parse(&q("task=web&type=stderr&lines=50"), &headers).unwrap();
        assert_eq!(
            r,
            LogRequest {
                task: Some("web".into()),
                stderr: true,
                lines: 50,
                resume_at: None
            }
        );
        assert_eq!(
            LogRequest::parse(&q(""), &headers).unwrap().lines,
            DEFAULT_LINES
        );
        headers.insert("last-event-id", "1234".parse().unwrap());
        assert_eq!(
            LogRequest::parse(&q(""), &headers).unwrap().resume_at,
            Some(1234)
        );
        for bad in [
            "type=stdin",
            "lines=0",
            "lines=5001",
            "lines=ten",
            "lines=-1",
        ] {
            let err = LogRequest::parse(&q(bad), &headers).unwrap_err();
            assert!(matches!(err, ServerError::BadRequest(_)), "{bad}: {err:?}");
        }
    }
}
