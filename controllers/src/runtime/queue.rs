//! A de-duplicating work queue keyed by object. A key added while queued merges; a key added
//! while being reconciled is remembered and handed out again once [`WorkQueue::done`] is called,
//! so no key is ever reconciled twice at the same time. Failing keys back off exponentially with
//! jitter; a reconcile may ask for a requeue after a delay. Uses tokio's clock, so tests run on
//! paused time.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Backoff settings for failing keys.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(60),
        }
    }
}

struct State<K> {
    ready: VecDeque<K>,
    queued: HashSet<K>,
    processing: HashSet<K>,
    dirty: HashSet<K>,
    delayed: BTreeMap<(Instant, u64), K>,
    delayed_at: HashMap<K, (Instant, u64)>,
    failures: HashMap<K, u32>,
    seq: u64,
    shutdown: bool,
    rng: u64,
}

pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    notify: Notify,
    backoff: Backoff,
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    pub fn new(backoff: Backoff) -> Self {
        WorkQueue {
            state: Mutex::new(State {
                ready: VecDeque::new(),
                queued: HashSet::new(),
                processing: HashSet::new(),
                dirty: HashSet::new(),
                delayed: BTreeMap::new(),
                delayed_at: HashMap::new(),
                failures: HashMap::new(),
                seq: 0,
                shutdown: false,
                rng: 0x2545f4914f6cdd1d,
            }),
            notify: Notify::new(),
            backoff,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a key now (merging with a queued copy).
    pub fn add(&self, key: K) {
        let mut s = self.lock();
        if Self::enqueue(&mut s, key) {
            drop(s);
            self.notify.notify_one();
        }
    }

    fn enqueue(s: &mut State<K>, key: K) -> bool {
        if s.shutdown {
            return false;
        }
        if s.processing.contains(&key) {
            s.dirty.insert(key);
            return false;
        }
        if s.queued.insert(key.clone()) {
            s.ready.push_back(key);
            return true;
        }
        false
    }

    /// Queues a key once `delay` has passed (an earlier pending time wins).
    pub fn add_after(&self, key: K, delay: Duration) {
        let at = Instant::now() + delay;
        let mut s = self.lock();
        if let Some(&(t, seq)) = s.delayed_at.get(&key) {
            if t <= at {
                return;
            }
            s.delayed.remove(&(t, seq));
        }
        s.seq += 1;
        let seq = s.seq;
        s.delayed.insert((at, seq), key.clone());
        s.delayed_at.insert(key, (at, seq));
        drop(s);
        self.notify.notify_one();
    }

    /// Requeues a failing key after an exponential backoff with jitter (50%..100% of the step).
    pub fn add_with_backoff(&self, key: K) -> Duration {
        let delay = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            let n = *n;
            let step = self
                .backoff
                .base
                .saturating_mul(1u32 << (n - 1).min(20))
                .min(self.backoff.max);
            s.rng ^= s.rng << 13;
            s.rng ^= s.rng >> 7;
            s.rng ^= s.rng << 17;
            let frac = 0.5 + (s.rng % 1000) as f64 / 2000.0;
            step.mul_f64(frac)
        };
        self.add_after(key, delay);
        delay
    }

    /// Clears a key's failure count (after a successful reconcile).
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// Number of failures recorded for a key.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Waits for the next key; `None` once the queue is shut down.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            let deadline = {
                let mut s = self.lock();
                if s.shutdown {
                    return None;
                }
                let now = Instant::now();
                while let Some((&(t, seq), _)) = s.delayed.iter().next() {
                    if t > now {
                        break;
                    }
                    let key = s
                        .delayed
                        .remove(&(t, seq))
                        .unwrap_or_else(|| unreachable!("just seen"));
                    s.delayed_at.remove(&key);
                    Self::enqueue(&mut s, key);
                }
                if let Some(k) = s.ready.pop_front() {
                    s.queued.remove(&k);
                    s.processing.insert(k.clone());
                    if !s.ready.is_empty() {
                        self.notify.notify_one();
                    }
                    return Some(k);
                }
                s.delayed.keys().next().map(|(t, _)| *t)
            };
            match deadline {
                Some(t) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(t) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks a key's reconcile finished; if it was added meanwhile, it is queued again.
    pub fn done(&self, key: &K) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.remove(key) && Self::enqueue(&mut s, key.clone()) {
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Keys ready to be handed out now: queued, or due after a delay or a backoff (not those
    /// being reconciled, nor those waiting for a later time).
    pub fn len(&self) -> usize {
        let s = self.lock();
        let now = Instant::now();
        let due = s
            .delayed
            .iter()
            .take_while(|((t, _), _)| *t <= now)
            .filter(|(_, k)| !s.queued.contains(*k))
            .count();
        s.ready.len() + due
    }

    /// Keys waiting for a later time: a requeue a reconcile asked for, or a failure's backoff.
    pub fn delayed_len(&self) -> usize {
        let s = self.lock();
        let now = Instant::now();
        s.delayed.keys().filter(|(t, _)| *t > now).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops handing out keys; waiting workers get `None`.
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.notify.notify_waiters();
        for _ in 0..64 {
            self.notify.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn queue_merges_duplicate_keys() {
        let q = WorkQueue::new(Backoff::default());
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(q.next().await, Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn queue_holds_back_a_key_added_while_it_is_processed() {
        let q = WorkQueue::new(Backoff::default());
        q.add("a");
        assert_eq!(q.next().await, Some("a"));
        q.add("a");
        assert!(q.is_empty(), "not handed out while processing");
        q.done(&"a");
        assert_eq!(q.next().await, Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn queue_length_counts_only_work_ready_now_and_delayed_keys_apart() {
        let q = WorkQueue::new(Backoff::default());
        q.add_after("later", Duration::from_secs(30));
        q.add_after("soon", Duration::from_secs(5));
        assert_eq!(
            (q.len(), q.delayed_len()),
            (0, 2),
            "an idle queue has depth 0"
        );
        q.add("now");
        assert_eq!((q.len(), q.delayed_len()), (1, 2));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(
            (q.len(), q.delayed_len()),
            (2, 1),
            "a due key is ready work"
        );
        assert_eq!(q.next().await, Some("now"));
        assert_eq!(q.next().await, Some("soon"));
        assert_eq!((q.len(), q.delayed_len()), (0, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn queue_requeues_after_a_delay() {
        let q = WorkQueue::new(Backoff::default());
        let start = Instant::now();
        q.add_after("a", Duration::from_secs(30));
        q.add_after("a", Duration::from_secs(10));
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(start.elapsed().as_secs(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn queue_backs_off_exponentially_with_jitter_and_forgets_on_success() {
        let q = WorkQueue::new(Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
        });
        let mut delays = Vec::new();
        for _ in 0..6 {
            delays.push(q.add_with_backoff("a"));
            assert_eq!(q.next().await, Some("a"));
            q.done(&"a");
        }
        let steps = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0];
        for (d, s) in delays.iter().zip(steps) {
            let d = d.as_secs_f64();
            assert!(d >= s * 0.5 && d <= s, "delay {d} for step {s}");
        }
        q.forget(&"a");
        assert_eq!(q.failures(&"a"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn queue_shutdown_releases_waiting_workers() {
        let q = std::sync::Arc::new(WorkQueue::<&str>::new(Backoff::default()));
        let q2 = q.clone();
        let w = tokio::spawn(async move { q2.next().await });
        tokio::task::yield_now().await;
        q.shutdown();
        assert_eq!(w.await.unwrap(), None);
    }
}
