//! Embedded SQLite store for a single node: one connection, used from tokio's blocking pool.
//!
//! rusqlite (with the `bundled` SQLite) rather than sqlx: no macros or offline query
//! metadata, a smaller build, and synchronous calls that sit naturally behind
//! `spawn_blocking`. Writes run in `BEGIN IMMEDIATE` transactions, so two processes on the
//! same file still form one audit chain (the second waits on the write lock).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::{classify, json_list, rows};
use crate::core::approvals::request::{ApprovalRequest, ApprovalState, Review};
use crate::core::store::{
    AuditEntry, AuditHead, AuditKey, AuditQuery, Incident, LeaseCheck, NewAuditEntry, NewIncident,
    ReviewAdded, Store, StoreError, StoreResult, TimelineEntry, Transition, entry_hash, to_micros,
};

/// Schema versions, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY,
    at             INTEGER NOT NULL,
    actor          TEXT    NOT NULL,
    roles          TEXT    NOT NULL,
    channel        TEXT    NOT NULL,
    command        TEXT    NOT NULL,
    args           TEXT    NOT NULL,
    target         TEXT    NOT NULL,
    decision       TEXT    NOT NULL,
    result         TEXT    NOT NULL,
    duration_ms    INTEGER NOT NULL,
    correlation_id TEXT    NOT NULL,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor, at);
CREATE INDEX audit_log_command ON audit_log (command, at);
CREATE INDEX audit_log_correlation ON audit_log (correlation_id);
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_id   INTEGER NOT NULL,
    last_hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, last_id, last_hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
CREATE TABLE approvals (
    id              TEXT    PRIMARY KEY,
    command         TEXT    NOT NULL,
    args            TEXT    NOT NULL,
    targets         TEXT    NOT NULL,
    requester       TEXT    NOT NULL,
    requester_roles TEXT    NOT NULL,
    approver_roles  TEXT    NOT NULL,
    min_approvals   INTEGER NOT NULL,
    channel         TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    digest          TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    result          TEXT,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX approvals_state ON approvals (state);
CREATE TABLE approval_reviews (
    approval_id TEXT    NOT NULL REFERENCES approvals (id),
    reviewer    TEXT    NOT NULL,
    decision    TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (approval_id, reviewer)
);
CREATE TABLE incidents (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    channel   TEXT    NOT NULL,
    thread_id TEXT    UNIQUE,
    title     TEXT    NOT NULL,
    opened_by TEXT    NOT NULL,
    opened_at INTEGER NOT NULL,
    closed_at INTEGER
);
CREATE TABLE incident_timeline (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    text        TEXT    NOT NULL
);
CREATE INDEX incident_timeline_incident ON incident_timeline (incident_id, at);
"#,
    // Leases: who executes a request and until when, so recovery leaves live replicas alone.
    r#"
ALTER TABLE approvals ADD COLUMN executor TEXT;
ALTER TABLE approvals ADD COLUMN lease_until INTEGER;
"#,
    // How each audited event came in (discord, console:<os user>, approvals).
    r#"
ALTER TABLE audit_log ADD COLUMN via TEXT NOT NULL DEFAULT '';
"#,
];

const AUDIT_COLUMNS: &str = "id, at, actor, roles, channel, command, args, target, decision, \
     result, duration_ms, correlation_id, prev_hash, hash, via";
const APPROVAL_COLUMNS: &str = "id, command, args, targets, requester, requester_roles, \
     approver_roles, min_approvals, channel, correlation_id, created_at, expires_at, digest, \
     state, result, updated_at, executor, lease_until";
const INCIDENT_COLUMNS: &str = "id, channel, thread_id, title, opened_by, opened_at, closed_at";

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    key: Option<Arc<AuditKey>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, or an in-memory one for `:memory:`,
    /// and applies pending migrations.
    pub async fn open(path: &str) -> anyhow::Result<Self> {
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || -> anyhow::Result<Connection> {
            let mut conn = if path == ":memory:" {
                Connection::open_in_memory()?
            } else {
                Connection::open(&path).with_context(|| format!("opening SQLite store {path}"))?
            };
            // Another process holding the write lock is waited for, not reported as an error.
            conn.busy_timeout(Duration::from_secs(10))?;
            conn.pragma_update(None, "foreign_keys", true)?;
            if path != ":memory:" {
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "NORMAL")?;
            }
            migrate(&mut conn).with_context(|| format!("migrating SQLite store {path}"))?;
            Ok(conn)
        })
        .await??;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            key: None,
        })
    }

    /// Hashes new audit entries with `key` (see [`AuditKey`]).
    pub fn with_audit_key(mut self, key: Option<AuditKey>) -> Self {
        self.key = key.map(Arc::new);
        self
    }

    /// Tampering in tests, as someone with access to the file could.
    #[cfg(test)]
    pub(crate) async fn raw_sql(&self, sql: &str) -> StoreResult<()> {
        let sql = sql.to_owned();
        self.run(move |c| Ok(c.execute_batch(&sql)?)).await
    }

    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await
        .map_err(|e| StoreError::Failed(e.into()))?
        .map_err(classify)
    }
}

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done: usize = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if done > MIGRATIONS.len() {
        anyhow::bail!(
            "the store is at schema version {done}, newer than this build knows ({})",
            MIGRATIONS.len()
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        tx.execute_batch(sql)
            .with_context(|| format!("migration {}", i + 1))?;
        tx.pragma_update(None, "user_version", i + 1)?;
    }
    tx.commit()?;
    Ok(())
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn instant(v: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v).ok_or(rusqlite::Error::IntegralValueOutOfRange(0, v))
}

fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

impl rows::Columns for Row<'_> {
    fn text(&self, col: &str) -> anyhow::Result<String> {
        Ok(self.get(col)?)
    }
    fn opt_text(&self, col: &str) -> anyhow::Result<Option<String>> {
        Ok(self.get(col)?)
    }
    fn list(&self, col: &str) -> anyhow::Result<Vec<String>> {
        json_list(&self.get::<_, String>(col)?)
    }
    fn int(&self, col: &str) -> anyhow::Result<i64> {
        Ok(self.get(col)?)
    }
    fn opt_instant(&self, col: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
        Ok(self.get::<_, Option<i64>>(col)?.map(instant).transpose()?)
    }
}

/// A shared row mapping as rusqlite's row callbacks want it. `ToSqlConversionFailure` is the
/// variant that carries any error as is (its message is the mapping's own).
fn mapped<T>(map: fn(&Row<'_>) -> anyhow::Result<T>) -> impl Fn(&Row<'_>) -> rusqlite::Result<T> {
    move |r| map(r).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
}

fn load_reviews(conn: &Connection, req: &mut ApprovalRequest) -> anyhow::Result<()> {
    let mut st = conn.prepare_cached(
        "SELECT reviewer, decision, reason, at FROM approval_reviews WHERE approval_id = ?1 ORDER BY at, reviewer",
    )?;
    req.reviews = st
        .query_map([&req.id], mapped(|r| rows::review(r)))?
        .collect::<Result<_, _>>()?;
    Ok(())
}

/// Appends inside the caller's write transaction, which already holds SQLite's write lock,
/// so reading the head and writing the next entry cannot interleave with another writer.
fn append(
    tx: &rusqlite::Transaction<'_>,
    mut e: NewAuditEntry,
    key: Option<&AuditKey>,
) -> anyhow::Result<AuditEntry> {
    e = e.normalized();
    let (last_id, prev_hash): (i64, String) = tx.query_row(
        "SELECT last_id, last_hash FROM audit_head WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let id = last_id + 1;
    let hash = entry_hash(&prev_hash, id, &e, key);
    tx.execute(
        &format!("INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
        params![
            id,
            micros(e.at),
            e.actor,
            json(&e.roles),
            e.channel,
            e.command,
            e.args,
            json(&e.target),
            e.decision.as_str(),
            e.result,
            e.duration_ms as i64,
            e.correlation_id,
            prev_hash,
            hash,
            e.via,
        ],
    )?;
    tx.execute(
        "UPDATE audit_head SET last_id = ?1, last_hash = ?2 WHERE id = 1",
        params![id, hash],
    )?;
    Ok(AuditEntry {
        id,
        entry: e,
        prev_hash,
        hash,
    })
}

fn write_tx(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

#[async_trait]
impl Store for SqliteStore {
    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry> {
        let key = self.key.clone();
        self.run(move |c| {
            let tx = write_tx(c)?;
            let e = append(&tx, entry, key.as_deref())?;
            tx.commit()?;
            Ok(e)
        })
        .await
    }

    async fn query_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let q = q.clone();
        self.run(move |c| {
            let sql = format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log
                 WHERE (?1 IS NULL OR actor = ?1)
                   AND (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(audit_log.target) WHERE value = ?2))
                   AND (?3 IS NULL OR command = ?3)
                   AND (?4 IS NULL OR decision = ?4)
                   AND (?5 IS NULL OR at >= ?5)
                   AND (?6 IS NULL OR at < ?6)
                   AND (?8 IS NULL OR correlation_id = ?8)
                 ORDER BY id DESC LIMIT ?7"
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(
                params![
                    q.actor,
                    q.target,
                    q.command,
                    q.decision.map(|d| d.as_str()),
                    q.since.map(micros),
                    q.until.map(micros),
                    q.limit,
                    q.correlation_id,
                ],
                mapped(|r| rows::audit_entry(r)),
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn audit_page(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        self.run(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = st.query_map(params![after_id, limit], mapped(|r| rows::audit_entry(r)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn audit_head(&self) -> StoreResult<AuditHead> {
        self.run(|c| {
            Ok(c.query_row(
                "SELECT last_id, last_hash FROM audit_head WHERE id = 1",
                [],
                |r| {
                    Ok(AuditHead {
                        last_id: r.get(0)?,
                        last_hash: r.get(1)?,
                    })
                },
            )?)
        })
        .await
    }

    async fn insert_approval(
        &self,
        request: &ApprovalRequest,
        audit: NewAuditEntry,
    ) -> StoreResult<bool> {
        let r = request.clone();
        let key = self.key.clone();
        self.run(move |c| {
            let tx = write_tx(c)?;
            let inserted = tx.execute(
                &format!(
                    "INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
                     ON CONFLICT (id) DO NOTHING"
                ),
                params![
                    r.id,
                    r.command,
                    r.args,
                    json(&r.targets),
                    r.requester,
                    json(&r.requester_roles),
                    json(&r.approver_roles),
                    r.min_approvals,
                    r.channel,
                    r.correlation_id,
                    micros(r.created_at),
                    micros(r.expires_at),
                    r.digest,
                    r.state.as_str(),
                    r.result,
                    micros(r.updated_at),
                    r.executor,
                    r.lease_until.map(micros),
                ],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            for rv in &r.reviews {
                tx.execute(
                    "INSERT INTO approval_reviews (approval_id, reviewer, decision, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![r.id, rv.reviewer, rv.decision.as_str(), rv.reason, micros(rv.at)],
                )?;
            }
            append(&tx, audit, key.as_deref())?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn get_approval(&self, id: &str) -> StoreResult<Option<ApprovalRequest>> {
        let id = id.to_owned();
        self.run(move |c| {
            let req = c
                .query_row(
                    &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1"),
                    [&id],
                    mapped(|r| rows::approval(r)),
                )
                .optional()?;
            let Some(mut req) = req else { return Ok(None) };
            load_reviews(c, &mut req)?;
            Ok(Some(req))
        })
        .await
    }

    async fn list_approvals(&self, states: &[ApprovalState]) -> StoreResult<Vec<ApprovalRequest>> {
        let states = json(
            &states
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect::<Vec<_>>(),
        );
        self.run(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {APPROVAL_COLUMNS} FROM approvals
                 WHERE state IN (SELECT value FROM json_each(?1)) ORDER BY created_at, id"
            ))?;
            let mut reqs: Vec<ApprovalRequest> = st
                .query_map([states], mapped(|r| rows::approval(r)))?
                .collect::<Result<_, _>>()?;
            for r in &mut reqs {
                load_reviews(c, r)?;
            }
            Ok(reqs)
        })
        .await
    }

    async fn add_review(
        &self,
        id: &str,
        review: &Review,
        audit: NewAuditEntry,
    ) -> StoreResult<ReviewAdded> {
        let (id, rv) = (id.to_owned(), review.clone());
        let key = self.key.clone();
        self.run(move |c| {
            let tx = write_tx(c)?;
            let open: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM approvals WHERE id = ?1 AND state = 'pending' AND expires_at > ?2",
                    params![id, micros(rv.at)],
                    |r| r.get(0),
                )
                .optional()?;
            if open.is_none() {
                return Ok(ReviewAdded::NotOpen);
            }
            let added = tx.execute(
                "INSERT INTO approval_reviews (approval_id, reviewer, decision, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (approval_id, reviewer) DO NOTHING",
                params![id, rv.reviewer, rv.decision.as_str(), rv.reason, micros(rv.at)],
            )?;
            if added == 0 {
                return Ok(ReviewAdded::Duplicate);
            }
            let approvals: u32 = tx.query_row(
                "SELECT count(*) FROM approval_reviews WHERE approval_id = ?1 AND decision = 'approve'",
                [&id],
                |r| r.get(0),
            )?;
            append(&tx, audit, key.as_deref())?;
            tx.commit()?;
            Ok(ReviewAdded::Added { approvals })
        })
        .await
    }

    async fn transition(&self, t: Transition) -> StoreResult<bool> {
        let key = self.key.clone();
        self.run(move |c| {
            let tx = write_tx(c)?;
            let from = json(
                &t.from
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect::<Vec<_>>(),
            );
            let (expired_at, held_by) = LeaseCheck::params(&t.lease_check);
            let changed = tx.execute(
                "UPDATE approvals SET state = ?1, result = coalesce(?2, result), updated_at = ?3,
                        executor = coalesce(?7, executor), lease_until = coalesce(?8, lease_until)
                 WHERE id = ?4 AND state IN (SELECT value FROM json_each(?5))
                   AND (?6 IS NULL OR expires_at > ?6)
                   AND (?9 IS NULL OR lease_until IS NULL OR lease_until <= ?9)
                   AND (?10 IS NULL OR executor = ?10)",
                params![
                    t.to.as_str(),
                    t.result,
                    micros(to_micros(t.at)),
                    t.id,
                    from,
                    t.unexpired_at.map(micros),
                    t.lease.as_ref().map(|l| l.executor.clone()),
                    t.lease.as_ref().map(|l| micros(l.until)),
                    expired_at.map(micros),
                    held_by,
                ],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            append(&tx, t.audit, key.as_deref())?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn renew_lease(
        &self,
        id: &str,
        executor: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (id, executor) = (id.to_owned(), executor.to_owned());
        self.run(move |c| {
            Ok(c.execute(
                "UPDATE approvals SET lease_until = ?1 WHERE id = ?2 AND state = 'executing' AND executor = ?3",
                params![micros(until), id, executor],
            )? == 1)
        })
        .await
    }

    async fn open_incident(&self, i: NewIncident) -> StoreResult<Incident> {
        self.run(move |c| {
            let opened_at = to_micros(i.opened_at);
            let tx = write_tx(c)?;
            tx.execute(
                "INSERT INTO incidents (channel, thread_id, title, opened_by, opened_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![i.channel, i.thread_id, i.title, i.opened_by, micros(opened_at)],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(Incident {
                id,
                channel: i.channel,
                thread_id: i.thread_id,
                title: i.title,
                opened_by: i.opened_by,
                opened_at,
                closed_at: None,
            })
        })
        .await
    }

    async fn set_incident_thread(&self, id: i64, thread_id: &str) -> StoreResult<bool> {
        let thread_id = thread_id.to_owned();
        self.run(move |c| {
            Ok(c.execute(
                "UPDATE incidents SET thread_id = ?1 WHERE id = ?2",
                params![thread_id, id],
            )? == 1)
        })
        .await
    }

    async fn close_incident(&self, id: i64, at: DateTime<Utc>) -> StoreResult<bool> {
        self.run(move |c| {
            Ok(c.execute(
                "UPDATE incidents SET closed_at = ?1 WHERE id = ?2 AND closed_at IS NULL",
                params![micros(at), id],
            )? == 1)
        })
        .await
    }

    async fn get_incident(&self, id: i64) -> StoreResult<Option<Incident>> {
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"),
                [id],
                mapped(|r| rows::incident(r)),
            )
            .optional()?)
        })
        .await
    }

    async fn incident_by_thread(&self, thread_id: &str) -> StoreResult<Option<Incident>> {
        let thread_id = thread_id.to_owned();
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE thread_id = ?1"),
                [thread_id],
                mapped(|r| rows::incident(r)),
            )
            .optional()?)
        })
        .await
    }

    async fn open_incidents(&self) -> StoreResult<Vec<Incident>> {
        self.run(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE closed_at IS NULL ORDER BY opened_at, id"
            ))?;
            Ok(st.query_map([], mapped(|r| rows::incident(r)))?.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn add_timeline(&self, e: TimelineEntry) -> StoreResult<()> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO incident_timeline (incident_id, at, actor, kind, text) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.incident_id, micros(e.at), e.actor, e.kind, e.text],
            )
            .with_context(|| format!("adding to the timeline of incident {}", e.incident_id))?;
            Ok(())
        })
        .await
    }

    async fn timeline(&self, incident_id: i64) -> StoreResult<Vec<TimelineEntry>> {
        self.run(move |c| {
            let mut st = c.prepare_cached(
                "SELECT incident_id, at, actor, kind, text FROM incident_timeline WHERE incident_id = ?1 ORDER BY at, id",
            )?;
            let rows = st.query_map([incident_id], mapped(|r| rows::timeline_entry(r)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}
