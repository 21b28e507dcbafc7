//! Feeding a request body from the connection to the application.

use std::sync::Arc;
use std::task::Context;

use crate::body::meter::BodyMeter;
use crate::body::shared::Shared;
use crate::h1::decode::Decoder;
use crate::{BodyError, RequestRejection};

/// The connection's side of one request body.
pub(crate) struct BodyFeeder {
    pub shared: Arc<Shared>,
    pub decoder: Decoder,
    pub content_length: Option<u64>,
    /// The body's bytes against its size limit and data rate.
    pub meter: BodyMeter,
    /// `Expect: 100-continue` was sent and `100 Continue` is still owed.
    pub expect_continue: bool,
    /// The response head has been written; no interim response may follow.
    pub head_written: bool,
    /// The body is complete, or failed.
    pub finished: bool,
    /// Why the body was refused; the response becomes this status.
    pub rejection: Option<RequestRejection>,
    /// Reading the socket failed; the connection cannot be reused.
    pub io_failed: bool,
}

impl BodyFeeder {
    pub fn new(decoder: Decoder, content_length: Option<u64>, limit: Option<u64>, expect_continue: bool) -> Self {
        Self {
            shared: Shared::new(limit, content_length),
            decoder,
            content_length,
            meter: BodyMeter::default(),
            expect_continue,
            head_written: false,
            finished: false,
            rejection: None,
            io_failed: false,
        }
    }

    /// Refuses the body: the reader sees the error, the response becomes
    /// the rejection's status. `cx` is the feeding connection's.
    pub fn reject(&mut self, rejection: RequestRejection, cx: &Context<'_>) {
        self.rejection = Some(rejection);
        self.finished = true;
        self.shared.fail(BodyError::Rejected(rejection), Some(cx));
    }

    /// The socket failed under the body. `cx` is the feeding connection's.
    pub fn fail_io(&mut self, error: std::io::Error, cx: &Context<'_>) {
        self.io_failed = true;
        self.finished = true;
        self.shared.fail(BodyError::Io(Arc::new(error)), Some(cx));
    }

    /// Whether no `100 Continue` is still owed: a client waiting for one
    /// may never send the body, so the connection cannot be reused.
    pub fn continue_settled(&self) -> bool {
        self.finished || !self.expect_continue
    }

    /// Whether the connection can serve another request after this body.
    pub fn reusable(&self) -> bool {
        self.rejection.is_none() && !self.io_failed
    }
}
