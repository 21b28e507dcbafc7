//! What every protocol serves a connection with, besides its stream and
//! its service.

use kite_transport_core::{CloseSignal, ConnectionContext};

use crate::timing::heartbeat::ConnectionTimer;
use crate::{ConnectionInfo, HttpOptions};

/// A connection's served state: who it is, how it is asked to close, the
/// timer its timeouts run on and the options it is served with. Built once,
/// where the protocol is chosen, and handed whole to HTTP/1.1, HTTP/2 or
/// HTTP/3.
pub(crate) struct ServedConnection<'o> {
    /// The connection's identity and addresses, a clone per request.
    pub info: ConnectionInfo,
    /// The server's request to close (graceful shutdown, an upgrade).
    pub close: CloseSignal,
    /// The connection's deadlines and rate checks, on the heartbeat.
    pub timer: ConnectionTimer,
    /// The options the connection is served with, borrowed from the server.
    pub options: &'o HttpOptions,
}

impl<'o> ServedConnection<'o> {
    /// The served state of the connection `context` describes, registered
    /// with the heartbeat of `options`.
    pub fn new(context: ConnectionContext, options: &'o HttpOptions) -> Self {
        let close = context.close_signal().clone();
        Self { info: ConnectionInfo::new(context), close, timer: options.heartbeat.register(), options }
    }
}
