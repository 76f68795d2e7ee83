//! The diagnosis chat commands (/diagnose, /health, /db, /redis, /storage, /temporal, /network-check) as Reports.

pub mod probes;
pub mod report;
pub mod rules;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use crate::core::args::Args;
use crate::core::catalog::Operation;
use crate::core::engine::Engine;
use crate::core::error::{PipelineError, UserError};
use crate::core::report::{Block, Report, Severity, code};
use crate::core::types::{DnsName, format_duration};
use crate::ops::diagnose::probes::redis::KeyPattern;
use crate::ops::diagnose::probes::s3::parse_key;
use crate::ops::diagnose::probes::{ProbeStatus, Probes};
use report::OpsReport;
use views::{DbView, NetworkView, RedisView, StorageView, TableData};

/// How long one exec check inside a container may take.
const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// A dependency that did not answer is the person's news, not an internal error.
fn unavailable(m: String) -> PipelineError {
    UserError::Unavailable(m).into()
}

fn missing(what: &str) -> PipelineError {
    unavailable(format!(
        "the platform config has no `[{what}]` section, so there is nothing to ask"
    ))
}

/// A diagnosis command with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Every probe and the report; focused on one service when named.
    Diagnose {
        service: Option<DnsName>,
    },
    /// The probes' verdicts, for one service, probe kind or target when named.
    Health {
        target: Option<String>,
    },
    Db(DbView),
    Redis(RedisView),
    Storage(StorageView),
    Temporal,
    NetworkCheck(NetworkView),
}

impl Request {
    /// `None` for operations of other families.
    pub fn parse(op: Operation, args: &Args) -> Result<Option<Self>, UserError> {
        let invalid = |m: String| UserError::InvalidArgument(m);
        Ok(Some(match op {
            Operation::Diagnose => Request::Diagnose {
                service: args
                    .string("service")
                    .map(DnsName::parse)
                    .transpose()
                    .map_err(invalid)?,
            },
            Operation::Health => Request::Health {
                target: args.string("target").map(str::to_owned),
            },
            Operation::Db => Request::Db(
                DbView::parse(args.string("view").unwrap_or("activity")).map_err(invalid)?,
            ),
            Operation::Redis => Request::Redis(match args.string("view").unwrap_or("info") {
                "info" => RedisView::Info,
                "memory" => RedisView::Memory,
                "persistence" => RedisView::Persistence,
                "keys" => RedisView::Keys(
                    KeyPattern::parse(args.string("pattern").unwrap_or("*")).map_err(invalid)?,
                ),
                v => {
                    return Err(invalid(format!(
                        "{} is not a redis view: use info, memory, persistence or keys",
                        code(v)
                    )));
                }
            }),
            Operation::Storage => Request::Storage(match args.string("view").unwrap_or("stat") {
                "buckets" => StorageView::Buckets,
                "stat" => StorageView::Stat,
                "check" => StorageView::Check(
                    parse_key(args.string("key").ok_or_else(|| {
                        invalid("`/storage view:check` needs `key:<object key>`".into())
                    })?)
                    .map_err(invalid)?,
                ),
                v => {
                    return Err(invalid(format!(
                        "{} is not a storage view: use buckets, stat or check",
                        code(v)
                    )));
                }
            }),
            Operation::Temporal => Request::Temporal,
            Operation::NetworkCheck => {
                let from = || -> Result<DnsName, UserError> {
                    let s = args
                        .services("from")
                        .and_then(|s| s.first())
                        .ok_or_else(|| {
                            invalid("this view of `/network-check` needs `from:<service>`".into())
                        })?;
                    DnsName::parse(s.as_str()).map_err(invalid)
                };
                let name = |key: &str| -> Result<DnsName, UserError> {
                    let v = args.string(key).ok_or_else(|| {
                        invalid(format!(
                            "this view of `/network-check` needs `{key}:<name>`"
                        ))
                    })?;
                    DnsName::parse(v).map_err(invalid)
                };
                Request::NetworkCheck(match args.string("view").unwrap_or("inspect") {
                    "inspect" => NetworkView::Inspect,
                    "dns" => NetworkView::Dns {
                        from: from()?,
                        name: name("name")?,
                    },
                    "port" => {
                        let port = args
                            .integer("port")
                            .and_then(|p| u16::try_from(p).ok())
                            .ok_or_else(|| {
                                invalid("`/network-check view:port` needs `port:<1-65535>`".into())
                            })?;
                        NetworkView::Port {
                            from: from()?,
                            host: name("host")?,
                            port,
                        }
                    }
                    v => {
                        return Err(invalid(format!(
                            "{} is not a network-check view: use dns, port or inspect",
                            code(v)
                        )));
                    }
                })
            }
            _ => return Ok(None),
        }))
    }
}

/// Runs one diagnosis command.
pub async fn run(
    req: &Request,
    probes: &Probes,
    engine: Arc<dyn Engine>,
) -> Result<Report, PipelineError> {
    match req {
        Request::Diagnose { service } => diagnose(service.as_ref(), probes, engine).await,
        Request::Health { target } => health(target.as_deref(), probes, engine).await,
        Request::Db(view) => {
            let pg = probes
                .postgres
                .as_ref()
                .ok_or_else(|| missing("postgres"))?;
            Ok(table(views::db(pg, *view).await.map_err(unavailable)?))
        }
        Request::Redis(view) => {
            let r = probes.redis.as_ref().ok_or_else(|| missing("redis"))?;
            Ok(table(
                views::redis(r, view.clone()).await.map_err(unavailable)?,
            ))
        }
        Request::Storage(view) => {
            let s3 = probes.s3.as_ref().ok_or_else(|| missing("s3"))?;
            Ok(table(
                views::storage(s3, view.clone())
                    .await
                    .map_err(unavailable)?,
            ))
        }
        Request::Temporal => {
            let t = probes
                .config
                .temporal
                .as_ref()
                .ok_or_else(|| missing("temporal"))?;
            Ok(table(
                views::temporal_workflows(&probes.http, t)
                    .await
                    .map_err(unavailable)?,
            ))
        }
        Request::NetworkCheck(view) => {
            // Only the platform's own services and hosts: not the cloud metadata address, not
            // the internet, not another project's containers.
            let target = match view {
                NetworkView::Dns { name, .. } => Some(name),
                NetworkView::Port { host, .. } => Some(host),
                NetworkView::Inspect => None,
            };
            if let Some(t) = target
                && !probes.config.network_hosts().contains(t.as_str())
            {
                return Err(UserError::Refused(format!(
                    "{} is not a service or a host of the platform; `/network-check` reaches only those (a host the platform file lists in `network_hosts` is allowed too)",
                    code(t.as_str())
                ))
                .into());
            }
            network_check(view, engine).await
        }
    }
}

async fn network_check(
    view: &NetworkView,
    engine: Arc<dyn Engine>,
) -> Result<Report, PipelineError> {
    Ok(table(
        views::network(engine.as_ref(), view.clone(), EXEC_TIMEOUT)
            .await
            .map_err(unavailable)?,
    ))
}

/// The report as blocks with the seed's headings, for every renderer to show its own way.
pub fn ops_report(r: &OpsReport) -> Report {
    let (title, severity) = if r.healthy {
        (
            "Container Operations Report: healthy".to_owned(),
            Severity::Success,
        )
    } else {
        (
            format!("Container Operations Report: {}", r.issue),
            Severity::Warning,
        )
    };
    let mut report = Report::new(title, severity);
    report.blocks = r.blocks();
    report
}

async fn diagnose(
    service: Option<&DnsName>,
    probes: &Probes,
    engine: Arc<dyn Engine>,
) -> Result<Report, PipelineError> {
    if let Some(s) = service.map(DnsName::as_str) {
        // A focus on a name the project does not have would read as "no fault there".
        let mut known: Vec<String> = engine
            .containers()
            .await
            .map_err(PipelineError::from)?
            .into_iter()
            .map(|c| c.service)
            .collect();
        known.sort();
        known.dedup();
        if !known.iter().any(|k| k == s) {
            return Err(UserError::NotFound(format!(
                "no service `{s}` in the project; services: {}",
                known.join(", ")
            ))
            .into());
        }
    }
    let (report, _outcomes) = probe_and_diagnose(probes, engine).await;
    Ok(ops_report(&match service {
        Some(s) => focus(report, s.as_str()),
        None => report,
    }))
}

/// Keeps what concerns `service`: its own state and the causes that explain it.
pub fn focus(mut r: OpsReport, service: &str) -> OpsReport {
    let is_affected = r.affected.iter().any(|a| a.service == service);
    let own_cause = r.root_causes.iter().any(|c| c.service == service);
    if !is_affected && !own_cause {
        let elsewhere = !r.healthy;
        r.affected.clear();
        r.root_causes.clear();
        r.steps.clear();
        r.issue = if elsewhere {
            format!(
                "`{service}` shows no fault; other services do: run `/diagnose` for the whole platform"
            )
        } else {
            format!("`{service}` shows no fault")
        };
        r.healthy = !elsewhere;
        return r;
    }
    if !own_cause {
        // The service is affected: every established cause may explain it, keep them all.
        r.affected.retain(|a| {
            a.service == service || r.root_causes.iter().any(|c| c.service == a.service)
        });
    } else {
        r.root_causes.retain(|c| c.service == service);
        r.affected.retain(|a| a.service == service);
    }
    // Issue parts and steps name their service; keep those about what is left.
    let kept: Vec<String> = r
        .affected
        .iter()
        .map(|a| a.service.clone())
        .chain(r.root_causes.iter().map(|c| c.service.clone()))
        .collect();
    let mentions = |text: &str| {
        kept.iter().any(|k| {
            text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .any(|w| w == k)
        })
    };
    let parts: Vec<&str> = r.issue.split("; ").filter(|p| mentions(p)).collect();
    if !parts.is_empty() {
        r.issue = parts.join("; ");
    }
    r.steps.retain(|s| {
        mentions(&s.action)
            || s.bot.as_deref().is_some_and(mentions)
            || s.compose.as_deref().is_some_and(mentions)
    });
    r
}

async fn health(
    target: Option<&str>,
    probes: &Probes,
    engine: Arc<dyn Engine>,
) -> Result<Report, PipelineError> {
    let outcomes = probes.run_all(engine).await;
    let picked: Vec<_> = outcomes
        .iter()
        .filter(|o| match target {
            None => true,
            Some(t) => o.service.as_deref() == Some(t) || o.probe.to_string() == t || o.target == t,
        })
        .collect();
    if picked.is_empty() {
        return Err(UserError::NotFound(format!(
            "no probe is about `{}`; run `/health` with no target to see them all",
            target.unwrap_or_default()
        ))
        .into());
    }
    let bad = picked
        .iter()
        .filter(|o| o.status != ProbeStatus::Pass)
        .count();
    let severity = if bad == 0 {
        Severity::Success
    } else {
        Severity::Warning
    };
    let mut r = Report::new(
        format!(
            "Health: {}/{} probes pass",
            picked.len() - bad,
            picked.len()
        ),
        severity,
    );
    r.push(Block::Table {
        headers: ["probe", "service", "status", "time", "evidence"]
            .map(String::from)
            .to_vec(),
        rows: picked
            .iter()
            .map(|o| {
                vec![
                    o.label(),
                    o.service.clone().unwrap_or_else(|| "-".into()),
                    o.status.to_string(),
                    format_duration(o.duration),
                    o.evidence.first().cloned().unwrap_or_default(),
                ]
            })
            .collect(),
    });
    Ok(r)
}

fn table(t: TableData) -> Report {
    let mut r = Report::new(t.title, Severity::Info);
    if t.rows.is_empty() {
        r.push(Block::Text("(no rows)".into()));
    } else {
        r.push(Block::Table {
            headers: t.headers,
            rows: t.rows,
        });
    }
    for n in t.notes {
        r.push(Block::Text(n));
    }
    r
}

/// `/diagnose`: every probe concurrently, then the rules. Returns the outcomes too, for audit.
pub async fn probe_and_diagnose(
    probes: &probes::Probes,
    engine: std::sync::Arc<dyn Engine>,
) -> (OpsReport, Vec<probes::ProbeOutcome>) {
    use tracing::Instrument as _;
    let outcomes = probes
        .run_all(engine)
        .instrument(tracing::info_span!("diagnose", project = %probes.project))
        .await;
    let report = tracing::info_span!("diagnosis_rules")
        .in_scope(|| rules::diagnose(&outcomes, &probes.config));
    (report, outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::diagnose::report::{AffectedService, RootCause, Step};

    fn redis_down() -> OpsReport {
        OpsReport {
            issue: "redis is stopped".into(),
            healthy: false,
            affected: vec![
                AffectedService {
                    service: "redis".into(),
                    status: "exited (137)".into(),
                },
                AffectedService {
                    service: "api-1".into(),
                    status: "unhealthy".into(),
                },
            ],
            root_causes: vec![RootCause {
                service: "redis".into(),
                summary: "redis was stopped".into(),
                evidence: vec!["State: exited, exit code 137".into()],
                established: true,
            }],
            steps: vec![Step {
                action: "Start redis".into(),
                bot: Some("/start service:redis".into()),
                compose: Some("docker compose start redis".into()),
            }],
            verification: vec!["docker compose ps redis".into()],
            prevention: vec!["Alert when redis stops".into()],
            related: vec!["api-1".into()],
            ..Default::default()
        }
    }

    #[test]
    fn the_report_carries_the_seed_sections_as_blocks_not_prerendered_text() {
        let ops = redis_down();
        let r = ops_report(&ops);
        let headings: Vec<&str> = r
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::Heading { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            headings,
            [
                "Container Operations Report",
                "Issue: redis is stopped",
                "Services Affected:",
                "Root Cause:",
                "Resolution Steps:",
                "Verification:",
                "Prevention:",
                "Related Services to Monitor:",
            ]
        );
        assert!(
            r.blocks
                .contains(&Block::Quote(vec!["State: exited, exit code 137".into()]))
        );
        let md = crate::core::report::render_markdown(&r, 4096).text;
        assert!(md.contains(ops.to_markdown().trim_end()), "{md}");
    }

    #[test]
    fn focus_on_an_affected_service_keeps_the_cause_that_explains_it() {
        let mut ops = redis_down();
        ops.issue = "redis is stopped; minio is cut off the network".into();
        let r = focus(ops, "api-1");
        assert_eq!(r.issue, "redis is stopped");
        assert_eq!(r.steps.len(), 1);
        assert_eq!(r.root_services(), ["redis"]);
        assert_eq!(r.affected_services(), ["redis", "api-1"]);
    }

    #[test]
    fn focus_on_an_untouched_service_reports_no_fault_there_but_not_healthy() {
        let r = focus(redis_down(), "console");
        assert!(!r.healthy);
        assert!(r.root_causes.is_empty() && r.affected.is_empty());
        assert!(r.issue.contains("run `/diagnose`"), "{}", r.issue);
    }
}
