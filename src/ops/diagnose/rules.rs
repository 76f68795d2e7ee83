//! Root-cause rules: findings per service from probe outcomes, dependencies explaining dependents, steps per cause.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::platform::PlatformConfig;
use crate::core::types::{format_bytes, format_duration};
use crate::ops::diagnose::probes::engine::ContainerFacts;
use crate::ops::diagnose::probes::{Facts, ProbeKind, ProbeOutcome, ProbeStatus};

use super::report::{AffectedService, OpsReport, RootCause, Step};

/// What is wrong with one service. Order = precedence when a service shows several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    EngineUnavailable,
    OomKilled,
    CrashLoop,
    Stopped,
    NetworkCutOff,
    VolumeFull,
    BucketMissing,
    /// A proxy sends requests to addresses its upstream services no longer have.
    StaleUpstream,
    /// The probe timed out: the service accepted nothing or answered nothing in time.
    NotResponding,
    /// Running, but its healthcheck fails.
    Unhealthy,
    /// The bot could not use it (refused, wrong status) and nothing above explains why.
    Failing,
}

impl Kind {
    /// Self-evident causes stay root causes even when a dependency is also failing; symptoms
    /// (unhealthy, failing, not responding) are explained by a failing dependency.
    fn is_symptom(self) -> bool {
        matches!(self, Kind::NotResponding | Kind::Unhealthy | Kind::Failing)
    }
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub service: String,
    pub kind: Kind,
    /// Short status for "Services Affected".
    pub status: String,
    /// The cause sentence for "Root Cause".
    pub summary: String,
    pub evidence: Vec<String>,
    /// Container name, for Compose/Docker lines that need it.
    pub container: Option<String>,
    pub volume: Option<(String, String)>,
    /// The project network the service should be on (network cut-off).
    pub network: Option<String>,
}

impl Finding {
    fn new(service: &str, kind: Kind, status: String, summary: String) -> Self {
        Self {
            service: service.to_string(),
            kind,
            status,
            summary,
            evidence: Vec::new(),
            container: None,
            volume: None,
            network: None,
        }
    }
    fn with_evidence(mut self, ev: impl IntoIterator<Item = String>) -> Self {
        self.evidence.extend(ev);
        self
    }
}

/// Per-service findings, keeping the strongest kind and every piece of evidence.
#[derive(Default)]
struct Findings {
    by_service: BTreeMap<String, Finding>,
}

impl Findings {
    fn add(&mut self, f: Finding) {
        match self.by_service.get_mut(&f.service) {
            None => {
                self.by_service.insert(f.service.clone(), f);
            }
            Some(existing) => {
                let (mut keep, other) = if f.kind < existing.kind {
                    (f, existing.clone())
                } else {
                    (existing.clone(), f)
                };
                for e in other.evidence {
                    if !keep.evidence.contains(&e) {
                        keep.evidence.push(e);
                    }
                }
                keep.container = keep.container.or(other.container);
                keep.volume = keep.volume.or(other.volume);
                keep.network = keep.network.or(other.network);
                self.by_service.insert(keep.service.clone(), keep);
            }
        }
    }
    /// Adds evidence to a service's finding if it has one; true when it did.
    fn corroborate(&mut self, service: &str, evidence: &[String]) -> bool {
        match self.by_service.get_mut(service) {
            Some(f) => {
                for e in evidence {
                    if !f.evidence.contains(e) {
                        f.evidence.push(e.clone());
                    }
                }
                true
            }
            None => false,
        }
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.trim())
}

fn exit_meaning(code: Option<i64>) -> &'static str {
    match code {
        Some(0) => "a clean exit: it was stopped or its process ended normally",
        Some(137) => "killed with SIGKILL",
        Some(143) => "terminated by SIGTERM (a stop)",
        Some(_) => "its process failed",
        None => "no exit code recorded",
    }
}

fn container_findings(f: &ContainerFacts, out: &mut Findings, disk_checked_ok: &BTreeSet<String>) {
    if f.finished_ok() {
        return;
    }
    let svc = &f.service;
    let log_ev: Vec<String> = f
        .error_lines
        .iter()
        .map(|l| format!("log: {}", quote(l)))
        .collect();
    let mut push = |mut finding: Finding| {
        finding.container = Some(f.name.clone());
        out.add(finding);
    };
    if f.oom_killed {
        let limit = if f.memory_limit > 0 {
            format!("its {} memory limit", format_bytes(f.memory_limit))
        } else {
            "the memory available to it".to_string()
        };
        push(
            Finding::new(
                svc,
                Kind::OomKilled,
                format!(
                    "{} (OOMKilled, exit code {})",
                    f.state,
                    f.exit_code.map_or("?".into(), |c| c.to_string())
                ),
                format!("{svc} was killed by the kernel OOM killer: it allocated past {limit}."),
            )
            .with_evidence(
                [format!(
                    "State.OOMKilled=true, exit code {}, memory limit {}",
                    f.exit_code.map_or("?".into(), |c| c.to_string()),
                    if f.memory_limit > 0 {
                        format_bytes(f.memory_limit)
                    } else {
                        "none".into()
                    }
                )]
                .into_iter()
                .chain(log_ev.clone()),
            ),
        );
        return;
    }
    let crash_loop = f.state == "restarting" || (f.restart_count >= 3 && !f.running());
    if crash_loop {
        push(
            Finding::new(
                svc,
                Kind::CrashLoop,
                format!(
                    "crash loop ({} restarts, last exit code {})",
                    f.restart_count,
                    f.exit_code.map_or("?".into(), |c| c.to_string())
                ),
                format!(
                    "{svc} is in a crash loop: it exits at start ({}) and Docker keeps restarting it.",
                    exit_meaning(f.exit_code)
                ),
            )
            .with_evidence(
                [format!(
                    "state {}, RestartCount {}, exit code {}",
                    f.state,
                    f.restart_count,
                    f.exit_code.map_or("?".into(), |c| c.to_string())
                )]
                .into_iter()
                .chain(log_ev.clone()),
            ),
        );
        return;
    }
    if !f.running() {
        let what = if f.one_shot { "init job" } else { "service" };
        push(
            Finding::new(
                svc,
                Kind::Stopped,
                format!(
                    "{} (exit code {})",
                    f.state,
                    f.exit_code.map_or("?".into(), |c| c.to_string())
                ),
                format!(
                    "{svc} is not running: the {what} is {} with exit code {} ({}).",
                    f.state,
                    f.exit_code.map_or("?".into(), |c| c.to_string()),
                    exit_meaning(f.exit_code)
                ),
            )
            .with_evidence(
                [format!(
                    "state {}, exit code {}{}",
                    f.state,
                    f.exit_code.map_or("?".into(), |c| c.to_string()),
                    f.finished_at.map_or(String::new(), |t| format!(
                        ", finished {}",
                        t.format("%Y-%m-%d %H:%M:%S UTC")
                    ))
                )]
                .into_iter()
                .chain(log_ev.clone()),
            ),
        );
        return;
    }
    if !f.on_project_network() {
        push(
            Finding {
                network: Some(f.expected_network.clone()),
                ..Finding::new(
                svc,
                Kind::NetworkCutOff,
                format!("running but cut off the network ({} not attached)", f.expected_network),
                format!(
                    "{svc} is running but not attached to the project network {}, so it cannot reach (or be reached by) the other services.",
                    f.expected_network
                ),
            )
            }
            .with_evidence(
                [format!(
                    "networks of {}: {}",
                    f.name,
                    if f.networks.is_empty() {
                        "none".to_string()
                    } else {
                        f.networks.join(", ")
                    }
                )]
                .into_iter()
                .chain(log_ev.clone()),
            ),
        );
    }
    // Logs alone say "full" only when no df check of that service says otherwise.
    if !f.no_space_lines.is_empty() && !disk_checked_ok.contains(svc) {
        push(
            Finding::new(
                svc,
                Kind::VolumeFull,
                "writes fail: no space left on device".into(),
                format!("{svc} cannot write: its log reports \"No space left on device\"."),
            )
            .with_evidence(
                f.no_space_lines
                    .iter()
                    .map(|l| format!("log: {}", quote(l))),
            ),
        );
    }
    if f.health.as_deref() == Some("unhealthy") {
        let mut ev = Vec::new();
        if let Some(o) = &f.health_output {
            ev.push(format!("last healthcheck output: {}", quote(o)));
        }
        ev.extend(log_ev);
        push(
            Finding::new(
                svc,
                Kind::Unhealthy,
                "running, healthcheck failing (unhealthy)".into(),
                format!("{svc} is running but its healthcheck fails."),
            )
            .with_evidence(ev),
        );
    }
}

/// Network-side probe on a service: a timeout, a refusal or a wrong answer.
fn network_finding(o: &ProbeOutcome, service: &str) -> Option<Finding> {
    let ev: Vec<String> = o
        .evidence
        .iter()
        .map(|e| format!("{} probe: {}", o.probe, e))
        .collect();
    match o.status {
        ProbeStatus::TimedOut => Some(
            Finding::new(
                service,
                Kind::NotResponding,
                format!(
                    "not responding ({} probe timed out after {})",
                    o.probe,
                    format_duration(o.deadline)
                ),
                format!(
                    "{service} did not answer the {} probe of {} within {}.",
                    o.probe,
                    o.target,
                    format_duration(o.deadline)
                ),
            )
            .with_evidence(ev),
        ),
        ProbeStatus::Error | ProbeStatus::Fail => Some(
            Finding::new(
                service,
                Kind::Failing,
                match &o.facts {
                    Facts::Http(h) => format!(
                        "{} answered {} (expected {})",
                        h.url,
                        h.status.map_or("nothing".into(), |s| s.to_string()),
                        h.expected_status
                    ),
                    _ if o.status == ProbeStatus::Error => {
                        format!("unreachable by the {} probe", o.probe)
                    }
                    _ => format!("{} probe failed", o.probe),
                },
                format!("the {} probe of {} failed.", o.probe, o.target),
            )
            .with_evidence(ev),
        ),
        ProbeStatus::Pass | ProbeStatus::Warn => None,
    }
}

/// A proxy answering 502/504 while the addresses it tried (its upstream-address header, else
/// its own recent error lines) are ones that none of its running upstream services has: it
/// resolved their names once and they have moved since (recreated, or restarted onto another
/// address). Only said when every address it tried is accounted for as nobody's or as another
/// service's, and an upstream is running somewhere else, so a refused connection to a live
/// instance is never blamed on addresses.
fn stale_upstream(
    o: &ProbeOutcome,
    service: &str,
    containers: &BTreeMap<String, &ContainerFacts>,
    config: &PlatformConfig,
) -> Option<Finding> {
    let Facts::Http(h) = &o.facts else {
        return None;
    };
    if o.status != ProbeStatus::Fail || !matches!(h.status, Some(502 | 504)) {
        return None;
    }
    let ip_of = |addr: &str| -> Option<std::net::IpAddr> {
        addr.parse::<std::net::SocketAddr>()
            .map(|a| a.ip())
            .or_else(|_| addr.parse())
            .ok()
    };
    // nginx's $upstream_addr: "a:p, b:p" for servers tried in turn, " : " between groups.
    let from_header = h.header.as_ref().and_then(|(header, value)| {
        let tried: Vec<String> = value
            .split([',', ' '])
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != ":")
            .map(str::to_string)
            .collect();
        let all_addresses = !tried.is_empty() && tried.iter().all(|a| ip_of(a).is_some());
        all_addresses.then(|| (tried, format!("{header} named {value}")))
    });
    let upstreams = config.direct_runtime_deps(service);
    // Without the header (nginx drops it on errors unless `add_header ... always`), the
    // proxy's own error log names each address it failed to connect to. The newest ones only,
    // one per upstream: older lines may name addresses from before a later move.
    let (tried, source) = match from_header {
        Some(t) => t,
        None => {
            let gateway = containers.get(service)?;
            let mut tried: Vec<String> = Vec::new();
            for a in gateway.failed_upstreams.iter().rev() {
                if tried.len() == upstreams.len().max(1) {
                    break;
                }
                if !tried.iter().any(|t| t == a) {
                    tried.push(a.to_string());
                }
            }
            tried.reverse();
            let last = gateway.upstream_failure_lines.last()?;
            (tried, format!("{service}'s log: {}", quote(last)))
        }
    };
    if tried.is_empty()
        || tried
            .iter()
            .any(|a| ip_of(a).is_none_or(|ip| ip.is_loopback()))
    {
        return None;
    }
    let holder = |ip: std::net::IpAddr| {
        containers.values().find(|c| {
            c.running()
                && c.addresses
                    .iter()
                    .any(|a| a.split('/').next().and_then(|a| a.parse().ok()) == Some(ip))
        })
    };
    let mut stale = Vec::new();
    for a in &tried {
        match holder(ip_of(a)?) {
            Some(c) if upstreams.contains(&c.service) => return None,
            Some(c) => stale.push(format!("{a} (now {}'s)", c.service)),
            None => stale.push(format!("{a} (no container of the project has it)")),
        }
    }
    let now: Vec<String> = upstreams
        .iter()
        .filter_map(|u| containers.get(u.as_str()))
        .filter(|c| c.running() && !c.addresses.is_empty())
        .map(|c| format!("{} at {}", c.service, c.addresses.join(", ")))
        .collect();
    if now.is_empty() {
        return None;
    }
    let mut f = Finding::new(
        service,
        Kind::StaleUpstream,
        format!(
            "{} answered {}; it sent the request to {}",
            h.url,
            h.status.unwrap_or_default(),
            tried.join(", ")
        ),
        format!(
            "{service} sends requests to {}, but its upstreams are elsewhere now: {}. A proxy that resolves its upstream names only when it starts keeps the old addresses after the instances are recreated or restart onto new ones.",
            stale.join(", "),
            now.join("; ")
        ),
    )
    .with_evidence(o.evidence.iter().map(|e| format!("{} probe: {e}", o.probe)));
    f.evidence.push(source);
    f.evidence.push(format!("inventory: {}", now.join("; ")));
    Some(f)
}

/// nginx puts the upstream group's name in `$upstream_addr` when it has marked every server
/// of the group failed and tries none of them: no address to judge, so say when to look again.
fn upstream_group_named(o: &ProbeOutcome) -> Option<String> {
    let Facts::Http(h) = &o.facts else {
        return None;
    };
    let (header, value) = h.header.as_ref()?;
    let name = value.trim();
    let is_name = !name.is_empty()
        && !name.contains([':', ',', ' '])
        && name.parse::<std::net::IpAddr>().is_err();
    (matches!(h.status, Some(502 | 504)) && is_name).then(|| {
        format!(
            "{header} names the upstream group `{name}`, not an address: the proxy has marked every server in it failed and is not trying them; /diagnose again after its fail_timeout (nginx: 10 s) shows the addresses it tries"
        )
    })
}

/// The Container Operations Report for one set of probe outcomes.
pub fn diagnose(outcomes: &[ProbeOutcome], config: &PlatformConfig) -> OpsReport {
    let mut findings = Findings::default();
    let mut observations = Vec::new();
    let mut timed_out = Vec::new();

    for o in outcomes
        .iter()
        .filter(|o| o.status == ProbeStatus::TimedOut)
    {
        timed_out.push(format!(
            "{} {} ({} deadline)",
            o.probe,
            o.target,
            format_duration(o.deadline)
        ));
    }

    let containers: BTreeMap<String, &ContainerFacts> = outcomes
        .iter()
        .filter_map(|o| match &o.facts {
            Facts::Container(f) => Some((f.service.clone(), f.as_ref())),
            _ => None,
        })
        .collect();
    let down = |svc: &str| {
        containers
            .get(svc)
            .is_some_and(|f| !f.running() && !f.finished_ok())
    };

    // Disk first: a passing df overrules stale "No space left" log lines.
    let mut disk_ok = BTreeSet::new();
    for o in outcomes.iter().filter(|o| o.probe == ProbeKind::Disk) {
        if let Facts::Disk(d) = &o.facts {
            if o.status == ProbeStatus::Fail {
                let mut f = Finding::new(
                    &d.service,
                    Kind::VolumeFull,
                    format!("volume full: {} at {}%", d.path, d.used_percent),
                    format!(
                        "{} is full: {} on {} is at {}% ({} KiB free), so writes there fail.",
                        d.volume
                            .as_deref()
                            .map_or("the volume".to_string(), |v| format!("volume {v}")),
                        d.path,
                        d.service,
                        d.used_percent,
                        d.available_kb
                    ),
                )
                .with_evidence(o.evidence.iter().cloned());
                f.volume = Some((d.volume.clone().unwrap_or_default(), d.path.clone()));
                findings.add(f);
            } else {
                disk_ok.insert(d.service.clone());
                if o.status == ProbeStatus::Warn {
                    observations.push(format!(
                        "{} {} is {}% full (warning at {}%)",
                        d.service, d.path, d.used_percent, d.warn_percent
                    ));
                }
            }
        }
    }

    for o in outcomes {
        match (&o.probe, &o.facts) {
            (ProbeKind::Inventory, _)
                if matches!(o.status, ProbeStatus::Error | ProbeStatus::TimedOut) =>
            {
                findings.add(
                    Finding::new(
                        "docker-engine",
                        Kind::EngineUnavailable,
                        "not answering".into(),
                        format!(
                            "The Docker Engine did not answer for project {}: no container state could be read, so container faults cannot be ruled in or out.",
                            o.target
                        ),
                    )
                    .with_evidence(o.evidence.iter().cloned()),
                );
            }
            (ProbeKind::Inventory, _) if o.status == ProbeStatus::Fail => {
                findings.add(
                    Finding::new(
                        "project",
                        Kind::Stopped,
                        "no containers".into(),
                        format!(
                            "Project {} has no containers: the platform is not up.",
                            o.target
                        ),
                    )
                    .with_evidence(o.evidence.iter().cloned()),
                );
            }
            (ProbeKind::Container, Facts::Container(f)) => {
                container_findings(f, &mut findings, &disk_ok);
                if f.running() && f.health.as_deref() != Some("unhealthy") && f.error_count > 0 {
                    observations.push(format!(
                        "{} logged {} error line(s) recently while healthy; latest: {}",
                        f.service,
                        f.error_count,
                        quote(f.error_lines.last().map(String::as_str).unwrap_or_default())
                    ));
                }
                if let Some(l) = f.large_payload_lines.last() {
                    observations.push(format!("{}: {}", f.service, quote(l)));
                }
                if f.running() && f.restart_count > 0 && f.restart_count < 3 {
                    observations.push(format!(
                        "{} has restarted {} time(s)",
                        f.service, f.restart_count
                    ));
                }
                if let Some(e) = &f.memory_error {
                    observations.push(format!(
                        "{}: memory use against its limit could not be read ({e})",
                        f.service
                    ));
                }
                if let Some(e) = &f.log_error {
                    observations.push(format!("{}: logs could not be read ({e})", f.service));
                }
            }
            (ProbeKind::Container, _) if o.status == ProbeStatus::TimedOut => {
                // The engine was slow for this container; say so rather than guess its state.
                observations.push(format!(
                    "{}: container probe timed out after {}",
                    o.target,
                    format_duration(o.deadline)
                ));
            }
            _ => {}
        }
    }

    // Network-side probes: corroborate a known cause, or stand as their own finding.
    for o in outcomes {
        let Some(service) = o.service.as_deref() else {
            continue;
        };
        match o.probe {
            ProbeKind::Postgres | ProbeKind::Redis | ProbeKind::S3 | ProbeKind::Http => {}
            ProbeKind::Dns => {
                dns_rules(o, service, &down, &mut findings);
                continue;
            }
            _ => continue,
        }
        if o.probe == ProbeKind::S3
            && let Facts::S3(s) = &o.facts
            && s.bucket_exists == Some(false)
        {
            findings.add(
                Finding::new(
                    service,
                    Kind::BucketMissing,
                    format!("bucket {} missing", s.bucket),
                    format!(
                        "The bucket {} does not exist on {} ({}): {service} itself answers, but every read or write of an artifact fails.",
                        s.bucket, service, s.endpoint
                    ),
                )
                .with_evidence(o.evidence.iter().map(|e| format!("s3 probe: {e}"))),
            );
            continue;
        }
        if let Some(f) = stale_upstream(o, service, &containers, config) {
            findings.add(f);
            continue;
        }
        if o.status == ProbeStatus::Warn {
            observations.extend(
                o.evidence
                    .iter()
                    .skip(1)
                    .map(|e| format!("{} {}: {e}", o.probe, o.target)),
            );
            continue;
        }
        if let Some(mut f) = network_finding(o, service) {
            f.evidence.extend(upstream_group_named(o));
            // A stopped or crashing service explains its own failed probe.
            if down(service)
                || findings
                    .by_service
                    .get(service)
                    .is_some_and(|x| x.kind < Kind::NotResponding)
            {
                findings.corroborate(service, &f.evidence);
            } else {
                findings.add(f);
            }
        }
    }

    build_report(findings, observations, timed_out, config, containers.len())
}

fn dns_rules(
    o: &ProbeOutcome,
    service: &str,
    down: &dyn Fn(&str) -> bool,
    findings: &mut Findings,
) {
    match (&o.facts, o.status) {
        (Facts::Dns(d), ProbeStatus::Fail) => {
            let failed: Vec<&str> = d
                .answers
                .iter()
                .filter(|(_, a)| a.is_none())
                .map(|(n, _)| n.as_str())
                .collect();
            // A stopped container leaves DNS, and so does one detached from the network: that is
            // the named service's evidence, not the resolver's fault.
            let (stopped, failed): (Vec<&str>, Vec<&str>) = failed.iter().partition(|n| down(n));
            let (detached, live): (Vec<&str>, Vec<&str>) = failed.iter().partition(|n| {
                findings
                    .by_service
                    .get(**n)
                    .is_some_and(|f| f.kind == Kind::NetworkCutOff)
            });
            for n in stopped {
                findings.corroborate(
                    n,
                    &[format!(
                        "{n} does not resolve from {service} (stopped containers leave DNS)"
                    )],
                );
            }
            for n in detached {
                findings.corroborate(
                    n,
                    &[format!(
                        "{n} does not resolve from {service} (it is not attached to the network)"
                    )],
                );
            }
            if !live.is_empty() {
                let ev: Vec<String> = o.evidence.clone();
                if !findings.corroborate(service, &ev)
                    || findings.by_service[service].kind > Kind::NetworkCutOff
                {
                    findings.add(
                        Finding::new(
                            service,
                            Kind::NetworkCutOff,
                            format!("cannot resolve {}", live.join(", ")),
                            format!(
                                "{service} cannot resolve the running service(s) {} by name: it is cut off from the project network's DNS.",
                                live.join(", ")
                            ),
                        )
                        .with_evidence(ev),
                    );
                }
            }
        }
        (_, ProbeStatus::TimedOut) | (_, ProbeStatus::Error) => {
            let ev = vec![format!(
                "dns probe from {service}: {}",
                o.evidence.join("; ")
            )];
            // Only evidence for an existing cause: a slow exec alone proves nothing about the network.
            findings.corroborate(service, &ev);
        }
        _ => {}
    }
}

fn build_report(
    findings: Findings,
    observations: Vec<String>,
    timed_out: Vec<String>,
    config: &PlatformConfig,
    container_count: usize,
) -> OpsReport {
    let all = findings.by_service;
    if all.is_empty() {
        return OpsReport {
            issue: format!(
                "None: the platform is healthy ({container_count} containers checked, every probe passed{})",
                if observations.is_empty() { "" } else { "; observations below" }
            ),
            healthy: true,
            affected: vec![],
            root_causes: vec![],
            related: observed_services(&observations, config),
            observations,
            timed_out,
            steps: vec![Step {
                action: "No action needed; re-run the diagnosis if symptoms appear".into(),
                bot: Some("/diagnose".into()),
                compose: Some("docker compose ps".into()),
            }],
            verification: vec!["# /status".into(), "docker compose ps".into()],
            prevention: vec![
                "Keep healthchecks on every long-running service so a failure shows as `unhealthy` before users notice".into(),
            ],
        };
    }

    // Roots: every self-evident cause, and every symptom no failing dependency explains.
    let mut roots: Vec<&Finding> = Vec::new();
    let mut dependents: Vec<(&Finding, Vec<String>)> = Vec::new();
    for f in all.values() {
        if !f.kind.is_symptom() {
            roots.push(f);
        }
    }
    for f in all.values().filter(|f| f.kind.is_symptom()) {
        let deps = config.dependencies_of(&f.service);
        let failing_deps: Vec<String> = deps
            .iter()
            .filter(|d| all.contains_key(*d))
            .cloned()
            .collect();
        if failing_deps.is_empty() {
            roots.push(f);
        } else {
            dependents.push((f, failing_deps));
        }
    }
    roots.sort_by(|a, b| a.kind.cmp(&b.kind).then(a.service.cmp(&b.service)));
    let root_names: BTreeSet<&str> = roots.iter().map(|r| r.service.as_str()).collect();
    // Attribute each dependent to the root causes among its dependencies.
    let mut explained: Vec<(&Finding, Vec<String>)> = Vec::new();
    for (f, failing) in dependents {
        let by: Vec<String> = failing
            .iter()
            .filter(|d| root_names.contains(d.as_str()))
            .cloned()
            .collect();
        if by.is_empty() {
            roots.push(f);
        } else {
            explained.push((f, by));
        }
    }

    let mut affected = Vec::new();
    let mut root_causes = Vec::new();
    let mut steps = Vec::new();
    let mut verification = Vec::new();
    let mut prevention: Vec<String> = Vec::new();
    for r in &roots {
        affected.push(AffectedService {
            service: r.service.clone(),
            status: r.status.clone(),
        });
        let mut summary = r.summary.clone();
        let failing_deps: Vec<String> = config
            .dependencies_of(&r.service)
            .into_iter()
            .filter(|d| root_names.contains(d.as_str()))
            .collect();
        if !r.kind.is_symptom() && !failing_deps.is_empty() {
            summary.push_str(&format!(
                " It depends on {}, which is failing too: fix that first.",
                failing_deps.join(", ")
            ));
        }
        let dependents_here: Vec<&str> = explained
            .iter()
            .filter(|(_, by)| by.contains(&r.service))
            .map(|(f, _)| f.service.as_str())
            .collect();
        if !dependents_here.is_empty() {
            summary.push_str(&format!(
                " Its dependents {} fail because of it.",
                dependents_here.join(", ")
            ));
        }
        root_causes.push(RootCause {
            service: r.service.clone(),
            summary,
            evidence: r.evidence.clone(),
            established: r.kind != Kind::Failing,
        });
        let (s, v, p) = remedy(r, config);
        steps.extend(s);
        verification.extend(v);
        for line in p {
            if !prevention.contains(&line) {
                prevention.push(line);
            }
        }
    }
    for (f, by) in &explained {
        affected.push(AffectedService {
            service: f.service.clone(),
            status: format!("{} (depends on {})", f.status, by.join(", ")),
        });
    }
    if !explained.is_empty() {
        let names: Vec<&str> = explained.iter().map(|(f, _)| f.service.as_str()).collect();
        steps.push(Step {
            action: format!(
                "Check that the dependents recover on their own once the cause is fixed ({}); restart any that stay unhealthy",
                names.join(", ")
            ),
            bot: Some(format!("/status service:{}", names.join(","))),
            compose: Some(format!("docker compose ps {}", names.join(" "))),
        });
        verification.push(format!("docker compose ps {}", names.join(" ")));
    }
    verification.dedup();

    let mut related: Vec<String> = Vec::new();
    let affected_names: BTreeSet<String> = affected.iter().map(|a| a.service.clone()).collect();
    for r in &roots {
        for d in config.dependents_of(&r.service) {
            if !affected_names.contains(&d) && !config.is_one_shot(&d) && !related.contains(&d) {
                related.push(d);
            }
        }
    }
    let related = related
        .into_iter()
        .map(|d| {
            let needs: Vec<&str> = roots
                .iter()
                .filter(|r| config.dependencies_of(&d).contains(&r.service))
                .map(|r| r.service.as_str())
                .collect();
            format!("{d} (depends on {})", needs.join(", "))
        })
        .collect();

    let issue = {
        let heads: Vec<String> = roots
            .iter()
            .map(|r| format!("{} {}", r.service, headline(r)))
            .collect();
        let mut s = heads.join("; ");
        if !explained.is_empty() {
            s.push_str(&format!(
                "; {} dependent service(s) affected",
                explained.len()
            ));
        }
        s
    };

    OpsReport {
        issue,
        healthy: false,
        affected,
        root_causes,
        observations,
        timed_out,
        steps,
        verification,
        prevention,
        related,
    }
}

fn observed_services(observations: &[String], config: &PlatformConfig) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for svc in config.depends_on.keys().chain(config.ports.keys()) {
        if observations
            .iter()
            .any(|o| o.starts_with(&format!("{svc} ")) || o.starts_with(&format!("{svc}:")))
            && !v.iter().any(|x| x.starts_with(&format!("{svc} ")))
        {
            v.push(format!("{svc} (see observations)"));
        }
    }
    v
}

fn headline(f: &Finding) -> &'static str {
    match f.kind {
        Kind::EngineUnavailable => "is not answering",
        Kind::OomKilled => "was OOM-killed",
        Kind::CrashLoop => "is crash-looping",
        Kind::Stopped => "is stopped",
        Kind::NetworkCutOff => "is cut off the network",
        Kind::VolumeFull => "has a full volume",
        Kind::BucketMissing => "is missing its bucket",
        Kind::StaleUpstream => "routes to addresses its upstreams no longer have",
        Kind::NotResponding => "is not responding",
        Kind::Unhealthy => "is failing its healthcheck",
        Kind::Failing => "is failing (cause not established)",
    }
}

fn step(action: impl Into<String>, bot: impl Into<String>, compose: impl Into<String>) -> Step {
    Step {
        action: action.into(),
        bot: Some(bot.into()),
        compose: Some(compose.into()),
    }
}

/// A step only Compose can do (the catalog has no command for it, on purpose).
fn shell_step(action: impl Into<String>, compose: impl Into<String>) -> Step {
    Step {
        action: action.into(),
        bot: None,
        compose: Some(compose.into()),
    }
}

/// A name `service` should resolve on the project network: its first runtime dependency, else
/// the database, else itself.
fn resolvable_from(service: &str, config: &PlatformConfig) -> String {
    config
        .direct_runtime_deps(service)
        .into_iter()
        .next()
        .or_else(|| config.postgres.as_ref().map(|p| p.service.clone()))
        .unwrap_or_else(|| service.to_owned())
}

/// Steps, verification lines and prevention for one root cause.
fn remedy(f: &Finding, config: &PlatformConfig) -> (Vec<Step>, Vec<String>, Vec<String>) {
    let s = f.service.as_str();
    let container = f.container.as_deref().unwrap_or(s);
    let logs = step(
        format!("Read why {s} failed"),
        format!("/logs service:{s} tail:100"),
        format!("docker compose logs --tail=100 {s}"),
    );
    let ps = vec![
        format!("# /status service:{s}"),
        format!("docker compose ps {s}"),
    ];
    match f.kind {
        Kind::EngineUnavailable => (
            vec![Step {
                action: "Check the Docker daemon on the host (`systemctl status docker`) and the bot's socket access".into(),
                bot: None,
                compose: Some("docker info".into()),
            }],
            vec!["docker info".into(), "docker compose ps".into()],
            vec!["Monitor the Docker daemon itself; the bot can only report what the Engine answers".into()],
        ),
        Kind::OomKilled => (
            vec![
                step(format!("See what {s} was doing when it was killed"), format!("/logs service:{s} tail:100"), format!("docker compose logs --tail=100 {s}")),
                Step {
                    action: format!("Raise {s}'s memory limit (`mem_limit` in the Compose file) or reduce what it loads into memory"),
                    bot: None,
                    compose: Some("docker compose config".into()),
                },
                shell_step(format!("Recreate {s} with the new limit (a restart keeps the old one, so this is a Compose step)"), format!("docker compose up -d --no-deps {s}")),
            ],
            [ps.clone(), vec![format!("# /stats service:{s}"), format!("docker stats --no-stream {container}"), format!("docker inspect -f '{{{{.State.OOMKilled}}}}' {container}")]].concat(),
            vec![format!("Size {s}'s memory limit from its observed peak with headroom, and alert on memory above 80% of the limit")],
        ),
        Kind::CrashLoop => (
            vec![
                step(format!("Read the error {s} exits with"), format!("/logs service:{s} tail:200"), format!("docker compose logs --tail=200 {s}")),
                Step {
                    action: format!("Fix the cause the log names (configuration, environment, a missing dependency) for {s}"),
                    bot: None,
                    compose: Some(format!("docker compose config | grep -A 30 '{s}:'")),
                },
                shell_step(format!("Recreate {s} with the fixed configuration (a Compose step: the bot restarts, it does not recreate)"), format!("docker compose up -d --no-deps {s}")),
            ],
            [ps.clone(), vec![format!("docker inspect -f '{{{{.RestartCount}}}}' {container}")]].concat(),
            vec![
                "Validate configuration and required environment variables in CI before deploying".into(),
                "Alert on restart counts, not only on stopped containers".into(),
            ],
        ),
        Kind::Stopped => {
            let mut steps = vec![logs.clone()];
            let mut verify = ps.clone();
            let pg = config.postgres.as_ref().filter(|p| p.service == s);
            let redis = config.redis.as_ref().filter(|r| r.service == s);
            if let Some(pg) = pg {
                steps.push(step(format!("Start {s} (its data volume is kept)"), format!("/start service:{s}"), format!("docker compose start {s}")));
                verify.push(format!("docker compose exec {s} pg_isready -U {} -d {}", pg.user, pg.database));
            } else if redis.is_some() {
                steps.push(step(format!("Start {s} (the data on its volume is kept)"), format!("/start service:{s}"), format!("docker compose start {s}")));
                verify.push(format!("docker compose exec {s} redis-cli ping"));
            } else if s == "project" {
                steps.push(shell_step("Start the platform (the bot starts one service at a time)", "docker compose up -d"));
            } else {
                steps.push(step(format!("Start {s}"), format!("/start service:{s}"), format!("docker compose start {s}")));
            }
            (
                steps,
                verify,
                vec![
                    "Use `restart: unless-stopped` for long-running services and record who stops what (the bot's audit log)".into(),
                    format!("Alert when {s} leaves the running state"),
                ],
            )
        }
        Kind::NetworkCutOff => {
            let net = f.network.clone().unwrap_or_else(|| "<project>_default".into());
            (
                vec![
                    step("Inspect the project network and who is attached", "/network", format!("docker network inspect {net}")),
                    shell_step(
                        format!("Re-attach {s} to {net} with its service alias (or recreate it, which reconnects its networks)"),
                        format!("docker network connect --alias {s} {net} {container}"),
                    ),
                ],
                [ps.clone(), vec![format!("docker compose exec {s} getent hosts {}", resolvable_from(s, config))]].concat(),
                vec!["Do not detach containers from the project network by hand; change networks in the Compose file".into()],
            )
        }
        Kind::VolumeFull => {
            let path = f.volume.as_ref().map(|(_, p)| p.clone()).unwrap_or_else(|| "/".into());
            (
                vec![
                    step(format!("See what fills {path} in {s}"), "/disk", format!("docker compose exec {s} du -sh {path}")),
                    Step {
                        action: format!("Remove stale files under {path} or give the volume more room (size in the Compose file)"),
                        bot: None,
                        compose: Some(format!("docker compose exec {s} df -h {path}")),
                    },
                    step(format!("Restart {s} once space is free"), format!("/restart service:{s}"), format!("docker compose restart {s}")),
                ],
                [ps.clone(), vec![format!("docker compose exec {s} df -P {path}")]].concat(),
                vec![
                    format!("Rotate or clean up what {s} writes to {path}; alert at 80% usage"),
                    "Check `docker system df` regularly".into(),
                ],
            )
        }
        Kind::BucketMissing => {
            let s3 = config.s3.as_ref();
            let bucket = s3.map_or("<bucket>", |c| c.bucket.as_str());
            let key = s3.and_then(|c| c.probe_key.as_deref());
            let mut steps = vec![Step {
                action: format!("List the buckets the S3 server has (`{bucket}` is missing)"),
                bot: Some("/storage view:buckets".into()),
                compose: None,
            }];
            let mut prevention = vec!["Restrict bucket deletion to the bot's approval flow".to_owned()];
            match s3.and_then(|c| c.init_job.as_deref()) {
                Some(job) => {
                    steps.push(step(format!("Re-create the bucket with the init job {job}"), format!("/start service:{job}"), format!("docker compose run --rm {job}")));
                    prevention.push(format!("Keep {job} idempotent so it can always re-create the bucket"));
                }
                None => steps.push(Step {
                    action: format!("Re-create the bucket `{bucket}` the way the platform first created it"),
                    bot: None,
                    compose: None,
                }),
            }
            let check = key.map_or("/storage view:stat".to_owned(), |k| format!("/storage view:check key:{k}"));
            steps.push(Step {
                action: "Check the bucket answers again".into(),
                bot: Some(check.clone()),
                compose: None,
            });
            (steps, vec![format!("# {check}")], prevention)
        }
        Kind::StaleUpstream => (
            vec![
                step(
                    format!("Restart {s} so it resolves its upstream names again (the instances behind it keep running)"),
                    format!("/restart service:{s}"),
                    format!("docker compose restart {s}"),
                ),
            ],
            [ps.clone(), vec![format!("# /diagnose service:{s}"), format!("docker compose logs --tail=20 {s}")]].concat(),
            vec![format!(
                "Make {s} resolve its upstreams at request time (nginx: `resolver 127.0.0.11 valid=10s;` and the upstream name in a variable), or restart it whenever an upstream is recreated"
            )],
        ),
        Kind::NotResponding => (
            vec![
                logs,
                step(format!("Restart {s} if it stays unresponsive"), format!("/restart service:{s}"), format!("docker compose restart {s}")),
            ],
            ps,
            vec![format!("Give clients of {s} timeouts so a hung {s} cannot hang them")],
        ),
        Kind::Unhealthy => (
            vec![
                step(format!("Read {s}'s healthcheck output and recent log"), format!("/logs service:{s} tail:100"), format!("docker inspect -f '{{{{json .State.Health}}}}' {container}")),
                step(format!("Restart {s}"), format!("/restart service:{s}"), format!("docker compose restart {s}")),
            ],
            ps,
            vec![format!("Alert on `unhealthy` for {s}; keep its healthcheck checking what users need")],
        ),
        Kind::Failing => (
            vec![
                logs,
                step("Collect more evidence before acting", format!("/status service:{s}"), format!("docker compose ps {s}")),
            ],
            ps,
            vec![format!("Add a healthcheck to {s} that covers the failing path so the next failure names its cause")],
        ),
    }
}

#[cfg(test)]
mod tests;
