//! Following the configuration file: when it changes, the endpoints it
//! names are compared with the running ones; changed and removed ones stop
//! and close their connections gracefully, new and changed ones are bound,
//! and unchanged ones keep serving their connections.

use std::path::PathBuf;
use std::time::Duration;

use kite_http_core::Protocols;

use crate::config::{file_stamp, Config, FileStamp};
use crate::endpoint::{self, Launcher, Running, RunningSet};
use crate::listen::ListenOptions;
use crate::{ServerError, ShutdownHandle};

/// How often the file is looked at.
const POLL: Duration = Duration::from_secs(1);
/// How long a stopped endpoint's connections get to finish.
const DRAIN: Duration = Duration::from_secs(5);

/// Reads a configuration's endpoints the way the builder did at startup
/// (its endpoint and HTTPS defaults applied).
pub(crate) type ReadEndpoints = Box<dyn Fn(&Config) -> Result<Vec<ListenOptions>, ServerError> + Send + Sync>;

/// Where the configuration comes from, and what rebuilds its endpoints.
pub(crate) struct ReloadSource {
    pub file: PathBuf,
    /// The file's stamp when the running configuration was read.
    pub seen: Option<FileStamp>,
    pub transports: endpoint::Transports,
    pub read_endpoints: ReadEndpoints,
    /// The protocols of an endpoint that names none.
    pub default_protocols: Protocols,
}

/// Watches the file until `shutdown`, rebinding on each change.
pub(crate) async fn watch(source: ReloadSource, running: RunningSet, launcher: Launcher, shutdown: ShutdownHandle) {
    let mut last = source.seen;
    let mut every = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = every.tick() => {}
        }
        let now = file_stamp(&source.file);
        if now.is_none() || now == last {
            continue;
        }
        last = now;
        reload(&source, &running, &launcher).await;
    }
}

async fn reload(source: &ReloadSource, running: &RunningSet, launcher: &Launcher) {
    let file = source.file.display().to_string();
    let endpoints =
        Config::load(Some(&source.file)).map_err(ServerError::from).and_then(|config| (source.read_endpoints)(&config));
    let endpoints = match endpoints {
        Ok(endpoints) => endpoints,
        Err(error) => {
            tracing::error!(%error, file, "the changed configuration cannot be used; the running endpoints stay");
            return;
        }
    };
    // Stop what changed or went away.
    let mut kept = Vec::new();
    let stopped: Vec<Running> = {
        let mut set = running.lock().unwrap_or_else(|e| e.into_inner());
        let (stay, go): (Vec<Running>, Vec<Running>) = std::mem::take(&mut *set).into_iter().partition(|r| {
            r.name.is_none()
                || endpoints.iter().any(|e| e.name == r.name && e.definition.is_some() && e.definition == r.definition)
        });
        kept.extend(stay.iter().filter_map(|r| r.name.clone()));
        *set = stay;
        go
    };
    for endpoint in &stopped {
        tracing::info!(
            name = endpoint.name.as_deref(),
            url = endpoint.url,
            "configuration changed: stopping the endpoint"
        );
        endpoint.stop.shutdown();
    }
    for endpoint in stopped {
        let tracker = endpoint.stop_accepting().await;
        tracker.request_close_all();
        tokio::spawn(async move {
            if tokio::time::timeout(DRAIN, tracker.wait_empty()).await.is_err() {
                tracker.abort_all();
            }
        });
    }
    // Bind what is new or changed.
    let mut started = 0;
    for endpoint in endpoints.iter().filter(|e| e.name.as_ref().is_none_or(|name| !kept.contains(name))) {
        match endpoint::bind(&source.transports, endpoint, source.default_protocols).await {
            Ok(bound) => {
                let launched: Vec<Running> = bound.into_iter().map(|b| launcher.launch(b)).collect();
                for endpoint in &launched {
                    tracing::info!(
                        name = endpoint.name.as_deref(),
                        url = endpoint.url,
                        "configuration changed: endpoint bound"
                    );
                }
                started += launched.len();
                running.lock().unwrap_or_else(|e| e.into_inner()).extend(launched);
            }
            Err(error) => tracing::error!(%error, file, "configuration changed: an endpoint cannot be bound"),
        }
    }
    tracing::info!(file, kept = kept.len(), started, "configuration reloaded");
}
