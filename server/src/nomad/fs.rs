//! Nomad's client filesystem API over an allocation's directory, read through
//! [`super::fs_source`] (this process or the node's agent):
//! - `GET /v1/client/fs/logs/{alloc}?task=&type=stdout|stderr&offset=&origin=start|end&follow=&plain=`:
//!   a task's log as a stream of frames `{"File", "Offset", "Data"}` (Data in base64, Offset
//!   the position after it), or the raw bytes with `plain=true`;
//! - `GET /v1/client/fs/stream/{alloc}?path=&offset=&origin=&follow=` (follow by default): a
//!   file as frames; a file that shrank sends `{"File", "FileEvent": "file truncated"}` and
//!   goes on from its start;
//! - `GET /v1/client/fs/ls/{alloc}?path=`, `stat/{alloc}?path=`: entries as
//!   `AllocFileInfo`; `cat/{alloc}?path=` (a file of at most [`MAX_READ_BYTES`]) and
//!   `readat/{alloc}?path=&offset=&limit=`: raw bytes.
//!
//! A followed stream ends when the allocation is finished (or gone) and nothing more is
//! written, or when the server shuts down.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use nomos_api::allocfs::{AllocFileInfo, MAX_READ_BYTES};
use serde::Serialize;

use super::fs_source::Source;
use super::query::QueryOptions;
use crate::allocs::{find_alloc, pick_task};
use crate::error::ServerError;
use crate::AppState;

/// Most bytes one frame carries.
const FRAME_BYTES: usize = 64 << 10;
/// How often a followed file is polled.
const POLL: Duration = Duration::from_millis(250);
/// Idle polls between checks whether the allocation is finished.
const POLLS_PER_CHECK: u32 = 8;

/// One frame of a stream.
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Frame {
    file: String,
    offset: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    data: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    file_event: String,
}

/// What one read of a followed file found.
enum Piece {
    Data { data: Vec<u8>, next: u64 },
    Truncated,
}

/// Reads from an offset.
type Reader = Arc<dyn Fn(u64) -> BoxFuture<'static, Result<Piece, ServerError>> + Send + Sync>;

/// An offset parameter: a non-negative integer, `default` when absent.
fn number(q: &QueryOptions, name: &str, default: u64) -> Result<u64, ServerError> {
    match q.param(name) {
        None | Some("") => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            ServerError::BadRequest(format!(
                "{name} must be a non-negative integer, found {v:?}"
            ))
        }),
    }
}

/// `origin`: whether `offset` counts from the end.
fn from_end(q: &QueryOptions) -> Result<bool, ServerError> {
    match q.param("origin") {
        None | Some("") | Some("start") => Ok(false),
        Some("end") => Ok(true),
        Some(o) => Err(ServerError::BadRequest(format!(
            "origin must be start or end, found {o:?}"
        ))),
    }
}

/// The allocation's files, found by ID or unique ID prefix.
async fn source(st: &AppState, id: &str) -> Result<(Source, crate::views::AllocView), ServerError> {
    let view = find_alloc(st, id).await?;
    Ok((Source::of(st, &view).await?, view))
}

/// `GET /v1/client/fs/logs/{alloc}`.
pub async fn logs(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Response, ServerError> {
    let stderr = match q.param("type") {
        None | Some("stdout") => false,
        Some("stderr") => true,
        Some(other) => {
            return Err(ServerError::BadRequest(format!(
                "type must be stdout or stderr, found {other:?}"
            )))
        }
    };
    let (offset, end, follow, plain) = (
        number(&q, "offset", 0)?,
        from_end(&q)?,
        q.flag("follow", false),
        q.flag("plain", false),
    );
    let (src, view) = source(&st, &id).await?;
    let task = pick_task(&st, &view, q.param("task")).await?;
    let start = if end {
        let (_, size) = src.log(&task, stderr, u64::MAX, 0).await?;
        size.saturating_sub(offset)
    } else {
        offset
    };
    let kind = if stderr { "stderr" } else { "stdout" };
    let file = format!("alloc/logs/{task}.{kind}");
    let reader: Reader = Arc::new(move |at| {
        let (src, task) = (src.clone(), task.clone());
        Box::pin(async move {
            let (data, next) = src.log(&task, stderr, at, FRAME_BYTES).await?;
            Ok(Piece::Data { data, next })
        })
    });
    respond(&st, view.allocation.id, reader, start, follow, plain, file).await
}

/// `GET /v1/client/fs/stream/{alloc}`.
pub async fn stream(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Response, ServerError> {
    let path = q.param("path").unwrap_or("/").to_string();
    let (offset, end, follow) = (
        number(&q, "offset", 0)?,
        from_end(&q)?,
        q.flag("follow", true),
    );
    let (src, view) = source(&st, &id).await?;
    let info = src.stat(&path).await?;
    if info.is_dir {
        return Err(ServerError::BadRequest(format!("{path} is a directory")));
    }
    let size = u64::try_from(info.size).unwrap_or(0);
    let start = if end {
        size.saturating_sub(offset)
    } else {
        offset
    };
    let file = path.trim_start_matches('/').to_string();
    let reader: Reader = Arc::new(move |at| {
        let (src, path) = (src.clone(), path.clone());
        Box::pin(async move {
            let data = src.read_at(&path, at, FRAME_BYTES as u64).await?;
            if data.is_empty() && u64::try_from(src.stat(&path).await?.size).unwrap_or(0) < at {
                return Ok(Piece::Truncated);
            }
            let next = at + data.len() as u64;
            Ok(Piece::Data { data, next })
        })
    });
    respond(&st, view.allocation.id, reader, start, follow, false, file).await
}

/// Reads once (so a missing file or task answers its error), then streams the rest: raw
/// bytes when `plain`, frames otherwise.
async fn respond(
    st: &AppState,
    alloc: String,
    reader: Reader,
    start: u64,
    follow: bool,
    plain: bool,
    file: String,
) -> Result<Response, ServerError> {
    let first = reader(start).await?;
    let rest = pieces(st.clone(), alloc, reader, first, start, follow);
    if plain {
        let bytes = rest.filter_map(|p| async move {
            match p {
                Piece::Data { data, .. } => Some(Ok::<_, std::io::Error>(Bytes::from(data))),
                Piece::Truncated => None,
            }
        });
        let body = Body::from_stream(bytes);
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response());
    }
    let frames = rest.map(move |p| {
        let frame = match p {
            Piece::Data { data, next } => Frame {
                file: file.clone(),
                offset: next,
                data: base64::engine::general_purpose::STANDARD.encode(data),
                ..Frame::default()
            },
            Piece::Truncated => Frame {
                file: file.clone(),
                file_event: "file truncated".into(),
                ..Frame::default()
            },
        };
        let mut line = serde_json::to_vec(&frame).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::io::Error>(Bytes::from(line))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        axum::Extension(crate::Unbuffered),
        Body::from_stream(frames),
    )
        .into_response())
}

/// The pieces from `first` on: until the end of what is written, or with `follow` until the
/// allocation is finished and idle, or the server closes.
fn pieces(
    st: AppState,
    alloc: String,
    reader: Reader,
    first: Piece,
    start: u64,
    follow: bool,
) -> impl Stream<Item = Piece> + Send {
    let closed = st.closed();
    let state = (Some(first), start, 0u32);
    futures::stream::unfold(state, move |(pending, offset, idle)| {
        let (reader, st, alloc) = (reader.clone(), st.clone(), alloc.clone());
        async move {
            let (mut pending, mut offset, mut idle) = (pending, offset, idle);
            loop {
                let piece = match pending.take() {
                    Some(p) => p,
                    None => match reader(offset).await {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::info!(alloc, error = %e, "file stream ends");
                            return None;
                        }
                    },
                };
                match piece {
                    Piece::Data { data, next } if !data.is_empty() => {
                        return Some((Piece::Data { data, next }, (None, next, 0)));
                    }
                    Piece::Truncated => return Some((Piece::Truncated, (None, 0, 0))),
                    Piece::Data { next, .. } => offset = next,
                }
                if !follow {
                    return None;
                }
                idle += 1;
                if idle % POLLS_PER_CHECK == 0 && finished(&st, &alloc).await {
                    return None;
                }
                tokio::time::sleep(POLL).await;
            }
        }
    })
    .take_until(closed)
}

/// Whether the allocation is gone or in a terminal client status.
async fn finished(st: &AppState, alloc: &str) -> bool {
    match find_alloc(st, alloc).await {
        Ok(v) => v.client_status().is_terminal(),
        Err(_) => true,
    }
}

/// `GET /v1/client/fs/ls/{alloc}?path=`.
pub async fn ls(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Json<Vec<AllocFileInfo>>, ServerError> {
    let (src, _) = source(&st, &id).await?;
    Ok(Json(src.list(q.param("path").unwrap_or("/")).await?))
}

/// `GET /v1/client/fs/stat/{alloc}?path=`.
pub async fn stat(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Json<AllocFileInfo>, ServerError> {
    let (src, _) = source(&st, &id).await?;
    Ok(Json(src.stat(q.param("path").unwrap_or("/")).await?))
}

/// `GET /v1/client/fs/cat/{alloc}?path=`: a whole file of at most [`MAX_READ_BYTES`].
pub async fn cat(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Response, ServerError> {
    let path = q.param("path").unwrap_or("/");
    let (src, _) = source(&st, &id).await?;
    let info = src.stat(path).await?;
    if info.is_dir || u64::try_from(info.size).unwrap_or(0) > MAX_READ_BYTES {
        return Err(ServerError::BadRequest(format!(
            "{path} is a directory or larger than {MAX_READ_BYTES} bytes; read it with readat or stream"
        )));
    }
    let data = src.read_at(path, 0, MAX_READ_BYTES).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], data).into_response())
}

/// `GET /v1/client/fs/readat/{alloc}?path=&offset=&limit=`: `limit` (at most
/// [`MAX_READ_BYTES`]) bytes from `offset`.
pub async fn readat(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryOptions,
) -> Result<Response, ServerError> {
    let path = q.param("path").unwrap_or("/");
    let (offset, limit) = (
        number(&q, "offset", 0)?,
        number(&q, "limit", MAX_READ_BYTES)?,
    );
    if limit > MAX_READ_BYTES {
        return Err(ServerError::BadRequest(format!(
            "limit must be at most {MAX_READ_BYTES} bytes, found {limit}"
        )));
    }
    let (src, _) = source(&st, &id).await?;
    let data = src.read_at(path, offset, limit).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], data).into_response())
}
