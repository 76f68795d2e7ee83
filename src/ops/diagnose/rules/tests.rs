//! Rule tests on synthetic probe outcomes of the riftwing layout.

use std::time::Duration;

use super::*;
use crate::ops::diagnose::probes::exec::{DiskFacts, DnsFacts};
use crate::ops::diagnose::probes::http::HttpFacts;
use crate::ops::diagnose::probes::postgres::PostgresFacts;
use crate::ops::diagnose::probes::redis::RedisFacts;
use crate::ops::diagnose::probes::s3::S3Facts;

fn outcome(
    probe: ProbeKind,
    target: &str,
    service: Option<&str>,
    status: ProbeStatus,
    facts: Facts,
) -> ProbeOutcome {
    ProbeOutcome {
        probe,
        target: target.into(),
        service: service.map(str::to_string),
        status,
        duration: Duration::from_millis(5),
        deadline: Duration::from_secs(2),
        evidence: vec![],
        facts,
    }
}

fn container(service: &str) -> ContainerFacts {
    ContainerFacts {
        service: service.into(),
        name: format!("riftwing_{service}_1"),
        state: "running".into(),
        health: Some("healthy".into()),
        expected_network: "riftwing_default".into(),
        networks: vec!["riftwing_default".into()],
        ..Default::default()
    }
}

/// The whole replica, healthy, as the probes would see it.
struct Platform {
    outcomes: Vec<ProbeOutcome>,
}

impl Platform {
    fn healthy() -> Self {
        let mut outcomes = vec![outcome(
            ProbeKind::Inventory,
            "riftwing",
            None,
            ProbeStatus::Pass,
            Facts::None,
        )];
        for s in &PlatformConfig::embedded().unwrap().long_running() {
            let s = s.as_str();
            outcomes.push(outcome(
                ProbeKind::Container,
                s,
                Some(s),
                ProbeStatus::Pass,
                Facts::Container(Box::new(container(s))),
            ));
        }
        for s in ["minio-init", "temporal-init", "ai-gateway-init"] {
            let mut c = container(s);
            c.state = "exited".into();
            c.health = None;
            c.exit_code = Some(0);
            c.one_shot = true;
            outcomes.push(outcome(
                ProbeKind::Container,
                s,
                Some(s),
                ProbeStatus::Pass,
                Facts::Container(Box::new(c)),
            ));
        }
        outcomes.push(outcome(
            ProbeKind::Postgres,
            "127.0.0.1:5432",
            Some("postgres"),
            ProbeStatus::Pass,
            Facts::Postgres(Box::new(PostgresFacts {
                version: "15.8".into(),
                connections: 9,
                max_connections: 100,
                ..Default::default()
            })),
        ));
        outcomes.push(outcome(
            ProbeKind::Redis,
            "redis://127.0.0.1:6379",
            Some("redis"),
            ProbeStatus::Pass,
            Facts::Redis(RedisFacts {
                pong: true,
                ..Default::default()
            }),
        ));
        outcomes.push(outcome(
            ProbeKind::S3,
            "http://127.0.0.1:9000/rewst-artifacts",
            Some("minio"),
            ProbeStatus::Pass,
            Facts::S3(S3Facts {
                bucket: "rewst-artifacts".into(),
                bucket_exists: Some(true),
                ..Default::default()
            }),
        ));
        for (svc, url) in [
            ("api-gateway", "http://127.0.0.1:3000/healthz"),
            ("mcp-server", "http://127.0.0.1:3337/health"),
            ("console", "http://127.0.0.1:5173/__vite_ping"),
        ] {
            outcomes.push(outcome(
                ProbeKind::Http,
                url,
                Some(svc),
                ProbeStatus::Pass,
                Facts::Http(HttpFacts {
                    url: url.into(),
                    status: Some(200),
                    expected_status: 200,
                    ..Default::default()
                }),
            ));
        }
        for (from, to) in [("api-1", "postgres"), ("worker-1", "temporal")] {
            outcomes.push(outcome(
                ProbeKind::Dns,
                &format!("{from} → {to}"),
                Some(from),
                ProbeStatus::Pass,
                Facts::Dns(DnsFacts {
                    from: from.into(),
                    on_behalf_of: vec![from.into()],
                    answers: vec![(to.into(), Some("172.20.0.3".into()))],
                }),
            ));
        }
        outcomes.push(outcome(
            ProbeKind::Disk,
            "worker-1:/scratch",
            Some("worker-1"),
            ProbeStatus::Pass,
            Facts::Disk(DiskFacts {
                service: "worker-1".into(),
                path: "/scratch".into(),
                volume: Some("worker-scratch".into()),
                used_percent: 3,
                used_kb: 200,
                available_kb: 7992,
                warn_percent: 90,
            }),
        ));
        Self { outcomes }
    }

    fn container_mut(&mut self, service: &str) -> &mut ContainerFacts {
        let o = self
            .outcomes
            .iter_mut()
            .find(|o| o.probe == ProbeKind::Container && o.target == service)
            .expect("service in the synthetic platform");
        o.status = ProbeStatus::Fail;
        match &mut o.facts {
            Facts::Container(f) => f,
            _ => unreachable!(),
        }
    }

    fn probe_mut(&mut self, probe: ProbeKind, service: &str) -> &mut ProbeOutcome {
        self.outcomes
            .iter_mut()
            .find(|o| o.probe == probe && o.service.as_deref() == Some(service))
            .expect("probe in the synthetic platform")
    }

    fn stop(&mut self, service: &str, code: i64) {
        let c = self.container_mut(service);
        c.state = "exited".into();
        c.health = None;
        c.exit_code = Some(code);
    }

    fn unhealthy(&mut self, service: &str, output: &str) {
        let c = self.container_mut(service);
        c.health = Some("unhealthy".into());
        c.health_output = Some(output.into());
    }

    /// Replaces what one probe of `service` observed.
    fn observe(
        &mut self,
        probe: ProbeKind,
        service: &str,
        status: ProbeStatus,
        evidence: &[&str],
        facts: Facts,
    ) {
        let o = self.probe_mut(probe, service);
        o.status = status;
        o.evidence = evidence.iter().map(|e| e.to_string()).collect();
        o.facts = facts;
    }

    fn refuse(&mut self, probe: ProbeKind, service: &str, msg: &str) {
        self.observe(probe, service, ProbeStatus::Error, &[msg], Facts::None);
    }

    /// `from` cannot resolve `name`.
    fn unresolved(&mut self, from: &str, name: &str, evidence: &[&str]) {
        let facts = Facts::Dns(DnsFacts {
            from: from.into(),
            on_behalf_of: vec![from.into()],
            answers: vec![(name.into(), None)],
        });
        self.observe(ProbeKind::Dns, from, ProbeStatus::Fail, evidence, facts);
    }

    fn report(&self) -> OpsReport {
        diagnose(&self.outcomes, &PlatformConfig::embedded().unwrap())
    }
}

fn assert_affected(r: &OpsReport, services: &[&str]) {
    for s in services {
        assert!(
            r.affected_services().contains(s),
            "{s} not in affected {:?}\n{}",
            r.affected_services(),
            r.to_markdown()
        );
    }
}

#[test]
fn healthy_platform_is_reported_healthy_and_invents_no_cause() {
    let mut p = Platform::healthy();
    // Routine retries in a healthy worker's log are an observation, never a cause.
    let w = p.container_mut("worker-1");
    w.error_count = 1;
    w.error_lines = vec![
        "[worker-1] activity failed: SyncArtifacts attempt 1/3 timed out after 30s, retrying"
            .into(),
    ];
    w.large_payload_lines = vec!["[worker-1] WARN Large payload detected: 3.1 MB".into()];
    let r = p.report();
    assert!(r.healthy, "{}", r.to_markdown());
    assert!(r.root_causes.is_empty());
    assert!(r.affected.is_empty());
    assert!(
        r.issue.starts_with("None: the platform is healthy"),
        "{}",
        r.issue
    );
    let md = r.to_markdown();
    assert!(md.contains("No fault found"), "{md}");
    assert!(md.contains("Large payload detected"), "{md}");
    assert!(md.contains("worker-1 (see observations)"), "{md}");
}

#[test]
fn stopped_service_is_the_root_cause_with_its_exit_code() {
    let mut p = Platform::healthy();
    p.stop("mcp-server", 0);
    p.refuse(
        ProbeKind::Http,
        "mcp-server",
        "GET http://127.0.0.1:3337/health: connection failed (Connection refused (os error 111))",
    );
    let r = p.report();
    assert_eq!(r.root_services(), vec!["mcp-server"], "{}", r.to_markdown());
    assert!(
        r.root_causes[0].summary.contains("not running"),
        "{:?}",
        r.root_causes[0]
    );
    assert!(
        r.root_causes[0]
            .evidence
            .iter()
            .any(|e| e.contains("exit code 0"))
    );
    assert!(
        r.root_causes[0]
            .evidence
            .iter()
            .any(|e| e.contains("Connection refused")),
        "http refusal quoted: {:?}",
        r.root_causes[0].evidence
    );
    assert!(
        r.steps
            .iter()
            .any(|s| s.compose.as_deref() == Some("docker compose start mcp-server"))
    );
}

#[test]
fn crash_loop_is_named_with_restart_count_exit_code_and_the_fatal_line() {
    let mut p = Platform::healthy();
    let c = p.container_mut("ai-gateway");
    c.state = "restarting".into();
    c.health = None;
    c.restart_count = 6;
    c.exit_code = Some(3);
    c.error_count = 6;
    c.error_lines = vec![
        "FATAL: cannot start ai-gateway: provider config invalid (missing AI_PROVIDER)".into(),
    ];
    let r = p.report();
    assert_eq!(r.root_services(), vec!["ai-gateway"], "{}", r.to_markdown());
    assert!(r.root_causes[0].summary.contains("crash loop"));
    assert!(
        r.affected[0].status.contains("6 restarts") && r.affected[0].status.contains("exit code 3"),
        "{:?}",
        r.affected
    );
    assert!(
        r.root_causes[0]
            .evidence
            .iter()
            .any(|e| e.contains("missing AI_PROVIDER"))
    );
}

#[test]
fn oom_kill_is_named_with_the_memory_limit() {
    let mut p = Platform::healthy();
    let c = p.container_mut("worker-2");
    c.state = "exited".into();
    c.health = None;
    c.exit_code = Some(137);
    c.oom_killed = true;
    c.memory_limit = 48 << 20;
    let r = p.report();
    assert_eq!(r.root_services(), vec!["worker-2"], "{}", r.to_markdown());
    assert!(
        r.root_causes[0].summary.contains("OOM killer"),
        "{:?}",
        r.root_causes[0]
    );
    assert!(r.root_causes[0].summary.contains("48.0 MiB"));
    assert!(r.issue.contains("worker-2 was OOM-killed"), "{}", r.issue);
}

#[test]
fn failing_healthcheck_while_running_is_the_root_cause_when_dependencies_are_fine() {
    let mut p = Platform::healthy();
    p.unhealthy("api-2", "curl: (22) The requested URL returned error: 503");
    let r = p.report();
    assert_eq!(r.root_services(), vec!["api-2"], "{}", r.to_markdown());
    assert!(r.root_causes[0].established);
    assert!(
        r.root_causes[0]
            .summary
            .contains("running but its healthcheck fails")
    );
    assert!(
        r.root_causes[0]
            .evidence
            .iter()
            .any(|e| e.contains("error: 503"))
    );
}

#[test]
fn stopped_postgres_explains_the_unhealthy_apis_as_dependents() {
    let mut p = Platform::healthy();
    p.stop("postgres", 0);
    p.refuse(
        ProbeKind::Postgres,
        "postgres",
        "error connecting to server: Connection refused (os error 111)",
    );
    p.unhealthy("api-1", "curl: (22) The requested URL returned error: 503");
    p.unhealthy("api-2", "curl: (22) The requested URL returned error: 503");
    let gw = p.probe_mut(ProbeKind::Http, "api-gateway");
    gw.status = ProbeStatus::Fail;
    gw.evidence = vec!["GET http://127.0.0.1:3000/healthz → 503 in 40 ms (X-Upstream-Addr: 172.20.0.7:3000), expected 200".into()];
    let r = p.report();
    assert_eq!(r.root_services(), vec!["postgres"], "{}", r.to_markdown());
    assert_affected(&r, &["postgres", "api-1", "api-2", "api-gateway"]);
    let api1 = r.affected.iter().find(|a| a.service == "api-1").unwrap();
    assert!(api1.status.contains("depends on postgres"), "{api1:?}");
    assert!(
        r.root_causes[0].summary.contains("dependents"),
        "{}",
        r.root_causes[0].summary
    );
    assert!(
        r.root_causes[0]
            .evidence
            .iter()
            .any(|e| e.contains("Connection refused"))
    );
    assert!(
        r.steps
            .iter()
            .any(|s| s.bot.as_deref() == Some("/start service:postgres"))
    );
    // Dependents not (yet) failing are named for monitoring.
    assert!(
        r.related.iter().any(|x| x.starts_with("temporal")),
        "{:?}",
        r.related
    );
}

#[test]
fn stopped_redis_is_the_root_cause_and_the_apis_are_affected() {
    let mut p = Platform::healthy();
    p.stop("redis", 0);
    p.refuse(
        ProbeKind::Redis,
        "redis",
        "redis connect: Connection refused (os error 111)",
    );
    p.unhealthy("api-1", "curl: (22) The requested URL returned error: 503");
    p.unhealthy(
        "ai-gateway",
        "curl: (22) The requested URL returned error: 503",
    );
    let r = p.report();
    assert_eq!(r.root_services(), vec!["redis"], "{}", r.to_markdown());
    assert_affected(&r, &["api-1", "ai-gateway"]);
    assert!(r.verification.iter().any(|v| v.contains("redis-cli ping")));
}

#[test]
fn deleted_bucket_is_the_root_cause_and_the_workers_are_affected() {
    let mut p = Platform::healthy();
    p.observe(
        ProbeKind::S3,
        "minio",
        ProbeStatus::Fail,
        &["HeadBucket rewst-artifacts on http://127.0.0.1:9000 answered HTTP 404 (bucket does not exist)"],
        Facts::S3(S3Facts {
            bucket: "rewst-artifacts".into(),
            endpoint: "http://127.0.0.1:9000".into(),
            bucket_exists: Some(false),
            bucket_status: Some(404),
            ..Default::default()
        }),
    );
    p.unhealthy("worker-1", "");
    let w = p.container_mut("worker-1");
    w.error_count = 3;
    w.error_lines =
        vec!["[worker-1] ERROR activity failed: bucket rewst-artifacts not accessible".into()];
    let r = p.report();
    assert_eq!(r.root_services(), vec!["minio"], "{}", r.to_markdown());
    assert!(
        r.root_causes[0]
            .summary
            .contains("bucket rewst-artifacts does not exist")
    );
    assert_affected(&r, &["worker-1"]);
    assert!(
        r.steps
            .iter()
            .any(|s| s.compose.as_deref() == Some("docker compose run --rm minio-init"))
    );
}

#[test]
fn container_cut_off_the_network_is_named_with_the_missing_network() {
    let mut p = Platform::healthy();
    let w = p.container_mut("worker-1");
    w.networks.clear();
    p.unresolved(
        "worker-1",
        "temporal",
        &["`getent hosts temporal` from worker-1: temporal did not resolve"],
    );
    let r = p.report();
    assert_eq!(r.root_services(), vec!["worker-1"], "{}", r.to_markdown());
    assert!(
        r.root_causes[0]
            .summary
            .contains("not attached to the project network riftwing_default")
    );
    assert!(
        r.root_causes[0]
            .evidence
            .iter()
            .any(|e| e.contains("getent hosts temporal"))
    );
    assert!(r.steps.iter().any(|s| {
        s.compose
            .as_deref()
            .is_some_and(|c| c.contains("docker network connect --alias worker-1 riftwing_default"))
    }));
}

#[test]
fn dns_failing_alone_names_the_caller_cut_off_from_dns() {
    let mut p = Platform::healthy();
    p.unresolved(
        "api-1",
        "postgres",
        &["`getent hosts postgres` from api-1: postgres did not resolve"],
    );
    let r = p.report();
    assert_eq!(r.root_services(), vec!["api-1"], "{}", r.to_markdown());
    assert!(r.issue.contains("cut off the network"), "{}", r.issue);
}

#[test]
fn dns_failure_for_a_stopped_dependency_does_not_blame_the_caller() {
    let mut p = Platform::healthy();
    p.stop("postgres", 0);
    p.unresolved("api-1", "postgres", &[]);
    let r = p.report();
    assert_eq!(r.root_services(), vec!["postgres"], "{}", r.to_markdown());
    assert!(!r.affected_services().contains(&"api-1"));
}

#[test]
fn dns_failure_for_a_dependency_detached_from_the_network_does_not_blame_the_resolver() {
    let mut p = Platform::healthy();
    p.container_mut("postgres").networks.clear();
    // api-1 resolves for every service on its networks: it is not the one at fault.
    p.unresolved("api-1", "postgres", &[]);
    let r = p.report();
    assert_eq!(r.root_services(), vec!["postgres"], "{}", r.to_markdown());
    assert!(
        r.root_causes[0].evidence.iter().any(
            |e| e == "postgres does not resolve from api-1 (it is not attached to the network)"
        ),
        "{}",
        r.to_markdown()
    );
}

#[test]
fn full_volume_is_named_from_df_and_quotes_the_no_space_log_line() {
    let mut p = Platform::healthy();
    p.observe(
        ProbeKind::Disk,
        "worker-1",
        ProbeStatus::Fail,
        &["`df -P /scratch` in worker-1: tmpfs 8192 8192 0 100% /scratch"],
        Facts::Disk(DiskFacts {
            service: "worker-1".into(),
            path: "/scratch".into(),
            volume: Some("worker-scratch".into()),
            used_percent: 100,
            used_kb: 8192,
            available_kb: 0,
            warn_percent: 90,
        }),
    );
    p.unhealthy("worker-1", "");
    let w = p.container_mut("worker-1");
    w.no_space_lines = vec!["[worker-1] ERROR [artifact] write failed for artifacts/run-00042.json: No space left on device".into()];
    let r = p.report();
    assert_eq!(r.root_services(), vec!["worker-1"], "{}", r.to_markdown());
    assert!(
        r.root_causes[0]
            .summary
            .contains("volume worker-scratch is full"),
        "{}",
        r.root_causes[0].summary
    );
    assert!(
        r.root_causes[0]
            .evidence
            .iter()
            .any(|e| e.contains("100% /scratch"))
    );
    assert!(r.affected[0].status.contains("100%"));
}

#[test]
fn stale_no_space_lines_do_not_make_a_volume_full_when_df_passes() {
    let mut p = Platform::healthy();
    let w = p.container_mut("worker-1");
    w.no_space_lines = vec!["No space left on device".into()];
    let r = p.report();
    assert!(r.healthy, "{}", r.to_markdown());
}

#[test]
fn no_space_in_logs_without_a_df_check_is_a_full_volume() {
    let mut p = Platform::healthy();
    let c = p.container_mut("db-backup");
    c.no_space_lines =
        vec!["pg_dump: error: could not write to output file: No space left on device".into()];
    let r = p.report();
    assert_eq!(r.root_services(), vec!["db-backup"], "{}", r.to_markdown());
    assert!(r.issue.contains("full volume"));
}

#[test]
fn a_timed_out_probe_is_marked_in_the_report() {
    let mut p = Platform::healthy();
    p.observe(
        ProbeKind::Redis,
        "redis",
        ProbeStatus::TimedOut,
        &["no answer within the 2.0 s deadline"],
        Facts::None,
    );
    let r = p.report();
    assert_eq!(r.root_services(), vec!["redis"], "{}", r.to_markdown());
    assert!(
        r.affected[0].status.contains("timed out after 2s"),
        "{:?}",
        r.affected
    );
    assert_eq!(r.timed_out.len(), 1);
    assert!(
        r.to_markdown().contains("Probes that timed out"),
        "{}",
        r.to_markdown()
    );
}

#[test]
fn a_symptom_without_supporting_evidence_says_the_cause_is_not_established() {
    let mut p = Platform::healthy();
    let o = p.probe_mut(ProbeKind::Http, "console");
    o.status = ProbeStatus::Fail;
    o.evidence = vec!["GET http://127.0.0.1:5173/__vite_ping → 502 in 3 ms, expected 200".into()];
    let r = p.report();
    assert_eq!(r.root_services(), vec!["console"]);
    assert!(!r.root_causes[0].established);
    let md = r.to_markdown();
    assert!(md.contains("Cause not established: "), "{md}");
    assert!(md.contains("→ 502"), "{md}");
}

#[test]
fn two_independent_faults_are_two_root_causes() {
    let mut p = Platform::healthy();
    p.stop("mcp-server", 0);
    p.unhealthy("api-2", "curl: (22) 503");
    let r = p.report();
    let mut roots = r.root_services();
    roots.sort();
    assert_eq!(roots, vec!["api-2", "mcp-server"], "{}", r.to_markdown());
}

#[test]
fn an_unreachable_engine_is_said_plainly() {
    let outcomes = vec![ProbeOutcome {
        status: ProbeStatus::Error,
        evidence: vec!["the Docker Engine is not reachable: socket not found".into()],
        ..outcome(
            ProbeKind::Inventory,
            "riftwing",
            None,
            ProbeStatus::Error,
            Facts::None,
        )
    }];
    let r = diagnose(&outcomes, &PlatformConfig::embedded().unwrap());
    assert!(!r.healthy);
    assert_eq!(r.root_services(), vec!["docker-engine"]);
    assert!(r.root_causes[0].evidence[0].contains("socket not found"));
}

#[test]
fn markdown_follows_the_seed_output_format_headings_in_order() {
    let mut p = Platform::healthy();
    p.stop("redis", 0);
    let md = p.report().to_markdown();
    let headings = [
        "## Container Operations Report\n",
        "\n### Issue: redis is stopped",
        "\n### Services Affected:\n- redis - exited (exit code 0)",
        "\n### Root Cause:\n",
        "\n### Resolution Steps:\n1. ",
        "\n### Verification:\n```bash\n",
        "\n### Prevention:\n- ",
        "\n### Related Services to Monitor:\n- ",
    ];
    let mut at = 0;
    for h in headings {
        let pos = md[at..]
            .find(h)
            .unwrap_or_else(|| panic!("missing or out of order: {h:?}\n{md}"));
        at += pos + h.len();
    }
    assert!(md.starts_with("## Container Operations Report\n"));
    assert_eq!(md.matches("### ").count(), 7, "{md}");
    assert_eq!(md.matches("```").count(), 2, "{md}");
}

#[test]
fn every_bot_command_a_rule_suggests_parses_as_a_catalog_command() {
    use crate::core::args::{self, ArgContext};
    use crate::core::catalog::Catalog;
    use std::collections::{BTreeMap, BTreeSet};

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("commands");
    let groups: BTreeSet<crate::core::types::GroupName> = ["app", "infra"]
        .iter()
        .map(|g| crate::core::types::GroupName::parse(g).unwrap())
        .collect();
    let catalog = Catalog::load_dir(&dir, &groups).expect("shipped commands load");
    let kinds = [
        Kind::EngineUnavailable,
        Kind::OomKilled,
        Kind::CrashLoop,
        Kind::Stopped,
        Kind::NetworkCutOff,
        Kind::VolumeFull,
        Kind::BucketMissing,
        Kind::NotResponding,
        Kind::Unhealthy,
        Kind::Failing,
    ];
    let mut suggested = Vec::new();
    for kind in kinds {
        for service in ["postgres", "redis", "minio", "api-1", "worker-1", "project"] {
            let f = Finding {
                service: service.into(),
                kind,
                status: "down".into(),
                summary: "x".into(),
                evidence: vec![],
                container: Some(format!("riftwing-{service}-1")),
                volume: Some(("worker-scratch".into(), "/scratch".into())),
                network: Some("riftwing_default".into()),
            };
            let (steps, _, _) = remedy(&f, &PlatformConfig::embedded().unwrap());
            suggested.extend(steps.into_iter().filter_map(|s| s.bot));
        }
    }
    assert!(suggested.len() > 10, "{suggested:?}");
    let no_groups = BTreeMap::new();
    for line in &suggested {
        let (name, rest) = line
            .trim_start_matches('/')
            .split_once(' ')
            .unwrap_or((line.trim_start_matches('/'), ""));
        let cmd = catalog
            .get(name)
            .unwrap_or_else(|| panic!("`{line}` names no catalog command"));
        args::parse(
            cmd,
            rest,
            &ArgContext {
                max_arg_len: 200,
                known_services: None,
                groups: &no_groups,
            },
        )
        .unwrap_or_else(|e| panic!("`{line}` does not parse: {e}"));
    }
}

/// The gateway's probe answered `status`, naming `tried` in X-Upstream-Addr; api-1 and api-2
/// are at .9 and .10, console at .5.
fn gateway_answering(status: u16, tried: &str) -> Platform {
    let mut p = Platform::healthy();
    for (svc, ip) in [
        ("api-1", "172.20.0.9"),
        ("api-2", "172.20.0.10"),
        ("console", "172.20.0.5"),
    ] {
        let o = p.probe_mut(ProbeKind::Container, svc);
        match &mut o.facts {
            Facts::Container(f) => f.addresses = vec![ip.into()],
            _ => unreachable!("container facts"),
        }
    }
    let o = p.probe_mut(ProbeKind::Http, "api-gateway");
    o.status = ProbeStatus::Fail;
    o.evidence = vec![format!(
        "GET http://127.0.0.1:3000/healthz → {status} in 3004 ms (X-Upstream-Addr: {tried}), expected 200"
    )];
    if let Facts::Http(h) = &mut o.facts {
        h.status = Some(status);
        h.header = Some(("X-Upstream-Addr".into(), tried.into()));
    }
    p
}

#[test]
fn a_gateway_sending_requests_to_addresses_its_api_instances_left_is_the_root_cause() {
    let r = gateway_answering(502, "172.20.0.3:3000, 172.20.0.5:3000").report();
    let md = r.to_markdown();
    assert_eq!(r.root_services(), vec!["api-gateway"], "{md}");
    assert!(r.root_causes[0].established, "{md}");
    assert!(
        md.contains("172.20.0.3:3000 (no container of the project has it)"),
        "{md}"
    );
    assert!(md.contains("172.20.0.5:3000 (now console's)"), "{md}");
    assert!(
        md.contains("api-1 at 172.20.0.9; api-2 at 172.20.0.10"),
        "{md}"
    );
    assert!(md.contains("/restart service:api-gateway"), "{md}");
    assert!(md.contains("docker compose restart api-gateway"), "{md}");
}

#[test]
fn a_gateway_error_from_an_instance_at_its_current_address_is_not_blamed_on_addresses() {
    for tried in [
        "172.20.0.9:3000",
        "172.20.0.3:3000, 172.20.0.10:3000",
        "127.0.0.1:3001",
        "api-1:3000",
    ] {
        let r = gateway_answering(502, tried).report();
        assert!(
            !r.root_causes[0].established,
            "{tried}: {}",
            r.to_markdown()
        );
    }
    let r = gateway_answering(500, "172.20.0.3:3000").report();
    assert!(!r.root_causes[0].established, "{}", r.to_markdown());
}

#[test]
fn a_gateway_naming_its_upstream_group_instead_of_an_address_says_when_to_look_again() {
    let r = gateway_answering(502, "api").report();
    let md = r.to_markdown();
    assert!(!r.root_causes[0].established, "{md}");
    assert!(md.contains("names the upstream group `api`"), "{md}");
    let r = gateway_answering(502, "172.20.0.9:3000").report();
    assert!(
        !r.to_markdown().contains("upstream group"),
        "{}",
        r.to_markdown()
    );
}

#[test]
fn without_the_header_the_gateways_own_error_lines_name_the_addresses_it_tried() {
    let mut p = gateway_answering(502, "");
    if let Facts::Http(h) = &mut p.probe_mut(ProbeKind::Http, "api-gateway").facts {
        h.header = None;
    }
    let gw = p.probe_mut(ProbeKind::Container, "api-gateway");
    if let Facts::Container(f) = &mut gw.facts {
        // The oldest names an address from before an earlier move: not among the newest two.
        let tried = [
            "172.20.0.2:3000",
            "172.20.0.3:3000",
            "172.20.0.4:3000",
            "172.20.0.3:3000",
        ];
        f.failed_upstreams = tried.iter().map(|a| a.to_string()).collect();
        f.upstream_failure_lines = tried
            .iter()
        .map(|a| format!(
            "2026/12/04 09:00:08 [error] 29#29: *7 connect() failed (111: Connection refused) while connecting to upstream, client: 172.20.0.1, server: , request: \"GET /healthz HTTP/1.1\", upstream: \"http://{a}/healthz\", host: \"127.0.0.1:3000\""
        ))
        .collect();
    }
    let r = p.report();
    let md = r.to_markdown();
    assert_eq!(r.root_services(), vec!["api-gateway"], "{md}");
    assert!(
        md.contains("sends requests to 172.20.0.4:3000 (no container of the project has it), 172.20.0.3:3000 (no container of the project has it), but"),
        "{md}"
    );
    assert!(md.contains("api-gateway's log: "), "{md}");

    // One of the lines names api-2's current address: the failure is not the addresses.
    let gw = p.probe_mut(ProbeKind::Container, "api-gateway");
    if let Facts::Container(f) = &mut gw.facts {
        let newest = f.upstream_failure_lines.last().expect("lines");
        let live = newest.replace("172.20.0.3:3000", "172.20.0.10:3000");
        assert_ne!(&live, newest);
        f.upstream_failure_lines.push(live);
        f.failed_upstreams.push("172.20.0.10:3000".into());
    }
    assert!(!p.report().root_causes[0].established);
}
