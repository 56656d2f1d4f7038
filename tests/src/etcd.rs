//! [`EtcdProcess`]: a real, single-member etcd on free loopback ports, for
//! cluster-mode tests.
//!
//! The binary is `$ETCD_BIN`, else `etcd` on `PATH` (Debian's `etcd-server`
//! package; `scripts/test.sh` installs it). Data lives in a directory the
//! process owns, so [`EtcdProcess::restart`] comes back with the same keys
//! and revisions; the log is `<data-dir>.etcd.log`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long etcd may take to report healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long etcd may take to exit on SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running etcd process.
pub struct EtcdProcess {
    child: Option<Child>,
    /// Client address (gRPC and `/health`).
    pub client: SocketAddr,
    /// Peer (raft) address; unused by a single member but etcd binds it.
    peer: SocketAddr,
    /// A second client listener with TLS, and its files.
    tls: Option<(SocketAddr, EtcdTlsFiles)>,
    /// Keeps the data directory alive as long as the process handle.
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    log_path: PathBuf,
}

impl std::fmt::Debug for EtcdProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdProcess")
            .field("client", &self.client)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

/// PEM files for an etcd client listener with TLS that requires client
/// certificates (`--client-cert-auth`).
#[derive(Debug, Clone)]
pub struct EtcdTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA that client certificates must chain to.
    pub ca: PathBuf,
}

/// The etcd binary: `$ETCD_BIN`, else `etcd` (resolved on `PATH`).
pub fn etcd_binary() -> PathBuf {
    std::env::var_os("ETCD_BIN").map_or_else(|| PathBuf::from("etcd"), PathBuf::from)
}

/// A loopback port nobody is listening on right now. The listener is closed
/// before etcd binds it; on a busy machine another process could take it in
/// between, which shows up as a clear start failure in etcd's log.
pub fn free_port() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl EtcdProcess {
    /// Start etcd in a fresh temporary data directory and wait until healthy.
    ///
    /// The ports are free when chosen but not reserved (see [`free_port`]):
    /// when another process takes one before etcd binds it, etcd exits with
    /// "address already in use" and this tries again on new ports, in a new
    /// directory.
    pub fn start() -> Result<Self> {
        Self::start_inner(None)
    }

    /// [`EtcdProcess::start`] with a second client listener that speaks TLS
    /// and requires a client certificate ([`EtcdProcess::tls_endpoint`]);
    /// the plaintext one stays for the health check.
    pub fn start_with_tls(files: EtcdTlsFiles) -> Result<Self> {
        Self::start_inner(Some(files))
    }

    fn start_inner(tls: Option<EtcdTlsFiles>) -> Result<Self> {
        const ATTEMPTS: usize = 5;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let dir = tempfile::tempdir()?;
            let data_dir = dir.path().join("data");
            let mut etcd = EtcdProcess {
                child: None,
                client: free_port()?,
                peer: free_port()?,
                tls: match &tls {
                    Some(files) => Some((free_port()?, files.clone())),
                    None => None,
                },
                log_path: dir.path().join("data.etcd.log"),
                data_dir,
                _dir: dir,
            };
            match etcd.spawn() {
                Ok(()) => return Ok(etcd),
                Err(e)
                    if attempt < ATTEMPTS && etcd.log_tail().contains("address already in use") =>
                {
                    eprintln!("etcd lost a port race ({e:#}); trying other ports");
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let bin = etcd_binary();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let mut client_urls = format!("http://{}", self.client);
        let peer_url = format!("http://{}", self.peer);
        let mut command = Command::new(&bin);
        if let Some((address, files)) = &self.tls {
            client_urls.push_str(&format!(",https://{address}"));
            command
                .arg(format!("--cert-file={}", files.cert.display()))
                .arg(format!("--key-file={}", files.key.display()))
                .arg(format!("--trusted-ca-file={}", files.ca.display()))
                .arg("--client-cert-auth");
        }
        command
            .arg("--name=default")
            .arg(format!("--data-dir={}", self.data_dir.display()))
            .arg(format!("--listen-client-urls={client_urls}"))
            .arg(format!("--advertise-client-urls={client_urls}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"))
            // Faster raft timing on loopback lowers etcd's minimum lease TTL
            // from 2 s to 1 s, so tests can fail brokers over quickly.
            .arg("--heartbeat-interval=50")
            .arg("--election-timeout=500")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        if std::env::consts::ARCH != "x86_64" && std::env::var_os("ETCD_UNSUPPORTED_ARCH").is_none()
        {
            // etcd 3.4 refuses to start on other architectures without this.
            command.env("ETCD_UNSUPPORTED_ARCH", etcd_arch());
        }
        let mut child = command.spawn().with_context(|| {
            format!(
                "starting {} (install Debian's etcd-server, or set ETCD_BIN)",
                bin.display()
            )
        })?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.healthy() {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "etcd exited with {status} before it was healthy; log {}:\n{}",
                    self.log_path.display(),
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "etcd not healthy after {START_TIMEOUT:?}; log {}:\n{}",
                    self.log_path.display(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.child = Some(child);
        Ok(())
    }

    /// `GET /health` answers 200 with `"health":"true"`.
    fn healthy(&self) -> bool {
        let check = || -> Result<bool> {
            let mut stream = TcpStream::connect_timeout(&self.client, Duration::from_secs(1))?;
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            write!(
                stream,
                "GET /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.client
            )?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response.starts_with("HTTP/1.1 200") && response.contains(r#""health":"true""#))
        };
        check().unwrap_or(false)
    }

    /// The client URL, for `EtcdStore::connect`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.client)
    }

    /// The TLS client URL, when started with [`EtcdProcess::start_with_tls`].
    pub fn tls_endpoint(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|(address, _)| format!("https://{address}"))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The last lines etcd logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, then SIGKILL if etcd has not exited after a few seconds.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                child.kill()?;
                child.wait()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGKILL: no clean shutdown.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Start again on the same data directory and ports (clients keep their
    /// endpoint), stopping it first if it runs.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }
}

/// The `ETCD_UNSUPPORTED_ARCH` value etcd expects: Go's name for this arch.
fn etcd_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
