//! Processes on this machine: the baseline (spawning `/bin/sleep 3600` directly, the work an
//! allocation's task does without the orchestrator), the memory of `nctl dev` from
//! `/proc/PID/status`, and finding and killing every process the bench caused to be started
//! (they carry [`MARKER_ENV`] in their environment), so none is left behind.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::LatencyError;

/// The environment variable every task and baseline process gets, set to the bench's pid.
pub const MARKER_ENV: &str = "NOMOS_LATENCY_OWNER";

/// The command each task runs.
pub const SLEEP: &str = "/bin/sleep";
pub const SLEEP_ARG: &str = "3600";

/// Children that are killed and reaped when dropped.
#[derive(Default)]
struct Reaped(Vec<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Spawns `n` `/bin/sleep 3600` processes one after the other and returns how long that took
/// (each `spawn` returns once the process has executed `sleep`); they are killed after the
/// clock stops.
pub fn spawn_batch(n: usize, marker: &str) -> Result<Duration, LatencyError> {
    let mut children = Reaped::default();
    let start = Instant::now();
    for _ in 0..n {
        let child = Command::new(SLEEP)
            .arg(SLEEP_ARG)
            .env(MARKER_ENV, marker)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| LatencyError::Spawn {
                what: SLEEP.to_string(),
                source,
            })?;
        children.0.push(child);
    }
    Ok(start.elapsed())
}

/// A process's memory, in MiB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_mib: f64,
    /// `VmHWM`: the most it was ever resident.
    pub hwm_mib: f64,
    /// `Threads`: how many threads it runs (each has a stack).
    pub threads: u64,
}

/// A `kB` field (`VmRSS:   1234 kB`) of `/proc/PID/status`.
pub fn status_kib(text: &str, field: &str) -> Option<u64> {
    status_field(text, field)
        .and_then(|v| v.strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
}

/// The value of a field of `/proc/PID/status`, trimmed.
fn status_field<'t>(text: &'t str, field: &str) -> Option<&'t str> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// The memory of process `pid` (only its own, not its children's).
pub fn memory(pid: u32) -> Result<Memory, LatencyError> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|source| LatencyError::Proc {
        path: path.clone(),
        source,
    })?;
    let field = |name: &str| {
        status_kib(&text, name)
            .map(|kib| kib as f64 / 1024.0)
            .ok_or_else(|| LatencyError::Proc {
                path: path.clone(),
                source: std::io::Error::other(format!("no {name} line")),
            })
    };
    Ok(Memory {
        rss_mib: field("VmRSS")?,
        hwm_mib: field("VmHWM")?,
        threads: status_field(&text, "Threads")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
    })
}

/// Whether a NUL-separated environment block holds `NAME=value` exactly.
pub fn environ_has(environ: &[u8], name: &str, value: &str) -> bool {
    let want = format!("{name}={value}");
    environ.split(|&b| b == 0).any(|e| e == want.as_bytes())
}

/// Every process whose environment says it was started for the bench `marker` names.
pub fn marked(marker: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(Path::new("/proc").join(pid.to_string()).join("environ"))
                .is_ok_and(|env| environ_has(&env, MARKER_ENV, marker))
        })
        .collect()
}

/// Kills (SIGKILL) every process [`marked`] finds and returns how many there were.
pub fn kill_marked(marker: &str) -> usize {
    let pids = marked(marker);
    for &pid in &pids {
        // SAFETY: kill(2) with a pid read from /proc; at worst the process is already gone.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    pids.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_kib() {
        let text = "Name:\tnctl\nVmHWM:\t   52000 kB\nVmRSS:\t   40960 kB\nThreads:\t4\n";
        for (field, want) in [
            ("VmRSS", Some(40960)),
            ("VmHWM", Some(52000)),
            ("Threads", None),
            ("VmSwap", None),
            ("Vm", None),
        ] {
            assert_eq!(status_kib(text, field), want, "{field}");
        }
    }

    #[test]
    fn environment_entries_match_whole() {
        let env = b"A=1\0NOMOS_LATENCY_OWNER=42\0B=2\0";
        for (value, want) in [("42", true), ("4", false), ("421", false), ("", false)] {
            assert_eq!(environ_has(env, MARKER_ENV, value), want, "{value:?}");
        }
    }

    #[test]
    fn the_baseline_leaves_no_process_behind() {
        let marker = format!("baseline-test-{}", std::process::id());
        let took = spawn_batch(3, &marker).unwrap();
        assert!(took > Duration::ZERO);
        assert_eq!(marked(&marker), Vec::<i32>::new());
    }

    #[test]
    fn this_process_memory_is_readable() {
        let m = memory(std::process::id()).unwrap();
        assert!(m.rss_mib > 0.0 && m.hwm_mib >= m.rss_mib, "{m:?}");
        assert!(m.threads >= 1, "{m:?}");
    }
}
