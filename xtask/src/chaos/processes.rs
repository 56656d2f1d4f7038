//! The processes of a chaos run: etcd members and brokers, each started in
//! its node's network namespace with `ip netns exec` (which execs the
//! program, so the pid we hold is the program's own and signals reach it
//! directly). Each keeps one log file across restarts.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::topology::Node;

/// etcd's client port on every member.
pub const ETCD_CLIENT_PORT: u16 = 2379;
const ETCD_PEER_PORT: u16 = 2380;
/// The broker's gRPC + Kafka port and its HTTP (metrics, health) port.
pub const BROKER_PORT: u16 = 9092;
const BROKER_HTTP_PORT: u16 = 9644;
/// How long a process may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A program run in a namespace, restartable with the same arguments.
pub struct Daemon {
    pub name: String,
    netns: String,
    program: PathBuf,
    args: Vec<String>,
    log_path: PathBuf,
    child: Option<Child>,
    /// Stopped with SIGSTOP and not yet continued.
    paused: bool,
    /// Should be running: started and not since stopped or killed here.
    wanted: bool,
    /// Printed on stdout once the program is ready; `None` to not wait.
    ready_line: Option<&'static str>,
}

impl Daemon {
    fn new(
        name: &str,
        node: &Node,
        program: PathBuf,
        args: Vec<String>,
        log_path: PathBuf,
        ready_line: Option<&'static str>,
    ) -> Self {
        Daemon {
            name: name.to_owned(),
            netns: node.netns.clone(),
            program,
            args,
            log_path,
            child: None,
            paused: false,
            wanted: false,
            ready_line,
        }
    }

    /// Start the program; with a ready line, wait until it prints it.
    pub fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        self.wanted = true;
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        writeln!(log, "----- chaos: starting {} -----", self.name)?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .arg(&self.program)
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(if self.ready_line.is_some() {
                Stdio::piped()
            } else {
                Stdio::from(log.try_clone()?)
            })
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.program.display()))?;
        if let Some(ready) = self.ready_line {
            let stdout = child.stdout.take().expect("piped stdout");
            let (tx, rx) = mpsc::channel();
            // Drain stdout for the process's whole life so it never blocks
            // on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.starts_with(ready) {
                        let _ = tx.send(());
                    }
                }
            });
            let deadline = Instant::now() + START_TIMEOUT;
            while rx.recv_timeout(Duration::from_millis(50)).is_err() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "{} exited with {status} before it was ready; see {}",
                        self.name,
                        self.log_path.display()
                    );
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "{} not ready after {START_TIMEOUT:?}; see {}",
                        self.name,
                        self.log_path.display()
                    );
                }
            }
        }
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// If the process ended by itself (nobody here stopped or killed it),
    /// how it ended; reported once.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status.to_string())
    }

    fn signal(&self, signal: Signal) -> Result<()> {
        let child = self.child.as_ref().context("not running")?;
        kill(Pid::from_raw(child.id() as i32), signal)
            .with_context(|| format!("sending {signal} to {}", self.name))
    }

    /// Whether it should be running but is not (it died, or did not start).
    pub fn needs_start(&mut self) -> bool {
        self.wanted && !self.is_running()
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) -> Result<()> {
        self.wanted = false;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            child.wait()?;
        }
        self.paused = false;
        Ok(())
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) -> Result<()> {
        self.wanted = false;
        if !self.is_running() {
            self.child = None;
            return Ok(());
        }
        if self.paused {
            self.resume()?;
        }
        self.signal(Signal::SIGTERM)?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                self.child = None;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "chaos: {} ignored SIGTERM for {grace:?}; killing it",
            self.name
        );
        self.kill9()
    }

    /// SIGSTOP: the process stops as a whole, timers and all, and wakes up
    /// on [`Daemon::resume`] still believing whatever it believed.
    pub fn pause(&mut self) -> Result<()> {
        self.signal(Signal::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    pub fn resume(&mut self) -> Result<()> {
        if self.paused {
            self.signal(Signal::SIGCONT)?;
            self.paused = false;
        }
        Ok(())
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.resume();
        let _ = self.stop(Duration::from_secs(10));
    }
}

/// The etcd members: `--initial-cluster` lists all of them, with raft timing
/// fast enough for a 1 s broker session (as the tests use).
pub fn etcd_members(nodes: &[Node], dir: &Path) -> Result<Vec<Daemon>> {
    let program = std::env::var_os("ETCD_BIN").map_or_else(|| PathBuf::from("etcd"), PathBuf::from);
    let initial_cluster = nodes
        .iter()
        .map(|n| format!("{}=http://{}:{ETCD_PEER_PORT}", n.name, n.ip))
        .collect::<Vec<_>>()
        .join(",");
    nodes
        .iter()
        .map(|n| {
            let data = dir.join(format!("{}.etcd", n.name));
            let client = format!("http://{}:{ETCD_CLIENT_PORT}", n.ip);
            let peer = format!("http://{}:{ETCD_PEER_PORT}", n.ip);
            let args = vec![
                format!("--name={}", n.name),
                format!("--data-dir={}", data.display()),
                format!("--listen-client-urls={client}"),
                format!("--advertise-client-urls={client}"),
                format!("--listen-peer-urls={peer}"),
                format!("--initial-advertise-peer-urls={peer}"),
                format!("--initial-cluster={initial_cluster}"),
                "--initial-cluster-state=new".into(),
                "--initial-cluster-token=chaos".into(),
                "--heartbeat-interval=50".into(),
                "--election-timeout=500".into(),
            ];
            Ok(Daemon::new(
                &n.name,
                n,
                program.clone(),
                args,
                dir.join(format!("{}.log", n.name)),
                None,
            ))
        })
        .collect()
}

/// Wait until etcd's `/health` on `ip` says the cluster has a leader.
pub fn wait_etcd_healthy(ip: Ipv4Addr, timeout: Duration) -> Result<()> {
    let address = SocketAddr::from((ip, ETCD_CLIENT_PORT));
    let deadline = Instant::now() + timeout;
    loop {
        let healthy = (|| -> Result<bool> {
            let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            write!(
                stream,
                "GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
            )?;
            let mut response = String::new();
            std::io::Read::read_to_string(&mut stream, &mut response)?;
            Ok(response.contains(r#""health":"true""#))
        })()
        .unwrap_or(false);
        if healthy {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("etcd at {address} not healthy after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One broker of the run and the filesystem its data lives on.
pub struct Broker {
    pub id: i32,
    pub daemon: Daemon,
    pub node: Node,
    pub disk: super::disk::Disk,
}

impl Broker {
    pub fn address(&self) -> String {
        format!("{}:{BROKER_PORT}", self.node.ip)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.disk.data_dir()
    }
}

/// The brokers, each with its data directory on a disk of its own.
pub fn brokers(
    nodes: &[Node],
    etcd: &[Node],
    dir: &Path,
    broker_bin: &Path,
    disk_bytes: u64,
) -> Result<Vec<Broker>> {
    let endpoints = etcd
        .iter()
        .map(|n| format!("http://{}:{ETCD_CLIENT_PORT}", n.ip))
        .collect::<Vec<_>>()
        .join(",");
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let id = i as i32 + 1;
            let disk = super::disk::Disk::mount(&dir.join(&n.name), disk_bytes)?;
            let address = format!("{}:{BROKER_PORT}", n.ip);
            let args: Vec<String> = [
                "--broker-id",
                &id.to_string(),
                "--cluster",
                "chaos",
                "--etcd-endpoints",
                &endpoints,
                "--listen",
                &address,
                "--advertise",
                &address,
                "--http-listen",
                &format!("{}:{BROKER_HTTP_PORT}", n.ip),
                "--data-dir",
                &disk.data_dir().display().to_string(),
                // Fast failure detection, as the cross-process tests use.
                "--broker-session-timeout-ms",
                "1000",
                "--replica-lag-time-max-ms",
                "3000",
                "--leader-imbalance-check-interval-seconds",
                "5",
                "--min-insync-replicas",
                "2",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            Ok(Broker {
                id,
                daemon: Daemon::new(
                    &n.name,
                    n,
                    broker_bin.to_owned(),
                    args,
                    dir.join(format!("{}.log", n.name)),
                    Some("runnel-broker ready"),
                ),
                node: n.clone(),
                disk,
            })
        })
        .collect()
}
