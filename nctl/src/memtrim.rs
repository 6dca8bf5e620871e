//! Gives freed heap memory back to the operating system in the long-running modes (`server`,
//! `dev`, `agent`). glibc's malloc keeps pages that a spike freed (a large listing, a burst of
//! big job files) inside its arenas, so RSS stays at the spike's height until restart. A
//! [`Trimmer`] thread looks at the heap every few seconds and calls `malloc_trim(0)` when the
//! allocator holds many free bytes (at most once per [`MIN_GAP`]). Elsewhere it does nothing.
//! `NOMOS_MALLOC_TRIM=off` in the environment turns it off (to compare, or to rule it out).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the heap is looked at.
const INTERVAL: Duration = Duration::from_secs(5);

/// Trim once the allocator keeps at least this many free bytes in its arenas.
const FREE_BYTES: u64 = 32 << 20;

/// The least time between two trims (a trim walks every arena's free lists).
const MIN_GAP: Duration = Duration::from_secs(10);

/// Bytes the allocator keeps free in its arenas (all arenas; freed but not given back).
pub fn heap_free_held() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { libc::mallinfo2() };
        info.fordblks as u64
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        0
    }
}

/// Returns free heap pages to the operating system; true when some were returned.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only works on the allocator's own free lists.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Whether to trim a heap that keeps `free` bytes free, `since_last` after the last trim
/// (`None`: never trimmed).
fn should_trim(free: u64, since_last: Option<Duration>) -> bool {
    free >= FREE_BYTES && since_last.is_none_or(|gap| gap >= MIN_GAP)
}

/// The background trimming thread; dropping it stops the thread.
pub struct Trimmer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Trimmer {
    /// Starts the thread, unless `NOMOS_MALLOC_TRIM=off`.
    pub fn start() -> Trimmer {
        let (stop, stopped) = mpsc::channel::<()>();
        if std::env::var("NOMOS_MALLOC_TRIM").is_ok_and(|v| v == "off") {
            return Trimmer {
                stop: None,
                thread: None,
            };
        }
        let thread = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(move || {
                let mut last: Option<Instant> = None;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    if should_trim(heap_free_held(), last.map(|t| t.elapsed())) {
                        trim();
                        last = Some(Instant::now());
                    }
                }
            })
            .ok();
        Trimmer {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Trimmer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident memory of this process, from /proc/self/status.
    fn rss_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    #[test]
    fn a_trim_after_a_freed_spike_gives_most_of_it_back() {
        const BLOCK: usize = 1024;
        const BLOCKS: usize = 200 * 1024;
        let before = rss_bytes();
        let mut blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![i as u8; BLOCK]).collect();
        let spike = rss_bytes();
        assert!(spike > before + (150 << 20), "{before} -> {spike}");
        // Keep one block in 256 alive, as a server keeps some of what a spike allocated: the
        // heap cannot shrink from its top, only a trim frees the pages in between.
        let kept: Vec<Vec<u8>> = blocks.iter_mut().step_by(256).map(std::mem::take).collect();
        drop(blocks);
        trim();
        let after = rss_bytes();
        let grown = spike - before;
        assert!(
            after < before + grown / 4,
            "rss {before} before, {spike} at the spike, {after} after the trim"
        );
        drop(kept);
    }

    #[test]
    fn only_a_heap_holding_much_free_memory_is_trimmed_and_not_too_often() {
        let mib = 1 << 20;
        let secs = Duration::from_secs;
        assert!(should_trim(1000 * mib, None));
        assert!(should_trim(32 * mib, Some(MIN_GAP)));
        assert!(!should_trim(31 * mib, None));
        assert!(!should_trim(1000 * mib, Some(MIN_GAP - secs(1))));
    }
}
