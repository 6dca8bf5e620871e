//! The `etcd-client` crate against the store server and against a real etcd: the same calls must
//! give the same answers (headers' ids and lease ids normalised), including watch event order,
//! revisions, versions, compaction errors and lease expiry.

mod support;

use std::sync::Arc;
use std::time::Duration;

use etcd_client::proto::{PbKeyValue, PbResponseHeader, PbResponseOp, PbTxnOpResponse};
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp, WatchFilterType, WatchOptions, WatchResponse, WatchStream,
};
use support::{real_etcd, TestServer};

async fn connect(endpoint: &str) -> Client {
    Client::connect([endpoint], None)
        .await
        .unwrap_or_else(|e| panic!("connecting to {endpoint}: {e}"))
}

fn norm_header(h: &mut Option<PbResponseHeader>) {
    if let Some(h) = h {
        if h.member_id != 0 {
            h.cluster_id = 1;
            h.member_id = 1;
            h.raft_term = 1;
        }
    }
}

fn norm_kvs(kvs: &mut [PbKeyValue]) {
    for kv in kvs {
        if kv.lease != 0 {
            kv.lease = 1;
        }
    }
}

fn norm_ops(ops: &mut [PbResponseOp]) {
    for op in ops {
        match &mut op.response {
            Some(PbTxnOpResponse::ResponseRange(r)) => {
                norm_header(&mut r.header);
                norm_kvs(&mut r.kvs);
            }
            Some(PbTxnOpResponse::ResponsePut(p)) => {
                norm_header(&mut p.header);
                norm_kvs(p.prev_kv.as_mut_slice());
            }
            Some(PbTxnOpResponse::ResponseDeleteRange(d)) => {
                norm_header(&mut d.header);
                norm_kvs(&mut d.prev_kvs);
            }
            Some(PbTxnOpResponse::ResponseTxn(t)) => {
                norm_header(&mut t.header);
                norm_ops(&mut t.responses);
            }
            None => {}
        }
    }
}

/// A call's outcome as comparable text: the normalised response, or the gRPC code and message.
fn show<T, F>(result: Result<T, etcd_client::Error>, norm: F) -> String
where
    F: FnOnce(T) -> String,
{
    match result {
        Ok(v) => norm(v),
        Err(etcd_client::Error::GRpcStatus(s)) => format!("error {:?}: {}", s.code(), s.message()),
        Err(e) => format!("error: {e}"),
    }
}

fn get_text(r: etcd_client::GetResponse) -> String {
    let mut pb = r.0;
    norm_header(&mut pb.header);
    norm_kvs(&mut pb.kvs);
    format!("{pb:?}")
}

fn put_text(r: etcd_client::PutResponse) -> String {
    let mut pb = r.0;
    norm_header(&mut pb.header);
    norm_kvs(pb.prev_kv.as_mut_slice());
    format!("{pb:?}")
}

fn del_text(r: etcd_client::DeleteResponse) -> String {
    let mut pb = r.0;
    norm_header(&mut pb.header);
    norm_kvs(&mut pb.prev_kvs);
    format!("{pb:?}")
}

fn txn_text(r: etcd_client::TxnResponse) -> String {
    let mut pb = r.0;
    norm_header(&mut pb.header);
    norm_ops(&mut pb.responses);
    format!("{pb:?}")
}

/// Range options, puts, deletes, txns with every compare target and op, errors.
async fn kv_session(endpoint: &str) -> Vec<String> {
    let client = connect(endpoint).await;
    let mut kv = client.kv_client();
    let mut lease = client.lease_client();
    let mut out = Vec::new();
    let lease_id = lease.grant(600, None).await.unwrap().id();
    for (k, v) in [
        ("/k/a", "3"),
        ("/k/b", "1"),
        ("/k/c", "2"),
        ("/k/a", "4"),
        ("/z", "z"),
    ] {
        out.push(show(kv.put(k, v, None).await, put_text));
    }
    out.push(show(
        kv.put(
            "/k/d",
            "l",
            Some(PutOptions::new().with_lease(lease_id).with_prev_key()),
        )
        .await,
        put_text,
    ));
    out.push(show(
        kv.put(
            "/k/d",
            "m",
            Some(PutOptions::new().with_ignore_lease().with_prev_key()),
        )
        .await,
        put_text,
    ));
    out.push(show(
        kv.put(
            "/k/d",
            "",
            Some(PutOptions::new().with_ignore_value().with_lease(0)),
        )
        .await,
        put_text,
    ));
    out.push(show(
        kv.put("/k/none", "", Some(PutOptions::new().with_ignore_value()))
            .await,
        put_text,
    ));
    out.push(show(
        kv.put("/k/a", "x", Some(PutOptions::new().with_ignore_value()))
            .await,
        put_text,
    ));
    out.push(show(kv.put("", "x", None).await, put_text));
    let gets: Vec<(&str, GetOptions)> = vec![
        ("/k/", GetOptions::new().with_prefix()),
        ("/k/", GetOptions::new().with_prefix().with_limit(2)),
        ("/k/", GetOptions::new().with_prefix().with_keys_only()),
        ("/k/", GetOptions::new().with_prefix().with_count_only()),
        (
            "/k/",
            GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Value, SortOrder::Descend),
        ),
        (
            "/k/",
            GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Version, SortOrder::None),
        ),
        (
            "/k/",
            GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Create, SortOrder::Ascend)
                .with_limit(2),
        ),
        (
            "/k/",
            GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Mod, SortOrder::Descend),
        ),
        (
            "/k/",
            GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Key, SortOrder::Descend),
        ),
        (
            "/k/",
            GetOptions::new().with_prefix().with_min_mod_revision(4),
        ),
        (
            "/k/",
            GetOptions::new()
                .with_prefix()
                .with_max_mod_revision(4)
                .with_limit(1),
        ),
        (
            "/k/",
            GetOptions::new()
                .with_prefix()
                .with_min_create_revision(3)
                .with_max_create_revision(4),
        ),
        ("/k/a", GetOptions::new().with_revision(2)),
        ("/k/a", GetOptions::new().with_revision(1000)),
        ("/k/b", GetOptions::new().with_range("/k/d")),
        ("/k/c", GetOptions::new().with_from_key()),
        ("", GetOptions::new().with_all_keys().with_count_only()),
        ("", GetOptions::new()),
    ];
    for (key, options) in gets {
        out.push(show(kv.get(key, Some(options)).await, get_text));
    }
    // Compares on every target with every operator, each in its own txn.
    let compares = vec![
        Compare::version("/k/a", CompareOp::Equal, 2),
        Compare::version("/k/a", CompareOp::Greater, 2),
        Compare::create_revision("/k/b", CompareOp::Less, 100),
        Compare::mod_revision("/k/a", CompareOp::NotEqual, 5),
        Compare::value("/k/c", CompareOp::Equal, "2"),
        Compare::value("/k/c", CompareOp::Greater, "1"),
        Compare::value("/missing", CompareOp::Equal, ""),
        Compare::version("/missing", CompareOp::Equal, 0),
        Compare::lease("/k/d", CompareOp::Equal, 0),
        Compare::lease("/k/d", CompareOp::Greater, 0),
        Compare::version("/k/", CompareOp::Greater, 0).with_prefix(),
        Compare::mod_revision("/k/", CompareOp::Less, 3).with_prefix(),
    ];
    for compare in compares {
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::get("/k/a", None)])
            .or_else([TxnOp::get("/k/b", Some(GetOptions::new().with_keys_only()))]);
        out.push(show(kv.txn(txn).await, txn_text));
    }
    // A write txn with every op type and a nested txn.
    let nested = Txn::new()
        .when([Compare::value("/k/b", CompareOp::Equal, "1")])
        .and_then([
            TxnOp::put("/t/inner", "yes", None),
            TxnOp::get("/t/", Some(GetOptions::new().with_prefix())),
        ])
        .or_else([TxnOp::put("/t/inner", "no", None)]);
    let txn = Txn::new()
        .when([Compare::version("/k/a", CompareOp::Equal, 2)])
        .and_then([
            TxnOp::put("/t/a", "1", Some(PutOptions::new().with_prev_key())),
            TxnOp::delete("/k/c", Some(DeleteOptions::new().with_prev_key())),
            TxnOp::get(
                "/k/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            ),
            TxnOp::txn(nested),
        ])
        .or_else([]);
    out.push(show(kv.txn(txn).await, txn_text));
    let dup = Txn::new().and_then([TxnOp::put("/t/x", "1", None), TxnOp::put("/t/x", "2", None)]);
    out.push(show(kv.txn(dup).await, txn_text));
    let overlap = Txn::new().and_then([
        TxnOp::delete("/t/", Some(DeleteOptions::new().with_prefix())),
        TxnOp::put("/t/y", "2", None),
    ]);
    out.push(show(kv.txn(overlap).await, txn_text));
    let many = Txn::new().and_then(
        (0..129)
            .map(|i| TxnOp::put(format!("/many/{i}"), "v", None))
            .collect::<Vec<_>>(),
    );
    out.push(show(kv.txn(many).await, txn_text));
    out.push(show(kv.txn(Txn::new()).await, txn_text));
    // Deletes.
    out.push(show(
        kv.delete("/k/b", Some(DeleteOptions::new().with_prev_key()))
            .await,
        del_text,
    ));
    out.push(show(kv.delete("/nothing", None).await, del_text));
    out.push(show(
        kv.delete(
            "/k/",
            Some(DeleteOptions::new().with_prefix().with_prev_key()),
        )
        .await,
        del_text,
    ));
    out.push(show(
        kv.delete("/a", Some(DeleteOptions::new().with_range("/u")))
            .await,
        del_text,
    ));
    // Compaction and what it does to reads.
    out.push(show(kv.compact(5, None).await, |r| {
        format!("compacted at {}", r.header().map_or(0, |h| h.revision()))
    }));
    out.push(show(kv.compact(4, None).await, |_| "compacted".to_string()));
    out.push(show(kv.compact(10_000, None).await, |_| {
        "compacted".to_string()
    }));
    out.push(show(
        kv.get("/z", Some(GetOptions::new().with_revision(4))).await,
        get_text,
    ));
    out.push(show(
        kv.get("/z", Some(GetOptions::new().with_revision(5))).await,
        get_text,
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_txn_and_compaction_answers_match_real_etcd() {
    let server = TestServer::embedded().await;
    let etcd = real_etcd().await;
    let ours = kv_session(&server.endpoint).await;
    let theirs = kv_session(&etcd.endpoint()).await;
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(
            a, b,
            "step {i} differs\n store server: {a}\n real etcd:    {b}"
        );
    }
}

/// What a watch response says, as comparable text (ids of leases normalised).
fn watch_text(r: &WatchResponse) -> String {
    let mut pb = r.0.clone();
    norm_header(&mut pb.header);
    for e in &mut pb.events {
        norm_kvs(e.kv.as_mut_slice());
        norm_kvs(e.prev_kv.as_mut_slice());
    }
    format!("{pb:?}")
}

async fn next(stream: &mut WatchStream) -> WatchResponse {
    match tokio::time::timeout(Duration::from_secs(15), stream.message()).await {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => panic!("watch stream ended"),
        Ok(Err(e)) => panic!("watch stream failed: {e}"),
        Err(_) => panic!("no watch response within 15 s"),
    }
}

/// Several watches on one stream; every response must be the same as etcd's, in the same order.
async fn watch_session(endpoint: &str) -> Vec<String> {
    let client = connect(endpoint).await;
    let mut kv = client.kv_client();
    let mut watch = client.watch_client();
    let mut out = Vec::new();
    kv.put("/w/a", "0", None).await.unwrap(); // revision 2
    let mut stream = watch
        .watch(
            "/w/",
            Some(WatchOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .unwrap();
    out.push(watch_text(&next(&mut stream).await)); // created, watch 0
    stream
        .watch(
            "/w/b",
            Some(
                WatchOptions::new()
                    .with_start_revision(1)
                    .with_filters([WatchFilterType::NoDelete]),
            ),
        )
        .await
        .unwrap();
    out.push(watch_text(&next(&mut stream).await)); // created, watch 1
    kv.put("/w/a", "1", None).await.unwrap(); // 3
    out.push(watch_text(&next(&mut stream).await));
    kv.put("/w/b", "2", None).await.unwrap(); // 4: both watches see it, one response each
    let mut pair = vec![
        watch_text(&next(&mut stream).await),
        watch_text(&next(&mut stream).await),
    ];
    pair.sort();
    out.extend(pair);
    let txn = Txn::new().and_then([
        TxnOp::put("/w/c", "3", None),
        TxnOp::put("/w/a", "4", None),
        TxnOp::put("/x", "5", None),
    ]);
    kv.txn(txn).await.unwrap(); // 5: one response with both events, in key order of the txn
    out.push(watch_text(&next(&mut stream).await));
    kv.delete("/w/b", None).await.unwrap(); // 6: watch 1 filters deletes
    out.push(watch_text(&next(&mut stream).await));
    stream.cancel(0).await.unwrap();
    out.push(watch_text(&next(&mut stream).await)); // canceled
    kv.put("/w/b", "7", None).await.unwrap(); // 7: only watch 1
    out.push(watch_text(&next(&mut stream).await));
    stream.request_progress().await.unwrap();
    out.push(watch_text(&next(&mut stream).await));
    // A watch from a compacted revision: created, then canceled with the compaction revision.
    kv.compact(5, None).await.unwrap();
    stream
        .watch(
            "/w/",
            Some(WatchOptions::new().with_prefix().with_start_revision(2)),
        )
        .await
        .unwrap();
    out.push(watch_text(&next(&mut stream).await));
    out.push(watch_text(&next(&mut stream).await));
    // A watch from exactly the compaction revision replays from there, in one response.
    stream
        .watch(
            "/w/",
            Some(WatchOptions::new().with_prefix().with_start_revision(5)),
        )
        .await
        .unwrap();
    out.push(watch_text(&next(&mut stream).await));
    out.push(watch_text(&next(&mut stream).await));
    // A watch starting in the future sees nothing until its revision.
    stream
        .watch("/f", Some(WatchOptions::new().with_start_revision(9)))
        .await
        .unwrap();
    out.push(watch_text(&next(&mut stream).await));
    kv.put("/f", "8", None).await.unwrap(); // 8: not yet
    kv.put("/f", "9", None).await.unwrap(); // 9
    out.push(watch_text(&next(&mut stream).await));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_responses_match_real_etcd_in_order() {
    let server = TestServer::embedded().await;
    let etcd = real_etcd().await;
    let ours = watch_session(&server.endpoint).await;
    let theirs = watch_session(&etcd.endpoint()).await;
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(
            a, b,
            "response {i} differs\n store server: {a}\n real etcd:    {b}"
        );
    }
}

/// A lease that is not kept alive expires: its keys are deleted (a watch sees it), and every
/// lease call then reports it gone.
async fn lease_expiry_session(endpoint: &str) -> Vec<String> {
    let client = connect(endpoint).await;
    let mut kv = client.kv_client();
    let mut lease = client.lease_client();
    let mut watch = client.watch_client();
    let mut out = Vec::new();
    let grant = lease.grant(2, None).await.unwrap();
    out.push(format!("granted ttl {}", grant.ttl()));
    let id = grant.id();
    kv.put("/hb/a", "1", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    kv.put("/hb/b", "1", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    let ttl = lease
        .time_to_live(
            id,
            Some(etcd_client::LeaseTimeToLiveOptions::new().with_keys()),
        )
        .await
        .unwrap();
    // etcd lists a lease's keys in no particular order.
    let mut keys = ttl.keys().to_vec();
    keys.sort();
    out.push(format!("keys {keys:?} granted {}", ttl.granted_ttl()));
    let (mut keeper, mut responses) = lease.keep_alive(id).await.unwrap();
    keeper.keep_alive().await.unwrap();
    let renewed = responses.message().await.unwrap().unwrap();
    out.push(format!("renewed ttl {}", renewed.ttl()));
    drop(keeper);
    let mut stream = watch
        .watch(
            "/hb/",
            Some(WatchOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .unwrap();
    next(&mut stream).await;
    let mut deleted = Vec::new();
    while deleted.len() < 2 {
        let resp = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("the lease's keys were not deleted within 20 s")
            .unwrap()
            .unwrap();
        for e in resp.events() {
            assert_eq!(e.event_type(), EventType::Delete);
            let kv = e.kv().unwrap();
            deleted.push((
                kv.key_str().unwrap().to_string(),
                kv.mod_revision(),
                e.prev_kv().map(|p| p.lease() == id),
            ));
        }
    }
    out.push(format!("deleted {deleted:?}"));
    let ttl = lease.time_to_live(id, None).await.unwrap();
    out.push(format!("ttl after expiry {}", ttl.ttl()));
    out.push(show(lease.keep_alive(id).await.map(|_| ()), |_| {
        "kept alive".to_string()
    }));
    out.push(show(lease.revoke(id).await.map(|_| ()), |_| {
        "revoked".to_string()
    }));
    out.push(show(
        kv.put("/hb/c", "1", Some(PutOptions::new().with_lease(id)))
            .await,
        put_text,
    ));
    out.push(format!(
        "leases {}",
        lease.leases().await.unwrap().leases().len()
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_expiry_behaves_like_real_etcd() {
    let server = TestServer::embedded().await;
    let etcd = real_etcd().await;
    let (ours, theirs) = tokio::join!(lease_expiry_session(&server.endpoint), async {
        let e = etcd.endpoint();
        lease_expiry_session(&e).await
    });
    assert_eq!(ours, theirs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_headers_carry_one_identity_and_the_current_revision() {
    let server = TestServer::embedded().await;
    let client = connect(&server.endpoint).await;
    let mut kv = client.kv_client();
    let put = kv.put("a", "1", None).await.unwrap();
    let get = kv.get("a", None).await.unwrap();
    let status = client.maintenance_client().status().await.unwrap();
    let members = client.cluster_client().member_list().await.unwrap();
    let lease = client.lease_client().grant(60, None).await.unwrap();
    let headers = [
        put.header(),
        get.header(),
        status.header(),
        members.header(),
        lease.header(),
    ];
    let first = put.header().unwrap();
    assert_ne!(first.cluster_id(), 0);
    assert_ne!(first.member_id(), 0);
    for h in headers {
        let h = h.expect("every response has a header");
        assert_eq!(
            (h.cluster_id(), h.member_id(), h.raft_term()),
            (first.cluster_id(), first.member_id(), first.raft_term())
        );
        assert_eq!(h.revision(), put.header().unwrap().revision());
    }
    assert_eq!(status.leader(), first.member_id());
    assert_eq!(members.members().len(), 1);
    assert_eq!(members.members()[0].id(), first.member_id());
    assert_eq!(
        members.members()[0].client_urls(),
        std::slice::from_ref(&server.endpoint)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_calls_answer_unimplemented_with_a_message() {
    let server = TestServer::embedded().await;
    let client = connect(&server.endpoint).await;
    let checks: Vec<(&str, Result<(), etcd_client::Error>)> = vec![
        (
            "defragment",
            client.maintenance_client().defragment().await.map(|_| ()),
        ),
        (
            "member add",
            client
                .cluster_client()
                .member_add(vec!["http://x:1".to_string()], None)
                .await
                .map(|_| ()),
        ),
        (
            "election",
            client.election_client().leader("e").await.map(|_| ()),
        ),
        (
            "lock",
            client.lock_client().lock("l", None).await.map(|_| ()),
        ),
    ];
    for (what, result) in checks {
        match result {
            Err(etcd_client::Error::GRpcStatus(s)) => {
                assert_eq!(s.code(), tonic::Code::Unimplemented, "{what}: {s:?}");
                assert!(
                    s.message().contains("not supported"),
                    "{what}: message {:?}",
                    s.message()
                );
            }
            other => panic!("{what}: expected Unimplemented, got {other:?}"),
        }
    }
    // An unknown method of a known service, called raw.
    let channel = tonic::transport::Channel::from_shared(server.endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/etcdserverpb.KV/NoSuchMethod");
    let answer: Result<tonic::Response<etcd_client::proto::PbRangeResponse>, tonic::Status> = grpc
        .unary(
            tonic::Request::new(etcd_client::proto::PbRangeRequest::default()),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await;
    let status = answer.expect_err("an unknown method answered");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(
        status
            .message()
            .contains("etcdserverpb.KV/NoSuchMethod is not supported"),
        "{:?}",
        status.message()
    );
    // The server still works after all of them.
    client.kv_client().put("still", "here", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_server_with_open_watch_and_keep_alive_streams() {
    let server = TestServer::embedded().await;
    let endpoint = server.endpoint.clone();
    let client = connect(&endpoint).await;
    let mut stream = client.watch_client().watch("k", None).await.unwrap();
    next(&mut stream).await;
    let mut lease = client.lease_client();
    let id = lease.grant(60, None).await.unwrap().id();
    let (_keeper, _responses) = lease.keep_alive(id).await.unwrap();
    let done = tokio::time::timeout(Duration::from_secs(10), server.shutdown()).await;
    assert!(
        matches!(done, Ok(Ok(()))),
        "server did not stop cleanly: {done:?}"
    );
    // The open watch ends rather than hanging, and nothing answers any more.
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.message()).await;
    assert!(
        matches!(ended, Ok(Ok(None)) | Ok(Err(_))),
        "watch after shutdown: {ended:?}"
    );
    let after = tokio::time::timeout(Duration::from_secs(10), async {
        let mut late = Client::connect([endpoint.as_str()], None).await?;
        late.get("k", None).await
    })
    .await;
    assert!(
        !matches!(after, Ok(Ok(_))),
        "the server still answered after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_store_served_again_after_a_restart_keeps_keys_and_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Arc::new(nomos_store::EmbeddedStore::open(dir.path()).expect("opening the embedded store"))
    };
    let server = TestServer::start(open()).await;
    let mut client = connect(&server.endpoint).await;
    client.put("/durable/a", "1", None).await.unwrap();
    let put = client.put("/durable/a", "2", None).await.unwrap();
    let revision = put.header().unwrap().revision();
    drop(client);
    server.shutdown().await.unwrap();

    let server = TestServer::start(open()).await;
    let mut client = connect(&server.endpoint).await;
    let got = client.get("/durable/a", None).await.unwrap();
    assert_eq!(got.header().unwrap().revision(), revision);
    let kv = &got.kvs()[0];
    assert_eq!(
        (kv.value(), kv.version(), kv.mod_revision()),
        (&b"2"[..], 2, revision)
    );
}
