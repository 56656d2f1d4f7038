//! IncrementalAlterConfigs: SET and DELETE of single configs on a topic or
//! the cluster-wide defaults. APPEND and SUBTRACT (list-valued configs)
//! are refused: no Runnel config is a list.

use std::collections::BTreeMap;
use std::sync::Arc;

pub use kafka_protocol::messages::IncrementalAlterConfigsRequest;
use kafka_protocol::messages::IncrementalAlterConfigsResponse;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;

use super::configs::alter;
use super::connection::Conn;
use super::errors::code;
use super::topics::str_bytes;
use crate::Error;

pub const VERSIONS: (i16, i16) = (0, 1);

pub async fn handle(
    conn: Arc<Conn>,
    _version: i16,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let mut set = BTreeMap::new();
        let mut delete = Vec::new();
        let mut refused = None;
        for c in &r.configs {
            match (c.config_operation, &c.value) {
                (0, Some(value)) => {
                    set.insert(c.name.to_string(), value.to_string());
                }
                (1, _) => delete.push(c.name.to_string()),
                (0, None) => {
                    refused = Some(Error::InvalidRequest(format!(
                        "SET {} without a value",
                        c.name.as_str()
                    )))
                }
                (op, _) => {
                    refused = Some(Error::InvalidRequest(format!(
                        "config operation {op} on {} is not supported: only SET (0) and DELETE (1); \
                         no Runnel config is a list",
                        c.name.as_str()
                    )))
                }
            }
        }
        let outcome = match refused {
            Some(e) => Err(e),
            None => {
                alter(
                    &conn,
                    "IncrementalAlterConfigs",
                    r.resource_type,
                    &r.resource_name,
                    set,
                    delete,
                    req.validate_only,
                )
                .await
            }
        };
        let mut response = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        if let Err(e) = outcome {
            response.error_code = code(&e);
            response.error_message = Some(str_bytes(e.to_string()));
        }
        responses.push(response);
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
