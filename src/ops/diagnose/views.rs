//! Per-domain command outputs (db, redis, storage, temporal, network) as plain tables.

use std::fmt::Write as _;
use std::time::Duration;

use crate::core::engine::Engine;
use crate::core::platform::TemporalTarget;
use crate::core::types::{DnsName, format_bytes};
use crate::ops::diagnose::probes::exec;
use crate::ops::diagnose::probes::http::HttpProbe;
use crate::ops::diagnose::probes::postgres::{self, PostgresProbe};
use crate::ops::diagnose::probes::redis::{KeyPattern, RedisProbe, facts_from_info, parse_info};
use crate::ops::diagnose::probes::s3::{S3Probe, parse_key};
use crate::ops::diagnose::probes::{Facts, ProbeStatus};

/// A titled table with notes; the caller renders it (text, Markdown, an embed).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableData {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub notes: Vec<String>,
}

impl TableData {
    fn new(title: impl Into<String>, headers: &[&str]) -> Self {
        Self {
            title: title.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            ..Default::default()
        }
    }
    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Aligned plain text (for a code block).
    pub fn to_text(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(c.chars().count());
                }
            }
        }
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.title);
        let line = |cells: &[String]| {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        if !self.headers.is_empty() {
            let _ = writeln!(out, "{}", line(&self.headers));
        }
        for r in &self.rows {
            let _ = writeln!(out, "{}", line(r));
        }
        if self.rows.is_empty() {
            let _ = writeln!(out, "(no rows)");
        }
        for n in &self.notes {
            let _ = writeln!(out, "{n}");
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbView {
    Activity,
    Locks,
    Size,
    Slow,
    Connections,
    Cache,
}

impl DbView {
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "activity" => Self::Activity,
            "locks" => Self::Locks,
            "size" => Self::Size,
            "slow" => Self::Slow,
            "connections" => Self::Connections,
            "cache" => Self::Cache,
            _ => {
                return Err(format!(
                    "{} is not a db view: use activity, locks, size, slow, connections or cache",
                    crate::core::report::code(s)
                ));
            }
        })
    }
}

pub async fn db(pg: &PostgresProbe, view: DbView) -> Result<TableData, String> {
    let client = pg.client().await?;
    let c: &tokio_postgres::Client = &client;
    Ok(match view {
        DbView::Activity => {
            let mut t = TableData::new(
                "Postgres: active sessions (oldest first)",
                &["pid", "age", "state", "db", "query"],
            );
            for a in postgres::activity(c).await? {
                t.row(vec![
                    a.pid.to_string(),
                    format!("{:.1} s", a.age_secs),
                    a.state,
                    a.database,
                    a.query,
                ]);
            }
            t
        }
        DbView::Locks => {
            let mut t = TableData::new(
                "Postgres: locks not granted",
                &["pid", "mode", "type", "relation", "blocked by"],
            );
            for l in postgres::lock_waits(c).await? {
                let by = l
                    .blocked_by
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                t.row(vec![l.pid.to_string(), l.mode, l.locktype, l.relation, by]);
            }
            t
        }
        DbView::Size => {
            let mut t = TableData::new("Postgres: database sizes", &["database", "size"]);
            for (db, size) in postgres::sizes(c).await? {
                t.row(vec![db, format_bytes(size.max(0) as u64)]);
            }
            t
        }
        DbView::Slow => {
            let mut t = TableData::new(
                "Postgres: slowest statements (pg_stat_statements)",
                &["mean ms", "calls", "query"],
            );
            match postgres::slow(c).await {
                Ok(rows) => {
                    for s in rows {
                        t.row(vec![
                            format!("{:.2}", s.mean_ms),
                            s.calls.to_string(),
                            s.query,
                        ]);
                    }
                }
                Err(e) => t
                    .notes
                    .push(format!("pg_stat_statements is not available: {e}")),
            }
            t
        }
        DbView::Connections => {
            let (version, conns, max, tenant) = postgres::overview(c).await?;
            let mut t = TableData::new("Postgres: connections", &["metric", "value"]);
            t.row(vec!["version".into(), version]);
            t.row(vec!["connections".into(), conns.to_string()]);
            t.row(vec!["max_connections".into(), max.to_string()]);
            t.row(vec![
                "app.tenant_id (this session)".into(),
                tenant
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "(not set)".into()),
            ]);
            t
        }
        DbView::Cache => {
            let (hit, read, ratio) = postgres::cache(c).await?;
            let mut t = TableData::new(
                "Postgres: heap cache hit ratio (user tables)",
                &["heap_hit", "heap_read", "ratio"],
            );
            t.row(vec![
                format!("{hit:.0}"),
                format!("{read:.0}"),
                ratio.map_or("n/a (no reads yet)".into(), |r| {
                    format!("{:.2}%", r * 100.0)
                }),
            ]);
            t
        }
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisView {
    Info,
    Memory,
    Persistence,
    Keys(KeyPattern),
}

pub async fn redis(r: &RedisProbe, view: RedisView) -> Result<TableData, String> {
    Ok(match view {
        RedisView::Info => {
            let observed = r.probe().await?;
            let mut t = TableData::new("Redis: overview", &["metric", "value"]);
            if let Facts::Redis(f) = observed.facts {
                t.row(vec![
                    "ping".into(),
                    if f.pong {
                        "PONG".into()
                    } else {
                        "no answer".into()
                    },
                ]);
                t.row(vec!["used_memory".into(), format_bytes(f.used_memory)]);
                t.row(vec![
                    "maxmemory".into(),
                    if f.maxmemory == 0 {
                        "unlimited".into()
                    } else {
                        format_bytes(f.maxmemory)
                    },
                ]);
                t.row(vec!["maxmemory_policy".into(), f.maxmemory_policy]);
                t.row(vec!["aof_enabled".into(), f.aof_enabled.to_string()]);
                for (db, keys) in f.keyspace {
                    t.row(vec![db, format!("{keys} keys")]);
                }
            }
            if observed.status != ProbeStatus::Pass {
                t.notes.extend(observed.evidence);
            }
            t
        }
        RedisView::Memory | RedisView::Persistence => {
            let section = if view == RedisView::Memory {
                "memory"
            } else {
                "persistence"
            };
            let info = parse_info(&r.info(section).await?);
            let wanted: &[&str] = if view == RedisView::Memory {
                &[
                    "used_memory_human",
                    "used_memory_peak_human",
                    "maxmemory_human",
                    "maxmemory_policy",
                    "mem_fragmentation_ratio",
                ]
            } else {
                &[
                    "aof_enabled",
                    "aof_last_write_status",
                    "aof_last_bgrewrite_status",
                    "rdb_last_bgsave_status",
                    "rdb_changes_since_last_save",
                    "rdb_last_save_time",
                ]
            };
            let mut t = TableData::new(format!("Redis: INFO {section}"), &["field", "value"]);
            for k in wanted {
                if let Some(v) = info.get(*k) {
                    t.row(vec![k.to_string(), v.clone()]);
                }
            }
            let f = facts_from_info(true, &info);
            if view == RedisView::Persistence
                && (f.aof_last_write_status == "err" || f.rdb_last_bgsave_status == "err")
            {
                t.notes.push(
                    "Persistence is failing: check the data volume's free space and permissions."
                        .into(),
                );
            }
            t
        }
        RedisView::Keys(pattern) => {
            let (keys, cut) = r.keys(&pattern).await?;
            let mut t = TableData::new(
                format!("Redis: keys matching {} (SCAN)", pattern.as_str()),
                &["key"],
            );
            for k in keys {
                t.row(vec![k]);
            }
            if cut {
                t.notes.push(format!(
                    "Listing stopped at {} keys; narrow the pattern.",
                    crate::ops::diagnose::probes::redis::MAX_KEYS
                ));
            }
            t
        }
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageView {
    Buckets,
    /// The configured bucket: exists, a few keys.
    Stat,
    /// One object's metadata.
    Check(String),
}

pub async fn storage(s3: &S3Probe, view: StorageView) -> Result<TableData, String> {
    Ok(match view {
        StorageView::Buckets => {
            let mut t = TableData::new("S3: buckets", &["bucket", "created"]);
            for (name, created) in s3.buckets().await? {
                t.row(vec![name, created.unwrap_or_default()]);
            }
            t
        }
        StorageView::Stat => {
            let (exists, status) = s3.bucket_exists().await?;
            let mut t = TableData::new(format!("S3: bucket {}", s3.bucket), &["field", "value"]);
            t.row(vec!["endpoint".into(), s3.endpoint.clone()]);
            t.row(vec!["exists".into(), format!("{exists} (HTTP {status})")]);
            if exists {
                let (keys, more) = s3.list(None, 10).await?;
                t.row(vec![
                    "first keys".into(),
                    format!("{}{}", keys.join(", "), if more { ", …" } else { "" }),
                ]);
            } else {
                t.notes.push(match &s3.init_job {
                    Some(job) => format!(
                        "The bucket is missing: re-create it with the init job (`docker compose run --rm {job}`)."
                    ),
                    None => "The bucket is missing: re-create it the way the platform first created it.".into(),
                });
            }
            t
        }
        StorageView::Check(key) => {
            let key = parse_key(&key)?;
            let o = s3.stat(&key).await?;
            let mut t = TableData::new(
                format!("S3: {}/{}", s3.bucket, crate::core::report::code(&key)),
                &["field", "value"],
            );
            t.row(vec!["status".into(), o.status.to_string()]);
            t.row(vec![
                "size".into(),
                o.size.map_or("-".into(), |s| s.to_string()),
            ]);
            t.row(vec!["etag".into(), o.etag.unwrap_or_else(|| "-".into())]);
            t.row(vec![
                "last modified".into(),
                o.last_modified.unwrap_or_else(|| "-".into()),
            ]);
            t
        }
    })
}

/// Workflows from the Temporal HTTP API (`GET /api/v1/namespaces/NS/workflows`).
pub async fn temporal_workflows(http: &HttpProbe, t: &TemporalTarget) -> Result<TableData, String> {
    let ns = DnsName::parse(&t.namespace).map_err(|e| format!("temporal namespace: {e}"))?;
    let url = format!(
        "{}/api/v1/namespaces/{}/workflows",
        t.url.trim_end_matches('/'),
        ns.as_str()
    );
    let (status, _, body) = http.get(&url).await?;
    if status != 200 {
        return Err(format!("GET {url} answered HTTP {status}"));
    }
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("GET {url}: not JSON ({e})"))?;
    let mut table = TableData::new(
        format!("Temporal: workflows in namespace {}", ns.as_str()),
        &["workflow id", "type", "status"],
    );
    let list = v
        .get("executions")
        .and_then(|e| e.as_array())
        .ok_or_else(|| format!("GET {url}: no `executions` list in the answer"))?;
    let s = |w: &serde_json::Value, k: &str| {
        w.get(k).and_then(|x| x.as_str()).unwrap_or("-").to_string()
    };
    for w in list {
        table.row(vec![s(w, "workflow_id"), s(w, "type"), s(w, "status")]);
    }
    let running = list.iter().filter(|w| s(w, "status") == "Running").count();
    table
        .notes
        .push(format!("{} workflows, {running} running", list.len()));
    Ok(table)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkView {
    Dns {
        from: DnsName,
        name: DnsName,
    },
    Port {
        from: DnsName,
        host: DnsName,
        port: u16,
    },
    Inspect,
}

pub async fn network(
    engine: &dyn Engine,
    view: NetworkView,
    timeout: Duration,
) -> Result<TableData, String> {
    let running_container = |service: &DnsName, cs: &[crate::core::engine::ContainerInfo]| {
        cs.iter()
            .find(|c| c.service == service.as_str() && c.state == "running")
            .cloned()
            .ok_or_else(|| format!("no running container for service `{}`", service.as_str()))
    };
    Ok(match view {
        NetworkView::Inspect => {
            let mut t = TableData::new(
                "Networks of the project",
                &["network", "driver", "subnet", "containers"],
            );
            for n in engine.networks().await.map_err(|e| e.to_string())? {
                let members = n
                    .containers
                    .iter()
                    .map(|(c, ip)| format!("{c} {ip}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                t.row(vec![
                    n.name,
                    n.driver,
                    n.subnet.unwrap_or_default(),
                    members,
                ]);
            }
            t
        }
        NetworkView::Dns { from, name } => {
            let cs = engine.containers().await.map_err(|e| e.to_string())?;
            let c = running_container(&from, &cs)?;
            let o = exec::resolve(engine, &c, std::slice::from_ref(&name), timeout).await?;
            let mut t = TableData::new(format!("DNS from {}", from.as_str()), &["name", "address"]);
            if let Facts::Dns(d) = o.facts {
                for (n, a) in d.answers {
                    t.row(vec![n, a.unwrap_or_else(|| "does not resolve".into())]);
                }
            }
            t.notes.extend(o.evidence);
            t
        }
        NetworkView::Port { from, host, port } => {
            let cs = engine.containers().await.map_err(|e| e.to_string())?;
            let c = running_container(&from, &cs)?;
            let o = exec::port_open(engine, &c, &host, port, timeout).await?;
            let mut t =
                TableData::new(format!("TCP from {}", from.as_str()), &["target", "result"]);
            let open = matches!(&o.facts, Facts::Port(p) if p.open);
            t.row(vec![
                format!("{}:{port}", host.as_str()),
                if open {
                    "open".into()
                } else {
                    "closed or unreachable".into()
                },
            ]);
            t.notes.extend(o.evidence);
            t
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_aligned_with_notes() {
        let mut t = TableData::new("Postgres: database sizes", &["database", "size"]);
        t.row(vec!["app".into(), "7.5 MiB".into()]);
        t.row(vec!["temporal".into(), "7.4 MiB".into()]);
        t.notes.push("2 databases".into());
        let text = t.to_text();
        assert_eq!(
            text,
            "Postgres: database sizes\ndatabase  size\napp       7.5 MiB\ntemporal  7.4 MiB\n2 databases\n"
        );
    }

    #[test]
    fn unknown_db_view_names_the_valid_ones() {
        let e = DbView::parse("bloat").unwrap_err();
        assert!(
            e.contains("activity, locks, size, slow, connections or cache"),
            "{e}"
        );
        assert_eq!(DbView::parse("locks").unwrap(), DbView::Locks);
    }
}
