//! Failover across the members of an etcd cluster.
//!
//! `etcd-client` balances one channel over every endpoint, and that channel fails as a whole
//! while any one member is down (etcd-client issues #12 and #39). Nomos keeps one client per
//! member instead, sends every request to a preferred member, and moves to the next one when
//! the preferred one cannot be reached or has no leader, as etcd's own Go client does:
//!
//! - a request that never reached a member (connect refused, no route, the member has no
//!   leader) is retried on the next member, reads and writes alike;
//! - a read that failed in flight is retried too, since reading twice is harmless;
//! - a write that failed in flight is not: it may have committed, so the caller gets
//!   [`StoreError::Unavailable`](crate::StoreError::Unavailable) and decides (every Nomos
//!   writer re-reads and compares before writing again).
//!
//! Dead connections are found by HTTP/2 keep-alive pings ([`KEEP_ALIVE`]), which also cover a
//! member cut off by a network partition while a request waits on it.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_client as ec;
use tokio::sync::Mutex;

/// HTTP/2 keep-alive: a ping every 5 s on a connection with requests in flight, and the
/// connection is dropped when one is not answered in 3 s.
pub const KEEP_ALIVE: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(3));

/// How long a request keeps moving between members before its error is returned: longer than
/// an etcd election (1 s by default) and a dead connection's detection ([`KEEP_ALIVE`]).
pub const RETRY_WINDOW: Duration = Duration::from_secs(20);

/// How long a failed member is tried only after the others.
pub const REST: Duration = Duration::from_secs(5);

/// Whether a request may be sent again to another member after it failed in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads and other requests that change nothing.
    Always,
    /// Writes: only when the failure shows the request never reached the member.
    IfNotSent,
}

/// One client per etcd member, and which member requests go to.
pub struct Members {
    endpoints: Vec<String>,
    options: ec::ConnectOptions,
    connect_timeout: Duration,
    clients: Vec<Mutex<Option<ec::Client>>>,
    preferred: AtomicUsize,
    /// When each member last failed: a member that failed less than [`REST`] ago is tried
    /// only after the others.
    failed_at: Vec<std::sync::Mutex<Option<Instant>>>,
    retry_window: Duration,
}

impl Members {
    pub fn new(
        endpoints: Vec<String>,
        options: ec::ConnectOptions,
        connect_timeout: Duration,
    ) -> Self {
        let count = endpoints.len();
        let clients = endpoints.iter().map(|_| Mutex::new(None)).collect();
        Members {
            endpoints,
            options,
            connect_timeout,
            clients,
            preferred: AtomicUsize::new(0),
            failed_at: (0..count).map(|_| std::sync::Mutex::new(None)).collect(),
            retry_window: RETRY_WINDOW,
        }
    }

    /// A client of the preferred member, or of the next member that can be reached, with the
    /// member's index; members that failed recently come last. Fails with the last member's
    /// error when none can be reached.
    pub async fn client(&self) -> Result<(usize, ec::Client), ec::Error> {
        let count = self.endpoints.len();
        let start = self.preferred.load(Ordering::Relaxed) % count;
        let mut order: Vec<usize> = (0..count).map(|step| (start + step) % count).collect();
        order.sort_by_key(|index| self.resting(*index));
        let mut last_error = None;
        for index in order {
            match self.connect(index).await {
                Ok(client) => {
                    if index != start {
                        self.prefer(index);
                    }
                    return Ok((index, client));
                }
                Err(e) => {
                    tracing::debug!(endpoint = %self.endpoints[index], error = %e, "etcd member unreachable");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| ec::Error::InvalidArgs("no etcd endpoint".into())))
    }

    /// Whether member `index` failed less than [`REST`] ago.
    fn resting(&self, index: usize) -> bool {
        let failed_at = self.failed_at[index]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        failed_at.is_some_and(|at| at.elapsed() < REST)
    }

    async fn connect(&self, index: usize) -> Result<ec::Client, ec::Error> {
        let mut slot = self.clients[index].lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let endpoint = [self.endpoints[index].as_str()];
        let connecting = ec::Client::connect(endpoint, Some(self.options.clone()));
        let client = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| {
                timed_out(format!(
                    "etcd member {} did not answer within {:?}",
                    self.endpoints[index], self.connect_timeout
                ))
            })??;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Member `index` failed: forget its client (the next use reconnects) and send requests to
    /// the next member from now on.
    pub async fn failed(&self, index: usize) {
        *self.failed_at[index]
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let next = (index + 1) % self.endpoints.len();
        let moved = self
            .preferred
            .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if moved && self.endpoints.len() > 1 {
            tracing::warn!(
                failed = %self.endpoints[index],
                next = %self.endpoints[next],
                "etcd member failed; moving to the next member"
            );
        }
        *self.clients[index].lock().await = None;
    }

    fn prefer(&self, index: usize) {
        self.preferred.store(index, Ordering::Relaxed);
    }

    /// Runs `request` against the preferred member, moving to the next members as [`Retry`]
    /// allows. While no member can take it (an election under way, every member unreachable)
    /// it keeps trying with backoff for [`RETRY_WINDOW`].
    pub async fn call<T, F, Fut>(&self, retry: Retry, request: F) -> Result<T, ec::Error>
    where
        F: Fn(ec::Client) -> Fut,
        Fut: Future<Output = Result<T, ec::Error>>,
    {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let mut failures = 0;
        loop {
            let attempt = match self.client().await {
                Ok((index, client)) => match request(client).await {
                    Ok(value) => return Ok(value),
                    Err(e) if member_failed(&e) => {
                        self.failed(index).await;
                        if retry == Retry::IfNotSent && !never_sent(&e) {
                            return Err(e);
                        }
                        e
                    }
                    Err(e) => return Err(e),
                },
                Err(e) => e,
            };
            if started.elapsed() >= self.retry_window {
                return Err(attempt);
            }
            failures += 1;
            // Once every member has failed in turn, wait before the next round.
            if failures % self.endpoints.len() == 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

fn timed_out(message: String) -> ec::Error {
    ec::Error::IoError(std::io::Error::new(std::io::ErrorKind::TimedOut, message))
}

/// The error's text with its whole source chain, lowercased.
fn describe(e: &ec::Error) -> String {
    let mut text = format!("{e} {e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push(' ');
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.to_lowercase()
}

/// Whether the error is the member's (unreachable, no leader, connection lost) rather than
/// an answer about the request itself.
pub fn member_failed(e: &ec::Error) -> bool {
    match e {
        ec::Error::TransportError(_) | ec::Error::IoError(_) => true,
        ec::Error::GRpcStatus(status) => {
            matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
            ) || status.message().contains("no leader")
        }
        _ => false,
    }
}

/// Whether the failure shows the request never reached the member's consensus: the
/// connection could not be made, or the member refused it for having no leader.
pub fn never_sent(e: &ec::Error) -> bool {
    let text = describe(e);
    [
        "tcp connect error",
        "error trying to connect",
        "connection refused",
        "no route to host",
        "dns error",
        "did not answer within",
        "no leader",
        "service was not ready",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: tonic::Code, message: &str) -> ec::Error {
        ec::Error::GRpcStatus(tonic::Status::new(code, message))
    }

    #[test]
    fn member_failures_and_answers_are_told_apart() {
        let cases = [
            (
                status(tonic::Code::Unavailable, "etcdserver: no leader"),
                true,
                true,
            ),
            (
                status(tonic::Code::Unavailable, "transport error"),
                true,
                false,
            ),
            (
                status(
                    tonic::Code::Unavailable,
                    "error trying to connect: tcp connect error: Connection refused (os error 111)",
                ),
                true,
                true,
            ),
            (
                timed_out("etcd member http://x did not answer within 5s".into()),
                true,
                true,
            ),
            (
                status(
                    tonic::Code::InvalidArgument,
                    "etcdserver: key is not provided",
                ),
                false,
                false,
            ),
            (
                status(
                    tonic::Code::OutOfRange,
                    "etcdserver: mvcc: required revision has been compacted",
                ),
                false,
                false,
            ),
            (
                status(
                    tonic::Code::PermissionDenied,
                    "etcdserver: permission denied",
                ),
                false,
                false,
            ),
        ];
        for (error, failed, unsent) in cases {
            assert_eq!(member_failed(&error), failed, "{error}");
            assert_eq!(never_sent(&error), unsent, "{error}");
        }
    }

    #[tokio::test]
    async fn a_dead_member_moves_requests_to_the_next_one() {
        let mut members = Members::new(
            vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
            ec::ConnectOptions::new(),
            Duration::from_millis(200),
        );
        members.retry_window = Duration::from_millis(300);
        members.failed(0).await;
        assert_eq!(members.preferred.load(Ordering::Relaxed), 1);
        // Reporting a member that is no longer preferred changes nothing.
        members.failed(0).await;
        assert_eq!(members.preferred.load(Ordering::Relaxed), 1);
        let calls = AtomicUsize::new(0);
        let result: Result<(), _> = members
            .call(Retry::IfNotSent, |_| {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Err(status(tonic::Code::Unavailable, "transport error")) }
            })
            .await;
        assert!(result.is_err());
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "a write failed in flight is not resent"
        );
        let calls = AtomicUsize::new(0);
        let _ = members
            .call(Retry::Always, |_| {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Err::<(), _>(status(tonic::Code::Unavailable, "transport error")) }
            })
            .await;
        assert!(
            calls.load(Ordering::Relaxed) >= 2,
            "a read moves to the next member and keeps trying until the retry window closes"
        );
    }
}
