//! What `spec.security` adds to a Cluster's objects: the broker settings
//! (environment), the Secret volumes the brokers read their certificate and
//! token file from, the Secrets the operator keeps (cluster CA, CA bundle,
//! certificates, token file) and, with `issuer: CertManager`, the
//! cert-manager `Certificate`s.
//!
//! Secret names, for `<c>` = the Cluster's name:
//! - `<c>-cluster-ca` (operator issuer only): the CA's certificate and
//!   private key. Only the operator reads it.
//! - `<c>-cluster-ca-cert`: `ca.crt`, the CA bundle clients trust (the
//!   current CA, and the previous one while certificates it signed live).
//! - `<c>-broker-tls`: the brokers' certificate (`tls.crt`, `tls.key`,
//!   `ca.crt`), mounted in every broker pod. One certificate for all brokers:
//!   its names are wildcards over the headless Service.
//! - `<c>-operator-tls`: the operator's client certificate (CN
//!   `runnel-operator`, a super user).
//! - `<c>-tokens`: `tokens.csv`, the bearer tokens of `User`s with
//!   `authentication.type: Token`.
//!
//! The brokers re-read certificate and token files when they change, so
//! renewing a certificate or adding a token restarts nothing.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{EnvVar, Secret, SecretVolumeSource, Volume, VolumeMount};
use kube::ResourceExt;
use serde_json::{Value, json};

use super::{names, namespace, object_meta};
use crate::Result;
use crate::crd::Cluster;
use crate::crd::security::{Issuer, IssuerRef, SecuritySpec, TlsSpec};

/// Where broker pods mount `<c>-broker-tls`.
pub const TLS_DIR: &str = "/etc/runnel/tls";
/// Where broker pods mount `<c>-tokens`.
pub const TOKENS_DIR: &str = "/etc/runnel/auth";
/// The token file's key in `<c>-tokens` (and its name under [`TOKENS_DIR`]).
pub const TOKENS_FILE: &str = "tokens.csv";

/// CN of the operator's client certificate.
pub const OPERATOR_COMMON_NAME: &str = "runnel-operator";

/// Annotation on a certificate Secret: the fingerprint of the CA that
/// signed it, so a new CA gets it reissued.
pub const CA_FINGERPRINT_ANNOTATION: &str = "runnel.dev/ca-fingerprint";

/// Keys of a `kubernetes.io/tls` Secret (cert-manager writes the same).
pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const CA_CRT: &str = "ca.crt";
/// Keys of `<c>-cluster-ca`.
pub const CA_KEY: &str = "ca.key";
pub const CA_PREVIOUS_CRT: &str = "ca-previous.crt";

pub fn ca_secret_name(cluster: &Cluster) -> String {
    format!("{}-cluster-ca", cluster.name_any())
}

pub fn ca_bundle_secret_name(cluster: &Cluster) -> String {
    format!("{}-cluster-ca-cert", cluster.name_any())
}

pub fn broker_tls_secret_name(cluster: &Cluster) -> String {
    format!("{}-broker-tls", cluster.name_any())
}

pub fn operator_tls_secret_name(cluster: &Cluster) -> String {
    format!("{}-operator-tls", cluster.name_any())
}

pub fn tokens_secret_name(cluster: &Cluster) -> String {
    format!("{}-tokens", cluster.name_any())
}

/// CN of the brokers' certificate: `<c>-broker`, so the brokers' principal
/// is `User:<c>-broker`.
pub fn broker_common_name(cluster: &Cluster) -> String {
    names::statefulset(cluster)
}

/// Principals a `User` may not take: the brokers' and the operator's (they
/// are super users).
pub fn reserved_names(cluster: &Cluster) -> [String; 2] {
    [broker_common_name(cluster), OPERATOR_COMMON_NAME.to_owned()]
}

/// The names in the brokers' certificate: every pod of the headless Service
/// (what brokers advertise) and the client Service (what clients bootstrap
/// from), short and fully qualified.
pub fn broker_dns_names(cluster: &Cluster) -> Result<Vec<String>> {
    let ns = namespace(cluster)?;
    let headless = names::headless_service(cluster);
    let client = names::client_service(cluster);
    Ok(vec![
        format!("*.{headless}.{ns}.svc"),
        format!("*.{headless}.{ns}.svc.cluster.local"),
        format!("{client}.{ns}.svc"),
        format!("{client}.{ns}.svc.cluster.local"),
        format!("{client}.{ns}"),
        client,
    ])
}

/// Super users of the brokers: the brokers themselves (replication), the
/// operator, and `spec.security.authorization.superUsers`.
pub fn super_users(cluster: &Cluster) -> Vec<String> {
    let mut users = vec![
        format!("User:{}", broker_common_name(cluster)),
        format!("User:{OPERATOR_COMMON_NAME}"),
    ];
    if let Some(authz) = cluster
        .spec
        .security
        .as_ref()
        .and_then(|s| s.authorization.as_ref())
    {
        users.extend(authz.super_users.iter().cloned());
    }
    users
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// Broker settings for `spec.security`, as environment variables (which
/// beat the config file).
pub fn broker_env(security: &SecuritySpec, cluster: &Cluster) -> Vec<EnvVar> {
    let mut out = Vec::new();
    if let Some(tls) = &security.tls {
        out.push(env(
            "RUNNEL_SSL_CERTIFICATE_LOCATION",
            format!("{TLS_DIR}/{TLS_CRT}"),
        ));
        out.push(env(
            "RUNNEL_SSL_KEY_LOCATION",
            format!("{TLS_DIR}/{TLS_KEY}"),
        ));
        out.push(env("RUNNEL_SSL_CA_LOCATION", format!("{TLS_DIR}/{CA_CRT}")));
        out.push(env("RUNNEL_SSL_CLIENT_AUTH", tls.client_auth.as_setting()));
    }
    if let Some(authz) = &security.authorization {
        out.push(env("RUNNEL_AUTHORIZER_ENABLE", "true"));
        out.push(env("RUNNEL_SUPER_USERS", super_users(cluster).join(";")));
        out.push(env(
            "RUNNEL_ALLOW_EVERYONE_IF_NO_ACL_FOUND",
            authz.allow_everyone_if_no_acl_found.to_string(),
        ));
    }
    out.push(env(
        "RUNNEL_AUTH_TOKENS_FILE",
        format!("{TOKENS_DIR}/{TOKENS_FILE}"),
    ));
    if let Some(authn) = &security.authentication
        && authn.service_account_tokens
    {
        out.push(env("RUNNEL_AUTH_TOKEN_REVIEW_ENABLE", "true"));
        if !authn.audiences.is_empty() {
            out.push(env(
                "RUNNEL_AUTH_TOKEN_REVIEW_AUDIENCES",
                authn.audiences.join(","),
            ));
        }
    }
    out
}

/// Secret volumes of the broker pods and where the broker container mounts
/// them.
pub fn broker_volumes(
    security: &SecuritySpec,
    cluster: &Cluster,
) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    let mut add = |name: &str, secret: String, dir: &str| {
        volumes.push(Volume {
            name: name.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                // Owner and group (the pod's fsGroup) only: the files hold
                // private keys and tokens.
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: name.to_owned(),
            mount_path: dir.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    };
    if security.tls.is_some() {
        add("tls", broker_tls_secret_name(cluster), TLS_DIR);
    }
    add("auth", tokens_secret_name(cluster), TOKENS_DIR);
    (volumes, mounts)
}

/// A Secret of `cluster` (owned by it) with `data`.
pub fn secret(
    cluster: &Cluster,
    name: String,
    type_: &str,
    data: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
) -> Result<Secret> {
    let mut metadata = object_meta(cluster, name, "security")?;
    if !annotations.is_empty() {
        metadata.annotations = Some(annotations);
    }
    Ok(Secret {
        metadata,
        type_: Some(type_.to_owned()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    })
}

/// `<c>-tokens` with one `token,user` line per entry, sorted by user.
pub fn tokens_secret(cluster: &Cluster, entries: &[(String, String)]) -> Result<Secret> {
    let mut sorted: Vec<&(String, String)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.1.cmp(&b.1));
    let mut file = String::from(
        "# Bearer tokens of the Cluster's Users (authentication.type: Token); written by runnel-operator.\n",
    );
    for (token, user) in sorted {
        file.push_str(&format!("{token},{user}\n"));
    }
    secret(
        cluster,
        tokens_secret_name(cluster),
        "Opaque",
        BTreeMap::from([(TOKENS_FILE.to_owned(), file)]),
        BTreeMap::new(),
    )
}

/// A cert-manager `Certificate` named `name`, written to Secret `name`.
pub fn certificate(
    cluster: &Cluster,
    owner: Option<(&str, &str, &str)>,
    name: &str,
    common_name: &str,
    dns_names: &[String],
    server: bool,
    tls: &TlsSpec,
) -> Result<Value> {
    let certs = &tls.certificates;
    let issuer = certs.issuer_ref.clone().unwrap_or_else(|| IssuerRef {
        name: String::new(),
        kind: "Issuer".into(),
        group: "cert-manager.io".into(),
    });
    let mut usages = vec!["digital signature", "key encipherment", "client auth"];
    if server {
        usages.push("server auth");
    }
    let mut meta = serde_json::to_value(object_meta(cluster, name.to_owned(), "security")?)?;
    if let Some((kind, owner_name, uid)) = owner {
        meta["ownerReferences"] = json!([{
            "apiVersion": "runnel.dev/v1alpha1", "kind": kind, "name": owner_name,
            "uid": uid, "controller": true, "blockOwnerDeletion": true,
        }]);
    }
    let mut spec = json!({
        "secretName": name,
        "commonName": common_name,
        "duration": format!("{}h", certs.validity_days * 24),
        "renewBefore": format!("{}h", certs.renew_before_days * 24),
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "usages": usages,
        "issuerRef": {"name": issuer.name, "kind": issuer.kind, "group": issuer.group},
    });
    if !dns_names.is_empty() {
        spec["dnsNames"] = json!(dns_names);
    }
    Ok(json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": meta,
        "spec": spec,
    }))
}

/// The cert-manager `Certificate`s of a Cluster (`issuer: CertManager`):
/// the brokers' and the operator's.
pub fn cluster_certificates(cluster: &Cluster) -> Result<Vec<Value>> {
    let Some(tls) = cluster.spec.tls() else {
        return Ok(Vec::new());
    };
    if tls.certificates.issuer != Issuer::CertManager {
        return Ok(Vec::new());
    }
    Ok(vec![
        certificate(
            cluster,
            None,
            &broker_tls_secret_name(cluster),
            &broker_common_name(cluster),
            &broker_dns_names(cluster)?,
            true,
            tls,
        )?,
        certificate(
            cluster,
            None,
            &operator_tls_secret_name(cluster),
            OPERATOR_COMMON_NAME,
            &[],
            false,
            tls,
        )?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::samples;

    fn secured(security: serde_json::Value) -> Cluster {
        let mut cluster = samples::minimal();
        cluster.spec.security = Some(serde_json::from_value(security).unwrap());
        cluster
    }

    fn env_map(cluster: &Cluster) -> BTreeMap<String, String> {
        broker_env(cluster.spec.security.as_ref().unwrap(), cluster)
            .into_iter()
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn tls_and_authorization_settings() {
        let cluster = secured(json!({
            "tls": {"clientAuth": "Required"},
            "authorization": {"superUsers": ["User:admin"]},
            "authentication": {"serviceAccountTokens": true, "audiences": ["runnel", "api"]},
        }));
        let env = env_map(&cluster);
        assert_eq!(
            env["RUNNEL_SSL_CERTIFICATE_LOCATION"],
            "/etc/runnel/tls/tls.crt"
        );
        assert_eq!(env["RUNNEL_SSL_KEY_LOCATION"], "/etc/runnel/tls/tls.key");
        assert_eq!(env["RUNNEL_SSL_CA_LOCATION"], "/etc/runnel/tls/ca.crt");
        assert_eq!(env["RUNNEL_SSL_CLIENT_AUTH"], "required");
        assert_eq!(env["RUNNEL_AUTHORIZER_ENABLE"], "true");
        assert_eq!(
            env["RUNNEL_SUPER_USERS"],
            "User:minimal-broker;User:runnel-operator;User:admin"
        );
        assert_eq!(env["RUNNEL_ALLOW_EVERYONE_IF_NO_ACL_FOUND"], "false");
        assert_eq!(
            env["RUNNEL_AUTH_TOKENS_FILE"],
            "/etc/runnel/auth/tokens.csv"
        );
        assert_eq!(env["RUNNEL_AUTH_TOKEN_REVIEW_ENABLE"], "true");
        assert_eq!(env["RUNNEL_AUTH_TOKEN_REVIEW_AUDIENCES"], "runnel,api");
        // Every variable is one the broker reads.
        use clap::CommandFactory;
        let known: Vec<String> = runnel_broker::config::BrokerArgs::command()
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .collect();
        for name in env.keys() {
            assert!(known.contains(name), "the broker has no setting {name}");
        }

        let (volumes, mounts) = broker_volumes(cluster.spec.security.as_ref().unwrap(), &cluster);
        let secrets: Vec<_> = volumes
            .iter()
            .map(|v| v.secret.as_ref().unwrap().secret_name.clone().unwrap())
            .collect();
        assert_eq!(secrets, ["minimal-broker-tls", "minimal-tokens"]);
        assert_eq!(mounts[0].mount_path, TLS_DIR);
        assert!(mounts.iter().all(|m| m.read_only == Some(true)));
    }

    #[test]
    fn plaintext_with_tokens_only_mounts_the_token_file() {
        let cluster = secured(json!({}));
        let env = env_map(&cluster);
        assert_eq!(env.len(), 1, "{env:?}");
        let (volumes, _) = broker_volumes(cluster.spec.security.as_ref().unwrap(), &cluster);
        assert_eq!(volumes.len(), 1);
    }

    #[test]
    fn broker_names_cover_pods_and_the_client_service() {
        let names = broker_dns_names(&samples::minimal()).unwrap();
        assert!(names.contains(&"*.minimal-brokers.default.svc".to_owned()));
        assert!(names.contains(&"minimal-client.default.svc".to_owned()));
        assert_eq!(
            reserved_names(&samples::minimal()),
            ["minimal-broker", "runnel-operator"]
        );
    }

    #[test]
    fn cert_manager_certificates() {
        let cluster = secured(json!({"tls": {"certificates": {
            "issuer": "CertManager", "validityDays": 90, "renewBeforeDays": 15, "caValidityDays": 90,
            "issuerRef": {"name": "runnel-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}}}}));
        let certs = cluster_certificates(&cluster).unwrap();
        assert_eq!(certs.len(), 2);
        let broker = &certs[0];
        assert_eq!(broker["kind"], "Certificate");
        assert_eq!(broker["spec"]["secretName"], "minimal-broker-tls");
        assert_eq!(broker["spec"]["commonName"], "minimal-broker");
        assert_eq!(broker["spec"]["duration"], "2160h");
        assert_eq!(broker["spec"]["renewBefore"], "360h");
        assert_eq!(broker["spec"]["issuerRef"]["kind"], "ClusterIssuer");
        assert!(
            broker["spec"]["usages"]
                .as_array()
                .unwrap()
                .contains(&json!("server auth"))
        );
        assert_eq!(broker["metadata"]["ownerReferences"][0]["kind"], "Cluster");
        let operator = &certs[1];
        assert_eq!(operator["spec"]["commonName"], "runnel-operator");
        assert!(operator["spec"].get("dnsNames").is_none());
        // The operator issuer makes no Certificate objects.
        let own = secured(json!({"tls": {}}));
        assert!(cluster_certificates(&own).unwrap().is_empty());
    }

    #[test]
    fn token_file_is_sorted_and_parses() {
        let cluster = samples::minimal();
        let secret = tokens_secret(
            &cluster,
            &[
                ("b".repeat(32), "zed".to_owned()),
                ("a".repeat(32), "amy".to_owned()),
            ],
        )
        .unwrap();
        let file = String::from_utf8(secret.data.unwrap()[TOKENS_FILE].0.clone()).unwrap();
        let lines: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                format!("{},amy", "a".repeat(32)),
                format!("{},zed", "b".repeat(32))
            ]
        );
    }
}
