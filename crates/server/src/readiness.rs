//! The readiness probe: a path the server answers itself, `200` while it
//! accepts connections and `503` from the moment a drain starts (a
//! graceful shutdown, or an upgrade handing the sockets to a new process),
//! so a load balancer stops sending new work before connections close.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::StatusCode;

/// The probe's path and the server's state.
#[derive(Debug)]
pub(crate) struct Readiness {
    path: String,
    draining: AtomicBool,
}

impl Readiness {
    pub fn new(path: String) -> Self {
        Self { path, draining: AtomicBool::new(false) }
    }

    /// From now on the probe answers `503`.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// The answer for a request to `path`, if it is the probe's.
    pub fn answer(&self, path: &str) -> Option<(StatusCode, Bytes)> {
        if path != self.path {
            return None;
        }
        Some(if self.draining.load(Ordering::Acquire) {
            (StatusCode::SERVICE_UNAVAILABLE, Bytes::from_static(b"Draining"))
        } else {
            (StatusCode::OK, Bytes::from_static(b"Healthy"))
        })
    }
}
