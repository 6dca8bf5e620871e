//! Leader election on a store lease: the leader of controller `<name>` owns the key
//! `/nomos/election/<name>`, attached to its lease and created only if absent. It keeps the lease
//! alive every TTL/3; when that fails (the lease expired or was revoked), or the key disappears,
//! it stops leading at once. Followers watch the key and campaign when it is deleted, so a dead
//! leader is replaced within the lease TTL. The [`Leadership`] handed to the controller carries
//! the lease so its writes can be fenced with a compare on it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nomos_store::{
    keys, Compare, CompareOp, CompareTarget, EventKind, KeySelector, PutOptions, Store, StoreError,
    Txn, TxnOp, WatchOptions,
};

use super::metrics::{ControllerLabel, Metrics};
use crate::ControllerError;

#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// Controller name; the key is `/nomos/election/<name>`.
    pub name: String,
    /// Written as the key's value (who leads).
    pub identity: String,
    pub ttl_secs: i64,
}

/// Proof of leadership for fencing writes.
#[derive(Debug, Clone)]
pub struct Leadership {
    pub key: String,
    pub lease: i64,
}

impl Leadership {
    /// A compare that holds only while this leadership does.
    pub fn fence(&self) -> Compare {
        Compare::new(
            self.key.clone(),
            CompareOp::Equal,
            CompareTarget::Lease(self.lease),
        )
    }
}

/// Campaigns, runs `lead` while leading, and campaigns again after losing; returns when
/// `shutdown` resolves (releasing the lease so another instance takes over at once).
pub async fn run_elected<F, Fut>(
    store: Arc<dyn Store>,
    config: ElectionConfig,
    metrics: Option<(Metrics, ControllerLabel)>,
    mut lead: F,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ControllerError>
where
    F: FnMut(Leadership) -> Fut,
    Fut: Future<Output = Result<(), ControllerError>>,
{
    let key = keys::election(&config.name);
    let ttl = config.ttl_secs.max(1);
    let set_leader = |v: i64| {
        if let Some((m, l)) = &metrics {
            m.leader.get_or_create(l).set(v);
        }
    };
    set_leader(0);
    tokio::pin!(shutdown);
    loop {
        let attempt = campaign(&*store, &key, &config.identity, ttl);
        let outcome = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = attempt => r,
        };
        let lease = match outcome {
            Ok(Campaign::Won(lease)) => lease,
            Ok(Campaign::Lost(rev)) => {
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = wait_for_vacancy(&*store, &key, rev, ttl) => {}
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(controller = %config.name, error = %e, "election attempt failed");
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
        };
        tracing::info!(controller = %config.name, identity = %config.identity, "became leader");
        set_leader(1);
        let leadership = Leadership {
            key: key.clone(),
            lease,
        };
        let result = tokio::select! {
            _ = &mut shutdown => {
                set_leader(0);
                let _ = store.lease_revoke(lease).await;
                return Ok(());
            }
            _ = hold(&*store, &key, lease, ttl) => None,
            r = lead(leadership) => Some(r),
        };
        set_leader(0);
        tracing::info!(controller = %config.name, "stopped leading");
        if let Some(r) = result {
            let _ = store.lease_revoke(lease).await;
            if let Err(e) = r {
                tracing::warn!(controller = %config.name, error = %e, "controller failed; campaigning again");
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// One campaign for controller `name`: returns the leadership when this attempt won, `None`
/// when someone else leads. The caller keeps the lease alive (or lets it lapse); the
/// simulation harness uses this to move leadership between simulated servers.
pub async fn campaign_once(
    store: &dyn Store,
    name: &str,
    identity: &str,
    ttl_secs: i64,
) -> Result<Option<Leadership>, StoreError> {
    let key = keys::election(name);
    Ok(
        match campaign(store, &key, identity, ttl_secs.max(1)).await? {
            Campaign::Won(lease) => Some(Leadership { key, lease }),
            Campaign::Lost(_) => None,
        },
    )
}

enum Campaign {
    Won(i64),
    /// Someone else leads; the revision to watch from.
    Lost(i64),
}

async fn campaign(
    store: &dyn Store,
    key: &str,
    identity: &str,
    ttl: i64,
) -> Result<Campaign, StoreError> {
    let lease = store.lease_grant(ttl, 0).await?.id;
    let txn = Txn::new()
        .when([Compare::new(
            key,
            CompareOp::Equal,
            CompareTarget::CreateRevision(0),
        )])
        .and_then([TxnOp::Put {
            key: key.as_bytes().to_vec(),
            value: identity.as_bytes().to_vec(),
            options: PutOptions {
                lease,
                ..Default::default()
            },
        }]);
    let resp = match store.txn(txn).await {
        Ok(r) => r,
        Err(e) => {
            let _ = store.lease_revoke(lease).await;
            return Err(e);
        }
    };
    if resp.succeeded {
        Ok(Campaign::Won(lease))
    } else {
        let _ = store.lease_revoke(lease).await;
        Ok(Campaign::Lost(resp.revision))
    }
}

/// Returns when the key is deleted (or after a TTL, to campaign again anyway).
async fn wait_for_vacancy(store: &dyn Store, key: &str, rev: i64, ttl: i64) {
    let opts = WatchOptions {
        start_revision: rev + 1,
        ..Default::default()
    };
    let wait = async {
        let Ok(mut w) = store
            .watch(KeySelector::key(key.as_bytes().to_vec()), opts)
            .await
        else {
            return;
        };
        while let Some(Ok(resp)) = w.next().await {
            if resp.events.iter().any(|e| e.kind == EventKind::Delete) {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(ttl as u64), wait).await;
}

/// Keeps the lease alive; returns once leadership is lost.
async fn hold(store: &dyn Store, key: &str, lease: i64, ttl: i64) {
    let period = Duration::from_millis((ttl as u64 * 1000 / 3).max(100));
    let keep = async {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(period).await;
            match store.lease_keep_alive(lease).await {
                Ok(_) => last_ok = tokio::time::Instant::now(),
                Err(StoreError::LeaseNotFound(_)) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "lease keep-alive failed");
                    if last_ok.elapsed() >= Duration::from_secs(ttl as u64) {
                        return;
                    }
                }
            }
        }
    };
    let watch_key = async {
        let Ok(mut w) = store
            .watch(
                KeySelector::key(key.as_bytes().to_vec()),
                WatchOptions::default(),
            )
            .await
        else {
            return std::future::pending().await;
        };
        while let Some(Ok(resp)) = w.next().await {
            if resp
                .events
                .iter()
                .any(|e| e.kind == EventKind::Delete || e.kv.lease != lease)
            {
                return;
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = keep => {}
        _ = watch_key => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_store::embedded::EmbeddedStore;
    use nomos_store::RangeOptions;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Flag(Arc<AtomicU32>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn instance(
        store: Arc<dyn Store>,
        who: &'static str,
        leading: Arc<AtomicU32>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<Result<(), ControllerError>> {
        let cfg = ElectionConfig {
            name: "jobs".into(),
            identity: who.into(),
            ttl_secs: 5,
        };
        tokio::spawn(async move {
            let mut stop = stop;
            run_elected(
                store,
                cfg,
                None,
                move |_l| {
                    let leading = leading.clone();
                    async move {
                        leading.fetch_add(1, Ordering::SeqCst);
                        let _flag = Flag(leading);
                        std::future::pending::<Result<(), ControllerError>>().await
                    }
                },
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            )
            .await
        })
    }

    async fn leader(store: &dyn Store) -> Option<(String, i64)> {
        let r = store
            .range(
                KeySelector::key(keys::election("jobs").into_bytes()),
                RangeOptions::default(),
            )
            .await
            .unwrap();
        r.kvs
            .first()
            .map(|kv| (String::from_utf8_lossy(&kv.value).into_owned(), kv.lease))
    }

    async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        for _ in 0..1000 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what}: not reached within 10s");
    }

    #[tokio::test]
    async fn election_moves_to_the_other_instance_when_the_leaders_lease_dies() {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
        let a = Arc::new(AtomicU32::new(0));
        let b = Arc::new(AtomicU32::new(0));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let ta = instance(store.clone(), "a", a.clone(), rx.clone());
        let tb = instance(store.clone(), "b", b.clone(), rx);
        eventually("one leader", || {
            a.load(Ordering::SeqCst) + b.load(Ordering::SeqCst) == 1
        })
        .await;
        let (first, lease) = leader(&*store).await.expect("a leader key exists");
        let (winner, other, winner_task, other_task) = if first == "a" {
            (&a, &b, ta, tb)
        } else {
            (&b, &a, tb, ta)
        };
        assert_eq!(winner.load(Ordering::SeqCst), 1);

        // Kill the leader (its task dies, then its lease expires): the other instance takes over.
        winner_task.abort();
        let _ = winner_task.await;
        store.lease_revoke(lease).await.unwrap();
        eventually("takeover", || other.load(Ordering::SeqCst) == 1).await;
        let (second, _) = leader(&*store).await.expect("a new leader key exists");
        assert_ne!(first, second);

        let _ = tx.send(true);
        other_task.await.unwrap().unwrap();
        assert!(
            leader(&*store).await.is_none(),
            "shutdown releases the lease"
        );
    }

    #[tokio::test]
    async fn a_leader_whose_lease_is_revoked_stops_leading_and_campaigns_again() {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
        let a = Arc::new(AtomicU32::new(0));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let ta = instance(store.clone(), "a", a.clone(), rx);
        eventually("leads", || a.load(Ordering::SeqCst) == 1).await;
        let (_, lease) = leader(&*store).await.unwrap();
        store.lease_revoke(lease).await.unwrap();
        let mut new_lease = lease;
        for _ in 0..1000 {
            if let Some((_, l)) = leader(&*store).await {
                if l != lease {
                    new_lease = l;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_ne!(new_lease, lease, "leads again on a new lease");
        eventually("leads once", || a.load(Ordering::SeqCst) == 1).await;
        let _ = tx.send(true);
        ta.await.unwrap().unwrap();
    }
}
