//! One TLS connection's record layer: rustls's unbuffered state machine
//! over buffers the stream owns and lends back while idle.
//!
//! rustls's buffered connection keeps a 4 KiB receive buffer for the
//! connection's whole life and queues each encrypted record in a fresh
//! allocation. Here records arrive in [`Buffer`]s taken from a per-thread
//! pool and given back as soon as they are empty, and responses are
//! encrypted straight into the outgoing buffer.

use std::cell::RefCell;
use std::io::IoSlice;

use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError, UnbufferedStatus, WriteTraffic,
};
use tokio::io::ReadBuf;

use super::buffer::Buffer;

/// The most plaintext one write encrypts: two full records.
const MAX_WRITE: usize = 32 * 1024;
/// Room per record beyond its plaintext: header, content type, AEAD tag,
/// with margin.
const RECORD_OVERHEAD: usize = 64;
/// Slices a vectored write joins into one record, when the first is
/// shorter than a record: a frame header and its payload, say.
const JOIN: usize = 16 * 1024;

thread_local! {
    static JOINED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Where processing the received records stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reached {
    /// The handshake waits for more records from the peer.
    NeedsRecords,
    /// Application data may be sent; this much of the plaintext asked for
    /// was encrypted into the outgoing buffer.
    Traffic(usize),
    /// Both sides sent close_notify.
    Closed,
}

/// What to do once application data may be sent.
pub(super) enum Then<'a> {
    Nothing,
    Encrypt(&'a [u8]),
    CloseNotify,
}

/// A TLS connection's state and its buffers.
pub(super) struct Session {
    pub(super) conn: UnbufferedServerConnection,
    /// Records received and not yet processed.
    pub(super) incoming: Buffer,
    /// Records to send, in the order rustls made them.
    pub(super) outgoing: Buffer,
    /// Decrypted bytes the reader has not taken, from `plain_at` on.
    plain: Vec<u8>,
    plain_at: usize,
    /// The peer's close_notify arrived: the end of its data.
    pub(super) peer_closed: bool,
    /// Our close_notify is queued.
    pub(super) close_queued: bool,
}

impl Session {
    /// A session starting with the bytes already read.
    pub(super) fn new(conn: UnbufferedServerConnection, incoming: Buffer) -> Self {
        Self {
            conn,
            incoming,
            outgoing: Buffer::default(),
            plain: Vec::new(),
            plain_at: 0,
            peer_closed: false,
            close_queued: false,
        }
    }

    /// Runs rustls over the received records until it needs more or may
    /// send application data, then does `then`. Handshake records (and
    /// alerts, key updates, tickets) go to `outgoing`; application data to
    /// `sink` while it has room, then to the plaintext held for the next
    /// read.
    pub(super) fn process(
        &mut self,
        mut sink: Option<&mut ReadBuf<'_>>,
        then: Then<'_>,
    ) -> Result<Reached, rustls::Error> {
        loop {
            let UnbufferedStatus { discard, state } = self.conn.process_tls_records(self.incoming.filled_mut());
            let reached = match state {
                Err(error) => {
                    self.incoming.consume(discard);
                    return Err(error);
                }
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    while let Some(Ok(record)) = traffic.next_record() {
                        let mut payload = record.payload;
                        if let Some(sink) = sink.as_deref_mut().filter(|_| self.plain_at == self.plain.len()) {
                            let n = payload.len().min(sink.remaining());
                            sink.put_slice(&payload[..n]);
                            payload = &payload[n..];
                        }
                        self.plain.extend_from_slice(payload);
                    }
                    None
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    encode_into(&mut encode, &mut self.outgoing);
                    None
                }
                // The records go out with the outgoing buffer, before
                // anything encrypted after them.
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    None
                }
                Ok(ConnectionState::BlockedHandshake) => Some(Reached::NeedsRecords),
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    None
                }
                Ok(ConnectionState::Closed) => Some(Reached::Closed),
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let written = match then {
                        Then::Nothing => Ok(0),
                        Then::Encrypt(data) => encrypt_into(&mut traffic, data, &mut self.outgoing),
                        Then::CloseNotify => close_into(&mut traffic, &mut self.outgoing),
                    };
                    match written {
                        Ok(n) => Some(Reached::Traffic(n)),
                        Err(error) => {
                            self.incoming.consume(discard);
                            return Err(error);
                        }
                    }
                }
                // Early data is never enabled; rustls has no other state.
                Ok(_) => {
                    self.incoming.consume(discard);
                    return Err(rustls::Error::General("an unexpected TLS state".into()));
                }
            };
            self.incoming.consume(discard);
            if let Some(reached) = reached {
                return Ok(reached);
            }
        }
    }

    /// Encrypts `bufs` as one write would: slices shorter than a record
    /// are joined first, so a header and its body share a record.
    pub(super) fn encrypt_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<Reached, rustls::Error> {
        let mut slices = bufs.iter().filter(|b| !b.is_empty());
        let Some(first) = slices.next() else { return self.process(None, Then::Encrypt(&[])) };
        if first.len() >= JOIN || slices.clone().next().is_none() {
            return self.process(None, Then::Encrypt(first));
        }
        JOINED.with(|joined| {
            let mut joined = joined.borrow_mut();
            joined.clear();
            for slice in std::iter::once(first).chain(slices) {
                let n = slice.len().min(JOIN - joined.len());
                joined.extend_from_slice(&slice[..n]);
                if joined.len() == JOIN {
                    break;
                }
            }
            self.process(None, Then::Encrypt(&joined))
        })
    }

    /// After an error: encodes the alert rustls queued, so it can be sent
    /// before the connection closes.
    pub(super) fn encode_alert(&mut self) {
        for _ in 0..4 {
            let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut []);
            match state {
                Ok(ConnectionState::EncodeTlsData(mut encode)) => encode_into(&mut encode, &mut self.outgoing),
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                _ => break,
            }
        }
    }

    /// Whether any buffer has memory of its own.
    #[cfg(test)]
    pub(super) fn holds_buffers(&self) -> bool {
        self.incoming.holds_memory() || self.outgoing.holds_memory() || self.plain.capacity() > 0
    }

    /// Whether decrypted bytes wait for the reader.
    pub(super) fn has_plain(&self) -> bool {
        self.plain_at < self.plain.len()
    }

    /// Moves held plaintext into `buf`; true if there was any.
    pub(super) fn take_plain(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if !self.has_plain() {
            return false;
        }
        let n = (self.plain.len() - self.plain_at).min(buf.remaining());
        buf.put_slice(&self.plain[self.plain_at..self.plain_at + n]);
        self.plain_at += n;
        if self.plain_at == self.plain.len() {
            self.plain.clear();
            self.plain_at = 0;
        }
        true
    }

    /// Gives back every buffer that holds nothing: the connection waits.
    pub(super) fn release(&mut self) {
        self.incoming.release();
        self.outgoing.release();
        if !self.has_plain() && self.plain.capacity() > 0 {
            self.plain = Vec::new();
        }
    }
}

fn encode_into(encode: &mut EncodeTlsData<'_, ServerConnectionData>, outgoing: &mut Buffer) {
    let mut room = 0;
    loop {
        match encode.encode(outgoing.spare(room)) {
            Ok(n) => return outgoing.fill(n),
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => room = required_size,
            Err(EncodeError::AlreadyEncoded) => return,
        }
    }
}

fn encrypt_into(
    traffic: &mut WriteTraffic<'_, ServerConnectionData>,
    data: &[u8],
    outgoing: &mut Buffer,
) -> Result<usize, rustls::Error> {
    let data = &data[..data.len().min(MAX_WRITE)];
    if data.is_empty() {
        return Ok(0);
    }
    let room = data.len() + (data.len() / (16 * 1024) + 1) * RECORD_OVERHEAD;
    seal_into(outgoing, room, |out| traffic.encrypt(data, out))?;
    Ok(data.len())
}

fn close_into(
    traffic: &mut WriteTraffic<'_, ServerConnectionData>,
    outgoing: &mut Buffer,
) -> Result<usize, rustls::Error> {
    seal_into(outgoing, RECORD_OVERHEAD, |out| traffic.queue_close_notify(out))?;
    Ok(0)
}

/// Runs `seal` over the outgoing buffer's spare room, starting with `room`
/// bytes and growing to what rustls asks for, and counts what it wrote.
fn seal_into(
    outgoing: &mut Buffer,
    mut room: usize,
    mut seal: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), rustls::Error> {
    loop {
        match seal(outgoing.spare(room)) {
            Ok(n) => {
                outgoing.fill(n);
                return Ok(());
            }
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => room = required_size,
            Err(EncryptError::EncryptExhausted) => return Err(rustls::Error::EncryptError),
        }
    }
}
