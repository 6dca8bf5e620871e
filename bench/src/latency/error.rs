//! The bench's one error enum: each variant names the step that failed and says what was
//! expected and what was found.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LatencyError {
    #[error("invalid arguments: {0}")]
    Args(String),
    #[error(
        "no nctl binary at {}: build it with `cargo build --release -p nctl` (or pass --nctl PATH)",
        path.display()
    )]
    NctlMissing { path: PathBuf },
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "nctl dev was not ready within {secs}s: {what}\n--- nctl dev's log (last lines) ---\n{log}"
    )]
    NotReady {
        secs: u64,
        what: String,
        log: String,
    },
    #[error("{what}: {source}")]
    Http {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: HTTP {status}: {body}")]
    Api {
        what: String,
        status: u16,
        body: String,
    },
    #[error("the event stream: {0}")]
    Stream(String),
    #[error("job {job}: a task failed: {event}")]
    TaskFailed { job: String, event: String },
    #[error(
        "job {job}: {running} of {wanted} allocations running after {secs}s, waiting for {waiting}"
    )]
    Timeout {
        job: String,
        running: usize,
        wanted: usize,
        secs: u64,
        waiting: String,
    },
    #[error("reading {path}: {source}")]
    Proc {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("interrupted (Ctrl-C)")]
    Interrupted,
}
