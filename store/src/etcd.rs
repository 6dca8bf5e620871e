//! The etcd backend: the [`Store`] trait over a real etcd cluster through `etcd-client`.
//!
//! Every call maps onto one etcd v3 RPC. Requests are checked with the same rules as the
//! embedded store first ([`crate::validate`]), so both backends give the same typed errors.
//! Watches run in a task owned by their stream: after a disconnect (or an etcd restart) the
//! task reconnects with backoff and resumes from the revision after the last one it delivered;
//! a compacted start revision ends the stream with [`StoreError::Compacted`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client as ec;
use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

mod auth;
pub use auth::{node_key_grants, node_user, EtcdCredentials, KeyAccess, KeyGrant};

use crate::{
    validate, CompareOp, CompareTarget, DeleteOptions, DeleteResponse, EventKind, KeySelector,
    KeyValue, LeaseGrant, LeaseInfo, PutOptions, PutResponse, RangeOptions, RangeResponse, Result,
    SortOrder, SortTarget, Store, StoreError, StoreStatus, Txn, TxnOp, TxnOpResponse, TxnResponse,
    WatchEvent, WatchOptions, WatchResponse, WatchStream,
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
    /// Timeout for establishing a connection (5 s if unset). Requests themselves have no
    /// timeout, since watches are long-lived.
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
    client: ec::Client,
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
        let mut options = ec::ConnectOptions::new()
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_connect_timeout(config.connect_timeout.unwrap_or(Duration::from_secs(5)));
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
        let client = ec::Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(map_err)?;
        Ok(EtcdStore {
            client,
            compacted: Arc::new(AtomicI64::new(0)),
        })
    }

    fn kv(&self) -> ec::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_DECODING)
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
        match self.kv().get(probe.clone(), Some(at)).await {
            Ok(_) => return Ok(known),
            Err(e) => match map_err(e) {
                StoreError::Compacted { .. } => {}
                StoreError::FutureRevision { .. } => return Ok(0),
                other => return Err(other),
            },
        }
        let mut watch = self.client.watch_client();
        let mut stream = watch
            .watch(probe, Some(ec::WatchOptions::new().with_start_revision(1)))
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
        let resp = self
            .kv()
            .get(vec![0], Some(ec::GetOptions::new().with_count_only()))
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

fn header_rev(h: Option<&ec::ResponseHeader>) -> i64 {
    h.map_or(0, |h| h.revision())
}

fn kv_from(kv: &ec::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key().to_vec(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: kv.lease(),
    }
}

fn get_options(keys: &KeySelector, options: &RangeOptions) -> (Vec<u8>, ec::GetOptions) {
    let (key, end) = keys.to_etcd_range();
    let mut o = ec::GetOptions::new();
    if !end.is_empty() {
        o = o.with_range(end);
    }
    if options.limit > 0 {
        o = o.with_limit(options.limit);
    }
    if options.revision > 0 {
        o = o.with_revision(options.revision);
    }
    if options.keys_only {
        o = o.with_keys_only();
    }
    if options.count_only {
        o = o.with_count_only();
    }
    if options.sort_order != SortOrder::None || options.sort_target != SortTarget::Key {
        let target = match options.sort_target {
            SortTarget::Key => ec::SortTarget::Key,
            SortTarget::Version => ec::SortTarget::Version,
            SortTarget::Create => ec::SortTarget::Create,
            SortTarget::Mod => ec::SortTarget::Mod,
            SortTarget::Value => ec::SortTarget::Value,
        };
        let order = match options.sort_order {
            SortOrder::None => ec::SortOrder::None,
            SortOrder::Ascend => ec::SortOrder::Ascend,
            SortOrder::Descend => ec::SortOrder::Descend,
        };
        o = o.with_sort(target, order);
    }
    (key, o)
}

fn delete_options(keys: &KeySelector, options: &DeleteOptions) -> (Vec<u8>, ec::DeleteOptions) {
    let (key, end) = keys.to_etcd_range();
    let mut o = ec::DeleteOptions::new();
    if !end.is_empty() {
        o = o.with_range(end);
    }
    if options.prev_kv {
        o = o.with_prev_key();
    }
    (key, o)
}

fn put_options(options: &PutOptions) -> ec::PutOptions {
    let mut o = ec::PutOptions::new();
    if options.lease != 0 {
        o = o.with_lease(options.lease);
    }
    if options.prev_kv {
        o = o.with_prev_key();
    }
    if options.ignore_value {
        o = o.with_ignore_value();
    }
    if options.ignore_lease {
        o = o.with_ignore_lease();
    }
    o
}

fn range_response(resp: &ec::GetResponse) -> RangeResponse {
    RangeResponse {
        revision: header_rev(resp.header()),
        kvs: resp.kvs().iter().map(kv_from).collect(),
        count: resp.count(),
        more: resp.more(),
    }
}

fn delete_response(resp: &ec::DeleteResponse) -> DeleteResponse {
    DeleteResponse {
        revision: header_rev(resp.header()),
        deleted: resp.deleted(),
        prev_kvs: resp.prev_kvs().iter().map(kv_from).collect(),
    }
}

fn put_response(resp: &ec::PutResponse) -> PutResponse {
    PutResponse {
        revision: header_rev(resp.header()),
        prev_kv: resp.prev_key().map(kv_from),
    }
}

fn to_etcd_txn(txn: &Txn) -> ec::Txn {
    let compares: Vec<ec::Compare> = txn
        .compare
        .iter()
        .map(|c| {
            let op = match c.op {
                CompareOp::Equal => ec::CompareOp::Equal,
                CompareOp::NotEqual => ec::CompareOp::NotEqual,
                CompareOp::Greater => ec::CompareOp::Greater,
                CompareOp::Less => ec::CompareOp::Less,
            };
            let key = c.key.clone();
            let cmp = match &c.target {
                CompareTarget::Value(v) => ec::Compare::value(key, op, v.clone()),
                CompareTarget::Version(v) => ec::Compare::version(key, op, *v),
                CompareTarget::CreateRevision(v) => ec::Compare::create_revision(key, op, *v),
                CompareTarget::ModRevision(v) => ec::Compare::mod_revision(key, op, *v),
                CompareTarget::Lease(v) => ec::Compare::lease(key, op, *v),
            };
            match &c.range_end {
                Some(end) if !end.is_empty() => cmp.with_range(end.clone()),
                _ => cmp,
            }
        })
        .collect();
    ec::Txn::new()
        .when(compares)
        .and_then(to_etcd_ops(&txn.success))
        .or_else(to_etcd_ops(&txn.failure))
}

fn to_etcd_ops(ops: &[TxnOp]) -> Vec<ec::TxnOp> {
    ops.iter()
        .map(|op| match op {
            TxnOp::Range(keys, options) => {
                let (key, o) = get_options(keys, options);
                ec::TxnOp::get(key, Some(o))
            }
            TxnOp::Put {
                key,
                value,
                options,
            } => ec::TxnOp::put(key.clone(), value.clone(), Some(put_options(options))),
            TxnOp::Delete(keys, options) => {
                let (key, o) = delete_options(keys, options);
                ec::TxnOp::delete(key, Some(o))
            }
            TxnOp::Txn(inner) => ec::TxnOp::txn(to_etcd_txn(inner)),
        })
        .collect()
}

fn txn_response(resp: &ec::TxnResponse) -> TxnResponse {
    TxnResponse {
        revision: header_rev(resp.header()),
        succeeded: resp.succeeded(),
        responses: resp
            .op_responses()
            .iter()
            .map(|r| match r {
                ec::TxnOpResponse::Get(g) => TxnOpResponse::Range(range_response(g)),
                ec::TxnOpResponse::Put(p) => TxnOpResponse::Put(put_response(p)),
                ec::TxnOpResponse::Delete(d) => TxnOpResponse::Delete(delete_response(d)),
                ec::TxnOpResponse::Txn(t) => TxnOpResponse::Txn(txn_response(t)),
            })
            .collect(),
    }
}

/// Lease referenced by the first put of a transaction, to name it in a "lease not found" error.
fn first_lease(ops: &[TxnOp]) -> i64 {
    ops.iter()
        .find_map(|op| match op {
            TxnOp::Put { options, .. } if options.lease != 0 => Some(options.lease),
            TxnOp::Txn(inner) => Some(first_lease(&inner.success)).filter(|l| *l != 0),
            _ => None,
        })
        .unwrap_or(0)
}

#[async_trait]
impl Store for EtcdStore {
    async fn range(&self, keys: KeySelector, options: RangeOptions) -> Result<RangeResponse> {
        validate::check_selector(&keys)?;
        let (key, o) = get_options(&keys, &options);
        match self.kv().get(key, Some(o)).await {
            Ok(resp) => Ok(range_response(&resp)),
            Err(e) => Err(self.explain(map_err(e), options.revision, 0).await),
        }
    }

    async fn put(&self, key: Vec<u8>, value: Vec<u8>, options: PutOptions) -> Result<PutResponse> {
        validate::check_put(&key, &value, &options)?;
        match self.kv().put(key, value, Some(put_options(&options))).await {
            Ok(resp) => Ok(put_response(&resp)),
            Err(e) => Err(self.explain(map_err(e), 0, options.lease).await),
        }
    }

    async fn delete(&self, keys: KeySelector, options: DeleteOptions) -> Result<DeleteResponse> {
        validate::check_selector(&keys)?;
        let (key, o) = delete_options(&keys, &options);
        self.kv()
            .delete(key, Some(o))
            .await
            .map(|r| delete_response(&r))
            .map_err(map_err)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        validate::check_txn(&txn)?;
        match self.kv().txn(to_etcd_txn(&txn)).await {
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
        let mut client = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_DECODING);
        let mut stream = client.watch(key, Some(o)).await.map_err(map_err)?;
        let next = loop {
            match stream.message().await.map_err(map_err)? {
                Some(resp) if resp.created() && resp.canceled() => {
                    return Err(StoreError::WatchCancelled(resp.cancel_reason().to_string()))
                }
                Some(resp) if resp.created() => {
                    break if options.start_revision > 0 {
                        options.start_revision
                    } else {
                        header_rev(resp.header()) + 1
                    };
                }
                Some(_) => continue,
                None => return Err(StoreError::Unavailable("etcd closed the watch".into())),
            }
        };
        let (tx, rx) = mpsc::channel(64);
        let store = self.clone();
        let task = tokio::spawn(run_watch(store, keys, options, tx, Some(stream), next));
        Ok(Box::pin(EtcdWatch { rx, task }))
    }

    async fn lease_grant(&self, ttl_seconds: i64, id: i64) -> Result<LeaseGrant> {
        let mut lease = self.client.lease_client();
        let o = (id != 0).then(|| ec::LeaseGrantOptions::new().with_id(id));
        match lease.grant(ttl_seconds, o).await {
            Ok(resp) => Ok(LeaseGrant {
                id: resp.id(),
                ttl: resp.ttl(),
            }),
            Err(e) => Err(self.explain(map_err(e), 0, id).await),
        }
    }

    async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        let mut lease = self.client.lease_client();
        let (mut keeper, mut stream) =
            lease.keep_alive(id).await.map_err(|e| match map_err(e) {
                StoreError::LeaseNotFound(_) => StoreError::LeaseNotFound(id),
                other => other,
            })?;
        // The first answer was consumed by the client; a second renewal reports the TTL.
        keeper.keep_alive().await.map_err(map_err)?;
        match stream.message().await.map_err(map_err)? {
            Some(resp) if resp.ttl() > 0 => Ok(resp.ttl()),
            Some(_) => Err(StoreError::LeaseNotFound(id)),
            None => Err(StoreError::Unavailable(
                "lease keep-alive stream closed".into(),
            )),
        }
    }

    async fn lease_revoke(&self, id: i64) -> Result<()> {
        let mut lease = self.client.lease_client();
        match lease.revoke(id).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.explain(map_err(e), 0, id).await),
        }
    }

    async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo> {
        let mut lease = self.client.lease_client();
        let o = with_keys.then(|| ec::LeaseTimeToLiveOptions::new().with_keys());
        match lease.time_to_live(id, o).await {
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
        let mut lease = self.client.lease_client();
        let resp = lease.leases().await.map_err(map_err)?;
        let mut ids: Vec<i64> = resp.leases().iter().map(|l| l.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        match self
            .kv()
            .compact(revision, Some(ec::CompactionOptions::new().with_physical()))
            .await
        {
            Ok(_) => {
                self.compacted.fetch_max(revision, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(self.explain(map_err(e), revision, 0).await),
        }
    }

    async fn status(&self) -> Result<StoreStatus> {
        let mut m = self.client.maintenance_client();
        let resp = m.status().await.map_err(map_err)?;
        Ok(StoreStatus {
            revision: header_rev(resp.header()),
            compact_revision: self.compact_revision().await?,
            db_size: resp.db_size(),
        })
    }
}

/// A watch stream: responses forwarded by the task that owns the etcd watch.
struct EtcdWatch {
    rx: mpsc::Receiver<Result<WatchResponse>>,
    task: JoinHandle<()>,
}

impl Drop for EtcdWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for EtcdWatch {
    type Item = Result<WatchResponse>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

fn watch_options(
    keys: &KeySelector,
    options: &WatchOptions,
    start: i64,
) -> (Vec<u8>, ec::WatchOptions) {
    let (key, end) = keys.to_etcd_range();
    let mut o = ec::WatchOptions::new();
    if !end.is_empty() {
        o = o.with_range(end);
    }
    if start > 0 {
        o = o.with_start_revision(start);
    }
    if options.prev_kv {
        o = o.with_prev_key();
    }
    if options.progress_notify {
        o = o.with_progress_notify();
    }
    let mut filters = Vec::new();
    if options.filters.no_put {
        filters.push(ec::WatchFilterType::NoPut);
    }
    if options.filters.no_delete {
        filters.push(ec::WatchFilterType::NoDelete);
    }
    if !filters.is_empty() {
        o = o.with_filters(filters);
    }
    (key, o)
}

/// Runs one logical watch across reconnects until its consumer goes away.
async fn run_watch(
    store: EtcdStore,
    keys: KeySelector,
    options: WatchOptions,
    tx: mpsc::Sender<Result<WatchResponse>>,
    mut first: Option<ec::WatchStream>,
    // Next revision to deliver.
    mut next: i64,
) {
    let mut backoff = Duration::from_millis(50);
    let mut events: Vec<WatchEvent> = Vec::new();
    loop {
        let (key, o) = watch_options(&keys, &options, next);
        let mut client = store
            .client
            .watch_client()
            .max_decoding_message_size(MAX_DECODING);
        let attempt = match first.take() {
            Some(stream) => Ok(stream),
            None => client.watch(key, Some(o)).await,
        };
        let mut stream = match attempt {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "etcd watch could not start; retrying");
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        loop {
            let msg = tokio::select! {
                _ = tx.closed() => return,
                msg = stream.message() => msg,
            };
            let resp = match msg {
                Ok(Some(resp)) => resp,
                Ok(None) | Err(_) => break,
            };
            backoff = Duration::from_millis(50);
            let revision = header_rev(resp.header());
            if resp.compact_revision() != 0 {
                let err = StoreError::Compacted {
                    requested: next,
                    compact_revision: resp.compact_revision(),
                };
                let _ = tx.send(Err(err)).await;
                return;
            }
            if resp.canceled() {
                let _ = tx
                    .send(Err(StoreError::WatchCancelled(
                        resp.cancel_reason().to_string(),
                    )))
                    .await;
                return;
            }
            if resp.created() && resp.events().is_empty() {
                continue;
            }
            for e in resp.events() {
                let Some(kv) = e.kv() else { continue };
                events.push(WatchEvent {
                    kind: match e.event_type() {
                        ec::EventType::Put => EventKind::Put,
                        ec::EventType::Delete => EventKind::Delete,
                    },
                    kv: kv_from(kv),
                    prev_kv: e.prev_kv().map(kv_from),
                });
            }
            let batch = std::mem::take(&mut events);
            if let Some(last) = batch.last() {
                next = next.max(last.kv.mod_revision + 1);
            } else if revision >= next {
                // A progress notification: everything up to `revision` has been seen.
                next = revision + 1;
            }
            if tx
                .send(Ok(WatchResponse {
                    revision,
                    events: batch,
                }))
                .await
                .is_err()
            {
                return;
            }
        }
        events.clear();
        tracing::debug!(next, "etcd watch disconnected; resuming");
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
