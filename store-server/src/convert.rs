//! Pure translation between etcd's protobuf messages and the `Store` trait's values, with the
//! request checks etcd makes before applying anything. No I/O: table-tested below.

use std::collections::HashSet;

use etcd_client::proto::{
    PbCompare, PbCompareTarget, PbDeleteRequest, PbDeleteResponse, PbEvent, PbKeyValue,
    PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeResponse, PbResponseHeader, PbResponseOp,
    PbTargetUnion, PbTxnOpRequest, PbTxnOpResponse, PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use nomos_store::{
    prefix_end, Compare, CompareOp, CompareTarget, DeleteOptions, DeleteResponse, EventKind,
    KeySelector, KeyValue, PutOptions, PutResponse, RangeOptions, RangeResponse, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchEvent, WatchFilters,
};
use tonic::Status;

use crate::error::messages;

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

/// etcd's largest lease TTL (`lease.MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

fn invalid(msg: &str) -> Status {
    Status::invalid_argument(msg)
}

/// etcd's `(key, range_end)` pair as a selector: an empty `range_end` is one key, `range_end`
/// `"\0"` means every key from `key` on.
pub fn selector(key: &[u8], range_end: &[u8]) -> KeySelector {
    if range_end.is_empty() {
        KeySelector::Key(key.to_vec())
    } else if !key.is_empty() && range_end != [0] && prefix_end(key) == range_end {
        KeySelector::Prefix(key.to_vec())
    } else {
        KeySelector::Range {
            start: key.to_vec(),
            end: range_end.to_vec(),
        }
    }
}

pub fn kv(kv: KeyValue) -> PbKeyValue {
    PbKeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// A header carrying only a revision, as etcd fills the responses nested inside a txn.
fn inner_header(revision: i64) -> Option<PbResponseHeader> {
    Some(PbResponseHeader {
        revision,
        ..Default::default()
    })
}

/// What the server does to a range result after the store answered: etcd's revision filters and
/// the limit they postpone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RangePost {
    pub limit: i64,
    pub min_mod_revision: i64,
    pub max_mod_revision: i64,
    pub min_create_revision: i64,
    pub max_create_revision: i64,
}

impl RangePost {
    fn filters(&self) -> bool {
        self.min_mod_revision != 0
            || self.max_mod_revision != 0
            || self.min_create_revision != 0
            || self.max_create_revision != 0
    }

    fn keeps(&self, kv: &KeyValue) -> bool {
        (self.min_mod_revision == 0 || kv.mod_revision >= self.min_mod_revision)
            && (self.max_mod_revision == 0 || kv.mod_revision <= self.max_mod_revision)
            && (self.min_create_revision == 0 || kv.create_revision >= self.min_create_revision)
            && (self.max_create_revision == 0 || kv.create_revision <= self.max_create_revision)
    }

    /// Filters, then truncates to the limit; `count` stays the store's count of the whole range.
    pub fn apply(&self, mut resp: RangeResponse) -> RangeResponse {
        if !self.filters() {
            return resp;
        }
        resp.kvs.retain(|kv| self.keeps(kv));
        resp.more = false;
        if self.limit > 0 && resp.kvs.len() as i64 > self.limit {
            resp.kvs.truncate(self.limit as usize);
            resp.more = true;
        }
        resp
    }
}

/// Checks and converts a range request.
pub fn range_request(
    req: &PbRangeRequest,
) -> Result<(KeySelector, RangeOptions, RangePost), Status> {
    if req.key.is_empty() {
        return Err(invalid(messages::EMPTY_KEY));
    }
    let mut sort_order = match req.sort_order {
        0 => SortOrder::None,
        1 => SortOrder::Ascend,
        2 => SortOrder::Descend,
        _ => return Err(invalid("etcdserver: invalid sort option")),
    };
    let sort_target = match req.sort_target {
        0 => SortTarget::Key,
        1 => SortTarget::Version,
        2 => SortTarget::Create,
        3 => SortTarget::Mod,
        4 => SortTarget::Value,
        _ => return Err(invalid("etcdserver: invalid sort option")),
    };
    // Results come in key order, so etcd only sorts by default when the target is not the key.
    if sort_target != SortTarget::Key && sort_order == SortOrder::None {
        sort_order = SortOrder::Ascend;
    }
    let post = RangePost {
        limit: req.limit,
        min_mod_revision: req.min_mod_revision,
        max_mod_revision: req.max_mod_revision,
        min_create_revision: req.min_create_revision,
        max_create_revision: req.max_create_revision,
    };
    let options = RangeOptions {
        limit: if post.filters() && !req.count_only {
            0
        } else {
            req.limit
        },
        revision: req.revision,
        keys_only: req.keys_only,
        count_only: req.count_only,
        sort_order,
        sort_target,
    };
    Ok((selector(&req.key, &req.range_end), options, post))
}

pub fn range_response(header: Option<PbResponseHeader>, resp: RangeResponse) -> PbRangeResponse {
    PbRangeResponse {
        header,
        kvs: resp.kvs.into_iter().map(kv).collect(),
        more: resp.more,
        count: resp.count,
    }
}

/// Checks and converts a put request.
pub fn put_request(req: PbPutRequest) -> Result<(Vec<u8>, Vec<u8>, PutOptions), Status> {
    if req.key.is_empty() {
        return Err(invalid(messages::EMPTY_KEY));
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(invalid(messages::VALUE_PROVIDED));
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(invalid(messages::LEASE_PROVIDED));
    }
    let options = PutOptions {
        lease: req.lease,
        prev_kv: req.prev_kv,
        ignore_value: req.ignore_value,
        ignore_lease: req.ignore_lease,
    };
    Ok((req.key, req.value, options))
}

pub fn put_response(header: Option<PbResponseHeader>, resp: PutResponse) -> PbPutResponse {
    PbPutResponse {
        header,
        prev_kv: resp.prev_kv.map(kv),
    }
}

/// Checks and converts a delete request.
pub fn delete_request(req: &PbDeleteRequest) -> Result<(KeySelector, DeleteOptions), Status> {
    if req.key.is_empty() {
        return Err(invalid(messages::EMPTY_KEY));
    }
    Ok((
        selector(&req.key, &req.range_end),
        DeleteOptions {
            prev_kv: req.prev_kv,
        },
    ))
}

pub fn delete_response(header: Option<PbResponseHeader>, resp: DeleteResponse) -> PbDeleteResponse {
    PbDeleteResponse {
        header,
        deleted: resp.deleted,
        prev_kvs: resp.prev_kvs.into_iter().map(kv).collect(),
    }
}

/// The post-processing of each op of a txn's two branches, kept alongside the converted txn.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxnPost {
    pub success: Vec<OpPost>,
    pub failure: Vec<OpPost>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpPost {
    Range(RangePost),
    Write,
    Txn(TxnPost),
}

fn compare(c: PbCompare) -> Result<Compare, Status> {
    let op = match c.result {
        0 => CompareOp::Equal,
        1 => CompareOp::Greater,
        2 => CompareOp::Less,
        3 => CompareOp::NotEqual,
        other => {
            return Err(invalid(&format!(
                "etcdserver: unknown compare result {other}"
            )))
        }
    };
    let int = |u: &Option<PbTargetUnion>| match u {
        Some(PbTargetUnion::Version(v))
        | Some(PbTargetUnion::CreateRevision(v))
        | Some(PbTargetUnion::ModRevision(v))
        | Some(PbTargetUnion::Lease(v)) => *v,
        _ => 0,
    };
    let target = match PbCompareTarget::try_from(c.target) {
        Ok(PbCompareTarget::Version) => CompareTarget::Version(int(&c.target_union)),
        Ok(PbCompareTarget::Create) => CompareTarget::CreateRevision(int(&c.target_union)),
        Ok(PbCompareTarget::Mod) => CompareTarget::ModRevision(int(&c.target_union)),
        Ok(PbCompareTarget::Lease) => CompareTarget::Lease(int(&c.target_union)),
        Ok(PbCompareTarget::Value) => CompareTarget::Value(match c.target_union {
            Some(PbTargetUnion::Value(v)) => v,
            _ => Vec::new(),
        }),
        Err(_) => {
            return Err(invalid(&format!(
                "etcdserver: unknown compare target {}",
                c.target
            )))
        }
    };
    let range_end = if c.range_end.is_empty() {
        None
    } else {
        Some(c.range_end)
    };
    Ok(Compare {
        key: c.key,
        range_end,
        op,
        target,
    })
}

fn ops(list: Vec<PbTxnRequestOp>) -> Result<(Vec<TxnOp>, Vec<OpPost>), Status> {
    let mut out = Vec::with_capacity(list.len());
    let mut post = Vec::with_capacity(list.len());
    for op in list {
        match op.request {
            Some(PbTxnOpRequest::RequestRange(r)) => {
                let (sel, options, p) = range_request(&r)?;
                out.push(TxnOp::Range(sel, options));
                post.push(OpPost::Range(p));
            }
            Some(PbTxnOpRequest::RequestPut(p)) => {
                let (key, value, options) = put_request(p)?;
                out.push(TxnOp::Put {
                    key,
                    value,
                    options,
                });
                post.push(OpPost::Write);
            }
            Some(PbTxnOpRequest::RequestDeleteRange(d)) => {
                let (sel, options) = delete_request(&d)?;
                out.push(TxnOp::Delete(sel, options));
                post.push(OpPost::Write);
            }
            Some(PbTxnOpRequest::RequestTxn(t)) => {
                let (txn, p) = txn_request_inner(t)?;
                out.push(TxnOp::Txn(Box::new(txn)));
                post.push(OpPost::Txn(p));
            }
            None => return Err(invalid("etcdserver: empty request op in txn")),
        }
    }
    Ok((out, post))
}

/// Checks and converts a txn request (etcd's `checkTxnRequest` and `checkIntervals`).
pub fn txn_request(req: PbTxnRequest) -> Result<(Txn, TxnPost), Status> {
    let (txn, post) = txn_request_inner(req)?;
    check_intervals(&txn.success)?;
    check_intervals(&txn.failure)?;
    Ok((txn, post))
}

fn txn_request_inner(req: PbTxnRequest) -> Result<(Txn, TxnPost), Status> {
    if req.compare.len() > MAX_TXN_OPS
        || req.success.len() > MAX_TXN_OPS
        || req.failure.len() > MAX_TXN_OPS
    {
        return Err(invalid(messages::TOO_MANY_OPS));
    }
    let compare = req
        .compare
        .into_iter()
        .map(compare)
        .collect::<Result<Vec<_>, _>>()?;
    let (success, success_post) = ops(req.success)?;
    let (failure, failure_post) = ops(req.failure)?;
    Ok((
        Txn {
            compare,
            success,
            failure,
        },
        TxnPost {
            success: success_post,
            failure: failure_post,
        },
    ))
}

/// Within one branch a key may be written once: two puts of one key, or a put inside a range
/// the branch deletes, are "duplicate key" errors. This follows etcd's `checkIntervals`: the
/// branch's own deletes are collected first; each nested txn's puts (either of its branches, which
/// may overlap each other since only one runs) are checked against them and earlier puts, then its
/// deletes join the set; the branch's own puts are checked last, against everything.
fn check_intervals(branch: &[TxnOp]) -> Result<(HashSet<Vec<u8>>, Vec<KeySelector>), Status> {
    let dup = || invalid(messages::DUPLICATE_KEY);
    let mut dels: Vec<KeySelector> = branch
        .iter()
        .filter_map(|op| match op {
            TxnOp::Delete(sel, _) => Some(sel.clone()),
            _ => None,
        })
        .collect();
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in branch {
        let TxnOp::Txn(inner) = op else { continue };
        let (puts_then, dels_then) = check_intervals(&inner.success)?;
        let (puts_else, dels_else) = check_intervals(&inner.failure)?;
        for key in &puts_then {
            if puts.contains(key) || dels.iter().any(|d| d.contains(key)) {
                return Err(dup());
            }
            puts.insert(key.clone());
        }
        for key in &puts_else {
            if puts.contains(key) && !puts_then.contains(key) {
                return Err(dup());
            }
            if dels.iter().any(|d| d.contains(key)) {
                return Err(dup());
            }
            puts.insert(key.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in branch {
        let TxnOp::Put { key, .. } = op else { continue };
        if puts.contains(key) || dels.iter().any(|d| d.contains(key)) {
            return Err(dup());
        }
        puts.insert(key.clone());
    }
    Ok((puts, dels))
}

/// The txn's answer; `header` is the top-level header, nested answers get revision-only headers.
pub fn txn_response(
    header: Option<PbResponseHeader>,
    resp: TxnResponse,
    post: &TxnPost,
) -> PbTxnResponse {
    let branch = if resp.succeeded {
        &post.success
    } else {
        &post.failure
    };
    let responses = resp
        .responses
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let op_post = branch.get(i);
            let response = match r {
                TxnOpResponse::Range(range) => {
                    let range = match op_post {
                        Some(OpPost::Range(p)) => p.apply(range),
                        _ => range,
                    };
                    let h = inner_header(range.revision);
                    PbTxnOpResponse::ResponseRange(range_response(h, range))
                }
                TxnOpResponse::Put(put) => {
                    PbTxnOpResponse::ResponsePut(put_response(inner_header(put.revision), put))
                }
                TxnOpResponse::Delete(del) => PbTxnOpResponse::ResponseDeleteRange(
                    delete_response(inner_header(del.revision), del),
                ),
                TxnOpResponse::Txn(inner) => {
                    let empty = TxnPost::default();
                    let p = match op_post {
                        Some(OpPost::Txn(p)) => p,
                        _ => &empty,
                    };
                    let h = inner_header(inner.revision);
                    PbTxnOpResponse::ResponseTxn(txn_response(h, inner, p))
                }
            };
            PbResponseOp {
                response: Some(response),
            }
        })
        .collect();
    PbTxnResponse {
        header,
        succeeded: resp.succeeded,
        responses,
    }
}

/// etcd's watch filter numbers (`NOPUT` = 0, `NODELETE` = 1).
pub fn watch_filters(filters: &[i32]) -> WatchFilters {
    WatchFilters {
        no_put: filters.contains(&0),
        no_delete: filters.contains(&1),
    }
}

pub fn event(e: WatchEvent) -> PbEvent {
    PbEvent {
        r#type: match e.kind {
            EventKind::Put => 0,
            EventKind::Delete => 1,
        },
        kv: Some(kv(e.kv)),
        prev_kv: e.prev_kv.map(kv),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_client::proto::PbTxnOpRequest as R;

    fn range(key: &str, end: &str) -> PbRangeRequest {
        PbRangeRequest {
            key: key.into(),
            range_end: end.into(),
            ..Default::default()
        }
    }

    #[test]
    fn key_and_range_end_become_selectors() {
        let cases: Vec<(&[u8], &[u8], KeySelector)> = vec![
            (b"a", b"", KeySelector::Key(b"a".to_vec())),
            (b"a/", b"a0", KeySelector::Prefix(b"a/".to_vec())),
            (
                b"a",
                b"c",
                KeySelector::Range {
                    start: b"a".to_vec(),
                    end: b"c".to_vec(),
                },
            ),
            (
                b"a",
                b"\0",
                KeySelector::Range {
                    start: b"a".to_vec(),
                    end: vec![0],
                },
            ),
            (
                b"\0",
                b"\0",
                KeySelector::Range {
                    start: vec![0],
                    end: vec![0],
                },
            ),
        ];
        for (key, end, want) in cases {
            assert_eq!(selector(key, end), want, "{key:?} {end:?}");
        }
    }

    proptest::proptest! {
        /// The selector addresses exactly the keys etcd's `(key, range_end)` means.
        #[test]
        fn selectors_contain_what_etcd_ranges_contain(
            key in proptest::collection::vec(proptest::sample::select(vec![0u8, 1, b'a', b'b', 0xfe, 0xff]), 1..4),
            end in proptest::collection::vec(proptest::sample::select(vec![0u8, 1, b'a', b'b', 0xfe, 0xff]), 0..4),
            probe in proptest::collection::vec(proptest::sample::select(vec![0u8, 1, b'a', b'b', 0xfe, 0xff]), 1..5),
            as_prefix in proptest::bool::ANY,
        ) {
            let end = if as_prefix { prefix_end(&key) } else { end };
            let etcd = if end.is_empty() {
                probe == key
            } else if end == [0] {
                probe >= key
            } else {
                probe >= key && probe < end
            };
            proptest::prop_assert_eq!(selector(&key, &end).contains(&probe), etcd);
        }
    }

    #[test]
    fn range_checks_key_and_sort_options() {
        assert_eq!(
            range_request(&range("", "")).unwrap_err().message(),
            messages::EMPTY_KEY
        );
        let mut bad = range("a", "");
        bad.sort_order = 7;
        assert_eq!(
            range_request(&bad).unwrap_err().message(),
            "etcdserver: invalid sort option"
        );
        let mut by_mod = range("a", "b");
        by_mod.sort_target = 3;
        let (_, opts, _) = range_request(&by_mod).unwrap();
        assert_eq!(
            (opts.sort_order, opts.sort_target),
            (SortOrder::Ascend, SortTarget::Mod)
        );
        let (_, opts, _) = range_request(&range("a", "b")).unwrap();
        assert_eq!(opts.sort_order, SortOrder::None);
    }

    #[test]
    fn revision_filters_defer_the_limit_to_the_server() {
        let mut req = range("a", "z");
        req.limit = 1;
        req.min_mod_revision = 3;
        let (_, opts, post) = range_request(&req).unwrap();
        assert_eq!(opts.limit, 0);
        let kvs = (1..=4)
            .map(|r| KeyValue {
                key: vec![b'a' + r as u8],
                mod_revision: r,
                create_revision: r,
                version: 1,
                ..Default::default()
            })
            .collect();
        let out = post.apply(RangeResponse {
            revision: 4,
            kvs,
            count: 4,
            more: false,
        });
        assert_eq!(
            out.kvs.iter().map(|k| k.mod_revision).collect::<Vec<_>>(),
            vec![3]
        );
        assert!(out.more);
        assert_eq!(out.count, 4);
        let plain = RangePost {
            limit: 1,
            ..Default::default()
        };
        let resp = RangeResponse {
            revision: 1,
            kvs: vec![],
            count: 9,
            more: true,
        };
        assert_eq!(plain.apply(resp.clone()), resp);
    }

    #[test]
    fn put_checks_ignore_flags() {
        let base = PbPutRequest {
            key: b"k".to_vec(),
            ..Default::default()
        };
        let cases = vec![
            (
                PbPutRequest {
                    key: vec![],
                    ..base.clone()
                },
                Some(messages::EMPTY_KEY),
            ),
            (
                PbPutRequest {
                    ignore_value: true,
                    value: b"v".to_vec(),
                    ..base.clone()
                },
                Some(messages::VALUE_PROVIDED),
            ),
            (
                PbPutRequest {
                    ignore_lease: true,
                    lease: 5,
                    ..base.clone()
                },
                Some(messages::LEASE_PROVIDED),
            ),
            (
                PbPutRequest {
                    ignore_value: true,
                    ignore_lease: true,
                    ..base.clone()
                },
                None,
            ),
        ];
        for (req, want) in cases {
            let got = put_request(req).err().map(|s| s.message().to_string());
            assert_eq!(got.as_deref(), want);
        }
    }

    fn put_op(key: &str) -> PbTxnRequestOp {
        PbTxnRequestOp {
            request: Some(R::RequestPut(PbPutRequest {
                key: key.into(),
                value: b"v".to_vec(),
                ..Default::default()
            })),
        }
    }
    fn del_op(key: &str, end: &str) -> PbTxnRequestOp {
        PbTxnRequestOp {
            request: Some(R::RequestDeleteRange(PbDeleteRequest {
                key: key.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }
    fn nested(success: Vec<PbTxnRequestOp>, failure: Vec<PbTxnRequestOp>) -> PbTxnRequestOp {
        PbTxnRequestOp {
            request: Some(R::RequestTxn(PbTxnRequest {
                compare: vec![],
                success,
                failure,
            })),
        }
    }

    #[test]
    fn txn_rejects_duplicate_writes_within_a_branch() {
        let cases: Vec<(Vec<PbTxnRequestOp>, bool)> = vec![
            (vec![put_op("a"), put_op("b")], true),
            (vec![put_op("a"), put_op("a")], false),
            (vec![del_op("a", "c"), put_op("b")], false),
            (vec![del_op("a", ""), put_op("b")], true),
            (vec![nested(vec![put_op("a")], vec![put_op("a")])], true),
            (vec![put_op("a"), nested(vec![put_op("a")], vec![])], false),
            (
                vec![nested(vec![del_op("a/", "a0")], vec![]), put_op("a/x")],
                false,
            ),
        ];
        for (i, (success, ok)) in cases.into_iter().enumerate() {
            let got = txn_request(PbTxnRequest {
                compare: vec![],
                success,
                failure: vec![],
            });
            assert_eq!(got.is_ok(), ok, "case {i}: {got:?}");
            if let Err(status) = got {
                assert_eq!(status.message(), messages::DUPLICATE_KEY);
            }
        }
    }

    #[test]
    fn txn_limits_ops_per_branch() {
        let success = (0..=MAX_TXN_OPS)
            .map(|i| put_op(&format!("k{i}")))
            .collect();
        let err = txn_request(PbTxnRequest {
            compare: vec![],
            success,
            failure: vec![],
        })
        .unwrap_err();
        assert_eq!(err.message(), messages::TOO_MANY_OPS);
    }

    #[test]
    fn compares_convert_every_target_and_result() {
        let cases = vec![
            (
                0,
                0,
                Some(PbTargetUnion::Version(2)),
                CompareOp::Equal,
                CompareTarget::Version(2),
            ),
            (
                1,
                1,
                Some(PbTargetUnion::CreateRevision(3)),
                CompareOp::Greater,
                CompareTarget::CreateRevision(3),
            ),
            (
                2,
                2,
                Some(PbTargetUnion::ModRevision(4)),
                CompareOp::Less,
                CompareTarget::ModRevision(4),
            ),
            (
                3,
                3,
                Some(PbTargetUnion::Value(b"v".to_vec())),
                CompareOp::NotEqual,
                CompareTarget::Value(b"v".to_vec()),
            ),
            (
                0,
                4,
                Some(PbTargetUnion::Lease(5)),
                CompareOp::Equal,
                CompareTarget::Lease(5),
            ),
            (0, 3, None, CompareOp::Equal, CompareTarget::Value(vec![])),
        ];
        for (result, target, union, op, want) in cases {
            let c = compare(PbCompare {
                result,
                target,
                key: b"k".to_vec(),
                range_end: vec![],
                target_union: union,
            })
            .unwrap();
            assert_eq!((c.op, c.target, c.range_end), (op, want, None));
        }
        let bad = PbCompare {
            result: 9,
            target: 0,
            key: b"k".to_vec(),
            range_end: vec![],
            target_union: None,
        };
        assert_eq!(
            compare(bad).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn txn_response_applies_range_filters_of_the_branch_that_ran() {
        let req = PbTxnRequest {
            compare: vec![],
            success: vec![PbTxnRequestOp {
                request: Some(R::RequestRange(PbRangeRequest {
                    key: b"a".to_vec(),
                    range_end: b"z".to_vec(),
                    min_create_revision: 2,
                    ..Default::default()
                })),
            }],
            failure: vec![],
        };
        let (_, post) = txn_request(req).unwrap();
        let kvs = vec![
            KeyValue {
                key: b"b".to_vec(),
                create_revision: 1,
                mod_revision: 1,
                version: 1,
                ..Default::default()
            },
            KeyValue {
                key: b"c".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                ..Default::default()
            },
        ];
        let resp = TxnResponse {
            revision: 2,
            succeeded: true,
            responses: vec![TxnOpResponse::Range(RangeResponse {
                revision: 2,
                kvs,
                count: 2,
                more: false,
            })],
        };
        let out = txn_response(None, resp, &post);
        match &out.responses[0].response {
            Some(PbTxnOpResponse::ResponseRange(r)) => {
                assert_eq!(r.kvs.len(), 1);
                assert_eq!(r.kvs[0].key, b"c");
                assert_eq!(r.header.as_ref().map(|h| h.revision), Some(2));
            }
            other => panic!("expected a range response, got {other:?}"),
        }
    }

    #[test]
    fn watch_filters_and_events_use_etcds_numbers() {
        assert_eq!(
            watch_filters(&[0]),
            WatchFilters {
                no_put: true,
                no_delete: false
            }
        );
        assert_eq!(
            watch_filters(&[1, 0]),
            WatchFilters {
                no_put: true,
                no_delete: true
            }
        );
        let e = event(WatchEvent {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: b"k".to_vec(),
                mod_revision: 9,
                ..Default::default()
            },
            prev_kv: None,
        });
        assert_eq!(e.r#type, 1);
        assert_eq!(e.kv.map(|k| k.mod_revision), Some(9));
    }
}
