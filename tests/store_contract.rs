//! One contract for every `Store` adapter: each test runs on SQLite and on Postgres.
//!
//! Postgres tests need the bot's store: `deploy/dev/bot-store up` (or set
//! `CONTAINER_OPS_TEST_STORE_URL`). Each test gets its own schema, dropped afterwards, so they
//! run in parallel. An unreachable Postgres fails the tests; it never skips them.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use container_ops::core::approvals::{
    ApprovalState, Approvals, BoundOperation, INTERRUPTED, NewRequest, Outcome, Refusal, Runner,
};
use container_ops::core::replica::ReplicaId;
use container_ops::core::store::{
    AuditAnchor, AuditDecision, AuditKey, AuditQuery, NewAuditEntry, NewIncident, Store,
    TimelineEntry, VerifyWith, entry_hash, verify_audit, verify_audit_with,
};
use container_ops::infra::store::postgres::PostgresOptions;
use container_ops::infra::store::{PostgresStore, SqliteStore};

/// The approver whose approval completes a request, in these tests.
const RUNNER: Runner<'static> = Runner {
    actor: "bob",
    roles: &[],
};

const DEFAULT_PG_URL: &str = "postgres://app:container-ops-dev@127.0.0.1:55432/app";

enum Backend {
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres {
        url: String,
        schema: String,
    },
}

/// A fresh, empty store plus the means to open a second instance on the same data (a second
/// replica) and to tamper with it behind the store's back.
struct Fixture {
    store: Arc<dyn Store>,
    backend: Backend,
    extra_schemas: Vec<String>,
}

impl Fixture {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        Self {
            store: Arc::new(store),
            backend: Backend::Sqlite { path, _dir: dir },
            extra_schemas: vec![],
        }
    }

    async fn postgres() -> Self {
        let url = std::env::var("CONTAINER_OPS_TEST_STORE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_PG_URL.to_owned());
        let schema = format!("co_test_{}", uuid::Uuid::new_v4().simple());
        let admin = match pg_connect(&url).await {
            Ok(c) => c,
            Err(e) => panic!(
                "the Postgres store for tests is unreachable ({e}: {}).\n\
                 Start it with `deploy/dev/bot-store up`, or point CONTAINER_OPS_TEST_STORE_URL at another server.",
                std::error::Error::source(&e).map_or(String::new(), |s| s.to_string())
            ),
        };
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        let store = PostgresStore::connect_with(&url, pg_options(&schema))
            .await
            .unwrap();
        Self {
            store: Arc::new(store),
            backend: Backend::Postgres { url, schema },
            extra_schemas: vec![],
        }
    }

    /// Another store instance over the same data: a second bot replica, or the bot after a restart.
    async fn second_store(&self) -> Arc<dyn Store> {
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                Arc::new(SqliteStore::open(path.to_str().unwrap()).await.unwrap())
            }
            Backend::Postgres { url, schema } => Arc::new(
                PostgresStore::connect_with(url, pg_options(schema))
                    .await
                    .unwrap(),
            ),
        }
    }

    /// Opens `n` instances at once on a new, empty database next to this one: replicas
    /// starting together on a fresh store. The new database is cleaned up with this fixture.
    /// Another handle on the same store that keys new audit entries.
    async fn keyed_store(&self, key: &AuditKey) -> Arc<dyn Store> {
        let key = Some(key.clone());
        match &self.backend {
            Backend::Sqlite { path, .. } => Arc::new(
                SqliteStore::open(path.to_str().unwrap())
                    .await
                    .unwrap()
                    .with_audit_key(key),
            ),
            Backend::Postgres { url, schema } => Arc::new(
                PostgresStore::connect_with(url, pg_options(schema))
                    .await
                    .unwrap()
                    .with_audit_key(key),
            ),
        }
    }

    /// What someone with write access to the store (but not the key) can do: change entry
    /// `from`'s actor, recompute every hash from there on with plain SHA-256, and move the
    /// head to match.
    async fn rewrite_from(&self, from: i64, actor: &str) {
        let mut entries = self.store.audit_page(0, 1000).await.unwrap();
        let mut prev = entries[(from - 2).max(0) as usize].hash.clone();
        if from == 1 {
            prev = container_ops::core::store::GENESIS_HASH.to_owned();
        }
        let mut sql = String::new();
        for e in entries.iter_mut().filter(|e| e.id >= from) {
            if e.id == from {
                e.entry.actor = actor.into();
            }
            let h = entry_hash(&prev, e.id, &e.entry, None);
            sql.push_str(&format!(
                "UPDATE audit_log SET actor = '{}', prev_hash = '{prev}', hash = '{h}' WHERE id = {};",
                e.entry.actor, e.id
            ));
            prev = h;
        }
        let last = entries.last().unwrap().id;
        sql.push_str(&format!(
            "UPDATE audit_head SET last_id = {last}, last_hash = '{prev}' WHERE id = 1;"
        ));
        self.raw(&sql).await;
    }

    async fn open_fresh_concurrently(&mut self, n: usize) -> Vec<anyhow::Result<Arc<dyn Store>>> {
        let mut opening = vec![];
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let fresh = path.with_file_name("fresh.db");
                for _ in 0..n {
                    let p = fresh.to_str().unwrap().to_owned();
                    opening.push(tokio::spawn(async move {
                        SqliteStore::open(&p)
                            .await
                            .map(|s| Arc::new(s) as Arc<dyn Store>)
                    }));
                }
            }
            Backend::Postgres { url, schema } => {
                let fresh = format!("{schema}_fresh");
                let admin = pg_connect(url).await.unwrap();
                admin
                    .batch_execute(&format!("CREATE SCHEMA {fresh}"))
                    .await
                    .unwrap();
                self.extra_schemas.push(fresh.clone());
                for _ in 0..n {
                    let (url, fresh) = (url.clone(), fresh.clone());
                    opening.push(tokio::spawn(async move {
                        PostgresStore::connect_with(&url, pg_options(&fresh))
                            .await
                            .map(|s| Arc::new(s) as Arc<dyn Store>)
                    }));
                }
            }
        }
        let mut stores = vec![];
        for o in opening {
            stores.push(o.await.unwrap());
        }
        stores
    }

    /// Runs SQL directly on the database, as someone with access to it could.
    async fn raw(&self, sql: &str) {
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.execute_batch(sql).unwrap();
            }
            Backend::Postgres { url, schema } => {
                let c = pg_connect(url).await.unwrap();
                c.batch_execute(&format!("SET search_path = {schema}; {sql}"))
                    .await
                    .unwrap();
            }
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Backend::Postgres { url, schema } = &self.backend {
            let url = url.clone();
            let mut schemas = self.extra_schemas.clone();
            schemas.push(schema.clone());
            // Drop runs inside the test's runtime, which cannot be blocked on; use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(c) = pg_connect(&url).await {
                        for schema in schemas {
                            let _ = c
                                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                                .await;
                        }
                    }
                });
            })
            .join();
        }
    }
}

fn pg_options(schema: &str) -> PostgresOptions {
    PostgresOptions {
        schema: Some(schema.to_owned()),
        pool_size: 8,
        ..PostgresOptions::default()
    }
}

async fn pg_connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut cfg: tokio_postgres::Config = url.parse()?;
    cfg.connect_timeout(Duration::from_secs(5));
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Fixture::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Fixture::postgres().await).await;
                }
            )*
        }
    };
}

contract!(
    a_clean_audit_log_verifies,
    the_tail_deleted_and_the_head_moved_back_is_detected_through_the_anchor,
    an_entry_edited_and_the_rest_rechained_is_detected_through_the_anchor,
    a_keyed_chain_verifies_only_with_its_key_and_a_rewrite_without_it_is_detected,
    a_whole_log_rewritten_without_the_key_is_detected_by_a_keyed_verification,
    an_updated_audit_row_is_reported_with_its_id,
    an_audit_row_updated_with_a_recomputed_hash_breaks_the_chain_at_the_next_entry,
    a_deleted_audit_row_is_reported_at_the_entry_after_the_gap,
    a_deleted_last_audit_entry_is_reported_through_the_head,
    concurrent_appends_from_two_store_instances_form_one_chain,
    audit_queries_filter_by_user_target_command_decision_and_time,
    a_request_keeps_its_fields_through_the_store,
    the_requester_cannot_approve_their_own_request_even_holding_the_approver_role,
    a_reviewer_without_an_approver_role_is_refused,
    an_expired_request_cannot_be_approved_and_is_marked_expired,
    one_approval_makes_the_request_ready_and_it_can_be_claimed_only_once,
    two_approvals_are_needed_when_the_rule_says_two,
    two_hundred_concurrent_approve_and_claim_calls_yield_exactly_one_claim,
    a_request_executing_at_a_crash_is_marked_failed_interrupted_at_start_up,
    a_denied_request_can_be_neither_approved_nor_claimed,
    only_the_requester_can_cancel_and_only_before_execution,
    expire_due_expires_only_requests_whose_time_is_up,
    approving_an_unknown_request_is_refused_as_not_found,
    incidents_get_a_thread_a_timeline_and_close_once,
    state_survives_reopening_the_store,
    replicas_opening_a_fresh_store_at_once_all_start_and_share_one_chain,
    a_live_lease_is_left_alone_and_an_expired_one_is_recovered_exactly_once_by_two_recoverers,
    a_request_held_by_a_process_gone_from_this_host_is_recovered_before_its_lease_ends,
);

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

fn roles(r: &[&str]) -> Vec<String> {
    r.iter().map(|s| s.to_string()).collect()
}

fn entry(actor: &str, command: &str, target: &[&str], at: DateTime<Utc>) -> NewAuditEntry {
    NewAuditEntry {
        at,
        actor: actor.into(),
        roles: roles(&["oncall"]),
        channel: "ops".into(),
        command: command.into(),
        args: format!("service:{}", target.join(",")),
        target: roles(target),
        decision: AuditDecision::Ran,
        result: format!("{command} done"),
        duration_ms: 12,
        correlation_id: uuid::Uuid::new_v4().to_string(),
        via: "discord".into(),
    }
}

async fn five_entries(store: &dyn Store) {
    for i in 0..5 {
        store
            .append_audit(entry("dave", "restart", &["api-1"], t(i)))
            .await
            .unwrap();
    }
}

fn new_request(requester: &str, min_approvals: u32, ttl: Duration) -> NewRequest {
    NewRequest {
        operation: BoundOperation {
            command: "reset-db".into(),
            targets: vec![
                "container:4f1c2a".into(),
                "volume:riftwing_postgres_data".into(),
            ],
            args: BTreeMap::from([("service".into(), "postgres".into())]),
        },
        args_display: "service:postgres".into(),
        requester: requester.into(),
        requester_roles: roles(&["oncall", "approver"]),
        approver_roles: roles(&["approver", "admin"]),
        min_approvals,
        ttl,
        channel: "ops".into(),
        correlation_id: "corr-1".into(),
    }
}

const TTL: Duration = Duration::from_secs(15 * 60);

async fn audit_of(store: &dyn Store, decision: AuditDecision) -> Vec<String> {
    store
        .query_audit(&AuditQuery {
            decision: Some(decision),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.entry.result)
        .collect()
}

async fn a_clean_audit_log_verifies(f: Fixture) {
    let empty = verify_audit(&*f.store).await.unwrap();
    assert!(empty.is_ok(), "{empty}");
    assert_eq!(empty.checked, 0);
    five_entries(&*f.store).await;
    let last = f.store.audit_page(4, 10).await.unwrap();
    let report = verify_audit(&*f.store).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.checked, 5);
    assert_eq!(report.last, Some((5, last[0].hash.clone())));
}

async fn an_updated_audit_row_is_reported_with_its_id(f: Fixture) {
    five_entries(&*f.store).await;
    f.raw("UPDATE audit_log SET result = 'nothing happened' WHERE id = 3")
        .await;
    let report = verify_audit(&*f.store).await.unwrap();
    let problem = report.problem.expect("tampering must be detected");
    assert_eq!(problem.id, 3, "{}", problem.reason);
    assert_eq!(report.checked, 2);
}

async fn an_audit_row_updated_with_a_recomputed_hash_breaks_the_chain_at_the_next_entry(
    f: Fixture,
) {
    five_entries(&*f.store).await;
    let mut third = f.store.audit_page(2, 1).await.unwrap().remove(0);
    third.entry.actor = "mallory".into();
    let forged = entry_hash(&third.prev_hash, 3, &third.entry, None);
    f.raw(&format!(
        "UPDATE audit_log SET actor = 'mallory', hash = '{forged}' WHERE id = 3"
    ))
    .await;
    let problem = verify_audit(&*f.store).await.unwrap().problem.unwrap();
    assert_eq!(problem.id, 4, "{}", problem.reason);
}

fn audit_key(byte: u8) -> AuditKey {
    AuditKey::from_bytes(&[byte; 32]).unwrap()
}

async fn anchor_of(store: &dyn Store, key: Option<&AuditKey>) -> AuditAnchor {
    let head = store.audit_head().await.unwrap();
    AuditAnchor::new(head.last_id, head.last_hash, key)
}

async fn the_tail_deleted_and_the_head_moved_back_is_detected_through_the_anchor(f: Fixture) {
    five_entries(&*f.store).await;
    let anchor = anchor_of(&*f.store, None).await;
    let third = f.store.audit_page(2, 1).await.unwrap().remove(0);
    f.raw(&format!(
        "DELETE FROM audit_log WHERE id > 3; UPDATE audit_head SET last_id = 3, last_hash = '{}' WHERE id = 1;",
        third.hash
    ))
    .await;
    // The store alone cannot tell: that is the attack.
    assert!(verify_audit(&*f.store).await.unwrap().is_ok());
    let with = VerifyWith {
        key: None,
        anchor: Some(anchor),
    };
    let report = verify_audit_with(&*f.store, &with).await.unwrap();
    let problem = report.problem.expect("the anchor must catch the cut");
    assert_eq!(problem.id, 4);
    assert!(
        problem.reason.contains("cut off the end"),
        "{}",
        problem.reason
    );
}

async fn an_entry_edited_and_the_rest_rechained_is_detected_through_the_anchor(f: Fixture) {
    five_entries(&*f.store).await;
    let anchor = anchor_of(&*f.store, None).await;
    f.rewrite_from(2, "mallory").await;
    assert!(
        verify_audit(&*f.store).await.unwrap().is_ok(),
        "the attack fools the plain chain"
    );
    let with = VerifyWith {
        key: None,
        anchor: Some(anchor),
    };
    let problem = verify_audit_with(&*f.store, &with)
        .await
        .unwrap()
        .problem
        .expect("the anchor must catch the rewrite");
    assert_eq!(problem.id, 5);
    assert!(
        problem.reason.contains("rewritten and re-chained"),
        "{}",
        problem.reason
    );
}

async fn a_keyed_chain_verifies_only_with_its_key_and_a_rewrite_without_it_is_detected(f: Fixture) {
    let key = audit_key(7);
    five_entries(&*f.store).await;
    let keyed = f.keyed_store(&key).await;
    for i in 0..3 {
        keyed
            .append_audit(entry("alice", "restart", &["api-1"], t(100 + i)))
            .await
            .unwrap();
    }
    let with = VerifyWith {
        key: Some(key.clone()),
        anchor: None,
    };
    let report = verify_audit_with(&*f.store, &with).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.keyed_from, Some(6));
    assert!(
        report
            .to_string()
            .contains("keyed with the audit key from entry 6"),
        "{report}"
    );
    let wrong = VerifyWith {
        key: Some(audit_key(8)),
        anchor: None,
    };
    assert_eq!(
        verify_audit_with(&*f.store, &wrong)
            .await
            .unwrap()
            .problem
            .unwrap()
            .id,
        6
    );
    let e = verify_audit(&*f.store).await.unwrap_err();
    assert!(e.to_string().contains("needs it"), "{e}");

    // Editing a keyed entry and recomputing the rest with plain SHA-256.
    f.rewrite_from(7, "mallory").await;
    let problem = verify_audit_with(&*f.store, &with)
        .await
        .unwrap()
        .problem
        .expect("a rewrite without the key must be detected");
    assert_eq!(problem.id, 7);
    assert!(
        problem.reason.contains("rewritten without the audit key"),
        "{}",
        problem.reason
    );
}

async fn a_whole_log_rewritten_without_the_key_is_detected_by_a_keyed_verification(f: Fixture) {
    let key = audit_key(7);
    let keyed = f.keyed_store(&key).await;
    for i in 0..4 {
        keyed
            .append_audit(entry("alice", "restart", &["api-1"], t(i)))
            .await
            .unwrap();
    }
    let anchor = anchor_of(&*keyed, Some(&key)).await;
    f.rewrite_from(1, "mallory").await;
    let without_anchor = VerifyWith {
        key: Some(key.clone()),
        anchor: None,
    };
    let problem = verify_audit_with(&*f.store, &without_anchor)
        .await
        .unwrap()
        .problem
        .expect("a keyed verification of an unkeyed log must fail");
    assert!(
        problem.reason.contains("newest entry is not keyed"),
        "{}",
        problem.reason
    );
    let with_anchor = VerifyWith {
        key: Some(key),
        anchor: Some(anchor),
    };
    assert!(
        !verify_audit_with(&*f.store, &with_anchor)
            .await
            .unwrap()
            .is_ok()
    );
}

async fn a_deleted_audit_row_is_reported_at_the_entry_after_the_gap(f: Fixture) {
    five_entries(&*f.store).await;
    f.raw("DELETE FROM audit_log WHERE id = 3").await;
    let problem = verify_audit(&*f.store).await.unwrap().problem.unwrap();
    assert_eq!(problem.id, 4, "{}", problem.reason);
    assert!(problem.reason.contains("missing"), "{}", problem.reason);
}

async fn a_deleted_last_audit_entry_is_reported_through_the_head(f: Fixture) {
    five_entries(&*f.store).await;
    f.raw("DELETE FROM audit_log WHERE id = 5").await;
    let problem = verify_audit(&*f.store).await.unwrap().problem.unwrap();
    assert_eq!(problem.id, 5, "{}", problem.reason);
}

async fn concurrent_appends_from_two_store_instances_form_one_chain(f: Fixture) {
    let other = f.second_store().await;
    let mut tasks = vec![];
    for i in 0..100 {
        let s = if i % 2 == 0 {
            f.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            s.append_audit(entry(&format!("user-{i}"), "status", &["api-1"], t(i)))
                .await
                .unwrap()
                .id
        }));
    }
    let mut ids = vec![];
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.sort();
    assert_eq!(ids, (1..=100).collect::<Vec<i64>>());
    let report = verify_audit(&*other).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.checked, 100);
}

async fn audit_queries_filter_by_user_target_command_decision_and_time(f: Fixture) {
    let s = &*f.store;
    s.append_audit(entry("alice", "restart", &["api-1", "api-2"], t(0)))
        .await
        .unwrap();
    s.append_audit(entry("bob", "logs", &["worker-1"], t(60)))
        .await
        .unwrap();
    let mut denied = entry("bob", "reset-db", &["postgres"], t(120));
    denied.decision = AuditDecision::Denied;
    s.append_audit(denied).await.unwrap();
    s.append_audit(entry("alice", "logs", &["api-2"], t(180)))
        .await
        .unwrap();

    let ids = |q: AuditQuery| async move {
        s.query_audit(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    let all = AuditQuery::default();
    assert_eq!(ids(all.clone()).await, [4, 3, 2, 1], "newest first");
    assert_eq!(
        ids(AuditQuery {
            actor: Some("alice".into()),
            ..all.clone()
        })
        .await,
        [4, 1]
    );
    assert_eq!(
        ids(AuditQuery {
            target: Some("api-2".into()),
            ..all.clone()
        })
        .await,
        [4, 1]
    );
    assert_eq!(
        ids(AuditQuery {
            target: Some("api".into()),
            ..all.clone()
        })
        .await,
        Vec::<i64>::new(),
        "targets match whole names"
    );
    assert_eq!(
        ids(AuditQuery {
            command: Some("logs".into()),
            ..all.clone()
        })
        .await,
        [4, 2]
    );
    assert_eq!(
        ids(AuditQuery {
            decision: Some(AuditDecision::Denied),
            ..all.clone()
        })
        .await,
        [3]
    );
    assert_eq!(
        ids(AuditQuery {
            since: Some(t(60)),
            until: Some(t(180)),
            ..all.clone()
        })
        .await,
        [3, 2],
        "since is inclusive, until exclusive"
    );
    assert_eq!(
        ids(AuditQuery {
            actor: Some("bob".into()),
            command: Some("logs".into()),
            ..all.clone()
        })
        .await,
        [2]
    );
    assert_eq!(
        ids(AuditQuery {
            limit: 2,
            ..all.clone()
        })
        .await,
        [4, 3]
    );
    let third = s.audit_page(2, 1).await.unwrap().remove(0);
    assert_eq!(
        ids(AuditQuery {
            correlation_id: Some(third.entry.correlation_id),
            ..all
        })
        .await,
        [3]
    );
    let got = s
        .query_audit(&AuditQuery {
            command: Some("restart".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(got[0].entry, entry_like(&got[0].entry, "alice", t(0)));
}

/// The stored entry with the fields the test set, so a round trip is compared whole.
fn entry_like(stored: &NewAuditEntry, actor: &str, at: DateTime<Utc>) -> NewAuditEntry {
    NewAuditEntry {
        correlation_id: stored.correlation_id.clone(),
        ..entry(actor, "restart", &["api-1", "api-2"], at)
    }
}

async fn a_request_keeps_its_fields_through_the_store(f: Fixture) {
    let a = Approvals::new(f.store.clone());
    let req = new_request("alice", 1, TTL);
    let created = a.create(req.clone(), t(0)).await.unwrap();
    assert_eq!(created.id.len(), 8);
    assert_eq!(created.state, ApprovalState::Pending);
    assert_eq!(created.expires_at, t(900));
    assert_eq!(created.digest, req.operation.digest());
    assert!(created.matches(&req.operation));
    let got = a.get(&created.id).await.unwrap().unwrap();
    assert_eq!(got, created);
    assert_eq!(a.pending().await.unwrap(), vec![created.clone()]);
    assert_eq!(
        audit_of(&*f.store, AuditDecision::Pending).await.len(),
        1,
        "creation is audited"
    );
}

async fn the_requester_cannot_approve_their_own_request_even_holding_the_approver_role(f: Fixture) {
    let a = Approvals::new(f.store.clone());
    let r = a.create(new_request("alice", 1, TTL), t(0)).await.unwrap();
    let out = a
        .approve(&r.id, "alice", &roles(&["approver", "admin"]), t(1))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Refused(Refusal::OwnRequest));
    let got = a.get(&r.id).await.unwrap().unwrap();
    assert_eq!(got.state, ApprovalState::Pending);
    assert!(got.reviews.is_empty());
    assert!(!a.claim_for_execution(&r.id, &RUNNER, t(2)).await.unwrap());
    let refused = audit_of(&*f.store, AuditDecision::Refused).await;
    assert!(refused[0].contains("own request"), "{refused:?}");
}

async fn a_reviewer_without_an_approver_role_is_refused(f: Fixture) {
    let a = Approvals::new(f.store.clone());
    let r = a.create(new_request("alice", 1, TTL), t(0)).await.unwrap();
    let out = a
        .approve(&r.id, "bob", &roles(&["oncall"]), t(1))
        .await
        .unwrap();
    assert_eq!(
        out,
        Outcome::Refused(Refusal::NotAnApprover {
            allowed: roles(&["approver", "admin"])
        })
    );
    assert_eq!(
        a.get(&r.id).await.unwrap().unwrap().state,
        ApprovalState::Pending
    );
    let ok = a
        .approve(&r.id, "carol", &roles(&["admin"]), t(2))
        .await
        .unwrap();
    assert!(matches!(
        ok,
        Outcome::Approved {
            ready_to_run: true,
            ..
        }
    ));
}

async fn an_expired_request_cannot_be_approved_and_is_marked_expired(f: Fixture) {
    let a = Approvals::new(f.store.clone());
    let r = a
        .create(new_request("alice", 1, Duration::from_secs(60)), t(0))
        .await
        .unwrap();
    let out = a
        .approve(&r.id, "bob", &roles(&["approver"]), t(60))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Refused(Refusal::Expired));
    let got = a.get(&r.id).await.unwrap().unwrap();
    assert_eq!(got.state, ApprovalState::Expired);
    assert!(got.reviews.is_empty());
    assert!(!a.claim_for_execution(&r.id, &RUNNER, t(61)).await.unwrap());
    assert_eq!(audit_of(&*f.store, AuditDecision::Expired).await.len(), 1);
}

async fn one_approval_makes_the_request_ready_and_it_can_be_claimed_only_once(f: Fixture) {
    let a = Approvals::new(f.store.clone());
    let r = a.create(new_request("alice", 1, TTL), t(0)).await.unwrap();
    let out = a
        .approve(&r.id, "bob", &roles(&["approver"]), t(10))
        .await
        .unwrap();
    assert_eq!(
        out,
        Outcome::Approved {
            ready_to_run: true,
            approvals: 1,
            needed: 1
        }
    );
    let again = a
        .approve(&r.id, "bob", &roles(&["approver"]), t(11))
        .await
        .unwrap();
    assert_eq!(
        again,
        Outcome::Refused(Refusal::NotPending(ApprovalState::Approved)),
        "a retried click does not approve twice"
    );
    assert!(a.claim_for_execution(&r.id, &RUNNER, t(12)).await.unwrap());
    assert!(!a.claim_for_execution(&r.id, &RUNNER, t(12)).await.unwrap());
    assert!(
        a.finish(
            &r.id,
            &RUNNER,
            Ok("database reset".into()),
            Duration::from_secs(3),
            t(15)
        )
        .await
        .unwrap()
    );
    assert!(
        !a.finish(&r.id, &RUNNER, Err("late".into()), Duration::ZERO, t(16))
            .await
            .unwrap(),
        "a finished request stays finished"
    );
    let got = a.get(&r.id).await.unwrap().unwrap();
    assert_eq!(got.state, ApprovalState::Succeeded);
    assert_eq!(got.result.as_deref(), Some("database reset"));
    assert_eq!(got.reviews.len(), 1);
    assert_eq!(got.reviews[0].reviewer, "bob");
    assert_eq!(got.reviews[0].at, t(10));

    let trail: Vec<_> = f
        .store
        .query_audit(&AuditQuery {
            correlation_id: Some("corr-1".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|e| (e.entry.decision, e.entry.actor))
        .collect();
    let d = |d, who: &str| (d, who.to_string());
    assert_eq!(
        trail,
        [
            d(AuditDecision::Pending, "alice"),
            d(AuditDecision::Approved, "bob"),
            d(AuditDecision::Approved, "bob"),
            d(AuditDecision::Refused, "bob"),
            // The approver whose approval completed it ran it (the text names the requester).
            d(AuditDecision::Executing, "bob"),
            d(AuditDecision::Ran, "bob"),
        ]
    );
    assert!(verify_audit(&*f.store).await.unwrap().is_ok());
}

async fn two_approvals_are_needed_when_the_rule_says_two(f: Fixture) {
    let a = Approvals::new(f.store.clone());
    let r = a.create(new_request("alice", 2, TTL), t(0)).await.unwrap();
    let approver = roles(&["approver"]);
    let first = a.approve(&r.id, "bob", &approver, t(1)).await.unwrap();
    assert_eq!(
        first,
        Outcome::Approved {
            ready_to_run: false,
            approvals: 1,
            needed: 2
        }
    );
    assert!(!a.claim_for_execution(&r.id, &RUNNER, t(2)).await.unwrap());
    let same = a.approve(&r.id, "bob", &approver, t(3)).await.unwrap();
    assert_eq!(same, Outcome::Refused(Refusal::AlreadyReviewed));
    let own = a.approve(&r.id, "alice", &approver, t(4)).await.unwrap();
    assert_eq!(own, Outcome::Refused(Refusal::OwnRequest));
    let second = a.approve(&r.id, "carol", &approver, t(5)).await.unwrap();
    assert_eq!(
        second,
        Outcome::Approved {
            ready_to_run: true,
            approvals: 2,
            needed: 2
        }
    );
    assert!(a.claim_for_execution(&r.id, &RUNNER, t(6)).await.unwrap());
}

async fn two_hundred_concurrent_approve_and_claim_calls_yield_exactly_one_claim(f: Fixture) {
    // Half the calls go through a second store instance: a second bot replica on the same data.
    let replicas = [
        Approvals::new(f.store.clone()),
        Approvals::new(f.second_store().await),
    ];
    let r = replicas[0]
        .create(new_request("alice", 1, TTL), t(0))
        .await
        .unwrap();
    let mut tasks = vec![];
    for i in 0..200 {
        let a = replicas[i % 2].clone();
        let id = r.id.clone();
        // Every fourth call repeats an approver: retried interactions.
        let who = format!("approver-{}", if i % 4 == 3 { i - 1 } else { i });
        tasks.push(tokio::spawn(async move {
            let out = a
                .approve(&id, &who, &roles(&["approver"]), t(1))
                .await
                .unwrap();
            let claimed = a.claim_for_execution(&id, &RUNNER, t(2)).await.unwrap();
            (out, claimed)
        }));
    }
    let mut claims = 0;
    let mut ready = 0;
    for task in tasks {
        let (out, claimed) = task.await.unwrap();
        claims += usize::from(claimed);
        if let Outcome::Approved {
            ready_to_run: true, ..
        } = out
        {
            ready += 1;
        }
    }
    assert_eq!(claims, 1, "exactly one claim");
    assert_eq!(ready, 1, "exactly one caller completes the quorum");
    let got = replicas[1].get(&r.id).await.unwrap().unwrap();
    assert_eq!(got.state, ApprovalState::Executing);
    let reviewers: HashSet<_> = got.reviews.iter().map(|r| r.reviewer.as_str()).collect();
    assert_eq!(reviewers.len(), got.reviews.len(), "one review per person");
    assert_eq!(audit_of(&*f.store, AuditDecision::Executing).await.len(), 1);
    let report = verify_audit(&*f.store).await.unwrap();
    assert!(report.is_ok(), "{report}");
}

async fn a_request_executing_at_a_crash_is_marked_failed_interrupted_at_start_up(f: Fixture) {
    let before = Approvals::new(f.store.clone());
    let r = before
        .create(new_request("alice", 1, TTL), t(0))
        .await
        .unwrap();
    let waiting = before
        .create(new_request("alice", 1, TTL), t(0))
        .await
        .unwrap();
    before
        .approve(&r.id, "bob", &roles(&["approver"]), t(1))
        .await
        .unwrap();
    assert!(
        before
            .claim_for_execution(&r.id, &RUNNER, t(2))
            .await
            .unwrap()
    );
    drop(before);

    // The bot comes back after its lease ran out: a new store instance over the same data.
    let after = Approvals::new(f.second_store().await);
    assert_eq!(
        after.recover_interrupted(t(200)).await.unwrap(),
        vec![r.id.clone()]
    );
    let got = after.get(&r.id).await.unwrap().unwrap();
    assert_eq!(got.state, ApprovalState::Failed);
    assert!(
        got.result.as_deref().unwrap().starts_with(INTERRUPTED),
        "{:?}",
        got.result
    );
    assert!(
        !after
            .claim_for_execution(&r.id, &RUNNER, t(101))
            .await
            .unwrap(),
        "never re-run"
    );
    assert_eq!(
        after.get(&waiting.id).await.unwrap().unwrap().state,
        ApprovalState::Pending,
        "requests that were not executing are left alone"
    );
    assert!(after.recover_interrupted(t(202)).await.unwrap().is_empty());
    let failed = audit_of(&*f.store, AuditDecision::Failed).await;
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains(INTERRUPTED), "{failed:?}");
}

async fn a_denied_request_can_be_neither_approved_nor_claimed(f: Fixture) {
    let a = Approvals::new(f.store.clone());
    let r = a.create(new_request("alice", 2, TTL), t(0)).await.unwrap();
    let approver = roles(&["approver"]);
    a.approve(&r.id, "bob", &approver, t(1)).await.unwrap();
    let own = a
        .deny(&r.id, "alice", &approver, "changed my mind", t(2))
        .await
        .unwrap();
    assert_eq!(
        own,
        Outcome::Refused(Refusal::OwnRequest),
        "requesters cancel, they do not deny"
    );
    let out = a
        .deny(&r.id, "carol", &approver, "wrong database", t(3))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Denied);
    let late = a.approve(&r.id, "dave", &approver, t(4)).await.unwrap();
    assert_eq!(
        late,
        Outcome::Refused(Refusal::NotPending(ApprovalState::Denied))
    );
    assert!(!a.claim_for_execution(&r.id, &RUNNER, t(5)).await.unwrap());
    let got = a.get(&r.id).await.unwrap().unwrap();
    assert_eq!(got.state, ApprovalState::Denied);
    assert_eq!(
        got.result.as_deref(),
        Some("denied by carol: wrong database")
    );
    assert_eq!(got.reviews.len(), 2);
}

async fn only_the_requester_can_cancel_and_only_before_execution(f: Fixture) {
    let a = Approvals::new(f.store.clone());
    let r = a.create(new_request("alice", 1, TTL), t(0)).await.unwrap();
    assert_eq!(
        a.cancel(&r.id, "bob", t(1)).await.unwrap(),
        Outcome::Refused(Refusal::NotRequester)
    );
    assert_eq!(
        a.cancel(&r.id, "alice", t(2)).await.unwrap(),
        Outcome::Cancelled
    );
    assert_eq!(
        a.get(&r.id).await.unwrap().unwrap().state,
        ApprovalState::Cancelled
    );

    let running = a.create(new_request("alice", 1, TTL), t(0)).await.unwrap();
    a.approve(&running.id, "bob", &roles(&["approver"]), t(1))
        .await
        .unwrap();
    assert!(
        a.claim_for_execution(&running.id, &RUNNER, t(2))
            .await
            .unwrap()
    );
    assert_eq!(
        a.cancel(&running.id, "alice", t(3)).await.unwrap(),
        Outcome::Refused(Refusal::NotPending(ApprovalState::Executing))
    );
    assert!(
        a.finish(
            &running.id,
            &RUNNER,
            Err("exit code 1".into()),
            Duration::ZERO,
            t(4)
        )
        .await
        .unwrap()
    );
    let got = a.get(&running.id).await.unwrap().unwrap();
    assert_eq!(got.state, ApprovalState::Failed);
    assert_eq!(got.result.as_deref(), Some("exit code 1"));
}

async fn expire_due_expires_only_requests_whose_time_is_up(f: Fixture) {
    let a = Approvals::new(f.store.clone());
    let short = a
        .create(new_request("alice", 1, Duration::from_secs(60)), t(0))
        .await
        .unwrap();
    let long = a.create(new_request("alice", 1, TTL), t(0)).await.unwrap();
    let approved_late = a
        .create(new_request("alice", 1, Duration::from_secs(120)), t(0))
        .await
        .unwrap();
    a.approve(&approved_late.id, "bob", &roles(&["approver"]), t(10))
        .await
        .unwrap();
    assert!(a.expire_due(t(59)).await.unwrap().is_empty());
    assert_eq!(a.expire_due(t(60)).await.unwrap(), vec![short.id.clone()]);
    assert_eq!(
        a.expire_due(t(200)).await.unwrap(),
        vec![approved_late.id.clone()],
        "an approval not claimed in time expires too"
    );
    assert!(
        !a.claim_for_execution(&approved_late.id, &RUNNER, t(201))
            .await
            .unwrap()
    );
    assert_eq!(
        a.pending()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        vec![long.id]
    );
}

async fn approving_an_unknown_request_is_refused_as_not_found(f: Fixture) {
    let a = Approvals::new(f.store.clone());
    let out = a
        .approve("zzzzzzzz", "bob", &roles(&["approver"]), t(0))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Refused(Refusal::NotFound));
    assert!(
        !a.claim_for_execution("zzzzzzzz", &RUNNER, t(0))
            .await
            .unwrap()
    );
    assert!(a.get("zzzzzzzz").await.unwrap().is_none());
}

async fn incidents_get_a_thread_a_timeline_and_close_once(f: Fixture) {
    let s = &*f.store;
    let opened = s
        .open_incident(NewIncident {
            channel: "ops".into(),
            thread_id: None,
            title: "api-1 crash loop".into(),
            opened_by: "dave".into(),
            opened_at: t(0),
        })
        .await
        .unwrap();
    let other = s
        .open_incident(NewIncident {
            channel: "ops".into(),
            thread_id: Some("thread-2".into()),
            title: "disk full".into(),
            opened_by: "erin".into(),
            opened_at: t(5),
        })
        .await
        .unwrap();
    assert_ne!(opened.id, other.id);
    assert!(s.set_incident_thread(opened.id, "thread-1").await.unwrap());
    assert!(!s.set_incident_thread(9999, "thread-9").await.unwrap());
    let by_thread = s.incident_by_thread("thread-1").await.unwrap().unwrap();
    assert_eq!(by_thread.id, opened.id);
    assert_eq!(by_thread.title, "api-1 crash loop");
    assert_eq!(by_thread.opened_at, t(0));
    assert!(s.incident_by_thread("thread-0").await.unwrap().is_none());

    for (at, kind, text) in [(20, "command", "/restart api-1"), (10, "note", "looking")] {
        s.add_timeline(TimelineEntry {
            incident_id: opened.id,
            at: t(at),
            actor: "dave".into(),
            kind: kind.into(),
            text: text.into(),
        })
        .await
        .unwrap();
    }
    let tl = s.timeline(opened.id).await.unwrap();
    assert_eq!(
        tl.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(),
        ["looking", "/restart api-1"],
        "time order"
    );
    assert!(s.timeline(other.id).await.unwrap().is_empty());
    assert!(
        s.add_timeline(TimelineEntry {
            incident_id: 9999,
            at: t(0),
            actor: "dave".into(),
            kind: "note".into(),
            text: "orphan".into(),
        })
        .await
        .is_err(),
        "a timeline entry needs its incident"
    );

    assert_eq!(s.open_incidents().await.unwrap().len(), 2);
    assert!(s.close_incident(opened.id, t(30)).await.unwrap());
    assert!(!s.close_incident(opened.id, t(31)).await.unwrap());
    assert_eq!(
        s.get_incident(opened.id).await.unwrap().unwrap().closed_at,
        Some(t(30))
    );
    assert_eq!(
        s.open_incidents()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect::<Vec<_>>(),
        [other.id]
    );
}

async fn state_survives_reopening_the_store(f: Fixture) {
    five_entries(&*f.store).await;
    let a = Approvals::new(f.store.clone());
    let r = a.create(new_request("alice", 1, TTL), t(0)).await.unwrap();
    // Opening again re-runs the migration step, which must find nothing to do.
    let again = f.second_store().await;
    let report = verify_audit(&*again).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.checked, 6);
    assert_eq!(Approvals::new(again).get(&r.id).await.unwrap().unwrap(), r);
}

async fn replicas_opening_a_fresh_store_at_once_all_start_and_share_one_chain(mut f: Fixture) {
    let stores: Vec<_> = f
        .open_fresh_concurrently(4)
        .await
        .into_iter()
        .map(|s| s.expect("every replica opens the store"))
        .collect();
    for (i, s) in stores.iter().enumerate() {
        s.append_audit(entry(&format!("replica-{i}"), "status", &[], t(0)))
            .await
            .unwrap();
    }
    let report = verify_audit(&*stores[0]).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.checked, 4);
    assert_eq!(
        verify_audit(&*f.store).await.unwrap().checked,
        0,
        "the fresh store is separate from the fixture's"
    );
}

const LEASE: Duration = Duration::from_secs(120);

/// A replica on another host: nothing about its process can be proven from here, only its lease counts.
fn remote_replica(name: &str) -> ReplicaId {
    ReplicaId {
        nonce: name.into(),
        host: format!("host-{name}"),
        pid: 4242,
        start: None,
        pid_ns: None,
        boot: None,
    }
}

/// A request approved at t(1) and claimed by `a` at t(2).
async fn executing(a: &Approvals) -> String {
    let r = a.create(new_request("alice", 1, TTL), t(0)).await.unwrap();
    a.approve(&r.id, "bob", &roles(&["approver"]), t(1))
        .await
        .unwrap();
    assert!(a.claim_for_execution(&r.id, &RUNNER, t(2)).await.unwrap());
    r.id
}

async fn a_live_lease_is_left_alone_and_an_expired_one_is_recovered_exactly_once_by_two_recoverers(
    f: Fixture,
) {
    let a = Approvals::new(f.store.clone()).as_replica(remote_replica("a"), LEASE);
    let id = executing(&a).await;
    let got = a.get(&id).await.unwrap().unwrap();
    assert_eq!(got.executor, Some(remote_replica("a").to_string()));
    assert_eq!(got.lease_until, Some(t(122)));

    let b = Approvals::new(f.second_store().await).as_replica(remote_replica("b"), LEASE);
    assert!(
        b.recover_interrupted(t(60)).await.unwrap().is_empty(),
        "a live lease is left alone"
    );
    assert!(a.renew_lease(&id, t(100)).await.unwrap());
    assert!(
        !b.renew_lease(&id, t(100)).await.unwrap(),
        "only the holder renews"
    );
    assert_eq!(a.get(&id).await.unwrap().unwrap().lease_until, Some(t(220)));
    assert!(
        b.recover_interrupted(t(200)).await.unwrap().is_empty(),
        "a renewed lease is still live"
    );
    assert_eq!(
        a.get(&id).await.unwrap().unwrap().state,
        ApprovalState::Executing
    );

    let c = Approvals::new(f.second_store().await).as_replica(remote_replica("c"), LEASE);
    let (x, y) = tokio::join!(b.recover_interrupted(t(221)), c.recover_interrupted(t(221)));
    let recovered: Vec<String> = x.unwrap().into_iter().chain(y.unwrap()).collect();
    assert_eq!(recovered, vec![id.clone()], "recovered exactly once");
    let got = a.get(&id).await.unwrap().unwrap();
    assert_eq!(got.state, ApprovalState::Failed);
    assert_eq!(
        got.result.as_deref(),
        Some("interrupted (replica a@host-a/pid=4242 stopped)")
    );
    assert!(!a.renew_lease(&id, t(222)).await.unwrap());
    assert!(!a.claim_for_execution(&id, &RUNNER, t(222)).await.unwrap());
    let failed = audit_of(&*f.store, AuditDecision::Failed).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("lease ended"), "{failed:?}");
    assert!(verify_audit(&*f.store).await.unwrap().is_ok());
}

async fn a_request_held_by_a_process_gone_from_this_host_is_recovered_before_its_lease_ends(
    f: Fixture,
) {
    let me = ReplicaId::current();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let gone = ReplicaId {
        nonce: "gone".into(),
        pid,
        ..me.clone()
    };
    let dead = executing(&Approvals::new(f.store.clone()).as_replica(gone, LEASE)).await;
    // This very process holds the other one: alive, so its request stays executing.
    let alive = executing(&Approvals::new(f.store.clone())).await;
    let observer = ReplicaId {
        nonce: "observer".into(),
        ..me.clone()
    };
    let recoverer = Approvals::new(f.second_store().await).as_replica(observer, LEASE);
    assert_eq!(
        recoverer.recover_interrupted(t(3)).await.unwrap(),
        vec![dead.clone()],
        "well before the lease ends at t(122)"
    );
    let got = recoverer.get(&dead).await.unwrap().unwrap();
    assert_eq!(got.state, ApprovalState::Failed);
    assert!(
        got.result.as_deref().unwrap().contains("replica gone@"),
        "{:?}",
        got.result
    );
    assert_eq!(
        recoverer.get(&alive).await.unwrap().unwrap().state,
        ApprovalState::Executing
    );
}
