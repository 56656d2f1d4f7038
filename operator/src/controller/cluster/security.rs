//! The Cluster reconciler's security step (`spec.security`): keeps the
//! cluster CA and the brokers' and operator's certificates (operator
//! issuer), the CA bundle Secret clients mount, and the brokers' token file.
//!
//! [`plan`] decides from what is stored and the time, with no I/O:
//! - the CA is made when missing and replaced when inside its renewal
//!   window; the old CA stays in the bundle until it expires, so clients
//!   and certificates that trust or carry it keep working meanwhile;
//! - a certificate is reissued when missing, inside its renewal window,
//!   signed by another CA than the current one, or carrying other names
//!   than the Cluster needs now.
//!
//! With `issuer: CertManager` cert-manager owns the certificates
//! (`manifests::security::cluster_certificates`); this step only copies
//! their CA into the bundle Secret.

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::certs::{self, CertificateAuthority, Request};
use crate::crd::security::{Issuer, TlsSpec};
use crate::crd::user::AuthenticationType;
use crate::crd::{Cluster, User};
use crate::manifests::security::{
    self as names, CA_CRT, CA_FINGERPRINT_ANNOTATION, CA_KEY, CA_PREVIOUS_CRT, TLS_CRT, TLS_KEY,
};
use crate::{Error, Result};

/// Secrets as found, by key (UTF-8 values only: PEM and token files).
pub type SecretData = BTreeMap<String, String>;

/// A stored Secret's data and annotations.
#[derive(Clone, Debug, Default)]
pub struct Stored {
    pub data: SecretData,
    pub annotations: BTreeMap<String, String>,
}

/// What is stored now (`None`: no such Secret).
#[derive(Clone, Debug, Default)]
pub struct Current {
    pub ca: Option<Stored>,
    pub broker: Option<Stored>,
    pub operator: Option<Stored>,
}

/// What to write, and what happened (for Events).
#[derive(Debug, Default)]
pub struct Plan {
    pub secrets: Vec<Secret>,
    /// `(reason, message)` of things done.
    pub done: Vec<(String, String)>,
}

/// Decide the operator-issued secrets of `cluster` at `now`.
pub fn plan(cluster: &Cluster, tls: &TlsSpec, current: &Current, now: SystemTime) -> Result<Plan> {
    let certs = &tls.certificates;
    let renew_before = certs::days(certs.renew_before_days);
    let mut out = Plan::default();

    // The CA: stored, renewed, or new.
    let stored_ca = current.ca.as_ref().and_then(|s| {
        Some((
            CertificateAuthority {
                cert_pem: s.data.get(CA_CRT)?.clone(),
                key_pem: s.data.get(CA_KEY)?.clone(),
            },
            s.data.get(CA_PREVIOUS_CRT).cloned(),
        ))
    });
    let stored_ca = stored_ca.filter(|(ca, _)| ca.info().is_ok());
    let (ca, mut previous, ca_changed) = match stored_ca {
        Some((ca, previous)) if !certs::due(ca.info()?.not_after, now, renew_before) => {
            (ca, previous, false)
        }
        Some((old, _)) => {
            let ca = new_ca(cluster, tls, now)?;
            out.done.push((
                "CertificateAuthorityRenewed".into(),
                format!(
                    "new cluster CA (the old one expires {}; it stays trusted until then)",
                    certs::rfc3339(old.info()?.not_after)
                ),
            ));
            (ca, Some(old.cert_pem), true)
        }
        None => {
            let ca = new_ca(cluster, tls, now)?;
            out.done.push((
                "CertificateAuthorityCreated".into(),
                format!(
                    "cluster CA in Secret {} (clients trust Secret {})",
                    names::ca_secret_name(cluster),
                    names::ca_bundle_secret_name(cluster)
                ),
            ));
            (ca, None, true)
        }
    };
    // The previous CA leaves the bundle once nothing it signed can be valid.
    let previous_expired = previous
        .as_deref()
        .map(|pem| certs::inspect(pem).map_or(true, |i| i.not_after <= now))
        .unwrap_or(false);
    if previous_expired {
        previous = None;
    }
    let mut ca_data = BTreeMap::from([
        (CA_CRT.to_owned(), ca.cert_pem.clone()),
        (CA_KEY.to_owned(), ca.key_pem.clone()),
    ]);
    if let Some(previous) = &previous {
        ca_data.insert(CA_PREVIOUS_CRT.to_owned(), previous.clone());
    }
    if ca_changed || previous_expired {
        out.secrets.push(names::secret(
            cluster,
            names::ca_secret_name(cluster),
            "Opaque",
            ca_data,
            BTreeMap::new(),
        )?);
    }
    let bundle = bundle(&ca.cert_pem, previous.as_deref());
    out.secrets.push(bundle_secret(cluster, bundle.clone())?);

    // The brokers' and the operator's certificates.
    let leaves = [
        (
            names::broker_tls_secret_name(cluster),
            &current.broker,
            Request {
                common_name: names::broker_common_name(cluster),
                dns_names: names::broker_dns_names(cluster)?,
                server: true,
                validity: certs::days(certs.validity_days),
            },
        ),
        (
            names::operator_tls_secret_name(cluster),
            &current.operator,
            Request {
                common_name: names::OPERATOR_COMMON_NAME.to_owned(),
                dns_names: Vec::new(),
                server: false,
                validity: certs::days(certs.validity_days),
            },
        ),
    ];
    for (name, stored, request) in leaves {
        let (issued, why) = match reason_to_issue(stored.as_ref(), &ca, &request, now, renew_before)
        {
            Some(why) => (ca.issue(&request, now)?, Some(why)),
            None => {
                let data = &stored.as_ref().expect("checked").data;
                (
                    certs::Issued {
                        cert_pem: data[TLS_CRT].clone(),
                        key_pem: data[TLS_KEY].clone(),
                    },
                    None,
                )
            }
        };
        if let Some(why) = why {
            out.done.push((
                "CertificateIssued".into(),
                format!("Secret {name} for {} ({why})", request.common_name),
            ));
        }
        out.secrets.push(tls_secret(
            cluster,
            name,
            &issued,
            &bundle,
            &ca.fingerprint(),
        )?);
    }
    Ok(out)
}

fn new_ca(cluster: &Cluster, tls: &TlsSpec, now: SystemTime) -> Result<CertificateAuthority> {
    CertificateAuthority::generate(
        &format!(
            "runnel cluster CA {}/{}",
            cluster.namespace().unwrap_or_default(),
            cluster.name_any()
        ),
        certs::days(tls.certificates.ca_validity_days),
        now,
    )
}

/// Why a certificate must be (re)issued, or `None` if the stored one is good.
pub(crate) fn reason_to_issue(
    stored: Option<&Stored>,
    ca: &CertificateAuthority,
    request: &Request,
    now: SystemTime,
    renew_before: std::time::Duration,
) -> Option<&'static str> {
    let Some(stored) = stored else {
        return Some("new");
    };
    let (Some(cert), Some(_)) = (stored.data.get(TLS_CRT), stored.data.get(TLS_KEY)) else {
        return Some("the Secret was incomplete");
    };
    let Ok(info) = certs::inspect(cert) else {
        return Some("the stored certificate did not parse");
    };
    if stored.annotations.get(CA_FINGERPRINT_ANNOTATION) != Some(&ca.fingerprint()) {
        return Some("signed by another CA");
    }
    if certs::due(info.not_after, now, renew_before) {
        return Some("renewal before expiry");
    }
    if info.common_name.as_deref() != Some(request.common_name.as_str())
        || info.dns_names != request.dns_names
    {
        return Some("the names changed");
    }
    None
}

/// The CA bundle: the current CA, then the previous one.
fn bundle(current: &str, previous: Option<&str>) -> String {
    let mut out = current.trim_end().to_owned();
    out.push('\n');
    if let Some(previous) = previous {
        out.push_str(previous.trim_end());
        out.push('\n');
    }
    out
}

fn bundle_secret(cluster: &Cluster, bundle: String) -> Result<Secret> {
    names::secret(
        cluster,
        names::ca_bundle_secret_name(cluster),
        "Opaque",
        BTreeMap::from([(CA_CRT.to_owned(), bundle)]),
        BTreeMap::new(),
    )
}

fn tls_secret(
    cluster: &Cluster,
    name: String,
    issued: &certs::Issued,
    bundle: &str,
    ca_fingerprint: &str,
) -> Result<Secret> {
    names::secret(
        cluster,
        name,
        "kubernetes.io/tls",
        BTreeMap::from([
            (TLS_CRT.to_owned(), issued.cert_pem.clone()),
            (TLS_KEY.to_owned(), issued.key_pem.clone()),
            (CA_CRT.to_owned(), bundle.to_owned()),
        ]),
        BTreeMap::from([(
            CA_FINGERPRINT_ANNOTATION.to_owned(),
            ca_fingerprint.to_owned(),
        )]),
    )
}

/// A Secret's data (UTF-8 values) and annotations.
pub fn stored(secret: &Secret) -> Stored {
    Stored {
        data: secret
            .data
            .iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
            .collect(),
        annotations: secret.annotations().clone(),
    }
}

/// Read what is stored, plan, and return the Secrets to apply (with what
/// was done, for Events).
pub async fn secrets(client: &Client, cluster: &Cluster, now: SystemTime) -> Result<Plan> {
    let Some(security) = &cluster.spec.security else {
        return Ok(Plan::default());
    };
    let namespace = crate::manifests::namespace(cluster)?;
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let mut plan = Plan::default();
    if let Some(tls) = &security.tls {
        match tls.certificates.issuer {
            Issuer::Operator => {
                let current = Current {
                    ca: api
                        .get_opt(&names::ca_secret_name(cluster))
                        .await?
                        .map(|s| stored(&s)),
                    broker: api
                        .get_opt(&names::broker_tls_secret_name(cluster))
                        .await?
                        .map(|s| stored(&s)),
                    operator: api
                        .get_opt(&names::operator_tls_secret_name(cluster))
                        .await?
                        .map(|s| stored(&s)),
                };
                plan = self::plan(cluster, tls, &current, now)?;
            }
            Issuer::CertManager => {
                // cert-manager writes ca.crt into each certificate's
                // Secret; clients get it at the same place as with the
                // operator's CA.
                let issued = api
                    .get_opt(&names::broker_tls_secret_name(cluster))
                    .await?
                    .map(|s| stored(&s));
                if let Some(ca) = issued.and_then(|s| s.data.get(CA_CRT).cloned()) {
                    plan.secrets.push(bundle_secret(cluster, ca)?);
                }
            }
        }
    }
    plan.secrets.push(names::tokens_secret(
        cluster,
        &user_tokens(client, cluster).await?,
    )?);
    Ok(plan)
}

/// `(token, user)` of every `User` of `cluster` with token authentication
/// whose Secret the User reconciler has made.
async fn user_tokens(client: &Client, cluster: &Cluster) -> Result<Vec<(String, String)>> {
    let namespace = crate::manifests::namespace(cluster)?;
    let users: Api<User> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let mut out = Vec::new();
    for user in users.list(&ListParams::default()).await? {
        let token_auth = user
            .spec
            .authentication
            .as_ref()
            .is_some_and(|a| a.type_ == AuthenticationType::Token);
        if user.spec.cluster != cluster.name_any()
            || !token_auth
            || user.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let token = secrets.get_opt(&user.name_any()).await?.and_then(|s| {
            stored(&s)
                .data
                .get(crate::controller::user::TOKEN_KEY)
                .cloned()
        });
        if let Some(token) = token {
            out.push((token, user.name_any()));
        }
    }
    Ok(out)
}

/// `<c>-cluster-ca` as a CA, for signing user certificates: `None` until
/// the Cluster reconciler has made it.
pub async fn cluster_ca(
    client: &Client,
    cluster: &Cluster,
) -> Result<Option<(CertificateAuthority, String)>> {
    let namespace = crate::manifests::namespace(cluster)?;
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let Some(secret) = api.get_opt(&names::ca_secret_name(cluster)).await? else {
        return Ok(None);
    };
    let data = stored(&secret).data;
    let (Some(cert_pem), Some(key_pem)) = (data.get(CA_CRT), data.get(CA_KEY)) else {
        return Err(Error::Certificate(format!(
            "Secret {namespace}/{} lacks {CA_CRT} or {CA_KEY}",
            names::ca_secret_name(cluster)
        )));
    };
    let ca = CertificateAuthority {
        cert_pem: cert_pem.clone(),
        key_pem: key_pem.clone(),
    };
    let bundle = bundle(cert_pem, data.get(CA_PREVIOUS_CRT).map(String::as_str));
    Ok(Some((ca, bundle)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::days;
    use crate::manifests::samples;
    use std::time::Duration;

    fn cluster() -> (Cluster, TlsSpec) {
        let mut cluster = samples::minimal();
        cluster.spec.security =
            Some(serde_json::from_value(serde_json::json!({"tls": {}})).unwrap());
        let tls = cluster.spec.tls().unwrap().clone();
        (cluster, tls)
    }

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    /// What the plan wrote, as the next reconcile reads it back.
    fn store(plan: &Plan, mut current: Current, cluster: &Cluster) -> Current {
        for secret in &plan.secrets {
            let s = Some(stored(secret));
            let name = secret.name_any();
            if name == names::ca_secret_name(cluster) {
                current.ca = s;
            } else if name == names::broker_tls_secret_name(cluster) {
                current.broker = s;
            } else if name == names::operator_tls_secret_name(cluster) {
                current.operator = s;
            }
        }
        current
    }

    fn data<'a>(plan: &'a Plan, name: &str) -> &'a BTreeMap<String, k8s_openapi::ByteString> {
        plan.secrets
            .iter()
            .find(|s| s.name_any() == name)
            .unwrap_or_else(|| panic!("no Secret {name}"))
            .data
            .as_ref()
            .unwrap()
    }

    fn text(plan: &Plan, name: &str, key: &str) -> String {
        String::from_utf8(data(plan, name)[key].0.clone()).unwrap()
    }

    #[test]
    fn first_pass_makes_ca_bundle_and_certificates_then_nothing_changes() {
        let (cluster, tls) = cluster();
        let first = plan(&cluster, &tls, &Current::default(), t0()).unwrap();
        let made: Vec<String> = first.secrets.iter().map(|s| s.name_any()).collect();
        assert_eq!(
            made,
            [
                "minimal-cluster-ca",
                "minimal-cluster-ca-cert",
                "minimal-broker-tls",
                "minimal-operator-tls"
            ]
        );
        let reasons: Vec<&str> = first.done.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "CertificateAuthorityCreated",
                "CertificateIssued",
                "CertificateIssued"
            ]
        );
        let broker = certs::inspect(&text(&first, "minimal-broker-tls", TLS_CRT)).unwrap();
        assert_eq!(broker.common_name.as_deref(), Some("minimal-broker"));
        assert_eq!(broker.not_after, t0() + days(365));
        assert_eq!(
            text(&first, "minimal-broker-tls", CA_CRT),
            text(&first, "minimal-cluster-ca-cert", CA_CRT)
        );
        // The bundle has the CA certificate and never its key.
        assert!(!text(&first, "minimal-cluster-ca-cert", CA_CRT).contains("PRIVATE KEY"));

        // A day later nothing is due: the same certificates, no CA write.
        let current = store(&first, Current::default(), &cluster);
        let second = plan(&cluster, &tls, &current, t0() + days(1)).unwrap();
        assert!(second.done.is_empty(), "{:?}", second.done);
        assert!(
            second
                .secrets
                .iter()
                .all(|s| s.name_any() != "minimal-cluster-ca")
        );
        assert_eq!(
            text(&second, "minimal-broker-tls", TLS_CRT),
            text(&first, "minimal-broker-tls", TLS_CRT)
        );
    }

    #[test]
    fn certificates_renew_before_expiry_and_after_a_name_change() {
        let (cluster, tls) = cluster();
        let first = plan(&cluster, &tls, &Current::default(), t0()).unwrap();
        let current = store(&first, Current::default(), &cluster);
        // 336 days on: inside the 30-day window of the 365-day certificates,
        // far from the CA's.
        let later = t0() + days(336);
        let renewed = plan(&cluster, &tls, &current, later).unwrap();
        assert_eq!(renewed.done.len(), 2, "{:?}", renewed.done);
        assert!(
            renewed
                .done
                .iter()
                .all(|(r, m)| r == "CertificateIssued" && m.contains("renewal"))
        );
        let broker = certs::inspect(&text(&renewed, "minimal-broker-tls", TLS_CRT)).unwrap();
        assert_eq!(broker.not_after, later + days(365));

        // Another namespace changes the names: the broker certificate is
        // reissued, the operator's is not.
        let mut moved = cluster.clone();
        moved.metadata.namespace = Some("elsewhere".into());
        let after = plan(&moved, &tls, &current, t0() + days(1)).unwrap();
        assert_eq!(after.done.len(), 1, "{:?}", after.done);
        assert!(after.done[0].1.contains("names changed"));
    }

    #[test]
    fn a_ca_near_expiry_is_replaced_and_the_old_one_stays_trusted_until_it_expires() {
        let (cluster, tls) = cluster();
        let first = plan(&cluster, &tls, &Current::default(), t0()).unwrap();
        let old_ca = text(&first, "minimal-cluster-ca", CA_CRT);
        let current = store(&first, Current::default(), &cluster);
        let rollover = t0() + days(5 * 365 - 10);
        let rolled = plan(&cluster, &tls, &current, rollover).unwrap();
        assert_eq!(rolled.done[0].0, "CertificateAuthorityRenewed");
        let new_ca = text(&rolled, "minimal-cluster-ca", CA_CRT);
        assert_ne!(new_ca, old_ca);
        assert_eq!(text(&rolled, "minimal-cluster-ca", CA_PREVIOUS_CRT), old_ca);
        let bundle = text(&rolled, "minimal-cluster-ca-cert", CA_CRT);
        assert!(bundle.contains(new_ca.trim()) && bundle.contains(old_ca.trim()));
        // Both leaves are reissued by the new CA.
        assert!(
            rolled
                .done
                .iter()
                .filter(|(r, _)| r == "CertificateIssued")
                .all(|(_, m)| m.contains("another CA"))
        );
        assert_eq!(rolled.done.len(), 3);

        // Once the old CA has expired it leaves the bundle.
        let current = store(&rolled, current, &cluster);
        let after = plan(&cluster, &tls, &current, t0() + days(5 * 365 + 1)).unwrap();
        let bundle = text(&after, "minimal-cluster-ca-cert", CA_CRT);
        assert!(!bundle.contains(old_ca.trim()));
        assert!(!data(&after, "minimal-cluster-ca").contains_key(CA_PREVIOUS_CRT));
    }

    #[test]
    fn a_broken_secret_is_replaced() {
        let (cluster, tls) = cluster();
        let first = plan(&cluster, &tls, &Current::default(), t0()).unwrap();
        let mut current = store(&first, Current::default(), &cluster);
        current
            .broker
            .as_mut()
            .unwrap()
            .data
            .insert(TLS_CRT.into(), "garbage".into());
        let fixed = plan(&cluster, &tls, &current, t0()).unwrap();
        assert_eq!(fixed.done.len(), 1);
        assert!(fixed.done[0].1.contains("did not parse"));
    }
}
