//! [`TestCluster`]: a real etcd plus N real `runnel-broker` processes in
//! cluster mode, on loopback, in a temporary directory.
//!
//! Brokers get ids `1..=n`. Any of them can be `kill -9`ed, paused
//! (SIGSTOP), restarted; helpers ask the cluster (over gRPC, any live
//! broker) who leads what and wait for conditions with a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use runnel_proto::v1::broker_client::BrokerClient;
use runnel_proto::v1::{MetadataRequest, MetadataResponse, PartitionMetadata};
use tonic::transport::Channel;

use crate::BrokerProcess;
use crate::etcd::EtcdProcess;

/// Broker flags tuned for tests: 1 s sessions (etcd is started with a 1 s
/// minimum lease), a short lag window, quick preferred-leader checks.
pub const FAST_FLAGS: &[&str] = &[
    "--broker-session-timeout-ms",
    "1000",
    "--replica-lag-time-max-ms",
    "3000",
    "--leader-imbalance-check-interval-seconds",
    "2",
];

/// etcd + brokers `1..=n`.
pub struct TestCluster {
    pub etcd: EtcdProcess,
    /// Index `id - first_id`.
    pub brokers: Vec<BrokerProcess>,
    dir: tempfile::TempDir,
    first_id: i32,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("brokers", &self.brokers.len())
            .finish_non_exhaustive()
    }
}

impl TestCluster {
    /// Start etcd and `n` brokers with [`FAST_FLAGS`] plus `extra` flags
    /// (which override fast flags of the same name).
    pub fn start(n: usize, extra: &[&str]) -> Result<Self> {
        Self::start_from(1, n, extra)
    }

    /// Like [`TestCluster::start`] with broker ids `first_id..first_id + n`
    /// (the operator's brokers are numbered from 0, like StatefulSet pods).
    pub fn start_from(first_id: i32, n: usize, extra: &[&str]) -> Result<Self> {
        let etcd = EtcdProcess::start()?;
        let dir = tempfile::tempdir()?;
        let mut cluster = TestCluster {
            etcd,
            brokers: Vec::with_capacity(n),
            dir,
            first_id,
        };
        for id in first_id..first_id + n as i32 {
            cluster.add_broker(id, extra)?;
        }
        Ok(cluster)
    }

    /// Start broker `id` (its data under the cluster's directory).
    pub fn add_broker(&mut self, id: i32, extra: &[&str]) -> Result<()> {
        let data = self.dir.path().join(format!("broker-{id}"));
        let id_s = id.to_string();
        let endpoint = self.etcd.endpoint();
        let mut args: Vec<&str> = vec![
            "--broker-id",
            &id_s,
            "--etcd-endpoints",
            &endpoint,
            "--cluster",
            "test",
        ];
        // `extra` overrides a fast flag (clap refuses a flag given twice).
        for pair in FAST_FLAGS.chunks(2) {
            if !extra.contains(&pair[0]) {
                args.extend_from_slice(pair);
            }
        }
        args.extend_from_slice(extra);
        let broker =
            BrokerProcess::start(&data, &args).with_context(|| format!("starting broker {id}"))?;
        self.brokers.push(broker);
        Ok(())
    }

    pub fn broker(&self, id: i32) -> &BrokerProcess {
        &self.brokers[(id - self.first_id) as usize]
    }

    pub fn broker_mut(&mut self, id: i32) -> &mut BrokerProcess {
        &mut self.brokers[(id - self.first_id) as usize]
    }

    /// Comma-separated addresses of the running brokers.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .filter(|b| b.is_running())
            .map(|b| b.bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Metadata from the first running broker that answers.
    pub async fn metadata(&self, topics: &[&str]) -> Result<MetadataResponse> {
        let mut last = None;
        for b in self.brokers.iter().filter(|b| b.is_running()) {
            let attempt = async {
                let channel = Channel::from_shared(b.endpoint())?
                    .connect_timeout(Duration::from_secs(1))
                    .connect()
                    .await?;
                let response = BrokerClient::new(channel)
                    .metadata(MetadataRequest {
                        topics: topics.iter().map(|t| t.to_string()).collect(),
                    })
                    .await?;
                anyhow::Ok(response.into_inner())
            };
            match tokio::time::timeout(Duration::from_secs(3), attempt).await {
                Ok(Ok(m)) => return Ok(m),
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(anyhow::anyhow!("metadata from {} timed out", b.grpc)),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no broker is running")))
    }

    /// Partition `p` of `topic` as the cluster reports it.
    pub async fn partition(&self, topic: &str, p: u32) -> Result<PartitionMetadata> {
        let m = self.metadata(&[topic]).await?;
        m.topics
            .into_iter()
            .find(|t| t.name == topic)
            .and_then(|t| t.partitions.into_iter().find(|x| x.partition == p))
            .with_context(|| format!("{topic}-{p} not in metadata"))
    }

    /// Poll `check` every 50 ms until it returns `Some`, or fail after
    /// `timeout` naming `what`.
    pub async fn wait_for<T, F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check().await {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until every running broker is registered (listed in the
    /// cluster metadata): a broker is ready to serve before its
    /// registration reaches the controller, and a topic created in between
    /// sees fewer live brokers than were started.
    pub async fn wait_registered(&self, timeout: Duration) -> Result<()> {
        let running: Vec<i32> = (self.first_id..)
            .zip(&self.brokers)
            .filter(|(_, b)| b.is_running())
            .map(|(id, _)| id)
            .collect();
        self.wait_for("every broker registered", timeout, || async {
            let metadata = self.metadata(&[]).await.ok()?;
            running
                .iter()
                .all(|id| metadata.brokers.iter().any(|b| b.id == *id))
                .then_some(())
        })
        .await
    }

    /// Wait until every running broker is registered, then connect an
    /// [`runnel_client::Admin`] to the cluster: the start of most tests.
    pub async fn registered_admin(&self, timeout: Duration) -> Result<runnel_client::Admin> {
        self.wait_registered(timeout).await?;
        let config = runnel_client::ClientConfig::new(&self.bootstrap())?;
        Ok(runnel_client::Admin::connect(config).await?)
    }

    /// Wait until `topic-p` has a leader in `allowed` with exactly the ISR
    /// size `isr_len` (when given); returns its metadata.
    pub async fn wait_for_leader(
        &self,
        topic: &str,
        p: u32,
        allowed: &[i32],
        isr_len: Option<usize>,
        timeout: Duration,
    ) -> Result<PartitionMetadata> {
        self.wait_for(
            &format!("{topic}-{p} led by one of {allowed:?} with ISR size {isr_len:?}"),
            timeout,
            || async {
                let m = self.partition(topic, p).await.ok()?;
                (allowed.contains(&m.leader) && isr_len.is_none_or(|n| m.isr.len() == n))
                    .then_some(m)
            },
        )
        .await
    }

    /// Broker logs, for failure messages.
    pub fn logs(&self) -> String {
        self.brokers
            .iter()
            .enumerate()
            .map(|(i, b)| format!("--- broker {} ---\n{}", i + 1, b.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The cluster's temporary directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}
