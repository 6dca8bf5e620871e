//! Byte-level pieces shared by the scanners that read HCL text without parsing it: `legacy`
//! (the HCL1 rewrite) and `fmt` (the formatter).

use std::ops::Range;

/// The byte range of a heredoc's delimiter, for the `<<` at `i` (`<<EOF` or `<<-EOF`); empty
/// when no identifier follows.
pub(super) fn heredoc_delimiter(b: &[u8], i: usize) -> Range<usize> {
    let mut j = i + 2;
    if b.get(j) == Some(&b'-') {
        j += 1;
    }
    let start = j;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        j += 1;
    }
    start..j
}
