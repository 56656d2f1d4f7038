//! Bearer tokens → principals: the static tokens of `auth.tokens.file`
//! (read again when the file changes), then, with
//! `auth.token.review.enable`, the Kubernetes API server's TokenReview.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::Principal;
use super::static_tokens::StaticTokens;
use super::token_review::TokenReviewer;
use crate::config::BrokerConfig;
use crate::reload::Reloading;
use crate::{Error, Result};

#[derive(Debug)]
pub struct Authenticator {
    /// `auth.tokens.file`; `None` when unset.
    static_tokens: Option<Arc<Reloading<StaticTokens>>>,
    /// How often `auth.tokens.file` is checked for changes: the same
    /// `ssl.reload.interval.ms` as the TLS files, which usually come from
    /// Secrets too.
    reload_interval: Duration,
    /// TokenReview, with `auth.token.review.enable`.
    review: Option<TokenReviewer>,
}

impl Authenticator {
    /// Read `auth.tokens.file` and find the Kubernetes API server as
    /// configured; either failing stops the broker's start.
    pub async fn from_config(config: &BrokerConfig) -> Result<Self> {
        let static_tokens = if config.auth_tokens_file.as_os_str().is_empty() {
            None
        } else {
            let path = config.auth_tokens_file.clone();
            Some(Arc::new(Reloading::new(
                "auth.tokens.file",
                vec![path.clone()],
                move || StaticTokens::load(&path),
            )?))
        };
        let review = if config.auth_token_review_enable {
            Some(TokenReviewer::new(config).await?)
        } else {
            None
        };
        Ok(Authenticator {
            static_tokens,
            reload_interval: Duration::from_millis(config.ssl_reload_interval_ms.max(100)),
            review,
        })
    }

    /// The task that reads `auth.tokens.file` again when it changes, if
    /// there is one.
    pub fn watcher(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let tokens = self.static_tokens.clone()?;
        Some(tokens.watch(self.reload_interval))
    }

    /// The principal a bearer token stands for.
    pub async fn bearer(&self, token: &str) -> Result<Principal> {
        let known = self
            .static_tokens
            .as_ref()
            .and_then(|tokens| tokens.current().user(token).map(str::to_owned));
        if let Some(user) = known {
            return Ok(Principal(format!("User:{user}")));
        }
        match &self.review {
            Some(review) => review.review(token).await,
            None => Err(Error::AuthenticationFailed(
                "the bearer token is not known to this broker (auth.tokens.file)".into(),
            )),
        }
    }
}
