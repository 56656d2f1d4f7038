//! The chaos run's network: one network namespace per process (three etcd
//! members, three brokers) plus one for the clients, all joined to a bridge
//! that lives in a hub namespace of its own. Every address (10.77.0.0/24)
//! exists only inside these namespaces, so nothing the run does is visible
//! to the machine's own network, and two runs at once do not collide.
//!
//! Faults are routes, not links: `tc netem` is unavailable here, and a link
//! taken down would cut a node off from the clients too, while the
//! interesting partitions are selective ("the leader loses etcd and its
//! followers but clients still reach it"). A partition between A and B is a
//! `blackhole` route to B in A's namespace and one to A in B's: packets are
//! dropped, established TCP connections stall and retransmit (as across a
//! real broken network), and new connections fail at once. Healing deletes
//! the routes, and stalled connections carry on.
//!
//! Everything is created with `ip` (iproute2) and deleted on drop; a run
//! that was killed leaves namespaces named after its pid, which the next
//! run removes ([`Topology::remove_stale`]).

use std::collections::BTreeSet;
use std::fs::File;
use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The subnet every namespace's `eth0` is in.
const SUBNET_PREFIX: &str = "10.77.0";

/// Namespace names start with this and the harness's pid.
const PREFIX: &str = "chaos";

/// One host of the run: a network namespace with one address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    /// Short name: `e1`..`e3`, `b1`..`b3`, `client`.
    pub name: String,
    /// The namespace's name (`chaos<pid>-b1`).
    pub netns: String,
    pub ip: Ipv4Addr,
}

/// The namespaces and links of one run; removed on drop.
pub struct Topology {
    pid: u32,
    hub: String,
    pub etcd: Vec<Node>,
    pub brokers: Vec<Node>,
    pub client: Node,
    /// Blocked directions `(from, to)`, by node name: a blackhole route to
    /// `to` in `from`'s namespace.
    blocked: BTreeSet<(String, String)>,
}

/// Run `ip` with `args`; an error names the command and what it printed.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Topology {
    /// Create the hub with its bridge, and a namespace for each of
    /// `etcd_members` etcd members, `brokers` brokers and the clients.
    pub fn create(etcd_members: usize, brokers: usize) -> Result<Self> {
        Self::remove_stale();
        let pid = std::process::id();
        let hub = format!("{PREFIX}{pid}-hub");
        let node = |name: String, host: u8| Node {
            netns: format!("{PREFIX}{pid}-{name}"),
            ip: format!("{SUBNET_PREFIX}.{host}")
                .parse()
                .expect("valid address"),
            name,
        };
        let topology = Topology {
            pid,
            hub: hub.clone(),
            etcd: (1..=etcd_members)
                .map(|i| node(format!("e{i}"), 10 + i as u8))
                .collect(),
            brokers: (1..=brokers)
                .map(|i| node(format!("b{i}"), 20 + i as u8))
                .collect(),
            client: node("client".into(), 100),
            blocked: BTreeSet::new(),
        };
        // From here on, drop removes whatever was made if a step fails.
        ip(&["netns", "add", &hub]).context("creating network namespaces needs root")?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        let nodes: Vec<Node> = topology.nodes().cloned().collect();
        for n in &nodes {
            topology.attach(n)?;
        }
        Ok(topology)
    }

    /// A namespace for `n`, linked to the hub's bridge by a veth pair whose
    /// inner end is `eth0` with `n`'s address.
    fn attach(&self, n: &Node) -> Result<()> {
        // Interface names are at most 15 bytes; the pid keeps two runs apart
        // in the hub, where both ends are created.
        let outer = format!("v{}{}", self.pid % 1_000_000, n.name);
        let inner = format!("{outer}i");
        ip(&["netns", "add", &n.netns])?;
        ip(&[
            "-n", &self.hub, "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ])?;
        ip(&["-n", &self.hub, "link", "set", &inner, "netns", &n.netns])?;
        ip(&[
            "-n", &self.hub, "link", "set", &outer, "master", "br0", "up",
        ])?;
        ip(&["-n", &n.netns, "link", "set", &inner, "name", "eth0"])?;
        ip(&[
            "-n",
            &n.netns,
            "addr",
            "add",
            &format!("{}/24", n.ip),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &n.netns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &n.netns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Every node: etcd members, brokers, the client.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.etcd
            .iter()
            .chain(&self.brokers)
            .chain(std::iter::once(&self.client))
    }

    pub fn node(&self, name: &str) -> Result<&Node> {
        self.nodes()
            .find(|n| n.name == name)
            .with_context(|| format!("no node {name} in the topology"))
    }

    /// Move the calling thread into the client namespace. Called on the
    /// main thread before any other thread starts, so every thread of the
    /// harness (the async runtime's included) inherits it.
    pub fn enter_client(&self) -> Result<()> {
        let path = format!("/run/netns/{}", self.client.netns);
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .context("joining the client network namespace")?;
        Ok(())
    }

    /// Drop packets from `from` to `to` (one direction).
    pub fn block(&mut self, from: &str, to: &str) -> Result<()> {
        if self.blocked.contains(&(from.to_owned(), to.to_owned())) {
            return Ok(());
        }
        let (netns, target) = (self.node(from)?.netns.clone(), self.node(to)?.ip);
        ip(&[
            "-n",
            &netns,
            "route",
            "add",
            "blackhole",
            &format!("{target}/32"),
        ])?;
        self.blocked.insert((from.to_owned(), to.to_owned()));
        Ok(())
    }

    /// Cut `a` and `b` apart both ways.
    pub fn partition(&mut self, a: &str, b: &str) -> Result<()> {
        self.block(a, b)?;
        self.block(b, a)
    }

    /// Cut every node of `side` off from every node of `other`.
    pub fn split(&mut self, side: &[String], other: &[String]) -> Result<()> {
        for a in side {
            for b in other {
                self.partition(a, b)?;
            }
        }
        Ok(())
    }

    /// Remove every blocked route.
    pub fn heal(&mut self) -> Result<()> {
        for (from, to) in std::mem::take(&mut self.blocked) {
            let (netns, target) = (self.node(&from)?.netns.clone(), self.node(&to)?.ip);
            ip(&[
                "-n",
                &netns,
                "route",
                "del",
                "blackhole",
                &format!("{target}/32"),
            ])?;
        }
        Ok(())
    }

    /// Remove the namespaces of earlier runs whose harness is gone (killed
    /// before it could clean up).
    pub fn remove_stale() {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            let Some(pid) = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<i32>().ok())
            else {
                continue;
            };
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
            if !alive {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of each veth pair, and with
        // it the other end.
        let names: Vec<String> = self.nodes().map(|n| n.netns.clone()).collect();
        for netns in names.iter().chain(std::iter::once(&self.hub)) {
            if let Err(e) = ip(&["netns", "del", netns]) {
                eprintln!("chaos: {e:#}");
            }
        }
    }
}
