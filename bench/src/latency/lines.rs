//! An incremental splitter of the newline-delimited JSON of `GET /v1/event/stream`: bytes go
//! in as they arrive, each complete line comes out (heartbeats `{}` included; the tracker
//! skips them).

/// The largest line accepted; a bigger one is an error, never unbounded memory.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Bytes received but not yet a complete line.
#[derive(Debug, Default)]
pub struct LineParser {
    buf: Vec<u8>,
}

/// A line larger than [`MAX_LINE_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge(pub usize);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a line of more than {} bytes arrived (at most {MAX_LINE_BYTES} are accepted)",
            self.0
        )
    }
}

impl LineParser {
    /// Takes `chunk` and returns every line it completed, in order, without the newline;
    /// blank lines are skipped.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<String>, TooLarge> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]).trim().to_string();
            if !text.is_empty() {
                out.push(text);
            }
        }
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(TooLarge(self.buf.len()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_out_once_complete_whatever_the_chunking() {
        let stream = b"{\"Index\":1}\n{}\n\n{\"Index\":2}\n";
        for size in 1..stream.len() {
            let mut p = LineParser::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(size) {
                got.extend(p.feed(chunk).unwrap());
            }
            assert_eq!(
                got,
                ["{\"Index\":1}", "{}", "{\"Index\":2}"],
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn a_line_over_the_limit_is_an_error() {
        let mut p = LineParser::default();
        let err = p.feed(&vec![b'x'; MAX_LINE_BYTES + 1]).unwrap_err();
        assert_eq!(err, TooLarge(MAX_LINE_BYTES + 1));
    }
}
