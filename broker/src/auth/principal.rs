//! Who is asking: the principal of a request.
//!
//! [`principal_of`] takes the credentials out of a request — a bearer
//! token, else a verified client certificate — and asks the
//! [`Authenticator`] about a token.

use std::future::Future;

use tonic::Request;

use super::Authenticator;
use crate::{Error, Result};

/// The principal of requests without credentials.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// `User:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal(pub String);

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a request presented.
pub enum Credentials {
    /// `authorization: Bearer <token>`.
    Bearer(String),
    /// The common name of its verified TLS client certificate.
    Certificate(String),
    Anonymous,
}

impl std::fmt::Debug for Credentials {
    // Never the token: it is a credential, and requests get logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Bearer(_) => f.write_str("Bearer(..)"),
            Credentials::Certificate(cn) => write!(f, "Certificate({cn:?})"),
            Credentials::Anonymous => f.write_str("Anonymous"),
        }
    }
}

impl Credentials {
    /// A bearer token wins over a client certificate (a client that sends
    /// one means it); a malformed `authorization` header is an error, not
    /// anonymity.
    pub fn of<T>(request: &Request<T>) -> Result<Self> {
        if let Some(value) = request.metadata().get("authorization") {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    Error::AuthenticationFailed(
                        "the authorization header must be \"Bearer <token>\"".into(),
                    )
                })?;
            return Ok(Credentials::Bearer(token.to_owned()));
        }
        if let Some(certs) = request.peer_certs()
            && let Some(leaf) = certs.first()
            && let Some(name) = common_name(leaf.as_ref())
        {
            return Ok(Credentials::Certificate(name));
        }
        Ok(Credentials::Anonymous)
    }
}

/// The principal of `request`: a bearer token's user (an unknown token is
/// an authentication failure, not anonymity), else the common name of the
/// verified client certificate, else [`ANONYMOUS`].
///
/// The credentials are taken out before anything is awaited, so the future
/// does not borrow the request (whose body, a stream, is not `Sync`).
pub fn principal_of<'a, T>(
    request: &Request<T>,
    authenticator: &'a Authenticator,
) -> impl Future<Output = Result<Principal>> + Send + use<'a, T> {
    let credentials = Credentials::of(request);
    async move {
        match credentials? {
            Credentials::Bearer(token) => authenticator.bearer(&token).await,
            Credentials::Certificate(name) => Ok(Principal(format!("User:{name}"))),
            Credentials::Anonymous => Ok(Principal(ANONYMOUS.to_owned())),
        }
    }
}

/// The subject's common name (CN) of a DER certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bearer_tokens_and_anonymity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, "0123456789abcdef-alice,alice,1001\n").unwrap();
        let config = crate::BrokerConfig {
            auth_tokens_file: path,
            ..crate::BrokerConfig::default()
        };
        let authenticator = Authenticator::from_config(&config).await.unwrap();
        let principal = |header: Option<&str>| {
            let mut request = Request::new(());
            if let Some(h) = header {
                request
                    .metadata_mut()
                    .insert("authorization", h.parse().unwrap());
            }
            principal_of(&request, &authenticator)
        };
        assert_eq!(
            principal(Some("Bearer 0123456789abcdef-alice"))
                .await
                .unwrap(),
            Principal("User:alice".into())
        );
        assert_eq!(principal(None).await.unwrap(), Principal(ANONYMOUS.into()));
        for bad in ["Bearer nope", "Basic abc", "Bearer "] {
            assert!(
                matches!(
                    principal(Some(bad)).await,
                    Err(Error::AuthenticationFailed(_))
                ),
                "{bad}"
            );
        }
    }
}
