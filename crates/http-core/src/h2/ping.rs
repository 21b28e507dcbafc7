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

/// A PING sent only to make the client read: curl 7.88 (Debian 12), among
/// others, notices that a stream it uploads on was answered and closed
/// only when more bytes arrive after its upload ends, so a stream whose
/// unread body was drained to its end is followed by one PING. At most
/// one is in flight; its PONG is read and dropped.
pub(crate) struct Nudge {
    ping_pong: PingPong,
    in_flight: bool,
}

impl Nudge {
    pub fn new(ping_pong: PingPong) -> Self {
        Self { ping_pong, in_flight: false }
    }

    /// Sends a PING unless one is in flight.
    pub fn send(&mut self) {
        if !self.in_flight && self.ping_pong.send_ping(Ping::opaque()).is_ok() {
            self.in_flight = true;
        }
    }

    /// Reads the PONG of the PING in flight, if it has come.
    pub fn poll_pong(&mut self, cx: &mut Context<'_>) {
        if self.in_flight && self.ping_pong.poll_pong(cx).is_ready() {
            self.in_flight = false;
        }
    }
}

impl KeepAlivePing {
    /// Sends a PING now (as [`Nudge::send`]) unless one is in flight; its
    /// PONG counts as the keep-alive's.
    pub fn nudge(&mut self) {
        if !self.awaiting_pong && self.ping_pong.send_ping(Ping::opaque()).is_ok() {
            self.awaiting_pong = true;
            self.timer.as_mut().reset(Instant::now() + self.timeout);
        }
    }
}

/// The connection's PINGs: keep-alive ones when configured, else nudges
/// only.
pub(crate) enum Pings {
    KeepAlive(KeepAlivePing),
    Nudge(Nudge),
    None,
}

impl Pings {
    /// Ready when a keep-alive PING went unanswered past its timeout.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Pings::KeepAlive(ping) => ping.poll_expired(cx),
            Pings::Nudge(nudge) => {
                nudge.poll_pong(cx);
                Poll::Pending
            }
            Pings::None => Poll::Pending,
        }
    }

    /// Makes the client read: one PING unless one is in flight.
    pub fn nudge(&mut self) {
        match self {
            Pings::KeepAlive(ping) => ping.nudge(),
            Pings::Nudge(nudge) => nudge.send(),
            Pings::None => {}
        }
    }
}
