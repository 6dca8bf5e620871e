//! Reading `/proc`: process identity (pid plus start time, so a reused pid is never mistaken for
//! a task), liveness, process-group membership and resource usage.

use std::path::Path;

/// The fields of `/proc/<pid>/stat` the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    /// `R`, `S`, `D`, `Z`, `T`, `X`, ...
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    /// User and system time in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Start time after boot in clock ticks (field 22).
    pub start_time: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
}

/// Parses the text of `/proc/<pid>/stat`. The command name may hold spaces and parentheses, so
/// fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // rest[0] is field 3 (state); field n is rest[n - 3].
    let field = |n: usize| rest.get(n - 3).copied();
    Some(ProcStat {
        pid,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
        rss_pages: field(24)?.parse().ok()?,
    })
}

/// Reads `/proc/<pid>/stat`, `None` if the process does not exist.
pub fn stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Whether the process `pid` that started at `start_time` is still running (not a zombie).
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    match stat(pid) {
        Some(s) => s.start_time == start_time && s.state != 'Z' && s.state != 'X',
        None => false,
    }
}

/// Every live process of a process group.
pub fn group_members(pgrp: i32) -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter_map(stat)
        .filter(|s| s.pgrp == pgrp && s.state != 'Z')
        .collect()
}

/// Live process-group leaders whose environment holds every `KEY=VALUE` of `env`: how a task
/// whose start was not yet recorded (the agent died in between) is found again.
pub fn find_group_leaders_with_env(env: &[(&str, &str)]) -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let wanted: Vec<Vec<u8>> = env
        .iter()
        .map(|(k, v)| format!("{k}={v}").into_bytes())
        .collect();
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter_map(stat)
        .filter(|s| s.pgrp == s.pid && s.state != 'Z')
        .filter(|s| {
            let Ok(environ) = std::fs::read(format!("/proc/{}/environ", s.pid)) else {
                return false;
            };
            let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
            wanted.iter().all(|w| vars.contains(&w.as_slice()))
        })
        .collect()
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Page size in bytes.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// Whether a path exists and is executable by someone.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Resolves a command the way `execvp` would, using `PATH` from the task environment (or the
/// agent's own).
pub fn resolve_command(
    command: &str,
    path_var: Option<&str>,
    cwd: &Path,
) -> Option<std::path::PathBuf> {
    if command.contains('/') {
        let p = if Path::new(command).is_absolute() {
            Path::new(command).to_path_buf()
        } else {
            cwd.join(command)
        };
        return is_executable(&p).then_some(p);
    }
    let default_path =
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let path_var = path_var.map(str::to_string).unwrap_or(default_path);
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(command))
        .find(|p| is_executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_counts_fields_after_the_last_parenthesis() {
        let line = "1234 (we (ird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 98765 1000000 256 18446744073709551615";
        let s = parse_stat(line).expect("parses");
        assert_eq!(s.pid, 1234);
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.pgrp, 1234);
        assert_eq!(s.utime, 7);
        assert_eq!(s.stime, 3);
        assert_eq!(s.start_time, 98765);
        assert_eq!(s.rss_pages, 256);
    }

    #[test]
    fn stat_parsing_rejects_garbage() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (x) S"), None);
    }

    #[test]
    fn our_own_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = std::process::id() as i32;
        let s = stat(me).expect("own stat");
        assert!(is_alive(me, s.start_time));
        assert!(!is_alive(me, s.start_time + 1));
    }

    #[test]
    fn commands_resolve_through_path() {
        let cwd = Path::new("/");
        assert!(resolve_command("sh", None, cwd).is_some());
        assert!(resolve_command("/bin/sh", None, cwd).is_some());
        assert!(resolve_command("no-such-command-here", None, cwd).is_none());
    }
}
