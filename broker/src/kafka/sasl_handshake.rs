//! SaslHandshake: the client names its SASL mechanism; PLAIN and
//! OAUTHBEARER are offered, both carrying one of the bearer tokens gRPC
//! clients send (`auth.tokens.file`, Kubernetes TokenReview). v0 is
//! advertised because librdkafka looks for it, but only a v1 handshake is
//! accepted: after v0 the SASL exchange would follow as raw frames, which
//! no client does when the broker has SaslAuthenticate.

use std::sync::Arc;

pub use kafka_protocol::messages::SaslHandshakeRequest;
use kafka_protocol::messages::SaslHandshakeResponse;

use super::connection::Conn;
use super::topics::str_bytes;

pub const VERSIONS: (i16, i16) = (0, 1);

/// The mechanisms served.
pub const MECHANISMS: &[&str] = &["PLAIN", "OAUTHBEARER"];

pub async fn handle(
    conn: Arc<Conn>,
    version: i16,
    req: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let mechanisms = MECHANISMS.iter().map(|m| str_bytes(*m)).collect();
    if version == 0 {
        return SaslHandshakeResponse::default()
            .with_error_code(super::errors::UNSUPPORTED_VERSION)
            .with_mechanisms(mechanisms);
    }
    let mechanism = req.mechanism.to_string();
    let known = MECHANISMS.contains(&mechanism.as_str());
    if known {
        conn.set_sasl_mechanism(Some(mechanism));
    }
    SaslHandshakeResponse::default()
        .with_error_code(if known {
            0
        } else {
            kafka_protocol::ResponseError::UnsupportedSaslMechanism.code()
        })
        .with_mechanisms(mechanisms)
}
