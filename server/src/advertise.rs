//! A server's advertisement: `/nomos/servers/<id>` holds the URL of its HTTP API, attached to a
//! lease the server keeps alive, so agents find a server to read their tasks' Variables from
//! without being told one. A server that stops (or dies) drops out when its lease ends.
//!
//! What an agent reads here only tells it where to send a task's own token; with TLS on, the
//! agent checks the server's certificate, so a forged entry learns nothing it could use.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use nomos_store::{keys, PutOptions, Store, StoreError};
use serde::Serialize;

/// Time to live of the advertisement's lease.
pub const ADVERTISE_TTL_SECS: i64 = 15;
/// Longest server id advertised (ids become store keys).
const MAX_ID_BYTES: usize = 200;

#[derive(Debug, Serialize)]
struct Advertisement<'a> {
    http_addr: &'a str,
}

/// Keeps `/nomos/servers/<id>` pointing at `http_addr` until `stop` resolves, then withdraws
/// it. Store outages are waited out; the key is written again on a fresh lease. Returns only
/// once `stop` resolved.
pub async fn advertise(
    store: Arc<dyn Store>,
    id: String,
    http_addr: String,
    stop: impl Future<Output = ()>,
) {
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.contains('/') {
        tracing::warn!(%id, "not advertising this server: its id cannot be a store key");
        stop.await;
        return;
    }
    tokio::pin!(stop);
    let mut lease = 0;
    loop {
        let step = async {
            if lease == 0 {
                lease = publish(store.as_ref(), &id, &http_addr).await?;
            } else if let Err(e) = store.lease_keep_alive(lease).await {
                lease = 0;
                return Err(e);
            }
            Ok::<_, StoreError>(())
        };
        let pause = match step.await {
            Ok(()) => Duration::from_secs(ADVERTISE_TTL_SECS as u64 / 3),
            Err(e) => {
                tracing::debug!(error = %e, "advertising this server failed; retrying");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    if lease != 0 {
        let _ = store.lease_revoke(lease).await;
    }
}

async fn publish(store: &dyn Store, id: &str, http_addr: &str) -> Result<i64, StoreError> {
    let grant = store.lease_grant(ADVERTISE_TTL_SECS, 0).await?;
    let value = serde_json::to_vec(&Advertisement { http_addr }).unwrap_or_default();
    let options = PutOptions {
        lease: grant.id,
        ..Default::default()
    };
    store
        .put(keys::server(id).into_bytes(), value, options)
        .await?;
    Ok(grant.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_store::{KeySelector, RangeOptions};

    #[tokio::test]
    async fn a_server_is_advertised_while_it_runs_and_withdrawn_when_it_stops() {
        let store: Arc<dyn Store> = Arc::new(nomos_store::EmbeddedStore::in_memory());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(advertise(
            store.clone(),
            "s1".into(),
            "https://10.0.0.1:4747".into(),
            async move {
                let _ = rx.await;
            },
        ));
        let read = || async {
            store
                .range(
                    KeySelector::key(keys::server("s1")),
                    RangeOptions::default(),
                )
                .await
                .unwrap()
                .kvs
        };
        let mut kvs = read().await;
        for _ in 0..100 {
            if !kvs.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            kvs = read().await;
        }
        let v: serde_json::Value = serde_json::from_slice(&kvs[0].value).unwrap();
        assert_eq!(v["http_addr"], "https://10.0.0.1:4747");
        assert!(
            kvs[0].lease != 0,
            "the advertisement must die with its server"
        );
        tx.send(()).unwrap();
        running.await.unwrap();
        assert!(read().await.is_empty());
    }

    #[tokio::test]
    async fn an_id_that_is_not_a_key_is_not_advertised() {
        let store: Arc<dyn Store> = Arc::new(nomos_store::EmbeddedStore::in_memory());
        advertise(store.clone(), "a/b".into(), "http://x".into(), async {}).await;
        let all = store
            .range(
                KeySelector::prefix(keys::SERVERS_PREFIX),
                RangeOptions::default(),
            )
            .await
            .unwrap();
        assert!(all.kvs.is_empty());
    }
}
