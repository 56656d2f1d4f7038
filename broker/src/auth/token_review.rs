//! Kubernetes ServiceAccount tokens (and any other token the API server
//! accepts), verified by asking the API server: an
//! `authentication.k8s.io/v1` TokenReview, as kube-apiserver's webhook
//! token authenticator and the kubelet do. Turned on by
//! `auth.token.review.enable`.
//!
//! The API server is found as kubectl finds it (`kube::Config::infer`):
//! inside a pod through its ServiceAccount, elsewhere through `KUBECONFIG`.
//! The broker's ServiceAccount needs `create` on
//! `tokenreviews.authentication.k8s.io` (the `system:auth-delegator`
//! ClusterRole grants it).
//!
//! An accepted token's principal is `User:<status.user.username>`, e.g.
//! `User:system:serviceaccount:<namespace>:<name>`. Answers are cached
//! ([`TokenCache`]). An API server that cannot be asked makes the request
//! fail as *unavailable* (retry later), never as a bad token.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::Api;
use kube::api::PostParams;

use super::Principal;
use super::token_cache::{Outcome, TokenCache};
use crate::config::BrokerConfig;
use crate::{Error, Result};

/// How long a refusal is remembered (at most `auth.token.review.cache.ms`).
const REFUSED_TTL: Duration = Duration::from_secs(10);

/// How many tokens' answers are remembered at most.
const CACHE_CAPACITY: usize = 10_000;

/// Connecting to the API server, and waiting for its answer: a request
/// waits at most this long for its review.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct TokenReviewer {
    api: Api<TokenReview>,
    /// The API server's URL, for messages.
    server: String,
    /// `auth.token.review.audiences`: the token must be meant for one of
    /// them. Empty: the API server's own audiences.
    audiences: Vec<String>,
    cache: TokenCache,
}

impl TokenReviewer {
    /// Find the API server. No configuration for it is an error: the
    /// broker was asked to verify tokens and could not.
    pub async fn new(config: &BrokerConfig) -> Result<Self> {
        let mut kube_config = kube::Config::infer()
            .await
            .map_err(|e| Error::InvalidConfig {
                key: "auth.token.review.enable".into(),
                value: "true".into(),
                reason: format!(
                    "needs the Kubernetes API server, and no configuration for it was found \
                     ({e}); in a pod the broker uses its ServiceAccount, elsewhere set KUBECONFIG"
                ),
            })?;
        kube_config.connect_timeout = Some(CONNECT_TIMEOUT);
        kube_config.read_timeout = Some(REVIEW_TIMEOUT);
        let server = kube_config.cluster_url.to_string();
        let client = kube::Client::try_from(kube_config).map_err(|e| Error::InvalidConfig {
            key: "auth.token.review.enable".into(),
            value: "true".into(),
            reason: format!(
                "cannot set up a client for the Kubernetes API server at {server}: {e}"
            ),
        })?;
        let audiences: Vec<String> = config
            .auth_token_review_audiences
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        let accepted_ttl = Duration::from_millis(config.auth_token_review_cache_ms);
        tracing::info!(api_server = %server, ?audiences, cache = ?accepted_ttl, "bearer tokens not in auth.tokens.file are verified by TokenReview");
        Ok(TokenReviewer {
            api: Api::all(client),
            server,
            audiences,
            cache: TokenCache::new(accepted_ttl, REFUSED_TTL.min(accepted_ttl), CACHE_CAPACITY),
        })
    }

    /// The principal `token` stands for, from the cache or the API server.
    pub async fn review(&self, token: &str) -> Result<Principal> {
        if let Some(outcome) = self.cache.get(token) {
            return outcome.map_err(Error::AuthenticationFailed);
        }
        let request = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
            },
            ..TokenReview::default()
        };
        let unavailable = |why: String| {
            tracing::warn!(api_server = %self.server, error = %why, "cannot verify a bearer token");
            Error::NotAvailable(format!(
                "cannot verify the bearer token: the Kubernetes API server at {} {why}; retry later",
                self.server
            ))
        };
        let answer = tokio::time::timeout(
            REVIEW_TIMEOUT,
            self.api.create(&PostParams::default(), &request),
        )
        .await;
        let review = match answer {
            Ok(Ok(review)) => review,
            Ok(Err(kube::Error::Api(status))) => {
                let hint = if status.code == 403 {
                    "; the broker's ServiceAccount needs create on \
                     tokenreviews.authentication.k8s.io (ClusterRole system:auth-delegator)"
                } else {
                    ""
                };
                return Err(unavailable(format!(
                    "refused the TokenReview: {} (HTTP {}){hint}",
                    status.message, status.code
                )));
            }
            Ok(Err(e)) => return Err(unavailable(format!("cannot be reached: {e}"))),
            Err(_) => {
                return Err(unavailable(format!(
                    "did not answer the TokenReview within {REVIEW_TIMEOUT:?}"
                )));
            }
        };
        let outcome = judge(review.status.unwrap_or_default(), &self.audiences);
        if let Err(reason) = &outcome {
            tracing::debug!(%reason, "TokenReview refused a bearer token");
        }
        self.cache.put(token, outcome.clone());
        outcome.map_err(Error::AuthenticationFailed)
    }
}

/// The principal a TokenReview's answer names, or why the token is refused.
/// Like kube-apiserver's webhook authenticator, a token reviewed for
/// audiences must come back with at least one of them.
fn judge(status: TokenReviewStatus, audiences: &[String]) -> Outcome {
    if status.authenticated != Some(true) {
        let error = status.error.filter(|e| !e.is_empty());
        return Err(match error {
            Some(error) => format!("the Kubernetes API server refused the bearer token: {error}"),
            None => "the bearer token is neither in auth.tokens.file nor accepted by the \
                     Kubernetes API server"
                .into(),
        });
    }
    if !audiences.is_empty() {
        let granted = status.audiences.unwrap_or_default();
        if !granted.iter().any(|a| audiences.contains(a)) {
            return Err(format!(
                "the bearer token is not meant for this broker: it is for the audiences {granted:?}, \
                 the broker accepts {audiences:?} (auth.token.review.audiences)"
            ));
        }
    }
    match status
        .user
        .and_then(|u| u.username)
        .filter(|u| !u.is_empty())
    {
        Some(username) => Ok(Principal(format!("User:{username}"))),
        None => Err("the Kubernetes API server accepted the bearer token but named no user".into()),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::authentication::v1::UserInfo;

    use super::*;

    fn status(
        authenticated: bool,
        user: Option<&str>,
        audiences: Option<&[&str]>,
    ) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: Some(authenticated),
            user: user.map(|u| UserInfo {
                username: Some(u.into()),
                ..UserInfo::default()
            }),
            audiences: audiences.map(|a| a.iter().map(|s| s.to_string()).collect()),
            error: (!authenticated).then(|| "token has expired".into()),
        }
    }

    #[test]
    fn answers_become_principals_or_reasons() {
        let sa = "system:serviceaccount:ns:app";
        assert_eq!(
            judge(status(true, Some(sa), None), &[]),
            Ok(Principal(format!("User:{sa}")))
        );
        let refused = judge(status(false, None, None), &[]).unwrap_err();
        assert!(refused.contains("token has expired"), "{refused}");
        assert!(
            judge(status(true, None, None), &[])
                .unwrap_err()
                .contains("no user")
        );

        let wanted = vec!["runnel".to_owned()];
        assert!(judge(status(true, Some(sa), Some(&["runnel", "x"])), &wanted).is_ok());
        let wrong = judge(
            status(true, Some(sa), Some(&["https://kubernetes.default.svc"])),
            &wanted,
        )
        .unwrap_err();
        assert!(wrong.contains("auth.token.review.audiences"), "{wrong}");
        assert!(judge(status(true, Some(sa), None), &wanted).is_err());
    }
}
