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
//! While it collects a header block it holds at most [`MAX_HEADER_BLOCK`] bytes of it, and it
//! never buffers a frame longer than [`MAX_FRAME`] (the server's `SETTINGS_MAX_FRAME_SIZE`). A
//! peer that goes past either is cut off: the filter hands the HTTP/2 server a few frames that
//! make it answer with GOAWAY (`ENHANCE_YOUR_CALM` for a header block, `FRAME_SIZE_ERROR` for a
//! frame, or `PROTOCOL_ERROR` if the peer skipped its SETTINGS), logs why, and ends the
//! connection. Once the connection passes through, the server's own limits apply.
//!
//! The frame handling is pure ([`Rewriter::process`]); the `AsyncRead` impl only moves bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
/// The largest frame the server accepts (HTTP/2's default `SETTINGS_MAX_FRAME_SIZE`, which
/// the store endpoint keeps).
pub const MAX_FRAME: usize = 16_384;
/// Most bytes of one header block (HEADERS and its CONTINUATIONs, as received) the filter
/// collects before it cuts the connection off.
pub const MAX_HEADER_BLOCK: usize = 1024 * 1024;
/// Empty CONTINUATION frames sent to the server after a refused header block: more than the
/// server's CONTINUATION-flood limit, so it answers with GOAWAY `ENHANCE_YOUR_CALM`.
const FLOOD_FRAMES: usize = 64;

const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const TYPE_PING: u8 = 0x6;
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

/// Why a connection was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A header block went past [`MAX_HEADER_BLOCK`] bytes.
    HeaderBlockTooLarge,
    /// A frame announced more than [`MAX_FRAME`] bytes; `len` is what it announced.
    FrameTooLarge { len: usize },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::HeaderBlockTooLarge => write!(
                f,
                "header block larger than the limit of {MAX_HEADER_BLOCK} bytes"
            ),
            Refusal::FrameTooLarge { len } => write!(
                f,
                "frame of {len} bytes, larger than the limit of {MAX_FRAME} bytes"
            ),
        }
    }
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
    /// A limit was exceeded; nothing more is read ([`Rewriter::refused`]).
    Refused(Refusal),
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

    /// Why the connection was cut off, if it was.
    pub fn refused(&self) -> Option<Refusal> {
        match self.mode {
            Mode::Refused(why) => Some(why),
            _ => None,
        }
    }

    /// Cuts the connection off: `out` gets frames that make the server answer with GOAWAY
    /// (see the module comment); everything else from the peer is dropped.
    fn refuse(&mut self, why: Refusal, frame_header: &[u8], out: &mut Vec<u8>) {
        match why {
            Refusal::FrameTooLarge { .. } => out.extend_from_slice(frame_header),
            Refusal::HeaderBlockTooLarge => {
                let stream_id = self.pending.as_ref().map_or(1, |b| b.stream_id);
                write_frame_header(out, 0, TYPE_HEADERS, 0, stream_id);
                for _ in 0..FLOOD_FRAMES {
                    write_frame_header(out, 0, TYPE_CONTINUATION, 0, stream_id);
                }
                // Should the server not count CONTINUATIONs, this ends the block wrongly.
                write_frame_header(out, 8, TYPE_PING, 0, 0);
                out.extend_from_slice(&[0; 8]);
            }
        }
        self.pending = None;
        self.mode = Mode::Refused(why);
    }

    /// Consumes as many complete frames from `input` as there are, appending the bytes the
    /// server should see to `out`; returns how many input bytes were consumed.
    pub fn process(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        match self.mode {
            Mode::PassThrough => {
                out.extend_from_slice(input);
                return Ok(input.len());
            }
            Mode::Refused(_) => return Ok(input.len()),
            Mode::Probe | Mode::Repair => {}
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
            if len > MAX_FRAME {
                self.refuse(Refusal::FrameTooLarge { len }, h, out);
                return Ok(input.len());
            }
            let held = self.pending.as_ref().map_or(0, |b| b.raw.len());
            if matches!(kind, TYPE_HEADERS | TYPE_CONTINUATION)
                && held + FRAME_HEADER_LEN + len > MAX_HEADER_BLOCK
            {
                self.refuse(Refusal::HeaderBlockTooLarge, h, out);
                return Ok(input.len());
            }
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
    /// The peer, named in the log line when the connection is cut off.
    peer: Option<std::net::SocketAddr>,
    /// Whether the cut-off was logged already.
    logged: bool,
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
            peer: None,
            logged: false,
        }
    }

    /// Names the peer in the log line written when the connection is cut off.
    pub fn with_peer(mut self, peer: std::net::SocketAddr) -> Self {
        self.peer = Some(peer);
        self
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
            if let Some(why) = this.rewriter.refused() {
                // The server has read the frames that make it send GOAWAY; end the connection.
                if !std::mem::replace(&mut this.logged, true) {
                    tracing::warn!(peer = ?this.peer, "closing a store connection: {why}");
                }
                return Poll::Ready(Err(invalid(format!("connection cut off: {why}"))));
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

/// The peer's address, as far as it is known ([`AuthorityFix::with_peer`]).
impl<IO> Connected for AuthorityFix<IO> {
    type ConnectInfo = Option<std::net::SocketAddr>;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer
    }
}

#[cfg(test)]
mod tests;
