//! Reading Kestrel's value types: durations, protocols, TLS versions,
//! client certificate modes and data rates.

use std::time::Duration;

use kite_connection_middleware::proxy_protocol::{ProxyMode, ProxyProtocol};
use kite_connection_middleware::tls::{ClientCertificateMode, TlsVersion};
use kite_http_core::{MinDataRate, Protocols};

use super::{ConfigError, Node};

/// A duration: .NET's TimeSpan text (`00:00:30`, `1.02:00:00`,
/// `00:00:00.500`), a short form (`30s`, `500ms`, `2m`, `1h`), or a number
/// of seconds.
pub fn duration(node: &Node<'_>) -> Result<Option<Duration>, ConfigError> {
    let Some(text) = node.string()? else { return Ok(None) };
    parse_duration(text.trim()).map(Some).ok_or_else(|| {
        node.error(format!("is \"{text}\", not a duration"), "write it as \"00:00:30\" (a TimeSpan) or \"30s\"")
    })
}

fn parse_duration(text: &str) -> Option<Duration> {
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds >= 0.0 && seconds.is_finite()).then(|| Duration::from_secs_f64(seconds));
    }
    for (suffix, scale) in [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("d", 86_400.0)] {
        if let Some(number) = text.strip_suffix(suffix) {
            if let Ok(n) = number.trim().parse::<f64>() {
                return (n >= 0.0 && n.is_finite()).then(|| Duration::from_secs_f64(n * scale));
            }
        }
    }
    // [d.]hh:mm:ss[.fffffff]
    let (days, clock) = match text.split_once('.') {
        Some((days, rest)) if rest.contains(':') && !days.contains(':') => (days.parse::<u64>().ok()?, rest),
        _ => (0, text),
    };
    let mut parts = clock.split(':');
    let hours: u64 = parts.next()?.parse().ok()?;
    let minutes: u64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || minutes > 59 || !(0.0..60.0).contains(&seconds) {
        return None;
    }
    let whole = days * 86_400 + hours * 3600 + minutes * 60;
    Some(Duration::from_secs(whole) + Duration::from_secs_f64(seconds))
}

/// `Http1`, `Http2`, `Http1AndHttp2`, `Http3` or `Http1AndHttp2AndHttp3`.
pub fn protocols(node: &Node<'_>) -> Result<Option<Protocols>, ConfigError> {
    let Some(text) = node.string()? else { return Ok(None) };
    let fix = "use Http1, Http2, Http1AndHttp2, Http3 or Http1AndHttp2AndHttp3";
    text.parse().map(Some).map_err(|_| node.error(format!("is \"{text}\", not a protocol"), fix))
}

/// `SslProtocols`: a list of `Tls12`, `Tls13` (`None` leaves both on).
pub fn tls_versions(node: &Node<'_>) -> Result<Option<Vec<TlsVersion>>, ConfigError> {
    let Some(items) = node.list()? else { return Ok(None) };
    let mut versions = Vec::new();
    for item in items {
        match item.to_ascii_lowercase().as_str() {
            "tls12" => versions.push(TlsVersion::Tls12),
            "tls13" => versions.push(TlsVersion::Tls13),
            "none" | "default" => return Ok(None),
            _ => {
                return Err(node.error(
                    format!("names {item}, which Kite cannot speak"),
                    "use Tls12 and Tls13; older versions are not supported",
                ))
            }
        }
    }
    Ok(Some(versions))
}

/// `NoCertificate`, `AllowCertificate` or `RequireCertificate`.
pub fn client_certificate_mode(node: &Node<'_>) -> Result<Option<ClientCertificateMode>, ConfigError> {
    let Some(text) = node.string()? else { return Ok(None) };
    let fix = "use NoCertificate, AllowCertificate or RequireCertificate";
    match text.trim().to_ascii_lowercase().as_str() {
        "nocertificate" => Ok(Some(ClientCertificateMode::NoCertificate)),
        "allowcertificate" => Ok(Some(ClientCertificateMode::AllowCertificate)),
        "requirecertificate" => Ok(Some(ClientCertificateMode::RequireCertificate)),
        "delaycertificate" => Err(node.error("is DelayCertificate, which needs renegotiation Kite does not do", fix)),
        _ => Err(node.error(format!("is \"{text}\", not a client certificate mode"), fix)),
    }
}

/// A data rate: `{ "BytesPerSecond": 240, "GracePeriod": "00:00:05" }`,
/// or `null` to turn it off.
pub fn data_rate(node: &Node<'_>) -> Result<Option<Option<MinDataRate>>, ConfigError> {
    match node.value() {
        None => Ok(None),
        Some(serde_json::Value::Null) => Ok(Some(None)),
        Some(_) => {
            let bytes = node.get("BytesPerSecond").u64()?.ok_or_else(|| {
                node.error("has no BytesPerSecond", "give BytesPerSecond and GracePeriod, or null to turn it off")
            })?;
            let grace = duration(&node.get("GracePeriod"))?.unwrap_or(Duration::from_secs(5));
            Ok(Some(Some(MinDataRate::new(bytes, grace))))
        }
    }
}

/// An endpoint's `ProxyProtocol`: `"Required"` or `"Optional"`, or
/// `{ "Mode": …, "TrustedProxies": ["10.0.0.0/8", …], "Timeout": "00:00:05" }`.
pub fn proxy_protocol(node: &Node<'_>) -> Result<Option<ProxyProtocol>, ConfigError> {
    if !node.exists() {
        return Ok(None);
    }
    let object = matches!(node.value(), Some(serde_json::Value::Object(_)));
    let mode_node = if object { node.get("Mode") } else { node.clone() };
    let fix = "use \"Required\" or \"Optional\"";
    let mode = match mode_node.string()?.unwrap_or_else(|| "Required".into()).to_ascii_lowercase().as_str() {
        "required" => ProxyMode::Required,
        "optional" => ProxyMode::Optional,
        other => return Err(mode_node.error(format!("is \"{other}\", not a PROXY protocol mode"), fix)),
    };
    let mut proxy = ProxyProtocol::new(mode);
    if object {
        let trusted = node.get("TrustedProxies");
        if let Some(list) = trusted.list()? {
            proxy = proxy
                .trusted_proxies(list)
                .map_err(|e| trusted.error(e.to_string(), "give addresses or CIDR ranges such as \"10.0.0.0/8\""))?;
        }
        if let Some(timeout) = duration(&node.get("Timeout"))? {
            proxy = proxy.timeout(timeout);
        }
    }
    Ok(Some(proxy))
}

/// A certificate's `Acme`: `{ "Domains": [...], "Directory": "...",
/// "Contact": "mailto:..." or a list, "CacheDir": "...", "Challenge":
/// "TlsAlpn01" | "Http01" | "Auto", "Root": "pebble.minica.pem" }`. Paths
/// are relative to the configuration file.
#[cfg(feature = "acme")]
pub fn acme(
    config: &super::Config,
    node: &Node<'_>,
) -> Result<kite_connection_middleware::tls::acme::AcmeOptions, ConfigError> {
    use kite_connection_middleware::tls::acme::{AcmeOptions, Challenge};
    let domains_node = node.get("Domains");
    let domains = domains_node.list()?.unwrap_or_default();
    if domains.is_empty() {
        return Err(
            domains_node.error("is missing or empty", "give the certificate's domains, such as [\"example.com\"]")
        );
    }
    let mut options = AcmeOptions::new(domains);
    if let Some(directory) = node.get("Directory").string()? {
        options.directory = directory;
    }
    if let Some(contact) = node.get("Contact").list()? {
        options.contact = contact;
    }
    if let Some(dir) = node.get("CacheDir").string()? {
        options.cache_dir = config.resolve(&dir);
    }
    if let Some(root) = node.get("Root").string()? {
        options.root = Some(config.resolve(&root));
    }
    let challenge = node.get("Challenge");
    if let Some(text) = challenge.string()? {
        options.challenge = match text.to_ascii_lowercase().replace('-', "").as_str() {
            "auto" => Challenge::Auto,
            "tlsalpn01" => Challenge::TlsAlpn01,
            "http01" => Challenge::Http01,
            other => {
                return Err(challenge.error(format!("is \"{other}\", not a challenge"), "use TlsAlpn01, Http01 or Auto"))
            }
        };
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_in_every_form() {
        assert_eq!(parse_duration("00:00:30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("00:02:10"), Some(Duration::from_secs(130)));
        assert_eq!(parse_duration("1.00:00:01"), Some(Duration::from_secs(86_401)));
        assert_eq!(parse_duration("00:00:00.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("12"), Some(Duration::from_secs(12)));
        assert_eq!(parse_duration("00:61:00"), None);
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}
