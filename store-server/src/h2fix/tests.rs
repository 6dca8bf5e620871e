//! The rewriter's frame handling, fed as a socket would feed it, and its limits.

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
        let len =
            (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2]);
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
fn an_endless_first_header_block_is_cut_off_at_the_cap() {
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x4, 0, 0, &[]));
    input.extend(frame(TYPE_HEADERS, 0, 1, &[0x82; 100]));
    let chunk = vec![0x82u8; MAX_FRAME];
    let mut rw = Rewriter::default();
    let mut out = Vec::new();
    let mut fed = input.len();
    rw.process(&input, &mut out).unwrap();
    let mut refused_after = None;
    for _ in 0..200 {
        let piece = frame(TYPE_CONTINUATION, 0, 1, &chunk);
        fed += piece.len();
        assert_eq!(rw.process(&piece, &mut out).unwrap(), piece.len());
        if rw.refused().is_some() {
            refused_after.get_or_insert(fed);
        }
    }
    assert_eq!(rw.refused(), Some(Refusal::HeaderBlockTooLarge));
    let refused_after = refused_after.expect("refused");
    assert!(refused_after <= MAX_HEADER_BLOCK + 2 * (MAX_FRAME + FRAME_HEADER_LEN));
    // The server got the preface, SETTINGS, and the frames that make it send GOAWAY:
    // an open header block followed by more CONTINUATIONs than it allows, nothing else.
    let got = frames(&out[PREFACE.len()..]);
    assert_eq!(got[0].0, 0x4);
    assert_eq!((got[1].0, got[1].1, got[1].2), (TYPE_HEADERS, 0, 1));
    assert!(got[2..=FLOOD_FRAMES + 1]
        .iter()
        .all(|f| f.0 == TYPE_CONTINUATION && f.3.is_empty()));
    assert_eq!(got.last().unwrap().0, TYPE_PING);
    assert!(
        out.len() < 2 * MAX_FRAME,
        "nothing of the block was held or forwarded"
    );
}

#[test]
fn a_frame_longer_than_the_server_allows_is_refused_before_it_is_read() {
    let mut input = PREFACE.to_vec();
    input.extend_from_slice(&[0xff, 0xff, 0xff, TYPE_HEADERS, 0, 0, 0, 0, 1]);
    let mut rw = Rewriter::default();
    let mut out = Vec::new();
    assert_eq!(rw.process(&input, &mut out).unwrap(), input.len());
    assert_eq!(
        rw.refused(),
        Some(Refusal::FrameTooLarge { len: 0xff_ffff })
    );
    // The server sees the oversized frame header and answers FRAME_SIZE_ERROR itself.
    assert_eq!(&out[PREFACE.len()..], &input[PREFACE.len()..]);
    let more = vec![0u8; 4096];
    assert_eq!(rw.process(&more, &mut out).unwrap(), more.len());
    assert_eq!(out.len(), input.len(), "later bytes are dropped");
    assert!(Refusal::FrameTooLarge { len: 0xff_ffff }
        .to_string()
        .contains("limit of 16384 bytes"));
}

#[test]
fn a_continuation_without_headers_is_an_error() {
    let mut input = PREFACE.to_vec();
    input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, b"x"));
    assert!(Rewriter::default()
        .process(&input, &mut Vec::new())
        .is_err());
}
