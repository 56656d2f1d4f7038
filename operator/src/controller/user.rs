//! The `User` reconciler: gives a principal its credentials and makes its
//! ACLs on the brokers exactly the spec's.
//!
//! One pass ([`reconcile`]) under [`USER_FINALIZER`]:
//! 1. Find the Cluster (`ClusterNotFound`) and check the spec against it:
//!    a reserved name (the brokers' or the operator's principal), TLS
//!    without TLS on the Cluster, ServiceAccount tokens the Cluster does not
//!    accept (`InvalidSpec`; nothing is changed).
//! 2. Credentials, in Secret `<metadata.name>` owned by the User: `Tls` —
//!    a client certificate signed by the cluster CA (renewed before expiry
//!    and when the CA changes), or a cert-manager `Certificate` with the
//!    Cluster's issuer; `Token` — a random 256-bit token, which the Cluster
//!    reconciler adds to the brokers' token file.
//! 3. ACLs: the bindings of the user's principal on the brokers become the
//!    spec's (missing ones created, others deleted).
//! 4. Status: principal, Secret, number of ACLs, certificate expiry, `Ready`.
//!
//! `cleanup` deletes every ACL of the principal (the Secret goes with the
//! User through its owner reference).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DeleteParams;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, Resource, ResourceExt};
use rand::RngCore;
use runnel_client::{AclBinding, AclFilter, Admin, ErrorCode};

use super::cluster::security::{cluster_ca, reason_to_issue, stored};
use super::shared::{ClusterLookup, Events, RETRY_SOON, apply_status, find_cluster, namespace_of};
use crate::certs::{self, Request};
use crate::crd::Cluster;
use crate::crd::condition;
use crate::crd::security::Issuer;
use crate::crd::user::{AuthenticationType, USER_FINALIZER, User, UserStatus, binding_key};
use crate::manifests::security::{
    self as sec, CA_CRT, CA_FINGERPRINT_ANNOTATION, TLS_CRT, TLS_KEY,
};
use crate::{Context, Error, Result};

/// The `kind` label of this reconciler's metrics.
const KIND: &str = "User";

/// The token's key in a `Token` user's Secret.
pub const TOKEN_KEY: &str = "token";

/// `Ready` condition reasons.
pub mod reason {
    pub const APPLIED: &str = "Applied";
    pub const CLUSTER_NOT_FOUND: &str = "ClusterNotFound";
    pub const CLUSTER_UNAVAILABLE: &str = "ClusterUnavailable";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const CA_NOT_READY: &str = "CertificateAuthorityNotReady";
    pub const CERTIFICATE_PENDING: &str = "CertificatePending";
}

/// Reconcile one User (add the finalizer first; clean up on deletion).
pub async fn reconcile(user: Arc<User>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(KIND);
    let api: Api<User> = Api::namespaced(ctx.client.clone(), &namespace_of(&*user)?);
    let (ctx, api_ref) = (&ctx, &api);
    finalizer(&api, USER_FINALIZER, user, |event| async move {
        match event {
            FinalizerEvent::Apply(user) => apply(&user, ctx, api_ref).await,
            FinalizerEvent::Cleanup(user) => cleanup(&user, ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

pub fn error_policy(user: Arc<User>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(user = %user.name_any(), %error, "reconcile failed");
    ctx.metrics.failure(KIND, error);
    Action::requeue(RETRY_SOON)
}

/// What one pass found or did.
#[derive(Debug, Default)]
struct Outcome {
    ready: bool,
    reason: &'static str,
    message: String,
    secret: Option<String>,
    acls: Option<i32>,
    expires: Option<SystemTime>,
}

impl Outcome {
    fn not_ready(reason: &'static str, message: impl Into<String>) -> Self {
        Outcome {
            reason,
            message: message.into(),
            ..Outcome::default()
        }
    }
}

async fn apply(user: &User, ctx: &Context, api: &Api<User>) -> Result<Action> {
    let events = Events::new(ctx, user);
    let outcome = sync(user, ctx, &events).await?;
    let old = user.status.clone().unwrap_or_default();
    let previous = condition::get(&old.conditions, "Ready");
    if !outcome.ready && previous.is_none_or(|c| c.reason != outcome.reason) {
        events.warning(outcome.reason, &outcome.message).await;
    }
    let mut status = old.clone();
    status.observed_generation = user.meta().generation;
    status.principal = Some(user.principal());
    if outcome.secret.is_some() || user.spec.authentication.is_none() {
        status.secret = outcome.secret.clone();
    }
    if let Some(acls) = outcome.acls {
        status.acls = acls;
    }
    if let Some(expires) = outcome.expires {
        status.certificate_expires = Some(certs::rfc3339(expires));
    }
    condition::set(
        &mut status.conditions,
        "Ready",
        outcome.ready,
        outcome.reason,
        &outcome.message,
        user.meta().generation,
    );
    if !unchanged(&old, &status) {
        apply_status(api, user, &status).await?;
    }
    Ok(if outcome.ready {
        Action::requeue(ctx.config.resync)
    } else {
        Action::requeue(RETRY_SOON)
    })
}

fn unchanged(old: &UserStatus, new: &UserStatus) -> bool {
    let (mut a, mut b) = (old.clone(), new.clone());
    let same = condition::same(&a.conditions, &b.conditions);
    a.conditions.clear();
    b.conditions.clear();
    same && a == b
}

async fn sync(user: &User, ctx: &Context, events: &Events) -> Result<Outcome> {
    let namespace = namespace_of(user)?;
    let cluster_name = &user.spec.cluster;
    let cluster = match find_cluster(ctx, &namespace, cluster_name).await? {
        ClusterLookup::Found(cluster) => cluster,
        ClusterLookup::Missing => {
            return Ok(Outcome::not_ready(
                reason::CLUSTER_NOT_FOUND,
                format!("Cluster {cluster_name} not found in namespace {namespace}"),
            ));
        }
        ClusterLookup::Deleting => {
            return Ok(Outcome::not_ready(
                reason::CLUSTER_NOT_FOUND,
                format!("Cluster {cluster_name} is being deleted"),
            ));
        }
    };
    if let Some(problem) = check(user, &cluster) {
        return Ok(Outcome::not_ready(reason::INVALID_SPEC, problem));
    }
    let credentials = credentials(user, &cluster, ctx, events, SystemTime::now()).await?;
    if let Some((reason, message)) = credentials.waiting {
        return Ok(Outcome {
            secret: credentials.secret,
            ..Outcome::not_ready(reason, message)
        });
    }
    let admin = match ctx.connector.admin(&ctx.client, &cluster).await {
        Ok(admin) => admin,
        Err(error) => {
            ctx.metrics.failure(KIND, &error);
            return Ok(Outcome {
                secret: credentials.secret,
                expires: credentials.expires,
                ..Outcome::not_ready(reason::CLUSTER_UNAVAILABLE, error.to_string())
            });
        }
    };
    let (acls, message) = match sync_acls(&admin, user).await {
        Ok((count, created, deleted)) => {
            if created + deleted > 0 {
                events
                    .normal(
                        "AclsApplied",
                        format!("{created} ACL(s) created, {deleted} removed"),
                    )
                    .await;
            }
            let enforced = cluster
                .spec
                .security
                .as_ref()
                .is_some_and(|s| s.authorization_enabled());
            let mut message = format!("{count} ACL(s) for {}", user.principal());
            if !enforced && count > 0 {
                message.push_str(&format!(
                    "; Cluster {cluster_name} has no security.authorization, so they are not enforced"
                ));
            }
            (count, message)
        }
        Err(error) => {
            let reason = match error.code() {
                Some(ErrorCode::InvalidRequest) => reason::INVALID_SPEC,
                _ => reason::CLUSTER_UNAVAILABLE,
            };
            return Ok(Outcome {
                secret: credentials.secret,
                expires: credentials.expires,
                ..Outcome::not_ready(reason, error.to_string())
            });
        }
    };
    Ok(Outcome {
        ready: true,
        reason: reason::APPLIED,
        message,
        secret: credentials.secret,
        acls: Some(acls as i32),
        expires: credentials.expires,
    })
}

/// What the spec asks that the Cluster cannot give, if anything.
fn check(user: &User, cluster: &Cluster) -> Option<String> {
    let name = user.name_any();
    if sec::reserved_names(cluster).contains(&name) {
        return Some(format!(
            "the name {name:?} is the principal of the brokers or the operator (a super user); pick another"
        ));
    }
    let security = cluster.spec.security.as_ref();
    match user.spec.authentication.as_ref().map(|a| a.type_) {
        Some(AuthenticationType::Tls) if cluster.spec.tls().is_none() => Some(format!(
            "authentication.type Tls needs spec.security.tls on Cluster {}",
            cluster.name_any()
        )),
        Some(AuthenticationType::Token) if security.is_none() => Some(format!(
            "authentication.type Token needs spec.security on Cluster {} (its brokers read tokens only then)",
            cluster.name_any()
        )),
        Some(AuthenticationType::ServiceAccount)
            if !security
                .and_then(|s| s.authentication.as_ref())
                .is_some_and(|a| a.service_account_tokens) =>
        {
            Some(format!(
                "authentication.type ServiceAccount needs spec.security.authentication.serviceAccountTokens on Cluster {}",
                cluster.name_any()
            ))
        }
        _ => None,
    }
}

#[derive(Debug, Default)]
struct Credentials {
    secret: Option<String>,
    expires: Option<SystemTime>,
    waiting: Option<(&'static str, String)>,
}

/// Make or renew the user's Secret.
async fn credentials(
    user: &User,
    cluster: &Cluster,
    ctx: &Context,
    events: &Events,
    now: SystemTime,
) -> Result<Credentials> {
    let Some(auth) = &user.spec.authentication else {
        return Ok(Credentials::default());
    };
    let namespace = namespace_of(user)?;
    let name = user.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = secrets.get_opt(&name).await?;
    if let Some(existing) = &existing
        && !owned_by(existing, user)
    {
        return Ok(Credentials {
            waiting: Some((
                reason::INVALID_SPEC,
                format!(
                    "Secret {name} exists and does not belong to this User; the operator will not overwrite it"
                ),
            )),
            ..Credentials::default()
        });
    }
    let want_type = match auth.type_ {
        AuthenticationType::Tls => "kubernetes.io/tls",
        AuthenticationType::Token => "Opaque",
        AuthenticationType::ServiceAccount => {
            // No Secret: the pods use their ServiceAccount's token.
            if existing.is_some() {
                secrets.delete(&name, &DeleteParams::default()).await?;
            }
            return Ok(Credentials::default());
        }
    };
    // A Secret's type cannot change: one left from another authentication
    // type goes first.
    let existing = match existing {
        Some(s) if s.type_.as_deref() != Some(want_type) => {
            secrets.delete(&name, &DeleteParams::default()).await?;
            None
        }
        other => other,
    };
    let current = existing.as_ref().map(stored);
    match auth.type_ {
        AuthenticationType::Token => {
            let token = current
                .as_ref()
                .and_then(|s| s.data.get(TOKEN_KEY))
                .filter(|t| t.len() >= 32)
                .cloned();
            if token.is_none() {
                let secret = user_secret(
                    user,
                    "Opaque",
                    BTreeMap::from([(TOKEN_KEY.to_owned(), new_token())]),
                    BTreeMap::new(),
                )?;
                apply_secret(ctx, &namespace, secret).await?;
                events
                    .normal("TokenIssued", format!("bearer token in Secret {name}"))
                    .await;
            }
            Ok(Credentials {
                secret: Some(name),
                ..Credentials::default()
            })
        }
        AuthenticationType::Tls => {
            let tls = cluster.spec.tls().expect("checked");
            if tls.certificates.issuer == Issuer::CertManager {
                let certificate = sec::certificate(
                    cluster,
                    Some(("User", &name, &user.uid().unwrap_or_default())),
                    &name,
                    &name,
                    &[],
                    false,
                    tls,
                )?;
                match super::apply::apply_all(&ctx.client, &namespace, vec![certificate]).await {
                    Ok(_) => {}
                    Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => {
                        return Ok(Credentials {
                            waiting: Some((
                                reason::CERTIFICATE_PENDING,
                                format!(
                                    "the API server does not serve cert-manager.io/v1 Certificate ({}): \
                                     install cert-manager or use issuer: Operator on Cluster {}",
                                    e.message,
                                    cluster.name_any()
                                ),
                            )),
                            ..Credentials::default()
                        });
                    }
                    Err(e) => return Err(e),
                }
                let expires = current
                    .as_ref()
                    .and_then(|s| s.data.get(TLS_CRT))
                    .and_then(|c| certs::inspect(c).ok())
                    .map(|i| i.not_after);
                return Ok(Credentials {
                    secret: Some(name.clone()),
                    expires,
                    waiting: expires.is_none().then(|| {
                        (
                            reason::CERTIFICATE_PENDING,
                            format!("waiting for cert-manager to issue Certificate {name}"),
                        )
                    }),
                });
            }
            let Some((ca, bundle)) = cluster_ca(&ctx.client, cluster).await? else {
                return Ok(Credentials {
                    waiting: Some((
                        reason::CA_NOT_READY,
                        format!(
                            "Cluster {} has no CA yet (Secret {})",
                            cluster.name_any(),
                            sec::ca_secret_name(cluster)
                        ),
                    )),
                    ..Credentials::default()
                });
            };
            let request = Request {
                common_name: name.clone(),
                dns_names: Vec::new(),
                server: false,
                validity: certs::days(tls.certificates.validity_days),
            };
            let renew_before = certs::days(tls.certificates.renew_before_days);
            let why = reason_to_issue(current.as_ref(), &ca, &request, now, renew_before);
            let (cert_pem, key_pem) = match (why, &current) {
                (None, Some(current)) => {
                    (current.data[TLS_CRT].clone(), current.data[TLS_KEY].clone())
                }
                _ => {
                    let issued = ca.issue(&request, now)?;
                    (issued.cert_pem, issued.key_pem)
                }
            };
            let expires = certs::inspect(&cert_pem)?.not_after;
            // Rewritten also when only the bundle changed (a CA rollover
            // adds the new CA before this user's certificate moves to it).
            let bundle_changed = current.as_ref().and_then(|c| c.data.get(CA_CRT)) != Some(&bundle);
            if why.is_some() || bundle_changed {
                let secret = user_secret(
                    user,
                    "kubernetes.io/tls",
                    BTreeMap::from([
                        (TLS_CRT.to_owned(), cert_pem),
                        (TLS_KEY.to_owned(), key_pem),
                        (CA_CRT.to_owned(), bundle),
                    ]),
                    BTreeMap::from([(CA_FINGERPRINT_ANNOTATION.to_owned(), ca.fingerprint())]),
                )?;
                apply_secret(ctx, &namespace, secret).await?;
                if let Some(why) = why {
                    events
                        .normal(
                            "CertificateIssued",
                            format!("client certificate for {name} in Secret {name} ({why})"),
                        )
                        .await;
                }
            }
            Ok(Credentials {
                secret: Some(name),
                expires: Some(expires),
                waiting: None,
            })
        }
        AuthenticationType::ServiceAccount => unreachable!("returned above"),
    }
}

fn owned_by(secret: &Secret, user: &User) -> bool {
    let uid = user.uid();
    secret
        .owner_references()
        .iter()
        .any(|o| o.kind == "User" && Some(&o.uid) == uid.as_ref())
}

/// 256 random bits, hex.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Secret `<user>` owned by the User (Kubernetes deletes it with the User).
fn user_secret(
    user: &User,
    type_: &str,
    data: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
) -> Result<Secret> {
    let owner = user
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("metadata.uid"))?;
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "runnel".to_owned()),
        (
            "app.kubernetes.io/instance".to_owned(),
            user.spec.cluster.clone(),
        ),
        ("app.kubernetes.io/component".to_owned(), "user".to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "runnel-operator".to_owned(),
        ),
    ]);
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(user.name_any()),
            namespace: user.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some(type_.to_owned()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    })
}

async fn apply_secret(ctx: &Context, namespace: &str, secret: Secret) -> Result<()> {
    let mut object = serde_json::to_value(&secret)?;
    object["apiVersion"] = "v1".into();
    object["kind"] = "Secret".into();
    super::apply::apply_all(&ctx.client, namespace, vec![object]).await?;
    Ok(())
}

/// Make the principal's bindings the spec's. Returns (bindings now,
/// created, deleted).
async fn sync_acls(admin: &Admin, user: &User) -> runnel_client::Result<(usize, usize, usize)> {
    let desired = user.bindings();
    let mut current = admin
        .describe_acls(AclFilter {
            principal: user.principal(),
            ..AclFilter::default()
        })
        .await?;
    current.sort_by_key(binding_key);
    let extra: Vec<&AclBinding> = current.iter().filter(|b| !desired.contains(b)).collect();
    let missing: Vec<AclBinding> = desired
        .iter()
        .filter(|b| !current.contains(b))
        .cloned()
        .collect();
    if !extra.is_empty() {
        admin
            .delete_acls(extra.iter().map(|b| exact(b)).collect())
            .await?;
    }
    let created = missing.len();
    if !missing.is_empty() {
        admin.create_acls(missing).await?;
    }
    Ok((desired.len(), created, extra.len()))
}

/// A filter matching exactly `binding`.
fn exact(binding: &AclBinding) -> AclFilter {
    AclFilter {
        resource_type: binding.resource_type,
        resource_name: binding.resource_name.clone(),
        pattern_type: binding.pattern_type,
        principal: binding.principal.clone(),
        operation: binding.operation,
        permission: binding.permission,
    }
}

/// Remove every ACL of the principal (the Cluster gone or going: nothing
/// to remove).
async fn cleanup(user: &User, ctx: &Context) -> Result<Action> {
    let namespace = namespace_of(user)?;
    let ClusterLookup::Found(cluster) = find_cluster(ctx, &namespace, &user.spec.cluster).await?
    else {
        return Ok(Action::await_change());
    };
    let admin = ctx.connector.admin(&ctx.client, &cluster).await?;
    admin
        .delete_acls(vec![AclFilter {
            principal: user.principal(),
            ..AclFilter::default()
        }])
        .await
        .map_err(|source| Error::Runnel {
            cluster: crate::context::cluster_key(&cluster),
            source,
        })?;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests;
