//! Why an ACME order failed, in words that say what to fix.

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

    pub(crate) fn from_acme(directory: &str, error: instant_acme::Error) -> AcmeError {
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

pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A problem document as an ACME server sends it.
    fn problem(kind: &str, detail: &str) -> instant_acme::Error {
        let json = serde_json::json!({ "type": kind, "detail": detail, "status": 429 });
        instant_acme::Error::Api(serde_json::from_value(json).unwrap())
    }

    #[test]
    fn each_problem_type_names_what_to_fix() {
        // Let's Encrypt's words for its certificates-per-domain-set limit.
        let limited = AcmeError::from_acme(
            "https://acme.test/dir",
            problem(
                "urn:ietf:params:acme:error:rateLimited",
                "too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s",
            ),
        );
        assert!(matches!(limited, AcmeError::RateLimited(ref d) if d.contains("too many certificates")));
        assert!(limited.fix().contains("staging"), "{}", limited.fix());
        assert!(!limited.forgets_account(), "a rate limit is no reason for a new account");

        let contact = AcmeError::from_acme("d", problem("urn:ietf:params:acme:error:invalidContact", "bad tel"));
        assert!(matches!(contact, AcmeError::BadContact(_)) && contact.forgets_account());

        let gone = AcmeError::from_acme("d", problem("urn:ietf:params:acme:error:accountDoesNotExist", "no"));
        assert!(matches!(gone, AcmeError::AccountGone(_)) && gone.forgets_account());

        for kind in CHALLENGE_PROBLEMS {
            let refused = AcmeError::from_acme("d", problem(&format!("urn:ietf:params:acme:error{kind}"), "no"));
            assert!(matches!(refused, AcmeError::ChallengeRefused { .. }), "{kind}");
            assert!(!refused.forgets_account(), "{kind}");
        }

        let other = AcmeError::from_acme("d", problem("urn:ietf:params:acme:error:serverInternal", "oops"));
        assert_eq!(other.to_string(), "urn:ietf:params:acme:error:serverInternal: oops");
    }
}
