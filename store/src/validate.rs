//! Request checks shared by every backend, so bad input gets the same typed error whether the
//! store is embedded or etcd. The limits are etcd's defaults (`--max-request-bytes`,
//! `--max-txn-ops`) plus a Nomos limit on key length.

use std::collections::HashSet;

use crate::{KeySelector, PutOptions, Result, StoreError, Txn, TxnOp};

/// etcd's default `--max-request-bytes` (1.5 MiB).
pub const MAX_REQUEST_BYTES: usize = 1_572_864;
/// etcd's default `--max-txn-ops`: operations per transaction branch (and compares).
pub const MAX_TXN_OPS: usize = 128;
/// Longest key Nomos accepts (etcd has no separate key limit; Nomos keys are short paths).
pub const MAX_KEY_BYTES: usize = 32 * 1024;
/// Bytes counted per operation on top of its key and value, as an estimate of protobuf framing.
const OP_OVERHEAD: usize = 16;

pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::InvalidRequest("key is not provided".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StoreError::KeyTooLarge {
            len: key.len(),
            limit: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

/// A selector is valid unless it names an empty key or a range with an empty start.
pub(crate) fn check_selector(keys: &KeySelector) -> Result<()> {
    match keys {
        KeySelector::Key(k) => check_key(k),
        KeySelector::Prefix(p) => {
            if p.len() > MAX_KEY_BYTES {
                return Err(StoreError::KeyTooLarge {
                    len: p.len(),
                    limit: MAX_KEY_BYTES,
                });
            }
            Ok(())
        }
        KeySelector::Range { start, end } => {
            check_key(start)?;
            if end.len() > MAX_KEY_BYTES {
                return Err(StoreError::KeyTooLarge {
                    len: end.len(),
                    limit: MAX_KEY_BYTES,
                });
            }
            Ok(())
        }
    }
}

pub(crate) fn check_put(key: &[u8], value: &[u8], options: &PutOptions) -> Result<()> {
    check_key(key)?;
    if options.ignore_value && !value.is_empty() {
        return Err(StoreError::InvalidRequest("value is provided".into()));
    }
    if options.ignore_lease && options.lease != 0 {
        return Err(StoreError::InvalidRequest("lease is provided".into()));
    }
    let len = key.len() + value.len() + OP_OVERHEAD;
    if len > MAX_REQUEST_BYTES {
        return Err(StoreError::RequestTooLarge {
            len,
            limit: MAX_REQUEST_BYTES,
        });
    }
    Ok(())
}

pub(crate) fn check_txn(txn: &Txn) -> Result<()> {
    let len = check_txn_inner(txn)?;
    if len > MAX_REQUEST_BYTES {
        return Err(StoreError::RequestTooLarge {
            len,
            limit: MAX_REQUEST_BYTES,
        });
    }
    check_duplicates(&txn.success)?;
    check_duplicates(&txn.failure)?;
    Ok(())
}

/// Checks counts and operations recursively; returns the estimated request size.
fn check_txn_inner(txn: &Txn) -> Result<usize> {
    for count in [txn.compare.len(), txn.success.len(), txn.failure.len()] {
        if count > MAX_TXN_OPS {
            return Err(StoreError::TooManyOps {
                count,
                limit: MAX_TXN_OPS,
            });
        }
    }
    let mut len = 0;
    for c in &txn.compare {
        check_key(&c.key)?;
        len += c.key.len() + c.range_end.as_ref().map_or(0, Vec::len) + OP_OVERHEAD;
        if let crate::CompareTarget::Value(v) = &c.target {
            len += v.len();
        }
    }
    for op in txn.success.iter().chain(&txn.failure) {
        len += match op {
            TxnOp::Range(keys, _) => {
                check_selector(keys)?;
                selector_len(keys) + OP_OVERHEAD
            }
            TxnOp::Put {
                key,
                value,
                options,
            } => {
                check_put(key, value, options)?;
                key.len() + value.len() + OP_OVERHEAD
            }
            TxnOp::Delete(keys, _) => {
                check_selector(keys)?;
                selector_len(keys) + OP_OVERHEAD
            }
            TxnOp::Txn(inner) => check_txn_inner(inner)? + OP_OVERHEAD,
        };
    }
    Ok(len)
}

fn selector_len(keys: &KeySelector) -> usize {
    match keys {
        KeySelector::Key(k) | KeySelector::Prefix(k) => 2 * k.len(),
        KeySelector::Range { start, end } => start.len() + end.len(),
    }
}

/// etcd refuses a branch that writes one key twice, or puts a key that the branch also deletes
/// (nested transactions included): "duplicate key given in txn request".
fn check_duplicates(ops: &[TxnOp]) -> Result<()> {
    let (_, _) = collect_writes(ops)?;
    Ok(())
}

type Writes = (HashSet<Vec<u8>>, Vec<KeySelector>);

fn collect_writes(ops: &[TxnOp]) -> Result<Writes> {
    let duplicate = || StoreError::InvalidRequest("duplicate key given in txn request".into());
    let mut dels: Vec<KeySelector> = ops
        .iter()
        .filter_map(|op| match op {
            TxnOp::Delete(keys, _) => Some(keys.clone()),
            _ => None,
        })
        .collect();
    let mut puts = HashSet::new();
    for op in ops {
        if let TxnOp::Txn(inner) = op {
            let (then_puts, then_dels) = collect_writes(&inner.success)?;
            let (else_puts, else_dels) = collect_writes(&inner.failure)?;
            for k in then_puts.iter() {
                if puts.contains(k) || dels.iter().any(|d| d.contains(k)) {
                    return Err(duplicate());
                }
            }
            for k in else_puts.iter() {
                if (puts.contains(k) && !then_puts.contains(k))
                    || dels.iter().any(|d| d.contains(k))
                {
                    return Err(duplicate());
                }
            }
            puts.extend(then_puts);
            puts.extend(else_puts);
            dels.extend(then_dels);
            dels.extend(else_dels);
        }
    }
    for op in ops {
        if let TxnOp::Put { key, .. } = op {
            if puts.contains(key) || dels.iter().any(|d| d.contains(key)) {
                return Err(duplicate());
            }
            puts.insert(key.clone());
        }
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_branch_that_puts_one_key_twice_is_refused() {
        let txn = Txn::new().and_then([TxnOp::put("a", "1"), TxnOp::put("a", "2")]);
        assert!(matches!(
            check_txn(&txn),
            Err(StoreError::InvalidRequest(_))
        ));
    }

    #[test]
    fn a_put_inside_a_deleted_prefix_is_refused() {
        let txn = Txn::new().and_then([
            TxnOp::Delete(KeySelector::prefix("a/"), Default::default()),
            TxnOp::put("a/b", "1"),
        ]);
        assert!(matches!(
            check_txn(&txn),
            Err(StoreError::InvalidRequest(_))
        ));
    }

    #[test]
    fn success_and_failure_branches_may_write_the_same_key() {
        let txn = Txn::new()
            .and_then([TxnOp::put("a", "1")])
            .or_else([TxnOp::put("a", "2")]);
        assert!(check_txn(&txn).is_ok());
    }

    #[test]
    fn limits_give_typed_errors() {
        assert!(matches!(check_key(b""), Err(StoreError::InvalidRequest(_))));
        assert!(matches!(
            check_key(&vec![b'k'; MAX_KEY_BYTES + 1]),
            Err(StoreError::KeyTooLarge { .. })
        ));
        let big = vec![0u8; MAX_REQUEST_BYTES];
        assert!(matches!(
            check_put(b"k", &big, &PutOptions::default()),
            Err(StoreError::RequestTooLarge { .. })
        ));
        let many = Txn::new().and_then((0..129).map(|i| TxnOp::put(format!("k{i}"), "v")));
        assert!(matches!(
            check_txn(&many),
            Err(StoreError::TooManyOps { count: 129, .. })
        ));
    }
}
