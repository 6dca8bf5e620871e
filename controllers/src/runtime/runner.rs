//! Workers: pull keys from a [`WorkQueue`], run the reconcile, and turn its result into what
//! happens next: [`Action::AwaitChange`] forgets the key until an event queues it again,
//! [`Action::RequeueAfter`] comes back later, an error backs off. The queue guarantees one
//! reconcile per key at a time; the runner always calls `done`.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::metrics::{ControllerLabel, Metrics};
use super::queue::WorkQueue;

/// What a reconcile asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do until something changes.
    AwaitChange,
    /// Look again after this long.
    RequeueAfter(Duration),
}

/// Runs `workers` workers until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run<K, F, Fut, E>(
    queue: Arc<WorkQueue<K>>,
    workers: usize,
    reconcile: F,
    metrics: Option<(Metrics, ControllerLabel)>,
    shutdown: impl Future<Output = ()> + Send,
) where
    K: Clone + Eq + Hash + Ord + Send + Sync + std::fmt::Debug + 'static,
    F: Fn(K) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let q = queue.clone();
        let f = reconcile.clone();
        let m = metrics.clone();
        set.spawn(async move {
            while let Some(key) = q.next().await {
                let started = Instant::now();
                let result = f(key.clone()).await;
                if let Some((m, l)) = &m {
                    m.reconciles.get_or_create(l).inc();
                    m.duration
                        .get_or_create(l)
                        .observe(started.elapsed().as_secs_f64());
                    if result.is_err() {
                        m.errors.get_or_create(l).inc();
                    }
                }
                match result {
                    Ok(Action::AwaitChange) => q.forget(&key),
                    Ok(Action::RequeueAfter(d)) => {
                        q.forget(&key);
                        q.add_after(key.clone(), d);
                    }
                    Err(e) => {
                        let d = q.add_with_backoff(key.clone());
                        tracing::warn!(key = ?key, error = %e, retry_in = ?d, "reconcile failed");
                    }
                }
                q.done(&key);
                if let Some((m, l)) = &m {
                    m.set_queue(l, &q);
                }
            }
        });
    }
    shutdown.await;
    queue.shutdown();
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::queue::Backoff;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen {
        running: HashMap<u32, u32>,
        max_parallel_same_key: u32,
        max_parallel_total: u32,
        runs: HashMap<u32, u32>,
    }

    #[tokio::test(start_paused = true)]
    async fn runner_never_runs_two_reconciles_of_one_key() {
        let q = Arc::new(WorkQueue::new(Backoff::default()));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s2 = seen.clone();
        let reconcile = move |k: u32| {
            let seen = s2.clone();
            async move {
                {
                    let mut s = seen.lock().unwrap();
                    *s.running.entry(k).or_default() += 1;
                    let same = s.running[&k];
                    let total = s.running.values().sum();
                    s.max_parallel_same_key = s.max_parallel_same_key.max(same);
                    s.max_parallel_total = s.max_parallel_total.max(total);
                    *s.runs.entry(k).or_default() += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                *seen.lock().unwrap().running.get_mut(&k).unwrap() -= 1;
                Ok::<_, String>(Action::AwaitChange)
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let runner = tokio::spawn(run(q.clone(), 4, reconcile, None, async move {
            let _ = rx.await;
        }));
        for round in 0..5 {
            for k in 0..3u32 {
                q.add(k);
                q.add(k);
            }
            tokio::time::sleep(Duration::from_millis(30 + round)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let _ = tx.send(());
        runner.await.unwrap();
        let s = seen.lock().unwrap();
        assert_eq!(s.max_parallel_same_key, 1);
        assert!(
            s.max_parallel_total > 1,
            "different keys do run in parallel"
        );
        for k in 0..3 {
            assert!(
                s.runs[&k] >= 2,
                "a key added during its reconcile runs again"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runner_backs_off_failing_keys_and_honours_requeue_after() {
        let q = Arc::new(WorkQueue::new(Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }));
        let times = Arc::new(Mutex::new(Vec::new()));
        let t2 = times.clone();
        let start = Instant::now();
        let reconcile = move |k: &'static str| {
            let times = t2.clone();
            async move {
                let mut t = times.lock().unwrap();
                t.push((k, start.elapsed().as_secs_f64()));
                let n = t.iter().filter(|(x, _)| *x == k).count();
                match (k, n) {
                    ("fail", n) if n <= 3 => Err("boom".to_string()),
                    ("requeue", 1) => Ok(Action::RequeueAfter(Duration::from_secs(30))),
                    _ => Ok(Action::AwaitChange),
                }
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let runner = tokio::spawn(run(q.clone(), 2, reconcile, None, async move {
            let _ = rx.await;
        }));
        q.add("fail");
        q.add("requeue");
        tokio::time::sleep(Duration::from_secs(120)).await;
        let _ = tx.send(());
        runner.await.unwrap();
        let t = times.lock().unwrap();
        let fails: Vec<f64> = t
            .iter()
            .filter(|(k, _)| *k == "fail")
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(fails.len(), 4, "three failures then success: {fails:?}");
        assert!(fails.windows(2).all(|w| w[1] > w[0]), "{fails:?}");
        let gaps: Vec<f64> = fails.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[2] > gaps[0], "the backoff grows: {gaps:?}");
        let rq: Vec<f64> = t
            .iter()
            .filter(|(k, _)| *k == "requeue")
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(rq.len(), 2);
        assert!((rq[1] - rq[0] - 30.0).abs() < 0.01);
    }
}
