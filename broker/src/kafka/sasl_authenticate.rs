//! SaslAuthenticate: one SASL message with the credentials of the
//! mechanism chosen in SaslHandshake.
//!
//! - PLAIN (RFC 4616) `authzid NUL username NUL password`: the password is
//!   a bearer token; a username that is not the token's user is refused,
//!   so a client cannot claim a name its token does not carry.
//! - OAUTHBEARER (RFC 7628) `n,,\x01auth=Bearer <token>\x01\x01`.
//!
//! On success the connection's requests act as the token's principal, as
//! a gRPC request carrying it would. A failure is answered with
//! SASL_AUTHENTICATION_FAILED and the connection is then closed, as Kafka
//! does.

use std::sync::Arc;

pub use kafka_protocol::messages::SaslAuthenticateRequest;
use kafka_protocol::messages::SaslAuthenticateResponse;

use super::connection::Conn;
use super::topics::str_bytes;
use crate::{Error, Result};

pub const VERSIONS: (i16, i16) = (0, 2);

const FAILED: i16 = kafka_protocol::ResponseError::SaslAuthenticationFailed.code();
const ILLEGAL_SASL_STATE: i16 = kafka_protocol::ResponseError::IllegalSaslState.code();

pub async fn handle(
    conn: Arc<Conn>,
    _version: i16,
    req: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let Some(mechanism) = conn.sasl_mechanism() else {
        conn.close_after_answer();
        return SaslAuthenticateResponse::default()
            .with_error_code(ILLEGAL_SASL_STATE)
            .with_error_message(Some(str_bytes("SaslAuthenticate before SaslHandshake")));
    };
    match authenticate(&conn, &mechanism, &req.auth_bytes).await {
        Ok(principal) => {
            tracing::debug!(peer = %conn.peer, %principal, mechanism, "Kafka client authenticated");
            conn.set_principal(principal);
            SaslAuthenticateResponse::default()
        }
        Err(e) => {
            if matches!(e, Error::AuthenticationFailed(_)) {
                conn.ctx.metrics.authentication_failed.inc();
            }
            tracing::info!(peer = %conn.peer, mechanism, error = %e, "Kafka SASL authentication failed");
            conn.close_after_answer();
            SaslAuthenticateResponse::default()
                .with_error_code(FAILED)
                .with_error_message(Some(str_bytes(e.to_string())))
        }
    }
}

async fn authenticate(
    conn: &Conn,
    mechanism: &str,
    bytes: &[u8],
) -> Result<crate::auth::Principal> {
    let bad =
        |what: &str| Error::AuthenticationFailed(format!("malformed {mechanism} message: {what}"));
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
    match mechanism {
        "PLAIN" => {
            let mut parts = text.split('\0');
            let (_authzid, user, token) =
                match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some(a), Some(u), Some(p), None) => (a, u, p),
                    _ => return Err(bad("expected authzid NUL username NUL password")),
                };
            let principal = conn.ctx.authenticator.bearer(token).await?;
            let claimed = format!("User:{user}");
            if !user.is_empty() && principal.0 != claimed {
                return Err(Error::AuthenticationFailed(format!(
                    "the token given as the password belongs to {principal}, not {claimed}"
                )));
            }
            Ok(principal)
        }
        "OAUTHBEARER" => {
            let token = text
                .split('\x01')
                .find_map(|kv| kv.strip_prefix("auth="))
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| bad("no auth=Bearer <token>"))?;
            conn.ctx.authenticator.bearer(token).await
        }
        other => Err(Error::AuthenticationFailed(format!(
            "mechanism {other} is not served"
        ))),
    }
}
