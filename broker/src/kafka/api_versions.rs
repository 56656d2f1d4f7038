//! ApiVersions: the APIs and versions this broker serves, exactly the
//! table in [`super::dispatch`]. Clients send it first on every connection
//! and pick, per API, the highest version both sides know.

use std::sync::Arc;

pub use kafka_protocol::messages::ApiVersionsRequest;
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::messages::api_versions_response::ApiVersion;

use super::connection::Conn;
use super::dispatch::supported;
use super::errors::UNSUPPORTED_VERSION;

pub const VERSIONS: (i16, i16) = (0, 4);

pub async fn handle(
    _conn: Arc<Conn>,
    _version: i16,
    _req: ApiVersionsRequest,
) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// The v0 answer to an ApiVersions version we do not know (KIP-511).
pub fn unsupported() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(UNSUPPORTED_VERSION)
        .with_api_keys(api_keys())
}

fn api_keys() -> Vec<ApiVersion> {
    supported()
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}
