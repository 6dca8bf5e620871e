//! Serves a fresh in-memory embedded store over etcd's protocol until Ctrl-C, for trying
//! `etcdctl --endpoints=http://127.0.0.1:4748 ...` by hand.

use std::sync::Arc;

use nomos_store::EmbeddedStore;
use nomos_store_server::{serve, StoreServerConfig, StoreServerError};

#[tokio::main]
async fn main() -> Result<(), StoreServerError> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| nomos_store_server::DEFAULT_ADDR.to_string());
    let config = StoreServerConfig::new(addr.parse().expect("an address like 127.0.0.1:4748"));
    println!("serving an in-memory store on http://{}", config.addr);
    serve(config, Arc::new(EmbeddedStore::in_memory()), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
