//! Locks over variables, decided purely at a given time (`now`, Unix nanoseconds): who may
//! write, acquire, renew or release, given the lock a variable holds.
//!
//! A lock is held for its TTL after it was acquired or last renewed. After the TTL runs out
//! without a renewal it is lost, but the variable stays locked for its `LockDelay` more (Nomad's
//! guard against split brain): no one may acquire it or write without the lock's ID until the
//! delay has passed too. The holder may release it at any time.

use nomos_api::variables::VariableLock;
use serde::{Deserialize, Serialize};

/// A lock as kept in a variable's record: Nomad's fields plus when its TTL runs out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoredLock {
    #[serde(flatten)]
    pub lock: VariableLock,
    /// Unix nanoseconds when the TTL runs out unless renewed.
    pub expires: i64,
}

impl StoredLock {
    /// A lock acquired (or renewed) at `now`.
    pub fn starting(lock: VariableLock, now: i64) -> StoredLock {
        let expires = now.saturating_add(to_i64(lock.ttl_ns));
        StoredLock { lock, expires }
    }

    /// Where the lock stands at `now`.
    pub fn state(&self, now: i64) -> LockState {
        if now < self.expires {
            LockState::Held
        } else if now < self.expires.saturating_add(to_i64(self.lock.lock_delay_ns)) {
            LockState::Delayed
        } else {
            LockState::Lapsed
        }
    }
}

fn to_i64(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// Where a lock stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// Within its TTL.
    Held,
    /// Its TTL ran out, its lock delay has not.
    Delayed,
    /// TTL and lock delay both ran out: it protects nothing.
    Lapsed,
}

/// Why a lock operation (or a write under a lock) is refused; every one answers 409 with the
/// variable, as Nomad does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Someone else holds the lock (or it is within its lock delay).
    Locked,
    /// The variable holds no lock.
    NoLock,
    /// The caller's lock ran out before this renewal.
    Lost,
}

impl Refusal {
    /// Nomad's words.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Locked => "attempting to modify locked variable",
            Refusal::NoLock => "variable doesn't hold a lock",
            Refusal::Lost => "the lock's TTL ran out before it was renewed",
        }
    }
}

fn holds(lock: &StoredLock, id: Option<&str>) -> bool {
    id.is_some_and(|id| !id.is_empty() && id == lock.lock.id)
}

/// May a write (set, delete) go ahead, carrying lock ID `id`?
pub fn check_write(lock: Option<&StoredLock>, id: Option<&str>, now: i64) -> Result<(), Refusal> {
    match lock {
        Some(l) if l.state(now) != LockState::Lapsed && !holds(l, id) => Err(Refusal::Locked),
        _ => Ok(()),
    }
}

/// May a new lock be acquired?
pub fn check_acquire(lock: Option<&StoredLock>, now: i64) -> Result<(), Refusal> {
    match lock {
        Some(l) if l.state(now) != LockState::Lapsed => Err(Refusal::Locked),
        _ => Ok(()),
    }
}

/// May the lock with ID `id` be renewed?
pub fn check_renew(lock: Option<&StoredLock>, id: &str, now: i64) -> Result<(), Refusal> {
    match lock {
        None => Err(Refusal::NoLock),
        Some(l) if !holds(l, Some(id)) => Err(Refusal::Locked),
        Some(l) if l.state(now) != LockState::Held => Err(Refusal::Lost),
        Some(_) => Ok(()),
    }
}

/// May the lock with ID `id` be released?
pub fn check_release(lock: Option<&StoredLock>, id: &str) -> Result<(), Refusal> {
    match lock {
        None => Err(Refusal::NoLock),
        Some(l) if !holds(l, Some(id)) => Err(Refusal::Locked),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    /// A lock with ID "me", TTL 15 s and delay 10 s, acquired at t = 100 s.
    fn lock() -> StoredLock {
        StoredLock::starting(
            VariableLock {
                id: "me".into(),
                ttl_ns: 15 * S as u64,
                lock_delay_ns: 10 * S as u64,
            },
            100 * S,
        )
    }

    #[test]
    fn a_lock_is_held_for_its_ttl_then_delayed_then_lapsed() {
        let l = lock();
        assert_eq!(l.state(100 * S), LockState::Held);
        assert_eq!(l.state(115 * S - 1), LockState::Held);
        assert_eq!(l.state(115 * S), LockState::Delayed);
        assert_eq!(l.state(125 * S - 1), LockState::Delayed);
        assert_eq!(l.state(125 * S), LockState::Lapsed);
    }

    #[test]
    fn writes_under_a_lock_need_its_id_until_it_lapses() {
        let l = lock();
        assert_eq!(check_write(None, None, 0), Ok(()));
        assert_eq!(check_write(Some(&l), None, 101 * S), Err(Refusal::Locked));
        assert_eq!(
            check_write(Some(&l), Some("other"), 101 * S),
            Err(Refusal::Locked)
        );
        assert_eq!(
            check_write(Some(&l), Some(""), 101 * S),
            Err(Refusal::Locked)
        );
        assert_eq!(check_write(Some(&l), Some("me"), 101 * S), Ok(()));
        assert_eq!(check_write(Some(&l), None, 120 * S), Err(Refusal::Locked));
        assert_eq!(check_write(Some(&l), None, 125 * S), Ok(()));
    }

    #[test]
    fn a_held_or_delayed_lock_refuses_other_acquirers_and_a_lapsed_one_is_free() {
        let l = lock();
        assert_eq!(check_acquire(None, 0), Ok(()));
        assert_eq!(check_acquire(Some(&l), 101 * S), Err(Refusal::Locked));
        assert_eq!(check_acquire(Some(&l), 116 * S), Err(Refusal::Locked));
        assert_eq!(check_acquire(Some(&l), 125 * S), Ok(()));
    }

    #[test]
    fn only_the_holder_renews_and_only_within_the_ttl() {
        let l = lock();
        assert_eq!(check_renew(None, "me", 0), Err(Refusal::NoLock));
        assert_eq!(
            check_renew(Some(&l), "other", 101 * S),
            Err(Refusal::Locked)
        );
        assert_eq!(check_renew(Some(&l), "me", 101 * S), Ok(()));
        assert_eq!(check_renew(Some(&l), "me", 115 * S), Err(Refusal::Lost));
    }

    #[test]
    fn only_the_holder_releases_at_any_time() {
        let l = lock();
        assert_eq!(check_release(None, "me"), Err(Refusal::NoLock));
        assert_eq!(check_release(Some(&l), "other"), Err(Refusal::Locked));
        assert_eq!(check_release(Some(&l), "me"), Ok(()));
    }

    #[test]
    fn huge_ttls_saturate_instead_of_overflowing() {
        let l = StoredLock::starting(
            VariableLock {
                id: "x".into(),
                ttl_ns: u64::MAX,
                lock_delay_ns: u64::MAX,
            },
            i64::MAX - 1,
        );
        assert_eq!(l.expires, i64::MAX);
        assert_eq!(l.state(i64::MAX - 1), LockState::Held);
    }
}
