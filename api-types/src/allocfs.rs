//! A file of an allocation's directory as Nomad's client filesystem API describes it
//! (`GET /v1/client/fs/ls|stat/:alloc_id`), and Go's rendering of file modes it uses.

use serde::{Deserialize, Serialize};

/// Largest number of bytes one read of an allocation's file answers (`cat`, `readat`, one
/// chunk of a stream).
pub const MAX_READ_BYTES: u64 = 16 << 20;
/// Most entries one directory listing answers.
pub const MAX_LIST_ENTRIES: usize = 10_000;

/// One entry of an allocation's directory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocFileInfo {
    pub name: String,
    pub is_dir: bool,
    pub size: i64,
    /// As Go prints an `os.FileMode`: `drwxr-xr-x`, `-rw-r--r--`, `Lrwxrwxrwx`.
    pub file_mode: String,
    /// RFC 3339 with nanoseconds, UTC.
    pub mod_time: String,
    /// Empty: Nomos does not sniff contents.
    pub content_type: String,
}

/// The file type bits of `st_mode`.
const S_IFMT: u32 = 0o170_000;

/// `st_mode` as Go's `os.FileMode.String()` writes it: a type letter (`d`, `L`, `p`, `S`,
/// `D`, `c`, or `-` for a regular file) then `rwx` three times.
pub fn file_mode_string(mode: u32) -> String {
    let kind = match mode & S_IFMT {
        0o040_000 => 'd',
        0o120_000 => 'L',
        0o010_000 => 'p',
        0o140_000 => 'S',
        0o060_000 => 'D',
        0o020_000 => 'c',
        _ => '-',
    };
    let mut out = String::with_capacity(10);
    out.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_go_prints_them() {
        for (mode, want) in [
            (0o040_755, "drwxr-xr-x"),
            (0o100_644, "-rw-r--r--"),
            (0o100_600, "-rw-------"),
            (0o120_777, "Lrwxrwxrwx"),
            (0o010_640, "prw-r-----"),
        ] {
            assert_eq!(file_mode_string(mode), want, "{mode:o}");
        }
    }
}
