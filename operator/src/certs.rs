//! The operator's certificate authority: a cluster CA (ECDSA P-256,
//! self-signed) and the certificates it signs for brokers, the operator and
//! `User`s, plus what the reconcilers need to know about a certificate
//! they find in a Secret (expiry, names, which CA signed it). Pure: time is
//! passed in, nothing is read or written here.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use x509_parser::extensions::GeneralName;

use crate::{Error, Result};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Certificates are valid from a little before they are issued: a node
/// whose clock is behind must not refuse a brand-new certificate.
const BACKDATE: Duration = Duration::from_secs(3600);

/// A CA certificate and its private key (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateAuthority {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A signed certificate and its private key (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What to put in a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Subject CN: the principal `User:<cn>` the brokers derive.
    pub common_name: String,
    /// DNS subject alternative names (servers only).
    pub dns_names: Vec<String>,
    /// TLS server use (brokers).
    pub server: bool,
    pub validity: Duration,
}

/// What a reconciler checks about a certificate it finds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    pub not_after: SystemTime,
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
}

impl CertificateAuthority {
    /// A new self-signed CA valid for `validity` from `now`.
    pub fn generate(common_name: &str, validity: Duration, now: SystemTime) -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "runnel.dev");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, now, validity);
        let key = KeyPair::generate().map_err(cert_error)?;
        let cert = params.self_signed(&key).map_err(cert_error)?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Sign a new certificate (with a new key) for `request`.
    pub fn issue(&self, request: &Request, now: SystemTime) -> Result<Issued> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(cert_error)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, ca_key).map_err(cert_error)?;
        let mut params = CertificateParams::new(request.dns_names.clone()).map_err(cert_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, request.common_name.as_str());
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if request.server {
            // Brokers are servers to clients and clients of each other
            // (replication presents the broker's own certificate).
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, now, request.validity);
        let key = KeyPair::generate().map_err(cert_error)?;
        let cert = params.signed_by(&key, &issuer).map_err(cert_error)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Identifies this CA (a hash of its certificate): certificates record
    /// the fingerprint of the CA that signed them, so a new CA gets them
    /// reissued.
    pub fn fingerprint(&self) -> String {
        crate::manifests::config::config_hash(self.cert_pem.trim())
    }

    /// The CA's own certificate details.
    pub fn info(&self) -> Result<CertInfo> {
        inspect(&self.cert_pem)
    }
}

fn set_validity(params: &mut CertificateParams, now: SystemTime, validity: Duration) {
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + validity).into();
}

/// Expiry, CN and DNS names of the first certificate in `pem`.
pub fn inspect(pem: &str) -> Result<CertInfo> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| Error::Certificate(format!("not a PEM certificate: {e}")))?;
    let cert = block
        .parse_x509()
        .map_err(|e| Error::Certificate(format!("not an X.509 certificate: {e}")))?;
    let not_after = cert.validity().not_after.timestamp();
    let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(not_after.max(0) as u64);
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let dns_names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some((*d).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertInfo {
        not_after,
        common_name,
        dns_names,
    })
}

/// Whether a certificate expiring at `not_after` is due for renewal at
/// `now` (inside the last `renew_before` of its life, or expired).
pub fn due(not_after: SystemTime, now: SystemTime, renew_before: Duration) -> bool {
    !not_after
        .duration_since(now)
        .is_ok_and(|left| left > renew_before)
}

/// `days` as a `Duration`.
pub fn days(days: i32) -> Duration {
    DAY * days.max(0) as u32
}

/// RFC 3339 of a time, for status.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

fn cert_error(e: rcgen::Error) -> Error {
    Error::Certificate(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn issues_certificates_that_chain_to_the_ca() {
        let ca = CertificateAuthority::generate("main CA", days(1825), now()).unwrap();
        let leaf = ca
            .issue(
                &Request {
                    common_name: "main-broker".into(),
                    dns_names: vec!["*.main-brokers.ns.svc".into(), "main-client.ns.svc".into()],
                    server: true,
                    validity: days(365),
                },
                now(),
            )
            .unwrap();
        let info = inspect(&leaf.cert_pem).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("main-broker"));
        assert_eq!(
            info.dns_names,
            ["*.main-brokers.ns.svc", "main-client.ns.svc"]
        );
        assert_eq!(info.not_after, now() + days(365));
        assert_eq!(inspect(&ca.cert_pem).unwrap().not_after, now() + days(1825));

        // The chain verifies the way a client does it: rustls/webpki with
        // the CA as the only root, for a per-pod name the wildcard covers.
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
        let root = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.into(),
            rustls::crypto::ring::default_provider().into(),
        )
        .build()
        .unwrap();
        let end = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
        let at = UnixTime::since_unix_epoch(
            (now() + DAY)
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap(),
        );
        let name = ServerName::try_from("main-broker-2.main-brokers.ns.svc").unwrap();
        verifier
            .verify_server_cert(&end, &[], &name, &[], at)
            .unwrap();
        let other = ServerName::try_from("other-client.ns.svc").unwrap();
        assert!(
            verifier
                .verify_server_cert(&end, &[], &other, &[], at)
                .is_err()
        );
        // Another CA's certificate does not verify.
        let stranger = CertificateAuthority::generate("other CA", days(10), now()).unwrap();
        let foreign = stranger
            .issue(
                &Request {
                    common_name: "x".into(),
                    dns_names: vec!["main-client.ns.svc".into()],
                    server: true,
                    validity: days(5),
                },
                now(),
            )
            .unwrap();
        let foreign = CertificateDer::from_pem_slice(foreign.cert_pem.as_bytes()).unwrap();
        let client_service = ServerName::try_from("main-client.ns.svc").unwrap();
        assert!(
            verifier
                .verify_server_cert(&foreign, &[], &client_service, &[], at)
                .is_err()
        );
        assert_ne!(ca.fingerprint(), stranger.fingerprint());
    }

    #[test]
    fn renewal_is_due_inside_the_window() {
        let expiry = now() + days(30);
        assert!(!due(expiry, now(), days(29)));
        assert!(due(expiry, now(), days(30)));
        assert!(due(expiry, now() + days(31), days(1)));
    }

    #[test]
    fn garbage_is_a_certificate_error() {
        assert!(matches!(inspect("nope"), Err(Error::Certificate(_))));
        let ca = CertificateAuthority {
            cert_pem: "x".into(),
            key_pem: "y".into(),
        };
        let request = Request {
            common_name: "a".into(),
            dns_names: vec![],
            server: false,
            validity: days(1),
        };
        assert!(matches!(
            ca.issue(&request, now()),
            Err(Error::Certificate(_))
        ));
    }
}
