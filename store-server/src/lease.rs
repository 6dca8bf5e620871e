//! The Lease service: Grant, Revoke, the KeepAlive stream, TimeToLive and Leases. With auth
//! enabled, revoking needs write permission on every key of the lease (etcd's rule); the rest
//! only a valid token, which the auth layer has checked.

use std::sync::Arc;

use etcd_client::proto::{
    PbLeaseGrantRequest, PbLeaseGrantResponse, PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse,
    PbLeaseLeasesRequest, PbLeaseLeasesResponse, PbLeaseRevokeRequest, PbLeaseRevokeResponse,
    PbLeaseService, PbLeaseStatus, PbLeaseTimeToLiveRequest, PbLeaseTimeToLiveResponse,
};
use futures::StreamExt;
use nomos_store::{Store, StoreError};
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Caller;
use crate::convert::MAX_LEASE_TTL;
use crate::error::{messages, to_status};
use crate::identity::Identity;

pub struct LeaseService {
    pub store: Arc<dyn Store>,
    pub identity: Arc<Identity>,
    /// Flips to true when the server shuts down; keep-alive streams then end.
    pub closing: tokio::sync::watch::Receiver<bool>,
}

impl LeaseService {
    async fn revision(&self) -> Result<i64, Status> {
        Ok(self
            .store
            .status()
            .await
            .map_err(|e| to_status(&e))?
            .revision)
    }
}

#[tonic::async_trait]
impl PbLeaseService for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<PbLeaseGrantRequest>,
    ) -> Result<Response<PbLeaseGrantResponse>, Status> {
        let req = request.into_inner();
        if req.ttl > MAX_LEASE_TTL {
            return Err(Status::out_of_range(messages::LEASE_TTL_TOO_LARGE));
        }
        let grant = self
            .store
            .lease_grant(req.ttl, req.id)
            .await
            .map_err(|e| to_status(&e))?;
        let header = self.identity.header(self.revision().await?);
        Ok(Response::new(PbLeaseGrantResponse {
            header,
            id: grant.id,
            ttl: grant.ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        let id = request.get_ref().id;
        // Revoking deletes the lease's keys: the caller must be allowed to write each.
        Caller::of(&request)?
            .lease_keys_writable(&*self.store, id)
            .await?;
        self.store
            .lease_revoke(id)
            .await
            .map_err(|e| to_status(&e))?;
        let header = self.identity.header(self.revision().await?);
        Ok(Response::new(PbLeaseRevokeResponse { header }))
    }

    type LeaseKeepAliveStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<PbLeaseKeepAliveResponse, Status>> + Send>,
    >;

    /// Each request renews one lease; an unknown or expired lease is answered with TTL 0, as
    /// etcd does, and the stream goes on. The answers are computed as the client reads them, so
    /// no task outlives the stream.
    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let inbound = request.into_inner();
        let state = (
            inbound,
            self.store.clone(),
            self.identity.clone(),
            self.closing.clone(),
            false,
        );
        let stream = futures::stream::unfold(
            state,
            |(mut inbound, store, identity, mut closing, failed)| async move {
                if failed {
                    return None;
                }
                let msg = tokio::select! {
                    () = crate::closed(&mut closing) => None,
                    msg = inbound.next() => msg,
                };
                let req = match msg? {
                    Ok(req) => req,
                    Err(status) => {
                        return Some((Err(status), (inbound, store, identity, closing, true)))
                    }
                };
                let out = match store.lease_keep_alive(req.id).await {
                    Ok(ttl) => Ok(ttl),
                    Err(StoreError::LeaseNotFound(_)) => Ok(0),
                    Err(e) => Err(to_status(&e)),
                }
                .map(|ttl| (req.id, ttl));
                let out = match out {
                    Ok((id, ttl)) => match store.status().await {
                        Ok(s) => Ok(PbLeaseKeepAliveResponse {
                            header: identity.header(s.revision),
                            id,
                            ttl,
                        }),
                        Err(e) => Err(to_status(&e)),
                    },
                    Err(status) => Err(status),
                };
                let failed = out.is_err();
                Some((out, (inbound, store, identity, closing, failed)))
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let info = match self.store.lease_time_to_live(req.id, req.keys).await {
            Ok(info) => Some(info),
            Err(StoreError::LeaseNotFound(_)) => None,
            Err(e) => return Err(to_status(&e)),
        };
        let header = self.identity.header(self.revision().await?);
        let resp = match info {
            Some(info) if info.ttl >= 0 => PbLeaseTimeToLiveResponse {
                header,
                id: info.id,
                ttl: info.ttl,
                granted_ttl: info.granted_ttl,
                keys: if req.keys { info.keys } else { Vec::new() },
            },
            // etcd answers an expired or unknown lease with TTL -1 rather than an error.
            _ => PbLeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _request: Request<PbLeaseLeasesRequest>,
    ) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        let ids = self.store.lease_list().await.map_err(|e| to_status(&e))?;
        let header = self.identity.header(self.revision().await?);
        Ok(Response::new(PbLeaseLeasesResponse {
            header,
            leases: ids.into_iter().map(|id| PbLeaseStatus { id }).collect(),
        }))
    }
}
