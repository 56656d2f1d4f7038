//! `runnel-tests`: the harness for cross-process tests.
//!
//! [`BrokerProcess`] starts the real `runnel-broker` binary on free loopback
//! ports (it binds port 0 and reports the real ports on stdout), in a data
//! directory the test owns, and can `kill -9`, terminate or restart it.
//! Tests live in `tests/tests/`; they need the workspace binaries built
//! (`cargo build --bins`, which `scripts/test.sh` does).
//!
//! [`etcd::EtcdProcess`] does the same for a real etcd, and
//! [`cluster::TestCluster`] puts one etcd and N brokers together (cluster
//! mode) with helpers to kill, pause and restart any of them.
//! [`kafka_clients`] finds the Kafka clients the tests drive, and [`tls`]
//! makes the test CAs and certificates.

pub mod cluster;
pub mod etcd;
pub mod kafka_clients;
pub mod tls;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Debian's `kcat`, run with the system librdkafka it was built against.
///
/// cargo and nextest put every build script's native library directories on
/// `LD_LIBRARY_PATH`, and the benchmark's rdkafka-sys leaves a
/// `librdkafka.so.1` of its own there (built without zlib or OpenSSL). kcat
/// would load that one and refuse `-z gzip` and `security.protocol=ssl`.
pub fn kcat() -> Command {
    let mut command = Command::new("kcat");
    command.env_remove("LD_LIBRARY_PATH");
    command
}

/// Run `command`, assert it succeeded (its stderr in the panic), and parse
/// its stdout as JSON: `runnel --output json …`, `kcat -J`, the Python
/// client scripts.
///
/// # Panics
///
/// If the command cannot start, fails, or prints something other than JSON.
pub fn json_output(command: &mut Command) -> serde_json::Value {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// How long a broker may take to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A workspace binary (`runnel-broker`, `runnel`) next to the running
/// executable, or `$RUNNEL_BROKER_BIN` style overrides.
pub fn binary(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    if let Some(path) = std::env::var_os(&var) {
        return PathBuf::from(path);
    }
    // A workspace binary (target/<profile>/runnel-bench) has it next to
    // itself; a test executable one level up:
    // target/<profile>/deps/<test-exe> → target/<profile>/<name>.
    let exe = std::env::current_exe().expect("test executable path");
    let here = exe.parent().expect("executable directory");
    let sibling = here.join(name);
    if sibling.exists() {
        return sibling;
    }
    here.parent().expect("target/<profile>").join(name)
}

/// A running `runnel-broker` process.
pub struct BrokerProcess {
    child: Option<Child>,
    /// gRPC address.
    pub grpc: SocketAddr,
    /// Health and metrics address.
    pub http: SocketAddr,
    data_dir: PathBuf,
    extra_args: Vec<String>,
    envs: Vec<(String, String)>,
    log_path: PathBuf,
}

impl std::fmt::Debug for BrokerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerProcess")
            .field("grpc", &self.grpc)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl BrokerProcess {
    /// Start a broker on `data_dir` with extra flags.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Result<Self> {
        Self::start_with_env(data_dir, extra_args, &[])
    }

    /// Start a broker with extra flags and environment variables.
    pub fn start_with_env(
        data_dir: &Path,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Self> {
        let mut broker = BrokerProcess {
            child: None,
            grpc: "127.0.0.1:0".parse()?,
            http: "127.0.0.1:0".parse()?,
            data_dir: data_dir.to_owned(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log_path: data_dir.with_extension("broker.log"),
        };
        broker.spawn()?;
        Ok(broker)
    }

    fn spawn(&mut self) -> Result<()> {
        let bin = binary("runnel-broker");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let mut child = Command::new(&bin)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(&self.extra_args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (built? run `cargo build --bins`)",
                    bin.display()
                )
            })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Keep draining stdout for the life of the process so it never
        // blocks on a full pipe; hand the ready line over.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("runnel-broker ready") {
                    let _ = tx.send(line);
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let line = loop {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
                break line;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "broker exited with {status} before it was ready; log: {}",
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!(
                    "broker not ready after {START_TIMEOUT:?}; log: {}",
                    self.log_tail()
                );
            }
        };
        for field in line.split_whitespace() {
            if let Some(v) = field.strip_prefix("grpc=") {
                self.grpc = v.parse()?;
            } else if let Some(v) = field.strip_prefix("http=") {
                self.http = v.parse()?;
            }
        }
        self.child = Some(child);
        Ok(())
    }

    /// The gRPC endpoint URL, for tonic clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// `host:port` for `runnel --bootstrap`.
    pub fn bootstrap(&self) -> String {
        self.grpc.to_string()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The last lines the broker logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The process id while it runs, for reading `/proc/PID/status`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Is the process running (started and not killed by us)?
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGSTOP: the process freezes (no keep-alives, no fetches) but keeps
    /// its sockets, like a long GC pause or a hung disk.
    pub fn pause(&self) -> Result<()> {
        self.signal(nix::sys::signal::Signal::SIGSTOP)
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) -> Result<()> {
        self.signal(nix::sys::signal::Signal::SIGCONT)
    }

    fn signal(&self, signal: nix::sys::signal::Signal) -> Result<()> {
        let child = self.child.as_ref().context("broker not running")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)?;
        Ok(())
    }

    /// SIGKILL: no flush, no clean-shutdown marker.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM and wait: the graceful path.
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        let mut child = self.child.take().context("broker not running")?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                child.kill()?;
                bail!("broker ignored SIGTERM for 30 s; log: {}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start again on the same data directory (new ports).
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.terminate()?;
        }
        self.spawn()
    }

    /// Start again after [`kill9`](Self::kill9) or a crash (new ports).
    pub fn start_again(&mut self) -> Result<()> {
        anyhow::ensure!(self.child.is_none(), "broker still running");
        self.spawn()
    }

    /// GET a path on the HTTP port; returns (status code, body).
    pub fn http_get(&self, path: &str) -> Result<(u16, String)> {
        http_get(self.http, path)
    }
}

/// GET `path` from `address` over plain HTTP/1.1; returns (status, body).
pub fn http_get(address: SocketAddr, path: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .split_whitespace()
        .nth(1)
        .context("no status line")?
        .parse()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
