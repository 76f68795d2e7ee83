//! Postgres probe over a small pool: readiness, connections, long queries, lock waits, sizes, cache, slow statements.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::core::platform::PostgresTarget;

use super::{Facts, Observed, ProbeStatus};

#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub pid: i32,
    pub age_secs: f64,
    pub state: String,
    pub database: String,
    pub query: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LockWait {
    pub pid: i32,
    pub mode: String,
    pub locktype: String,
    pub relation: String,
    pub blocked_by: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlowStatement {
    pub query: String,
    pub calls: i64,
    pub mean_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PostgresFacts {
    pub version: String,
    pub connections: i64,
    pub max_connections: i64,
    /// Non-idle sessions other than the probe's, oldest first.
    pub activity: Vec<Activity>,
    pub lock_waits: Vec<LockWait>,
    /// (database, bytes)
    pub sizes: Vec<(String, i64)>,
    /// heap blocks hit / (hit + read) over user tables; None before any read.
    pub cache_hit_ratio: Option<f64>,
    /// None when pg_stat_statements is not installed (the reason is in `notes`).
    pub slow: Option<Vec<SlowStatement>>,
    /// `current_setting('app.tenant_id', true)` of the probe's session.
    pub tenant_id: Option<String>,
    pub notes: Vec<String>,
}

/// Queries older than this are called out.
pub const LONG_QUERY_SECS: f64 = 300.0;

pub const SQL_OVERVIEW: &str = "SELECT split_part(version(), ' ', 2), \
     current_setting('max_connections')::bigint, \
     (SELECT count(*) FROM pg_stat_activity)::bigint, \
     current_setting('app.tenant_id', true)";
pub const SQL_ACTIVITY: &str = "SELECT pid, \
     coalesce(extract(epoch FROM clock_timestamp() - query_start), 0)::float8, \
     coalesce(state, ''), coalesce(datname, ''), left(coalesce(query, ''), 200) \
     FROM pg_stat_activity \
     WHERE state IS NOT NULL AND state <> 'idle' AND pid <> pg_backend_pid() \
     ORDER BY query_start ASC NULLS LAST LIMIT 20";
pub const SQL_LOCKS: &str = "SELECT l.pid, l.mode, l.locktype, \
     coalesce(l.relation::regclass::text, ''), pg_blocking_pids(l.pid) \
     FROM pg_locks l WHERE NOT l.granted ORDER BY l.pid LIMIT 50";
pub const SQL_SIZES: &str = "SELECT datname, pg_database_size(datname)::bigint FROM pg_database \
     WHERE datallowconn ORDER BY 2 DESC";
pub const SQL_CACHE: &str = "SELECT coalesce(sum(heap_blks_hit), 0)::float8, \
     coalesce(sum(heap_blks_read), 0)::float8 FROM pg_statio_user_tables";
pub const SQL_SLOW: &str = "SELECT left(query, 200), calls::bigint, mean_exec_time::float8 \
     FROM pg_stat_statements ORDER BY mean_exec_time DESC LIMIT 10";

pub struct PostgresProbe {
    pool: Pool,
}

impl PostgresProbe {
    /// Builds the pool; no connection is made until the first probe.
    pub fn new(t: &PostgresTarget, connect_timeout: Duration) -> Result<Self, String> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&t.host)
            .port(t.port)
            .user(&t.user)
            .dbname(&t.database)
            .password(t.password.expose())
            .application_name("container-ops")
            .connect_timeout(connect_timeout);
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(4)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(connect_timeout))
            .wait_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| format!("postgres pool: {e}"))?;
        Ok(Self { pool })
    }

    pub async fn client(&self) -> Result<deadpool_postgres::Client, String> {
        self.pool.get().await.map_err(|e| describe_pool_error(&e))
    }

    /// The `/diagnose` probe: every query pipelined on one connection.
    pub async fn probe(&self) -> Result<Observed, String> {
        let client = self.client().await?;
        let facts = collect(&client).await?;
        let (status, evidence) = judge(&facts);
        Ok(Observed::new(
            status,
            evidence,
            Facts::Postgres(Box::new(facts)),
        ))
    }
}

fn describe_pool_error(e: &deadpool_postgres::PoolError) -> String {
    use std::error::Error as _;
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    msg
}

fn db_err(what: &str, e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{what}: {} ({})", d.message(), d.code().code()),
        None => format!("{what}: {e}"),
    }
}

pub async fn activity(c: &tokio_postgres::Client) -> Result<Vec<Activity>, String> {
    let rows = c
        .query(SQL_ACTIVITY, &[])
        .await
        .map_err(|e| db_err("activity", e))?;
    Ok(rows
        .iter()
        .map(|r| Activity {
            pid: r.get(0),
            age_secs: r.get(1),
            state: r.get(2),
            database: r.get(3),
            query: r.get(4),
        })
        .collect())
}

pub async fn lock_waits(c: &tokio_postgres::Client) -> Result<Vec<LockWait>, String> {
    let rows = c
        .query(SQL_LOCKS, &[])
        .await
        .map_err(|e| db_err("locks", e))?;
    Ok(rows
        .iter()
        .map(|r| LockWait {
            pid: r.get(0),
            mode: r.get(1),
            locktype: r.get(2),
            relation: r.get(3),
            blocked_by: r.get(4),
        })
        .collect())
}

pub async fn sizes(c: &tokio_postgres::Client) -> Result<Vec<(String, i64)>, String> {
    let rows = c
        .query(SQL_SIZES, &[])
        .await
        .map_err(|e| db_err("sizes", e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// (hit, read, ratio)
pub async fn cache(c: &tokio_postgres::Client) -> Result<(f64, f64, Option<f64>), String> {
    let row = c
        .query_one(SQL_CACHE, &[])
        .await
        .map_err(|e| db_err("cache", e))?;
    let (hit, read): (f64, f64) = (row.get(0), row.get(1));
    let ratio = (hit + read > 0.0).then(|| hit / (hit + read));
    Ok((hit, read, ratio))
}

pub async fn slow(c: &tokio_postgres::Client) -> Result<Vec<SlowStatement>, String> {
    let rows = c
        .query(SQL_SLOW, &[])
        .await
        .map_err(|e| db_err("pg_stat_statements", e))?;
    Ok(rows
        .iter()
        .map(|r| SlowStatement {
            query: r.get(0),
            calls: r.get(1),
            mean_ms: r.get(2),
        })
        .collect())
}

/// (version, connections, max_connections, tenant_id)
pub async fn overview(
    c: &tokio_postgres::Client,
) -> Result<(String, i64, i64, Option<String>), String> {
    let row = c
        .query_one(SQL_OVERVIEW, &[])
        .await
        .map_err(|e| db_err("overview", e))?;
    Ok((row.get(0), row.get(2), row.get(1), row.get(3)))
}

pub async fn collect(c: &tokio_postgres::Client) -> Result<PostgresFacts, String> {
    // tokio-postgres pipelines concurrent queries on one connection: one round trip's worth.
    let (ov, act, locks, sz, cache_r, slow_r) = futures::join!(
        overview(c),
        activity(c),
        lock_waits(c),
        sizes(c),
        cache(c),
        slow(c)
    );
    let (version, connections, max_connections, tenant_id) = ov?;
    let mut notes = Vec::new();
    let slow = match slow_r {
        Ok(s) => Some(s),
        Err(e) => {
            notes.push(e);
            None
        }
    };
    Ok(PostgresFacts {
        version,
        connections,
        max_connections,
        activity: act?,
        lock_waits: locks?,
        sizes: sz?,
        cache_hit_ratio: cache_r?.2,
        slow,
        tenant_id: tenant_id.filter(|t| !t.is_empty()),
        notes,
    })
}

pub fn judge(f: &PostgresFacts) -> (ProbeStatus, Vec<String>) {
    let mut status = ProbeStatus::Pass;
    let mut evidence = vec![format!(
        "PostgreSQL {} ready: {} of {} connections",
        f.version, f.connections, f.max_connections
    )];
    if f.max_connections > 0 && f.connections * 10 >= f.max_connections * 9 {
        status = ProbeStatus::Warn;
        evidence.push(format!(
            "connections near the limit: {} of {}",
            f.connections, f.max_connections
        ));
    }
    for a in f.activity.iter().filter(|a| a.age_secs >= LONG_QUERY_SECS) {
        status = ProbeStatus::Warn;
        evidence.push(format!(
            "pid {} {} for {:.0} s: {}",
            a.pid, a.state, a.age_secs, a.query
        ));
    }
    for l in &f.lock_waits {
        status = ProbeStatus::Warn;
        evidence.push(format!(
            "pid {} waits for {} on {} {}, blocked by {:?}",
            l.pid, l.mode, l.locktype, l.relation, l.blocked_by
        ));
    }
    evidence.extend(f.notes.iter().cloned());
    (status, evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_wait_and_a_long_query_make_the_probe_warn_with_the_blocker_pid() {
        let f = PostgresFacts {
            version: "15.8".into(),
            connections: 12,
            max_connections: 100,
            activity: vec![Activity {
                pid: 41,
                age_secs: 900.0,
                state: "idle in transaction".into(),
                database: "app".into(),
                query: "UPDATE tenant_records SET payload = 'x'".into(),
            }],
            lock_waits: vec![LockWait {
                pid: 42,
                mode: "RowExclusiveLock".into(),
                locktype: "relation".into(),
                relation: "tenant_records".into(),
                blocked_by: vec![41],
            }],
            ..Default::default()
        };
        let (status, ev) = judge(&f);
        assert_eq!(status, ProbeStatus::Warn);
        assert!(
            ev.iter()
                .any(|e| e.contains("pid 41") && e.contains("900 s")),
            "{ev:?}"
        );
        assert!(ev.iter().any(|e| e.contains("blocked by [41]")), "{ev:?}");
    }

    #[test]
    fn a_quiet_database_passes() {
        let f = PostgresFacts {
            version: "15.8".into(),
            connections: 5,
            max_connections: 100,
            ..Default::default()
        };
        assert_eq!(judge(&f).0, ProbeStatus::Pass);
    }
}
