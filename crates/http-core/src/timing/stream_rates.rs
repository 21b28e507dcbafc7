//! The request-body rates of a multiplexed connection's streams (HTTP/2,
//! HTTP/3), each checked on the connection's heartbeat.

use std::sync::{Arc, Weak};

use super::body_rate::BodyRate;
use super::heartbeat::Clock;
use crate::MinDataRate;

/// The body rates of an HTTP/2 connection's streams, checked on each beat.
#[derive(Debug)]
pub(crate) struct StreamRates {
    rate: Option<MinDataRate>,
    clock: Clock,
    live: Vec<Weak<BodyRate>>,
}

impl StreamRates {
    pub fn new(rate: Option<MinDataRate>, clock: Clock) -> Self {
        Self { rate, clock, live: Vec::new() }
    }

    /// Whether there is a rate to enforce at all.
    pub fn enabled(&self) -> bool {
        self.rate.is_some()
    }

    /// A new stream body's rate, and the clock it reads.
    pub fn for_stream(&mut self) -> Option<(Arc<BodyRate>, Clock)> {
        let rate = self.rate?;
        let body = Arc::new(BodyRate::default());
        body.start(Some(rate));
        self.live.push(Arc::downgrade(&body));
        Some((body, self.clock.clone()))
    }

    /// On a beat: checks every live stream body, waking the slow ones.
    pub fn check(&mut self) {
        let now = self.clock.now_ms();
        self.live.retain(|weak| match weak.upgrade() {
            Some(body) => {
                body.check(now);
                body.is_on()
            }
            None => false,
        });
    }
}
