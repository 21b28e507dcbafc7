//! `kite`: runs the Kite server with its demo application.
//!
//! ```text
//! kite [--urls "http://localhost:5000;http://unix:/tmp/kite.sock"] [--log info]
//! ```
//!
//! For each bound address it prints `Now listening on: URL` to stdout, then
//! serves until SIGINT or SIGTERM, and shuts down gracefully.

mod demo;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use kite_server::Server;
use tracing_subscriber::EnvFilter;

/// Runs the Kite HTTP server with its demo application.
#[derive(Debug, Parser)]
#[command(name = "kite", version, about)]
struct Cli {
    /// Addresses to listen on, separated by `;`: http://localhost:5000,
    /// http://127.0.0.1:0, http://[::1]:8080, http://*:80,
    /// http://unix:/run/kite.sock.
    #[arg(long, env = "KITE_URLS", default_value = kite_server::DEFAULT_URL)]
    urls: String,

    /// The transport: `sockets` (tokio sockets) or `mio` (event loops of
    /// Kite's own).
    #[arg(long, env = "KITE_TRANSPORT", default_value = "sockets")]
    transport: String,

    /// Log filter: a level (error, warn, info, debug, trace) or
    /// tracing-subscriber directives such as `kite_http_core=debug`.
    #[arg(long, env = "KITE_LOG", default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match EnvFilter::try_new(&cli.log) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("kite: invalid --log value '{}': {e}", cli.log);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kite: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let builder = match transport(Server::builder(), &cli.transport) {
            Ok(builder) => builder,
            Err(message) => {
                eprintln!("kite: {message}");
                return ExitCode::from(2);
            }
        };
        let server = match builder.urls([cli.urls.as_str()]).bind().await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("kite: {e}");
                return ExitCode::FAILURE;
            }
        };
        {
            let mut stdout = std::io::stdout().lock();
            for address in server.addresses() {
                let _ = writeln!(stdout, "Now listening on: {address}");
            }
            let _ = writeln!(stdout, "Application started. Press Ctrl+C to shut down.");
            let _ = stdout.flush();
        }
        match server.serve(demo::Demo).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kite: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Chooses the transport named on the command line.
fn transport(builder: kite_server::ServerBuilder, name: &str) -> Result<kite_server::ServerBuilder, String> {
    match name {
        "sockets" => Ok(builder),
        #[cfg(feature = "mio")]
        "mio" => {
            let transport = kite_transport_mio::MioTransport::new(kite_transport_mio::MioOptions::default())
                .map_err(|e| format!("cannot start the mio transport: {e}"))?;
            Ok(builder.transport(transport))
        }
        #[cfg(not(feature = "mio"))]
        "mio" => Err("this kite was built without the mio feature".into()),
        other => Err(format!("unknown transport '{other}': use sockets or mio")),
    }
}
