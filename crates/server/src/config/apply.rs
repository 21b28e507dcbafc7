//! Applying configuration to a [`ServerBuilder`].

use kite_connection_middleware::tls::{Certificate, TlsOptions};

use super::values::{self, client_certificate_mode, data_rate, duration, protocols, tls_versions};
use super::{Config, ConfigError, Node};
use crate::dev_certs::DevCertificate;
use crate::{ListenUrl, ServerBuilder, ServerError};

impl ServerBuilder {
    /// Applies configuration in Kestrel's schema (see
    /// [`config`](crate::config)): `Urls`, `AllowedHosts`, and the
    /// `Kestrel` section's `Limits`, `EndpointDefaults`, `Certificates` and
    /// `Endpoints`. Configuration endpoints replace `Urls` and add up with
    /// endpoints in code; an HTTPS endpoint without a certificate takes
    /// `Certificates:Default`, then `Certificates:Development`, then the
    /// development certificate (`kite dev-certs`), then the HTTPS defaults.
    ///
    /// # Errors
    ///
    /// [`ServerError::Config`] naming the file, the key and the fix: a bad
    /// value, an unknown protocol name, a missing certificate file, or an
    /// HTTPS-only setting on an http endpoint.
    pub fn configuration(mut self, config: &Config) -> Result<Self, ServerError> {
        self.config_file = config.file().map(|file| (file.to_path_buf(), config.read_stamp()));
        let root = config.root();
        if let Some(urls) = root.get("Urls").string()? {
            self = self.urls([urls]);
        }
        if let Some(hosts) = root.get("AllowedHosts").list()? {
            self = self.allowed_hosts(hosts);
        }
        let kestrel = config.kestrel();
        self.apply_limits(&kestrel.get("Limits"))?;
        if let Some(add) = kestrel.get("AddServerHeader").bool()? {
            self.options.http.add_server_header = add;
        }
        let defaults = kestrel.get("EndpointDefaults");
        if let Some(protocols) = protocols(&defaults.get("Protocols"))? {
            self.options.http.protocols = protocols;
        }
        let endpoints = kestrel.get("Endpoints");
        for (name, endpoint) in endpoints.entries() {
            let listen = self.configured_endpoint(config, name, &endpoint, &defaults)?;
            self.config_endpoints.push(listen);
        }
        Ok(self)
    }

    fn apply_limits(&mut self, limits: &Node<'_>) -> Result<(), ConfigError> {
        let target = &mut self.options.http.limits;
        set(&mut target.max_request_line_size, limits.get("MaxRequestLineSize").number()?);
        set(&mut target.max_request_headers_total_size, limits.get("MaxRequestHeadersTotalSize").number()?);
        set(&mut target.max_request_header_count, limits.get("MaxRequestHeaderCount").number()?);
        set(&mut target.max_response_buffer_size, limits.get("MaxResponseBufferSize").number()?);
        // `null` means no limit for these, as in Kestrel.
        set(&mut target.max_request_body_size, nullable(&limits.get("MaxRequestBodySize"))?);
        set(&mut target.max_concurrent_connections, nullable(&limits.get("MaxConcurrentConnections"))?);
        set(
            &mut target.max_concurrent_upgraded_connections,
            nullable(&limits.get("MaxConcurrentUpgradedConnections"))?,
        );
        set(&mut target.keep_alive_timeout, duration(&limits.get("KeepAliveTimeout"))?);
        set(&mut target.request_headers_timeout, duration(&limits.get("RequestHeadersTimeout"))?);
        set(&mut target.min_request_body_data_rate, data_rate(&limits.get("MinRequestBodyDataRate"))?);
        set(&mut target.min_response_data_rate, data_rate(&limits.get("MinResponseDataRate"))?);
        let http2 = limits.get("Http2");
        let target = &mut self.options.http.http2;
        set(&mut target.max_streams_per_connection, http2.get("MaxStreamsPerConnection").number()?);
        set(&mut target.header_table_size, http2.get("HeaderTableSize").number()?);
        set(&mut target.max_frame_size, http2.get("MaxFrameSize").number()?);
        set(&mut target.max_request_header_field_size, http2.get("MaxRequestHeaderFieldSize").number()?);
        set(&mut target.initial_connection_window_size, http2.get("InitialConnectionWindowSize").number()?);
        set(&mut target.initial_stream_window_size, http2.get("InitialStreamWindowSize").number()?);
        set(&mut target.keep_alive_ping_delay, duration(&http2.get("KeepAlivePingDelay"))?.map(Some));
        set(&mut target.keep_alive_ping_timeout, duration(&http2.get("KeepAlivePingTimeout"))?);
        set(&mut target.request_drain_timeout, duration(&http2.get("RequestDrainTimeout"))?);
        set(&mut target.max_request_drain_size, http2.get("MaxRequestDrainSize").number()?);
        // Out-of-range values are named with their key.
        if let Err(message) = self.options.http.limits.validate() {
            return Err(limits.error(message.to_string(), "fix the value in the configuration"));
        }
        if let Err(message) = self.options.http.http2.validate() {
            return Err(http2.error(message.to_string(), "fix the value in the configuration"));
        }
        Ok(())
    }

    fn configured_endpoint(
        &self,
        config: &Config,
        name: &str,
        endpoint: &Node<'_>,
        defaults: &Node<'_>,
    ) -> Result<crate::ListenOptions, ConfigError> {
        let url_node = endpoint.get("Url");
        let url = url_node
            .string()?
            .ok_or_else(|| endpoint.error("has no Url", "give the endpoint a Url such as \"http://localhost:5000\""))?;
        if url.contains(';') {
            return Err(url_node.error("holds several URLs", "give each its own endpoint"));
        }
        let parsed: ListenUrl = url.parse().map_err(|e: ServerError| url_node.error(e.to_string(), "fix the URL"))?;
        let protocols = protocols(&endpoint.get("Protocols"))?;
        let proxy_protocol = values::proxy_protocol(&endpoint.get("ProxyProtocol"))?;
        let https_only = ["Certificate", "Sni", "SslProtocols", "ClientCertificateMode"];
        let tls = if parsed.https {
            Some(self.configured_tls(config, endpoint, defaults)?)
        } else {
            if let Some(key) = https_only.iter().find(|key| endpoint.get(key).exists()) {
                return Err(endpoint.get(key).error(
                    format!("is set on an http endpoint ({url})"),
                    "use an https:// Url, or remove the setting",
                ));
            }
            None
        };
        let name = name.to_string();
        let origin = ConfigError::new(config.file(), &url_node.key(), "", "");
        // Everything that shapes the endpoint, to tell a change on reload.
        let kestrel = config.kestrel();
        let definition = serde_json::json!([
            endpoint.value(),
            defaults.value(),
            kestrel.get("Certificates").value(),
            config.root().get("Urls").value()
        ])
        .to_string();
        Ok(self.endpoint(parsed.address, move |mut listen| {
            if let Some(protocols) = protocols {
                listen = listen.protocols(protocols);
            }
            if let Some(tls) = tls {
                listen = listen.use_https(tls);
            }
            if let Some(proxy_protocol) = proxy_protocol {
                listen = listen.use_proxy_protocol(proxy_protocol);
            }
            listen.name = Some(name);
            listen.origin = Some(origin);
            listen.definition = Some(definition);
            listen
        }))
    }

    fn configured_tls(
        &self,
        config: &Config,
        endpoint: &Node<'_>,
        defaults: &Node<'_>,
    ) -> Result<TlsOptions, ConfigError> {
        let certificates = config.kestrel().get("Certificates");
        let own = endpoint.get("Certificate");
        let mut tls = if own.exists() {
            certificate_source(config, &own)?
        } else if certificates.get("Default").exists() {
            certificate_source(config, &certificates.get("Default"))?
        } else if certificates.get("Development").exists() {
            certificate_source(config, &certificates.get("Development"))?
        } else if let Some(dev) = DevCertificate::find() {
            dev.tls_options().map_err(|e| {
                own.error(
                    format!("is missing and the development certificate failed: {e}"),
                    "run `kite dev-certs --clean` and `kite dev-certs`",
                )
            })?
        } else if let Some(https_defaults) = self.https_defaults_for_config() {
            https_defaults
        } else {
            return Err(own.error(
                "is missing, and there is no Certificates:Default nor development certificate",
                "give the endpoint a Certificate { Path, KeyPath }, set Certificates:Default, or run `kite dev-certs`",
            ));
        };
        let sni = endpoint.get("Sni");
        for (host, entry) in sni.entries() {
            for key in ["Protocols", "SslProtocols", "ClientCertificateMode"] {
                if entry.get(key).exists() {
                    return Err(entry.get(key).error(
                        "cannot differ per SNI name in Kite",
                        "set it on the endpoint instead; Sni entries take a Certificate",
                    ));
                }
            }
            let certificate = entry.get("Certificate");
            if !certificate.exists() {
                return Err(certificate.error("is missing", "give the SNI entry a Certificate { Path, KeyPath }"));
            }
            tls = tls.sni(host, load_certificate(config, &certificate)?);
        }
        let versions = match tls_versions(&endpoint.get("SslProtocols"))? {
            Some(versions) => Some(versions),
            None => tls_versions(&defaults.get("SslProtocols"))?,
        };
        if let Some(versions) = versions {
            tls = tls.versions(&versions);
        }
        let mode = match client_certificate_mode(&endpoint.get("ClientCertificateMode"))? {
            Some(mode) => Some(mode),
            None => client_certificate_mode(&defaults.get("ClientCertificateMode"))?,
        };
        if let Some(mode) = mode {
            tls = tls.client_certificate_mode(mode);
        }
        Ok(tls)
    }
}

/// Overwrites `slot` with a value the configuration gave.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// A whole number that may also be `null` (no limit): `None` when absent.
fn nullable(node: &Node<'_>) -> Result<Option<Option<u64>>, ConfigError> {
    match node.value() {
        None => Ok(None),
        Some(serde_json::Value::Null) => Ok(Some(None)),
        Some(_) => Ok(Some(node.u64()?)),
    }
}

/// A certificate node: `{ "Path": "cert.pem", "KeyPath": "key.pem" }` (PEM;
/// relative to the configuration file).
/// TLS options serving the certificate `node` describes: PEM files, or
/// with the `acme` feature `Acme { Domains, Directory, Contact, CacheDir,
/// Challenge, Root }`.
fn certificate_source(config: &Config, node: &Node<'_>) -> Result<TlsOptions, ConfigError> {
    let acme = node.get("Acme");
    if acme.exists() {
        #[cfg(feature = "acme")]
        return Ok(TlsOptions::new().acme(super::values::acme(config, &acme)?));
        #[cfg(not(feature = "acme"))]
        return Err(acme.error("needs Kite built with the `acme` feature", "build with --features acme"));
    }
    Ok(TlsOptions::new().certificate(load_certificate(config, node)?))
}

fn load_certificate(config: &Config, node: &Node<'_>) -> Result<Certificate, ConfigError> {
    if node.get("Subject").exists() || node.get("Store").exists() {
        return Err(
            node.error("names a certificate store, which only Windows has", "give Path and KeyPath to PEM files")
        );
    }
    if node.get("Password").exists() {
        return Err(node.get("Password").error(
            "is set, but Kite reads unencrypted PEM keys only",
            "decrypt the key (openssl pkey -in key.pem -out plain.pem) and remove Password",
        ));
    }
    let path_node = node.get("Path");
    let path = path_node.string()?.ok_or_else(|| node.error("has no Path", "give Path and KeyPath to PEM files"))?;
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".pfx") || lower.ends_with(".p12") {
        return Err(path_node.error(
            format!("is a PKCS#12 file ({path})"),
            "convert it to PEM: openssl pkcs12 -in cert.pfx -nokeys -out cert.pem; openssl pkcs12 -in cert.pfx -nocerts -nodes -out key.pem",
        ));
    }
    let chain = config.resolve(&path);
    let key_node = node.get("KeyPath");
    let key = match key_node.string()? {
        Some(key) => config.resolve(&key),
        None => chain.clone(),
    };
    if !chain.is_file() {
        return Err(path_node.error(format!("names {}, which does not exist", chain.display()), "check the path"));
    }
    if !key.is_file() {
        return Err(key_node.error(format!("names {}, which does not exist", key.display()), "check the path"));
    }
    Certificate::from_pem_files(&chain, &key)
        .map_err(|e| path_node.error(e.to_string(), "give a PEM certificate chain and its PEM private key"))
}
