//! Fingerprinting: what this machine is (cpu, memory, disk, os, kernel, hostname, address) as
//! Nomad-style attributes, plus the resources the scheduler can place against. Parsers of the
//! `/proc` and `/etc` files are pure and tested; [`fingerprint`] reads the real files.

use std::path::Path;

use indexmap::IndexMap;
use nomos_api::NodeResources;

/// Numbers read from `/proc/cpuinfo`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CpuInfo {
    pub cores: u32,
    pub mhz: u32,
    pub model: String,
}

pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => info.cores += 1,
            "cpu MHz" if info.mhz == 0 => {
                info.mhz = v.parse::<f64>().map(|f| f.round() as u32).unwrap_or(0)
            }
            "model name" if info.model.is_empty() => info.model = v.to_string(),
            _ => {}
        }
    }
    info
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// `(ID, VERSION_ID)` from `/etc/os-release`.
pub fn parse_os_release(text: &str) -> (String, String) {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (get("ID"), get("VERSION_ID"))
}

/// The machine's facts: attributes and resources.
#[derive(Debug, Clone, Default)]
pub struct Fingerprint {
    pub attributes: IndexMap<String, String>,
    pub resources: NodeResources,
    pub address: String,
}

fn hostname() -> String {
    nix::sys::utsname::uname()
        .ok()
        .map(|u| u.nodename().to_string_lossy().into_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The address other hosts reach this one on: the source address of the default route, or
/// loopback when there is none.
pub fn primary_ip() -> String {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
        .and_then(|s| s.local_addr());
    match probe {
        Ok(a) if !a.ip().is_unspecified() => a.ip().to_string(),
        _ => "127.0.0.1".into(),
    }
}

/// Reads this machine's facts; `data_dir` is where disk space is measured.
pub fn fingerprint(data_dir: &Path) -> Fingerprint {
    let mut attrs = IndexMap::new();
    let cpu = parse_cpuinfo(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default());
    let cores = if cpu.cores > 0 {
        cpu.cores
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    };
    // Hosts that do not report a frequency (many ARM boards) count 1000 MHz per core.
    let mhz = if cpu.mhz > 0 { cpu.mhz } else { 1000 };
    let memory = parse_meminfo_total(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default())
        .unwrap_or(0);
    let uname = nix::sys::utsname::uname().ok();
    let kernel_version = uname
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let arch = uname
        .as_ref()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_else(|| std::env::consts::ARCH.into());
    let (os_name, os_version) =
        parse_os_release(&std::fs::read_to_string("/etc/os-release").unwrap_or_default());
    // The statvfs field types differ between targets (32-bit boards), hence the casts.
    #[allow(clippy::unnecessary_cast)]
    let (disk_total, disk_free) = nix::sys::statvfs::statvfs(data_dir)
        .map(|s| {
            (
                s.blocks() as u64 * s.fragment_size() as u64,
                s.blocks_available() as u64 * s.fragment_size() as u64,
            )
        })
        .unwrap_or((0, 0));
    let host = hostname();
    let ip = primary_ip();
    let cgroup_version = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };

    attrs.insert("cpu.numcores".into(), cores.to_string());
    attrs.insert("cpu.frequency".into(), mhz.to_string());
    attrs.insert("cpu.totalcompute".into(), (mhz * cores).to_string());
    attrs.insert("cpu.modelname".into(), cpu.model);
    attrs.insert("cpu.arch".into(), arch.clone());
    attrs.insert("memory.totalbytes".into(), memory.to_string());
    attrs.insert("unique.storage.bytestotal".into(), disk_total.to_string());
    attrs.insert("unique.storage.bytesfree".into(), disk_free.to_string());
    attrs.insert(
        "unique.storage.volume".into(),
        data_dir.display().to_string(),
    );
    attrs.insert("kernel.name".into(), std::env::consts::OS.into());
    attrs.insert("kernel.version".into(), kernel_version);
    attrs.insert("kernel.arch".into(), arch.clone());
    attrs.insert("arch".into(), arch);
    attrs.insert("os.name".into(), os_name);
    attrs.insert("os.version".into(), os_version);
    attrs.insert("os.cgroups.version".into(), cgroup_version.into());
    attrs.insert("unique.hostname".into(), host);
    attrs.insert("unique.network.ip-address".into(), ip.clone());
    attrs.insert("nomos.version".into(), env!("CARGO_PKG_VERSION").into());
    attrs.insert("nomad.version".into(), "1.9.0".into());

    let resources = NodeResources {
        cpu_mhz: mhz * cores,
        cores,
        memory_mb: (memory / (1024 * 1024)) as u32,
        disk_mb: (disk_free / (1024 * 1024)) as u32,
        ..Default::default()
    };
    Fingerprint {
        attributes: attrs,
        resources,
        address: ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_counts_processors_and_reads_the_first_frequency() {
        let text = "processor\t: 0\nmodel name\t: Test CPU\ncpu MHz\t\t: 2399.998\n\nprocessor\t: 1\nmodel name\t: Test CPU\ncpu MHz\t\t: 1200.000\n";
        assert_eq!(
            parse_cpuinfo(text),
            CpuInfo {
                cores: 2,
                mhz: 2400,
                model: "Test CPU".into()
            }
        );
        assert_eq!(parse_cpuinfo(""), CpuInfo::default());
    }

    #[test]
    fn meminfo_and_os_release_parse() {
        assert_eq!(
            parse_meminfo_total("MemTotal:        2048 kB\nMemFree: 1 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(parse_meminfo_total("nothing"), None);
        assert_eq!(
            parse_os_release("NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"13\"\n"),
            ("debian".into(), "13".into())
        );
    }

    #[test]
    fn fingerprint_of_this_machine_has_the_basics() {
        let dir = tempfile::tempdir().unwrap();
        let f = fingerprint(dir.path());
        assert_eq!(f.attributes["kernel.name"], "linux");
        assert!(f.resources.cores >= 1);
        assert!(f.resources.memory_mb > 0);
        assert!(!f.attributes["unique.hostname"].is_empty());
    }
}
