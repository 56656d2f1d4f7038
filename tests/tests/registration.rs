//! Broker registration under a lease (`meta::registration`), proven the same
//! on both stores: every property below runs against the embedded redb store
//! (`embedded::…`) and against `EtcdStore` on a real etcd (`etcd::…`). Then
//! the etcd-only property: etcd down for longer than the TTL.
//!
//! TTLs are 1 s; etcd raises that to its 2 s minimum, so waits allow for
//! [`MAX_TTL`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use runnel_broker::meta::embedded::EmbeddedStore;
use runnel_broker::meta::etcd::EtcdStore;
use runnel_broker::meta::keys::Keys;
use runnel_broker::meta::records::{BrokerRecord, VERSION};
use runnel_broker::meta::registration::{Registration, live_brokers};
use runnel_broker::meta::{LeaseId, MetadataStore};
use runnel_tests::etcd::EtcdProcess;

const TTL: Duration = Duration::from_secs(1);
/// The TTL either store really grants for [`TTL`] (etcd's minimum is 2 s).
const MAX_TTL: Duration = Duration::from_secs(2);
/// How long a lease may outlive its TTL before the store deletes its keys
/// (etcd checks every 500 ms), plus slack for a busy machine.
const EXPIRY_SLACK: Duration = Duration::from_secs(3);

fn keys() -> Keys {
    Keys::new("test")
}

fn broker(id: i32, host: &str, port: u16) -> BrokerRecord {
    BrokerRecord {
        version: VERSION,
        broker_id: id,
        host: host.to_owned(),
        port,
        rack: None,
        http_port: Some(port + 1),
        kafka: None,
    }
}

async fn live_ids(store: &dyn MetadataStore) -> Result<Vec<i32>> {
    Ok(live_brokers(store, &keys())
        .await?
        .into_iter()
        .map(|b| b.broker_id)
        .collect())
}

/// Poll `check` until it holds, failing after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await.unwrap_or(false) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ------------------------------------------------------------ the suite

/// A registered broker is listed (sorted by id) with exactly its record,
/// under the lease the registration holds.
async fn register_lists(store: Arc<dyn MetadataStore>) -> Result<()> {
    let b2 = Registration::register(store.clone(), keys(), broker(2, "b2", 9092), TTL).await?;
    let b0 = Registration::register(store.clone(), keys(), broker(0, "b0", 9192), TTL).await?;
    assert!(b0.is_registered() && b2.is_registered());
    assert_eq!(
        live_brokers(store.as_ref(), &keys()).await?,
        [broker(0, "b0", 9192), broker(2, "b2", 9092)]
    );
    let kv = store.get(&keys().broker(2)).await?.context("brokers/2")?;
    assert_eq!(kv.lease, Some(b2.lease()));
    // Another cluster's brokers are not listed.
    assert!(
        live_brokers(store.as_ref(), &Keys::new("other"))
            .await?
            .is_empty()
    );
    Ok(())
}

/// A second broker with the same id is refused with an error naming the
/// holder, and writes nothing: the first stays registered, unchanged.
async fn duplicate_id_refused(store: Arc<dyn MetadataStore>) -> Result<()> {
    let first =
        Registration::register(store.clone(), keys(), broker(1, "first", 9092), TTL).await?;
    let before = store.get(&keys().broker(1)).await?.context("brokers/1")?;

    let err = Registration::register(store.clone(), keys(), broker(1, "second", 9093), TTL)
        .await
        .expect_err("id 1 is taken");
    match &err {
        runnel_broker::Error::BrokerIdInUse {
            broker_id: 1,
            host,
            port: 9092,
        } if host == "first" => {}
        other => bail!("expected BrokerIdInUse naming first:9092, got {other:?}"),
    }
    let message = err.to_string();
    ensure!(
        message.contains("broker id 1 is already registered by first:9092"),
        "{message}"
    );

    assert_eq!(store.get(&keys().broker(1)).await?, Some(before));
    assert!(first.is_registered());
    assert_eq!(
        live_brokers(store.as_ref(), &keys()).await?,
        [broker(1, "first", 9092)]
    );
    Ok(())
}

/// Clean shutdown: the broker is gone at once, and its id is free again.
async fn deregister_removes_at_once(store: Arc<dyn MetadataStore>) -> Result<()> {
    let reg = Registration::register(store.clone(), keys(), broker(3, "b3", 9092), TTL).await?;
    let lease = reg.lease();
    reg.deregister().await?;
    assert!(live_ids(store.as_ref()).await?.is_empty());
    // The lease is revoked, not just detached.
    ensure!(store.keep_alive(lease).await.is_err());
    let again = Registration::register(store.clone(), keys(), broker(3, "b3", 9092), TTL).await?;
    assert_eq!(live_ids(store.as_ref()).await?, [3]);
    again.deregister().await?;
    Ok(())
}

/// Dropping without deregistering is a crash: the entry stays until the TTL
/// runs out, then the store deletes it.
async fn drop_expires_after_ttl(store: Arc<dyn MetadataStore>) -> Result<()> {
    let reg = Registration::register(store.clone(), keys(), broker(4, "b4", 9092), TTL).await?;
    drop(reg);
    let dropped = Instant::now();
    assert_eq!(
        live_ids(store.as_ref()).await?,
        [4],
        "still there right after the drop"
    );
    eventually(MAX_TTL + EXPIRY_SLACK, "brokers/4 expires", || async {
        Ok(live_ids(store.as_ref()).await?.is_empty())
    })
    .await?;
    // Not before the TTL (minus rounding of when the last keep-alive went out).
    ensure!(
        dropped.elapsed() >= TTL / 2,
        "gone after {:?}",
        dropped.elapsed()
    );
    Ok(())
}

/// Keep-alives hold the registration, under the same lease, for several TTLs.
async fn keep_alive_holds(store: Arc<dyn MetadataStore>) -> Result<()> {
    let reg = Registration::register(store.clone(), keys(), broker(5, "b5", 9092), TTL).await?;
    let lease = reg.lease();
    let until = Instant::now() + 3 * MAX_TTL;
    while Instant::now() < until {
        assert!(reg.is_registered());
        assert_eq!(live_ids(store.as_ref()).await?, [5]);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(reg.lease(), lease);
    reg.deregister().await?;
    Ok(())
}

/// A lease lost behind the registration's back (here: revoked by someone
/// else, as if it had expired) is noticed and the broker registers again by
/// itself, under a new lease.
async fn lost_lease_reregisters(store: Arc<dyn MetadataStore>) -> Result<()> {
    let reg = Registration::register(store.clone(), keys(), broker(6, "b6", 9092), TTL).await?;
    let lost = reg.lease();
    store.revoke_lease(lost).await?;
    assert!(live_ids(store.as_ref()).await?.is_empty());
    eventually(MAX_TTL + EXPIRY_SLACK, "brokers/6 back", || async {
        let kv = store.get(&keys().broker(6)).await?;
        Ok(reg.is_registered() && kv.is_some_and(|kv| kv.lease == Some(reg.lease())))
    })
    .await?;
    assert_ne!(reg.lease(), lost);
    assert_eq!(
        live_brokers(store.as_ref(), &keys()).await?,
        [broker(6, "b6", 9092)]
    );
    let current: LeaseId = reg.lease();
    reg.deregister().await?;
    assert!(live_ids(store.as_ref()).await?.is_empty());
    ensure!(store.keep_alive(current).await.is_err());
    Ok(())
}

/// Run each property against a fresh embedded store and a fresh etcd.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() -> Result<()> {
                    let dir = tempfile::tempdir()?;
                    let store = EmbeddedStore::open(dir.path())?;
                    super::$name(Arc::new(store)).await
                }
            )*
        }
        mod etcd {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() -> Result<()> {
                    let etcd = EtcdProcess::start()?;
                    let store = EtcdStore::connect(&[etcd.endpoint()], Duration::from_secs(5)).await?;
                    super::$name(Arc::new(store)).await
                }
            )*
        }
    };
}

both_stores!(
    register_lists,
    duplicate_id_refused,
    deregister_removes_at_once,
    drop_expires_after_ttl,
    keep_alive_holds,
    lost_lease_reregisters,
);

// ------------------------------------------------------------ etcd only

/// etcd down for longer than the TTL: the registration knows its lease is
/// lost; once etcd is back it is registered again by itself. (A restarted
/// etcd renews every lease for a full TTL when it becomes leader, so the
/// broker usually comes back under its old lease via keep-alive; the
/// new-lease path is `lost_lease_reregisters`.)
#[tokio::test]
async fn etcd_outage_longer_than_ttl_recovers() -> Result<()> {
    let mut etcd = EtcdProcess::start()?;
    let store: Arc<dyn MetadataStore> = Arc::new(
        EtcdStore::connect(&[etcd.endpoint()], Duration::from_secs(5))
            .await?
            .with_request_timeout(Duration::from_secs(1)),
    );
    let reg = Registration::register(store.clone(), keys(), broker(7, "b7", 9092), TTL).await?;

    etcd.stop()?;
    eventually(MAX_TTL + EXPIRY_SLACK, "lease known lost", || async {
        Ok(!reg.is_registered())
    })
    .await?;

    etcd.restart()?;
    eventually(Duration::from_secs(15), "brokers/7 back", || async {
        let kv = store.get(&keys().broker(7)).await?;
        Ok(reg.is_registered() && kv.is_some_and(|kv| kv.lease == Some(reg.lease())))
    })
    .await?;
    assert_eq!(
        live_brokers(store.as_ref(), &keys()).await?,
        [broker(7, "b7", 9092)]
    );
    // And it stays: the lease it holds now is kept alive.
    tokio::time::sleep(MAX_TTL + Duration::from_millis(500)).await;
    assert_eq!(live_ids(store.as_ref()).await?, [7]);
    assert!(reg.is_registered());
    reg.deregister().await?;
    assert!(live_ids(store.as_ref()).await?.is_empty());
    Ok(())
}
