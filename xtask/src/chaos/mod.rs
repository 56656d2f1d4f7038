//! `cargo xtask chaos`: a fault suite in the style of Jepsen. Real brokers
//! and a real 3-member etcd cluster, each in its own network namespace
//! (`topology`), under a workload that records every operation
//! (`workload`, `history`) while nemeses partition, pause, kill and starve
//! them (`nemesis`, `disk`); once the faults heal, every partition is read
//! back, the brokers stop, their replicas are read from disk (`replicas`),
//! and the checker (`checker`) looks for lost, duplicated, reordered or
//! invented records, offsets that go backwards and diverging replicas.
//! docs/testing.md says how to run it and what it has found.

pub mod checker;
mod disk;
pub mod history;
mod kafka_workload;
mod nemesis;
mod processes;
mod replicas;
mod topology;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use runnel_client::{Admin, MetadataResponse};

use history::{NemesisAction, Op, Recorder};
use nemesis::{Active, Cluster, Kind};
use topology::Topology;
use workload::{Shared, TOPIC};

/// What `cargo xtask chaos` was asked for.
pub struct Options {
    /// How long faults are injected, in seconds.
    pub time_limit: u64,
    pub nemeses: Vec<Kind>,
    pub out: PathBuf,
    pub seed: Option<u64>,
    pub broker_bin: PathBuf,
}

const PARTITIONS: u32 = 4;
const REPLICATION_FACTOR: u32 = 3;
/// Values a second per producer.
const PRODUCE_RATE: u32 = 150;
/// Each broker's disk (a tmpfs): room for the run, small enough to fill in
/// a moment.
const DISK_BYTES: u64 = 256 << 20;
/// How long a fault is held: longer than a broker's 1 s session, so leases
/// expire and leaders move, and short enough for several faults a minute.
const HOLD: std::ops::Range<u64> = 2_000..7_000;
/// Quiet time between faults, for the cluster to settle and clients to
/// make progress.
const QUIET: std::ops::Range<u64> = 2_000..4_000;
/// After the last fault: time for clients to show the cluster works again.
const RECOVERY: Duration = Duration::from_secs(10);
/// Longest wait for every replica to be back in sync after the faults.
const RESYNC_TIMEOUT: Duration = Duration::from_secs(90);

/// Set by Ctrl-C: finish the current fault, heal, check, clean up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Run the suite; fails when the checker found an anomaly.
pub fn run(options: Options) -> Result<()> {
    std::fs::create_dir_all(&options.out)?;
    let out = std::fs::canonicalize(&options.out)?;
    let seed = options.seed.unwrap_or_else(rand::random);
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    clients_log(&out.join("clients.log"))?;
    let history_path = out.join("history.jsonl");
    let history = Recorder::create(&history_path)?;
    history.record(
        "harness",
        Op::Info {
            message: format!(
                "seed {seed}, {} s of faults, nemeses {}",
                options.time_limit,
                options
                    .nemeses
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        },
    );
    println!("chaos: seed {seed}; history in {}", history_path.display());

    let topology = Topology::create(3, 3)?;
    topology.enter_client()?;
    let work = out.join("cluster");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let mut etcd = processes::etcd_members(&topology.etcd, &work)?;
    for member in &mut etcd {
        member.start()?;
    }
    processes::wait_etcd_healthy(topology.etcd[0].ip, Duration::from_secs(30))?;
    let mut brokers = processes::brokers(
        &topology.brokers,
        &topology.etcd,
        &work,
        &options.broker_bin,
        DISK_BYTES,
    )?;
    for broker in &mut brokers {
        broker.daemon.start()?;
    }
    let bootstrap = brokers
        .iter()
        .map(|b| b.address())
        .collect::<Vec<_>>()
        .join(",");
    let data_dirs: Vec<(i32, PathBuf)> = brokers.iter().map(|b| (b.id, b.data_dir())).collect();
    let cluster = Arc::new(Mutex::new(Cluster {
        brokers,
        etcd,
        topology,
    }));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let shared = Shared {
        bootstrap,
        partitions: PARTITIONS,
        history: history.clone(),
        stop_producing: Arc::new(AtomicBool::new(false)),
        stop_consuming: Arc::new(AtomicBool::new(false)),
    };
    let stops = [shared.stop_producing.clone(), shared.stop_consuming.clone()];
    let outcome = runtime.block_on(drive(&options, seed, cluster.clone(), shared));
    if let Err(e) = &outcome {
        // Say what went wrong now: tearing down can take a while.
        eprintln!("chaos: the run failed: {e:#}");
        for stop in &stops {
            stop.store(true, Ordering::SeqCst);
        }
    }

    // Stop every broker cleanly (so nothing writes while its data is
    // read), then read each replica from disk.
    {
        let mut cluster = cluster.lock().expect("cluster lock");
        for broker in &mut cluster.brokers {
            broker.daemon.stop(Duration::from_secs(20))?;
        }
    }
    // Keep each broker's data past the unmount of its disk, to look into
    // whatever the checker finds (the logs: a few MB a minute of run).
    for (id, dir) in &data_dirs {
        let kept = work.join(format!("b{id}-data"));
        if let Err(e) = copy_dir(dir, &kept) {
            eprintln!(
                "chaos: keeping broker {id}'s data in {}: {e:#}",
                kept.display()
            );
        }
    }
    if outcome.is_ok() {
        for (id, dir) in &data_dirs {
            for partition in 0..PARTITIONS {
                let (batches, writers) = replicas::batches(dir, TOPIC, partition)?;
                if !batches.is_empty() {
                    history.record(
                        "harness",
                        Op::ReplicaBatches {
                            broker: *id,
                            partition,
                            batches,
                            writers,
                        },
                    );
                }
            }
        }
    }
    let cluster_logs = work.clone();
    drop(cluster);
    // Client tasks blocked in librdkafka calls do not end on their own.
    runtime.shutdown_timeout(Duration::from_secs(10));
    outcome?;

    let entries = history::load(&history_path)?;
    let report = checker::check(&entries);
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("{}", checker::render(&report, &entries));
    println!(
        "chaos: history {}, summary {}, process logs in {}",
        history_path.display(),
        out.join("summary.json").display(),
        cluster_logs.display()
    );
    if !report.anomalies.is_empty() {
        bail!(
            "{} anomalies found (seed {seed}); see {}",
            report.anomalies.len(),
            out.join("summary.json").display()
        );
    }
    Ok(())
}

/// Create the topic, run the workload under the nemeses, heal, let the
/// cluster recover, and read everything back.
async fn drive(
    options: &Options,
    seed: u64,
    cluster: Arc<Mutex<Cluster>>,
    shared: Shared,
) -> Result<()> {
    let admin = Admin::connect(shared.client_config("chaos-admin")?).await?;
    admin
        .create_topic(
            TOPIC,
            PARTITIONS,
            REPLICATION_FACTOR,
            &[("min.insync.replicas", "2")],
        )
        .await
        .context("creating the chaos topic")?;
    wait_in_sync(&admin, Duration::from_secs(30)).await?;

    // Two producers and two group consumers over gRPC, one producer and two
    // group consumers over the Kafka protocol (librdkafka).
    let mut clients = tokio::task::JoinSet::new();
    clients.spawn(kafka_workload::producer(
        "kafka-p0".into(),
        shared.clone(),
        PRODUCE_RATE,
    ));
    for i in 0..2 {
        clients.spawn(kafka_workload::consumer(
            format!("kafka-c{i}"),
            "chaos-kafka".into(),
            shared.clone(),
        ));
    }
    for i in 0..2 {
        clients.spawn(workload::grpc_producer(
            format!("grpc-p{i}"),
            shared.clone(),
            PRODUCE_RATE,
        ));
        clients.spawn(workload::grpc_consumer(
            format!("grpc-c{i}"),
            "chaos-grpc".into(),
            shared.clone(),
        ));
    }

    let mut rng = StdRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(options.time_limit);
    // Every nemesis runs once alone first (a short run still covers them
    // all), then random ones, sometimes two at once.
    let mut queue: Vec<Kind> = options.nemeses.clone();
    queue.reverse();
    let mut active: Vec<Active> = Vec::new();
    let mut metadata: Option<MetadataResponse> = None;
    while Instant::now() < deadline && !INTERRUPTED.load(Ordering::SeqCst) {
        if let Ok(m) = tokio::time::timeout(Duration::from_secs(3), admin.metadata(&[TOPIC])).await
        {
            metadata = m.ok().or(metadata);
        }
        let mut kinds = vec![match queue.pop() {
            Some(k) => k,
            None => *options.nemeses.choose(&mut rng).expect("nemeses"),
        }];
        if queue.is_empty() && rng.random_bool(0.35) {
            let first = kinds[0];
            let partners: Vec<Kind> = options
                .nemeses
                .iter()
                .copied()
                .filter(|k| k.combines_with(first))
                .collect();
            kinds.extend(partners.choose(&mut rng));
        }
        for kind in kinds {
            let started = {
                let mut c = cluster.lock().expect("cluster lock");
                tokio::task::block_in_place(|| {
                    nemesis::start(kind, &mut c, metadata.as_ref(), &mut rng)
                })
            };
            match started {
                Ok(fault) => {
                    shared.history.record(
                        "nemesis",
                        Op::Nemesis {
                            name: kind.name().into(),
                            action: NemesisAction::Start,
                            detail: fault.detail.clone(),
                        },
                    );
                    println!(
                        "chaos: {:>6} ms  start {kind}: {}",
                        shared.history.now(),
                        fault.detail
                    );
                    active.push(fault);
                }
                Err(e) => shared.history.record(
                    "nemesis",
                    Op::Info {
                        message: format!("{kind} could not start: {e:#}"),
                    },
                ),
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(HOLD))).await;
        heal(&cluster, &mut active, &shared.history)?;
        restart_crashed(&cluster, &shared.history)?;
        tokio::time::sleep(Duration::from_millis(rng.random_range(QUIET))).await;
    }

    // The faults are over: the cluster must work again by itself.
    tokio::time::sleep(RECOVERY).await;
    restart_crashed(&cluster, &shared.history)?;
    shared.stop_producing.store(true, Ordering::SeqCst);
    let resynced = wait_in_sync(&admin, RESYNC_TIMEOUT).await;
    if let Err(e) = &resynced {
        shared.history.record(
            "harness",
            Op::Info {
                message: format!("replicas did not resynchronise: {e:#}"),
            },
        );
    }
    // Let consumers read to the end before they stop.
    tokio::time::sleep(Duration::from_secs(5)).await;
    shared.stop_consuming.store(true, Ordering::SeqCst);
    while let Some(done) = clients.join_next().await {
        if let Err(e) = done? {
            shared.history.record(
                "harness",
                Op::Info {
                    message: format!("a client failed: {e:#}"),
                },
            );
        }
    }
    resynced?;
    workload::final_read(&shared).await
}

/// Undo every active fault, recording each.
fn heal(cluster: &Mutex<Cluster>, active: &mut Vec<Active>, history: &Recorder) -> Result<()> {
    let faults: Vec<(Kind, String)> = active.iter().map(|a| (a.kind, a.detail.clone())).collect();
    {
        let mut c = cluster.lock().expect("cluster lock");
        tokio::task::block_in_place(|| nemesis::heal_all(&mut c, active))?;
    }
    for (kind, detail) in faults {
        history.record(
            "nemesis",
            Op::Nemesis {
                name: kind.name().into(),
                action: NemesisAction::Stop,
                detail,
            },
        );
        println!("chaos: {:>6} ms  healed {kind}", history.now());
    }
    Ok(())
}

/// Record every process that died by itself, or did not come back when its
/// fault healed (both anomalies), and start it again, so the run goes on.
fn restart_crashed(cluster: &Mutex<Cluster>, history: &Recorder) -> Result<()> {
    let mut c = cluster.lock().expect("cluster lock");
    let c = &mut *c;
    let daemons = c
        .brokers
        .iter_mut()
        .map(|b| &mut b.daemon)
        .chain(c.etcd.iter_mut());
    for daemon in daemons {
        let status = match daemon.exited() {
            Some(status) => status,
            None if daemon.needs_start() => "it did not start again when its fault healed".into(),
            None => continue,
        };
        println!(
            "chaos: {} is down by itself ({status}); starting it",
            daemon.name
        );
        history.record(
            "harness",
            Op::ProcessExited {
                name: daemon.name.clone(),
                status,
            },
        );
        if let Err(e) = tokio::task::block_in_place(|| daemon.start()) {
            println!("chaos: {e:#}");
        }
    }
    Ok(())
}

/// Wait until every partition has a leader and all its replicas in sync.
async fn wait_in_sync(admin: &Admin, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(Ok(m)) =
            tokio::time::timeout(Duration::from_secs(5), admin.metadata(&[TOPIC])).await
        {
            let partitions = m
                .topics
                .first()
                .map(|t| t.partitions.as_slice())
                .unwrap_or(&[]);
            let lagging: Vec<String> = partitions
                .iter()
                .filter(|p| p.leader < 0 || p.isr.len() < p.replicas.len())
                .map(|p| format!("{}: leader {} isr {:?}", p.partition, p.leader, p.isr))
                .collect();
            if partitions.len() == PARTITIONS as usize && lagging.is_empty() {
                return Ok(());
            }
            last = lagging.join("; ");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("partitions still out of sync after {timeout:?}: {last}")
}

/// The workload clients' log (runnel-client's tracing: retries, errors),
/// filtered by `RUNNEL_CHAOS_LOG` (default `warn,runnel_client=info`).
fn clients_log(path: &std::path::Path) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNNEL_CHAOS_LOG")
        .unwrap_or_else(|_| "warn,runnel_client=info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .init();
    Ok(())
}

/// Copy the tree at `from` to `to`, but for the offset and time indexes:
/// preallocated, mostly empty, and rebuilt from the `.log` by any broker.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let path = entry.path();
        if path
            .extension()
            .is_some_and(|x| x == "index" || x == "timeindex")
        {
            continue;
        }
        if entry.file_type()?.is_dir() {
            copy_dir(&path, &target)?;
        } else {
            std::fs::copy(&path, &target)?;
        }
    }
    Ok(())
}

/// `--nemesis`'s list.
pub fn parse_nemeses(list: &str) -> Result<Vec<Kind>> {
    nemesis::parse_list(list)
}

/// `cargo xtask chaos-check DIR`: the checker over an existing history.
pub fn check_again(dir: &std::path::Path) -> Result<()> {
    let entries = history::load(&dir.join("history.jsonl"))?;
    let report = checker::check(&entries);
    println!("{}", checker::render(&report, &entries));
    if !report.anomalies.is_empty() {
        bail!("{} anomalies found", report.anomalies.len());
    }
    Ok(())
}
