//! Probes of the platform, each bounded by its own deadline and all run concurrently.

pub mod batch;
pub mod engine;
pub mod exec;
pub mod http;
pub mod postgres;
pub mod redis;
pub mod s3;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tracing::Instrument;

use crate::core::engine::Engine;
use crate::core::platform::{Deadlines, PlatformConfig};
use crate::core::types::format_duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProbeKind {
    /// The project's container list (one Engine call).
    Inventory,
    /// One container: state, health, restarts, OOM, memory, log findings.
    Container,
    Postgres,
    Redis,
    S3,
    Http,
    Dns,
    Port,
    Disk,
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeKind::Inventory => "engine",
            ProbeKind::Container => "container",
            ProbeKind::Postgres => "postgres",
            ProbeKind::Redis => "redis",
            ProbeKind::S3 => "s3",
            ProbeKind::Http => "http",
            ProbeKind::Dns => "dns",
            ProbeKind::Port => "port",
            ProbeKind::Disk => "disk",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStatus {
    Pass,
    /// Works, with something worth a look (error lines in a healthy container's log, high usage).
    Warn,
    /// The probe got an answer and the answer is bad.
    Fail,
    /// No answer within the probe's deadline.
    TimedOut,
    /// The probe itself could not run (engine unreachable, connection refused, ...).
    Error,
}

impl fmt::Display for ProbeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeStatus::Pass => "pass",
            ProbeStatus::Warn => "warn",
            ProbeStatus::Fail => "fail",
            ProbeStatus::TimedOut => "timed out",
            ProbeStatus::Error => "error",
        })
    }
}

impl ProbeStatus {
    /// The worse of two statuses for a probe that got an answer.
    pub fn max_severity(self, other: ProbeStatus) -> ProbeStatus {
        let rank = |s: ProbeStatus| match s {
            ProbeStatus::Pass => 0,
            ProbeStatus::Warn => 1,
            ProbeStatus::Fail => 2,
            ProbeStatus::Error => 3,
            ProbeStatus::TimedOut => 4,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// What a probe observed, typed per probe so the rules match on data, not on strings.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Facts {
    #[default]
    None,
    Inventory(engine::InventoryFacts),
    Container(Box<engine::ContainerFacts>),
    Postgres(Box<postgres::PostgresFacts>),
    Redis(redis::RedisFacts),
    S3(s3::S3Facts),
    Http(http::HttpFacts),
    Dns(exec::DnsFacts),
    Port(exec::PortFacts),
    Disk(exec::DiskFacts),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    pub probe: ProbeKind,
    /// What was probed: a service name, `host:port`, a URL.
    pub target: String,
    /// The Compose service the result is about, when there is one.
    pub service: Option<String>,
    pub status: ProbeStatus,
    pub duration: Duration,
    pub deadline: Duration,
    /// Short quotable lines (an error message, a log line, a health check output).
    pub evidence: Vec<String>,
    pub facts: Facts,
}

impl ProbeOutcome {
    pub fn label(&self) -> String {
        format!("{} {}", self.probe, self.target)
    }
}

/// The result of a probe body: everything but timing, which the runner measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub status: ProbeStatus,
    pub evidence: Vec<String>,
    pub facts: Facts,
}

impl Observed {
    pub fn new(status: ProbeStatus, evidence: Vec<String>, facts: Facts) -> Self {
        Self {
            status,
            evidence,
            facts,
        }
    }
}

/// Identity of a probe before it runs.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    pub probe: ProbeKind,
    pub target: String,
    pub service: Option<String>,
    pub deadline: Duration,
}

/// Runs one probe body under its deadline; a body error becomes `Error`, a late one `TimedOut`.
pub async fn run_probe<F>(spec: ProbeSpec, body: F) -> ProbeOutcome
where
    F: Future<Output = Result<Observed, String>>,
{
    let span = tracing::debug_span!("probe", probe = %spec.probe, target = %spec.target);
    let started = Instant::now();
    let result = tokio::time::timeout(spec.deadline, body)
        .instrument(span)
        .await;
    let duration = started.elapsed();
    let (status, evidence, facts) = match result {
        Ok(Ok(o)) => (o.status, o.evidence, o.facts),
        Ok(Err(e)) => (ProbeStatus::Error, vec![e], Facts::None),
        Err(_) => (
            ProbeStatus::TimedOut,
            vec![format!(
                "no answer within the {} deadline",
                format_duration(spec.deadline)
            )],
            Facts::None,
        ),
    };
    tracing::debug!(probe = %spec.probe, target = %spec.target, %status, ?duration, "probe done");
    ProbeOutcome {
        probe: spec.probe,
        target: spec.target,
        service: spec.service,
        status,
        duration,
        deadline: spec.deadline,
        evidence,
        facts,
    }
}

/// Client libraries get their own timeouts a little past the probe deadline: the probe's
/// deadline fires first (a clean `TimedOut`), and direct command use is still bounded.
pub fn library_timeout(deadline: Duration) -> Duration {
    deadline + Duration::from_millis(500)
}

/// The platform's dependency clients, built once from the config and reused by every diagnosis.
pub struct Probes {
    pub config: PlatformConfig,
    pub project: String,
    pub postgres: Option<postgres::PostgresProbe>,
    pub redis: Option<redis::RedisProbe>,
    pub s3: Option<s3::S3Probe>,
    pub http: http::HttpProbe,
}

impl Probes {
    pub fn new(config: PlatformConfig, project: &str) -> Result<Self, String> {
        let d = &config.deadlines;
        let postgres = config
            .postgres
            .as_ref()
            .map(|t| {
                postgres::PostgresProbe::new(t, library_timeout(Deadlines::get(d.postgres_ms)))
            })
            .transpose()?;
        let redis = config
            .redis
            .as_ref()
            .map(|t| redis::RedisProbe::new(t, library_timeout(Deadlines::get(d.redis_ms))))
            .transpose()?;
        let s3 = config
            .s3
            .as_ref()
            .map(|t| s3::S3Probe::new(t, library_timeout(Deadlines::get(d.s3_ms))));
        let http = http::HttpProbe::new()?;
        Ok(Self {
            config,
            project: project.to_string(),
            postgres,
            redis,
            s3,
            http,
        })
    }

    /// Every probe of a `/diagnose`, concurrently: the engine-side chain (inventory, then
    /// per-container and exec probes) runs beside the network probes, so the total is about
    /// the slowest chain, never the sum.
    pub async fn run_all(&self, engine: Arc<dyn Engine>) -> Vec<ProbeOutcome> {
        let engine_side = self.engine_side(engine);
        let network_side = join_all(self.network_probes());
        let (mut a, b) = futures::join!(engine_side, network_side);
        a.extend(b);
        a
    }

    /// The probes that talk to dependencies from the bot's host (no Engine needed).
    pub fn network_probes(&self) -> Vec<BoxedProbe<'_>> {
        let d = &self.config.deadlines;
        let mut v: Vec<BoxedProbe<'_>> = Vec::new();
        if let (Some(p), Some(t)) = (&self.postgres, &self.config.postgres) {
            v.push(Box::pin(run_probe(
                ProbeSpec {
                    probe: ProbeKind::Postgres,
                    target: format!("{}:{}", t.host, t.port),
                    service: Some(t.service.clone()),
                    deadline: Deadlines::get(d.postgres_ms),
                },
                p.probe(),
            )));
        }
        if let (Some(r), Some(t)) = (&self.redis, &self.config.redis) {
            v.push(Box::pin(run_probe(
                ProbeSpec {
                    probe: ProbeKind::Redis,
                    target: t.url.clone(),
                    service: Some(t.service.clone()),
                    deadline: Deadlines::get(d.redis_ms),
                },
                r.probe(),
            )));
        }
        if let (Some(s), Some(t)) = (&self.s3, &self.config.s3) {
            v.push(Box::pin(run_probe(
                ProbeSpec {
                    probe: ProbeKind::S3,
                    target: format!("{}/{}", t.endpoint, t.bucket),
                    service: Some(t.service.clone()),
                    deadline: Deadlines::get(d.s3_ms),
                },
                s.probe(),
            )));
        }
        for ep in &self.config.http {
            v.push(Box::pin(run_probe(
                ProbeSpec {
                    probe: ProbeKind::Http,
                    target: ep.url.clone(),
                    service: Some(ep.service.clone()),
                    deadline: Deadlines::get(d.http_ms),
                },
                self.http.probe(ep),
            )));
        }
        v
    }

    async fn engine_side(&self, engine: Arc<dyn Engine>) -> Vec<ProbeOutcome> {
        let (inventory, containers) = self.inventory(engine.as_ref()).await;
        let mut out = vec![inventory];
        if let Some(containers) = containers {
            out.extend(join_all(self.engine_probes(engine.as_ref(), &containers)).await);
        }
        out
    }

    async fn inventory(
        &self,
        engine: &dyn Engine,
    ) -> (
        ProbeOutcome,
        Option<Vec<crate::core::engine::ContainerInfo>>,
    ) {
        engine::inventory(
            engine,
            &self.config,
            &self.project,
            Deadlines::get(self.config.deadlines.inventory_ms),
        )
        .await
    }

    /// Per-container probes and exec probes, once the containers are known.
    fn engine_probes<'a>(
        &'a self,
        engine: &'a dyn Engine,
        containers: &'a [crate::core::engine::ContainerInfo],
    ) -> Vec<BoxedProbe<'a>> {
        let d = &self.config.deadlines;
        let network = self.config.network_for(&self.project);
        let mut futs: Vec<BoxedProbe<'a>> = Vec::new();
        for c in containers {
            let network = network.clone();
            futs.push(Box::pin(async move {
                engine::container_probe(
                    engine,
                    c,
                    &self.config,
                    &network,
                    Deadlines::get(d.container_ms),
                )
                .await
            }));
        }
        futs.extend(exec::diagnose_probes(
            engine,
            containers,
            &self.config,
            Deadlines::get(d.exec_ms),
        ));
        futs
    }

    /// The same probes awaited one after another: what `/diagnose` would cost without
    /// concurrency (for the benchmark and for debugging a single slow probe).
    pub async fn run_one_by_one(&self, engine: Arc<dyn Engine>) -> Vec<ProbeOutcome> {
        let mut out = Vec::new();
        for f in self.network_probes() {
            out.push(f.await);
        }
        let (inventory, containers) = self.inventory(engine.as_ref()).await;
        out.push(inventory);
        if let Some(containers) = containers {
            for f in self.engine_probes(engine.as_ref(), &containers) {
                out.push(f.await);
            }
        }
        out
    }
}

type BoxedProbe<'a> = std::pin::Pin<Box<dyn Future<Output = ProbeOutcome> + Send + 'a>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_probe_past_its_deadline_is_marked_timed_out_and_costs_only_the_deadline() {
        let started = Instant::now();
        let out = run_probe(
            ProbeSpec {
                probe: ProbeKind::Redis,
                target: "hung".into(),
                service: Some("redis".into()),
                deadline: Duration::from_millis(100),
            },
            async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(Observed::new(ProbeStatus::Pass, vec![], Facts::None))
            },
        )
        .await;
        assert_eq!(out.status, ProbeStatus::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(out.evidence[0].contains("100 ms"), "{:?}", out.evidence);
    }

    #[tokio::test]
    async fn a_probe_body_error_becomes_an_error_outcome_with_the_message_as_evidence() {
        let out = run_probe(
            ProbeSpec {
                probe: ProbeKind::Postgres,
                target: "x".into(),
                service: None,
                deadline: Duration::from_secs(1),
            },
            async { Err("connection refused".to_string()) },
        )
        .await;
        assert_eq!(out.status, ProbeStatus::Error);
        assert_eq!(out.evidence, vec!["connection refused".to_string()]);
    }
}
