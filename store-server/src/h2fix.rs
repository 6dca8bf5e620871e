//! A read-side HTTP/2 filter that repairs one thing grpc-go clients get wrong and Rust's `h2`
//! refuses: an `:authority` holding a whole URL.
//!
//! etcd 3.4's `etcdctl endpoint status` and `endpoint health` dial each endpoint through grpc's
//! `passthrough` resolver, so their requests carry `:authority: http://127.0.0.1:2379`. Go's
//! server accepts that; `h2` resets the stream with `PROTOCOL_ERROR`. This wrapper sits between
//! the socket (or the TLS stream) and the HTTP/2 server. It decodes (HPACK) the first header
//! block of each connection: if its `:authority` is fine (every other client), the connection
//! is passed through untouched from then on, at no cost. Otherwise the connection is in repair
//! mode: every header block is decoded, repaired (`scheme://host:port/...` becomes `host:port`)
//! and encoded again for the server, and every other frame passes unchanged. Writes always pass
//! straight through.
//!
//! The frame handling is pure ([`Rewriter::process`]); the `AsyncRead` impl only moves bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
/// The largest frame the server accepts (HTTP/2's default `SETTINGS_MAX_FRAME_SIZE`).
const MAX_FRAME: usize = 16_384;

const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

/// A header block being collected across CONTINUATION frames.
struct PendingBlock {
    stream_id: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
    /// The frames as received, to forward unchanged when no repair is needed.
    raw: Vec<u8>,
}

/// What the rewriter does with the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Waiting for the first header block to decide.
    Probe,
    /// The client's authority is fine: every byte passes unchanged.
    PassThrough,
    /// Header blocks are decoded, repaired and encoded again.
    Repair,
}

/// The client-to-server byte transformation, independent of any I/O.
pub struct Rewriter {
    mode: Mode,
    preface_left: usize,
    pending: Option<PendingBlock>,
    decoder: loona_hpack::Decoder<'static>,
    encoder: loona_hpack::Encoder<'static>,
}

impl Default for Rewriter {
    fn default() -> Self {
        Rewriter {
            mode: Mode::Probe,
            preface_left: PREFACE_LEN,
            pending: None,
            decoder: loona_hpack::Decoder::new(),
            encoder: loona_hpack::Encoder::new(),
        }
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// `http://host:port/path` → `host:port`; anything else unchanged.
pub fn repair_authority(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?;
    let (_, rest) = text.split_once("://")?;
    let host = rest.split('/').next().unwrap_or_default();
    Some(host.as_bytes().to_vec())
}

impl Rewriter {
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Consumes as many complete frames from `input` as there are, appending the bytes the
    /// server should see to `out`; returns how many input bytes were consumed.
    pub fn process(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        if self.mode == Mode::PassThrough {
            out.extend_from_slice(input);
            return Ok(input.len());
        }
        let mut at = 0;
        if self.preface_left > 0 {
            let n = self.preface_left.min(input.len());
            out.extend_from_slice(&input[..n]);
            self.preface_left -= n;
            at = n;
            if self.preface_left > 0 {
                return Ok(at);
            }
        }
        while input.len() - at >= FRAME_HEADER_LEN {
            let h = &input[at..at + FRAME_HEADER_LEN];
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            let kind = h[3];
            let flags = h[4];
            let stream_id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            if input.len() - at < FRAME_HEADER_LEN + len {
                break;
            }
            let payload = &input[at + FRAME_HEADER_LEN..at + FRAME_HEADER_LEN + len];
            let frame = &input[at..at + FRAME_HEADER_LEN + len];
            at += FRAME_HEADER_LEN + len;
            match kind {
                TYPE_HEADERS => {
                    if self.pending.is_some() {
                        return Err(invalid("HEADERS while a header block is open"));
                    }
                    let mut body = payload;
                    if flags & FLAG_PADDED != 0 {
                        let pad = usize::from(
                            *body.first().ok_or_else(|| invalid("empty padded frame"))?,
                        );
                        if pad + 1 > body.len() {
                            return Err(invalid("padding longer than the frame"));
                        }
                        body = &body[1..body.len() - pad];
                    }
                    let mut priority = None;
                    if flags & FLAG_PRIORITY != 0 {
                        if body.len() < 5 {
                            return Err(invalid("short priority block"));
                        }
                        let mut p = [0u8; 5];
                        p.copy_from_slice(&body[..5]);
                        priority = Some(p);
                        body = &body[5..];
                    }
                    let block = PendingBlock {
                        stream_id,
                        flags,
                        priority,
                        block: body.to_vec(),
                        raw: frame.to_vec(),
                    };
                    if flags & FLAG_END_HEADERS != 0 {
                        self.emit(block, out)?;
                    } else {
                        self.pending = Some(block);
                    }
                }
                TYPE_CONTINUATION if self.pending.is_none() => {
                    return Err(invalid("CONTINUATION without HEADERS"));
                }
                TYPE_CONTINUATION => {
                    let mut block = self
                        .pending
                        .take()
                        .ok_or_else(|| invalid("CONTINUATION without HEADERS"))?;
                    if block.stream_id != stream_id {
                        return Err(invalid("CONTINUATION on another stream"));
                    }
                    block.block.extend_from_slice(payload);
                    block.raw.extend_from_slice(frame);
                    if flags & FLAG_END_HEADERS != 0 {
                        self.emit(block, out)?;
                    } else {
                        self.pending = Some(block);
                    }
                }
                _ => {
                    if self.pending.is_some() {
                        return Err(invalid("frame interleaved with a header block"));
                    }
                    out.extend_from_slice(frame);
                }
            }
            if self.mode == Mode::PassThrough {
                out.extend_from_slice(&input[at..]);
                return Ok(input.len());
            }
        }
        Ok(at)
    }

    fn emit(&mut self, block: PendingBlock, out: &mut Vec<u8>) -> io::Result<()> {
        let mut headers = self
            .decoder
            .decode(&block.block)
            .map_err(|e| invalid(format!("undecodable header block: {e:?}")))?;
        let mut repaired = false;
        for (name, value) in headers.iter_mut() {
            if name.as_slice() == b":authority" {
                if let Some(fixed) = repair_authority(value) {
                    *value = fixed;
                    repaired = true;
                }
            }
        }
        if self.mode == Mode::Probe {
            if !repaired {
                // The server has seen nothing from this client's encoder yet, so forwarding the
                // original frames keeps both HPACK tables in step; no need to look again.
                self.mode = Mode::PassThrough;
                out.extend_from_slice(&block.raw);
                return Ok(());
            }
            self.mode = Mode::Repair;
        }
        let encoded = self
            .encoder
            .encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        let prio_len = if block.priority.is_some() { 5 } else { 0 };
        let first_len = encoded.len().min(MAX_FRAME - prio_len);
        let (first, mut rest) = encoded.split_at(first_len);
        let mut flags = block.flags & (FLAG_END_STREAM | FLAG_PRIORITY);
        if rest.is_empty() {
            flags |= FLAG_END_HEADERS;
        }
        write_frame_header(
            out,
            prio_len + first.len(),
            TYPE_HEADERS,
            flags,
            block.stream_id,
        );
        if let Some(p) = block.priority {
            out.extend_from_slice(&p);
        }
        out.extend_from_slice(first);
        while !rest.is_empty() {
            let n = rest.len().min(MAX_FRAME);
            let (chunk, tail) = rest.split_at(n);
            let flags = if tail.is_empty() { FLAG_END_HEADERS } else { 0 };
            write_frame_header(out, chunk.len(), TYPE_CONTINUATION, flags, block.stream_id);
            out.extend_from_slice(chunk);
            rest = tail;
        }
        Ok(())
    }
}

fn write_frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream_id: u32) {
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
}

/// An accepted connection whose incoming HTTP/2 header blocks are repaired.
pub struct AuthorityFix<IO> {
    io: IO,
    rewriter: Rewriter,
    raw: Vec<u8>,
    raw_start: usize,
    out: Vec<u8>,
    out_start: usize,
    eof: bool,
    /// Scratch space for socket reads, kept to avoid zeroing a buffer on every read.
    chunk: Box<[u8]>,
    /// When false, reads pass straight through.
    enabled: bool,
}

impl<IO> AuthorityFix<IO> {
    /// Wraps `io`; with `enabled` false the wrapper only forwards.
    pub fn new(io: IO, enabled: bool) -> Self {
        AuthorityFix {
            io,
            rewriter: Rewriter::default(),
            raw: Vec::with_capacity(16 * 1024),
            raw_start: 0,
            out: Vec::with_capacity(16 * 1024),
            out_start: 0,
            eof: false,
            chunk: if enabled {
                vec![0u8; 32 * 1024].into_boxed_slice()
            } else {
                Box::default()
            },
            enabled,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for AuthorityFix<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.enabled {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        loop {
            if this.out_start < this.out.len() {
                let n = (this.out.len() - this.out_start).min(buf.remaining());
                buf.put_slice(&this.out[this.out_start..this.out_start + n]);
                this.out_start += n;
                if this.out_start == this.out.len() {
                    this.out.clear();
                    this.out_start = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if this.rewriter.mode() == Mode::PassThrough && this.raw_start == this.raw.len() {
                // Decided and drained: from here on the wrapper is a plain pipe.
                return Pin::new(&mut this.io).poll_read(cx, buf);
            }
            // Turn what has been read into output.
            if this.raw_start < this.raw.len() {
                let used = this
                    .rewriter
                    .process(&this.raw[this.raw_start..], &mut this.out)?;
                this.raw_start += used;
                if this.raw_start == this.raw.len() {
                    this.raw.clear();
                    this.raw_start = 0;
                }
                if !this.out.is_empty() {
                    continue;
                }
            }
            // Need more bytes from the connection.
            if this.raw_start > 0 {
                this.raw.drain(..this.raw_start);
                this.raw_start = 0;
            }
            let mut rb = ReadBuf::new(&mut this.chunk);
            match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    if rb.filled().is_empty() {
                        this.eof = true;
                        // An incomplete trailing frame is passed on for the server to judge.
                        this.out.extend_from_slice(&this.raw);
                        this.raw.clear();
                    } else {
                        this.raw.extend_from_slice(rb.filled());
                    }
                }
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for AuthorityFix<IO> {
    type ConnectInfo = IO::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame_header(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out
    }

    /// Splits the server-bound bytes back into (type, flags, stream, payload) frames.
    fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len = (usize::from(bytes[0]) << 16)
                | (usize::from(bytes[1]) << 8)
                | usize::from(bytes[2]);
            let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
            out.push((bytes[3], bytes[4], stream, bytes[9..9 + len].to_vec()));
            bytes = &bytes[9 + len..];
        }
        out
    }

    #[test]
    fn authorities_that_are_urls_become_host_and_port() {
        let cases: Vec<(&str, Option<&str>)> = vec![
            ("http://127.0.0.1:2379", Some("127.0.0.1:2379")),
            ("https://etcd.example:2379/", Some("etcd.example:2379")),
            ("127.0.0.1:2379", None),
            ("localhost", None),
        ];
        for (input, want) in cases {
            let got = repair_authority(input.as_bytes());
            assert_eq!(got.as_deref(), want.map(str::as_bytes), "{input}");
        }
    }

    #[test]
    fn header_blocks_are_repaired_and_other_frames_pass_unchanged() {
        let mut client = loona_hpack::Encoder::new();
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/etcdserverpb.Maintenance/Status"),
            (b":authority", b"http://127.0.0.1:2379"),
            (b"content-type", b"application/grpc"),
        ];
        let block = client.encode(headers.clone());
        let (a, b) = block.split_at(block.len() / 2);
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_PRIORITY,
            1,
            &[&[0, 0, 0, 0, 16][..], a].concat(),
        ));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, b));
        input.extend(frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0")); // DATA
                                                                     // A second request reuses the client's dynamic table.
        let again = client.encode(headers.clone());
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS | FLAG_PADDED,
            3,
            &[&[2][..], &again, &[0, 0]].concat(),
        ));

        // Feed it in awkward pieces, as a socket would.
        let mut rw = Rewriter::default();
        assert_eq!(rw.mode(), Mode::Probe);
        let mut out = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for piece in input.chunks(7) {
            pending.extend_from_slice(piece);
            let used = rw.process(&pending, &mut out).unwrap();
            pending.drain(..used);
        }
        assert!(pending.is_empty());
        assert_eq!(rw.mode(), Mode::Repair);
        assert_eq!(&out[..PREFACE.len()], PREFACE);
        let got = frames(&out[PREFACE.len()..]);
        assert_eq!(got.len(), 4);
        assert_eq!((got[0].0, got[0].3.len()), (0x4, 0));
        let mut server = loona_hpack::Decoder::new();
        let (kind, flags, stream, payload) = &got[1];
        assert_eq!(
            (*kind, *flags, *stream),
            (TYPE_HEADERS, FLAG_PRIORITY | FLAG_END_HEADERS, 1)
        );
        assert_eq!(&payload[..5], &[0, 0, 0, 0, 16]);
        let decoded = server.decode(&payload[5..]).unwrap();
        let authority = decoded.iter().find(|(n, _)| n == b":authority").unwrap();
        assert_eq!(authority.1, b"127.0.0.1:2379");
        assert_eq!(decoded.len(), headers.len());
        assert_eq!(got[2], (0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0".to_vec()));
        let (kind, flags, stream, payload) = &got[3];
        assert_eq!(
            (*kind, *flags, *stream),
            (TYPE_HEADERS, FLAG_END_HEADERS, 3)
        );
        let decoded = server.decode(payload).unwrap();
        assert_eq!(
            decoded.iter().find(|(n, _)| n == b":authority").unwrap().1,
            b"127.0.0.1:2379"
        );
    }

    #[test]
    fn large_header_blocks_are_split_into_continuations() {
        let big = vec![b'x'; 40_000];
        let mut client = loona_hpack::Encoder::new();
        let block = client.encode(vec![
            (&b":authority"[..], &b"h:1"[..]),
            (&b"x-big"[..], &big[..]),
        ]);
        let mut input = PREFACE.to_vec();
        for (i, chunk) in block.chunks(MAX_FRAME).enumerate() {
            let last = (i + 1) * MAX_FRAME >= block.len();
            let kind = if i == 0 {
                TYPE_HEADERS
            } else {
                TYPE_CONTINUATION
            };
            input.extend(frame(
                kind,
                if last { FLAG_END_HEADERS } else { 0 },
                5,
                chunk,
            ));
        }
        let mut out = Vec::new();
        assert_eq!(
            Rewriter::default().process(&input, &mut out).unwrap(),
            input.len()
        );
        let got = frames(&out[PREFACE.len()..]);
        assert!(got.len() >= 3);
        assert!(got.iter().all(|f| f.3.len() <= MAX_FRAME));
        assert_eq!(got.last().unwrap().1 & FLAG_END_HEADERS, FLAG_END_HEADERS);
        let joined: Vec<u8> = got.iter().flat_map(|f| f.3.clone()).collect();
        let decoded = loona_hpack::Decoder::new().decode(&joined).unwrap();
        assert_eq!(decoded[1].1.len(), 40_000);
    }

    #[test]
    fn a_connection_with_a_proper_authority_passes_through_unchanged() {
        let mut client = loona_hpack::Encoder::new();
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":path", b"/etcdserverpb.KV/Put"),
            (b":authority", b"127.0.0.1:2379"),
        ];
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[]));
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            1,
            &client.encode(headers.clone()),
        ));
        input.extend(frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0"));
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            3,
            &client.encode(headers),
        ));
        input.extend(b"\0\0"); // the start of a frame still in flight
        let mut rw = Rewriter::default();
        let mut out = Vec::new();
        let used = rw.process(&input, &mut out).unwrap();
        assert_eq!(rw.mode(), Mode::PassThrough);
        assert_eq!(used, input.len());
        assert_eq!(out, input);
    }

    proptest::proptest! {
        /// However the socket splits the bytes, the server sees the same stream.
        #[test]
        fn output_does_not_depend_on_how_input_is_split(
            cuts in proptest::collection::vec(1usize..64, 1..40),
            repair in proptest::bool::ANY,
        ) {
            let authority: &[u8] = if repair { b"http://127.0.0.1:2379" } else { b"127.0.0.1:2379" };
            let mut client = loona_hpack::Encoder::new();
            let mut input = PREFACE.to_vec();
            input.extend(frame(0x4, 0, 0, &[]));
            for stream in [1u32, 3, 5] {
                let path = format!("/etcdserverpb.KV/Range{stream}");
                let block = client.encode(vec![
                    (&b":method"[..], &b"POST"[..]),
                    (&b":path"[..], path.as_bytes()),
                    (&b":authority"[..], authority),
                ]);
                input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, stream, &block));
                input.extend(frame(0x0, FLAG_END_STREAM, stream, b"\0\0\0\0\0"));
            }
            let mut whole = Vec::new();
            let used = Rewriter::default().process(&input, &mut whole).unwrap();
            proptest::prop_assert_eq!(used, input.len());

            let mut rw = Rewriter::default();
            let mut pieces = Vec::new();
            let mut pending: Vec<u8> = Vec::new();
            let mut at = 0;
            for cut in cuts.iter().cycle() {
                if at >= input.len() {
                    break;
                }
                let next = (at + cut).min(input.len());
                pending.extend_from_slice(&input[at..next]);
                at = next;
                let used = rw.process(&pending, &mut pieces).unwrap();
                pending.drain(..used);
            }
            proptest::prop_assert!(pending.is_empty());
            proptest::prop_assert_eq!(pieces, whole);
            proptest::prop_assert_eq!(rw.mode(), if repair { Mode::Repair } else { Mode::PassThrough });
        }
    }

    #[test]
    fn a_continuation_without_headers_is_an_error() {
        let mut input = PREFACE.to_vec();
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, b"x"));
        assert!(Rewriter::default()
            .process(&input, &mut Vec::new())
            .is_err());
    }
}
