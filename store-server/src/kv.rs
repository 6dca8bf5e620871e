//! The KV service: Range, Put, DeleteRange, Txn and Compact over the store. Each request is
//! first checked against its caller's permissions ([`crate::auth`]).

use std::sync::Arc;

use etcd_client::proto::{
    PbCompactionRequest, PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbKvService,
    PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeResponse, PbRangeStreamResponse,
    PbTxnRequest, PbTxnResponse,
};
use nomos_store::Store;
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::convert;
use crate::error::to_status;
use crate::identity::Identity;

pub struct KvService {
    pub store: Arc<dyn Store>,
    pub identity: Arc<Identity>,
}

type Stream<T> = std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl PbKvService for KvService {
    async fn range(
        &self,
        request: Request<PbRangeRequest>,
    ) -> Result<Response<PbRangeResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        caller.read(&req.key, &req.range_end)?;
        let (sel, options, post) = convert::range_request(&req)?;
        let resp = self
            .store
            .range(sel, options)
            .await
            .map_err(|e| to_status(&e))?;
        let resp = post.apply(resp);
        let header = self.identity.header(resp.revision);
        Ok(Response::new(convert::range_response(header, resp)))
    }

    type RangeStreamStream = Stream<PbRangeStreamResponse>;

    async fn range_stream(
        &self,
        _request: Request<PbRangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        Err(Status::unimplemented(
            "KV.RangeStream is not supported by the Nomos store server; use Range",
        ))
    }

    async fn put(&self, request: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        caller.write(&req.key, b"")?;
        if req.prev_kv {
            caller.read(&req.key, b"")?;
        }
        // A key may not join a lease whose keys the caller could not delete (etcd's rule).
        caller.lease_keys_writable(&*self.store, req.lease).await?;
        let (key, value, options) = convert::put_request(req)?;
        let resp = self
            .store
            .put(key, value, options)
            .await
            .map_err(|e| to_status(&e))?;
        let header = self.identity.header(resp.revision);
        Ok(Response::new(convert::put_response(header, resp)))
    }

    async fn delete_range(
        &self,
        request: Request<PbDeleteRequest>,
    ) -> Result<Response<PbDeleteResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        caller.write(&req.key, &req.range_end)?;
        if req.prev_kv {
            caller.read(&req.key, &req.range_end)?;
        }
        let (sel, options) = convert::delete_request(&req)?;
        let resp = self
            .store
            .delete(sel, options)
            .await
            .map_err(|e| to_status(&e))?;
        let header = self.identity.header(resp.revision);
        Ok(Response::new(convert::delete_response(header, resp)))
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        caller.txn(&req)?;
        let (txn, post) = convert::txn_request(req)?;
        let resp = self.store.txn(txn).await.map_err(|e| to_status(&e))?;
        let header = self.identity.header(resp.revision);
        Ok(Response::new(convert::txn_response(header, resp, &post)))
    }

    async fn compact(
        &self,
        request: Request<PbCompactionRequest>,
    ) -> Result<Response<PbCompactionResponse>, Status> {
        let req = request.into_inner();
        self.store
            .compact(req.revision)
            .await
            .map_err(|e| to_status(&e))?;
        let status = self.store.status().await.map_err(|e| to_status(&e))?;
        Ok(Response::new(PbCompactionResponse {
            header: self.identity.header(status.revision),
        }))
    }
}
