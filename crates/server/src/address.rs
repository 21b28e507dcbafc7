//! Listen addresses: parsing URLs and binding them by Kestrel's rules.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use kite_transport_core::{Endpoint, InheritedFd, Listener, Transport};

use crate::ServerError;

/// Where a server listens, before binding.
///
/// ```
/// use kite_server::ListenAddress;
///
/// let a: ListenAddress = "http://localhost:5000".parse().unwrap();
/// assert_eq!(a, ListenAddress::Localhost(5000));
/// let b: ListenAddress = "http://*:8080".parse().unwrap();
/// assert_eq!(b, ListenAddress::AnyIp(8080));
/// let c: ListenAddress = "http://unix:/run/kite.sock".parse().unwrap();
/// assert_eq!(c, ListenAddress::Unix("/run/kite.sock".into()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListenAddress {
    /// Exactly this IP address and port.
    Ip(SocketAddr),
    /// `localhost`: both 127.0.0.1 and \[::1\] on one port. Binding fails
    /// if either is taken; a missing IPv6 stack is only a warning. Port 0
    /// picks one free port for both.
    Localhost(u16),
    /// All interfaces: `[::]` dual-stack, or 0.0.0.0 where IPv6 is absent.
    /// URLs with `*`, `+` or a host name mean this.
    AnyIp(u16),
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// A listening socket inherited as a file descriptor (systemd socket
    /// activation, or a parent process). It is adopted as it is; its real
    /// address is reported once bound.
    Fd(InheritedFd),
}

impl std::str::FromStr for ListenAddress {
    type Err = ServerError;

    /// Parses an http URL in Kestrel's forms (see [`ListenUrl`]); an https
    /// URL is refused here, since an address alone carries no TLS.
    fn from_str(url: &str) -> Result<Self, ServerError> {
        let parsed: ListenUrl = url.parse()?;
        if parsed.https {
            return Err(ServerError::InvalidUrl {
                url: url.to_string(),
                reason: "an https URL needs TLS options; give it to ServerBuilder::urls with https_defaults".into(),
            });
        }
        Ok(parsed.address)
    }
}

/// A listen URL: an address, and whether it serves HTTPS.
///
/// ```
/// use kite_server::{ListenAddress, ListenUrl};
///
/// let url: ListenUrl = "https://localhost:5001".parse().unwrap();
/// assert!(url.https);
/// assert_eq!(url.address, ListenAddress::Localhost(5001));
/// let default_port: ListenUrl = "https://example.com".parse().unwrap();
/// assert_eq!(default_port.address, ListenAddress::AnyIp(443));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenUrl {
    /// Whether the endpoint serves HTTPS.
    pub https: bool,
    /// Where it listens.
    pub address: ListenAddress,
}

impl std::str::FromStr for ListenUrl {
    type Err = ServerError;

    /// Parses a URL in Kestrel's forms: `http://127.0.0.1:5000`,
    /// `https://[::1]:0`, `http://localhost:5000`, `http://*:80`,
    /// `http://+:80`, `http://example.com:80`, `http://unix:/path` (or
    /// `unix:/path`). Without a port, http means 80 and https 443.
    fn from_str(url: &str) -> Result<Self, ServerError> {
        let invalid = |reason: &str| ServerError::InvalidUrl { url: url.to_string(), reason: reason.to_string() };
        let trimmed = url.trim();
        if let Some(path) = trimmed.strip_prefix("unix:") {
            let address = unix_path(path)
                .ok_or_else(|| invalid("a unix socket needs an absolute path, as unix:/run/kite.sock"))?;
            return Ok(ListenUrl { https: false, address });
        }
        let (scheme, rest) = trimmed.split_once("://").ok_or_else(|| invalid("expected scheme://host:port"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            _ => return Err(invalid("the scheme must be http or https")),
        };
        let address = parse_authority(rest, https).map_err(invalid)?;
        Ok(ListenUrl { https, address })
    }
}

/// Parses what follows `scheme://`.
fn parse_authority(rest: &str, https: bool) -> Result<ListenAddress, &'static str> {
    if let Some(path) = rest.strip_prefix("unix:") {
        return unix_path(path).ok_or("a unix socket needs an absolute path, as http://unix:/run/kite.sock");
    }
    let authority = match rest.split_once('/') {
        Some((authority, "")) => authority,
        Some(_) => return Err("a path base is not supported in a listen url; remove the path"),
        None => rest,
    };
    let default_port = if https { 443 } else { 80 };
    let (host, port) = split_host_port(authority, default_port).ok_or("the port must be a number from 0 to 65535")?;
    if host.is_empty() {
        return Err("the host is missing; use localhost, an IP address, or * for all interfaces");
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ip: Ipv6Addr = v6.parse().map_err(|_| "the bracketed host is not an IPv6 address")?;
        return Ok(ListenAddress::Ip(SocketAddr::new(IpAddr::V6(ip), port)));
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ListenAddress::Ip(SocketAddr::new(IpAddr::V4(ip), port)));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(ListenAddress::Localhost(port));
    }
    // `*`, `+` and any host name bind every interface, as in Kestrel.
    Ok(ListenAddress::AnyIp(port))
}

fn unix_path(path: &str) -> Option<ListenAddress> {
    path.starts_with('/').then(|| ListenAddress::Unix(PathBuf::from(path)))
}

fn split_host_port(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    let port_at = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => i,
        _ => return Some((authority, default_port)),
    };
    let port = authority[port_at + 1..].parse().ok()?;
    Some((&authority[..port_at], port))
}

impl ListenAddress {
    /// The TCP port, if this is a TCP address (0 means "any free port").
    pub fn port(&self) -> Option<u16> {
        match self {
            ListenAddress::Ip(addr) => Some(addr.port()),
            ListenAddress::Localhost(port) | ListenAddress::AnyIp(port) => Some(*port),
            ListenAddress::Unix(_) | ListenAddress::Fd(_) => None,
        }
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::Ip(addr) => write!(f, "http://{addr}"),
            ListenAddress::Localhost(port) => write!(f, "http://localhost:{port}"),
            ListenAddress::AnyIp(port) => write!(f, "http://*:{port}"),
            ListenAddress::Unix(path) => write!(f, "http://unix:{}", path.display()),
            ListenAddress::Fd(fd) => write!(f, "http://fd:{}", fd.as_raw_fd()),
        }
    }
}

/// The URL of a bound endpoint, as `addresses()` reports it.
pub(crate) fn endpoint_url(endpoint: &Endpoint, https: bool) -> String {
    let scheme = if https { "https" } else { "http" };
    match endpoint {
        Endpoint::Unix(path) => format!("{scheme}://unix:{}", path.display()),
        other => format!("{scheme}://{other}"),
    }
}

/// Binds `address`, returning one listener or two (localhost).
pub(crate) async fn bind(
    transport: &dyn Transport,
    address: &ListenAddress,
    https: bool,
) -> Result<Vec<Box<dyn Listener>>, ServerError> {
    let bind_one = |endpoint: Endpoint| async move {
        transport
            .bind(&endpoint)
            .await
            .map_err(|source| ServerError::Bind { address: endpoint_url(&endpoint, https), source })
    };
    match address {
        ListenAddress::Ip(addr) => Ok(vec![bind_one(Endpoint::Tcp(*addr)).await?]),
        ListenAddress::Unix(path) => Ok(vec![bind_one(Endpoint::Unix(path.clone())).await?]),
        ListenAddress::Fd(fd) => Ok(vec![bind_one(Endpoint::Inherited(fd.clone())).await?]),
        ListenAddress::AnyIp(port) => {
            let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), *port);
            match transport.bind(&Endpoint::Tcp(any6)).await {
                Ok(listener) => Ok(vec![listener]),
                Err(e) if ipv6_absent(&e) => {
                    tracing::warn!(error = %e, "IPv6 is not available; binding 0.0.0.0 only");
                    Ok(vec![bind_one(Endpoint::Tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), *port))).await?])
                }
                Err(source) => Err(ServerError::Bind { address: endpoint_url(&Endpoint::Tcp(any6), https), source }),
            }
        }
        ListenAddress::Localhost(port) => bind_localhost(transport, *port, https).await,
    }
}

async fn bind_localhost(
    transport: &dyn Transport,
    port: u16,
    https: bool,
) -> Result<Vec<Box<dyn Listener>>, ServerError> {
    // With port 0 the IPv6 side may find the IPv4 side's port taken; try a
    // few ports before giving up.
    let attempts = if port == 0 { 10 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let v4 = Endpoint::Tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        let listener4 = transport
            .bind(&v4)
            .await
            .map_err(|source| ServerError::Bind { address: endpoint_url(&v4, https), source })?;
        let bound_port = listener4.local_endpoint().as_tcp().map_or(port, |a| a.port());
        let v6 = Endpoint::Tcp(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), bound_port));
        match transport.bind(&v6).await {
            Ok(listener6) => return Ok(vec![listener4, listener6]),
            Err(e) if ipv6_absent(&e) => {
                tracing::warn!(error = %e, "IPv6 loopback is not available; localhost binds 127.0.0.1 only");
                return Ok(vec![listener4]);
            }
            Err(source) => last_error = Some(ServerError::Bind { address: endpoint_url(&v6, https), source }),
        }
    }
    Err(last_error.expect("at least one attempt"))
}

fn ipv6_absent(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported)
        || matches!(e.raw_os_error(), Some(code) if code == 97 /* EAFNOSUPPORT */ || code == 99 /* EADDRNOTAVAIL */)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<ListenAddress, ServerError> {
        url.parse()
    }

    #[test]
    fn url_forms() {
        assert_eq!(parse("http://127.0.0.1:5000").unwrap(), ListenAddress::Ip("127.0.0.1:5000".parse().unwrap()));
        assert_eq!(parse("http://[::1]:0").unwrap(), ListenAddress::Ip("[::1]:0".parse().unwrap()));
        assert_eq!(parse("http://LOCALHOST:5000/").unwrap(), ListenAddress::Localhost(5000));
        assert_eq!(parse("http://+:81").unwrap(), ListenAddress::AnyIp(81));
        assert_eq!(parse("http://example.com").unwrap(), ListenAddress::AnyIp(80));
        assert_eq!(parse("unix:/tmp/k.sock").unwrap(), ListenAddress::Unix("/tmp/k.sock".into()));
        assert_eq!(parse("http://[::1]:0").unwrap().to_string(), "http://[::1]:0");
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, needle) in [
            ("localhost:5000", "scheme"),
            ("ftp://a:1", "scheme must be http or https"),
            ("https://localhost:5001", "https_defaults"),
            ("http://a:1/base", "path base"),
            ("http://a:99999", "port"),
            ("http://[zz]:1", "IPv6"),
            ("http://unix:relative", "absolute"),
            ("http://:80", "host is missing"),
        ] {
            let err = parse(url).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }
}
