//! Writing a response: its head (held back while the body it depends on
//! arrives), its body in the connection's framing, and its trailers.

use std::future::poll_fn;
use std::io;
use std::pin::pin;
use std::task::{ready, Poll};

use bytes::{Buf, Bytes};
use http::{Response, StatusCode, Version};
use http_body::Body;

use super::H1Connection;
use crate::h1::encode::{self, Framing, HeadOptions, HeaderFacts};
use crate::h1::feed::BodyFeeder;
use crate::panic;
use crate::{BoxError, Error, RequestBody, RequestRejection};

/// A body chunk at least this long is written straight from the
/// application's buffer, behind what is gathered (one vectored write),
/// instead of being copied into the connection's write buffer.
const WRITE_THROUGH: usize = 16 * 1024;

impl<S, B> H1Connection<'_, S>
where
    S: tower_service::Service<http::Request<RequestBody>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    /// Writes the response and streams its body, feeding the request body
    /// meanwhile (an echo reads one while writing the other). Returns
    /// whether the connection stays open, or `Error::Rejected` with
    /// nothing written when the request body was refused before the head
    /// left.
    ///
    /// While the application reads a request body that is still arriving,
    /// the response head is held back until the response body yields its
    /// first frame or ends: until then `100 Continue` can still go first,
    /// and a refused body (`413`, or `408` for MinRequestBodyDataRate)
    /// still gets its own status instead of a response cut short.
    pub(super) async fn write_response(
        &mut self,
        response: Response<B>,
        is_head: bool,
        version: Version,
        mut keep_alive: bool,
        feeder: &mut Option<BodyFeeder>,
    ) -> Result<bool, Error> {
        let (parts, body) = response.into_parts();
        let facts = HeaderFacts::of(&parts.headers);
        let (framing, framing_header) =
            encode::framing(parts.status, is_head, &facts, &body.size_hint(), body.is_end_stream(), version);
        keep_alive &= framing != Framing::CloseDelimited && !facts.close;
        let mut head = HeldHead { parts: None, facts, framing_header, version };
        if framing != Framing::None && feeder.as_ref().is_some_and(|f| !f.finished) {
            // Boxed, so that only a held head costs the connection's future.
            head.parts = Some(Box::new(parts));
        } else {
            self.write_response_head(&parts, &head, &mut keep_alive, feeder);
            drop(parts);
        }
        if framing == Framing::None {
            return Ok(keep_alive);
        }

        let mut body = pin!(body);
        let mut written: u64 = 0;
        let mut trailers = None;
        // A large chunk being written through, not copied.
        let mut through: Option<Bytes> = None;
        let max_buffer = self.options.limits.max_response_buffer_size;
        let streamed = poll_fn(|cx| loop {
            if let Some(f) = feeder.as_mut() {
                self.poll_feed(cx, f);
                if let (true, Some(rejection)) = (head.is_held(), f.rejection) {
                    return Poll::Ready(Err(Stop::Rejected(rejection)));
                }
            }
            if let Some(chunk) = through.as_mut() {
                ready!(self.poll_write_through(cx, chunk)).map_err(Stop::Io)?;
                through = None;
                if framing == Framing::Chunked {
                    self.write_buf.extend_from_slice(b"\r\n");
                }
            }
            if self.write_buf.len() >= max_buffer {
                ready!(self.poll_flush(cx)).map_err(Stop::Io)?;
            }
            let polled = match panic::catch(|| body.as_mut().poll_frame(cx)) {
                Ok(polled) => polled,
                Err(panicked) => return Poll::Ready(Err(Stop::Failed(panicked))),
            };
            match polled {
                Poll::Ready(Some(Ok(frame))) => {
                    self.release_head(&mut head, &mut keep_alive, feeder);
                    match frame.into_data() {
                        Ok(mut data) => {
                            let len = data.remaining();
                            if len == 0 {
                                continue;
                            }
                            written += len as u64;
                            if let Framing::Length(declared) = framing {
                                if written > declared {
                                    return Poll::Ready(Err(Stop::Failed(
                                        format!("response body is longer than its content-length {declared}").into(),
                                    )));
                                }
                            }
                            if framing == Framing::Chunked {
                                encode::write_chunk_size(&mut self.write_buf, len);
                            }
                            if len >= WRITE_THROUGH {
                                // Free for `Bytes`, a copy for other buffers.
                                through = Some(data.copy_to_bytes(len));
                                continue;
                            }
                            put_buf(&mut self.write_buf, data);
                            if framing == Framing::Chunked {
                                self.write_buf.extend_from_slice(b"\r\n");
                            }
                        }
                        Err(frame) => {
                            if let Ok(map) = frame.into_trailers() {
                                trailers = Some(map);
                            }
                        }
                    }
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(Stop::Failed(error.into()))),
                Poll::Ready(None) => {
                    self.release_head(&mut head, &mut keep_alive, feeder);
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => {
                    // Body bytes for a response body that reads them: poll
                    // it again.
                    if feeder.as_mut().is_some_and(|f| self.poll_feed(cx, f)) {
                        continue;
                    }
                    // A body that waits on anything but the request body it
                    // is reading gets its head out now.
                    if head.is_held() && !feeder.as_ref().is_some_and(|f| f.shared.is_being_read()) {
                        self.release_head(&mut head, &mut keep_alive, feeder);
                    }
                    // The body waits on something: send what we have.
                    if !self.write_buf.is_empty() {
                        ready!(self.poll_flush(cx)).map_err(Stop::Io)?;
                    }
                    return Poll::Pending;
                }
            }
        })
        .await;

        match streamed {
            Ok(()) => {}
            Err(Stop::Io(e)) => return Err(Error::Io(e)),
            Err(stop) if head.is_held() => {
                // Nothing of the response was sent: answer with a status.
                if let Some(rejection) = feeder.as_ref().and_then(|f| f.rejection) {
                    // Answered by the caller, outside this larger future.
                    return Err(Error::Rejected(rejection));
                }
                if let Stop::Failed(error) = stop {
                    tracing::error!(
                        connection_id = %self.info.id(),
                        %error,
                        "the response body failed before its head was sent; sending 500"
                    );
                }
                self.write_empty(StatusCode::INTERNAL_SERVER_ERROR, None, false);
                return Ok(false);
            }
            // After the head, a failure can only abort the connection.
            Err(Stop::Rejected(rejection)) => {
                rejection.log(&self.info, "HTTP/1.x");
                return Err(Error::ResponseBody(rejection.to_string().into()));
            }
            Err(Stop::Failed(error)) => return Err(Error::ResponseBody(error)),
        }
        match framing {
            Framing::Chunked => encode::write_last_chunk(&mut self.write_buf, trailers.as_ref()),
            Framing::Length(declared) if written != declared => {
                return Err(Error::ResponseBody(
                    format!("response body ended after {written} of its content-length {declared} bytes").into(),
                ));
            }
            _ => {}
        }
        Ok(keep_alive)
    }

    /// Writes a held response head, if it is still held.
    fn release_head(&mut self, head: &mut HeldHead, keep_alive: &mut bool, feeder: &mut Option<BodyFeeder>) {
        if let Some(parts) = head.parts.take() {
            self.write_response_head(&parts, head, keep_alive, feeder);
        }
    }

    /// Writes the response head. A client still waiting for `100 Continue`
    /// then may never send the body, so the connection will not be reused.
    fn write_response_head(
        &mut self,
        parts: &http::response::Parts,
        head: &HeldHead,
        keep_alive: &mut bool,
        feeder: &mut Option<BodyFeeder>,
    ) {
        if let Some(f) = feeder.as_mut() {
            *keep_alive &= f.continue_settled();
            f.head_written = true;
        }
        let options = HeadOptions {
            keep_alive: *keep_alive,
            request_version: head.version,
            server_header: self.options.add_server_header,
        };
        encode::write_head(self.write_buf(), parts.status, &parts.headers, &head.facts, head.framing_header, &options);
    }
}

/// A response head and its framing; `parts` while it is held back.
struct HeldHead {
    parts: Option<Box<http::response::Parts>>,
    facts: HeaderFacts,
    framing_header: Option<encode::FramingHeader>,
    version: Version,
}

impl HeldHead {
    fn is_held(&self) -> bool {
        self.parts.is_some()
    }
}

/// Why streaming a response body stopped early.
enum Stop {
    /// The request body was refused while the application read it.
    Rejected(RequestRejection),
    /// The response body failed or panicked.
    Failed(BoxError),
    /// Writing to the client failed.
    Io(io::Error),
}

fn put_buf(dst: &mut Vec<u8>, mut data: impl Buf) {
    while data.has_remaining() {
        let chunk = data.chunk();
        dst.extend_from_slice(chunk);
        let n = chunk.len();
        data.advance(n);
    }
}
