//! Socket options for the sockets transport.

/// Options applied to every socket the [`SocketTransport`](crate::SocketTransport)
/// binds or accepts (Kestrel's `SocketTransportOptions`).
///
/// # Examples
///
/// ```
/// use kite_transport_sockets::SocketOptions;
///
/// let options = SocketOptions::default().backlog(1024).reuse_port(true);
/// assert_eq!(options.get_backlog(), 1024);
/// ```
#[derive(Clone, Debug)]
pub struct SocketOptions {
    pub(crate) nodelay: bool,
    pub(crate) backlog: u32,
    pub(crate) reuse_port: bool,
    pub(crate) recv_buffer_size: Option<usize>,
    pub(crate) send_buffer_size: Option<usize>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            nodelay: true,
            backlog: 512,
            reuse_port: false,
            recv_buffer_size: None,
            send_buffer_size: None,
        }
    }
}

impl SocketOptions {
    /// Sets `TCP_NODELAY` on accepted TCP connections. Default: `true`.
    pub fn nodelay(mut self, enabled: bool) -> Self {
        self.nodelay = enabled;
        self
    }

    /// The listen backlog: connections the kernel queues before accept.
    /// Default: 512.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Sets `SO_REUSEPORT` on TCP listeners, so several processes can share
    /// a port. Default: `false`.
    pub fn reuse_port(mut self, enabled: bool) -> Self {
        self.reuse_port = enabled;
        self
    }

    /// `SO_RCVBUF` for accepted connections. Default: `None` (the system's).
    pub fn recv_buffer_size(mut self, size: Option<usize>) -> Self {
        self.recv_buffer_size = size;
        self
    }

    /// `SO_SNDBUF` for accepted connections. Default: `None` (the system's).
    pub fn send_buffer_size(mut self, size: Option<usize>) -> Self {
        self.send_buffer_size = size;
        self
    }

    /// The configured backlog.
    pub fn get_backlog(&self) -> u32 {
        self.backlog
    }
}
