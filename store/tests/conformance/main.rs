//! The store conformance suite: every case runs against the embedded store (on disk) and against
//! a real etcd, with identical expectations. Real etcd is the reference.

#[macro_use]
mod support;

mod compaction;
mod differential;
mod errors;
mod kv;
mod lease;
mod txn;
mod watch;
