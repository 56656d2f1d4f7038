//! `MetadataStore` semantics, proven the same on both implementations: every
//! property below runs against the embedded redb store (`embedded::…`) and
//! against `EtcdStore` on a real etcd process (`etcd::…`). Then come the
//! etcd-only properties: restarts and unreachable endpoints.
//!
//! Revisions are checked relative to the store's revision at the start: a
//! fresh etcd is at revision 1, a fresh embedded store at 0.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use runnel_broker::meta::embedded::EmbeddedStore;
use runnel_broker::meta::etcd::EtcdStore;
use runnel_broker::meta::{Compare, LeaseId, MetadataStore, Op, Watch, WatchEvent};
use runnel_tests::etcd::EtcdProcess;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a watch may take to deliver an event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

async fn connect(etcd: &EtcdProcess) -> Result<EtcdStore> {
    Ok(EtcdStore::connect(&[etcd.endpoint()], CONNECT_TIMEOUT).await?)
}

/// The store's current revision (an empty transaction writes nothing).
async fn revision(store: &dyn MetadataStore) -> Result<i64> {
    Ok(store.txn(vec![], vec![]).await?.revision)
}

async fn value(store: &dyn MetadataStore, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(store.get(key).await?.map(|kv| kv.value))
}

async fn next_event(watch: &mut Watch) -> Result<WatchEvent> {
    Ok(tokio::time::timeout(EVENT_TIMEOUT, watch.next())
        .await
        .context("no watch event")??)
}

fn put(key: &str, value: &[u8]) -> Op {
    Op::Put(key.to_owned(), value.to_vec())
}

fn mod_rev(key: &str, revision: i64) -> Compare {
    Compare::ModRevision(key.to_owned(), revision)
}

fn put_leased(key: &str, value: &[u8], lease: LeaseId) -> Op {
    Op::PutWithLease(key.to_owned(), value.to_vec(), lease)
}

/// `result` failed with `LeaseExpired` naming `lease`.
fn assert_lease_expired<T: std::fmt::Debug>(
    result: runnel_broker::Result<T>,
    lease: LeaseId,
) -> Result<()> {
    match result {
        Err(runnel_broker::Error::LeaseExpired { lease: l }) if l == lease.get() => Ok(()),
        other => bail!("expected LeaseExpired for lease {lease}, got {other:?}"),
    }
}

// ------------------------------------------------------------ the suite

/// Every write transaction bumps the store revision by one; keys remember
/// their create and mod revision; all ops of a transaction share one revision.
async fn revisions(store: &dyn MetadataStore) -> Result<()> {
    let r0 = revision(store).await?;
    assert_eq!(store.get("/a/x").await?, None);
    let r1 = store.put("/a/x", b"1".to_vec()).await?;
    assert_eq!(r1, r0 + 1);
    let kv = store.get("/a/x").await?.context("/a/x")?;
    assert_eq!(
        (
            kv.key.as_str(),
            kv.value.as_slice(),
            kv.create_revision,
            kv.mod_revision
        ),
        ("/a/x", &b"1"[..], r1, r1)
    );
    let r2 = store.put("/a/x", b"2".to_vec()).await?;
    assert_eq!(r2, r1 + 1);
    let kv = store.get("/a/x").await?.context("/a/x")?;
    assert_eq!((kv.create_revision, kv.mod_revision), (r1, r2));

    let both = store
        .txn(vec![], vec![put("/a/x", b"3"), put("/a/y", b"4")])
        .await?;
    assert!(both.succeeded);
    assert_eq!(both.revision, r2 + 1);
    let x = store.get("/a/x").await?.context("/a/x")?;
    let y = store.get("/a/y").await?.context("/a/y")?;
    assert_eq!((x.create_revision, x.mod_revision), (r1, both.revision));
    assert_eq!(
        (y.create_revision, y.mod_revision),
        (both.revision, both.revision)
    );
    assert_eq!(revision(store).await?, both.revision);
    Ok(())
}

/// CAS with a stale revision fails, writes nothing and leaves the revision.
async fn cas_stale_revision(store: &dyn MetadataStore) -> Result<()> {
    let r1 = store.put("/k", b"1".to_vec()).await?;
    let r2 = store.put("/k", b"2".to_vec()).await?;
    let stale = store
        .txn(
            vec![mod_rev("/k", r1)],
            vec![put("/k", b"3"), put("/other", b"x")],
        )
        .await?;
    assert!(!stale.succeeded);
    assert_eq!(stale.revision, r2);
    assert_eq!(revision(store).await?, r2);
    assert_eq!(value(store, "/k").await?.as_deref(), Some(&b"2"[..]));
    assert_eq!(store.get("/other").await?, None);

    let fresh = store
        .txn(vec![mod_rev("/k", r2)], vec![put("/k", b"3")])
        .await?;
    assert!(fresh.succeeded);
    assert_eq!(fresh.revision, r2 + 1);
    assert_eq!(value(store, "/k").await?.as_deref(), Some(&b"3"[..]));
    Ok(())
}

/// Revision 0 means "absent": create-if-absent succeeds once, then fails; it
/// succeeds again once the key is deleted; and 0 never matches a present key.
async fn cas_absent(store: &dyn MetadataStore) -> Result<()> {
    let create = |v: &'static [u8]| store.txn(vec![mod_rev("/new", 0)], vec![put("/new", v)]);
    let first = create(b"first").await?;
    assert!(first.succeeded);
    let second = create(b"second").await?;
    assert!(!second.succeeded);
    assert_eq!(second.revision, first.revision);
    assert_eq!(value(store, "/new").await?.as_deref(), Some(&b"first"[..]));

    // A present key's real revision matches; 0 does not (checked above).
    let kv = store.get("/new").await?.context("/new")?;
    let deleted = store
        .txn(
            vec![mod_rev("/new", kv.mod_revision)],
            vec![Op::Delete("/new".into())],
        )
        .await?;
    assert!(deleted.succeeded);
    assert_eq!(store.get("/new").await?, None);
    let again = create(b"again").await?;
    assert!(again.succeeded);
    let kv = store.get("/new").await?.context("/new")?;
    assert_eq!(
        (kv.create_revision, kv.mod_revision),
        (again.revision, again.revision)
    );
    Ok(())
}

/// A transaction's compares are all checked and its ops all applied, or none.
async fn txn_atomicity(store: &dyn MetadataStore) -> Result<()> {
    let ra = store.put("/t/a", b"a".to_vec()).await?;
    let rb = store.put("/t/b", b"b".to_vec()).await?;

    // One good compare, one bad one: nothing of the mixed ops happens.
    let refused = store
        .txn(
            vec![mod_rev("/t/a", ra), mod_rev("/t/b", 0)],
            vec![
                put("/t/c", b"c"),
                Op::Delete("/t/a".into()),
                Op::DeletePrefix("/t/b".into()),
            ],
        )
        .await?;
    assert!(!refused.succeeded);
    assert_eq!(refused.revision, rb);
    let keys: Vec<_> = store
        .range("/t/")
        .await?
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, ["/t/a", "/t/b"]);

    let applied = store
        .txn(
            vec![mod_rev("/t/a", ra), mod_rev("/t/b", rb), mod_rev("/t/c", 0)],
            vec![
                put("/t/c", b"c"),
                Op::Delete("/t/a".into()),
                Op::DeletePrefix("/t/b".into()),
            ],
        )
        .await?;
    assert!(applied.succeeded);
    assert_eq!(applied.revision, rb + 1);
    let all = store.range("/t/").await?;
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].key.as_str(), all[0].mod_revision),
        ("/t/c", applied.revision)
    );
    Ok(())
}

/// DeletePrefix removes exactly the keys under the prefix: `/ab` and `/a` are
/// not under `/a/`.
async fn delete_prefix(store: &dyn MetadataStore) -> Result<()> {
    for key in ["/a", "/a/", "/a/x", "/a/y/z", "/ab", "/b"] {
        store.put(key, key.as_bytes().to_vec()).await?;
    }
    let outcome = store
        .txn(vec![], vec![Op::DeletePrefix("/a/".into())])
        .await?;
    assert!(outcome.succeeded);
    assert!(store.range("/a/").await?.is_empty());
    let left: Vec<_> = store
        .range("/")
        .await?
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(left, ["/a", "/ab", "/b"]);
    Ok(())
}

/// `range` returns exactly the keys under the prefix, in byte order.
/// Transactions that change nothing leave the revision alone, and a
/// transaction that writes one key twice is refused whole.
async fn no_op_and_duplicate_key_txns(store: &dyn MetadataStore) -> Result<()> {
    let start = revision(store).await?;
    let outcome = store
        .txn(vec![], vec![Op::Delete("/nop/missing".into())])
        .await?;
    assert!(outcome.succeeded);
    assert_eq!(
        revision(store).await?,
        start,
        "deleting a missing key is not a change"
    );

    for ops in [
        vec![
            Op::Put("/dup/k".into(), b"1".to_vec()),
            Op::Put("/dup/k".into(), b"2".to_vec()),
        ],
        vec![
            Op::Put("/dup/k".into(), b"1".to_vec()),
            Op::Delete("/dup/k".into()),
        ],
        vec![
            Op::DeletePrefix("/dup/".into()),
            Op::Put("/dup/k".into(), b"1".to_vec()),
        ],
    ] {
        let err = store
            .txn(vec![], ops)
            .await
            .expect_err("duplicate key must be refused");
        assert!(err.to_string().contains("duplicate key"), "{err}");
    }
    assert_eq!(
        value(store, "/dup/k").await?,
        None,
        "a refused txn writes nothing"
    );
    assert_eq!(revision(store).await?, start);
    Ok(())
}

async fn range_order(store: &dyn MetadataStore) -> Result<()> {
    for key in ["/r/c", "/r/a/1", "/r0", "/r/b", "/r/a", "/q", "/r/"] {
        store.put(key, key.as_bytes().to_vec()).await?;
    }
    let found = store.range("/r/").await?;
    let keys: Vec<_> = found.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/", "/r/a", "/r/a/1", "/r/b", "/r/c"]);
    for kv in &found {
        assert_eq!(kv.value, kv.key.as_bytes());
    }
    assert!(store.range("/nothing/").await?.is_empty());
    Ok(())
}

/// A watch sees puts and deletes under its prefix, in order, with their
/// revisions, and nothing outside it.
async fn watch(store: &dyn MetadataStore) -> Result<()> {
    let mut watch = store.watch("/w/");
    let r1 = store.put("/w/a", b"1".to_vec()).await?;
    store.put("/x", b"outside".to_vec()).await?;
    store.put("/wz", b"outside".to_vec()).await?;
    let r2 = store
        .txn(vec![], vec![Op::Delete("/w/a".into())])
        .await?
        .revision;
    store.put("/w/b/c", b"2".to_vec()).await?;
    let r3 = store
        .txn(vec![], vec![Op::DeletePrefix("/w/".into())])
        .await?
        .revision;

    match next_event(&mut watch).await? {
        WatchEvent::Put(kv) => assert_eq!(
            (
                kv.key.as_str(),
                kv.value.as_slice(),
                kv.create_revision,
                kv.mod_revision
            ),
            ("/w/a", &b"1"[..], r1, r1)
        ),
        other => bail!("expected put of /w/a, got {other:?}"),
    }
    assert_eq!(
        next_event(&mut watch).await?,
        WatchEvent::Delete {
            key: "/w/a".into(),
            mod_revision: r2
        }
    );
    let event = next_event(&mut watch).await?;
    ensure!(
        matches!(&event, WatchEvent::Put(kv) if kv.key == "/w/b/c"),
        "expected put of /w/b/c, got {event:?}"
    );
    assert_eq!(
        next_event(&mut watch).await?,
        WatchEvent::Delete {
            key: "/w/b/c".into(),
            mod_revision: r3
        }
    );
    // Nothing else is pending: the outside keys were filtered out.
    ensure!(
        tokio::time::timeout(Duration::from_millis(200), watch.next())
            .await
            .is_err(),
        "unexpected extra watch event"
    );
    Ok(())
}

/// A key put with a lease carries it; keep-alives keep it past the TTL; once
/// they stop, the store deletes it within the TTL (etcd checks expiry every
/// 500 ms and raises a 1 s TTL to its 2 s minimum) and watchers see it.
async fn lease_keep_alive_and_expiry(store: &dyn MetadataStore) -> Result<()> {
    let mut watch = store.watch("/reg/");
    let lease = store.grant_lease(Duration::from_secs(1)).await?;
    let put = store
        .txn(vec![], vec![put_leased("/reg/1", b"me", lease)])
        .await?;
    assert!(put.succeeded);
    let kv = store.get("/reg/1").await?.context("/reg/1")?;
    assert_eq!((kv.lease, kv.mod_revision), (Some(lease), put.revision));
    match next_event(&mut watch).await? {
        WatchEvent::Put(kv) => assert_eq!((kv.key.as_str(), kv.lease), ("/reg/1", Some(lease))),
        other => bail!("expected put of /reg/1, got {other:?}"),
    }

    // Keep it alive for longer than its TTL.
    let ttl = store.keep_alive(lease).await?;
    ensure!(ttl >= Duration::from_secs(1), "ttl {ttl:?}");
    let kept_until = Instant::now() + ttl + Duration::from_millis(500);
    while Instant::now() < kept_until {
        tokio::time::sleep(ttl / 4).await;
        assert_eq!(store.keep_alive(lease).await?, ttl);
    }
    assert!(store.get("/reg/1").await?.is_some(), "kept alive");

    // Stop: the key goes within the TTL plus the store's expiry tick.
    let stopped = Instant::now();
    let deadline = stopped + ttl + Duration::from_secs(3);
    while store.get("/reg/1").await?.is_some() {
        ensure!(Instant::now() < deadline, "leased key outlived its lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(stopped.elapsed() >= ttl.saturating_sub(Duration::from_millis(100)));
    match next_event(&mut watch).await? {
        WatchEvent::Delete { key, mod_revision } => {
            assert_eq!(key, "/reg/1");
            ensure!(mod_revision > put.revision);
        }
        other => bail!("expected delete of /reg/1, got {other:?}"),
    }
    assert_lease_expired(store.keep_alive(lease).await, lease)?;
    Ok(())
}

/// Revoking deletes every key attached to the lease at once (watchers see
/// it), not keys detached by a plain put; the lease is then dead for
/// keep-alives and puts, and revoking it again is fine.
async fn lease_revoke(store: &dyn MetadataStore) -> Result<()> {
    let mut watch = store.watch("/reg/");
    let lease = store.grant_lease(Duration::from_secs(60)).await?;
    store
        .txn(
            vec![],
            vec![
                put_leased("/reg/a", b"a", lease),
                put_leased("/reg/b", b"b", lease),
                put_leased("/reg/detached", b"d", lease),
            ],
        )
        .await?;
    // Like etcd: a put without a lease detaches the key from its lease.
    store.put("/reg/detached", b"plain".to_vec()).await?;
    store.put("/reg/plain", b"p".to_vec()).await?;
    assert_eq!(
        store.get("/reg/detached").await?.context("detached")?.lease,
        None
    );
    let before = revision(store).await?;

    store.revoke_lease(lease).await?;
    let left: Vec<_> = store
        .range("/reg/")
        .await?
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(left, ["/reg/detached", "/reg/plain"]);
    assert_eq!(
        revision(store).await?,
        before + 1,
        "one revision for the revoke"
    );

    let mut deleted = Vec::new();
    while deleted.len() < 2 {
        if let WatchEvent::Delete { key, mod_revision } = next_event(&mut watch).await? {
            assert_eq!(mod_revision, before + 1);
            deleted.push(key);
        }
    }
    deleted.sort();
    assert_eq!(deleted, ["/reg/a", "/reg/b"]);

    assert_lease_expired(store.keep_alive(lease).await, lease)?;
    assert_lease_expired(
        store
            .txn(vec![], vec![put_leased("/reg/a", b"again", lease)])
            .await,
        lease,
    )?;
    store.revoke_lease(lease).await?;
    assert_eq!(revision(store).await?, before + 1);
    Ok(())
}

/// A put attached to a lease that does not exist fails the whole transaction:
/// nothing is written. A refused compare is checked first (no error then).
async fn lease_unknown(store: &dyn MetadataStore) -> Result<()> {
    let start = revision(store).await?;
    let unknown = LeaseId(0x5eed_0000_0001);
    assert_lease_expired(
        store
            .txn(
                vec![],
                vec![
                    put("/u/plain", b"p"),
                    put_leased("/u/leased", b"l", unknown),
                ],
            )
            .await,
        unknown,
    )?;
    assert!(
        store.range("/u/").await?.is_empty(),
        "a refused txn writes nothing"
    );
    assert_eq!(revision(store).await?, start);

    let refused = store
        .txn(
            vec![mod_rev("/u/plain", 1)],
            vec![put_leased("/u/leased", b"l", unknown)],
        )
        .await?;
    assert!(!refused.succeeded);
    assert_eq!(refused.revision, start);

    assert_lease_expired(store.keep_alive(unknown).await, unknown)?;
    store.revoke_lease(unknown).await?;
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
                    super::$name(&store).await
                }
            )*
        }
        mod etcd {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() -> Result<()> {
                    let etcd = EtcdProcess::start()?;
                    let store = connect(&etcd).await?;
                    super::$name(&store).await
                }
            )*
        }
    };
}

both_stores!(
    revisions,
    cas_stale_revision,
    cas_absent,
    txn_atomicity,
    delete_prefix,
    range_order,
    no_op_and_duplicate_key_txns,
    watch,
    lease_keep_alive_and_expiry,
    lease_revoke,
    lease_unknown,
);

// ------------------------------------------------------------ etcd only

/// Poll `get` until etcd answers again, with a deadline.
async fn get_when_back(store: &EtcdStore, key: &str) -> Result<Option<Vec<u8>>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match value(store, key).await {
            Ok(found) => return Ok(found),
            Err(e) if Instant::now() > deadline => bail!("etcd did not come back: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Stop etcd: calls fail naming the endpoint and open watches end with an
/// error. Restart it on the same data dir: the same store works again by
/// itself, with data and revisions intact.
#[tokio::test]
async fn etcd_restart_keeps_data_and_store_reconnects() -> Result<()> {
    let mut etcd = EtcdProcess::start()?;
    let store = connect(&etcd)
        .await?
        .with_request_timeout(Duration::from_secs(1));
    let r1 = store.put("/keep", b"v".to_vec()).await?;
    let mut watch = store.watch("/keep");
    // Make sure the watch is live before etcd goes away.
    store.put("/keep", b"w".to_vec()).await?;
    assert!(matches!(next_event(&mut watch).await?, WatchEvent::Put(_)));

    etcd.stop()?;
    let err = store
        .get("/keep")
        .await
        .expect_err("etcd is down")
        .to_string();
    assert!(err.contains(&etcd.endpoint()), "{err}");
    let err = next_event(&mut watch)
        .await
        .expect_err("watch must end")
        .to_string();
    assert!(err.contains(&etcd.endpoint()), "{err}");

    etcd.restart()?;
    assert_eq!(
        get_when_back(&store, "/keep").await?.as_deref(),
        Some(&b"w"[..])
    );
    let kv = store.get("/keep").await?.context("/keep")?;
    assert_eq!((kv.create_revision, kv.mod_revision), (r1, r1 + 1));
    assert_eq!(store.put("/after", vec![]).await?, r1 + 2);
    // A new watch works on the new connection.
    let mut watch = store.watch("/after");
    store.put("/after", b"x".to_vec()).await?;
    assert!(matches!(next_event(&mut watch).await?, WatchEvent::Put(kv) if kv.value == b"x"));
    Ok(())
}

/// What a committed transaction wrote survives `kill -9`.
#[tokio::test]
async fn etcd_kill9_keeps_committed_writes() -> Result<()> {
    let mut etcd = EtcdProcess::start()?;
    let store = connect(&etcd).await?;
    let outcome = store
        .txn(
            vec![mod_rev("/k", 0)],
            vec![put("/k", b"1"), put("/l", b"2")],
        )
        .await?;
    assert!(outcome.succeeded);
    etcd.kill9()?;
    etcd.restart()?;
    assert_eq!(
        get_when_back(&store, "/l").await?.as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(revision(&store).await?, outcome.revision);
    Ok(())
}

/// Nothing listening: `connect` fails within its timeout, naming the endpoint.
#[tokio::test]
async fn etcd_connect_to_dead_endpoint_fails_clearly() -> Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let err = EtcdStore::connect(std::slice::from_ref(&endpoint), Duration::from_secs(1))
        .await
        .expect_err("nothing listens there")
        .to_string();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.contains(&endpoint), "{err}");
    assert!(err.contains("cannot reach etcd"), "{err}");

    let err = EtcdStore::connect(&[], Duration::from_secs(1))
        .await
        .expect_err("no endpoints")
        .to_string();
    assert!(err.contains("no etcd endpoints"), "{err}");
    Ok(())
}
