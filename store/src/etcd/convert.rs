//! Conversions between the store's request and response types and etcd-client's.

use etcd_client as ec;

use crate::{
    CompareOp, CompareTarget, DeleteOptions, DeleteResponse, KeySelector, KeyValue, PutOptions,
    PutResponse, RangeOptions, RangeResponse, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
    TxnResponse,
};

pub(super) fn header_rev(h: Option<&ec::ResponseHeader>) -> i64 {
    h.map_or(0, |h| h.revision())
}

pub(super) fn kv_from(kv: &ec::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key().to_vec(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: kv.lease(),
    }
}

pub(super) fn get_options(keys: &KeySelector, options: &RangeOptions) -> (Vec<u8>, ec::GetOptions) {
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

pub(super) fn delete_options(
    keys: &KeySelector,
    options: &DeleteOptions,
) -> (Vec<u8>, ec::DeleteOptions) {
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

pub(super) fn put_options(options: &PutOptions) -> ec::PutOptions {
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

pub(super) fn range_response(resp: &ec::GetResponse) -> RangeResponse {
    RangeResponse {
        revision: header_rev(resp.header()),
        kvs: resp.kvs().iter().map(kv_from).collect(),
        count: resp.count(),
        more: resp.more(),
    }
}

pub(super) fn delete_response(resp: &ec::DeleteResponse) -> DeleteResponse {
    DeleteResponse {
        revision: header_rev(resp.header()),
        deleted: resp.deleted(),
        prev_kvs: resp.prev_kvs().iter().map(kv_from).collect(),
    }
}

pub(super) fn put_response(resp: &ec::PutResponse) -> PutResponse {
    PutResponse {
        revision: header_rev(resp.header()),
        prev_kv: resp.prev_key().map(kv_from),
    }
}

pub(super) fn to_etcd_txn(txn: &Txn) -> ec::Txn {
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

pub(super) fn to_etcd_ops(ops: &[TxnOp]) -> Vec<ec::TxnOp> {
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

pub(super) fn txn_response(resp: &ec::TxnResponse) -> TxnResponse {
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
pub(super) fn first_lease(ops: &[TxnOp]) -> i64 {
    ops.iter()
        .find_map(|op| match op {
            TxnOp::Put { options, .. } if options.lease != 0 => Some(options.lease),
            TxnOp::Txn(inner) => Some(first_lease(&inner.success)).filter(|l| *l != 0),
            _ => None,
        })
        .unwrap_or(0)
}
