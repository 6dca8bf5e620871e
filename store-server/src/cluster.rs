//! Maintenance and Cluster: enough for `etcdctl endpoint status` and `etcdctl member list`.
//! Every other method of the two services answers `Unimplemented` with the method's name.

use std::sync::Arc;

use etcd_client::proto::{
    PbAlarmRequest, PbAlarmResponse, PbClusterService, PbDefragmentRequest, PbDefragmentResponse,
    PbDowngradeRequest, PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest,
    PbHashResponse, PbMaintenanceService, PbMemberAddRequest, PbMemberAddResponse,
    PbMemberListRequest, PbMemberListResponse, PbMemberPromoteRequest, PbMemberPromoteResponse,
    PbMemberRemoveRequest, PbMemberRemoveResponse, PbMemberUpdateRequest, PbMemberUpdateResponse,
    PbMoveLeaderRequest, PbMoveLeaderResponse, PbSnapshotRequest, PbSnapshotResponse,
    PbStatusRequest, PbStatusResponse,
};
use nomos_store::Store;
use tonic::{Request, Response, Status};

use crate::error::to_status;
use crate::identity::Identity;

pub struct MaintenanceService {
    pub store: Arc<dyn Store>,
    pub identity: Arc<Identity>,
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

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<PbAlarmRequest>,
    ) -> Result<Response<PbAlarmResponse>, Status> {
        // GET (0) lists alarms: there are none. Activating or deactivating is not supported.
        if request.into_inner().action != 0 {
            return Err(unsupported("Maintenance.Alarm (activate/deactivate)"));
        }
        let status = self.store.status().await.map_err(|e| to_status(&e))?;
        Ok(Response::new(PbAlarmResponse {
            header: self.identity.header(status.revision),
            alarms: Vec::new(),
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
        Err(unsupported("Maintenance.Defragment"))
    }

    async fn hash(&self, _r: Request<PbHashRequest>) -> Result<Response<PbHashResponse>, Status> {
        Err(unsupported("Maintenance.Hash"))
    }

    async fn hash_kv(
        &self,
        _r: Request<PbHashKvRequest>,
    ) -> Result<Response<PbHashKvResponse>, Status> {
        Err(unsupported("Maintenance.HashKV"))
    }

    type SnapshotStream = Stream<PbSnapshotResponse>;

    async fn snapshot(
        &self,
        _r: Request<PbSnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(unsupported("Maintenance.Snapshot"))
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
