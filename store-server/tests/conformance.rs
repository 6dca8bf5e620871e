//! The store's conformance suite a third time: the etcd backend (`EtcdStore`, over the
//! `etcd-client` crate) talking to an in-memory embedded store through this server. The cases
//! are the store crate's own files, compiled here unchanged; only the macro that instantiates
//! them per backend is ours.

#[macro_use]
#[allow(unused_macros, dead_code)]
#[path = "../../store/tests/conformance/support.rs"]
mod support;

#[path = "support/mod.rs"]
mod server_support;

use std::sync::Arc;

use nomos_store::{EtcdConfig, EtcdStore, Store};

/// An `EtcdStore` connected to a store server over a fresh embedded store.
pub struct ServedStore {
    pub store: Arc<dyn Store>,
    _server: server_support::TestServer,
}

impl ServedStore {
    pub async fn start() -> ServedStore {
        let server = server_support::TestServer::embedded().await;
        let client = EtcdStore::connect(EtcdConfig::new([server.endpoint.clone()]))
            .await
            .expect("connecting the etcd backend to the store server");
        ServedStore {
            store: Arc::new(client),
            _server: server,
        }
    }
}

/// Runs each listed case of the enclosing module through the server (shadows the suite's own
/// macro, which runs them on the embedded store and on etcd).
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod through_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let served = crate::ServedStore::start().await;
                    super::$case(served.store.clone()).await;
                }
            )*
        }
    };
}

#[path = "../../store/tests/conformance/compaction.rs"]
mod compaction;
// Also brings the suite's own embedded-vs-etcd differential test along (it runs here too).
#[path = "../../store/tests/conformance/differential.rs"]
mod differential;
#[path = "../../store/tests/conformance/errors.rs"]
mod errors;
#[path = "../../store/tests/conformance/kv.rs"]
mod kv;
#[path = "../../store/tests/conformance/lease.rs"]
mod lease;
#[path = "../../store/tests/conformance/txn.rs"]
mod txn;
#[path = "../../store/tests/conformance/watch.rs"]
mod watch;

/// The suite's seeded random operation sequences: results and watch events through the server
/// must be identical to a real etcd's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operation_sequences_give_identical_results_through_the_server() {
    for seed in 1..=6 {
        let served = ServedStore::start().await;
        differential::run_sequence_against(&served.store, seed, 200).await;
    }
}
