//! The crate's one error enum, and the mapping of store errors onto etcd's gRPC statuses.

use nomos_store::StoreError;
use thiserror::Error;

/// Why the store server could not start or stopped serving.
///
/// None of these are retryable by simply calling again with the same configuration, except
/// [`StoreServerError::Bind`] when the address was only briefly in use.
#[derive(Debug, Error)]
pub enum StoreServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read TLS file {path}: {source}")]
    TlsFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid TLS configuration: {0}")]
    TlsConfig(String),
    #[error("gRPC server failed: {0}")]
    Serve(#[source] tonic::transport::Error),
}

/// etcd's own error messages, so that `etcdctl` and etcd clients print and match what they
/// expect (these are the strings of etcd's `rpctypes`).
pub mod messages {
    pub const EMPTY_KEY: &str = "etcdserver: key is not provided";
    pub const KEY_NOT_FOUND: &str = "etcdserver: key not found";
    pub const VALUE_PROVIDED: &str = "etcdserver: value is provided";
    pub const LEASE_PROVIDED: &str = "etcdserver: lease is provided";
    pub const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
    pub const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
    pub const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
    pub const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
    pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
    pub const LEASE_EXIST: &str = "etcdserver: lease already exists";
    pub const LEASE_TTL_TOO_LARGE: &str = "etcdserver: too large lease TTL";
    pub const REQUEST_TOO_LARGE: &str = "etcdserver: request is too large";
    pub const DUPLICATE_WATCH_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
}

/// The gRPC status etcd answers for the same failure.
pub fn to_status(err: &StoreError) -> tonic::Status {
    use tonic::Status;
    match err {
        StoreError::Compacted { .. } => Status::out_of_range(messages::COMPACTED),
        StoreError::FutureRevision { .. } => Status::out_of_range(messages::FUTURE_REV),
        StoreError::LeaseNotFound(_) => Status::not_found(messages::LEASE_NOT_FOUND),
        StoreError::LeaseExists(_) => Status::failed_precondition(messages::LEASE_EXIST),
        StoreError::InvalidRequest(msg) => Status::invalid_argument(etcd_message(msg)),
        StoreError::KeyTooLarge { .. } | StoreError::RequestTooLarge { .. } => {
            Status::invalid_argument(messages::REQUEST_TOO_LARGE)
        }
        StoreError::TooManyOps { .. } => Status::invalid_argument(messages::TOO_MANY_OPS),
        StoreError::Unavailable(msg) => Status::unavailable(etcd_message(msg)),
        StoreError::Backend(msg) => Status::internal(etcd_message(msg)),
        StoreError::WatchCancelled(msg) => Status::cancelled(etcd_message(msg)),
        StoreError::NoSpace => Status::resource_exhausted(err.to_string()),
        StoreError::DataDirRefused { .. } | StoreError::NonUtf8Key { .. } => {
            Status::internal(etcd_message(&err.to_string()))
        }
        StoreError::SnapshotInvalid { .. } | StoreError::RestoreRefused { .. } => {
            Status::failed_precondition(etcd_message(&err.to_string()))
        }
    }
}

/// Backends phrase some failures in their own words; map the ones etcd has a fixed text for and
/// prefix the rest with `etcdserver: ` as etcd does.
fn etcd_message(msg: &str) -> String {
    let lower = msg.to_ascii_lowercase();
    if msg.starts_with("etcdserver: ") {
        msg.to_string()
    } else if lower.contains("key not found") || lower.contains("key does not exist") {
        messages::KEY_NOT_FOUND.to_string()
    } else if lower.contains("key is not provided") || lower.contains("empty key") {
        messages::EMPTY_KEY.to_string()
    } else if lower.contains("duplicate key") {
        messages::DUPLICATE_KEY.to_string()
    } else {
        format!("etcdserver: {msg}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn store_errors_map_to_etcds_codes_and_messages() {
        let cases: Vec<(StoreError, Code, &str)> = vec![
            (
                StoreError::Compacted {
                    requested: 1,
                    compact_revision: 5,
                },
                Code::OutOfRange,
                messages::COMPACTED,
            ),
            (
                StoreError::FutureRevision {
                    requested: 9,
                    current: 5,
                },
                Code::OutOfRange,
                messages::FUTURE_REV,
            ),
            (
                StoreError::LeaseNotFound(7),
                Code::NotFound,
                messages::LEASE_NOT_FOUND,
            ),
            (
                StoreError::LeaseExists(7),
                Code::FailedPrecondition,
                messages::LEASE_EXIST,
            ),
            (
                StoreError::InvalidRequest("key not found".into()),
                Code::InvalidArgument,
                messages::KEY_NOT_FOUND,
            ),
            (
                StoreError::InvalidRequest("limit must not be negative".into()),
                Code::InvalidArgument,
                "etcdserver: limit must not be negative",
            ),
            (
                StoreError::TooManyOps {
                    count: 200,
                    limit: 128,
                },
                Code::InvalidArgument,
                messages::TOO_MANY_OPS,
            ),
            (
                StoreError::KeyTooLarge { len: 10, limit: 1 },
                Code::InvalidArgument,
                messages::REQUEST_TOO_LARGE,
            ),
        ];
        for (err, code, message) in cases {
            let status = to_status(&err);
            assert_eq!(status.code(), code, "{err}");
            assert_eq!(status.message(), message, "{err}");
        }
    }
}
