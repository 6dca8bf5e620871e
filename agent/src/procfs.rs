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

/// Whether a failed read of `/proc/<pid>/...` means the process is gone (ENOENT, or ESRCH when
/// it exited while being read), as opposed to `/proc` not being readable right now (EMFILE,
/// ENFILE, ENOMEM, EACCES, ...), which says nothing about the process.
pub fn means_gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Reads `/proc/<pid>/stat`: `Ok(None)` when the process does not exist, an error when it could
/// not be read (or not be parsed).
pub fn read_stat(pid: i32) -> std::io::Result<Option<ProcStat>> {
    let path = format!("/proc/{pid}/stat");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_stat(&text).map(Some).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unparsable {path}"),
            )
        }),
        Err(e) if means_gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads `/proc/<pid>/stat`, `None` if the process does not exist or it could not be read.
pub fn stat(pid: i32) -> Option<ProcStat> {
    read_stat(pid).ok().flatten()
}

/// What `/proc` says about a process known by pid and start time.
#[derive(Debug)]
pub enum Liveness {
    /// It runs (not a zombie) and started when it should have.
    Alive,
    /// It is gone: no such pid, a zombie, or another process that reuses the pid.
    Gone,
    /// `/proc` could not be read: nothing is known. Look again later; never take it as an exit.
    Unknown(std::io::Error),
}

/// Whether the process `pid` that started at `start_time` still runs.
pub fn liveness(pid: i32, start_time: u64) -> Liveness {
    liveness_of(read_stat(pid), start_time)
}

/// [`liveness`] from the result of reading the process's stat (pure).
pub fn liveness_of(read: std::io::Result<Option<ProcStat>>, start_time: u64) -> Liveness {
    match read {
        Ok(Some(s)) if s.start_time == start_time && s.state != 'Z' && s.state != 'X' => {
            Liveness::Alive
        }
        Ok(_) => Liveness::Gone,
        Err(e) => Liveness::Unknown(e),
    }
}

/// Pidfds open now (see [`pidfd_open`]).
static OPEN_PIDFDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// An open pidfd; closing it gives its place back to the budget.
#[derive(Debug)]
pub struct PidFd(std::os::fd::OwnedFd);

impl std::os::fd::AsRawFd for PidFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl Drop for PidFd {
    fn drop(&mut self) {
        OPEN_PIDFDS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How many pidfds may be open at once: a quarter of the soft open-files limit, so tasks never
/// take the descriptors that `/proc` reads, sockets and logs need.
fn pidfd_budget() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    (limit.rlim_cur / 4).min(1 << 20) as usize
}

/// A pidfd for `pid` (`pidfd_open(2)`, Linux 5.3+): it becomes readable when the process exits,
/// whether or not it is this process's child, so a task is waited for without polling `/proc`.
/// Check the process's start time after opening it: a pid reused before the open names
/// another process. An error when pidfds are not supported or their budget is spent.
pub fn pidfd_open(pid: i32) -> std::io::Result<PidFd> {
    use std::os::fd::FromRawFd;
    use std::sync::atomic::Ordering;
    if OPEN_PIDFDS.fetch_add(1, Ordering::Relaxed) >= pidfd_budget() {
        OPEN_PIDFDS.fetch_sub(1, Ordering::Relaxed);
        return Err(std::io::Error::other("too many pidfds open"));
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::PIDFD_NONBLOCK) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        OPEN_PIDFDS.fetch_sub(1, Ordering::Relaxed);
        return Err(e);
    }
    // SAFETY: the descriptor was just created and is owned by nothing else.
    Ok(PidFd(unsafe {
        std::os::fd::OwnedFd::from_raw_fd(fd as i32)
    }))
}

/// Every live (not zombie) process `/proc` can tell about now.
fn live_processes() -> impl Iterator<Item = ProcStat> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter_map(stat)
        .filter(|s| s.state != 'Z')
}

/// Every live process of a process group.
pub fn group_members(pgrp: i32) -> Vec<ProcStat> {
    live_processes().filter(|s| s.pgrp == pgrp).collect()
}

/// Live process-group leaders whose environment holds every `KEY=VALUE` of `env` and no other
/// value for those keys, where a value of `""` stands for "not set": how a task whose start was
/// not yet recorded (the agent died in between) is found again. An error when `/proc` cannot be
/// read, so that not finding a task is never mistaken for its absence.
pub fn find_group_leaders_with_env(env: &[(&str, &str)]) -> std::io::Result<Vec<ProcStat>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Some(s) = read_stat(pid)? else { continue };
        if s.pgrp != s.pid || s.state == 'Z' {
            continue;
        }
        match environ_matches(pid, env) {
            Ok(true) => found.push(s),
            Ok(false) => {}
            Err(e) if means_gone(&e) || e.kind() == std::io::ErrorKind::PermissionDenied => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// Whether the environment of `pid` sets each key of `env` to its value (`""`: not set).
pub fn environ_matches(pid: i32, env: &[(&str, &str)]) -> std::io::Result<bool> {
    let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
    let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
    Ok(env.iter().all(|(k, v)| {
        let prefix = format!("{k}=");
        let value = vars
            .iter()
            .find_map(|var| var.strip_prefix(prefix.as_bytes()))
            .unwrap_or_default();
        value == v.as_bytes()
    }))
}

/// The live children of `pid` (read from `/proc/<pid>/task/<pid>/children`, else by scanning
/// every process's parent).
pub fn children(pid: i32) -> Vec<i32> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return text
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .collect();
    }
    live_processes()
        .filter(|s| s.ppid == pid)
        .map(|s| s.pid)
        .collect()
}

/// `pid` and every live process below it, parents first.
pub fn with_descendants(pid: i32) -> Vec<i32> {
    let mut out = vec![pid];
    let mut i = 0;
    // Bounded: a process tree never holds more than the host's pids.
    while i < out.len() && out.len() < 1 << 16 {
        out.extend(children(out[i]));
        i += 1;
    }
    out
}

/// The real user and group ids of `pid` (the `Uid:` and `Gid:` lines of its status).
pub fn credentials(pid: i32) -> std::io::Result<(u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_credentials(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no Uid/Gid lines in /proc/{pid}/status"),
        )
    })
}

/// The real uid and gid from the text of a `/proc/<pid>/status` (pure).
pub fn parse_credentials(status: &str) -> Option<(u32, u32)> {
    let real = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some((real("Uid:")?, real("Gid:")?))
}

/// The environment `pid` started with, as `KEY=VALUE` pairs.
pub fn environ(pid: i32) -> std::io::Result<Vec<(std::ffi::OsString, std::ffi::OsString)>> {
    use std::os::unix::ffi::OsStrExt;
    let raw = std::fs::read(format!("/proc/{pid}/environ"))?;
    Ok(raw
        .split(|b| *b == 0)
        .filter_map(|var| {
            let eq = var.iter().position(|b| *b == b'=')?;
            let os = |b: &[u8]| std::ffi::OsStr::from_bytes(b).to_os_string();
            Some((os(&var[..eq]), os(&var[eq + 1..])))
        })
        .collect())
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
    fn credentials_are_the_real_ids() {
        let status = "Name:\tsh\nUid:\t65534\t65534\t65534\t65534\nGid:\t65533\t1\t1\t1\n";
        assert_eq!(parse_credentials(status), Some((65534, 65533)));
        assert_eq!(parse_credentials("Name:\tsh\n"), None);
        let me = std::process::id() as i32;
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        assert_eq!(credentials(me).unwrap().0, uid);
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
        assert!(matches!(liveness(me, s.start_time), Liveness::Alive));
        assert!(matches!(liveness(me, s.start_time + 1), Liveness::Gone));
    }

    #[test]
    fn only_a_missing_process_is_gone_and_an_unreadable_proc_says_nothing() {
        use std::io::{Error, ErrorKind};
        let running = parse_stat("7 (t) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 500 0 10").unwrap();
        let zombie = ProcStat {
            state: 'Z',
            ..running.clone()
        };
        let os = Error::from_raw_os_error;
        // (what reading /proc/<pid>/stat gave, the verdict for start time 500)
        let cases: Vec<(std::io::Result<Option<ProcStat>>, &str)> = vec![
            (Ok(Some(running.clone())), "alive"),
            (
                Ok(Some(ProcStat {
                    start_time: 501,
                    ..running
                })),
                "gone",
            ),
            (Ok(Some(zombie)), "gone"),
            (Ok(None), "gone"),
            (Err(os(libc::EMFILE)), "unknown"),
            (Err(os(libc::ENFILE)), "unknown"),
            (Err(os(libc::ENOMEM)), "unknown"),
            (Err(os(libc::EACCES)), "unknown"),
            (
                Err(Error::new(ErrorKind::InvalidData, "unparsable")),
                "unknown",
            ),
        ];
        for (read, want) in cases {
            let what = format!("{read:?}");
            let got = match liveness_of(read, 500) {
                Liveness::Alive => "alive",
                Liveness::Gone => "gone",
                Liveness::Unknown(_) => "unknown",
            };
            assert_eq!(got, want, "{what}");
        }
        assert!(means_gone(&os(libc::ENOENT)) && means_gone(&os(libc::ESRCH)));
        assert!(!means_gone(&os(libc::EMFILE)));
    }

    #[test]
    fn a_pidfd_turns_readable_when_its_process_exits_and_not_before() {
        use std::os::fd::AsRawFd;
        let readable = |fd: &PidFd| {
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, no wait.
            unsafe { libc::poll(&mut p, 1, 0) == 1 }
        };
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fd = pidfd_open(child.id() as i32).expect("pidfd_open");
        assert!(!readable(&fd));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(readable(&fd));
        assert!(pidfd_open(i32::MAX).is_err());
    }

    #[test]
    fn a_missing_process_reads_as_none_not_as_an_error() {
        // Far above pid_max on any Linux: no such process.
        assert!(matches!(read_stat(i32::MAX), Ok(None)));
    }

    #[test]
    fn commands_resolve_through_path() {
        let cwd = Path::new("/");
        assert!(resolve_command("sh", None, cwd).is_some());
        assert!(resolve_command("/bin/sh", None, cwd).is_some());
        assert!(resolve_command("no-such-command-here", None, cwd).is_none());
    }
}
