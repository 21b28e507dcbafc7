//! Configuration in Kestrel's schema: the documentation's examples load
//! and bind, the environment and case rules hold, and every error names
//! the file, the key and the fix.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kite_server::config::Config;
use kite_server::{Protocols, Server, ServerError};

/// A scratch directory with a self-signed certificate for `localhost`.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kite-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (stem, host) in [("cert", "localhost"), ("other", "example.com")] {
            let certified = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
            std::fs::write(dir.join(format!("{stem}.pem")), certified.cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{stem}.key.pem")), certified.signing_key.serialize_pem()).unwrap();
        }
        Self { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn load(path: &Path, env: &[(&str, &str)]) -> Config {
    Config::from_sources(Some(path), env.iter().copied()).expect("the configuration loads")
}

async fn bind(config: &Config) -> Result<Server, ServerError> {
    Server::builder().handle_signals(false).configuration(config)?.bind().await
}

/// The documentation's endpoints example, with PEM files and free ports.
const DOCS_EXAMPLE: &str = r#"{
  "Kestrel": {
    "EndpointDefaults": { "Protocols": "Http1AndHttp2" },
    "Limits": {
      "MaxConcurrentConnections": 100,
      "MaxConcurrentUpgradedConnections": 100,
      "MaxRequestBodySize": null,
      "KeepAliveTimeout": "00:02:10",
      "RequestHeadersTimeout": "30s",
      "MinRequestBodyDataRate": { "BytesPerSecond": 100, "GracePeriod": "00:00:10" },
      "Http2": { "MaxStreamsPerConnection": 50, "InitialStreamWindowSize": 131072, "RequestDrainTimeout": "00:00:02", "MaxRequestDrainSize": 65536 }
    },
    "Endpoints": {
      "Http": { "Url": "http://127.0.0.1:0" },
      "HttpsInlineCertFile": {
        "Url": "https://127.0.0.1:0",
        "Certificate": { "Path": "cert.pem", "KeyPath": "cert.key.pem" }
      },
      "HttpsDefaultCert": { "Url": "https://127.0.0.1:0", "Protocols": "Http1" },
      "Https": {
        "Url": "https://127.0.0.1:0",
        "SslProtocols": ["Tls12", "Tls13"],
        "Sni": {
          "example.com": { "Certificate": { "Path": "other.pem", "KeyPath": "other.key.pem" } },
          "*": { "Certificate": { "Path": "cert.pem", "KeyPath": "cert.key.pem" } }
        }
      }
    },
    "Certificates": {
      "Default": { "Path": "cert.pem", "KeyPath": "cert.key.pem" }
    }
  },
  "AllowedHosts": "*"
}"#;

#[tokio::test]
async fn the_documentation_example_loads_and_binds_every_endpoint() {
    let scratch = Scratch::new("docs");
    let config = load(&scratch.write("kite.json", DOCS_EXAMPLE), &[]);
    let builder = Server::builder().handle_signals(false).configuration(&config).unwrap();
    let options = builder.current_options();
    assert_eq!(options.http.limits.max_concurrent_connections, Some(100));
    assert_eq!(options.http.limits.max_request_body_size, None, "null means no limit");
    assert_eq!(options.http.limits.keep_alive_timeout, Duration::from_secs(130));
    assert_eq!(options.http.limits.request_headers_timeout, Duration::from_secs(30));
    let rate = options.http.limits.min_request_body_data_rate.unwrap();
    assert_eq!((rate.bytes_per_second, rate.grace_period), (100, Duration::from_secs(10)));
    assert_eq!(options.http.http2.max_streams_per_connection, 50);
    assert_eq!(options.http.http2.request_drain_timeout, std::time::Duration::from_secs(2));
    assert_eq!(options.http.http2.max_request_drain_size, 65536);
    let server = builder.bind().await.expect("every endpoint binds");
    let endpoints = server.endpoints();
    let names: Vec<_> = endpoints.iter().map(|e| e.name.clone().unwrap()).collect();
    assert_eq!(names, ["Http", "HttpsInlineCertFile", "HttpsDefaultCert", "Https"]);
    assert!(endpoints[0].url.starts_with("http://127.0.0.1:"));
    assert!(endpoints[1..].iter().all(|e| e.url.starts_with("https://127.0.0.1:")));
    assert_eq!(endpoints[2].protocols, Protocols::Http1);
    assert_eq!(endpoints[3].protocols, Protocols::Http1AndHttp2);
}

#[tokio::test]
async fn keys_are_case_insensitive_and_toml_reads_the_same() {
    let scratch = Scratch::new("case");
    let json = scratch.write(
        "kite.json",
        r#"{ "kestrel": { "ENDPOINTS": { "web": { "url": "http://127.0.0.1:0", "PROTOCOLS": "http1" } } } }"#,
    );
    let server = bind(&load(&json, &[])).await.unwrap();
    assert_eq!(server.endpoints()[0].protocols, Protocols::Http1);
    let toml = scratch.write(
        "kite.toml",
        "[Kite.Endpoints.Web]\nUrl = \"http://127.0.0.1:0\"\nProtocols = \"Http2\"\n[Kite.Limits]\nMaxRequestHeaderCount = 20\n",
    );
    let config = load(&toml, &[]);
    let builder = Server::builder().configuration(&config).unwrap();
    assert_eq!(builder.current_options().http.limits.max_request_header_count, 20, "the Kite section works too");
    let server = builder.handle_signals(false).bind().await.unwrap();
    assert_eq!(server.endpoints()[0].protocols, Protocols::Http2);
}

#[tokio::test]
async fn the_environment_overrides_the_file() {
    let scratch = Scratch::new("env");
    let file = scratch.write(
        "kite.json",
        r#"{ "Kestrel": { "Limits": { "MaxConcurrentConnections": 50 },
                          "Endpoints": { "Http": { "Url": "http://127.0.0.1:0" } } } }"#,
    );
    let env = [
        ("KITE__Kestrel__Limits__MaxConcurrentConnections", "100"),
        ("KITE__KESTREL__LIMITS__KEEPALIVETIMEOUT", "00:00:15"),
        ("KITE__Kestrel__Endpoints__Extra__Url", "http://127.0.0.1:0"),
        ("KITE__AllowedHosts", "example.com"),
        ("OTHER__Kestrel__Limits__MaxRequestHeaderCount", "1"),
    ];
    let config = load(&file, &env);
    let builder = Server::builder().configuration(&config).unwrap();
    assert_eq!(builder.current_options().http.limits.max_concurrent_connections, Some(100));
    assert_eq!(builder.current_options().http.limits.keep_alive_timeout, Duration::from_secs(15));
    assert_eq!(builder.current_options().http.limits.max_request_header_count, 100, "only KITE__ is read");
    let server = builder.handle_signals(false).bind().await.unwrap();
    assert_eq!(server.endpoints().len(), 2, "an endpoint can come from the environment alone");
}

/// Loads `json` and returns the error binding it gives, as text.
async fn error_of(scratch: &Scratch, json: &str) -> String {
    let config = load(&scratch.write("kite.json", json), &[]);
    match bind(&config).await {
        Ok(_) => panic!("{json} should fail"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn every_error_names_the_file_the_key_and_the_fix() {
    let scratch = Scratch::new("errors");
    let file = scratch.dir.join("kite.json").display().to_string();
    let cases = [
        (
            r#"{ "Kestrel": { "Limits": { "MaxConcurrentConnections": "many" } } }"#,
            "Kestrel:Limits:MaxConcurrentConnections",
            "give a whole number",
        ),
        (
            r#"{ "Kestrel": { "Endpoints": { "Web": { "Url": "http://127.0.0.1:0", "Protocols": "Http9" } } } }"#,
            "Kestrel:Endpoints:Web:Protocols",
            "use Http1, Http2, Http1AndHttp2, Http3 or Http1AndHttp2AndHttp3",
        ),
        (
            r#"{ "Kestrel": { "Endpoints": { "Tls": { "Url": "https://127.0.0.1:0",
                 "Certificate": { "Path": "missing.pem", "KeyPath": "missing.key" } } } } }"#,
            "Kestrel:Endpoints:Tls:Certificate:Path",
            "check the path",
        ),
        (
            r#"{ "Kestrel": { "Endpoints": { "Web": { "Url": "http://127.0.0.1:0", "SslProtocols": ["Tls13"] } } } }"#,
            "Kestrel:Endpoints:Web:SslProtocols",
            "use an https:// Url",
        ),
        (
            r#"{ "Kestrel": { "Limits": { "KeepAliveTimeout": "soon" } } }"#,
            "Kestrel:Limits:KeepAliveTimeout",
            "00:00:30",
        ),
        (
            r#"{ "Kestrel": { "Limits": { "MinResponseDataRate": { "BytesPerSecond": 240, "GracePeriod": "00:00:01" } } } }"#,
            "Kestrel:Limits",
            "GracePeriod",
        ),
        (r#"{ "Kestrel": { "Endpoints": { "Web": { "Protocols": "Http1" } } } }"#, "Kestrel:Endpoints:Web", "Url"),
        (
            r#"{ "Kestrel": { "Endpoints": { "Web": { "Url": "http://127.0.0.1:0", "ProxyProtocol": "Sometimes" } } } }"#,
            "Kestrel:Endpoints:Web:ProxyProtocol",
            "\"Required\" or \"Optional\"",
        ),
        (
            r#"{ "Kestrel": { "Endpoints": { "Web": { "Url": "http://127.0.0.1:0", "ProxyProtocol": { "TrustedProxies": ["10.0.0.0/99"] } } } } }"#,
            "Kestrel:Endpoints:Web:ProxyProtocol:TrustedProxies",
            "CIDR",
        ),
    ];
    for (json, key, fix) in cases {
        let message = error_of(&scratch, json).await;
        assert!(message.starts_with(&file), "names the file: {message}");
        assert!(message.contains(key), "names {key}: {message}");
        assert!(message.contains(fix), "says how to fix it ({fix}): {message}");
    }
}

#[tokio::test]
async fn a_port_conflict_names_the_endpoint_and_leaves_nothing_bound() {
    let scratch = Scratch::new("conflict");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free_port = free.local_addr().unwrap().port();
    drop(free);
    let json = format!(
        r#"{{ "Kestrel": {{ "Endpoints": {{
            "First": {{ "Url": "http://127.0.0.1:{free_port}" }},
            "Second": {{ "Url": "http://127.0.0.1:{port}" }} }} }} }}"#
    );
    let message = error_of(&scratch, &json).await;
    assert!(message.contains("Kestrel:Endpoints:Second:Url"), "{message}");
    assert!(message.contains("choose a free port"), "{message}");
    // The first endpoint was released.
    std::net::TcpListener::bind(("127.0.0.1", free_port)).expect("nothing is left bound");
}
