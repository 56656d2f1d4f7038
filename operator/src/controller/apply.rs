//! Server-side apply of desired objects, skipping the ones that already
//! match: each applied object carries a hash of what was applied, so a
//! reconcile with nothing to change makes no writes (only reads).

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::Value;

use crate::context::FIELD_MANAGER;
use crate::manifests::config::config_hash;
use crate::{Error, Result};

/// Annotation holding the hash of the last applied desired state.
pub const APPLIED_HASH: &str = "runnel.dev/applied-hash";

/// Apply `objects` (full manifests with apiVersion, kind, metadata.name)
/// into `namespace`; returns the names of the objects written.
pub async fn apply_all(
    client: &Client,
    namespace: &str,
    objects: Vec<Value>,
) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for object in objects {
        if let Some(name) = apply_one(client, namespace, object).await? {
            written.push(name);
        }
    }
    Ok(written)
}

async fn apply_one(client: &Client, namespace: &str, mut object: Value) -> Result<Option<String>> {
    let api_version = field(&object, "apiVersion")?;
    let kind = field(&object, "kind")?;
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or(Error::MissingField("metadata.name"))?
        .to_owned();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), api_version.clone()),
    };
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, &version, &kind));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    // Sorted keys: the hash must not depend on serde_json's features.
    let hash = config_hash(&serde_json::to_string(&crate::yaml::canonical(
        object.clone(),
    ))?);
    if let Some(current) = api.get_opt(&name).await? {
        let applied = current
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(APPLIED_HASH));
        if applied == Some(&hash) {
            return Ok(None);
        }
    }
    let annotations = object
        .pointer_mut("/metadata")
        .and_then(Value::as_object_mut)
        .ok_or(Error::MissingField("metadata"))?
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(map) = annotations {
        map.insert(APPLIED_HASH.to_owned(), Value::String(hash));
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&object)).await?;
    Ok(Some(format!("{kind}/{name}")))
}

fn field(object: &Value, key: &'static str) -> Result<String> {
    object
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(Error::MissingField(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::MockApi;
    use http::Method;
    use serde_json::json;

    fn config_map() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "main-config", "namespace": "ns"},
               "data": {"server.toml": "num.partitions = 3\n"}})
    }

    #[tokio::test]
    async fn applies_a_new_object_then_skips_it_when_unchanged() {
        let (client, mut api) = MockApi::new();
        let c = client.clone();
        let task = tokio::spawn(async move { apply_all(&c, "ns", vec![config_map()]).await });
        let path = "/api/v1/namespaces/ns/configmaps/main-config";
        api.expect(Method::GET, path).await.not_found();
        let patch = api.expect(Method::PATCH, path).await;
        assert!(
            patch.query().contains("fieldManager=runnel-operator"),
            "{}",
            patch.uri
        );
        assert!(patch.query().contains("force=true"), "{}", patch.uri);
        let hash = patch.body["metadata"]["annotations"][APPLIED_HASH].clone();
        assert!(hash.is_string());
        let stored = patch.body.clone();
        patch.echo();
        assert_eq!(task.await.unwrap().unwrap(), vec!["ConfigMap/main-config"]);

        // Second pass: the stored object carries the same hash — no write.
        let task = tokio::spawn(async move { apply_all(&client, "ns", vec![config_map()]).await });
        api.expect(Method::GET, path).await.ok(stored);
        assert!(task.await.unwrap().unwrap().is_empty());
        api.expect_silence(100).await;
    }

    #[tokio::test]
    async fn a_changed_object_is_applied_again() {
        let (client, mut api) = MockApi::new();
        let mut old = config_map();
        old["metadata"]["annotations"] = json!({APPLIED_HASH: "0000000000000000"});
        let task = tokio::spawn(async move { apply_all(&client, "ns", vec![config_map()]).await });
        let path = "/api/v1/namespaces/ns/configmaps/main-config";
        api.expect(Method::GET, path).await.ok(old);
        api.expect(Method::PATCH, path).await.echo();
        assert_eq!(task.await.unwrap().unwrap().len(), 1);
    }
}
