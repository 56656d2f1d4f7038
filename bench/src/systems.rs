//! The systems under test: how each server is started (on loopback, free
//! ports, a fresh temporary data directory, stopped when dropped) and what
//! durability it offers, so the tables can say it.
//!
//! Durability is made comparable where the systems allow it: `runnel`
//! fsyncs every second (`flush.ms=1000`) like Redis with `appendfsync
//! everysec`; NATS 2.9's file store has no setting for it and syncs on its
//! own schedule; `runnel-fsync` fsyncs every batch before acknowledging;
//! `runnel-rf3` keeps three copies and acknowledges when the in-sync
//! replicas have it (Kafka's model: replication, not fsync).
//! `runnel-kafka` is `runnel` over the Kafka protocol (librdkafka),
//! `runnel-rskafka` the same through rskafka;
//! `tansu` keeps everything in memory, its fastest engine, so it is an
//! upper bound on Tansu rather than a like-for-like durability.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use runnel_client::Acks;
use runnel_tests::BrokerProcess;
use runnel_tests::cluster::TestCluster;
use runnel_tests::etcd::free_port;
use tempfile::TempDir;

use crate::driver::Driver;
use crate::driver::kafka::KafkaDriver;
use crate::driver::nats::{ACKS_IN_FLIGHT, NatsDriver};
use crate::driver::redis::{PIPELINE, PIPELINES_IN_FLIGHT, RedisDriver};
use crate::driver::rskafka::RsKafkaDriver;
use crate::driver::runnel::RunnelDriver;
use crate::results::SystemInfo;
use crate::workload::ProducerSettings;

/// The durability of the one-broker `flush.ms=1000` systems.
const FLUSH_EVERY_SECOND: &str = "page cache at ack, fsync every second (flush.ms=1000)";

/// Every system, in table order.
pub const ALL: &[System] = &[
    System::Runnel,
    System::RunnelFsync,
    System::RunnelRf3,
    System::RunnelKafka,
    System::RunnelRskafka,
    System::Tansu,
    System::Nats,
    System::Redis,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// One broker, fsync every second.
    Runnel,
    /// One broker, fsync every batch before the ack.
    RunnelFsync,
    /// Three brokers and etcd, RF=3, acks=all, min.insync.replicas=2.
    RunnelRf3,
    /// The `runnel` broker and topic, driven over the Kafka protocol by
    /// librdkafka instead of runnel-client over gRPC.
    RunnelKafka,
    /// The `runnel` broker and topic over the Kafka protocol, driven by
    /// rskafka (a lean pure-Rust client) batching as runnel-client does:
    /// the protocol compared with the client's cost mostly out of the way.
    RunnelRskafka,
    /// Tansu, a Kafka-compatible broker in Rust, on its memory engine.
    Tansu,
    /// nats-server with JetStream file storage.
    Nats,
    /// redis-server with AOF, appendfsync everysec.
    Redis,
}

impl FromStr for System {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ALL.iter()
            .copied()
            .find(|sys| sys.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = ALL.iter().map(|s| s.name()).collect();
                format!("unknown system {s:?}; one of {}", names.join(", "))
            })
    }
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Runnel => "runnel",
            System::RunnelFsync => "runnel-fsync",
            System::RunnelRf3 => "runnel-rf3",
            System::RunnelKafka => "runnel-kafka",
            System::RunnelRskafka => "runnel-rskafka",
            System::Tansu => "tansu",
            System::Nats => "nats",
            System::Redis => "redis",
        }
    }

    pub fn is_peer(self) -> bool {
        matches!(self, System::Tansu | System::Nats | System::Redis)
    }

    /// The server binary this system needs, for a clear error up front.
    pub fn server_binary(self) -> &'static str {
        match self {
            System::Nats => "nats-server",
            System::Redis => "redis-server",
            System::Tansu => "tansu",
            _ => "runnel-broker",
        }
    }

    fn runnel_driver(self, bootstrap: Vec<String>, producer: &ProducerSettings) -> RunnelDriver {
        let (rf, configs, acks) = match self {
            System::RunnelFsync => (1, vec![("flush.messages", "1")], Acks::All),
            System::RunnelRf3 => (3, vec![("min.insync.replicas", "2")], Acks::All),
            _ => (1, vec![("flush.ms", "1000")], Acks::All),
        };
        RunnelDriver {
            bootstrap,
            replication_factor: rf,
            topic_configs: configs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            acks,
            producer: producer.clone(),
        }
    }

    /// The Kafka-protocol driver for `bootstrap`: Runnel's topic configs
    /// for `runnel-kafka`, none for Tansu (it has no flush policy).
    fn kafka_driver(self, bootstrap: String, producer: &ProducerSettings) -> KafkaDriver {
        let topic_configs = match self {
            System::RunnelKafka => vec![("flush.ms".to_owned(), "1000".to_owned())],
            _ => Vec::new(),
        };
        KafkaDriver {
            bootstrap,
            replication_factor: 1,
            topic_configs,
            producer: producer.clone(),
        }
    }

    /// The rskafka driver for `bootstrap`: the `runnel` system's topic
    /// configs and producer settings.
    fn rskafka_driver(self, bootstrap: String, producer: &ProducerSettings) -> RsKafkaDriver {
        RsKafkaDriver {
            runnel: System::Runnel.runnel_driver(vec![bootstrap.clone()], producer),
            bootstrap,
        }
    }

    /// What the tables say about this system.
    pub fn info(self) -> SystemInfo {
        let (kind, version, replicas, durability, client) = match self {
            System::Runnel | System::RunnelFsync | System::RunnelRf3 => {
                let p = self
                    .runnel_driver(Vec::new(), &ProducerSettings::default())
                    .producer_config();
                let client = format!(
                    "runnel-client: acks={:?}, batch.size={} B, linger.ms={}, {} requests in flight",
                    p.acks,
                    p.batch_size,
                    p.linger.as_millis(),
                    p.max_in_flight_requests
                );
                let (replicas, durability) = match self {
                    System::RunnelFsync => {
                        (1, "fsync of every batch before the ack (flush.messages=1)")
                    }
                    System::RunnelRf3 => (
                        3,
                        "ack when all in-sync replicas (min 2 of 3) have it in their page cache; no fsync",
                    ),
                    _ => (1, FLUSH_EVERY_SECOND),
                };
                (
                    "runnel",
                    env!("CARGO_PKG_VERSION").to_owned(),
                    replicas,
                    durability,
                    client,
                )
            }
            System::RunnelKafka | System::RunnelRskafka => {
                let defaults = ProducerSettings::default();
                let client = if self == System::RunnelKafka {
                    self.kafka_driver(String::new(), &defaults).describe()
                } else {
                    self.rskafka_driver(String::new(), &defaults).describe()
                };
                (
                    "runnel",
                    env!("CARGO_PKG_VERSION").to_owned(),
                    1,
                    FLUSH_EVERY_SECOND,
                    client,
                )
            }
            System::Tansu => (
                "tansu",
                version_of("tansu", &["--version"]),
                1,
                "memory storage engine: nothing on disk (its fastest engine; durable ones are PostgreSQL and S3)",
                self.kafka_driver(String::new(), &ProducerSettings::default())
                    .describe(),
            ),
            System::Nats => (
                "nats",
                version_of("nats-server", &["--version"]),
                1,
                "JetStream file storage: page cache at ack, server syncs on its own schedule (not configurable in 2.9)",
                format!(
                    "async-nats: async publish, {ACKS_IN_FLIGHT} acks in flight; ordered pull consumer"
                ),
            ),
            System::Redis => (
                "redis",
                version_of("redis-server", &["--version"]),
                1,
                "AOF, appendfsync everysec: page cache at ack, fsync every second",
                format!(
                    "redis-rs: XADD pipelines of {PIPELINE}, {PIPELINES_IN_FLIGHT} in flight; XREAD COUNT {PIPELINE}"
                ),
            ),
        };
        SystemInfo {
            name: self.name().to_owned(),
            kind: kind.to_owned(),
            version,
            replicas,
            durability: durability.to_owned(),
            client,
            peer: self.is_peer(),
        }
    }

    /// Start this system's server(s) in a fresh directory; the driver
    /// talks to them (a Runnel driver with the workload's producer
    /// settings). Dropping the [`Server`] stops everything.
    pub fn start(self, producer: &ProducerSettings) -> Result<(Server, Box<dyn Driver>)> {
        match self {
            System::Runnel | System::RunnelFsync => {
                let dir = tempfile::tempdir()?;
                let broker = BrokerProcess::start(&dir.path().join("data"), &[])?;
                let driver = self.runnel_driver(vec![broker.bootstrap()], producer);
                Ok((Server::Broker(broker, dir), Box::new(driver)))
            }
            System::RunnelKafka => {
                let dir = tempfile::tempdir()?;
                // The Kafka protocol on the same port as gRPC.
                let broker = BrokerProcess::start(&dir.path().join("data"), &[])?;
                let driver = self.kafka_driver(broker.bootstrap(), producer);
                Ok((Server::Broker(broker, dir), Box::new(driver)))
            }
            System::RunnelRskafka => {
                let dir = tempfile::tempdir()?;
                let broker = BrokerProcess::start(&dir.path().join("data"), &[])?;
                let driver = self.rskafka_driver(broker.bootstrap(), producer);
                Ok((Server::Broker(broker, dir), Box::new(driver)))
            }
            System::Tansu => {
                let dir = tempfile::tempdir()?;
                let port = free_port()?.port();
                let url = format!("tcp://127.0.0.1:{port}");
                let child = spawn(
                    Command::new("tansu")
                        .arg("broker")
                        .args(["--listener-url", &url, "--advertised-listener-url", &url])
                        .args(["--storage-engine", "memory://tansu/"])
                        .env("RUST_LOG", "warn"),
                    dir.path(),
                )?;
                let server = Server::Process(child, dir);
                wait_for_port(port)?;
                let driver = self.kafka_driver(format!("127.0.0.1:{port}"), producer);
                Ok((server, Box::new(driver)))
            }
            System::RunnelRf3 => {
                let cluster = TestCluster::start(3, &[])?;
                let bootstrap = cluster.brokers.iter().map(|b| b.bootstrap()).collect();
                let driver = self.runnel_driver(bootstrap, producer);
                Ok((Server::Cluster(Box::new(cluster)), Box::new(driver)))
            }
            System::Nats => {
                let dir = tempfile::tempdir()?;
                let port = free_port()?.port();
                let child = spawn(
                    Command::new("nats-server")
                        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
                        .arg(dir.path()),
                    dir.path(),
                )?;
                let server = Server::Process(child, dir);
                wait_for_port(port)?;
                let driver = NatsDriver {
                    url: format!("nats://127.0.0.1:{port}"),
                };
                Ok((server, Box::new(driver)))
            }
            System::Redis => {
                let dir = tempfile::tempdir()?;
                let port = free_port()?.port();
                let child = spawn(
                    Command::new("redis-server")
                        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
                        // No RDB snapshots: the AOF is the durability.
                        .args(["--save", "", "--daemonize", "no", "--dir"])
                        .arg(dir.path()),
                    dir.path(),
                )?;
                let server = Server::Process(child, dir);
                wait_for_port(port)?;
                let driver = RedisDriver {
                    url: format!("redis://127.0.0.1:{port}/"),
                };
                Ok((server, Box::new(driver)))
            }
        }
    }
}

/// Running server(s); dropping stops them and removes their data.
pub enum Server {
    Broker(BrokerProcess, TempDir),
    Cluster(Box<TestCluster>),
    Process(Child, TempDir),
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Server::Broker(..) => "Server::Broker",
            Server::Cluster(_) => "Server::Cluster",
            Server::Process(..) => "Server::Process",
        })
    }
}

impl Server {
    /// CPU seconds (user + system) used so far by the server processes
    /// (every broker of a cluster; etcd is not counted), from
    /// `/proc/PID/stat`.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let pids: Vec<u32> = match self {
            Server::Broker(b, _) => b.pid().into_iter().collect(),
            Server::Cluster(c) => c.brokers.iter().filter_map(|b| b.pid()).collect(),
            Server::Process(child, _) => vec![child.id()],
        };
        pids.into_iter()
            .map(|pid| process_cpu_seconds(&pid.to_string()))
            .sum()
    }
}

/// CPU seconds (user + system) used so far by process `pid` (or `self`),
/// from `/proc/PID/stat`.
pub fn process_cpu_seconds(pid: &str) -> Result<f64> {
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name in parentheses (which may hold
    // spaces): state is the 3rd field, utime and stime the 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> Result<f64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v as f64 / ticks)
            .with_context(|| format!("field {n} of /proc/{pid}/stat"))
    };
    Ok(field(14)? + field(15)?)
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Server::Process(child, _) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Start a peer server with its output in `dir/server.log`.
fn spawn(cmd: &mut Command, dir: &Path) -> Result<Child> {
    let log = std::fs::File::create(dir.join("server.log"))?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {cmd:?} (bench/run installs it)"))
}

/// Wait until something accepts connections on the loopback port.
fn wait_for_port(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("nothing listening on 127.0.0.1:{port} after 10 s")
}

/// First line of `bin args`, or why not.
fn version_of(bin: &str, args: &[&str]) -> String {
    match Command::new(bin).args(args).output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("?")
            .trim()
            .to_owned(),
        Err(e) => format!("{bin} not runnable: {e}"),
    }
}
