//! Reading a PROXY protocol header off a connection: exactly its bytes and
//! never more, so what follows (a TLS ClientHello, an HTTP request) stays
//! in the stream. Parsing is the `ppp` crate's.

use std::net::SocketAddr;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature: 12 bytes no HTTP or TLS stream starts with.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 signature.
const V1_SIGNATURE: &[u8] = b"PROXY ";
/// The longest v1 header, CRLF included.
pub const V1_MAX: usize = 107;
/// The longest v2 header Kite accepts: 16 bytes, then addresses and TLVs.
pub const V2_MAX: usize = 536;

/// What a header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// PROXY (v1 TCP4/TCP6, v2 PROXY over IPv4/IPv6): the client's and the
    /// proxy's addresses, and v2's TLVs.
    Proxied { source: SocketAddr, destination: SocketAddr, tlvs: Vec<(u8, Vec<u8>)> },
    /// v1 UNKNOWN, v2 LOCAL or another family: keep the connection's own
    /// addresses.
    Local { tlvs: Vec<(u8, Vec<u8>)> },
}

/// How reading a header went.
#[derive(Debug)]
pub(crate) enum Read {
    /// A header, parsed.
    Header(Header),
    /// No signature: the bytes read, to replay.
    Absent(Bytes),
}

/// Reads a header, or the first bytes that show there is none.
///
/// # Errors
///
/// A malformed, truncated or oversized header, with why.
pub(crate) async fn read<R: AsyncRead + Unpin>(io: &mut R) -> Result<Read, String> {
    // Enough to tell v1 from v2 from neither: "PROXY " is 6 bytes and no
    // v1 header is shorter than 15, so 12 bytes never read past a header.
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        let n = io.read(&mut head[got..]).await.map_err(|e| format!("reading the header: {e}"))?;
        if n == 0 {
            if got == 0 {
                return Ok(Read::Absent(Bytes::new()));
            }
            let prefix = &head[..got];
            if V2_SIGNATURE.starts_with(prefix) || V1_SIGNATURE.starts_with(&prefix[..got.min(6)]) {
                return Err(format!("the connection closed inside a PROXY header ({got} bytes)"));
            }
            return Ok(Read::Absent(Bytes::copy_from_slice(prefix)));
        }
        got += n;
        // Stop early on a stream that is plainly not a header.
        let prefix = &head[..got];
        if !V2_SIGNATURE.starts_with(&prefix[..got.min(12)]) && !V1_SIGNATURE.starts_with(&prefix[..got.min(6)]) {
            return Ok(Read::Absent(Bytes::copy_from_slice(prefix)));
        }
    }
    if head == V2_SIGNATURE {
        read_v2(io).await
    } else {
        read_v1(io, &head).await
    }
}

async fn read_v2<R: AsyncRead + Unpin>(io: &mut R) -> Result<Read, String> {
    let mut header = V2_SIGNATURE.to_vec();
    let mut fixed = [0u8; 4];
    io.read_exact(&mut fixed).await.map_err(|e| format!("a truncated v2 header: {e}"))?;
    header.extend_from_slice(&fixed);
    let length = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
    if 16 + length > V2_MAX {
        return Err(format!("a v2 header of {} bytes, over {V2_MAX}", 16 + length));
    }
    let start = header.len();
    header.resize(start + length, 0);
    io.read_exact(&mut header[start..]).await.map_err(|e| format!("a truncated v2 header: {e}"))?;
    let parsed = ppp::v2::Header::try_from(header.as_slice()).map_err(|e| format!("a malformed v2 header: {e}"))?;
    let tlvs: Vec<(u8, Vec<u8>)> = parsed.tlvs().filter_map(Result::ok).map(|t| (t.kind, t.value.to_vec())).collect();
    if parsed.command == ppp::v2::Command::Local {
        return Ok(Read::Header(Header::Local { tlvs }));
    }
    Ok(Read::Header(match parsed.addresses {
        ppp::v2::Addresses::IPv4(a) => Header::Proxied {
            source: SocketAddr::from((a.source_address, a.source_port)),
            destination: SocketAddr::from((a.destination_address, a.destination_port)),
            tlvs,
        },
        ppp::v2::Addresses::IPv6(a) => Header::Proxied {
            source: SocketAddr::from((a.source_address, a.source_port)),
            destination: SocketAddr::from((a.destination_address, a.destination_port)),
            tlvs,
        },
        _ => Header::Local { tlvs },
    }))
}

async fn read_v1<R: AsyncRead + Unpin>(io: &mut R, head: &[u8]) -> Result<Read, String> {
    // A byte at a time up to CRLF: the header's end is not known before.
    let mut header = head.to_vec();
    let mut byte = [0u8; 1];
    while !header.ends_with(b"\r\n") {
        if header.len() >= V1_MAX {
            return Err(format!("a v1 header without CRLF in its first {V1_MAX} bytes"));
        }
        io.read_exact(&mut byte).await.map_err(|e| format!("a truncated v1 header: {e}"))?;
        header.push(byte[0]);
    }
    // v1 is ASCII; ppp slices the text by byte offsets, so a multi-byte
    // character must never reach it.
    if !header.is_ascii() {
        return Err("a v1 header that is not ASCII".to_string());
    }
    let text = std::str::from_utf8(&header).map_err(|_| "a v1 header that is not ASCII".to_string())?;
    let parsed = ppp::v1::Header::try_from(text).map_err(|e| format!("a malformed v1 header: {e}"))?;
    Ok(Read::Header(match parsed.addresses {
        ppp::v1::Addresses::Tcp4(a) => Header::Proxied {
            source: SocketAddr::from((a.source_address, a.source_port)),
            destination: SocketAddr::from((a.destination_address, a.destination_port)),
            tlvs: Vec::new(),
        },
        ppp::v1::Addresses::Tcp6(a) => Header::Proxied {
            source: SocketAddr::from((a.source_address, a.source_port)),
            destination: SocketAddr::from((a.destination_address, a.destination_port)),
            tlvs: Vec::new(),
        },
        ppp::v1::Addresses::Unknown => Header::Local { tlvs: Vec::new() },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> (Result<Read, String>, Vec<u8>) {
        let mut io = bytes;
        let read = read(&mut io).await;
        (read, io.to_vec())
    }

    #[tokio::test]
    async fn v1_is_read_to_its_crlf_and_no_further() {
        let (read, rest) = parse(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n").await;
        let Ok(Read::Header(Header::Proxied { source, destination, .. })) = read else { panic!("{read:?}") };
        assert_eq!(source, "192.0.2.1:56324".parse().unwrap());
        assert_eq!(destination, "198.51.100.2:443".parse().unwrap());
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (read, rest) = parse(b"PROXY UNKNOWN\r\nxyz").await;
        assert!(matches!(read, Ok(Read::Header(Header::Local { .. }))), "{read:?}");
        assert_eq!(rest, b"xyz");
    }

    #[tokio::test]
    async fn no_signature_gives_back_what_was_read() {
        let (read, rest) = parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let Ok(Read::Absent(prefix)) = read else { panic!("{read:?}") };
        assert_eq!([&prefix[..], &rest[..]].concat(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let (read, _) = parse(b"").await;
        assert!(matches!(read, Ok(Read::Absent(p)) if p.is_empty()));
    }

    #[tokio::test]
    async fn bad_headers_are_refused_with_a_reason() {
        for (bytes, why) in [
            (&b"PROXY TCP4 not an address\r\n"[..], "malformed"),
            (b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443", "truncated"),
            (b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x01\x02", "truncated"),
            (b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x02\x10", "over 536"),
            (b"\r\n\r\n\0\r\nQUIT\n\x99\x11\x00\x00", "malformed"),
            (b"\r\n\r\n\0\r\nQU", "closed inside"),
            // Found by the fuzz target: ppp panicked on a character that
            // spans its byte offsets.
            ("PROXY V\u{580}YqV\r\n".as_bytes(), "not ASCII"),
        ] {
            let (read, _) = parse(bytes).await;
            let error = read.expect_err("refused");
            assert!(error.contains(why), "{error} should say {why}");
        }
        let long = [&b"PROXY TCP4 "[..], &[b'1'; 120]].concat();
        assert!(parse(&long).await.0.unwrap_err().contains("without CRLF"));
    }
}
