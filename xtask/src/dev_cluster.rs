//! `cargo xtask dev-cluster`: a local Runnel cluster for development — a
//! real etcd (the installed binary, or `ETCD_BIN`) and N brokers on
//! loopback — torn down cleanly on Ctrl-C.
//!
//! Ports: etcd clients on `--etcd-port` (2379), broker `i` (ids from 1)
//! serves gRPC on `--base-port + i - 1` (9092, 9093, ...) and HTTP on
//! `--base-port + 100 + i - 1`. Data lives under `--data-dir`, or a
//! temporary directory removed at the end.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What `dev-cluster` was asked for.
pub struct Options {
    pub brokers: u32,
    pub data_dir: Option<PathBuf>,
    pub base_port: u16,
    pub etcd_port: u16,
    pub release: bool,
    /// Extra `runnel-broker` flags for every broker.
    pub broker_args: Vec<String>,
}

/// A child process we own, stopped with SIGTERM (then SIGKILL) on drop.
struct Owned {
    name: String,
    child: Child,
}

impl Owned {
    fn stop(&mut self, grace: Duration) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                eprintln!("stopped {}", self.name);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("killed {} (it ignored SIGTERM for {grace:?})", self.name);
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(15));
    }
}

pub fn run(opts: Options) -> Result<()> {
    if opts.brokers == 0 {
        bail!("--brokers must be at least 1");
    }
    let (stop_tx, stop_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C handler")?;

    let broker_bin = build_broker(opts.release)?;
    let temp = match &opts.data_dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("runnel-dev-").tempdir()?),
    };
    let root = opts
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.as_ref().expect("temp dir").path().to_owned());
    std::fs::create_dir_all(&root)?;

    let mut etcd = start_etcd(&root, opts.etcd_port)?;
    let endpoint = format!("http://127.0.0.1:{}", opts.etcd_port);
    let mut brokers = Vec::new();
    for id in 1..=opts.brokers {
        brokers.push(start_broker(&broker_bin, &root, id, &endpoint, &opts)?);
    }
    let bootstrap: Vec<String> = (0..opts.brokers)
        .map(|i| format!("127.0.0.1:{}", opts.base_port + i as u16))
        .collect();
    println!();
    println!(
        "Runnel dev cluster is up: {} broker(s), etcd at {endpoint}",
        opts.brokers
    );
    println!("  data:      {}", root.display());
    println!("  bootstrap: {}", bootstrap.join(","));
    println!(
        "  try:       runnel --bootstrap {} topic create demo -p 6 -r {}",
        bootstrap.join(","),
        opts.brokers.min(3)
    );
    println!(
        "Ctrl-C stops everything{}.",
        if temp.is_some() {
            " and deletes the data"
        } else {
            ""
        }
    );

    // Wait for Ctrl-C, or for a child to die on its own.
    'wait: loop {
        if stop_rx.recv_timeout(Duration::from_millis(500)).is_ok() {
            break;
        }
        for o in brokers.iter_mut().chain(std::iter::once(&mut etcd)) {
            if let Ok(Some(status)) = o.child.try_wait() {
                eprintln!("{} exited ({status}); stopping the cluster", o.name);
                break 'wait;
            }
        }
    }
    eprintln!("stopping brokers...");
    // Brokers first (they deregister from etcd), then etcd.
    for b in &mut brokers {
        b.stop(Duration::from_secs(15));
    }
    drop(brokers);
    drop(etcd);
    Ok(())
}

fn build_broker(release: bool) -> Result<PathBuf> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    if release {
        // Only what a cluster runs: the broker and the `runnel` CLI. Nothing
        // else builds in release (the test script builds debug), so there is
        // no other feature set to stay in step with, and the operator, bench
        // and test crates would cost minutes for nothing.
        cmd.args([
            "build",
            "--release",
            "-p",
            "runnel-broker",
            "-p",
            "runnel-cli",
        ]);
    } else {
        // Every binary, like the test script builds them: the same features,
        // so nothing is compiled twice, and `runnel` comes along.
        cmd.args(["build", "--workspace", "--bins"]);
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("building the workspace binaries failed");
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    Ok(Path::new(&target)
        .join(if release { "release" } else { "debug" })
        .join("runnel-broker"))
}

fn start_etcd(root: &Path, port: u16) -> Result<Owned> {
    let bin = std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".into());
    let client = format!("http://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{}", port + 1);
    let log = std::fs::File::create(root.join("etcd.log"))?;
    let child = Command::new(&bin)
        .arg("--name=dev")
        .arg(format!("--data-dir={}", root.join("etcd").display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=dev={peer}"))
        // 1 s minimum lease (see docs/metadata.md): fast failover.
        .arg("--heartbeat-interval=50")
        .arg("--election-timeout=500")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        // Own process group: Ctrl-C reaches us, and we stop it last.
        .process_group(0)
        .spawn()
        .with_context(|| {
            format!("starting {bin} (apt-get install etcd-server, or set ETCD_BIN)")
        })?;
    let mut etcd = Owned {
        name: "etcd".into(),
        child,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        if let Some(status) = etcd.child.try_wait()? {
            bail!(
                "etcd exited with {status}; see {}",
                root.join("etcd.log").display()
            );
        }
        if Instant::now() > deadline {
            etcd.stop(Duration::from_secs(2));
            bail!("etcd did not listen on {port} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("etcd listening on {client}");
    Ok(etcd)
}

fn start_broker(bin: &Path, root: &Path, id: u32, etcd: &str, opts: &Options) -> Result<Owned> {
    let grpc = opts.base_port + (id - 1) as u16;
    let http = opts.base_port + 100 + (id - 1) as u16;
    let log = std::fs::File::create(root.join(format!("broker-{id}.log")))?;
    let mut child = Command::new(bin)
        .args(["--broker-id", &id.to_string()])
        .args([
            "--data-dir",
            &root.join(format!("broker-{id}")).display().to_string(),
        ])
        .args(["--listen", &format!("127.0.0.1:{grpc}")])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .args(["--etcd-endpoints", etcd])
        .args(["--broker-session-timeout-ms", "1000"])
        .args(&opts.broker_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut owned = Owned {
        name: format!("broker {id}"),
        child,
    };
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) if line.starts_with("runnel-broker ready") => {
            eprintln!("broker {id}: {line}");
            Ok(owned)
        }
        _ => {
            owned.stop(Duration::from_secs(2));
            bail!(
                "broker {id} did not start; see {}",
                root.join(format!("broker-{id}.log")).display()
            )
        }
    }
}
