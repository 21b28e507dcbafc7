//! One order against the ACME server: the account, the challenges, the
//! certificate; and why an order failed, in words that say what to fix.

use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls_pki_types::CertificateDer;

use super::state::{random_fraction, Shared};
use super::{cache, Challenge, LOG_TARGET};
use crate::tls::Certificate;

/// Why an ACME order failed: each variant names what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    /// The directory could not be reached or did not answer as an ACME
    /// server.
    #[error("the ACME directory {directory} is unreachable: {reason}")]
    DirectoryUnreachable {
        /// The directory URL.
        directory: String,
        /// What failed.
        reason: String,
    },
    /// The ACME server's rate limit was reached.
    #[error("rate limited by the ACME server: {0}")]
    RateLimited(String),
    /// The ACME server refused a contact address.
    #[error("the ACME server refused the contact address: {0}")]
    BadContact(String),
    /// A challenge was refused: the ACME server could not validate a
    /// domain.
    #[error("the {challenge} challenge for {domain} was refused: {detail}")]
    ChallengeRefused {
        /// The domain.
        domain: String,
        /// `tls-alpn-01` or `http-01`.
        challenge: String,
        /// The ACME server's words.
        detail: String,
    },
    /// The ACME server no longer knows the account (its state was reset);
    /// the account is made again at the next try.
    #[error("the ACME server no longer knows the account: {0}")]
    AccountGone(String),
    /// No challenge the configuration allows was offered for a domain.
    #[error("no {wanted} challenge was offered for {domain}")]
    NoChallenge {
        /// The domain.
        domain: String,
        /// The challenge wanted.
        wanted: String,
    },
    /// Any other failure (the ACME server's problem document, a
    /// certificate that cannot be read).
    #[error("{0}")]
    Other(String),
}

impl AcmeError {
    /// What to do about it, for the log.
    pub fn fix(&self) -> &'static str {
        match self {
            AcmeError::DirectoryUnreachable { .. } => {
                "check the directory URL, the network and DNS, and --acme-root for a private ACME server"
            }
            AcmeError::RateLimited(_) => "wait for the limit to pass, or use the staging directory while testing",
            AcmeError::BadContact(_) => "give a contact the server accepts, such as mailto:admin@example.com",
            AcmeError::ChallengeRefused { .. } => {
                "make the domain's DNS point at this server and port 443 (TLS-ALPN-01) or 80 (HTTP-01) reach it"
            }
            AcmeError::NoChallenge { .. } => "allow another challenge, or serve an endpoint the challenge needs",
            AcmeError::AccountGone(_) => "nothing: a new account is made at the next try",
            AcmeError::Other(_) => "see the error",
        }
    }

    /// Whether the account should be made again next time (the failure
    /// may have been the account itself).
    pub(crate) fn forgets_account(&self) -> bool {
        matches!(
            self,
            AcmeError::DirectoryUnreachable { .. }
                | AcmeError::BadContact(_)
                | AcmeError::AccountGone(_)
                | AcmeError::Other(_)
        )
    }

    fn from_acme(directory: &str, error: instant_acme::Error) -> AcmeError {
        match error {
            instant_acme::Error::Api(problem) => {
                let kind = problem.r#type.as_deref().unwrap_or_default();
                let detail = problem.detail.clone().unwrap_or_else(|| kind.to_string());
                if kind.ends_with(":rateLimited") {
                    AcmeError::RateLimited(detail)
                } else if kind.ends_with(":invalidContact") || kind.ends_with(":unsupportedContact") {
                    AcmeError::BadContact(detail)
                } else if kind.ends_with(":accountDoesNotExist") {
                    AcmeError::AccountGone(detail)
                } else if CHALLENGE_PROBLEMS.iter().any(|p| kind.ends_with(p)) {
                    AcmeError::ChallengeRefused { domain: String::new(), challenge: String::new(), detail }
                } else {
                    AcmeError::Other(format!("{kind}: {detail}"))
                }
            }
            e @ (instant_acme::Error::Hyper(_)
            | instant_acme::Error::Http(_)
            | instant_acme::Error::InvalidUri(_)
            | instant_acme::Error::Json(_)
            | instant_acme::Error::Other(_)) => {
                AcmeError::DirectoryUnreachable { directory: directory.to_string(), reason: error_chain(&e) }
            }
            other => AcmeError::Other(error_chain(&other)),
        }
    }
}

/// The problem types of a failed validation (RFC 8555 §6.7).
const CHALLENGE_PROBLEMS: [&str; 7] =
    [":unauthorized", ":connection", ":dns", ":incorrectResponse", ":tls", ":caa", ":rejectedIdentifier"];

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// A certificate from the ACME server, with its validity and when it is
/// to be renewed.
pub(crate) struct Issued {
    pub certificate: Certificate,
    pub chain_pem: String,
    pub key_pem: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub renew_at: SystemTime,
}

impl Issued {
    /// Reads a chain and key; renewal at two thirds of the lifetime, less
    /// a jitter of up to a twentieth of it.
    pub fn from_pem(chain_pem: String, key_pem: String) -> Result<Issued, AcmeError> {
        let certificate = Certificate::from_pem(chain_pem.as_bytes(), key_pem.as_bytes())
            .map_err(|e| AcmeError::Other(format!("the certificate cannot be read: {e}")))?;
        let leaf = certificate.chain().first().ok_or_else(|| AcmeError::Other("an empty chain".into()))?;
        let (not_before, not_after, _) = validity(leaf)?;
        let lifetime = not_after.duration_since(not_before).unwrap_or_default();
        let jitter = lifetime.mul_f64(random_fraction() / 20.0);
        let renew_at = not_before + lifetime.mul_f64(2.0 / 3.0) - jitter;
        Ok(Issued { certificate, chain_pem, key_pem, not_before, not_after, renew_at })
    }
}

/// A leaf certificate's `notBefore`, `notAfter` and DNS names.
pub(crate) fn validity(leaf: &CertificateDer<'_>) -> Result<(SystemTime, SystemTime, Vec<String>), AcmeError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| AcmeError::Other(format!("the certificate cannot be parsed: {e}")))?;
    let at = |time: x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(time.timestamp()).unwrap_or(0))
    };
    let validity = parsed.validity();
    let names = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((at(validity.not_before), at(validity.not_after), names))
}

/// The HTTP client talking to the ACME server: Kite's crypto provider,
/// the system's roots and `root` if given.
fn http_client(
    root: Option<&std::path::Path>,
) -> Result<
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        instant_acme::BodyWrapper<bytes::Bytes>,
    >,
    AcmeError,
> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(root) = root {
        let der = CertificateDer::from_pem_file(root)
            .map_err(|e| AcmeError::Other(format!("the ACME root {} cannot be read: {e}", root.display())))?;
        roots.add(der).map_err(|e| AcmeError::Other(format!("the ACME root {} is refused: {e}", root.display())))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| AcmeError::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector))
}

/// The account: from the cache, or made on the ACME server and cached.
async fn account(shared: &Shared) -> Result<Account, AcmeError> {
    let options = &shared.options;
    let directory = options.directory.as_str();
    let client = http_client(options.root.as_deref())?;
    let builder = || Ok::<_, instant_acme::Error>(Account::builder_with_http(Box::new(client.clone())));
    let unreachable = |e| AcmeError::from_acme(directory, e);
    if let Some(credentials) = cache::load_account(options) {
        match builder().map_err(unreachable)?.from_credentials(credentials).await {
            Ok(account) => return Ok(account),
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, error = %e, "the cached ACME account cannot be used; making another")
            }
        }
    }
    let contact: Vec<&str> = options.contact.iter().map(String::as_str).collect();
    let new = NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false };
    let (account, credentials) =
        builder().map_err(unreachable)?.create(&new, directory.to_string(), None).await.map_err(unreachable)?;
    if let Err(e) = cache::store_account(options, &credentials) {
        tracing::warn!(target: LOG_TARGET, error = %e, "the ACME account cannot be cached; it is made again at the next start");
    }
    tracing::info!(target: LOG_TARGET, directory, id = account.id(), "ACME account made");
    Ok(account)
}

/// Orders a certificate for the domains, answering each challenge, and
/// returns it.
pub(crate) async fn order(shared: &Shared, slot: &mut Option<Account>) -> Result<Issued, AcmeError> {
    let options = &shared.options;
    let directory = options.directory.as_str();
    let acme = |e| AcmeError::from_acme(directory, e);
    let account = match slot {
        Some(account) => account.clone(),
        None => {
            let made = account(shared).await?;
            *slot = Some(made.clone());
            made
        }
    };
    let identifiers: Vec<Identifier> = options.domains.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await.map_err(acme)?;
    let mut answered = Vec::new();
    {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(acme)?;
            let domain = authorization.identifier().to_string();
            match authorization.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                status => return Err(AcmeError::Other(format!("the authorization for {domain} is {status:?}"))),
            }
            let kind = match options.challenge {
                Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
                Challenge::Http01 => ChallengeType::Http01,
                Challenge::Auto if authorization.challenges.iter().any(|c| c.r#type == ChallengeType::TlsAlpn01) => {
                    ChallengeType::TlsAlpn01
                }
                Challenge::Auto => ChallengeType::Http01,
            };
            let Some(mut challenge) = authorization.challenge(kind.clone()) else {
                return Err(AcmeError::NoChallenge { domain, wanted: challenge_name(&kind).into() });
            };
            let key_authorization = challenge.key_authorization();
            match kind {
                ChallengeType::TlsAlpn01 => {
                    shared.open_alpn(&domain, alpn_certificate(&domain, key_authorization.digest().as_ref())?)
                }
                _ => shared.open_http(&challenge.token, key_authorization.as_str().to_string()),
            }
            tracing::debug!(target: LOG_TARGET, %domain, challenge = challenge_name(&kind), "challenge ready");
            challenge.set_ready().await.map_err(acme)?;
            answered.push((domain, kind));
        }
    }
    let retries = RetryPolicy::new().timeout(Duration::from_secs(90));
    let status = match order.poll_ready(&retries).await.map_err(acme) {
        Ok(status) => status,
        // Name the domain and challenge the server refused.
        Err(AcmeError::ChallengeRefused { detail, .. }) => {
            let (domain, kind) = answered.first().cloned().unwrap_or_else(|| (String::new(), ChallengeType::Http01));
            let domain = answered.iter().find(|(d, _)| detail.contains(d.as_str())).map_or(domain, |(d, _)| d.clone());
            return Err(AcmeError::ChallengeRefused { domain, challenge: challenge_name(&kind).into(), detail });
        }
        Err(e) => return Err(e),
    };
    if status != OrderStatus::Ready {
        return Err(refusal(&mut order, &answered)
            .await
            .unwrap_or_else(|| AcmeError::Other(format!("the order is {status:?}: {:?}", order.state().error))));
    }
    let key_pem = order.finalize().await.map_err(acme)?;
    let chain_pem = order.poll_certificate(&retries).await.map_err(acme)?;
    Issued::from_pem(chain_pem, key_pem)
}

/// The ACME server's renewal information for `leaf` (RFC 9773): a time
/// picked at random in its suggested window, and when to ask again.
/// `Ok(None)` when the server does not offer it.
pub(crate) async fn renewal_window(
    account: &Account,
    leaf: &CertificateDer<'_>,
) -> Result<Option<(SystemTime, Duration)>, AcmeError> {
    let id = instant_acme::CertificateIdentifier::try_from(leaf).map_err(AcmeError::Other)?;
    let (info, retry_after) = match account.renewal_info(&id).await {
        Ok(answer) => answer,
        Err(instant_acme::Error::Unsupported(_)) => return Ok(None),
        Err(e) => return Err(AcmeError::Other(error_chain(&e))),
    };
    let at = |unix: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    let window = &info.suggested_window;
    let (start, end) = (at(window.start.unix_timestamp()), at(window.end.unix_timestamp()));
    let span = end.duration_since(start).unwrap_or_default();
    Ok(Some((start + span.mul_f64(random_fraction()), retry_after)))
}

/// The refused challenge of a failed order, with the server's words.
async fn refusal(order: &mut instant_acme::Order, answered: &[(String, ChallengeType)]) -> Option<AcmeError> {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let Ok(state) = authorization.refresh().await else { continue };
        let domain = state.identifier().to_string();
        for challenge in &state.challenges {
            if let Some(error) = &challenge.error {
                let kind = answered.iter().find(|(d, _)| *d == domain).map_or("the", |(_, k)| challenge_name(k));
                return Some(AcmeError::ChallengeRefused {
                    domain,
                    challenge: kind.to_string(),
                    detail: error.detail.clone().unwrap_or_else(|| format!("{error:?}")),
                });
            }
        }
    }
    None
}

fn challenge_name(kind: &ChallengeType) -> &'static str {
    match kind {
        ChallengeType::TlsAlpn01 => "tls-alpn-01",
        ChallengeType::Http01 => "http-01",
        _ => "other",
    }
}

/// The self-signed certificate a TLS-ALPN-01 validation must see: the
/// domain, and the key authorization's digest in the critical
/// `acmeIdentifier` extension (RFC 8737 §3).
fn alpn_certificate(domain: &str, digest: &[u8]) -> Result<Certificate, AcmeError> {
    let bad = |e: rcgen::Error| AcmeError::Other(format!("the TLS-ALPN-01 certificate cannot be made: {e}"));
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(bad)?;
    params.custom_extensions.push(rcgen::CustomExtension::new_acme_identifier(digest));
    let key = rcgen::KeyPair::generate().map_err(bad)?;
    let cert = params.self_signed(&key).map_err(bad)?;
    Certificate::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
        .map_err(|e| AcmeError::Other(format!("the TLS-ALPN-01 certificate cannot be used: {e}")))
}
