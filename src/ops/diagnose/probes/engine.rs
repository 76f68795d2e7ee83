//! Engine-side probes: the project's containers and, per container, state, health, restarts, OOM and log findings.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use regex::Regex;

use crate::core::engine::{ContainerInfo, Engine, LogLine, LogQuery};
use crate::core::platform::PlatformConfig;
use crate::core::types::format_bytes;

use super::{Facts, Observed, ProbeKind, ProbeOutcome, ProbeSpec, ProbeStatus, run_probe};

/// Lines read from the end of each log; the Engine reads from the end, so memory stays bounded.
pub const LOG_TAIL: u32 = 300;
/// Log findings older than this are history, not evidence of the current state.
pub const RECENT: Duration = Duration::from_secs(180);
/// What the container probe keeps back from its deadline when waiting for a memory sample.
const MEMORY_SLACK: Duration = Duration::from_millis(500);

static ERROR_LINE: LazyLock<Regex> = LazyLock::new(|| {
    // Levels as services print them, not every word "error" (source lines in tracebacks have it).
    Regex::new(
        r"\b(ERROR|FATAL|CRITICAL|PANIC)\b|\bpanic(ked)?\b|(?i:activity failed)|\berror:|level=(error|fatal)",
    )
    .unwrap()
});
static NO_SPACE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)no space left on device|disk full|ENOSPC").unwrap());
static LARGE_PAYLOAD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Large payload detected").unwrap());
/// An nginx error line about an upstream it could not use, naming the address it tried.
static UPSTREAM_FAILURE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"\[(?:error|crit)\].* upstream: "[a-z]+://(\d{1,3}(?:\.\d{1,3}){3}:\d{1,5})"#)
        .unwrap()
});
static REGISTERED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Worker successfully registered").unwrap());

#[derive(Debug, Clone, PartialEq)]
pub struct InventoryFacts {
    pub network: String,
    pub containers: Vec<ContainerInfo>,
}

/// What the rules need to know about one container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerFacts {
    pub service: String,
    pub name: String,
    pub state: String,
    pub health: Option<String>,
    /// Output of the most recent healthcheck run.
    pub health_output: Option<String>,
    pub restart_count: i64,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub memory_limit: u64,
    pub memory_usage: Option<u64>,
    pub one_shot: bool,
    pub expected_network: String,
    pub networks: Vec<String>,
    /// Its addresses on those networks (what a proxy in front of it would connect to).
    pub addresses: Vec<String>,
    /// Recent ERROR/FATAL/panic/"activity failed" lines, newest last (at most 5).
    pub error_lines: Vec<String>,
    pub error_count: usize,
    /// Recent "No space left on device" lines.
    pub no_space_lines: Vec<String>,
    pub large_payload_lines: Vec<String>,
    /// "Worker successfully registered" lines in the current window.
    pub registrations: usize,
    /// Recent proxy error lines naming an upstream address it failed to use (nginx), newest
    /// last, as quoted (cut at the quoting width).
    pub upstream_failure_lines: Vec<String>,
    /// The `ip:port` each of those lines names, read from the whole line before it was cut.
    pub failed_upstreams: Vec<String>,
    /// Log reading failed (the rest of the facts still hold).
    pub log_error: Option<String>,
    /// The memory figure of a limited container could not be read in time.
    pub memory_error: Option<String>,
}

impl ContainerFacts {
    pub fn on_project_network(&self) -> bool {
        self.networks.iter().any(|n| n == &self.expected_network)
    }
    pub fn running(&self) -> bool {
        self.state == "running"
    }
    pub fn finished_ok(&self) -> bool {
        self.one_shot && self.state == "exited" && self.exit_code == Some(0)
    }
}

/// The project's containers, bounded by `deadline`; `None` when the Engine did not answer.
pub async fn inventory(
    engine: &dyn Engine,
    config: &PlatformConfig,
    project: &str,
    deadline: Duration,
) -> (ProbeOutcome, Option<Vec<ContainerInfo>>) {
    let network = config.network_for(project);
    let spec = ProbeSpec {
        probe: ProbeKind::Inventory,
        target: project.to_string(),
        service: None,
        deadline,
    };
    let out = run_probe(spec, async {
        let containers = engine.containers().await.map_err(|e| e.to_string())?;
        let status = if containers.is_empty() {
            ProbeStatus::Fail
        } else {
            ProbeStatus::Pass
        };
        let evidence = if containers.is_empty() {
            vec![format!("no container of project `{project}` exists")]
        } else {
            vec![]
        };
        Ok(Observed::new(
            status,
            evidence,
            Facts::Inventory(InventoryFacts {
                network: network.clone(),
                containers,
            }),
        ))
    })
    .await;
    let containers = match &out.facts {
        Facts::Inventory(i) => Some(i.containers.clone()),
        _ => None,
    };
    (out, containers)
}

/// Scans log lines for the findings the rules use; lines before `since` are history and skipped.
pub fn scan_logs(lines: &[LogLine], since: Option<DateTime<Utc>>, facts: &mut ContainerFacts) {
    // Inside a Python traceback the quotable line is the exception at its end, not the header.
    let mut in_traceback = false;
    for l in lines {
        if REGISTERED.is_match(&l.text) {
            facts.registrations += 1;
        }
        let recent = match (l.at, since) {
            (Some(at), Some(since)) => at >= since,
            _ => true,
        };
        if !recent {
            continue;
        }
        let text = l.text.trim_end();
        if in_traceback {
            if text.starts_with(char::is_whitespace) || text.is_empty() {
                continue;
            }
            in_traceback = false;
            facts.error_count += 1;
            push_bounded(&mut facts.error_lines, text);
            continue;
        }
        if text.starts_with(TRACEBACK) {
            in_traceback = true;
            continue;
        }
        if LARGE_PAYLOAD.is_match(text) {
            push_bounded(&mut facts.large_payload_lines, text);
        }
        if NO_SPACE.is_match(text) {
            push_bounded(&mut facts.no_space_lines, text);
        }
        if let Some(addr) = failed_upstream_in(text) {
            push_bounded(&mut facts.upstream_failure_lines, text);
            push_bounded(&mut facts.failed_upstreams, addr);
        }
        if ERROR_LINE.is_match(text) {
            facts.error_count += 1;
            push_bounded(&mut facts.error_lines, text);
        }
    }
}

/// The upstream address (`ip:port`) an nginx error line names, if it is one.
fn failed_upstream_in(line: &str) -> Option<&str> {
    UPSTREAM_FAILURE
        .captures(line)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

const TRACEBACK: &str = "Traceback (most recent call last)";

fn push_bounded(v: &mut Vec<String>, line: &str) {
    const KEEP: usize = 5;
    const WIDTH: usize = 300;
    let mut s: String = line.chars().take(WIDTH).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    v.push(s);
    if v.len() > KEEP {
        v.remove(0);
    }
}

pub fn base_facts(c: &ContainerInfo, config: &PlatformConfig, network: &str) -> ContainerFacts {
    ContainerFacts {
        service: c.service.clone(),
        name: c.name.clone(),
        state: c.state.clone(),
        health: c.health.clone(),
        health_output: c
            .health_log
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().chars().take(300).collect()),
        restart_count: c.restart_count,
        exit_code: c.exit_code,
        oom_killed: c.oom_killed,
        started_at: c.started_at,
        finished_at: c.finished_at,
        memory_limit: c.memory_limit,
        one_shot: config.is_one_shot(&c.service),
        expected_network: network.to_string(),
        networks: c.networks.iter().map(|(n, _)| n.clone()).collect(),
        addresses: c
            .networks
            .iter()
            .map(|(_, a)| a.clone())
            .filter(|a| !a.is_empty())
            .collect(),
        ..Default::default()
    }
}

/// Judges a container from its facts alone (the rules look across containers later).
pub fn judge(f: &ContainerFacts) -> (ProbeStatus, Vec<String>) {
    let mut evidence = Vec::new();
    if f.finished_ok() {
        return (ProbeStatus::Pass, evidence);
    }
    let mut status = ProbeStatus::Pass;
    if !f.running() {
        status = ProbeStatus::Fail;
        evidence.push(format!(
            "state {}{}{}",
            f.state,
            f.exit_code
                .map_or(String::new(), |c| format!(", exit code {c}")),
            if f.oom_killed { ", OOMKilled" } else { "" }
        ));
    }
    if f.health.as_deref() == Some("unhealthy") {
        status = ProbeStatus::Fail;
        evidence.push(format!(
            "health unhealthy{}",
            f.health_output
                .as_ref()
                .map_or(String::new(), |o| format!(": last check said \"{o}\""))
        ));
    }
    if f.running() && !f.on_project_network() {
        status = ProbeStatus::Fail;
        evidence.push(format!(
            "not attached to network {} (attached: {})",
            f.expected_network,
            if f.networks.is_empty() {
                "none".to_string()
            } else {
                f.networks.join(", ")
            }
        ));
    }
    if status == ProbeStatus::Pass
        && (f.error_count > 0 || f.restart_count >= 3 || !f.no_space_lines.is_empty())
    {
        status = ProbeStatus::Warn;
    }
    if f.restart_count > 0 {
        evidence.push(format!("restarted {} times", f.restart_count));
    }
    if let (Some(u), l) = (f.memory_usage, f.memory_limit)
        && l > 0
    {
        evidence.push(format!(
            "memory {} of {} limit",
            format_bytes(u),
            format_bytes(l)
        ));
    }
    evidence.extend(f.error_lines.iter().map(|l| format!("log: {l}")));
    (status, evidence)
}

/// One container's probe: logs (and memory when limited) under the container deadline.
/// `network` is the project network every service must be attached to.
pub async fn container_probe(
    engine: &dyn Engine,
    c: &ContainerInfo,
    config: &PlatformConfig,
    network: &str,
    deadline: Duration,
) -> ProbeOutcome {
    let spec = ProbeSpec {
        probe: ProbeKind::Container,
        target: c.service.clone(),
        service: Some(c.service.clone()),
        deadline,
    };
    run_probe(spec, async {
        let mut facts = base_facts(c, config, network);
        let since = current_window_start(c, Utc::now());
        let query = LogQuery {
            tail: LOG_TAIL,
            // Older lines would be skipped by the scan anyway; the daemon still reads the tail,
            // but sending and parsing only the window is most of a log call's cost.
            since,
            // The adapter parses each line's time either way; `true` would also keep it in the text.
            timestamps: false,
            max_bytes: 1024 * 1024,
        };
        let logs = engine.logs(&c.id, &query);
        // The daemon answers a stats call only at its next sample (up to ~1 s, more under
        // load): bounded apart, so a late sample costs the memory figure, not the container's
        // verdict.
        let memory_bound = deadline.saturating_sub(MEMORY_SLACK);
        let memory = async {
            if c.memory_limit > 0 && c.state == "running" {
                Some(
                    match tokio::time::timeout(memory_bound, engine.memory_usage(&c.id)).await {
                        Ok(Ok(m)) => Ok(m),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!(
                            "no stats sample within {} ms",
                            memory_bound.as_millis()
                        )),
                    },
                )
            } else {
                None
            }
        };
        let (logs, memory) = futures::join!(logs, memory);
        match logs {
            Ok(lines) => scan_logs(&lines, since, &mut facts),
            Err(e) => facts.log_error = Some(e.to_string()),
        }
        match memory {
            Some(Ok(m)) => facts.memory_usage = Some(m),
            Some(Err(e)) => facts.memory_error = Some(e),
            None => {}
        }
        let (status, evidence) = judge(&facts);
        Ok(Observed::new(
            status,
            evidence,
            Facts::Container(Box::new(facts)),
        ))
    })
    .await
}

/// Log lines count as current from the container's last start, and for a running container
/// no earlier than RECENT ago: yesterday's errors are not evidence about today.
pub fn current_window_start(c: &ContainerInfo, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let floor = now - chrono::Duration::from_std(RECENT).unwrap_or_default();
    match (c.state.as_str(), c.started_at) {
        ("running", Some(s)) => Some(s.max(floor)),
        ("running", None) => Some(floor),
        (_, s) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::engine::LogStream;
    use crate::infra::fake::FakeEngine;

    #[test]
    fn nginx_upstream_errors_are_kept_with_the_address_they_name() {
        let err = "2026/12/04 09:00:08 [error] 29#29: *7 connect() failed (113: No route to host) while connecting to upstream, client: 172.18.0.1, server: , request: \"GET /healthz HTTP/1.1\", upstream: \"http://172.18.0.11:3000/healthz\", host: \"127.0.0.1:3000\"";
        let access = r#"172.18.0.1 - - [04/Dec/2026:09:00:08 +0000] "GET /healthz HTTP/1.1" 502 157 "-" "curl""#;
        assert_eq!(failed_upstream_in(err), Some("172.18.0.11:3000"));
        assert_eq!(failed_upstream_in(access), None);
        assert_eq!(failed_upstream_in(&err.replace("[error]", "[warn]")), None);
        let mut f = ContainerFacts::default();
        let lines: Vec<LogLine> = [err, access]
            .iter()
            .map(|t| LogLine {
                at: None,
                stream: LogStream::Stderr,
                text: t.to_string(),
            })
            .collect();
        scan_logs(&lines, None, &mut f);
        assert_eq!(f.upstream_failure_lines, vec![err.to_string()]);
        assert_eq!(f.failed_upstreams, vec!["172.18.0.11:3000".to_string()]);

        // A long request pushes the address past the quoting width; it is read before the cut.
        let long = err.replace("GET /healthz", &format!("GET /{}", "a".repeat(400)));
        let mut f = ContainerFacts::default();
        scan_logs(
            &[LogLine {
                at: None,
                stream: LogStream::Stderr,
                text: long,
            }],
            None,
            &mut f,
        );
        assert_eq!(failed_upstream_in(&f.upstream_failure_lines[0]), None);
        assert_eq!(f.failed_upstreams, vec!["172.18.0.11:3000".to_string()]);
    }

    #[tokio::test]
    async fn a_late_memory_sample_costs_the_memory_figure_not_the_containers_verdict() {
        let mut c = crate::infra::fake::container("worker-2", "running");
        c.memory_limit = 48 * 1024 * 1024;
        let engine = engine_with(&c).with_delay(Duration::from_secs(5));
        let out = container_probe(
            &engine,
            &c,
            &PlatformConfig::embedded().unwrap(),
            "riftwing_default",
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(out.status, ProbeStatus::Pass, "{out:?}");
        let Facts::Container(f) = &out.facts else {
            panic!("container facts: {out:?}");
        };
        assert_eq!(f.memory_usage, None);
        assert!(
            f.memory_error
                .as_deref()
                .is_some_and(|e| e.contains("500 ms")),
            "{f:?}"
        );
    }

    #[tokio::test]
    async fn the_container_probe_asks_the_engine_only_for_the_current_window() {
        let cfg = PlatformConfig::embedded().unwrap();
        let before = Utc::now();
        // Running for ten minutes: the window is the last RECENT; stopped: its last run.
        let running = container("api-1", "running", Some("healthy"));
        let mut stopped = container("worker-2", "exited", None);
        stopped.started_at = Some(before - chrono::Duration::seconds(3600));
        for c in [&running, &stopped] {
            let engine = engine_with(c);
            container_probe(&engine, c, &cfg, "riftwing_default", Duration::from_secs(1)).await;
            let queries = engine.log_queries();
            assert_eq!(queries.len(), 1, "{queries:?}");
            let (id, q) = &queries[0];
            assert_eq!(id, &c.id);
            assert_eq!(q.tail, LOG_TAIL);
            let since = q.since.expect("a window start");
            if c.state == "running" {
                let recent = chrono::Duration::from_std(RECENT).unwrap();
                assert!(
                    since >= before - recent && since <= Utc::now() - recent,
                    "{since}"
                );
            } else {
                assert_eq!(Some(since), c.started_at);
            }
        }
    }

    /// The crate's one Engine double, holding just `c`.
    fn engine_with(c: &ContainerInfo) -> FakeEngine {
        let f = FakeEngine::new();
        f.add(c.clone());
        f
    }

    fn container(service: &str, state: &str, health: Option<&str>) -> ContainerInfo {
        ContainerInfo {
            id: format!("id-{service}"),
            name: format!("riftwing_{service}_1"),
            service: service.into(),
            image: "riftwing/platform:dev".into(),
            state: state.into(),
            health: health.map(str::to_string),
            started_at: Some(Utc::now() - chrono::Duration::seconds(600)),
            finished_at: None,
            restart_count: 0,
            exit_code: if state == "running" { None } else { Some(0) },
            oom_killed: false,
            ports: vec![],
            health_log: vec![],
            memory_limit: 0,
            volumes: vec![],
            networks: vec![("riftwing_default".into(), "172.20.0.2/16".into())],
        }
    }

    fn line(text: &str, ago_s: i64) -> LogLine {
        LogLine {
            at: Some(Utc::now() - chrono::Duration::seconds(ago_s)),
            stream: LogStream::Stdout,
            text: text.into(),
        }
    }

    #[test]
    fn log_scan_counts_recent_errors_registrations_and_large_payloads() {
        let mut f = ContainerFacts::default();
        let lines = vec![
            line(
                "[worker-1] Worker successfully registered with task queue 'default'",
                900,
            ),
            line(
                "[worker-1] ERROR activity failed: postgres unreachable",
                900,
            ),
            line("[worker-1] ERROR activity failed: temporal unreachable", 10),
            line("[worker-1] WARN Large payload detected: 3.1 MB", 5),
            line(
                "[worker-1] ERROR [artifact] write failed: No space left on device",
                2,
            ),
            line("[worker-1] activity completed", 1),
        ];
        scan_logs(
            &lines,
            Some(Utc::now() - chrono::Duration::seconds(60)),
            &mut f,
        );
        assert_eq!(f.registrations, 1);
        assert_eq!(f.error_count, 2, "{:?}", f.error_lines);
        assert_eq!(f.large_payload_lines.len(), 1);
        assert_eq!(f.no_space_lines.len(), 1);
        assert!(f.error_lines[0].contains("temporal unreachable"));
    }

    #[test]
    fn error_lines_are_levels_not_every_word_error() {
        let mut f = ContainerFacts::default();
        let lines = vec![
            line(
                r#"    return self.reply(200 if ok else 503, {"status": "ok" if ok else "error"})"#,
                1,
            ),
            line("GET /healthz error_count=0", 1),
            line("pg_dump: error: connection to server failed", 1),
            line("FATAL: cannot start ai-gateway: provider config invalid", 1),
            line("thread 'main' panicked at src/main.rs:3:5", 1),
            line("Traceback (most recent call last):", 1),
            line(r#"  File "/usr/local/bin/svc.py", line 40, in reply"#, 1),
            line("    self.wfile.write(data)", 1),
            line("BrokenPipeError: [Errno 32] Broken pipe", 1),
        ];
        scan_logs(&lines, None, &mut f);
        assert_eq!(f.error_count, 4, "{:?}", f.error_lines);
        assert_eq!(
            f.error_lines.last().unwrap(),
            "BrokenPipeError: [Errno 32] Broken pipe"
        );
    }

    #[tokio::test]
    async fn container_probe_reports_oom_kill_with_exit_code_and_memory_limit() {
        let mut c = container("worker-2", "exited", None);
        c.oom_killed = true;
        c.exit_code = Some(137);
        c.memory_limit = 48 << 20;
        let engine = engine_with(&c);
        let cfg = PlatformConfig::embedded().unwrap();
        let out = container_probe(
            &engine,
            &c,
            &cfg,
            "riftwing_default",
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(out.status, ProbeStatus::Fail);
        let Facts::Container(f) = &out.facts else {
            panic!("no container facts")
        };
        assert!(f.oom_killed);
        assert_eq!(f.exit_code, Some(137));
        assert!(
            out.evidence.iter().any(|e| e.contains("OOMKilled")),
            "{:?}",
            out.evidence
        );
    }

    #[tokio::test]
    async fn container_off_the_project_network_fails_its_probe() {
        let mut c = container("worker-1", "running", Some("healthy"));
        c.networks.clear();
        let engine = engine_with(&c);
        let cfg = PlatformConfig::embedded().unwrap();
        let out = container_probe(
            &engine,
            &c,
            &cfg,
            "riftwing_default",
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(out.status, ProbeStatus::Fail);
        assert!(
            out.evidence.iter().any(|e| e.contains("riftwing_default")),
            "{:?}",
            out.evidence
        );
    }

    #[tokio::test]
    async fn finished_init_job_passes() {
        let c = container("minio-init", "exited", None);
        let engine = engine_with(&c);
        let cfg = PlatformConfig::embedded().unwrap();
        let out = container_probe(
            &engine,
            &c,
            &cfg,
            "riftwing_default",
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(out.status, ProbeStatus::Pass, "{:?}", out.evidence);
    }
}
