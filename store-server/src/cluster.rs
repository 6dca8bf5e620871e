//! Maintenance and Cluster: enough for `etcdctl endpoint status`, `etcdctl member list`, and,
//! on the embedded store, `etcdctl snapshot save`, `etcdctl endpoint hashkv` and `etcdctl
//! defrag`. Every other method of the two services answers `Unimplemented` with its name.
//!
//! A snapshot is streamed as etcd streams its own: the database in chunks, then its SHA-256 in
//! the last 32 bytes (the database is the embedded store's SQLite copy, not etcd's bbolt file;
//! see `nomos_store::embedded::Snapshot`).

use std::sync::Arc;

use etcd_client::proto::PbAlarmMember;
use etcd_client::proto::{
    PbAlarmRequest, PbAlarmResponse, PbClusterService, PbDefragmentRequest, PbDefragmentResponse,
    PbDowngradeRequest, PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest,
    PbHashResponse, PbMaintenanceService, PbMemberAddRequest, PbMemberAddResponse,
    PbMemberListRequest, PbMemberListResponse, PbMemberPromoteRequest, PbMemberPromoteResponse,
    PbMemberRemoveRequest, PbMemberRemoveResponse, PbMemberUpdateRequest, PbMemberUpdateResponse,
    PbMoveLeaderRequest, PbMoveLeaderResponse, PbSnapshotRequest, PbSnapshotResponse,
    PbStatusRequest, PbStatusResponse,
};
use nomos_store::embedded::{AlarmKind, Snapshot};
use nomos_store::{EmbeddedStore, Store};
use tokio::io::AsyncReadExt;
use tonic::{Request, Response, Status};

use crate::error::to_status;
use crate::identity::Identity;

pub struct MaintenanceService {
    pub store: Arc<dyn Store>,
    pub identity: Arc<Identity>,
    /// The same store when it is the embedded one: snapshots, hashes, defragmentation and
    /// alarms need more than the `Store` trait offers.
    pub embedded: Option<Arc<EmbeddedStore>>,
}

pub struct ClusterService {
    pub store: Arc<dyn Store>,
    pub identity: Arc<Identity>,
}

/// The answer to every method this server does not offer.
pub fn unsupported(method: &str) -> Status {
    Status::unimplemented(format!(
        "{method} is not supported by the Nomos store server"
    ))
}

type Stream<T> = std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send>>;

/// etcd's `AlarmRequest.AlarmAction` values.
const ALARM_GET: i32 = 0;
const ALARM_ACTIVATE: i32 = 1;
const ALARM_DEACTIVATE: i32 = 2;
/// etcd's `AlarmType.NOSPACE`.
const ALARM_NOSPACE: i32 = 1;

/// Database bytes per snapshot message (etcd sends 32 KiB).
const SNAPSHOT_CHUNK: u64 = 32 * 1024;
/// The SHA-256 that ends a snapshot.
const SNAPSHOT_TRAILER: u64 = 32;

impl MaintenanceService {
    /// The embedded store, which `method` needs.
    fn embedded_store(&self, method: &str) -> Result<&EmbeddedStore, Status> {
        self.embedded
            .as_deref()
            .ok_or_else(|| unsupported(&format!("{method} without an embedded store")))
    }
}

/// A snapshot being sent: what is left of its database file, then its trailer.
struct Sending {
    /// Removes the database copy when the stream ends or the client goes away.
    snapshot: Snapshot,
    file: tokio::fs::File,
    /// Bytes still to send, trailer included.
    remaining: u64,
    header: Option<etcd_client::proto::PbResponseHeader>,
    version: String,
}

impl Sending {
    fn message(&self, blob: Vec<u8>) -> PbSnapshotResponse {
        PbSnapshotResponse {
            header: self.header,
            remaining_bytes: self.remaining,
            blob,
            version: self.version.clone(),
        }
    }

    /// The next message, or the error that ends the stream.
    async fn next(&mut self) -> Result<PbSnapshotResponse, Status> {
        if self.remaining == SNAPSHOT_TRAILER {
            self.remaining = 0;
            return Ok(self.message(self.snapshot.trailer().to_vec()));
        }
        let len = SNAPSHOT_CHUNK.min(self.remaining - SNAPSHOT_TRAILER);
        let mut blob = vec![0u8; len as usize];
        self.file
            .read_exact(&mut blob)
            .await
            .map_err(|e| Status::internal(format!("etcdserver: reading the snapshot copy: {e}")))?;
        self.remaining -= len;
        Ok(self.message(blob))
    }
}

fn snapshot_stream(sending: Sending) -> Stream<PbSnapshotResponse> {
    Box::pin(futures::stream::unfold(Some(sending), |state| async move {
        let mut sending = state.filter(|s| s.remaining > 0)?;
        match sending.next().await {
            Ok(message) => Some((Ok(message), Some(sending))),
            Err(status) => Some((Err(status), None)),
        }
    }))
}

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<PbAlarmRequest>,
    ) -> Result<Response<PbAlarmResponse>, Status> {
        // etcd's AlarmRequest: action GET (0), ACTIVATE (1), DEACTIVATE (2); alarm NONE (0),
        // NOSPACE (1), CORRUPT (2). Only the embedded store raises alarms (NOSPACE on a full
        // disk); on other stores GET lists none.
        let req = request.into_inner();
        let status = self.store.status().await.map_err(|e| to_status(&e))?;
        let member = self.identity.member_id;
        let nospace = || PbAlarmMember {
            member_id: member,
            alarm: ALARM_NOSPACE,
        };
        let ours = req.member_id == 0 || req.member_id == member;
        let alarms = match (req.action, &self.embedded) {
            (ALARM_GET, None) => Vec::new(),
            (ALARM_GET, Some(store)) => store
                .alarms()
                .into_iter()
                .filter(|_| req.alarm == 0 || req.alarm == ALARM_NOSPACE)
                .map(|AlarmKind::NoSpace| nospace())
                .collect(),
            (ALARM_ACTIVATE | ALARM_DEACTIVATE, _) if req.alarm != ALARM_NOSPACE => {
                return Err(unsupported(&format!(
                    "Maintenance.Alarm for alarm type {} (only NOSPACE)",
                    req.alarm
                )))
            }
            (ALARM_ACTIVATE, _) if !ours => Vec::new(),
            (ALARM_ACTIVATE, _) => {
                self.embedded_store("Maintenance.Alarm (activate)")?
                    .activate_alarm(AlarmKind::NoSpace);
                vec![nospace()]
            }
            (ALARM_DEACTIVATE, _) => {
                let store = self.embedded_store("Maintenance.Alarm (deactivate)")?;
                let was_up = ours && !store.alarms().is_empty();
                if ours {
                    store.deactivate_alarm(AlarmKind::NoSpace);
                }
                if was_up {
                    vec![nospace()]
                } else {
                    Vec::new()
                }
            }
            (action, _) => {
                return Err(Status::invalid_argument(format!(
                    "etcdserver: unknown alarm action {action}"
                )))
            }
        };
        Ok(Response::new(PbAlarmResponse {
            header: self.identity.header(status.revision),
            alarms,
        }))
    }

    async fn status(
        &self,
        _request: Request<PbStatusRequest>,
    ) -> Result<Response<PbStatusResponse>, Status> {
        let status = self.store.status().await.map_err(|e| to_status(&e))?;
        let id = &self.identity;
        let index = status.revision.max(0) as u64;
        Ok(Response::new(PbStatusResponse {
            header: id.header(status.revision),
            version: id.version.clone(),
            db_size: status.db_size,
            leader: id.member_id,
            raft_index: index,
            raft_term: id.raft_term,
            raft_applied_index: index,
            errors: Vec::new(),
            db_size_in_use: status.db_size,
            is_learner: false,
            storage_version: String::new(),
            db_size_quota: 0,
            downgrade_info: None,
        }))
    }

    async fn defragment(
        &self,
        _r: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        let store = self.embedded_store("Maintenance.Defragment")?;
        let size = store.defragment().await.map_err(|e| to_status(&e))?;
        tracing::info!(db_size = size, "defragmented the store");
        let status = self.store.status().await.map_err(|e| to_status(&e))?;
        Ok(Response::new(PbDefragmentResponse {
            header: self.identity.header(status.revision),
        }))
    }

    async fn hash(&self, _r: Request<PbHashRequest>) -> Result<Response<PbHashResponse>, Status> {
        let store = self.embedded_store("Maintenance.Hash")?;
        let (hash, revision) = store.hash().await.map_err(|e| to_status(&e))?;
        Ok(Response::new(PbHashResponse {
            header: self.identity.header(revision),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<PbHashKvRequest>,
    ) -> Result<Response<PbHashKvResponse>, Status> {
        let store = self.embedded_store("Maintenance.HashKV")?;
        let revision = request.into_inner().revision;
        let h = store.hash_kv(revision).await.map_err(|e| to_status(&e))?;
        Ok(Response::new(PbHashKvResponse {
            header: self.identity.header(h.revision),
            hash: h.hash,
            compact_revision: h.compact_revision,
            hash_revision: h.hash_revision,
        }))
    }

    type SnapshotStream = Stream<PbSnapshotResponse>;

    async fn snapshot(
        &self,
        _r: Request<PbSnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let store = self.embedded_store("Maintenance.Snapshot")?;
        let snapshot = store.snapshot().await.map_err(|e| to_status(&e))?;
        let file = tokio::fs::File::open(snapshot.database_path())
            .await
            .map_err(|e| Status::internal(format!("etcdserver: opening the snapshot copy: {e}")))?;
        let info = &snapshot.info;
        tracing::info!(
            revision = info.revision,
            bytes = info.file_size(),
            "sending a snapshot"
        );
        let sending = Sending {
            header: self.identity.header(info.revision),
            remaining: info.file_size(),
            version: self.identity.version.clone(),
            snapshot,
            file,
        };
        Ok(Response::new(snapshot_stream(sending)))
    }

    async fn move_leader(
        &self,
        _r: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        Err(unsupported("Maintenance.MoveLeader"))
    }

    async fn downgrade(
        &self,
        _r: Request<PbDowngradeRequest>,
    ) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(unsupported("Maintenance.Downgrade"))
    }
}

#[tonic::async_trait]
impl PbClusterService for ClusterService {
    async fn member_add(
        &self,
        _r: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        Err(unsupported("Cluster.MemberAdd"))
    }

    async fn member_remove(
        &self,
        _r: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        Err(unsupported("Cluster.MemberRemove"))
    }

    async fn member_update(
        &self,
        _r: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        Err(unsupported("Cluster.MemberUpdate"))
    }

    async fn member_list(
        &self,
        _r: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        let status = self.store.status().await.map_err(|e| to_status(&e))?;
        Ok(Response::new(PbMemberListResponse {
            header: self.identity.header(status.revision),
            members: vec![self.identity.member()],
        }))
    }

    async fn member_promote(
        &self,
        _r: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        Err(unsupported("Cluster.MemberPromote"))
    }
}
