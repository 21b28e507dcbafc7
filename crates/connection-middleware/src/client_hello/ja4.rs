//! FoxIO's JA4 TLS client fingerprint (BSD-3-Clause spec) and the JA3
//! string, from a parsed ClientHello.

use sha2::{Digest, Sha256};

use super::parse::{is_grease, ClientHello};

/// A client's TLS fingerprints, as a connection feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFingerprint {
    /// JA4: `t13d1516h2_8daaf6152771_e5627efa2ab1`.
    pub ja4: String,
    /// The JA3 string (version, ciphers, extensions, groups, point
    /// formats, decimal, GREASE left out); hash it for the JA3 digest.
    pub ja3: String,
}

impl TlsFingerprint {
    /// The fingerprints of `hello`.
    pub fn of(hello: &ClientHello) -> Self {
        Self { ja4: ja4(hello), ja3: ja3(hello) }
    }
}

fn version_code(version: u16) -> &'static str {
    match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// The first 12 hex digits of the SHA-256 of `text`, or twelve zeros for
/// nothing to hash.
fn truncated_hash(text: &str) -> String {
    if text.is_empty() {
        return "000000000000".into();
    }
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn hex_list(values: impl IntoIterator<Item = u16>) -> String {
    values.into_iter().map(|v| format!("{v:04x}")).collect::<Vec<_>>().join(",")
}

/// ALPN's two characters: the first value's first and last, or their hex
/// digits when either is not alphanumeric; `00` without ALPN.
fn alpn_code(hello: &ClientHello) -> String {
    let alpn = hello.alpn();
    let Some(first) = alpn.first().filter(|p| !p.is_empty()) else { return "00".into() };
    let (a, z) = (first[0], first[first.len() - 1]);
    if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() {
        format!("{}{}", a as char, z as char)
    } else {
        let hex = format!("{a:02x}{z:02x}");
        format!("{}{}", &hex[..1], &hex[3..])
    }
}

/// JA4 (`JA4_a` `_` `JA4_b` `_` `JA4_c`) for a ClientHello over TCP.
pub fn ja4(hello: &ClientHello) -> String {
    let version =
        hello.supported_versions().into_iter().filter(|v| !is_grease(*v)).max().unwrap_or(hello.legacy_version);
    let sni = if hello.extension(0x0000).is_some() { 'd' } else { 'i' };
    let ciphers: Vec<u16> = hello.cipher_suites.iter().copied().filter(|c| !is_grease(*c)).collect();
    let extensions: Vec<u16> = hello.extensions.iter().map(|(k, _)| *k).filter(|k| !is_grease(*k)).collect();
    let a = format!(
        "t{}{sni}{:02}{:02}{}",
        version_code(version),
        ciphers.len().min(99),
        extensions.len().min(99),
        alpn_code(hello)
    );
    let mut sorted_ciphers = ciphers;
    sorted_ciphers.sort_unstable();
    let b = truncated_hash(&hex_list(sorted_ciphers));
    let mut sorted_extensions: Vec<u16> = extensions.into_iter().filter(|k| *k != 0x0000 && *k != 0x0010).collect();
    sorted_extensions.sort_unstable();
    let signatures: Vec<u16> = hello.signature_algorithms().into_iter().filter(|s| !is_grease(*s)).collect();
    let mut c_text = hex_list(sorted_extensions);
    if !signatures.is_empty() {
        c_text = format!("{c_text}_{}", hex_list(signatures));
    }
    let c = truncated_hash(&c_text);
    format!("{a}_{b}_{c}")
}

fn dashed<T: ToString>(values: impl IntoIterator<Item = T>) -> String {
    values.into_iter().map(|v| v.to_string()).collect::<Vec<_>>().join("-")
}

/// The JA3 string: `version,ciphers,extensions,groups,point_formats`.
pub fn ja3(hello: &ClientHello) -> String {
    let not_grease = |v: &u16| !is_grease(*v);
    format!(
        "{},{},{},{},{}",
        hello.legacy_version,
        dashed(hello.cipher_suites.iter().copied().filter(not_grease)),
        dashed(hello.extensions.iter().map(|(k, _)| *k).filter(not_grease)),
        dashed(hello.supported_groups().into_iter().filter(not_grease)),
        dashed(hello.point_formats()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello put together field by field.
    fn hello(ciphers: &[u16], extensions: &[(u16, Vec<u8>)]) -> ClientHello {
        ClientHello {
            raw: Vec::new(),
            legacy_version: 0x0303,
            cipher_suites: ciphers.to_vec(),
            extensions: extensions.to_vec(),
        }
    }

    #[test]
    fn the_parts_follow_the_spec() {
        let alpn = vec![0, 6, 2, b'h', b'2', 2, b'h', b'3'];
        let versions = vec![4, 0x0a, 0x0a, 0x03, 0x04];
        let signatures = vec![0, 4, 0x04, 0x03, 0x08, 0x04];
        let sni = vec![0, 4, 0, 0, 1, b'x'];
        let h = hello(
            &[0x0a0a, 0x1301, 0x1302, 0xc02b],
            &[(0x0a0a, vec![]), (0x0000, sni), (0x0010, alpn), (0x002b, versions), (0x000d, signatures)],
        );
        let ja4 = ja4(&h);
        // TCP, TLS 1.3 (GREASE skipped), SNI, 3 ciphers, 4 extensions, h2.
        assert!(ja4.starts_with("t13d0304h2_"), "{ja4}");
        let b = truncated_hash("1301,1302,c02b");
        let c = truncated_hash("000d,002b_0403,0804");
        assert_eq!(ja4, format!("t13d0304h2_{b}_{c}"));
        assert_eq!(ja3(&h), "771,4865-4866-49195,0-16-43-13,,");
    }

    #[test]
    fn no_alpn_no_sni_no_extensions() {
        let h = hello(&[0x1301], &[]);
        assert_eq!(ja4(&h), format!("t12i010000_{}_000000000000", truncated_hash("1301")));
        let odd = hello(&[0x1301], &[(0x0010, vec![0, 3, 2, 0xff, b'a'])]);
        assert!(ja4(&odd).starts_with("t12i0101f1_"), "{}", ja4(&odd));
    }
}
