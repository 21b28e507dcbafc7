//! An ACME certificate's shared state: what serves now, the challenge
//! answers in flight, and the task that keeps the certificate.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use super::certificate::ChallengePem;
use super::certificate::Issued;
use super::error::AcmeError;
use super::issue::{self, Answers};
use super::{cache, AcmeOptions, LOG_TARGET};
use crate::tls::{Certificate, TlsError};

/// One ACME certificate for a set of domains, kept up to date by a task of
/// its own (see the [module](super)). Cloning is cheap and shares the
/// state.
#[derive(Clone)]
pub struct Acme {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub options: AcmeOptions,
    current: Mutex<Option<Issued>>,
    /// TLS-ALPN-01 certificates by domain, while their challenge is open.
    alpn: Mutex<HashMap<String, Certificate>>,
    /// HTTP-01 key authorizations by token, while their challenge is open.
    http: Mutex<HashMap<String, String>>,
    last_error: Mutex<Option<String>>,
    issued: AtomicU64,
    failed_orders: AtomicU64,
    started: AtomicBool,
    listeners: Mutex<Vec<Listener>>,
}

type Listener = Arc<dyn Fn(&AcmeStatus) + Send + Sync>;

/// What an [`Acme`] has: its certificate's validity and renewal time, and
/// the last failure, if the last order failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcmeStatus {
    /// The certificate's domains.
    pub domains: Vec<String>,
    /// When the certificate serving now was issued (`notBefore`); `None`
    /// before the first one.
    pub not_before: Option<SystemTime>,
    /// When it expires (`notAfter`).
    pub not_after: Option<SystemTime>,
    /// When it is to be renewed.
    pub renew_at: Option<SystemTime>,
    /// Certificates obtained from the ACME server by this process (a
    /// cached one is not counted).
    pub issued: u64,
    /// Orders that failed in this process, renewals included.
    pub failed_orders: u64,
    /// Why the last order failed and what to fix, until one succeeds.
    pub last_error: Option<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Acme {
    /// The certificate for `options.domains`, not yet started: a Kite
    /// server starts it ([`start`](Self::start)) when it starts serving an
    /// endpoint that uses it; elsewhere the first handshake does. While one made with the same directory, domains and cache
    /// directory lives, this returns it (two endpoints, or a configuration
    /// reloaded, never order the same certificate twice).
    pub fn new(mut options: AcmeOptions) -> Acme {
        for domain in &mut options.domains {
            *domain = domain.trim_end_matches('.').to_ascii_lowercase();
        }
        static LIVE: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());
        let mut live = lock(&LIVE);
        live.retain(|weak| weak.strong_count() > 0);
        let same = |other: &AcmeOptions| {
            other.directory == options.directory
                && other.domains == options.domains
                && other.cache_dir == options.cache_dir
        };
        if let Some(shared) = live.iter().filter_map(Weak::upgrade).find(|shared| same(&shared.options)) {
            return Acme { shared };
        }
        let acme = Acme {
            shared: Arc::new(Shared {
                options,
                current: Mutex::default(),
                alpn: Mutex::default(),
                http: Mutex::default(),
                last_error: Mutex::default(),
                issued: AtomicU64::new(0),
                failed_orders: AtomicU64::new(0),
                started: AtomicBool::new(false),
                listeners: Mutex::default(),
            }),
        };
        live.push(Arc::downgrade(&acme.shared));
        acme
    }

    /// The options it was made with.
    pub fn options(&self) -> &AcmeOptions {
        &self.shared.options
    }

    /// Whether `self` and `other` are the same certificate (clones of one
    /// `Acme`, or made with the same directory, domains and cache).
    pub fn same(&self, other: &Acme) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Whether `name` (a server name, lower-case) is one of the domains.
    pub fn serves(&self, name: &str) -> bool {
        self.shared.options.domains.iter().any(|d| d == name)
    }

    /// The certificate serving now; `None` until the first one is issued
    /// or read from the cache.
    pub fn certificate(&self) -> Option<Certificate> {
        lock(&self.shared.current).as_ref().map(|issued| issued.certificate.clone())
    }

    /// What it has now.
    pub fn status(&self) -> AcmeStatus {
        self.shared.status()
    }

    /// The answer to an HTTP-01 challenge for `token` (the body of
    /// `GET /.well-known/acme-challenge/{token}`), while it is open.
    pub fn http01_answer(&self, token: &str) -> Option<String> {
        let answer = lock(&self.shared.http).get(token).cloned();
        // Another process on the same cache (a worker) may hold the order.
        answer.or_else(|| cache::read_http_challenge(&self.shared.options, token))
    }

    /// Calls `listener` with the status after each certificate is installed
    /// (issued, renewed, or read from the cache) and after each failed
    /// order. The server's metrics are one such listener.
    pub fn on_change(&self, listener: impl Fn(&AcmeStatus) + Send + Sync + 'static) {
        lock(&self.shared.listeners).push(Arc::new(listener));
    }

    /// Starts the task that keeps the certificate, on the current tokio
    /// runtime, once; later calls do nothing. It reads the cache at once,
    /// so a cached certificate serves from the first handshake. It ends
    /// when every clone of this `Acme` is gone. Processes sharing a cache
    /// directory (a host's workers) order one at a time, under a file lock,
    /// and the others serve what the first put in the cache.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn start(&self) {
        // Every handshake calls this: a plain load first keeps the flag's
        // cache line shared between cores once started.
        if self.shared.started.load(Ordering::Acquire) || self.shared.started.swap(true, Ordering::AcqRel) {
            return;
        }
        match cache::load_certificate(&self.shared.options) {
            Ok(Some(issued)) => {
                tracing::info!(
                    target: LOG_TARGET,
                    domains = ?self.shared.options.domains,
                    not_after_unix = unix_seconds(issued.not_after),
                    "serving the cached certificate"
                );
                self.shared.install(issued, false);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, error = %e, "the cached certificate cannot be used; ordering a new one")
            }
        }
        let task = tokio::spawn(keep(Arc::downgrade(&self.shared)));
        // A panic would end renewals silently: say so.
        tokio::spawn(async move {
            if let Err(e) = task.await {
                if e.is_panic() {
                    tracing::error!(target: LOG_TARGET, "the ACME task panicked; certificates are no longer renewed");
                }
            }
        });
    }

    /// Checks the options can work: at least one domain, each a DNS name.
    ///
    /// # Errors
    ///
    /// [`TlsError::Acme`] saying what is wrong.
    pub fn validate(&self) -> Result<(), TlsError> {
        let options = &self.shared.options;
        if options.domains.is_empty() {
            return Err(TlsError::Acme("no domain is configured for the ACME certificate".into()));
        }
        for domain in &options.domains {
            let dns = rustls_pki_types::ServerName::try_from(domain.as_str());
            if !matches!(dns, Ok(rustls_pki_types::ServerName::DnsName(_))) || domain.contains('*') {
                return Err(TlsError::Acme(format!("{domain:?} is not a domain name an ACME server can validate")));
            }
        }
        Ok(())
    }

    /// The TLS-ALPN-01 certificate for `name`, while its challenge is open.
    pub(crate) fn challenge_certificate(&self, name: Option<&str>) -> Option<Certificate> {
        let name = name?;
        let open = lock(&self.shared.alpn).get(name).cloned();
        // Another process on the same cache (a worker) may hold the order.
        open.or_else(|| cache::read_alpn_challenge(&self.shared.options, name)?.load())
    }
}

impl fmt::Debug for Acme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acme").field("domains", &self.shared.options.domains).finish_non_exhaustive()
    }
}

impl Shared {
    fn status(&self) -> AcmeStatus {
        let current = lock(&self.current);
        AcmeStatus {
            domains: self.options.domains.clone(),
            not_before: current.as_ref().map(|c| c.not_before),
            not_after: current.as_ref().map(|c| c.not_after),
            renew_at: current.as_ref().map(|c| c.renew_at),
            issued: self.issued.load(Ordering::Relaxed),
            failed_orders: self.failed_orders.load(Ordering::Relaxed),
            last_error: lock(&self.last_error).clone(),
        }
    }

    fn tell(&self) {
        let status = self.status();
        let listeners = lock(&self.listeners).clone();
        for listener in listeners {
            listener(&status);
        }
    }

    /// Serves `issued` from the next handshake on.
    pub fn install(&self, issued: Issued, fresh: bool) {
        *lock(&self.current) = Some(issued);
        if fresh {
            self.issued.fetch_add(1, Ordering::Relaxed);
        }
        *lock(&self.last_error) = None;
        self.tell();
    }

    /// Forgets every challenge answer (an order ended).
    pub fn close_challenges(&self) {
        for domain in std::mem::take(&mut *lock(&self.alpn)).into_keys() {
            cache::remove_alpn_challenge(&self.options, &domain);
        }
        for token in std::mem::take(&mut *lock(&self.http)).into_keys() {
            cache::remove_http_challenge(&self.options, &token);
        }
    }

    /// Brings the renewal forward to `time` (the ACME server's renewal
    /// information), never back.
    fn renew_by(&self, time: SystemTime) {
        let mut current = lock(&self.current);
        if let Some(issued) = current.as_mut() {
            if time < issued.renew_at {
                tracing::info!(target: LOG_TARGET, renew_at_unix = unix_seconds(time), "the ACME server asks for an earlier renewal");
                issued.renew_at = time;
            }
        }
    }

    fn leaf(&self) -> Option<rustls_pki_types::CertificateDer<'static>> {
        lock(&self.current).as_ref()?.certificate.chain().first().cloned()
    }

    /// How long until the certificate is due for renewal: zero without one.
    fn until_renewal(&self) -> Duration {
        match &*lock(&self.current) {
            Some(issued) => issued.renew_at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO),
            None => Duration::ZERO,
        }
    }

    fn failed(&self, error: &AcmeError) {
        *lock(&self.last_error) = Some(format!("{error} (to fix: {})", error.fix()));
        self.failed_orders.fetch_add(1, Ordering::Relaxed);
        self.tell();
    }
}

impl Answers for Shared {
    fn open_alpn(&self, domain: &str, pem: ChallengePem) {
        // In the cache too, for the other processes a validation may reach.
        if let Err(e) = cache::write_alpn_challenge(&self.options, domain, &pem) {
            tracing::warn!(target: LOG_TARGET, error = %e, "the challenge is answered by this process only");
        }
        if let Some(certificate) = pem.load() {
            lock(&self.alpn).insert(domain.to_string(), certificate);
        }
    }

    fn open_http(&self, token: &str, answer: String) {
        if let Err(e) = cache::write_http_challenge(&self.options, token, &answer) {
            tracing::warn!(target: LOG_TARGET, error = %e, "the challenge is answered by this process only");
        }
        lock(&self.http).insert(token.to_string(), answer);
    }
}

/// The task: orders when there is no certificate or it is due, renews on
/// schedule, backs off after a failure.
async fn keep(shared: Weak<Shared>) {
    let mut account: Option<instant_acme::Account> = None;
    let mut backoff = None;
    // When to ask the ACME server's renewal information next (RFC 9773);
    // `None` once it says it has none.
    let mut ask_window = Some(std::time::Instant::now());
    loop {
        let wait = match shared.upgrade() {
            Some(shared) => shared.until_renewal(),
            None => return,
        };
        if !wait.is_zero() {
            let now = std::time::Instant::now();
            if let (Some(account), Some(at)) = (&account, ask_window) {
                if at <= now {
                    let Some(strong) = shared.upgrade() else { return };
                    let Some(leaf) = strong.leaf() else { continue };
                    ask_window = match issue::renewal_window(account, &leaf).await {
                        Ok(Some((time, again))) => {
                            strong.renew_by(time);
                            Some(now + again.clamp(Duration::from_secs(60), Duration::from_secs(6 * 3600)))
                        }
                        Ok(None) => None,
                        Err(e) => {
                            tracing::debug!(target: LOG_TARGET, error = %e, "no renewal information");
                            Some(now + Duration::from_secs(3600))
                        }
                    };
                    continue;
                }
            }
            let until_ask = ask_window.filter(|_| account.is_some()).map(|at| at.saturating_duration_since(now));
            let wait = until_ask.map_or(wait, |ask| wait.min(ask));
            tracing::debug!(target: LOG_TARGET, ?wait, "next renewal or renewal information");
            tokio::time::sleep(wait).await;
            continue;
        }
        let Some(strong) = shared.upgrade() else { return };
        // One process at a time orders for a cache directory (workers of
        // one host share it); the others find its certificate there.
        let held = match cache::lock(&strong.options).await {
            Ok(held) => Some(held),
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, error = %e, "the cache cannot be locked; ordering without the lock");
                None
            }
        };
        if let Ok(Some(cached)) = cache::load_certificate(&strong.options) {
            let newer = lock(&strong.current).as_ref().is_none_or(|current| cached.not_after > current.not_after);
            if newer && cached.renew_at > SystemTime::now() {
                tracing::info!(
                    target: LOG_TARGET,
                    domains = ?strong.options.domains,
                    not_after_unix = unix_seconds(cached.not_after),
                    "another process ordered the certificate; serving it from the cache"
                );
                strong.install(cached, false);
                continue;
            }
        }
        let started = std::time::Instant::now();
        // Only a due certificate (or none) gets here: one held is renewed.
        let renewal = lock(&strong.current).is_some();
        tracing::info!(target: LOG_TARGET, domains = ?strong.options.domains, renewal, "ordering a certificate");
        let ordered = issue::order(&strong.options, &*strong, &mut account).await;
        strong.close_challenges();
        match ordered {
            Ok(issued) => {
                tracing::info!(
                    target: LOG_TARGET,
                    domains = ?strong.options.domains,
                    took = ?started.elapsed(),
                    not_after_unix = unix_seconds(issued.not_after),
                    renew_at_unix = unix_seconds(issued.renew_at),
                    "certificate issued; new handshakes use it"
                );
                if let Err(e) = cache::store_certificate(&strong.options, &issued) {
                    tracing::warn!(target: LOG_TARGET, error = %e, "the certificate serves but cannot be cached");
                }
                strong.install(issued, true);
                drop(held);
                backoff = None;
                ask_window = ask_window.map(|_| std::time::Instant::now());
            }
            Err(error) => {
                let delay =
                    backoff.map_or(strong.options.retry_initial, |d: Duration| d * 2).min(strong.options.retry_max);
                backoff = Some(delay);
                let serving = lock(&strong.current).is_some();
                tracing::error!(
                    target: LOG_TARGET,
                    domains = ?strong.options.domains,
                    %error,
                    fix = error.fix(),
                    retry_in = ?delay,
                    serving_previous = serving,
                    "the ACME order failed"
                );
                if error.forgets_account() {
                    account = None;
                }
                if matches!(error, AcmeError::AccountGone(_)) {
                    cache::forget_account(&strong.options);
                }
                strong.failed(&error);
                drop((held, strong));
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// A time as Unix seconds, for the log.
fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
