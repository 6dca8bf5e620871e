//! The etcd backend: the [`Store`] trait over a real etcd cluster through `etcd-client`.
//!
//! Every call maps onto one etcd v3 RPC. Requests are checked with the same rules as the
//! embedded store first ([`crate::validate`]), so both backends give the same typed errors.
//! Watches run in a task owned by their stream: after a disconnect (or an etcd restart) the
//! task reconnects with backoff and resumes from the revision after the last one it delivered;
//! a compacted start revision ends the stream with [`StoreError::Compacted`].
//! Requests go to one member at a time and move to the next when it fails ([`members`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client as ec;
use tokio::sync::mpsc;

mod ambiguous;
mod auth;
mod convert;
mod members;
mod snapshot;
mod watch;
pub use auth::{node_key_grants, node_user, EtcdCredentials, KeyAccess, KeyGrant};
pub use snapshot::SavedSnapshot;

use convert::*;
use members::{Members, Retry};
use watch::{run_watch, start_watch, watch_options, EtcdWatch, WatchStart};

fn kv(client: &ec::Client) -> ec::KvClient {
    client.kv_client().max_decoding_message_size(MAX_DECODING)
}

fn watch_client(client: &ec::Client) -> ec::WatchClient {
    client
        .watch_client()
        .max_decoding_message_size(MAX_DECODING)
}

use crate::{
    validate, DeleteOptions, DeleteResponse, KeySelector, LeaseGrant, LeaseInfo, PutOptions,
    PutResponse, RangeOptions, RangeResponse, Result, Store, StoreError, StoreStatus, Txn,
    TxnResponse, WatchOptions, WatchStream,
};

/// Largest response the client accepts (ranges over many large values).
const MAX_DECODING: usize = 512 * 1024 * 1024;

/// How to reach etcd.
#[derive(Debug, Clone, Default)]
pub struct EtcdConfig {
    /// `http://host:port` or `https://host:port` URLs.
    pub endpoints: Vec<String>,
    /// PEM file of the CA that signed the servers' certificates. Setting it (or a client
    /// certificate) enables TLS; `https` endpoints need it, as no system roots are loaded.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key for mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// User name and password (etcd auth).
    pub user: Option<(String, String)>,
    /// Timeout for establishing a connection to one member (5 s if unset). Requests themselves
    /// have no timeout, since watches are long-lived: keep-alive pings find dead connections.
    pub connect_timeout: Option<Duration>,
}

impl EtcdConfig {
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }
}

/// The store backed by etcd.
#[derive(Clone)]
pub struct EtcdStore {
    members: Arc<Members>,
    /// Highest compaction revision seen so far (compaction only moves forward).
    compacted: Arc<AtomicI64>,
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| StoreError::InvalidRequest(format!("cannot read {}: {e}", path.display())))
}

impl EtcdStore {
    /// Connects to etcd. Fails with [`StoreError::Unavailable`] if no endpoint answers.
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(StoreError::InvalidRequest(
                "no etcd endpoint configured".into(),
            ));
        }
        let connect_timeout = config.connect_timeout.unwrap_or(Duration::from_secs(5));
        // A member without a leader refuses requests at once instead of holding them, so they
        // move to a member that has one.
        let mut options = ec::ConnectOptions::new()
            .with_keep_alive(members::KEEP_ALIVE.0, members::KEEP_ALIVE.1)
            .with_require_leader(true)
            .with_connect_timeout(connect_timeout);
        if let Some((user, password)) = &config.user {
            options = options.with_user(user.clone(), password.clone());
        }
        if config.ca_file.is_some() || config.cert_file.is_some() {
            let mut tls = ec::TlsOptions::new();
            if let Some(ca) = &config.ca_file {
                tls = tls.ca_certificate(ec::Certificate::from_pem(read_file(ca)?));
            }
            match (&config.cert_file, &config.key_file) {
                (Some(cert), Some(key)) => {
                    tls = tls.identity(ec::Identity::from_pem(read_file(cert)?, read_file(key)?));
                }
                (None, None) => {}
                _ => {
                    return Err(StoreError::InvalidRequest(
                        "etcd TLS needs both a client certificate and its key".into(),
                    ))
                }
            }
            options = options.with_tls(tls);
        }
        let members = Members::new(config.endpoints.clone(), options, connect_timeout);
        // With credentials this authenticates, so a wrong password is reported here.
        members.client().await.map_err(map_err)?;
        Ok(EtcdStore {
            members: Arc::new(members),
            compacted: Arc::new(AtomicI64::new(0)),
        })
    }

    /// Runs a request that changes nothing, or that may be repeated, on whichever member
    /// answers.
    async fn repeatable<T, F, Fut>(&self, request: F) -> std::result::Result<T, ec::Error>
    where
        F: Fn(ec::Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, ec::Error>>,
    {
        self.members.call(Retry::Always, request).await
    }

    /// Runs a write: moved to another member only when it never reached the first.
    async fn write<T, F, Fut>(&self, request: F) -> std::result::Result<T, ec::Error>
    where
        F: Fn(ec::Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, ec::Error>>,
    {
        self.members.call(Retry::IfNotSent, request).await
    }

    /// The oldest readable revision. etcd 3.4 does not report it in `Status`, so probe: a read
    /// at the last known compaction revision (or 1) succeeds when nothing newer was compacted;
    /// otherwise a watch from revision 1 is answered with the compaction revision.
    async fn compact_revision(&self) -> Result<i64> {
        let probe = b"\0nomos-compaction-probe".to_vec();
        let known = self.compacted.load(Ordering::Relaxed);
        let at = ec::GetOptions::new()
            .with_revision(known.max(1))
            .with_count_only();
        let read = self
            .repeatable(|c| {
                let (probe, at) = (probe.clone(), at.clone());
                async move { kv(&c).get(probe, Some(at)).await }
            })
            .await;
        match read {
            Ok(_) => return Ok(known),
            Err(e) => match map_err(e) {
                StoreError::Compacted { .. } => {}
                StoreError::FutureRevision { .. } => return Ok(0),
                other => return Err(other),
            },
        }
        let from_one = ec::WatchOptions::new().with_start_revision(1);
        let mut stream = self
            .repeatable(|c| {
                let (probe, from_one) = (probe.clone(), from_one.clone());
                async move { watch_client(&c).watch(probe, Some(from_one)).await }
            })
            .await
            .map_err(map_err)?;
        let deadline = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return Err(StoreError::Unavailable("etcd did not report its compaction revision".into())),
                msg = stream.message() => match msg.map_err(map_err)? {
                    Some(resp) if resp.compact_revision() != 0 => {
                        self.compacted.fetch_max(resp.compact_revision(), Ordering::Relaxed);
                        return Ok(resp.compact_revision());
                    }
                    Some(_) => continue,
                    None => return Err(StoreError::Unavailable("watch closed".into())),
                },
            }
        }
    }

    async fn current_revision(&self) -> Result<i64> {
        let count_only = ec::GetOptions::new().with_count_only();
        let resp = self
            .repeatable(|c| {
                let count_only = count_only.clone();
                async move { kv(&c).get(vec![0], Some(count_only)).await }
            })
            .await
            .map_err(map_err)?;
        Ok(header_rev(resp.header()))
    }

    /// Fills in the numbers etcd's error messages leave out.
    async fn explain(&self, e: StoreError, requested: i64, lease: i64) -> StoreError {
        match e {
            StoreError::Compacted { .. } => StoreError::Compacted {
                requested,
                compact_revision: self.compact_revision().await.unwrap_or(0),
            },
            StoreError::FutureRevision { .. } => StoreError::FutureRevision {
                requested,
                current: self.current_revision().await.unwrap_or(0),
            },
            StoreError::LeaseNotFound(_) => StoreError::LeaseNotFound(lease),
            StoreError::LeaseExists(_) => StoreError::LeaseExists(lease),
            other => other,
        }
    }
}

/// Maps an etcd client error onto the store's error enum. Revisions and lease ids the message
/// does not carry are left 0 (see [`EtcdStore::explain`]).
pub(crate) fn map_err(e: ec::Error) -> StoreError {
    match e {
        ec::Error::GRpcStatus(status) => {
            let msg = status
                .message()
                .trim_start_matches("etcdserver: ")
                .to_string();
            if msg.contains("required revision has been compacted") {
                StoreError::Compacted {
                    requested: 0,
                    compact_revision: 0,
                }
            } else if msg.contains("required revision is a future revision") {
                StoreError::FutureRevision {
                    requested: 0,
                    current: 0,
                }
            } else if msg.contains("lease not found") {
                StoreError::LeaseNotFound(0)
            } else if msg.contains("lease already exists") {
                StoreError::LeaseExists(0)
            } else if msg.contains("request is too large") {
                StoreError::RequestTooLarge {
                    len: 0,
                    limit: validate::MAX_REQUEST_BYTES,
                }
            } else if msg.contains("mvcc: database space exceeded") {
                StoreError::NoSpace
            } else if msg.contains("too many operations in txn request") {
                StoreError::TooManyOps {
                    count: 0,
                    limit: validate::MAX_TXN_OPS,
                }
            } else {
                match i32::from(status.code()) {
                    grpc_code::INVALID_ARGUMENT | grpc_code::FAILED_PRECONDITION => {
                        StoreError::InvalidRequest(msg)
                    }
                    grpc_code::UNAVAILABLE
                    | grpc_code::DEADLINE_EXCEEDED
                    | grpc_code::CANCELLED
                    | grpc_code::UNKNOWN => StoreError::Unavailable(msg),
                    _ => StoreError::Backend(format!("{:?}: {msg}", status.code())),
                }
            }
        }
        ec::Error::LeaseKeepAliveError(msg) if msg.contains("lease not found") => {
            StoreError::LeaseNotFound(0)
        }
        ec::Error::TransportError(e) => StoreError::Unavailable(e.to_string()),
        ec::Error::IoError(e) => StoreError::Unavailable(e.to_string()),
        ec::Error::WatchError(e) => StoreError::Unavailable(e),
        ec::Error::LeaseKeepAliveError(e) => StoreError::Unavailable(e),
        ec::Error::InvalidArgs(e) => StoreError::InvalidRequest(e),
        other => StoreError::Backend(other.to_string()),
    }
}

/// gRPC status codes (as numbers, to avoid depending on tonic directly).
mod grpc_code {
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const UNAVAILABLE: i32 = 14;
}

#[async_trait]
impl Store for EtcdStore {
    async fn range(&self, keys: KeySelector, options: RangeOptions) -> Result<RangeResponse> {
        validate::check_selector(&keys)?;
        let (key, o) = get_options(&keys, &options);
        let read = self
            .repeatable(|c| {
                let (key, o) = (key.clone(), o.clone());
                async move { kv(&c).get(key, Some(o)).await }
            })
            .await;
        match read {
            Ok(resp) => Ok(range_response(&resp)),
            Err(e) => Err(self.explain(map_err(e), options.revision, 0).await),
        }
    }

    async fn put(&self, key: Vec<u8>, value: Vec<u8>, options: PutOptions) -> Result<PutResponse> {
        validate::check_put(&key, &value, &options)?;
        let o = put_options(&options);
        // A put failed in flight is sent again: the key's one writer repeats its own value.
        let written = self
            .repeatable(|c| {
                let (key, value, o) = (key.clone(), value.clone(), o.clone());
                async move { kv(&c).put(key, value, Some(o)).await }
            })
            .await;
        match written {
            Ok(resp) => Ok(put_response(&resp)),
            Err(e) => Err(self.explain(map_err(e), 0, options.lease).await),
        }
    }

    async fn delete(&self, keys: KeySelector, options: DeleteOptions) -> Result<DeleteResponse> {
        validate::check_selector(&keys)?;
        let (key, o) = delete_options(&keys, &options);
        // Deleting again is harmless.
        self.repeatable(|c| {
            let (key, o) = (key.clone(), o.clone());
            async move { kv(&c).delete(key, Some(o)).await }
        })
        .await
        .map(|r| delete_response(&r))
        .map_err(map_err)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        validate::check_txn(&txn)?;
        let etcd_txn = to_etcd_txn(&txn);
        let send = |c: ec::Client| {
            let etcd_txn = etcd_txn.clone();
            async move { kv(&c).txn(etcd_txn).await }
        };
        let written = match self.write(send).await {
            // In flight when its member failed: it may have committed (see `ambiguous`).
            Err(e) if members::member_failed(&e) && !members::never_sent(&e) => {
                match self.repeatable(send).await {
                    Ok(resp) if !resp.succeeded() => {
                        if let Some(committed) = self.committed_earlier(&txn).await {
                            return Ok(committed);
                        }
                        Ok(resp)
                    }
                    other => other,
                }
            }
            other => other,
        };
        match written {
            Ok(resp) => Ok(txn_response(&resp)),
            Err(e) => {
                let lease = first_lease(&txn.success).max(first_lease(&txn.failure));
                Err(self.explain(map_err(e), 0, lease).await)
            }
        }
    }

    async fn watch(&self, keys: KeySelector, options: WatchOptions) -> Result<WatchStream> {
        validate::check_selector(&keys)?;
        // Create the first etcd watch before returning, so "now" (start revision 0) means the
        // time of this call and a failure to reach etcd is reported here.
        let (key, o) = watch_options(&keys, &options, options.start_revision.max(0));
        let (stream, created) = self
            .repeatable(|c| {
                let (key, o) = (key.clone(), o.clone());
                async move { start_watch(&c, key, o).await }
            })
            .await
            .map_err(map_err)?;
        let next = match created {
            WatchStart::Cancelled(reason) => return Err(StoreError::WatchCancelled(reason)),
            WatchStart::Closed => {
                return Err(StoreError::Unavailable("etcd closed the watch".into()))
            }
            WatchStart::Created(_) if options.start_revision > 0 => options.start_revision,
            WatchStart::Created(revision) => revision + 1,
        };
        let (tx, rx) = mpsc::channel(64);
        let store = self.clone();
        let task = tokio::spawn(run_watch(store, keys, options, tx, Some(stream), next));
        Ok(Box::pin(EtcdWatch { rx, task }))
    }

    async fn lease_grant(&self, ttl_seconds: i64, id: i64) -> Result<LeaseGrant> {
        let o = (id != 0).then(|| ec::LeaseGrantOptions::new().with_id(id));
        // A grant with an ID is idempotent; one without may leave an unused lease behind, which
        // expires with its TTL.
        let granted = self
            .repeatable(|c| {
                let o = o.clone();
                async move { c.lease_client().grant(ttl_seconds, o).await }
            })
            .await;
        match granted {
            Ok(resp) => Ok(LeaseGrant {
                id: resp.id(),
                ttl: resp.ttl(),
            }),
            Err(e) => Err(self.explain(map_err(e), 0, id).await),
        }
    }

    async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        // Renewing twice is harmless, so a renewal moves to another member like a read.
        let renewed = self
            .repeatable(|c| async move {
                let (mut keeper, mut stream) = c.lease_client().keep_alive(id).await?;
                // The first answer was consumed by the client; a second renewal reports the TTL.
                keeper.keep_alive().await?;
                Ok(stream.message().await?.map(|resp| resp.ttl()))
            })
            .await
            .map_err(|e| match map_err(e) {
                StoreError::LeaseNotFound(_) => StoreError::LeaseNotFound(id),
                other => other,
            })?;
        match renewed {
            Some(ttl) if ttl > 0 => Ok(ttl),
            Some(_) => Err(StoreError::LeaseNotFound(id)),
            None => Err(StoreError::Unavailable(
                "lease keep-alive stream closed".into(),
            )),
        }
    }

    async fn lease_revoke(&self, id: i64) -> Result<()> {
        let revoked = self
            .repeatable(|c| async move { c.lease_client().revoke(id).await })
            .await;
        match revoked {
            Ok(_) => Ok(()),
            Err(e) => Err(self.explain(map_err(e), 0, id).await),
        }
    }

    async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo> {
        let o = with_keys.then(|| ec::LeaseTimeToLiveOptions::new().with_keys());
        let answer = self
            .repeatable(|c| {
                let o = o.clone();
                async move { c.lease_client().time_to_live(id, o).await }
            })
            .await;
        match answer {
            Ok(resp) if resp.ttl() < 0 => Ok(LeaseInfo {
                id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            }),
            Ok(resp) => {
                let mut keys = resp.keys().to_vec();
                keys.sort();
                Ok(LeaseInfo {
                    id,
                    ttl: resp.ttl(),
                    granted_ttl: resp.granted_ttl(),
                    keys,
                })
            }
            Err(e) => match map_err(e) {
                StoreError::LeaseNotFound(_) => Ok(LeaseInfo {
                    id,
                    ttl: -1,
                    granted_ttl: 0,
                    keys: Vec::new(),
                }),
                other => Err(other),
            },
        }
    }

    async fn lease_list(&self) -> Result<Vec<i64>> {
        let resp = self
            .repeatable(|c| async move { c.lease_client().leases().await })
            .await
            .map_err(map_err)?;
        let mut ids: Vec<i64> = resp.leases().iter().map(|l| l.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        // Compacting again at the same revision is harmless.
        let compacted = self
            .repeatable(|c| async move {
                let physical = ec::CompactionOptions::new().with_physical();
                kv(&c).compact(revision, Some(physical)).await
            })
            .await;
        match compacted {
            Ok(_) => {
                self.compacted.fetch_max(revision, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(self.explain(map_err(e), revision, 0).await),
        }
    }

    async fn status(&self) -> Result<StoreStatus> {
        let resp = self
            .repeatable(|c| async move { c.maintenance_client().status().await })
            .await
            .map_err(map_err)?;
        Ok(StoreStatus {
            revision: header_rev(resp.header()),
            compact_revision: self.compact_revision().await?,
            db_size: resp.db_size(),
        })
    }
}
