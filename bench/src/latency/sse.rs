//! An incremental parser of the server-sent events of `GET /v1/events`: bytes go in as they
//! arrive, the `data` of each complete event comes out. Keep-alive comments and the `event`
//! and `id` fields are skipped (every event's JSON repeats its topic and revision).

/// The largest event accepted; a bigger one is an error, never unbounded memory.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// Bytes received but not yet a complete event.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

/// An event larger than [`MAX_EVENT_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge(pub usize);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "an event of more than {} bytes arrived (at most {MAX_EVENT_BYTES} are accepted)",
            self.0
        )
    }
}

impl SseParser {
    /// Takes `chunk` and returns the data of every event it completed, in order (an event whose
    /// data lines are several is joined with `\n`, as the SSE specification says).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<String>, TooLarge> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some((end, sep)) = boundary(&self.buf) {
            let block: Vec<u8> = self.buf.drain(..end + sep).collect();
            if let Some(data) = data_of(&String::from_utf8_lossy(&block[..end])) {
                out.push(data);
            }
        }
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err(TooLarge(self.buf.len()));
        }
        Ok(out)
    }
}

/// Where the first blank line (`\n\n` or `\r\n\r\n`) starts, and its length.
fn boundary(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The data of one event block; `None` for a block without data (a comment or keep-alive).
fn data_of(block: &str) -> Option<String> {
    let lines: Vec<&str> = block
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_once_complete_whatever_the_chunking() {
        let stream = "event: allocs\nid: 5\ndata: {\"a\":1}\n\n:\n\nid: 6\ndata:{\"b\":2}\r\n\r\ndata: x\ndata: y\n\npartial";
        let want = vec!["{\"a\":1}", "{\"b\":2}", "x\ny"];
        for size in [1, 2, 3, 7, 100] {
            let mut p = SseParser::default();
            let mut got = Vec::new();
            for chunk in stream.as_bytes().chunks(size) {
                got.extend(p.feed(chunk).unwrap());
            }
            assert_eq!(got, want, "chunks of {size}");
            assert_eq!(p.buf, b"partial", "chunks of {size}");
        }
    }

    #[test]
    fn blocks_without_data_are_skipped() {
        for block in [":\n\n", "event: x\nid: 1\n\n", "\n\n"] {
            let mut p = SseParser::default();
            assert_eq!(
                p.feed(block.as_bytes()).unwrap(),
                Vec::<String>::new(),
                "{block:?}"
            );
        }
    }

    #[test]
    fn an_event_over_the_limit_is_an_error() {
        let mut p = SseParser::default();
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert_eq!(p.feed(&big), Err(TooLarge(MAX_EVENT_BYTES + 1)));
    }
}
