//! `Cluster.spec.security`: TLS on the brokers' listener with certificates
//! the operator issues (or cert-manager does), ACL authorization, and which
//! credentials the brokers accept. Without it a Cluster runs as the
//! quickstart does: plaintext, everyone may do everything.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Transport security and access control of a Cluster.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.authorization) || (has(self.tls) && (!has(self.tls.clientAuth) || self.tls.clientAuth != 'None'))").message("security.authorization needs security.tls with clientAuth Requested or Required: brokers and the operator prove who they are with certificates"))]
#[serde(rename_all = "camelCase")]
pub struct SecuritySpec {
    /// TLS on the gRPC listener (clients, replication between brokers and
    /// the operator's admin calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Check ACLs on every request (`authorizer.enable`). Brokers and the
    /// operator are super users; everyone else needs ACLs (`User`
    /// resources or `runnel acl add`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationSpec>,
    /// Bearer tokens the brokers accept besides client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthenticationSpec>,
}

/// TLS on the listener.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Client certificates: `None` (not asked for), `Requested` (verified
    /// when presented: the certificate's CN is the principal; clients
    /// without one may use a token), `Required` (mutual TLS for everyone).
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Who issues the certificates.
    #[serde(default)]
    pub certificates: CertificatesSpec,
    /// Serve `/healthz`, `/readyz` and `/metrics` over HTTPS too, with the
    /// brokers' certificate (`http.ssl.enable`; probes switch to HTTPS, and
    /// Prometheus must scrape with `scheme: https` and the CA bundle).
    #[serde(default)]
    pub https_endpoints: bool,
}

/// `ssl.client.auth`.
#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum ClientAuth {
    None,
    #[default]
    Requested,
    Required,
}

impl ClientAuth {
    /// The broker setting's value.
    pub fn as_setting(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Requested => "requested",
            ClientAuth::Required => "required",
        }
    }
}

/// The cluster CA and the certificates it signs.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.issuer) || self.issuer != 'CertManager' || has(self.issuerRef)").message("certificates.issuerRef names the cert-manager Issuer or ClusterIssuer when issuer is CertManager"))]
#[x_kube(validation = Rule::new("!has(self.renewBeforeDays) || !has(self.validityDays) || !has(self.caValidityDays) || (self.renewBeforeDays < self.validityDays && self.validityDays <= self.caValidityDays)").message("certificates: renewBeforeDays < validityDays <= caValidityDays"))]
#[serde(rename_all = "camelCase")]
pub struct CertificatesSpec {
    /// `Operator`: the operator keeps a cluster CA in a Secret and signs
    /// broker, operator and user certificates with it. `CertManager`:
    /// cert-manager `Certificate` resources, signed by `issuerRef`.
    #[serde(default)]
    pub issuer: Issuer,
    /// The cert-manager issuer (`issuer: CertManager` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
    /// Lifetime of broker, operator and user certificates.
    #[serde(default = "default_validity_days")]
    #[schemars(range(min = 2, max = 3650))]
    pub validity_days: i32,
    /// Renew a certificate (and the operator's CA) this long before it
    /// expires.
    #[serde(default = "default_renew_before_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub renew_before_days: i32,
    /// Lifetime of the operator's cluster CA.
    #[serde(default = "default_ca_validity_days")]
    #[schemars(range(min = 2, max = 36500))]
    pub ca_validity_days: i32,
}

impl Default for CertificatesSpec {
    fn default() -> Self {
        CertificatesSpec {
            issuer: Issuer::Operator,
            issuer_ref: None,
            validity_days: default_validity_days(),
            renew_before_days: default_renew_before_days(),
            ca_validity_days: default_ca_validity_days(),
        }
    }
}

fn default_validity_days() -> i32 {
    365
}

fn default_renew_before_days() -> i32 {
    30
}

fn default_ca_validity_days() -> i32 {
    5 * 365
}

/// Who signs the certificates.
#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Issuer {
    #[default]
    Operator,
    CertManager,
}

/// A cert-manager `Issuer` or `ClusterIssuer`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    pub name: String,
    /// `Issuer` (same namespace) or `ClusterIssuer`.
    #[serde(default = "default_issuer_kind")]
    pub kind: String,
    #[serde(default = "default_issuer_group")]
    pub group: String,
}

fn default_issuer_kind() -> String {
    "Issuer".to_owned()
}

fn default_issuer_group() -> String {
    "cert-manager.io".to_owned()
}

/// ACL authorization.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationSpec {
    /// More principals allowed everything (`User:<name>`), besides the
    /// brokers and the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub super_users: Vec<String>,
    /// Allow a request on a resource no ACL names (Kafka's
    /// `allow.everyone.if.no.acl.found`). Off: default deny.
    #[serde(default)]
    pub allow_everyone_if_no_acl_found: bool,
}

/// Bearer tokens.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationSpec {
    /// Accept Kubernetes ServiceAccount tokens, verified with the
    /// TokenReview API; the principal is
    /// `User:system:serviceaccount:<namespace>:<name>`. The brokers' pods
    /// need a ServiceAccount bound to `system:auth-delegator` (the Helm
    /// chart makes one).
    #[serde(default)]
    pub service_account_tokens: bool,
    /// Audiences the tokens must carry (empty: the API server's default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
}

impl SecuritySpec {
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    pub fn authorization_enabled(&self) -> bool {
        self.authorization.is_some()
    }
}

#[cfg(test)]
mod tests {
    use crate::crd::ClusterSpec;
    use serde_json::{Value, json};

    fn with(security: Value) -> Value {
        json!({"storage": {"size": "1Gi"}, "security": security})
    }

    #[test]
    fn authorization_needs_client_certificates() {
        let ok = with(json!({"tls": {"clientAuth": "Requested"}, "authorization": {}}));
        assert!(ClusterSpec::validate_cel(&ok, None).is_ok());
        for bad in [
            json!({"authorization": {}}),
            json!({"tls": {"clientAuth": "None"}, "authorization": {}}),
        ] {
            let err = ClusterSpec::validate_cel(&with(bad), None).unwrap_err();
            assert!(err.to_string().contains("clientAuth"), "{err}");
        }
    }

    #[test]
    fn cert_manager_needs_an_issuer_and_lifetimes_are_ordered() {
        let certs = |c: Value| with(json!({"tls": {"certificates": c}}));
        let base = json!({"issuer": "Operator", "validityDays": 365, "renewBeforeDays": 30, "caValidityDays": 1825});
        assert!(ClusterSpec::validate_cel(&certs(base.clone()), None).is_ok());
        let mut cm = base.clone();
        cm["issuer"] = json!("CertManager");
        assert!(ClusterSpec::validate_cel(&certs(cm.clone()), None).is_err());
        cm["issuerRef"] =
            json!({"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"});
        assert!(ClusterSpec::validate_cel(&certs(cm), None).is_ok());
        let mut bad = base.clone();
        bad["renewBeforeDays"] = json!(365);
        assert!(ClusterSpec::validate_cel(&certs(bad), None).is_err());
        let mut bad = base;
        bad["validityDays"] = json!(4000);
        assert!(ClusterSpec::validate_cel(&certs(bad), None).is_err());
    }
}
