//! Resource usage in the shapes of Nomad's client API: an allocation's
//! (`AllocResourceUsage`, from its drivers' [`TaskStats`]) and the host's (`HostStats`, from
//! `/proc/meminfo`, `/proc/stat`, `/proc/uptime` and `statvfs` of the data directory).
//!
//! Usage is sampled when asked, not in the background. CPU percentages are over the time
//! since the previous request ([`Samples`] remembers it; the first answer covers the time
//! since the task or machine started). The builders are pure; [`Samples`] and the `/proc`
//! readers are the only state and I/O.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::driver::TaskStats;

/// Most task samples remembered (beyond it, the memory starts afresh).
const MAX_SAMPLES: usize = 10_000;

/// The previous CPU readings, for percentages over the time between two requests.
#[derive(Default)]
pub struct Samples {
    /// `(alloc, task)` → (wall clock ns, CPU ns used).
    tasks: Mutex<HashMap<(String, String), (i64, u64)>>,
    /// The previous `/proc/stat` per CPU.
    host: Mutex<HashMap<String, CpuTimes>>,
}

/// One CPU's line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    pub user: u64,
    pub system: u64,
    pub idle: u64,
    pub total: u64,
}

/// Per cent of one CPU used between two readings `(wall ns, cpu ns)`.
pub fn cpu_percent(before: (i64, u64), now: (i64, u64)) -> f64 {
    let wall = now.0.saturating_sub(before.0);
    if wall <= 0 {
        return 0.0;
    }
    now.1.saturating_sub(before.1) as f64 / wall as f64 * 100.0
}

/// MHz of one core, as the fingerprint counts it (`/proc/cpuinfo`'s first `cpu MHz`, else
/// 1000), read once.
pub fn mhz_per_core() -> f64 {
    static MHZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *MHZ.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        match crate::fingerprint::parse_cpuinfo(&text).mhz {
            0 => 1000.0,
            mhz => mhz as f64,
        }
    })
}

/// Nomad's `ResourceUsage`: `TotalTicks` is the CPU used as MHz of `mhz_per_core` cores.
fn resource_usage(rss: u64, percent: f64, mhz_per_core: f64) -> Value {
    let ticks = (percent / 100.0 * mhz_per_core * 100.0).round() / 100.0;
    json!({
        "MemoryStats": {"RSS": rss, "Cache": 0, "Swap": 0, "MappedFile": 0, "Usage": rss,
                        "MaxUsage": 0, "KernelUsage": 0, "KernelMaxUsage": 0,
                        "Measured": ["RSS"]},
        "CpuStats": {"SystemMode": 0.0, "UserMode": 0.0, "TotalTicks": ticks,
                     "ThrottledPeriods": 0, "ThrottledTime": 0, "Percent": percent,
                     "Measured": ["Percent", "Total Ticks"]},
        "DeviceStats": null,
    })
}

impl Samples {
    /// Nomad's `AllocResourceUsage` of `alloc` from its running tasks' stats at `now_ns`;
    /// `PidCount` (a task's processes) is Nomos's addition, as `Pids` stays `null`.
    pub fn alloc_usage(
        &self,
        alloc: &str,
        tasks: &[(String, TaskStats, i64)],
        now_ns: i64,
    ) -> Value {
        let mut remembered = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if remembered.len() >= MAX_SAMPLES {
            remembered.clear();
        }
        let (mut rss, mut percent) = (0u64, 0f64);
        let mut out = serde_json::Map::new();
        for (name, stats, started_ns) in tasks {
            let key = (alloc.to_string(), name.clone());
            let now = (now_ns, stats.cpu_total_ns);
            let before = remembered.insert(key, now).unwrap_or((*started_ns, 0));
            let p = cpu_percent(before, now);
            rss += stats.memory_rss_bytes;
            percent += p;
            out.insert(
                name.clone(),
                json!({"ResourceUsage": resource_usage(stats.memory_rss_bytes, p, mhz_per_core()),
                       "Timestamp": now_ns, "Pids": null, "PidCount": stats.pids}),
            );
        }
        let usage = resource_usage(rss, percent, mhz_per_core());
        json!({"ResourceUsage": usage, "Tasks": out, "Timestamp": now_ns})
    }

    /// Nomad's `HostStats`: memory, CPUs (per cent since the previous request), the data
    /// directory's disk, uptime.
    pub fn host(&self, data_dir: &Path, now_ns: i64) -> std::io::Result<Value> {
        let meminfo = std::fs::read_to_string("/proc/meminfo")?;
        let stat = std::fs::read_to_string("/proc/stat")?;
        let uptime = std::fs::read_to_string("/proc/uptime")?;
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let cpus = parse_cpus(&stat);
        let mut before = self.host.lock().unwrap_or_else(|e| e.into_inner());
        let cpu: Vec<Value> = cpus
            .iter()
            .map(|(name, now)| {
                let prev = before.get(name).copied().unwrap_or_default();
                cpu_value(name, prev, *now)
            })
            .collect();
        *before = cpus.into_iter().collect();
        let disk = disk_stats(data_dir, &mounts)?;
        Ok(json!({
            "Memory": memory(&meminfo),
            "CPU": cpu,
            "DiskStats": [disk.clone()],
            "AllocDirStats": disk,
            "DeviceStats": [],
            "Uptime": uptime.split_whitespace().next().and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0) as u64,
            "Timestamp": now_ns,
            "CPUTicksConsumed": 0.0,
        }))
    }
}

/// `Memory` from `/proc/meminfo` (kB there, bytes here).
pub fn memory(meminfo: &str) -> Value {
    let field = |name: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let (total, available, free) = (field("MemTotal"), field("MemAvailable"), field("MemFree"));
    json!({"Total": total, "Available": available, "Used": total.saturating_sub(available), "Free": free})
}

/// The `cpuN` lines of `/proc/stat`.
pub fn parse_cpus(stat: &str) -> Vec<(String, CpuTimes)> {
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?.to_string();
            let n: Vec<u64> = parts.filter_map(|v| v.parse().ok()).collect();
            let get = |i: usize| n.get(i).copied().unwrap_or(0);
            Some((
                name,
                CpuTimes {
                    user: get(0) + get(1),
                    system: get(2),
                    idle: get(3) + get(4),
                    total: n.iter().take(8).sum(),
                },
            ))
        })
        .collect()
}

/// One CPU's per cents between two readings.
pub fn cpu_value(name: &str, before: CpuTimes, now: CpuTimes) -> Value {
    let total = now.total.saturating_sub(before.total).max(1) as f64;
    let pct = |a: u64, b: u64| a.saturating_sub(b) as f64 / total * 100.0;
    let idle = pct(now.idle, before.idle);
    json!({"CPU": name, "User": pct(now.user, before.user), "System": pct(now.system, before.system),
           "Idle": idle, "Total": 100.0 - idle})
}

/// The filesystem holding `dir`: its device and mount point (the longest mount point that
/// contains `dir`), size and use.
fn disk_stats(dir: &Path, mounts: &str) -> std::io::Result<Value> {
    let vfs = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    let block = vfs.fragment_size() as u64;
    let size = vfs.blocks() as u64 * block;
    let available = vfs.blocks_available() as u64 * block;
    let used = size.saturating_sub(vfs.blocks_free() as u64 * block);
    let inodes = vfs.files() as u64;
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let (device, mountpoint) = mounts
        .lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some((p.next()?, p.next()?))
        })
        .filter(|(_, m)| canonical.starts_with(m))
        .max_by_key(|(_, m)| m.len())
        .unwrap_or(("", "/"));
    let percent = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64 * 100.0
        }
    };
    Ok(json!({
        "Device": device, "Mountpoint": mountpoint, "Size": size, "Used": used,
        "Available": available, "UsedPercent": percent(used, size),
        "InodesUsedPercent": percent(inodes.saturating_sub(vfs.files_free() as u64), inodes),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_per_cent_is_cpu_time_over_wall_time_since_the_previous_sample() {
        assert_eq!(cpu_percent((0, 0), (1_000_000_000, 500_000_000)), 50.0);
        assert_eq!(cpu_percent((1_000, 10), (1_000, 99)), 0.0);
        let s = Samples::default();
        let stats = |cpu| TaskStats {
            memory_rss_bytes: 1 << 20,
            cpu_total_ns: cpu,
            pids: 2,
            ..TaskStats::default()
        };
        let first = s.alloc_usage(
            "a1",
            &[("web".into(), stats(1_000_000_000), 0)],
            4_000_000_000,
        );
        assert_eq!(
            first["Tasks"]["web"]["ResourceUsage"]["CpuStats"]["Percent"],
            25.0
        );
        let next = s.alloc_usage(
            "a1",
            &[("web".into(), stats(2_000_000_000), 0)],
            5_000_000_000,
        );
        assert_eq!(next["ResourceUsage"]["CpuStats"]["Percent"], 100.0);
        assert_eq!(
            next["ResourceUsage"]["CpuStats"]["TotalTicks"],
            mhz_per_core(),
            "a whole core is its MHz"
        );
        assert_eq!(next["ResourceUsage"]["MemoryStats"]["RSS"], 1 << 20);
        assert_eq!(next["Tasks"]["web"]["PidCount"], 2);
        assert_eq!(next["Timestamp"], 5_000_000_000i64);
    }

    #[test]
    fn proc_files_become_nomads_host_fields() {
        let mem =
            memory("MemTotal:       2000 kB\nMemFree:         500 kB\nMemAvailable:   1500 kB\n");
        assert_eq!(
            mem,
            json!({"Total": 2_048_000, "Available": 1_536_000, "Used": 512_000, "Free": 512_000})
        );
        let cpus = parse_cpus("cpu  9 9 9 9 9 0 0 0\ncpu0 10 0 10 70 10 0 0 0 0 0\nintr 1\n");
        assert_eq!(cpus.len(), 1);
        let (name, now) = &cpus[0];
        assert_eq!(
            *now,
            CpuTimes {
                user: 10,
                system: 10,
                idle: 80,
                total: 100
            }
        );
        let v = cpu_value(name, CpuTimes::default(), *now);
        assert_eq!(v["CPU"], "cpu0");
        assert_eq!(v["Idle"], 80.0);
        assert_eq!(v["Total"], 20.0);
    }
}
