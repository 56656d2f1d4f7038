//! Who is asking: the principal of a request.

use std::collections::HashMap;
use std::path::Path;

use tonic::Request;

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

/// Bearer tokens and the users they stand for, from a file in
/// kube-apiserver's `--token-auth-file` format: one `token,user[,...]` per
/// line (further columns ignored), `#` comments.
#[derive(Debug, Clone, Default)]
pub struct StaticTokens {
    users: HashMap<String, String>,
}

impl StaticTokens {
    pub fn load(path: &Path) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidConfig {
            key: "auth.tokens.file".into(),
            value: path.display().to_string(),
            reason,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot read: {e}")))?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut columns = line.split(',').map(|c| c.trim().trim_matches('"'));
            let (Some(token), Some(user)) = (columns.next(), columns.next()) else {
                return Err(invalid(format!("line {}: expected token,user", n + 1)));
            };
            if token.len() < 16 || user.is_empty() {
                return Err(invalid(format!(
                    "line {}: a token of at least 16 characters and a user name are needed",
                    n + 1
                )));
            }
            users.insert(token.to_owned(), user.to_owned());
        }
        Ok(StaticTokens { users })
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// The principal of `request`: a bearer token's user (an unknown token is
/// an authentication failure, not anonymity), else the common name of the
/// verified client certificate, else [`ANONYMOUS`].
pub fn principal_of<T>(request: &Request<T>, tokens: &StaticTokens) -> Result<Principal> {
    if let Some(value) = request.metadata().get("authorization") {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                Error::AuthenticationFailed(
                    "the authorization header must be \"Bearer <token>\"".into(),
                )
            })?;
        return match tokens.users.get(token) {
            Some(user) => Ok(Principal(format!("User:{user}"))),
            None => Err(Error::AuthenticationFailed(
                "the bearer token is not known to this broker (auth.tokens.file)".into(),
            )),
        };
    }
    if let Some(certs) = request.peer_certs()
        && let Some(leaf) = certs.first()
        && let Some(name) = common_name(leaf.as_ref())
    {
        return Ok(Principal(format!("User:{name}")));
    }
    Ok(Principal(ANONYMOUS.to_owned()))
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

    #[test]
    fn token_file_in_kube_apiserver_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(
            &path,
            "# token,user,uid\n0123456789abcdef-alice,alice,1001\n\"fedcba9876543210-bob\",\"bob\"\n",
        )
        .unwrap();
        let tokens = StaticTokens::load(&path).unwrap();
        let principal = |header: Option<&str>| {
            let mut request = Request::new(());
            if let Some(h) = header {
                request
                    .metadata_mut()
                    .insert("authorization", h.parse().unwrap());
            }
            principal_of(&request, &tokens)
        };
        assert_eq!(
            principal(Some("Bearer 0123456789abcdef-alice")).unwrap(),
            Principal("User:alice".into())
        );
        assert_eq!(
            principal(Some("Bearer fedcba9876543210-bob")).unwrap(),
            Principal("User:bob".into())
        );
        assert_eq!(principal(None).unwrap(), Principal(ANONYMOUS.into()));
        for bad in ["Bearer nope", "Basic abc"] {
            assert!(matches!(
                principal(Some(bad)),
                Err(Error::AuthenticationFailed(_))
            ));
        }
        std::fs::write(&path, "short,alice\n").unwrap();
        let err = StaticTokens::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
