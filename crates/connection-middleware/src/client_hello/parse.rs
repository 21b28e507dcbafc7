//! A TLS ClientHello, parsed by hand from its handshake bytes: the fields
//! a fingerprint needs, and nothing is trusted that the bytes do not say.

use super::ClientHelloError;

/// A parsed ClientHello.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The handshake message (type 1) with its 4-byte header, without the
    /// record layer.
    pub raw: Vec<u8>,
    /// `legacy_version`: 0x0303 for TLS 1.2 and 1.3.
    pub legacy_version: u16,
    /// The cipher suites, in the client's order, GREASE included.
    pub cipher_suites: Vec<u16>,
    /// The extensions, in the client's order: type and data.
    pub extensions: Vec<(u16, Vec<u8>)>,
}

/// Whether `value` is a GREASE value (RFC 8701): 0x?a?a with equal bytes.
pub fn is_grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff
}

/// A cursor over bytes that refuses to read past their end.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ClientHelloError> {
        if self.bytes.len() < n {
            return Err(ClientHelloError::Truncated { missing: n - self.bytes.len() });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, ClientHelloError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ClientHelloError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Result<usize, ClientHelloError> {
        let b = self.take(3)?;
        Ok(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }

    fn vec8(&mut self) -> Result<&'a [u8], ClientHelloError> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Result<&'a [u8], ClientHelloError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// Reads a list of 16-bit values with a 16-bit byte length.
fn u16_list(bytes: &[u8]) -> Vec<u16> {
    bytes.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect()
}

impl ClientHello {
    /// Parses a handshake message (type 1, with its 4-byte header).
    ///
    /// # Errors
    ///
    /// [`ClientHelloError::NotClientHello`], or
    /// [`ClientHelloError::Truncated`] and
    /// [`ClientHelloError::OddCipherSuites`] for one whose lengths do not
    /// fit its bytes.
    pub fn parse(raw: &[u8]) -> Result<Self, ClientHelloError> {
        let mut cursor = Cursor { bytes: raw };
        if cursor.u8()? != 1 {
            return Err(ClientHelloError::NotClientHello);
        }
        let length = cursor.u24()?;
        let mut body = Cursor { bytes: cursor.take(length)? };
        let legacy_version = body.u16()?;
        body.take(32)?; // random
        body.vec8()?; // legacy_session_id
        let suites = body.vec16()?;
        if suites.len() % 2 != 0 {
            return Err(ClientHelloError::OddCipherSuites);
        }
        body.vec8()?; // legacy_compression_methods
        let mut extensions = Vec::new();
        if !body.bytes.is_empty() {
            let mut list = Cursor { bytes: body.vec16()? };
            while !list.bytes.is_empty() {
                let kind = list.u16()?;
                let data = list.vec16()?;
                extensions.push((kind, data.to_vec()));
            }
        }
        Ok(Self { raw: raw.to_vec(), legacy_version, cipher_suites: u16_list(suites), extensions })
    }

    /// An extension's data.
    pub fn extension(&self, kind: u16) -> Option<&[u8]> {
        self.extensions.iter().find(|(k, _)| *k == kind).map(|(_, d)| d.as_slice())
    }

    /// The server name (SNI), if the client sent one.
    pub fn server_name(&self) -> Option<String> {
        let mut list = Cursor { bytes: self.extension(0x0000)? };
        let mut names = Cursor { bytes: list.vec16().ok()? };
        while !names.bytes.is_empty() {
            let kind = names.u8().ok()?;
            let name = names.vec16().ok()?;
            if kind == 0 {
                return String::from_utf8(name.to_vec()).ok();
            }
        }
        None
    }

    /// The ALPN protocols offered, in order.
    pub fn alpn(&self) -> Vec<Vec<u8>> {
        let Some(data) = self.extension(0x0010) else { return Vec::new() };
        let mut outer = Cursor { bytes: data };
        let Ok(list) = outer.vec16() else { return Vec::new() };
        let mut list = Cursor { bytes: list };
        let mut protocols = Vec::new();
        while let Ok(protocol) = list.vec8() {
            protocols.push(protocol.to_vec());
        }
        protocols
    }

    /// `supported_versions` (TLS 1.3's way to say which versions).
    pub fn supported_versions(&self) -> Vec<u16> {
        let Some(data) = self.extension(0x002b) else { return Vec::new() };
        let mut cursor = Cursor { bytes: data };
        cursor.vec8().map(u16_list).unwrap_or_default()
    }

    /// `signature_algorithms`, in order.
    pub fn signature_algorithms(&self) -> Vec<u16> {
        let Some(data) = self.extension(0x000d) else { return Vec::new() };
        Cursor { bytes: data }.vec16().map(u16_list).unwrap_or_default()
    }

    /// `supported_groups` (elliptic curves), in order.
    pub fn supported_groups(&self) -> Vec<u16> {
        let Some(data) = self.extension(0x000a) else { return Vec::new() };
        Cursor { bytes: data }.vec16().map(u16_list).unwrap_or_default()
    }

    /// `ec_point_formats`, in order.
    pub fn point_formats(&self) -> Vec<u8> {
        let Some(data) = self.extension(0x000b) else { return Vec::new() };
        Cursor { bytes: data }.vec8().map(<[u8]>::to_vec).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_values() {
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && is_grease(0x3a3a));
        assert!(!is_grease(0x0a1a) && !is_grease(0x1301) && !is_grease(0x000a));
    }

    #[test]
    fn truncated_and_wrong_messages_are_refused() {
        assert!(ClientHello::parse(&[]).is_err());
        assert!(ClientHello::parse(&[2, 0, 0, 0]).is_err(), "a ServerHello");
        assert!(ClientHello::parse(&[1, 0, 0, 40, 3, 3]).is_err(), "shorter than its length");
        let mut odd = vec![1, 0, 0, 0, 3, 3];
        odd.extend([0; 32]);
        odd.extend([0, 0, 3, 0x13, 0x01, 0x13, 0, 1, 0]);
        let length = odd.len() - 4;
        odd[3] = length as u8;
        assert!(ClientHello::parse(&odd).is_err(), "an odd cipher list");
    }
}
