//! HTTP/2 keep-alive pings: Kestrel's `KeepAlivePingDelay` and
//! `KeepAlivePingTimeout`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use h2::{Ping, PingPong};
use tokio::time::{Instant, Sleep};

/// Pings a client that has sent nothing for `delay`, and gives up on it
/// when the PING goes unanswered for `timeout`. Activity is sampled every
/// `delay`, so a silent client is pinged between one and two delays after
/// its last frame.
pub(crate) struct KeepAlivePing {
    ping_pong: PingPong,
    reads: Arc<AtomicU64>,
    seen: u64,
    delay: Duration,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    awaiting_pong: bool,
}

impl KeepAlivePing {
    pub fn new(ping_pong: PingPong, reads: Arc<AtomicU64>, delay: Duration, timeout: Duration) -> Self {
        let timer = Box::pin(tokio::time::sleep(delay));
        Self { ping_pong, reads, seen: 0, delay, timeout, timer, awaiting_pong: false }
    }

    /// Ready when a PING went unanswered past the timeout: the connection
    /// should close.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.awaiting_pong {
                if let Poll::Ready(result) = self.ping_pong.poll_pong(cx) {
                    // An error means the connection is ending anyway.
                    if result.is_err() {
                        return Poll::Pending;
                    }
                    self.awaiting_pong = false;
                    self.seen = self.reads.load(Ordering::Relaxed);
                    self.timer.as_mut().reset(Instant::now() + self.delay);
                    continue;
                }
                return self.timer.as_mut().poll(cx);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let reads = self.reads.load(Ordering::Relaxed);
            if reads != self.seen {
                self.seen = reads;
                self.timer.as_mut().reset(Instant::now() + self.delay);
                continue;
            }
            if self.ping_pong.send_ping(Ping::opaque()).is_err() {
                return Poll::Pending;
            }
            self.awaiting_pong = true;
            self.timer.as_mut().reset(Instant::now() + self.timeout);
        }
    }
}
