//! `--metrics-addr`: the `kite.*` instruments in Prometheus text, served
//! by a second Kite server of their own.

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kite_server::{service_fn, RequestBody, Server, ShutdownHandle};
use metrics_exporter_prometheus::PrometheusBuilder;

/// The running metrics endpoint.
pub struct Metrics {
    /// Where it listens, as a URL.
    pub address: String,
    shutdown: ShutdownHandle,
    done: tokio::task::JoinHandle<()>,
}

impl Metrics {
    /// Stops the endpoint.
    pub async fn stop(self) {
        self.shutdown.shutdown();
        let _ = self.done.await;
    }
}

/// Installs a Prometheus recorder and serves it at `url`'s `/metrics`.
pub async fn serve(url: &str) -> Result<Metrics, String> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
    kite_server::metrics::describe();

    let server = Server::builder().urls([url]).handle_signals(false).bind().await.map_err(|e| e.to_string())?;
    let address = server.addresses().into_iter().next().ok_or("no address bound")?;
    let shutdown = server.shutdown_handle();
    let upkeep = handle.clone();
    let done = tokio::spawn(async move {
        // Histograms need their upkeep now and then.
        let upkeep = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        let served = server
            .serve(service_fn(move |request: Request<RequestBody>| {
                let handle = handle.clone();
                async move {
                    let response = if request.uri().path() == "/metrics" {
                        Response::builder()
                            .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
                            .body(handle.render())
                    } else {
                        Response::builder().status(StatusCode::NOT_FOUND).body(String::from("Not Found\n"))
                    };
                    Ok::<_, Infallible>(response.unwrap_or_default())
                }
            }))
            .await;
        upkeep.abort();
        if let Err(error) = served {
            tracing::error!(%error, "the metrics endpoint failed");
        }
    });
    Ok(Metrics { address, shutdown, done })
}
