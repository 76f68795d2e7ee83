//! The per-domain command outputs (db, redis, storage, temporal, network) against a real platform instance.
//!
//! Same environment and requirements as `diagnose_faults.rs`; read-only, but they take the same
//! lock so a fault test never runs underneath them.

mod common;

use std::time::Duration;

use common::TestPlatform;
use container_ops::core::types::DnsName;
use container_ops::ops::diagnose::probes::Probes;
use container_ops::ops::diagnose::probes::redis::KeyPattern;
use container_ops::ops::diagnose::views::{
    self, DbView, NetworkView, RedisView, StorageView, TableData,
};

async fn ready() -> (TestPlatform, Probes) {
    let p = TestPlatform::get();
    p.wait_healthy(Duration::from_secs(120)).await;
    let probes = Probes::new(p.config(), &p.project).expect("probe clients");
    (p, probes)
}

fn cell<'a>(t: &'a TableData, key: &str) -> &'a str {
    t.rows
        .iter()
        .find(|r| r[0] == key)
        .map(|r| r[1].as_str())
        .unwrap_or_else(|| panic!("no row {key}:\n{}", t.to_text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_views_answer_from_the_platform_postgres() {
    let (_p, probes) = ready().await;
    let pg = probes.postgres.as_ref().unwrap();
    let sizes = views::db(pg, DbView::Size).await.unwrap();
    let dbs: Vec<&str> = sizes.rows.iter().map(|r| r[0].as_str()).collect();
    assert!(
        dbs.contains(&"app") && dbs.contains(&"temporal"),
        "{}",
        sizes.to_text()
    );
    let conns = views::db(pg, DbView::Connections).await.unwrap();
    assert_eq!(cell(&conns, "max_connections"), "100");
    assert_eq!(cell(&conns, "app.tenant_id (this session)"), "(not set)");
    let slow = views::db(pg, DbView::Slow).await.unwrap();
    assert!(
        slow.notes.is_empty() && !slow.rows.is_empty(),
        "pg_stat_statements is installed on the replica:\n{}",
        slow.to_text()
    );
    for v in [DbView::Activity, DbView::Locks, DbView::Cache] {
        views::db(pg, v)
            .await
            .unwrap_or_else(|e| panic!("{v:?}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_views_show_memory_policy_persistence_and_scan_keys() {
    let (_p, probes) = ready().await;
    let r = probes.redis.as_ref().unwrap();
    let info = views::redis(r, RedisView::Info).await.unwrap();
    assert_eq!(cell(&info, "ping"), "PONG");
    assert_eq!(cell(&info, "maxmemory_policy"), "allkeys-lru");
    assert_eq!(cell(&info, "maxmemory"), "128.0 MiB");
    let pers = views::redis(r, RedisView::Persistence).await.unwrap();
    assert_eq!(cell(&pers, "aof_enabled"), "1");
    views::redis(r, RedisView::Memory).await.unwrap();
    let keys = views::redis(
        r,
        RedisView::Keys(KeyPattern::parse("container-ops-test:*").unwrap()),
    )
    .await
    .unwrap();
    assert!(keys.rows.is_empty(), "{}", keys.to_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_views_list_the_bucket_and_stat_the_marker_object() {
    let (_p, probes) = ready().await;
    let s3 = probes.s3.as_ref().unwrap();
    let buckets = views::storage(s3, StorageView::Buckets).await.unwrap();
    assert!(
        buckets.rows.iter().any(|r| r[0] == "rewst-artifacts"),
        "{}",
        buckets.to_text()
    );
    let stat = views::storage(s3, StorageView::Stat).await.unwrap();
    assert!(
        cell(&stat, "exists").starts_with("true"),
        "{}",
        stat.to_text()
    );
    let keep = views::storage(s3, StorageView::Check(".keep".into()))
        .await
        .unwrap();
    assert_eq!(cell(&keep, "status"), "200");
    let missing = views::storage(s3, StorageView::Check("no/such/key".into()))
        .await
        .unwrap();
    assert_eq!(cell(&missing, "status"), "404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_workflows_are_listed_from_the_stand_in() {
    let (p, probes) = ready().await;
    let cfg = p.config();
    let t = views::temporal_workflows(&probes.http, cfg.temporal.as_ref().unwrap())
        .await
        .unwrap();
    assert!(t.rows.iter().any(|r| r[0] == "wf-0001"), "{}", t.to_text());
    assert!(t.notes[0].contains("workflows"), "{:?}", t.notes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_views_resolve_connect_and_inspect_from_inside_the_project() {
    let (p, _probes) = ready().await;
    let engine = p.engine().await;
    let name = |s: &str| DnsName::parse(s).unwrap();
    let dns = views::network(
        engine.as_ref(),
        NetworkView::Dns {
            from: name("api-1"),
            name: name("postgres"),
        },
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    assert!(
        dns.rows[0][1].starts_with("172.") || dns.rows[0][1].contains('.'),
        "{}",
        dns.to_text()
    );
    let port = views::network(
        engine.as_ref(),
        NetworkView::Port {
            from: name("api-1"),
            host: name("postgres"),
            port: 5432,
        },
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    assert_eq!(port.rows[0][1], "open", "{}", port.to_text());
    let closed = views::network(
        engine.as_ref(),
        NetworkView::Port {
            from: name("api-1"),
            host: name("postgres"),
            port: 5433,
        },
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    assert_eq!(
        closed.rows[0][1],
        "closed or unreachable",
        "{}",
        closed.to_text()
    );
    let inspect = views::network(
        engine.as_ref(),
        NetworkView::Inspect,
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    let net = format!("{}_default", p.project);
    assert!(
        inspect.rows.iter().any(|r| r[0] == net),
        "{}",
        inspect.to_text()
    );
    let nobody = views::network(
        engine.as_ref(),
        NetworkView::Dns {
            from: name("no-such-service"),
            name: name("postgres"),
        },
        Duration::from_secs(3),
    )
    .await
    .unwrap_err();
    assert!(
        nobody.contains("no running container for service `no-such-service`"),
        "{nobody}"
    );
}
