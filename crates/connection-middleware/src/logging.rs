//! Connection logging: every read and write as a hex dump.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use kite_transport_core::{Connection, ConnectionId, ConnectionIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{ConnectionError, ConnectionMiddleware, Next};

/// The `tracing` target of connection-logging events.
pub const LOG_TARGET: &str = "kite::connection_logging";

/// Logs every read and write of the connection at debug level as a hex dump
/// (Kestrel's `UseConnectionLogging`).
///
/// Each event's message is `ReadAsync[n]` or `WriteAsync[n]` followed by
/// the bytes, 16 a line: `XX ` per byte with an extra space after the
/// eighth, then the bytes as ASCII (`.` for anything not printable). Its
/// position in the chain decides what it sees: before TLS it logs
/// ciphertext, after TLS plaintext. Nothing is formatted unless debug events
/// for [`LOG_TARGET`] are enabled.
#[derive(Clone, Debug)]
pub struct ConnectionLogging {
    name: Cow<'static, str>,
}

impl Default for ConnectionLogging {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectionLogging {
    /// Logging under the default logger name, `kite.connection`.
    pub fn new() -> Self {
        Self { name: Cow::Borrowed("kite.connection") }
    }

    /// Logging under `name`, given as the `logger` field of each event, to
    /// tell two logging positions apart. Default: `kite.connection`.
    pub fn with_name(name: impl Into<Cow<'static, str>>) -> Self {
        Self { name: name.into() }
    }
}

#[async_trait]
impl ConnectionMiddleware for ConnectionLogging {
    async fn on_connection(&self, connection: Connection, next: Next) -> Result<(), ConnectionError> {
        let id = connection.context().id();
        let name = self.name.clone();
        let connection = connection.map_io(move |inner| Box::new(LoggingStream { inner, id, name }));
        next.run(connection).await
    }
}

struct LoggingStream {
    inner: Box<dyn ConnectionIo>,
    id: ConnectionId,
    name: Cow<'static, str>,
}

impl LoggingStream {
    fn log(&self, method: &str, bytes: &[u8]) {
        if tracing::enabled!(target: LOG_TARGET, tracing::Level::DEBUG) {
            let dump = hex_dump(method, bytes);
            tracing::debug!(target: LOG_TARGET, connection_id = %self.id, logger = %self.name, "{dump}");
        }
    }
}

/// Formats `bytes` as Kestrel's `LoggingStream` does.
pub(crate) fn hex_dump(method: &str, bytes: &[u8]) -> String {
    let mut out = String::with_capacity(method.len() + 8 + bytes.len() * 4 + bytes.len() / 16 * 4);
    let _ = write!(out, "{method}[{}]", bytes.len());
    for line in bytes.chunks(16) {
        out.push('\n');
        for (i, b) in line.iter().enumerate() {
            let _ = write!(out, "{b:02X} ");
            if i == 7 {
                out.push(' ');
            }
        }
        // Pad a short last line so the ASCII column lines up.
        for i in line.len()..16 {
            out.push_str("   ");
            if i == 7 {
                out.push(' ');
            }
        }
        out.push(' ');
        for (i, &b) in line.iter().enumerate() {
            out.push(if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' });
            if i == 7 {
                out.push(' ');
            }
        }
    }
    out
}

impl AsyncRead for LoggingStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            self.log("ReadAsync", &buf.filled()[before..]);
        }
        result
    }
}

impl AsyncWrite for LoggingStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            self.log("WriteAsync", &buf[..n]);
        }
        result
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl ConnectionIo for LoggingStream {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_read_ready(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::hex_dump;

    #[test]
    fn dump_matches_kestrel_layout() {
        let dump = hex_dump("ReadAsync", b"GET / HTTP/1.1\r\nHost: a\r\n");
        let lines: Vec<&str> = dump.lines().collect();
        assert_eq!(lines[0], "ReadAsync[25]");
        assert_eq!(lines[1], "47 45 54 20 2F 20 48 54  54 50 2F 31 2E 31 0D 0A  GET / HT TP/1.1..");
        assert_eq!(lines[2], "48 6F 73 74 3A 20 61 0D  0A                       Host: a. .");
        assert_eq!(hex_dump("WriteAsync", b""), "WriteAsync[0]");
    }
}
