//! A stream that replays bytes already read from it, and can count the
//! reads that bring bytes.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::ConnectionIo;
use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, ReadBuf};

/// Yields `prefix` first, then reads from `io`: after sniffing the first
/// bytes of a connection (the HTTP/2 preface, a PROXY protocol signature),
/// the next step sees them again. With a counter, each read that brings
/// bytes adds one to it, so the HTTP/2 pinger knows whether the client
/// sent anything.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use kite_transport_core::{PlainIo, Rewind};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let (io, mut peer) = tokio::io::duplex(64);
/// peer.write_all(b" world").await.unwrap();
/// drop(peer);
/// let mut rewound = Rewind::new(bytes::Bytes::from_static(b"hello"), Box::new(PlainIo(io)));
/// let mut all = String::new();
/// rewound.read_to_string(&mut all).await.unwrap();
/// assert_eq!(all, "hello world");
/// # });
/// ```
pub struct Rewind {
    prefix: Bytes,
    io: Box<dyn ConnectionIo>,
    reads: Option<Arc<AtomicU64>>,
}

impl Rewind {
    /// A stream that yields `prefix`, then what `io` reads.
    pub fn new(prefix: Bytes, io: Box<dyn ConnectionIo>) -> Self {
        Self { prefix, io, reads: None }
    }

    /// Counts, from now on, the reads that bring bytes into the returned
    /// counter.
    pub fn count_reads(&mut self) -> Arc<AtomicU64> {
        let reads = Arc::new(AtomicU64::new(0));
        self.reads = Some(Arc::clone(&reads));
        reads
    }
}

impl AsyncRead for Rewind {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Some(reads) = &self.reads {
            if buf.filled().len() > before {
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }
}

crate::delegate_async_write!(Rewind, io);

impl ConnectionIo for Rewind {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            return Poll::Ready(Ok(()));
        }
        self.io.poll_read_ready(cx)
    }
}
