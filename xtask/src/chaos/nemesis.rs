//! The faults a chaos run injects, and how each is healed. A nemesis picks
//! its victim from the cluster as the brokers describe it at that moment
//! (the leader of some partition, the controller, a follower), so the
//! faults land where they hurt.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use rand::Rng;
use rand::seq::IndexedRandom;
use runnel_client::MetadataResponse;

use super::processes::{Broker, Daemon};
use super::topology::Topology;

/// Every kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A partition's leader loses etcd and the other brokers; clients still
    /// reach it (a zombie leader).
    PartitionLeader,
    /// A follower loses etcd and the other brokers.
    PartitionFollower,
    /// The controller loses etcd and the other brokers.
    PartitionController,
    /// One broker and one etcd member on one side, the rest on the other.
    MajorityMinority,
    /// SIGSTOP a partition's leader for longer than its session, then
    /// SIGCONT.
    PauseLeader,
    /// `kill -9` a broker, restart it when healed.
    KillBroker,
    /// `kill -9` one etcd member.
    KillEtcd,
    /// `kill -9` two of the three etcd members: no quorum.
    EtcdQuorumLoss,
    /// Fill one broker's disk, free it when healed.
    DiskFull,
    /// `kill -9` a broker and tear the tail of its logs (cut into the last
    /// batch, or leave junk after it), as a crash mid-write leaves them.
    TornWrite,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::PartitionLeader,
        Kind::PartitionFollower,
        Kind::PartitionController,
        Kind::MajorityMinority,
        Kind::PauseLeader,
        Kind::KillBroker,
        Kind::KillEtcd,
        Kind::EtcdQuorumLoss,
        Kind::DiskFull,
        Kind::TornWrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::PartitionLeader => "partition-leader",
            Kind::PartitionFollower => "partition-follower",
            Kind::PartitionController => "partition-controller",
            Kind::MajorityMinority => "majority-minority",
            Kind::PauseLeader => "pause-leader",
            Kind::KillBroker => "kill-broker",
            Kind::KillEtcd => "kill-etcd",
            Kind::EtcdQuorumLoss => "etcd-quorum-loss",
            Kind::DiskFull => "disk-full",
            Kind::TornWrite => "torn-write",
        }
    }

    /// Faults that cut the network; two of them at once would only heal
    /// together, so a combination takes at most one.
    fn is_network(self) -> bool {
        matches!(
            self,
            Kind::PartitionLeader
                | Kind::PartitionFollower
                | Kind::PartitionController
                | Kind::MajorityMinority
        )
    }

    /// Whether `self` and `other` can run at the same time.
    pub fn combines_with(self, other: Kind) -> bool {
        self != other
            && !(self.is_network() && other.is_network())
            && !matches!(
                (self, other),
                (Kind::KillEtcd, Kind::EtcdQuorumLoss) | (Kind::EtcdQuorumLoss, Kind::KillEtcd)
            )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown nemesis {s:?}; known: all, {}",
                    Kind::ALL.map(Kind::name).join(", ")
                )
            })
    }
}

/// Parse `--nemesis`: a comma-separated list of names, or `all`.
pub fn parse_list(list: &str) -> Result<Vec<Kind>> {
    let mut kinds = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "all" {
            kinds.extend(Kind::ALL);
        } else {
            kinds.push(name.parse().map_err(anyhow::Error::msg)?);
        }
    }
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        bail!("--nemesis needs at least one nemesis (or `all`)");
    }
    Ok(kinds)
}

/// The processes and network of a run. Field order is drop order: brokers
/// stop (and their disks unmount) before etcd, and the namespaces go last.
pub struct Cluster {
    pub brokers: Vec<Broker>,
    pub etcd: Vec<Daemon>,
    pub topology: Topology,
}

impl Cluster {
    fn broker_index(&self, id: i32) -> Result<usize> {
        self.brokers
            .iter()
            .position(|b| b.id == id)
            .with_context(|| format!("no broker {id}"))
    }

    /// Every etcd and broker node except `name`.
    fn everyone_but(&self, name: &str) -> Vec<String> {
        self.topology
            .etcd
            .iter()
            .chain(&self.topology.brokers)
            .map(|n| n.name.clone())
            .filter(|n| n != name)
            .collect()
    }
}

/// How to undo one fault. Undone in this order (see [`heal_all`]): space
/// and network first, so that what restarts finds a working cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Undo {
    FreeDisk(usize),
    Heal,
    Resume(usize),
    RestartEtcd(Vec<usize>),
    RestartBroker(usize),
}

/// A fault in force: what it was, on whom, and how to undo it.
#[derive(Debug)]
pub struct Active {
    pub kind: Kind,
    pub detail: String,
    pub undo: Undo,
}

/// Start `kind` on the cluster as `metadata` describes it.
pub fn start(
    kind: Kind,
    cluster: &mut Cluster,
    metadata: Option<&MetadataResponse>,
    rng: &mut impl Rng,
) -> Result<Active> {
    let live_brokers: Vec<usize> = (0..cluster.brokers.len())
        .filter(|&i| {
            cluster.brokers[i].daemon.is_running() && !cluster.brokers[i].daemon.is_paused()
        })
        .collect();
    let any_broker = |rng: &mut dyn rand::RngCore| -> Result<usize> {
        live_brokers
            .choose(rng)
            .copied()
            .context("no broker is running")
    };
    // A partition's leader (or a follower), from the last metadata seen;
    // any live broker when there is none.
    let pick_replica = |rng: &mut dyn rand::RngCore, leader: bool| -> Option<i32> {
        let partitions = &metadata?.topics.first()?.partitions;
        let p = partitions.choose(rng)?;
        if leader {
            (p.leader >= 0).then_some(p.leader)
        } else {
            p.replicas
                .iter()
                .copied()
                .filter(|&r| r != p.leader)
                .collect::<Vec<_>>()
                .choose(rng)
                .copied()
        }
    };
    let isolate = |cluster: &mut Cluster, index: usize, kind: Kind, role: &str| -> Result<Active> {
        let name = cluster.brokers[index].node.name.clone();
        let others = cluster.everyone_but(&name);
        cluster
            .topology
            .split(std::slice::from_ref(&name), &others)?;
        Ok(Active {
            kind,
            detail: format!(
                "{role} broker {} cut off from etcd and the other brokers ({})",
                cluster.brokers[index].id,
                others.join(",")
            ),
            undo: Undo::Heal,
        })
    };
    match kind {
        Kind::PartitionLeader | Kind::PauseLeader | Kind::PartitionFollower => {
            let id = pick_replica(rng, kind != Kind::PartitionFollower);
            let index = match id {
                Some(id) => cluster.broker_index(id)?,
                None => any_broker(rng)?,
            };
            match kind {
                Kind::PauseLeader => {
                    let broker = &mut cluster.brokers[index];
                    broker.daemon.pause()?;
                    Ok(Active {
                        kind,
                        detail: format!("leader broker {} paused (SIGSTOP)", broker.id),
                        undo: Undo::Resume(index),
                    })
                }
                Kind::PartitionLeader => isolate(cluster, index, kind, "leader"),
                _ => isolate(cluster, index, kind, "follower"),
            }
        }
        Kind::PartitionController => {
            let index = match metadata.map(|m| m.controller_id).filter(|&c| c > 0) {
                Some(id) => cluster.broker_index(id)?,
                None => any_broker(rng)?,
            };
            isolate(cluster, index, kind, "controller")
        }
        Kind::MajorityMinority => {
            let broker = cluster.topology.brokers.choose(rng).context("no brokers")?;
            let member = cluster.topology.etcd.choose(rng).context("no etcd")?;
            let minority = vec![broker.name.clone(), member.name.clone()];
            let majority: Vec<String> = cluster
                .everyone_but("")
                .into_iter()
                .filter(|n| !minority.contains(n))
                .collect();
            cluster.topology.split(&minority, &majority)?;
            Ok(Active {
                kind,
                detail: format!("{} | {}", minority.join(","), majority.join(",")),
                undo: Undo::Heal,
            })
        }
        Kind::KillBroker => {
            let index = any_broker(rng)?;
            cluster.brokers[index].daemon.kill9()?;
            Ok(Active {
                kind,
                detail: format!("broker {} killed (SIGKILL)", cluster.brokers[index].id),
                undo: Undo::RestartBroker(index),
            })
        }
        Kind::KillEtcd | Kind::EtcdQuorumLoss => {
            let mut running: Vec<usize> = (0..cluster.etcd.len())
                .filter(|&i| cluster.etcd[i].is_running())
                .collect();
            let count = if kind == Kind::KillEtcd { 1 } else { 2 };
            if running.len() < count {
                bail!("only {} etcd members are running", running.len());
            }
            let mut victims = Vec::new();
            for _ in 0..count {
                let at = rng.random_range(0..running.len());
                victims.push(running.swap_remove(at));
            }
            victims.sort();
            for &v in &victims {
                cluster.etcd[v].kill9()?;
            }
            Ok(Active {
                kind,
                detail: format!(
                    "etcd {} killed (SIGKILL)",
                    victims
                        .iter()
                        .map(|&v| cluster.etcd[v].name.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                undo: Undo::RestartEtcd(victims),
            })
        }
        Kind::TornWrite => {
            let index = any_broker(rng)?;
            let broker = &mut cluster.brokers[index];
            broker.daemon.kill9()?;
            let torn = tear_tails(&broker.data_dir(), rng)?;
            Ok(Active {
                kind,
                detail: format!(
                    "broker {} killed (SIGKILL) and its log tails torn: {}",
                    broker.id,
                    torn.join(", ")
                ),
                undo: Undo::RestartBroker(index),
            })
        }
        Kind::DiskFull => {
            let index = any_broker(rng)?;
            let filled = cluster.brokers[index].disk.fill()?;
            Ok(Active {
                kind,
                detail: format!(
                    "broker {}'s disk filled ({} MiB of filler)",
                    cluster.brokers[index].id,
                    filled >> 20
                ),
                undo: Undo::FreeDisk(index),
            })
        }
    }
}

/// Tear the active segment of every partition under `data_dir`: cut a few
/// bytes off its end (a batch written in part) or append junk (a write the
/// crash left half-done after the last whole batch). The broker must cut
/// the torn tail on start and fetch what it lost from the leader.
fn tear_tails(data_dir: &std::path::Path, rng: &mut impl Rng) -> Result<Vec<String>> {
    let mut torn = Vec::new();
    for partition in std::fs::read_dir(data_dir)? {
        let dir = partition?.path();
        if !dir.is_dir() {
            continue;
        }
        let mut logs: Vec<_> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        let Some(active) = logs.last() else { continue };
        let len = std::fs::metadata(active)?.len();
        let file = std::fs::OpenOptions::new().append(true).open(active)?;
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        if len > 0 && rng.random_bool(0.5) {
            let cut = rng.random_range(1..=len.min(200));
            file.set_len(len - cut)?;
            torn.push(format!("{name} -{cut} B"));
        } else {
            let junk: Vec<u8> = (0..rng.random_range(1..200))
                .map(|_| rng.random())
                .collect();
            std::io::Write::write_all(&mut &file, &junk)?;
            torn.push(format!("{name} +{} B junk", junk.len()));
        }
    }
    Ok(torn)
}

/// Undo every fault in `active`, space and network first, restarts last.
/// A process that does not come back is left for the caller to report
/// (`Daemon::needs_start`): that is a finding, not a harness failure.
pub fn heal_all(cluster: &mut Cluster, active: &mut Vec<Active>) -> Result<()> {
    active.sort_by(|a, b| a.undo.cmp(&b.undo));
    for fault in active.drain(..) {
        match &fault.undo {
            Undo::FreeDisk(i) => cluster.brokers[*i].disk.free()?,
            Undo::Heal => cluster.topology.heal()?,
            Undo::Resume(i) => cluster.brokers[*i].daemon.resume()?,
            Undo::RestartEtcd(members) => {
                for &m in members {
                    if let Err(e) = cluster.etcd[m].start() {
                        eprintln!("chaos: {e:#}");
                    }
                }
            }
            Undo::RestartBroker(i) => {
                if let Err(e) = cluster.brokers[*i].daemon.start() {
                    eprintln!("chaos: restarting broker {}: {e:#}", cluster.brokers[*i].id);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nemesis_names_round_trip_and_all_expands() {
        for kind in Kind::ALL {
            assert_eq!(kind.name().parse::<Kind>(), Ok(kind));
        }
        assert_eq!(parse_list("all").unwrap(), Kind::ALL.to_vec());
        assert_eq!(
            parse_list("kill-broker, disk-full,kill-broker").unwrap(),
            vec![Kind::KillBroker, Kind::DiskFull]
        );
        let err = parse_list("kill-everything").unwrap_err().to_string();
        assert!(
            err.contains("unknown nemesis") && err.contains("disk-full"),
            "{err}"
        );
        assert!(parse_list(" , ").is_err());
    }

    #[test]
    fn two_network_faults_never_combine() {
        assert!(!Kind::PartitionLeader.combines_with(Kind::MajorityMinority));
        assert!(!Kind::KillEtcd.combines_with(Kind::EtcdQuorumLoss));
        assert!(!Kind::DiskFull.combines_with(Kind::DiskFull));
        assert!(Kind::PartitionLeader.combines_with(Kind::PauseLeader));
        assert!(Kind::DiskFull.combines_with(Kind::KillEtcd));
    }

    #[test]
    fn undo_frees_space_and_heals_before_restarting() {
        let mut undos = vec![
            Undo::RestartBroker(0),
            Undo::RestartEtcd(vec![1]),
            Undo::Heal,
            Undo::Resume(2),
            Undo::FreeDisk(1),
        ];
        undos.sort();
        assert_eq!(
            undos,
            vec![
                Undo::FreeDisk(1),
                Undo::Heal,
                Undo::Resume(2),
                Undo::RestartEtcd(vec![1]),
                Undo::RestartBroker(0),
            ]
        );
    }
}
