//! Client certificate verification: the configured roots, then the
//! application's callback.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::tls::options::{ClientCertificateMode, ClientCertificateValidator, TlsOptions};
use crate::tls::TlsError;

/// Builds the verifier for `options`, or `None` when client certificates
/// are not requested.
pub(crate) fn build(
    options: &TlsOptions,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, TlsError> {
    if options.client_mode == ClientCertificateMode::NoCertificate {
        return Ok(None);
    }
    let chain = match &options.client_roots {
        Some(roots) => Some(
            WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), Arc::clone(provider))
                .allow_unauthenticated()
                .build()
                .map_err(TlsError::ClientRoots)?,
        ),
        None => None,
    };
    Ok(Some(Arc::new(KiteClientVerifier {
        chain,
        validator: options.client_validator.clone(),
        mandatory: options.client_mode == ClientCertificateMode::RequireCertificate,
        provider: Arc::clone(provider),
    })))
}

/// Validates the chain against the roots (when configured), then asks the
/// callback (when configured). With neither, no certificate can be
/// validated and every one is refused, as Kestrel refuses any chain with
/// policy errors unless a validator says otherwise.
struct KiteClientVerifier {
    chain: Option<Arc<dyn ClientCertVerifier>>,
    validator: Option<ClientCertificateValidator>,
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for KiteClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KiteClientVerifier")
            .field("roots", &self.chain.is_some())
            .field("validator", &self.validator.is_some())
            .field("mandatory", &self.mandatory)
            .finish()
    }
}

impl ClientCertVerifier for KiteClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.as_ref().map_or(&[], |chain| chain.root_hint_subjects())
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Some(chain) = &self.chain {
            chain.verify_client_cert(end_entity, intermediates, now)?;
        }
        match &self.validator {
            Some(validator) => {
                let certificates: Vec<CertificateDer<'static>> =
                    std::iter::once(end_entity).chain(intermediates).map(|c| c.clone().into_owned()).collect();
                if validator(&certificates) {
                    Ok(ClientCertVerified::assertion())
                } else {
                    Err(rustls::Error::General("the client certificate was refused by the validation callback".into()))
                }
            }
            None if self.chain.is_some() => Ok(ClientCertVerified::assertion()),
            None => Err(rustls::Error::General(
                "no client certificate roots or validation callback are configured to validate it".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
