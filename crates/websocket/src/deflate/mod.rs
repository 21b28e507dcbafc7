//! permessage-deflate (RFC 7692): the settings, the handshake's
//! negotiation, and the two codecs that compress what the application
//! sends and inflate what the client sends.
//!
//! The codecs sit beneath tungstenite as an IO layer
//! ([`WebSocketIo`](super::WebSocketIo)): inbound, a compressed message is
//! inflated as it arrives and handed on as ordinary frames of at most
//! 16 KiB, so tungstenite's message and frame limits bound what a small
//! compressed message can grow to; outbound, each data frame tungstenite
//! writes is compressed and marked with RSV1. Control frames and
//! uncompressed messages pass through untouched.

mod compress;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod inflate;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod testing;

pub(crate) use compress::Deflater;
pub(crate) use inflate::Inflater;

use bytes::{BufMut, BytesMut};
use http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// permessage-deflate settings for WebSocket connections
/// ([`WebSocketUpgrade::deflate`](super::WebSocketUpgrade::deflate)).
///
/// Compression is on by default: a client that offers permessage-deflate
/// (every browser does) gets it. What one connection holds for it is
/// bounded and independent of message sizes. With the defaults, the
/// server compresses every message afresh with its thread's shared
/// compressor, so a connection holds no compressor of its own, only the
/// decompressor of what the client sends (about 30 KiB, made on the first
/// compressed message). Keeping the server's context across messages
/// (`server_no_context_takeover = false`) compresses streams of similar
/// messages better but gives each connection its own compressor, about
/// 310 KiB at window 15 (180 KiB at 9). `client_no_context_takeover`
/// frees the decompressor after every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateOptions {
    /// zlib's compression level, 0 (stored, no compression) to 9.
    /// Default: 1, the fastest level, which on text and JSON keeps most of
    /// level 6's ratio at a fraction of its CPU.
    pub level: u32,
    /// The largest window (in bits, 9 to 15) the server compresses with;
    /// a client's smaller `server_max_window_bits` wins. Default: 15
    /// (32 KiB). A client asking for 8, which zlib cannot compress with, is
    /// answered with stored blocks, which need no window.
    pub server_max_window_bits: u8,
    /// Whether the server starts every message with an empty compression
    /// context (also when the client asks for it), compressing with a
    /// compressor shared by the connections of a runtime thread. Default:
    /// `true`: no compressor per connection. `false` carries the context
    /// across messages, which compresses streams of similar small
    /// messages better, at about 310 KiB per connection.
    pub server_no_context_takeover: bool,
    /// Whether the server asks the client to start every message with an
    /// empty context, which lets the server free its decompressor between
    /// messages. Default: `false`.
    pub client_no_context_takeover: bool,
    /// Messages shorter than this many bytes are sent uncompressed, as
    /// RFC 7692 allows per message. Default: 0, every message compressed:
    /// some clients mishandle an uncompressed message once compression is
    /// agreed, and deflate's few bytes of framing cost little.
    pub min_size: usize,
}

impl Default for DeflateOptions {
    fn default() -> Self {
        Self {
            level: 1,
            server_max_window_bits: 15,
            server_no_context_takeover: true,
            client_no_context_takeover: false,
            min_size: 0,
        }
    }
}

kite_transport_core::option_setters!(DeflateOptions {
    level: u32,
    server_max_window_bits: u8,
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    min_size: usize,
});

/// What a connection's codecs run with: the parameters both sides agreed
/// on, the server's own level and threshold, and the response's
/// `Sec-WebSocket-Extensions` value that states the agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Agreed {
    /// The window the server compresses with; 8 means stored blocks.
    pub server_window_bits: u8,
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// [`DeflateOptions::level`].
    pub level: u32,
    /// [`DeflateOptions::min_size`].
    pub min_size: usize,
    pub response: HeaderValue,
}

impl Agreed {
    /// An agreement without negotiation, for a server window and context
    /// mode, the rest from `options`: what the tests and the fuzz target
    /// run the codecs with.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn fixed(window_bits: u8, server_no_context_takeover: bool, options: &DeflateOptions) -> Self {
        Agreed {
            server_window_bits: window_bits,
            server_no_context_takeover,
            client_no_context_takeover: false,
            level: options.level,
            min_size: options.min_size,
            response: HeaderValue::from_static("permessage-deflate"),
        }
    }
}

/// RFC 7692 §7.2.1: the empty stored block a sync flush ends with, which
/// the sender leaves off each message and the receiver appends back.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Appends a frame header for a payload of `length` bytes to `out`.
fn put_header(out: &mut BytesMut, header: &FrameHeader, length: usize) {
    header.format(length as u64, &mut (&mut *out).writer()).expect("writing into memory cannot fail");
}

/// One permessage-deflate offer's parameters, each allowed once.
#[derive(Debug, Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<Option<u8>>,
}

/// Accepts the first permessage-deflate offer among the request's
/// `Sec-WebSocket-Extensions` values that is well formed (RFC 7692 §7.1:
/// known parameters, each once, window sizes 8 to 15). `None` when there
/// is none: the WebSocket then runs uncompressed.
pub(crate) fn negotiate<'a>(
    headers: impl IntoIterator<Item = &'a HeaderValue>,
    options: &DeflateOptions,
) -> Option<Agreed> {
    let offer = headers
        .into_iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(parse_offer)?;
    let server_window_bits =
        offer.server_max_window_bits.unwrap_or(15).min(options.server_max_window_bits.clamp(9, 15));
    let server_no_context_takeover = offer.server_no_context_takeover || options.server_no_context_takeover;
    let client_no_context_takeover = offer.client_no_context_takeover || options.client_no_context_takeover;
    let mut response = String::from("permessage-deflate");
    if server_no_context_takeover {
        response.push_str("; server_no_context_takeover");
    }
    if client_no_context_takeover {
        response.push_str("; client_no_context_takeover");
    }
    if offer.server_max_window_bits.is_some() {
        response.push_str(&format!("; server_max_window_bits={server_window_bits}"));
    }
    Some(Agreed {
        server_window_bits,
        server_no_context_takeover,
        client_no_context_takeover,
        level: options.level,
        min_size: options.min_size,
        response: HeaderValue::from_str(&response).ok()?,
    })
}

/// Parses one offer (`permessage-deflate; param[=value]; ...`); `None`
/// for another extension or a malformed offer, which is declined.
fn parse_offer(text: &str) -> Option<Offer> {
    let mut parts = text.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut offer = Offer::default();
    for part in parts {
        let (name, value) = match part.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (part, None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("server_no_context_takeover", None) if !offer.server_no_context_takeover => {
                offer.server_no_context_takeover = true;
            }
            ("client_no_context_takeover", None) if !offer.client_no_context_takeover => {
                offer.client_no_context_takeover = true;
            }
            ("server_max_window_bits", Some(bits)) if offer.server_max_window_bits.is_none() => {
                offer.server_max_window_bits = Some(window_bits(bits)?);
            }
            ("client_max_window_bits", bits) if offer.client_max_window_bits.is_none() => {
                let bits = match bits {
                    Some(bits) => Some(window_bits(bits)?),
                    None => None,
                };
                offer.client_max_window_bits = Some(bits);
            }
            _ => return None,
        }
    }
    Some(offer)
}

/// A window size parameter: 8 to 15, digits only (RFC 7692 §7.1.2).
fn window_bits(text: &str) -> Option<u8> {
    if text.is_empty() || text.len() > 2 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|bits| (8..=15).contains(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agree(offers: &[&str]) -> Option<Agreed> {
        let values: Vec<HeaderValue> = offers.iter().map(|o| HeaderValue::from_str(o).unwrap()).collect();
        negotiate(&values, &DeflateOptions::default())
    }

    #[test]
    fn a_browser_offer_is_accepted_with_the_server_s_context_reset() {
        let agreed = agree(&["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(agreed.response, "permessage-deflate; server_no_context_takeover");
        assert_eq!(agreed.server_window_bits, 15);
        assert!(agreed.server_no_context_takeover && !agreed.client_no_context_takeover);
    }

    #[test]
    fn the_offer_s_parameters_are_answered() {
        let agreed = agree(&[
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=\"10\"",
        ])
        .unwrap();
        assert_eq!(
            agreed.response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        );
        assert_eq!(agreed.server_window_bits, 10);
        assert_eq!(agree(&["permessage-deflate; server_max_window_bits=8"]).unwrap().server_window_bits, 8);
    }

    #[test]
    fn malformed_offers_are_declined_and_the_next_one_taken() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=x",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; unknown",
            "x-webkit-deflate-frame",
        ] {
            assert!(agree(&[bad]).is_none(), "{bad}");
        }
        let agreed = agree(&["permessage-deflate; unknown, permessage-deflate; client_no_context_takeover"]).unwrap();
        assert_eq!(agreed.response, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        let agreed = agree(&["foo", "permessage-deflate"]).unwrap();
        assert_eq!(agreed.response, "permessage-deflate; server_no_context_takeover");
    }

    #[test]
    fn the_server_s_own_limits_apply() {
        let options =
            DeflateOptions { server_max_window_bits: 11, server_no_context_takeover: true, ..Default::default() };
        let value = HeaderValue::from_static("permessage-deflate; server_max_window_bits=13");
        let agreed = negotiate([&value], &options).unwrap();
        assert_eq!(agreed.server_window_bits, 11);
        assert_eq!(agreed.response, "permessage-deflate; server_no_context_takeover; server_max_window_bits=11");
    }
}
