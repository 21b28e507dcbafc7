//! One order against the ACME server: the account, the challenges, the
//! certificate.

use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls_pki_types::CertificateDer;

use super::certificate::{random_fraction, ChallengePem, Issued};
use super::error::{error_chain, AcmeError};
use super::{cache, AcmeOptions, Challenge, LOG_TARGET};

/// Where an order puts its challenge answers while they are open.
pub(crate) trait Answers: Sync {
    /// The TLS-ALPN-01 certificate for `domain`.
    fn open_alpn(&self, domain: &str, pem: ChallengePem);
    /// The HTTP-01 answer for `token`.
    fn open_http(&self, token: &str, answer: String);
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
async fn account(options: &AcmeOptions) -> Result<Account, AcmeError> {
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
pub(crate) async fn order(
    options: &AcmeOptions,
    answers: &(dyn Answers + Sync),
    slot: &mut Option<Account>,
) -> Result<Issued, AcmeError> {
    let directory = options.directory.as_str();
    let acme = |e| AcmeError::from_acme(directory, e);
    let account = match slot {
        Some(account) => account.clone(),
        None => {
            let made = account(options).await?;
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
                    answers.open_alpn(&domain, alpn_certificate(&domain, key_authorization.digest().as_ref())?)
                }
                _ => answers.open_http(&challenge.token, key_authorization.as_str().to_string()),
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
fn alpn_certificate(domain: &str, digest: &[u8]) -> Result<ChallengePem, AcmeError> {
    let bad = |e: rcgen::Error| AcmeError::Other(format!("the TLS-ALPN-01 certificate cannot be made: {e}"));
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(bad)?;
    params.custom_extensions.push(rcgen::CustomExtension::new_acme_identifier(digest));
    let key = rcgen::KeyPair::generate().map_err(bad)?;
    let cert = params.self_signed(&key).map_err(bad)?;
    Ok(ChallengePem { certificate: cert.pem(), key: key.serialize_pem() })
}
