//! `kite`: runs the Kite server with its demo application.
//!
//! ```text
//! kite [--urls "http://localhost:5000;https://localhost:5001"] [--transport sockets|mio|uring]
//!      [--certificate CERT.pem --certificate-key KEY.pem] [--log info]
//!      [--metrics-addr http://127.0.0.1:9090] [--config kite.json]
//! kite dev-certs [--clean]
//! ```
//!
//! For each bound address it prints `Now listening on: URL` to stdout, then
//! serves until SIGINT or SIGTERM, and shuts down gracefully. Started by
//! systemd socket activation (`LISTEN_FDS`), it serves the sockets it was
//! given.

mod demo;
mod metrics;
mod restart;
mod trim;
mod workers;

/// jemalloc, with the `jemalloc` feature (the default); see `trim`.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kite_server::config::Config;
use kite_server::dev_certs::DevCertificate;
use kite_server::{handover, Certificate, Server, ServerBuilder, TlsOptions};
use tracing_subscriber::EnvFilter;

/// Runs the Kite HTTP server with its demo application.
#[derive(Clone, Debug, Parser)]
#[command(name = "kite", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Addresses to listen on, separated by `;`: http://localhost:5000,
    /// https://localhost:5001, http://127.0.0.1:0, http://[::1]:8080,
    /// http://*:80, http://unix:/run/kite.sock. Default:
    /// http://localhost:5000, and https://localhost:5001 when a
    /// development certificate exists.
    #[arg(long, env = "KITE_URLS")]
    urls: Option<String>,

    /// The transport: `sockets` (tokio sockets), `mio` (event loops of
    /// Kite's own) or `uring` (io_uring loops of Kite's own; Linux 6.0 or
    /// later).
    #[arg(long, env = "KITE_TRANSPORT", default_value = "sockets")]
    transport: String,

    /// The HTTP versions every endpoint speaks, by Kestrel's names:
    /// Http1, Http2, Http1AndHttp2, Http3, Http1AndHttp2AndHttp3. HTTP/3
    /// runs over QUIC on the same port as an https endpoint's TCP; http
    /// endpoints serve HTTP/1.1 and HTTP/2 whatever this says. Default:
    /// Http1AndHttp2, or the configuration's EndpointDefaults.
    #[arg(long, env = "KITE_PROTOCOLS")]
    protocols: Option<String>,

    /// The PEM certificate chain for https URLs (default: the development
    /// certificate).
    #[arg(long, env = "KITE_CERTIFICATE", requires = "certificate_key")]
    certificate: Option<PathBuf>,

    /// The PEM private key of --certificate.
    #[arg(long, env = "KITE_CERTIFICATE_KEY", requires = "certificate")]
    certificate_key: Option<PathBuf>,

    /// Get the https endpoints' certificate from an ACME server (Let's
    /// Encrypt) for this domain, at the first start, and renew it while
    /// serving. Repeat it for more domains (one certificate for all).
    /// Default: none.
    #[arg(
        long = "acme",
        value_name = "DOMAIN",
        env = "KITE_ACME",
        value_delimiter = ',',
        conflicts_with = "certificate"
    )]
    acme: Vec<String>,

    /// The ACME directory URL. Default: Let's Encrypt's production one;
    /// its staging one is https://acme-staging-v02.api.letsencrypt.org/directory.
    #[arg(long, env = "KITE_ACME_DIRECTORY", requires = "acme")]
    acme_directory: Option<String>,

    /// The ACME account's contact, such as mailto:admin@example.com.
    /// Repeatable. Default: none.
    #[arg(long, env = "KITE_ACME_CONTACT", requires = "acme")]
    acme_contact: Vec<String>,

    /// Where the ACME account and certificates are kept. Default:
    /// $XDG_DATA_HOME/kite/acme, else ~/.local/share/kite/acme.
    #[arg(long, env = "KITE_ACME_CACHE", requires = "acme")]
    acme_cache: Option<PathBuf>,

    /// A PEM root to trust for the ACME server's own API (a private ACME
    /// server, or pebble's test CA). Default: the system's roots.
    #[arg(long, env = "KITE_ACME_ROOT", requires = "acme")]
    acme_root: Option<PathBuf>,

    /// The ACME challenge: tls-alpn-01, http-01, or auto (TLS-ALPN-01 when
    /// offered, else HTTP-01). Default: auto.
    #[arg(long, env = "KITE_ACME_CHALLENGE", requires = "acme")]
    acme_challenge: Option<String>,

    /// `Development` (the default) creates a development certificate on the
    /// first run; any other value does not.
    #[arg(long, env = "KITE_ENVIRONMENT", default_value = "Development")]
    environment: String,

    /// Log filter: a level (error, warn, info, debug, trace) or
    /// tracing-subscriber directives such as `kite_http_core=debug`.
    #[arg(long, env = "KITE_LOG", default_value = "info")]
    log: String,

    /// A configuration file in Kestrel's schema, JSON or TOML by its
    /// extension: `Kestrel:Endpoints`, `Limits`, `Certificates`,
    /// `EndpointDefaults`, `Urls`, `AllowedHosts`. `KITE__Section__Key`
    /// environment variables override it; flags override both.
    #[arg(long, env = "KITE_CONFIG")]
    config: Option<PathBuf>,

    /// Run this many worker processes, each binding the endpoints with
    /// SO_REUSEPORT so the kernel spreads connections across them; the
    /// first process supervises them (restarts one that dies, stops all on
    /// SIGTERM). TCP endpoints only. Default: 1 (no workers).
    #[arg(long, env = "KITE_WORKERS", default_value_t = 1)]
    workers: usize,

    /// Answer a readiness probe at this path (for example /healthz): 200
    /// while accepting, 503 from the moment a shutdown starts. An upgrade
    /// (SIGUSR2) hands the host over and the probe stays 200. Default: none.
    #[arg(long, env = "KITE_HEALTH_PATH")]
    health_path: Option<String>,

    /// Seconds to go on accepting after a shutdown starts, with the probe
    /// already answering 503, so a load balancer stops sending work first.
    /// An upgrade skips it.
    #[arg(long, env = "KITE_DRAIN_DELAY", default_value_t = 0)]
    drain_delay: u64,

    /// Seconds a graceful shutdown waits for requests in flight (after the
    /// drain delay) before it aborts the connections left.
    #[arg(long, env = "KITE_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    shutdown_timeout: u64,

    /// Fingerprint every TLS client (JA4 and the JA3 string, from its
    /// ClientHello) for /info to show. Default: off.
    #[arg(long, env = "KITE_JA4")]
    ja4: bool,

    /// Serve the `kite.*` metrics in Prometheus text at this URL's
    /// `/metrics` (for example http://127.0.0.1:9090). Default: off.
    #[arg(long, env = "KITE_METRICS_ADDR")]
    metrics_addr: Option<String>,
}

#[derive(Clone, Debug, Subcommand)]
enum Command {
    /// Creates (if missing) and shows the development certificate for
    /// localhost, or removes it.
    DevCerts {
        /// Remove the development certificate.
        #[arg(long)]
        clean: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::DevCerts { clean }) = cli.command {
        return dev_certs(clean);
    }
    let filter = match EnvFilter::try_new(&cli.log) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("kite: invalid --log value '{}': {e}", cli.log);
            return ExitCode::from(2);
        }
    };
    // Colours only for a person at a terminal, not in a file or a pipe.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();

    // Sockets from systemd socket activation, taken before the first
    // thread starts, so that the variables can go: children must not take
    // them too, and the environment cannot change soundly later.
    let activated = kite_server::systemd::listen_fds();
    // Sockets a predecessor handed over in an upgrade, taken the same way.
    let inherited = kite_server::handover::inherited();
    for name in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", handover::FDS_VAR, handover::READY_VAR] {
        if std::env::var_os(name).is_some() {
            std::env::remove_var(name);
        }
    }

    // Freed memory goes back to the system once the server is quiet.
    trim::spawn();

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    // A worker runs its share of the cores.
    if let Some(threads) = std::env::var(workers::THREADS_VAR).ok().and_then(|n| n.parse::<usize>().ok()) {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kite: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli, activated, inherited))
}

/// Serves until a signal; `activated` are the sockets systemd passed,
/// `inherited` those a predecessor handed over.
async fn run(cli: Cli, activated: Vec<std::os::fd::OwnedFd>, mut inherited: handover::Inherited) -> ExitCode {
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("kite: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.workers > 1 && !workers::is_worker() {
        if !activated.is_empty() {
            eprintln!("kite: --workers cannot share sockets from systemd socket activation; run one process");
            return ExitCode::from(2);
        }
        return workers::supervise(&cli, &config).await;
    }
    let builder = match prepare(&cli, &config, activated) {
        Ok(builder) => builder,
        Err(message) => {
            eprintln!("kite: {message}");
            return ExitCode::from(2);
        }
    };
    let ready = inherited.take_ready();
    let builder = if !inherited.is_empty() { builder.inherit(inherited) } else { builder };
    let server = match builder.bind().await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("kite: {e}");
            return ExitCode::FAILURE;
        }
    };

    let metrics = match &cli.metrics_addr {
        Some(url) => match metrics::serve(url).await {
            Ok(metrics) => Some(metrics),
            Err(message) => {
                eprintln!("kite: --metrics-addr {url}: {message}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    {
        let mut stdout = std::io::stdout().lock();
        for address in server.addresses() {
            let _ = writeln!(stdout, "Now listening on: {address}");
        }
        for endpoint in server.endpoints() {
            if let Some(name) = &endpoint.name {
                let _ = writeln!(stdout, "Endpoint {name}: {} ({:?})", endpoint.url, endpoint.protocols);
            }
        }
        if let Some(metrics) = &metrics {
            let _ = writeln!(stdout, "Metrics on: {}/metrics", metrics.address);
        }
        let _ = writeln!(stdout, "Application started. Press Ctrl+C to shut down.");
        let _ = stdout.flush();
    }
    // A successor tells its predecessor it serves; under systemd, READY.
    // A worker tells its supervisor, which speaks for it to systemd; its
    // SIGUSR2 comes from the supervisor once its replacement serves.
    if workers::is_worker() {
        workers::notify_supervisor(ready);
        tokio::spawn(restart::on_sigusr2_hand_over(server.shutdown_handle()));
    } else {
        notify_ready(ready);
        match server.handover() {
            Ok(sockets) => {
                tokio::spawn(restart::on_sigusr2(sockets, server.shutdown_handle()));
            }
            Err(e) => tracing::info!(reason = %e, "upgrades on SIGUSR2 are off"),
        }
    }
    #[cfg(feature = "acme")]
    let demo = demo::Demo { acme: acme(&cli).ok().flatten() };
    #[cfg(not(feature = "acme"))]
    let demo = demo::Demo::default();
    let served = server.serve(demo).await;
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kite: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Tells a predecessor (and systemd) that this process serves.
fn notify_ready(mut ready: handover::Inherited) {
    if !ready.is_empty() {
        match ready.notify_ready() {
            Ok(()) => tracing::info!("serving on the sockets handed over; the previous process drains"),
            Err(e) => tracing::warn!(error = %e, "the previous process did not hear that this one is ready"),
        }
    }
    let pid = std::process::id();
    let _ = sd_notify::notify(&[sd_notify::NotifyState::MainPid(pid), sd_notify::NotifyState::Ready]);
}

/// The builder the command line and the configuration describe, with
/// `activated` (systemd's sockets) as endpoints of their own.
fn prepare(cli: &Cli, config: &Config, activated: Vec<std::os::fd::OwnedFd>) -> Result<ServerBuilder, String> {
    let builder = Server::builder().configuration(config).map_err(|e| e.to_string())?;
    // Sockets from systemd socket activation are endpoints of their own.
    let socket_activated = !activated.is_empty();
    let builder = activated.into_iter().fold(builder, ServerBuilder::listen_fd);
    // Addresses from the configuration or systemd replace the default URLs.
    let configured = socket_activated || workers::configured(config);
    let mut builder = configure(builder, cli, configured)?;
    if cli.ja4 {
        // First in every chain: a plain connection passes it untouched.
        builder = builder.connection_middleware(kite_server::client_hello::ClientHelloListener::ja4());
    }
    builder = builder.reuse_port(cli.workers > 1 || workers::is_worker());
    if let Some(path) = &cli.health_path {
        builder = builder.health_check(path.as_str());
    }
    let mut options = builder.current_options().clone();
    options.drain_delay = std::time::Duration::from_secs(cli.drain_delay);
    options.shutdown_timeout = std::time::Duration::from_secs(cli.shutdown_timeout);
    Ok(builder.options(options))
}

/// Applies the command line to a builder: transport, URLs and certificates.
fn configure(builder: ServerBuilder, cli: &Cli, configured: bool) -> Result<ServerBuilder, String> {
    // A worker shares its ports with the others.
    let reuse_port = cli.workers > 1 || workers::is_worker();
    let mut builder = transport(builder, &cli.transport, reuse_port)?;
    if let Some(protocols) = &cli.protocols {
        let mut options = builder.current_options().clone();
        options.http.protocols = protocols.parse().map_err(|e| format!("--protocols: {e}"))?;
        builder = builder.options(options);
    }
    let development = cli.environment.eq_ignore_ascii_case("Development");
    let tls = match (&cli.certificate, &cli.certificate_key) {
        (Some(cert), Some(key)) => {
            Some(TlsOptions::new().certificate(Certificate::from_pem_files(cert, key).map_err(|e| e.to_string())?))
        }
        _ => match acme_tls(cli)? {
            Some(tls) => Some(tls),
            None => development_certificate(cli.urls.is_none() && !configured && development)?,
        },
    };
    let https = tls.is_some();
    if let Some(tls) = tls {
        builder = builder.https_defaults(tls);
    }
    let urls = match &cli.urls {
        Some(urls) => urls.clone(),
        None if configured => return Ok(builder),
        None if https => format!("{};https://localhost:5001", kite_server::DEFAULT_URL),
        None => kite_server::DEFAULT_URL.to_string(),
    };
    Ok(builder.urls([urls.as_str()]))
}

/// The ACME certificate the command line asks for (`--acme`): the same
/// one however often this is called while it lives.
#[cfg(feature = "acme")]
fn acme(cli: &Cli) -> Result<Option<kite_server::acme::Acme>, String> {
    use kite_server::acme::{Acme, AcmeOptions, Challenge};
    if cli.acme.is_empty() {
        return Ok(None);
    }
    let mut options = AcmeOptions::new(cli.acme.iter().cloned()).contact(cli.acme_contact.clone());
    if let Some(directory) = &cli.acme_directory {
        options.directory = directory.clone();
    }
    if let Some(cache) = &cli.acme_cache {
        options.cache_dir = cache.clone();
    }
    options.root = cli.acme_root.clone();
    options.challenge = match cli.acme_challenge.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("auto") => Challenge::Auto,
        Some("tls-alpn-01") => Challenge::TlsAlpn01,
        Some("http-01") => Challenge::Http01,
        Some(other) => return Err(format!("--acme-challenge {other}: use tls-alpn-01, http-01 or auto")),
    };
    Ok(Some(Acme::new(options)))
}

/// TLS options serving the `--acme` certificate, if asked for.
fn acme_tls(cli: &Cli) -> Result<Option<TlsOptions>, String> {
    #[cfg(feature = "acme")]
    return Ok(acme(cli)?.map(|acme| TlsOptions::new().acme_shared(acme)));
    #[cfg(not(feature = "acme"))]
    match cli.acme.is_empty() {
        true => Ok(None),
        false => Err("this kite was built without the acme feature".into()),
    }
}

/// The development certificate's TLS options, creating the certificate
/// first when `create` is set and there is none.
fn development_certificate(create: bool) -> Result<Option<TlsOptions>, String> {
    let certificate = match DevCertificate::find() {
        Some(found) => found,
        None if create => {
            let created =
                DevCertificate::create().map_err(|e| format!("cannot create a development certificate: {e}"))?;
            println!("Created a development certificate for localhost at {}", created.cert_path().display());
            created
        }
        None => return Ok(None),
    };
    certificate.tls_options().map(Some).map_err(|e| e.to_string())
}

fn dev_certs(clean: bool) -> ExitCode {
    if clean {
        return match DevCertificate::clean() {
            Ok(true) => {
                println!("Removed the development certificate.");
                ExitCode::SUCCESS
            }
            Ok(false) => {
                println!("There is no development certificate.");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kite: cannot remove the development certificate: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let certificate = match DevCertificate::find() {
        Some(found) => found,
        None => match DevCertificate::create() {
            Ok(created) => {
                println!("Created a development certificate for localhost, 127.0.0.1 and ::1.");
                created
            }
            Err(e) => {
                eprintln!("kite: cannot create a development certificate: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    println!("Certificate: {}", certificate.cert_path().display());
    println!("Key:         {}", certificate.key_path().display());
    println!("It is self-signed: clients must trust it or skip verification (curl -k).");
    ExitCode::SUCCESS
}

/// Chooses the transport named on the command line; `reuse_port` when
/// several processes share the ports.
fn transport(builder: ServerBuilder, name: &str, reuse_port: bool) -> Result<ServerBuilder, String> {
    let _socket = kite_socket::SocketOptions::default().reuse_port(reuse_port);
    match name {
        "sockets" => Ok(builder),
        #[cfg(feature = "mio")]
        "mio" => {
            let options = kite_transport_mio::MioOptions::default().socket(_socket);
            let transport = kite_transport_mio::MioTransport::new(options)
                .map_err(|e| format!("cannot start the mio transport: {e}"))?;
            Ok(builder.transport(transport))
        }
        #[cfg(not(feature = "mio"))]
        "mio" => Err("this kite was built without the mio feature".into()),
        #[cfg(feature = "uring")]
        "uring" => {
            let options = kite_transport_uring::UringOptions::default().socket(_socket);
            let transport = kite_transport_uring::UringTransport::new(options)
                .map_err(|e| format!("cannot start the io_uring transport: {e}; use --transport sockets"))?;
            Ok(builder.transport(transport))
        }
        #[cfg(not(feature = "uring"))]
        "uring" => Err("this kite was built without the uring feature; use --transport sockets".into()),
        other => Err(format!("unknown transport '{other}': use sockets, mio or uring")),
    }
}
