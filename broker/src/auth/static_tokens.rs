//! Static bearer tokens: `auth.tokens.file`, in kube-apiserver's
//! `--token-auth-file` format, for a single node or a cluster without
//! Kubernetes ServiceAccounts. The broker reads the file again when it
//! changes ([`crate::reload`]), so a token added to or removed from the
//! Secret it is mounted from takes effect without a restart.

use std::collections::HashMap;
use std::path::Path;

use crate::{Error, Result};

/// Bearer tokens and the users they stand for, from a file in
/// kube-apiserver's `--token-auth-file` format: one `token,user[,...]` per
/// line (further columns ignored), `#` comments.
#[derive(Clone, Default)]
pub struct StaticTokens {
    users: HashMap<String, String>,
}

impl std::fmt::Debug for StaticTokens {
    // Never the tokens themselves: they are credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticTokens")
            .field("tokens", &self.users.len())
            .finish()
    }
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

    /// The user `token` stands for.
    pub fn user(&self, token: &str) -> Option<&str> {
        self.users.get(token).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_apiserver_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(
            &path,
            "# token,user,uid\n0123456789abcdef-alice,alice,1001\n\"fedcba9876543210-bob\",\"bob\"\n",
        )
        .unwrap();
        let tokens = StaticTokens::load(&path).unwrap();
        assert_eq!(tokens.user("0123456789abcdef-alice"), Some("alice"));
        assert_eq!(tokens.user("fedcba9876543210-bob"), Some("bob"));
        assert_eq!(tokens.user("nope"), None);
        assert!(
            !format!("{tokens:?}").contains("alice"),
            "Debug shows no tokens"
        );
        std::fs::write(&path, "short,alice\n").unwrap();
        let err = StaticTokens::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
