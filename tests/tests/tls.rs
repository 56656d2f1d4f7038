//! TLS on the broker's gRPC listener, against a real broker process: the
//! right CA connects and a wrong one does not, mutual TLS refuses a client
//! without a certificate (or with one from another CA), and a certificate
//! rotated on disk is served to new connections without a restart. With
//! `http.ssl.enable` the health and metrics endpoint speaks HTTPS with the
//! same certificate. A key that is not the certificate's stops the start
//! and is not rotated in.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, Error, Offset, Producer, ProducerConfig,
    ProducerRecord, TlsConfig,
};
use runnel_tests::BrokerProcess;
use runnel_tests::tls::Ca;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tls_broker(dir: &Path, cert: &Path, key: &Path, extra: &[&str]) -> BrokerProcess {
    let mut args = vec![
        "--ssl-certificate-location",
        cert.to_str().unwrap(),
        "--ssl-key-location",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    BrokerProcess::start(&dir.join("data"), &args).unwrap()
}

fn client(broker: &BrokerProcess, tls: Option<TlsConfig>) -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(5),
        tls,
        ..ClientConfig::new(&broker.bootstrap()).unwrap()
    }
}

/// Connect and make one request: a TLS 1.3 server checks the client's
/// certificate after the client thinks the handshake is done, so a refusal
/// can surface on the first request rather than the connect.
async fn talk(config: ClientConfig) -> Result<(), Error> {
    Admin::connect(config).await?.list_topics().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_ca_connects_a_wrong_one_and_plaintext_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (Ca::new(dir.path(), "ca"), Ca::new(dir.path(), "other-ca"));
    let (cert, key) = ca.issue(dir.path(), "broker");
    let broker = tls_broker(dir.path(), &cert, &key, &[]);

    // Records go through and come back over TLS.
    let config = client(&broker, Some(TlsConfig::new(&ca.pem)));
    Admin::connect(config.clone())
        .await
        .unwrap()
        .create_topic("secret", 1, 1, &[])
        .await
        .unwrap();
    let producer = Producer::connect(config.clone(), ProducerConfig::default())
        .await
        .unwrap();
    let ack = producer
        .send(ProducerRecord::new("secret", "over tls"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.offset, 0);
    producer.close().await;
    let mut consumer = Consumer::connect(config, ConsumerConfig::default())
        .await
        .unwrap();
    consumer.assign([("secret", 0)]);
    consumer.seek("secret", 0, Offset::Earliest).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let records = loop {
        let records = consumer.poll(Duration::from_millis(500)).await.unwrap();
        if !records.is_empty() || Instant::now() > deadline {
            break records;
        }
    };
    assert_eq!(records[0].value.as_deref(), Some(&b"over tls"[..]));

    let wrong = talk(client(&broker, Some(TlsConfig::new(&other.pem)))).await;
    let err = wrong.expect_err("a certificate from another CA must not be trusted");
    assert!(
        matches!(err, Error::Connect { .. } | Error::Transport { .. }),
        "{err:?}"
    );
    let plaintext = talk(client(&broker, None)).await;
    assert!(plaintext.is_err(), "a plaintext client got an answer");

    // A name the certificate does not carry fails verification too.
    let misnamed = TlsConfig {
        server_name: Some("not-the-broker".into()),
        ..TlsConfig::new(&ca.pem)
    };
    assert!(talk(client(&broker, Some(misnamed))).await.is_err());
    assert!(broker.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_clients_without_a_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (Ca::new(dir.path(), "ca"), Ca::new(dir.path(), "other-ca"));
    let (cert, key) = ca.issue(dir.path(), "broker");
    let broker = tls_broker(
        dir.path(),
        &cert,
        &key,
        &[
            "--ssl-ca-location",
            ca.pem.to_str().unwrap(),
            "--ssl-client-auth",
            "required",
        ],
    );

    let anonymous = talk(client(&broker, Some(TlsConfig::new(&ca.pem)))).await;
    assert!(
        anonymous.is_err(),
        "mTLS let a client without a certificate in"
    );

    let (stranger_cert, stranger_key) = other.issue(dir.path(), "stranger");
    let stranger = TlsConfig::new(&ca.pem).identity(stranger_cert, stranger_key);
    assert!(
        talk(client(&broker, Some(stranger))).await.is_err(),
        "a client certificate from another CA was accepted"
    );

    let (app_cert, app_key) = ca.issue(dir.path(), "app");
    let app = TlsConfig::new(&ca.pem).identity(app_cert, app_key);
    talk(client(&broker, Some(app))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (Ca::new(dir.path(), "old-ca"), Ca::new(dir.path(), "new-ca"));
    let (cert, key) = old_ca.issue(dir.path(), "broker");
    let broker = tls_broker(
        dir.path(),
        &cert,
        &key,
        &["--ssl-reload-interval-ms", "100"],
    );
    let trusts_old = client(&broker, Some(TlsConfig::new(&old_ca.pem)));
    let trusts_new = client(&broker, Some(TlsConfig::new(&new_ca.pem)));
    talk(trusts_old.clone()).await.unwrap();
    assert!(talk(trusts_new.clone()).await.is_err());

    // Rotate in place the way a Secret volume does: new files, then an
    // atomic rename over the old names.
    let (new_cert, new_key) = new_ca.issue(dir.path(), "broker-next");
    std::fs::rename(&new_key, &key).unwrap();
    std::fs::rename(&new_cert, &cert).unwrap();

    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(e) = talk(trusts_new.clone()).await {
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was not served: {e}; log: {}",
            broker.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        talk(trusts_old).await.is_err(),
        "new connections still get the old certificate"
    );
    assert!(broker.is_running(), "rotation must not restart the broker");
    assert!(broker.log_tail().contains("TLS files changed"));
}

#[tokio::test]
async fn unusable_tls_settings_keep_the_broker_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.issue(dir.path(), "broker");
    let (_, other_key) = ca.issue(dir.path(), "other");
    let cert = cert.to_str().unwrap();
    for (args, expected) in [
        (
            vec!["--ssl-certificate-location", cert],
            "ssl.key.location is not",
        ),
        (
            vec![
                "--ssl-certificate-location",
                other_key.to_str().unwrap(),
                "--ssl-key-location",
                key.to_str().unwrap(),
            ],
            "holds no PEM certificate",
        ),
        (
            vec![
                "--ssl-certificate-location",
                cert,
                "--ssl-key-location",
                cert,
            ],
            "cannot read a private key",
        ),
        (
            vec![
                "--ssl-certificate-location",
                cert,
                "--ssl-key-location",
                key.to_str().unwrap(),
                "--ssl-client-auth",
                "required",
            ],
            "needs ssl.ca.location",
        ),
        (vec!["--http-ssl-enable", "true"], "http.ssl.enable"),
        (
            vec![
                "--ssl-certificate-location",
                "/nonexistent/broker.crt",
                "--ssl-key-location",
                key.to_str().unwrap(),
            ],
            "/nonexistent/broker.crt",
        ),
    ] {
        let err = BrokerProcess::start(&dir.path().join("data"), &args)
            .err()
            .unwrap_or_else(|| panic!("broker started with {args:?}"));
        let err = format!("{err:#}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

/// GET `path` over HTTPS, trusting only `ca`; returns (status, body).
async fn https_get(address: SocketAddr, ca: &Path, path: &str) -> anyhow::Result<(u16, String)> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut response = Vec::new();
    // A server that closes without close_notify still sent everything.
    if let Err(e) = tls.read_to_end(&mut response).await
        && (e.kind() != std::io::ErrorKind::UnexpectedEof || response.is_empty())
    {
        return Err(e.into());
    }
    let response = String::from_utf8(response)?;
    let code = response
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("no status line in {response:?}"))?
        .parse()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

/// `http.ssl.enable`: /metrics and the probes over HTTPS with the
/// listener's certificate (rotated with it), no client certificate needed
/// even where the gRPC listener requires one, and no plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_endpoint_speaks_https_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, next_ca) = (Ca::new(dir.path(), "ca"), Ca::new(dir.path(), "next-ca"));
    let (cert, key) = ca.issue(dir.path(), "broker");
    let broker = tls_broker(
        dir.path(),
        &cert,
        &key,
        &[
            "--http-ssl-enable",
            "true",
            "--ssl-ca-location",
            ca.pem.to_str().unwrap(),
            "--ssl-client-auth",
            "required",
            "--ssl-reload-interval-ms",
            "100",
        ],
    );
    let (code, metrics) = https_get(broker.http, &ca.pem, "/metrics").await.unwrap();
    assert_eq!(code, 200, "{metrics}");
    assert!(metrics.contains("runnel_"), "{metrics}");
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(https_get(broker.http, &ca.pem, probe).await.unwrap().0, 200);
    }
    assert!(
        https_get(broker.http, &next_ca.pem, "/metrics")
            .await
            .is_err(),
        "a certificate from another CA was trusted"
    );
    assert!(
        broker.http_get("/metrics").is_err(),
        "plain HTTP got an answer"
    );

    // Rotated with the gRPC listener's certificate.
    let (new_cert, new_key) = next_ca.issue(dir.path(), "broker-next");
    std::fs::rename(&new_key, &key).unwrap();
    std::fs::rename(&new_cert, &cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(e) = https_get(broker.http, &next_ca.pem, "/metrics").await {
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was not served over HTTPS: {e}; log: {}",
            broker.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An ECDSA P-256 certificate with a key that is not its own: the broker
/// does not start, and says which two files do not belong together; a
/// rotation to such a pair keeps the previous certificate. (RSA keys, which
/// rcgen cannot make with ring, are covered by the broker's unit test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_the_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.issue(dir.path(), "broker");
    let (_, other_key) = ca.issue(dir.path(), "other");
    let err = BrokerProcess::start(
        &dir.path().join("refused"),
        &[
            "--ssl-certificate-location",
            cert.to_str().unwrap(),
            "--ssl-key-location",
            other_key.to_str().unwrap(),
        ],
    )
    .expect_err("the broker started with a key that is not its certificate's");
    let err = format!("{err:#}");
    assert!(
        err.contains("does not belong to the certificate")
            && err.contains(cert.to_str().unwrap())
            && err.contains(other_key.to_str().unwrap()),
        "{err}"
    );

    let broker = tls_broker(
        dir.path(),
        &cert,
        &key,
        &["--ssl-reload-interval-ms", "100"],
    );
    let config = client(&broker, Some(TlsConfig::new(&ca.pem)));
    talk(config.clone()).await.unwrap();
    // Only the key is replaced (a half-done rotation, or a mix-up).
    let next = dir.path().join("broker.key.next");
    std::fs::copy(&other_key, &next).unwrap();
    std::fs::rename(&next, &key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !broker
        .log_tail()
        .contains("TLS files changed but cannot be loaded")
    {
        assert!(
            Instant::now() < deadline,
            "no warning; log: {}",
            broker.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        broker
            .log_tail()
            .contains("does not belong to the certificate")
    );
    talk(config).await.unwrap();
}

/// Three brokers with mutual TLS on their listeners: followers fetch from
/// leaders over TLS, presenting their own certificates, so acks=all writes
/// are acknowledged and every replica stays in sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_replicate_to_each_other_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    // One certificate for 127.0.0.1 serves every broker here; a cluster
    // on Kubernetes gives each pod its own names.
    let (cert, key) = ca.issue(dir.path(), "broker");
    let (cert, key, ca_pem) = (
        cert.to_str().unwrap().to_owned(),
        key.to_str().unwrap().to_owned(),
        ca.pem.to_str().unwrap().to_owned(),
    );
    let cluster = runnel_tests::cluster::TestCluster::start(
        3,
        &[
            "--ssl-certificate-location",
            &cert,
            "--ssl-key-location",
            &key,
            "--ssl-ca-location",
            &ca_pem,
            "--ssl-client-auth",
            "required",
        ],
    )
    .unwrap();
    let (app_cert, app_key) = ca.issue(dir.path(), "app");
    let config = ClientConfig {
        tls: Some(TlsConfig::new(&ca.pem).identity(app_cert, app_key)),
        ..ClientConfig::new(&cluster.bootstrap()).unwrap()
    };
    let admin = Admin::connect(config.clone()).await.unwrap();
    // Until all three have registered, RF 3 is refused.
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = admin
        .create_topic("replicated", 2, 3, &[("min.insync.replicas", "3")])
        .await
    {
        assert!(Instant::now() < deadline, "{e}; logs: {}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let producer = Producer::connect(
        config.clone(),
        ProducerConfig {
            acks: runnel_client::Acks::All,
            ..ProducerConfig::default()
        },
    )
    .await
    .unwrap();
    let mut acks = Vec::new();
    for i in 0..200 {
        let record = ProducerRecord::new("replicated", format!("r{i}")).key(format!("k{i}"));
        acks.push(producer.send(record).await.unwrap());
    }
    for ack in acks {
        // min.insync.replicas = 3: acknowledged only once both followers
        // have the records, which they fetched over TLS.
        ack.await
            .unwrap_or_else(|e| panic!("{e}; logs: {}", cluster.logs()));
    }
    producer.close().await;
    let topic = admin.describe_topic("replicated").await.unwrap();
    for p in &topic.partitions {
        assert_eq!(p.isr.len(), 3, "{p:?}");
        assert_eq!(p.high_watermark, p.log_end_offset, "{p:?}");
    }
    assert_eq!(
        topic
            .partitions
            .iter()
            .map(|p| p.high_watermark)
            .sum::<i64>(),
        200
    );
}

/// etcd with TLS and `--client-cert-auth`: a broker with the CA and a
/// client certificate starts and keeps its metadata there; without the
/// certificate, or trusting another CA, it does not start and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_reach_etcd_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (Ca::new(dir.path(), "ca"), Ca::new(dir.path(), "other-ca"));
    let (etcd_cert, etcd_key) = ca.issue(dir.path(), "etcd");
    let etcd = runnel_tests::etcd::EtcdProcess::start_with_tls(runnel_tests::etcd::EtcdTlsFiles {
        cert: etcd_cert,
        key: etcd_key,
        ca: ca.pem.clone(),
    })
    .unwrap();
    let endpoint = etcd.tls_endpoint().unwrap();
    let (client_cert, client_key) = ca.issue(dir.path(), "broker-1");
    let (ca_pem, other_pem) = (ca.pem.to_str().unwrap(), other.pem.to_str().unwrap());
    let (client_cert, client_key) = (client_cert.to_str().unwrap(), client_key.to_str().unwrap());
    let base = ["--etcd-endpoints", &endpoint, "--broker-id", "1"];

    for (extra, why) in [
        (
            vec!["--etcd-ssl-ca-location", ca_pem],
            "no client certificate",
        ),
        (
            vec![
                "--etcd-ssl-ca-location",
                other_pem,
                "--etcd-ssl-certificate-location",
                client_cert,
                "--etcd-ssl-key-location",
                client_key,
            ],
            "etcd's certificate from an untrusted CA",
        ),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        let err = BrokerProcess::start(&dir.path().join("refused"), &args)
            .err()
            .unwrap_or_else(|| panic!("broker started with {why}"));
        assert!(
            format!("{err:#}").contains("cannot reach etcd"),
            "{why}: {err:#}"
        );
    }

    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain([
            "--etcd-ssl-ca-location",
            ca_pem,
            "--etcd-ssl-certificate-location",
            client_cert,
            "--etcd-ssl-key-location",
            client_key,
        ])
        .collect();
    let broker = BrokerProcess::start(&dir.path().join("data"), &args).unwrap();
    let config = ClientConfig::new(&broker.bootstrap()).unwrap();
    let admin = Admin::connect(config).await.unwrap();
    admin.create_topic("kept-in-etcd", 1, 1, &[]).await.unwrap();
    assert_eq!(
        admin
            .describe_topic("kept-in-etcd")
            .await
            .unwrap()
            .partitions
            .len(),
        1
    );
    assert!(broker.log_tail().contains("connected to etcd"));
}
