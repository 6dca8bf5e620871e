//! Request body extraction: the body limit answers 413, malformed JSON answers 400 with the line
//! and column where it broke, an empty body counts as `{}` for endpoints whose fields are all
//! optional, and every body is decoded strictly: a field the endpoint does not take is a 400
//! naming it (a misspelled `checkIndex` must not turn a compare-and-set into a plain write),
//! unless its value is `null`, which carries nothing (Nomad's clients send `null` for empty
//! values). Wrong types name the field they are in.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ServerError;

/// A JSON body decoded strictly ([`decode`]).
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ServerError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        decode(&bytes).map(JsonBody)
    }
}

/// The body's bytes, with the limit reported as a JSON 413.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ServerError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ServerError::TooLarge
                } else {
                    ServerError::BadRequest(format!(
                        "cannot read request body: {}",
                        rejection.body_text()
                    ))
                }
            })
    }
}

/// Parses JSON text, treating an empty body as `{}`.
pub fn parse(bytes: &[u8]) -> Result<Value, ServerError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| malformed(&e))
}

/// Decodes a JSON body strictly (see the module doc).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ServerError> {
    decode_value(parse(bytes)?)
}

/// Decodes parsed JSON strictly: an unknown field that is not `null` is a 400 naming its path
/// (`Limits[0].RegionLimit.Cores`), and a value of the wrong type names the field it is in.
pub fn decode_value<T: DeserializeOwned>(value: Value) -> Result<T, ServerError> {
    let mut ignored: Vec<Vec<Segment>> = Vec::new();
    let decoded = {
        let mut note = |path: serde_ignored::Path| ignored.push(segments(&path));
        let de = serde_ignored::Deserializer::new(&value, &mut note);
        serde_path_to_error::deserialize(de)
    };
    let unknown: Vec<String> = ignored
        .iter()
        .filter(|path| !lookup(&value, path).is_some_and(Value::is_null))
        .map(|path| render(path))
        .collect();
    if !unknown.is_empty() {
        return Err(unknown_fields(&unknown));
    }
    decoded.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ServerError::BadRequest(format!("invalid request body: {inner}"))
        } else {
            ServerError::BadRequest(format!("invalid request body: {path}: {inner}"))
        }
    })
}

fn unknown_fields(paths: &[String]) -> ServerError {
    let quoted: Vec<String> = paths.iter().map(|p| format!("`{p}`")).collect();
    let (noun, them) = if paths.len() == 1 {
        ("field", "it")
    } else {
        ("fields", "them")
    };
    ServerError::BadRequest(format!(
        "unknown {noun} {} in the request body: this endpoint does not take {them} \
         (check the spelling)",
        quoted.join(", ")
    ))
}

/// One step of a path into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn segments(path: &serde_ignored::Path) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut at = path;
    loop {
        match at {
            serde_ignored::Path::Root => break,
            serde_ignored::Path::Seq { parent, index } => {
                out.push(Segment::Index(*index));
                at = parent;
            }
            serde_ignored::Path::Map { parent, key } => {
                out.push(Segment::Key(key.clone()));
                at = parent;
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => at = parent,
        }
    }
    out.reverse();
    out
}

fn lookup<'v>(value: &'v Value, path: &[Segment]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, seg| match seg {
        Segment::Key(k) => v.get(k.as_str()),
        Segment::Index(i) => v.get(*i),
    })
}

/// `Limits[0].RegionLimit.Cores`.
fn render(path: &[Segment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) if out.is_empty() => out.push_str(k),
            Segment::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// "malformed JSON at line L column C: ..." for syntax errors, "invalid request at line L column C"
/// for well-formed JSON of the wrong shape.
pub fn malformed(e: &serde_json::Error) -> ServerError {
    let what = if e.is_syntax() || e.is_eof() {
        "malformed JSON"
    } else {
        "invalid request body"
    };
    ServerError::BadRequest(format!(
        "{what} at line {} column {}: {e}",
        e.line(),
        e.column()
    ))
}
