//! Probes run inside containers through `Engine::exec`: allow-listed argv only, names validated first.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::core::engine::{ContainerInfo, Engine, ExecOutput};
use crate::core::platform::PlatformConfig;
use crate::core::types::{DnsName, MountPath, format_duration};

use super::{Facts, Observed, ProbeKind, ProbeOutcome, ProbeSpec, ProbeStatus, batch, run_probe};

/// The only commands the bot ever runs inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecCheck {
    Resolve(Vec<DnsName>),
    Port { host: DnsName, port: u16 },
    DiskFree(MountPath),
}

impl ExecCheck {
    pub fn argv(&self) -> Vec<String> {
        match self {
            ExecCheck::Resolve(names) => {
                let mut v = vec!["getent".to_string(), "hosts".to_string()];
                v.extend(names.iter().map(|n| n.as_str().to_string()));
                v
            }
            ExecCheck::Port { host, port } => vec![
                "nc".into(),
                "-z".into(),
                "-w".into(),
                "2".into(),
                host.as_str().to_string(),
                port.to_string(),
            ],
            ExecCheck::DiskFree(path) => vec!["df".into(), "-P".into(), path.as_str().to_string()],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DnsFacts {
    pub from: String,
    /// The services whose dependencies these names are: `from` itself, or every service on
    /// the same networks when one container resolves for all of them (see `resolve_duties`).
    pub on_behalf_of: Vec<String>,
    /// (name, address if it resolved)
    pub answers: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PortFacts {
    pub from: String,
    pub host: String,
    pub port: u16,
    pub open: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiskFacts {
    pub service: String,
    pub path: String,
    pub volume: Option<String>,
    pub used_percent: u8,
    pub used_kb: u64,
    pub available_kb: u64,
    pub warn_percent: u8,
}

/// Parses `getent hosts a b` output; names without a line did not resolve.
pub fn parse_getent(names: &[DnsName], stdout: &str) -> Vec<(String, Option<String>)> {
    names
        .iter()
        .map(|n| {
            let addr = stdout.lines().find_map(|l| {
                let mut parts = l.split_whitespace();
                let addr = parts.next()?;
                parts
                    .any(|alias| alias == n.as_str())
                    .then(|| addr.to_string())
            });
            (n.as_str().to_string(), addr)
        })
        .collect()
}

/// Parses `df -P PATH`: (used %, used KiB, available KiB).
pub fn parse_df(stdout: &str) -> Option<(u8, u64, u64)> {
    df_line(stdout).map(|(_, v)| v)
}

/// The data line after `df`'s header, with its figures; lines before the header (a warning
/// on stderr, when both streams arrive together) are skipped.
fn df_line(stdout: &str) -> Option<(&str, (u8, u64, u64))> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("Filesystem"));
    lines.next()?;
    let line = lines.next()?;
    let cols: Vec<&str> = line.split_whitespace().collect();
    if cols.len() < 6 {
        return None;
    }
    let used = cols[2].parse().ok()?;
    let avail = cols[3].parse().ok()?;
    let pct = cols[4].trim_end_matches('%').parse().ok()?;
    Some((line, (pct, used, avail)))
}

fn exec_error_text(out: &ExecOutput) -> String {
    first_lines(if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    })
}

/// A command's message, short enough to quote inline.
fn first_lines(text: &str) -> String {
    text.trim().lines().take(3).collect::<Vec<_>>().join(" / ")
}

pub async fn resolve(
    engine: &dyn Engine,
    container: &ContainerInfo,
    names: &[DnsName],
    timeout: Duration,
) -> Result<Observed, String> {
    let argv = ExecCheck::Resolve(names.to_vec()).argv();
    let out = engine
        .exec(&container.id, &argv, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let answers = parse_getent(names, &out.stdout);
    Ok(resolve_verdict(
        &container.service,
        std::slice::from_ref(&container.service),
        &argv.join(" "),
        answers,
        &exec_error_text(&out),
    ))
}

/// The Dns probe's verdict on a set of answers; `detail` is what the resolver said, if anything.
fn resolve_verdict(
    from: &str,
    on_behalf_of: &[String],
    shown: &str,
    answers: Vec<(String, Option<String>)>,
    detail: &str,
) -> Observed {
    let failed: Vec<&str> = answers
        .iter()
        .filter(|(_, a)| a.is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    let mut evidence = Vec::new();
    let others: Vec<&str> = on_behalf_of
        .iter()
        .map(String::as_str)
        .filter(|s| *s != from)
        .collect();
    let status = if failed.is_empty() {
        ProbeStatus::Pass
    } else {
        evidence.push(format!(
            "`{shown}` from {from}: {} did not resolve{}",
            failed.join(", "),
            if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            }
        ));
        ProbeStatus::Fail
    };
    if !others.is_empty() {
        // Same networks, same embedded DNS: these answers are theirs too.
        evidence.push(format!(
            "resolved from {from} for every service on its networks: {}",
            others.join(", ")
        ));
    }
    Observed::new(
        status,
        evidence,
        Facts::Dns(DnsFacts {
            from: from.to_string(),
            on_behalf_of: on_behalf_of.to_vec(),
            answers,
        }),
    )
}

pub async fn port_open(
    engine: &dyn Engine,
    container: &ContainerInfo,
    host: &DnsName,
    port: u16,
    timeout: Duration,
) -> Result<Observed, String> {
    let argv = ExecCheck::Port {
        host: host.clone(),
        port,
    }
    .argv();
    let out = engine
        .exec(&container.id, &argv, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let open = out.exit_code == Some(0);
    let evidence = if open {
        vec![]
    } else {
        vec![format!(
            "`{}` from {} exited {}{}",
            argv.join(" "),
            container.service,
            out.exit_code.map_or("?".into(), |c| c.to_string()),
            match exec_error_text(&out) {
                t if t.is_empty() => String::new(),
                t => format!(": {t}"),
            }
        )]
    };
    Ok(Observed::new(
        if open {
            ProbeStatus::Pass
        } else {
            ProbeStatus::Fail
        },
        evidence,
        Facts::Port(PortFacts {
            from: container.service.clone(),
            host: host.as_str().to_string(),
            port,
            open,
        }),
    ))
}

/// The Disk probe's verdict on `df -P` output; no usable output is the probe's own error.
fn disk_verdict(
    service: &str,
    path: &MountPath,
    volume: Option<String>,
    warn_percent: u8,
    stdout: &str,
    detail: &str,
) -> Result<Observed, String> {
    let Some((line, (pct, used, avail))) = df_line(stdout) else {
        return Err(format!(
            "`df -P {}` in {service} gave no usable output: {detail}",
            path.as_str()
        ));
    };
    let status = if pct >= 100 || avail == 0 {
        ProbeStatus::Fail
    } else if pct >= warn_percent {
        ProbeStatus::Warn
    } else {
        ProbeStatus::Pass
    };
    Ok(Observed::new(
        status,
        vec![format!(
            "`df -P {}` in {service}: {}",
            path.as_str(),
            line.trim()
        )],
        Facts::Disk(DiskFacts {
            service: service.to_string(),
            path: path.as_str().to_string(),
            volume,
            used_percent: pct,
            used_kb: used,
            available_kb: avail,
            warn_percent,
        }),
    ))
}

type BoxedProbe<'a> = Pin<Box<dyn Future<Output = ProbeOutcome> + Send + 'a>>;
/// One container's exec, awaited by each of the probes it carries.
type SharedExec<'a> = Shared<BoxFuture<'a, Result<ExecOutput, String>>>;

/// Who resolves which names in a `/diagnose`: one exec-side DNS check.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolveDuty<'a> {
    pub from: &'a ContainerInfo,
    /// The direct runtime dependencies of every service in `on_behalf_of`, each once, sorted.
    pub names: Vec<DnsName>,
    pub on_behalf_of: Vec<String>,
}

/// Plans the DNS checks of a `/diagnose` so that a healthy platform costs one exec or two,
/// not one per container: concurrent execs queue in the daemon (see `batch`).
///
/// Docker's embedded DNS answers a container according to the networks it is attached to, so
/// containers on the same set of networks get the same answers: one of them resolves the names
/// all of them depend on. A container that is itself suspect (unhealthy, or restarted before)
/// resolves its own dependencies from inside, so a fault in its own resolver setup still shows
/// where it matters; a container cut off the network is on a set of its own and so resolves
/// for itself too. The one resolving for a group is preferably one that is asked anyway (it
/// has a volume to `df`), then a healthy one, then the first by service name.
pub fn resolve_duties<'a>(
    containers: &'a [ContainerInfo],
    config: &PlatformConfig,
) -> Vec<ResolveDuty<'a>> {
    let deps = |c: &ContainerInfo| -> Vec<DnsName> {
        config
            .direct_runtime_deps(&c.service)
            .iter()
            .filter_map(|d| DnsName::parse(d).ok())
            .collect()
    };
    let suspect =
        |c: &ContainerInfo| c.health.as_deref() == Some("unhealthy") || c.restart_count > 0;
    let mut duties = Vec::new();
    let mut groups: BTreeMap<Vec<&str>, Vec<&'a ContainerInfo>> = BTreeMap::new();
    for c in containers.iter().filter(|c| c.state == "running") {
        if suspect(c) {
            let names = deps(c);
            if !names.is_empty() {
                duties.push(ResolveDuty {
                    from: c,
                    names,
                    on_behalf_of: vec![c.service.clone()],
                });
            }
            continue;
        }
        let mut nets: Vec<&str> = c.networks.iter().map(|(n, _)| n.as_str()).collect();
        nets.sort_unstable();
        nets.dedup();
        groups.entry(nets).or_default().push(c);
    }
    for members in groups.into_values() {
        let mut names = BTreeSet::new();
        let mut on_behalf_of = Vec::new();
        for c in &members {
            let d = deps(c);
            if !d.is_empty() {
                on_behalf_of.push(c.service.clone());
                names.extend(d);
            }
        }
        if names.is_empty() {
            continue;
        }
        on_behalf_of.sort();
        let asked_anyway =
            |c: &ContainerInfo| config.volumes.iter().any(|v| v.service == c.service);
        let from = members
            .iter()
            .min_by_key(|c| {
                (
                    !asked_anyway(c),
                    c.health.as_deref() != Some("healthy"),
                    c.service.as_str(),
                )
            })
            .copied()
            .expect("a group has members");
        duties.push(ResolveDuty {
            from,
            names: names.into_iter().collect(),
            on_behalf_of,
        });
    }
    duties
}

/// The exec probes of a `/diagnose`: the DNS checks planned by `resolve_duties`, and `df` of
/// every configured volume. All checks of one container go in ONE exec (see `batch`), each
/// still its own probe with its own outcome.
pub fn diagnose_probes<'a>(
    engine: &'a dyn Engine,
    containers: &'a [ContainerInfo],
    config: &'a PlatformConfig,
    deadline: Duration,
) -> Vec<BoxedProbe<'a>> {
    let mut out: Vec<BoxedProbe<'a>> = Vec::new();
    // The exec itself gets a little less than the probe so the engine call ends first; each
    // check inside it gets a whole second less, so a hung one reports before either.
    let exec_timeout = deadline.saturating_sub(Duration::from_millis(100));
    let per_check = batch::per_check_timeout(deadline);
    let mut duties = resolve_duties(containers, config);
    for c in containers.iter().filter(|c| c.state == "running") {
        let duty = duties
            .iter()
            .position(|d| d.from.id == c.id)
            .map(|i| duties.swap_remove(i));
        let names = duty.as_ref().map(|d| d.names.clone()).unwrap_or_default();
        let mut checks: Vec<batch::Check> =
            names.iter().cloned().map(batch::Check::Resolve).collect();
        let mut disks = Vec::new();
        for v in config.volumes.iter().filter(|v| v.service == c.service) {
            let spec = ProbeSpec {
                probe: ProbeKind::Disk,
                target: format!("{}:{}", v.service, v.path),
                service: Some(v.service.clone()),
                deadline,
            };
            match MountPath::parse(&v.path) {
                Ok(p) => {
                    disks.push((spec, checks.len(), p.clone(), v));
                    checks.push(batch::Check::DiskFree(p));
                }
                Err(e) => out.push(Box::pin(run_probe(spec, async move { Err(e) }))),
            }
        }
        if checks.is_empty() {
            continue;
        }
        let argv = batch::argv(&checks, per_check);
        let exec: SharedExec<'a> = async move {
            engine
                .exec(&c.id, &argv, exec_timeout)
                .await
                .map_err(|e| e.to_string())
        }
        .boxed()
        .shared();
        let n = checks.len();
        if let Some(duty) = duty {
            let spec = ProbeSpec {
                probe: ProbeKind::Dns,
                target: format!(
                    "{} → {}",
                    c.service,
                    names
                        .iter()
                        .map(DnsName::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                service: Some(c.service.clone()),
                deadline,
            };
            let exec = exec.clone();
            out.push(Box::pin(run_probe(spec, async move {
                let done = exec.await?;
                let records = batch::parse_records(&done.stdout, n);
                resolve_from_records(&duty, &records, per_check, &done)
            })));
        }
        for (spec, i, path, v) in disks {
            let exec = exec.clone();
            out.push(Box::pin(run_probe(spec, async move {
                let done = exec.await?;
                let record = batch::parse_records(&done.stdout, n).swap_remove(i);
                let check = batch::Check::DiskFree(path.clone());
                let r = match checked(&c.service, &check, record, per_check, &done) {
                    Ok(r) => r,
                    Err(f) => return f.into_result(),
                };
                disk_verdict(
                    &c.service,
                    &path,
                    v.volume.clone(),
                    v.warn_percent,
                    &r.output,
                    &first_lines(&r.output),
                )
            })));
        }
    }
    out
}

/// A check's record, or why there is none: the script ended without it, or it timed out.
fn checked(
    service: &str,
    check: &batch::Check,
    record: Option<batch::Record>,
    per_check: Duration,
    exec: &ExecOutput,
) -> Result<batch::Record, CheckFailure> {
    match record {
        Some(r) if r.timed_out() => Err(CheckFailure::TimedOut(format!(
            "`{}` in {service}: no answer within its {} bound",
            check.shown(),
            format_duration(per_check)
        ))),
        Some(r) => Ok(r),
        None => Err(CheckFailure::Error(format!(
            "`{}` in {service} reported nothing (exit {}): {}",
            check.shown(),
            exec.exit_code.map_or("?".into(), |c| c.to_string()),
            exec_error_text(exec)
        ))),
    }
}

/// Why a batched check has no result; a timed-out one is its probe's `TimedOut`, not an error.
enum CheckFailure {
    TimedOut(String),
    Error(String),
}

impl CheckFailure {
    fn into_result(self) -> Result<Observed, String> {
        match self {
            CheckFailure::TimedOut(e) => {
                Ok(Observed::new(ProbeStatus::TimedOut, vec![e], Facts::None))
            }
            CheckFailure::Error(e) => Err(e),
        }
    }
}

/// The Dns probe of one container from its per-name records: a name that timed out makes
/// the probe timed out (with the names that did answer kept as facts).
fn resolve_from_records(
    duty: &ResolveDuty<'_>,
    records: &[Option<batch::Record>],
    per_check: Duration,
    exec: &ExecOutput,
) -> Result<Observed, String> {
    let (from, names) = (duty.from.service.as_str(), duty.names.as_slice());
    let mut answers = Vec::new();
    let mut detail = Vec::new();
    let mut late = Vec::new();
    for (name, record) in names.iter().zip(records) {
        let check = batch::Check::Resolve(name.clone());
        match checked(from, &check, record.clone(), per_check, exec) {
            Ok(r) => {
                answers.extend(parse_getent(std::slice::from_ref(name), &r.output));
                if r.exit_code != 0 && !r.output.trim().is_empty() {
                    detail.push(first_lines(&r.output));
                }
            }
            Err(CheckFailure::TimedOut(e)) => {
                answers.push((name.as_str().to_string(), None));
                late.push(e);
            }
            Err(f) => return f.into_result(),
        }
    }
    if !late.is_empty() {
        let facts = DnsFacts {
            from: from.to_string(),
            on_behalf_of: duty.on_behalf_of.clone(),
            answers,
        };
        return Ok(Observed::new(
            ProbeStatus::TimedOut,
            late,
            Facts::Dns(facts),
        ));
    }
    let shown = format!(
        "getent hosts {}",
        names
            .iter()
            .map(DnsName::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(resolve_verdict(
        from,
        &duty.on_behalf_of,
        &shown,
        answers,
        &detail.join("; "),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::fake::{FakeEngine, container};

    #[tokio::test]
    async fn a_timed_out_check_marks_only_its_probe_and_the_container_is_asked_once() {
        let engine = FakeEngine::new();
        engine.add(container("worker-1", "running"));
        // The script's records: `getent hosts temporal` killed by its timeout, `df` answered.
        engine.set_exec_output(
            "worker-1",
            ExecOutput {
                exit_code: Some(0),
                stdout: "1|Filesystem     1024-blocks  Used Available Capacity Mounted on\n\
                         1|tmpfs                 8192    16      8176       1% /scratch\n1=0\n0=124\n"
                    .into(),
                stderr: String::new(),
            },
        );
        let containers = engine.containers().await.unwrap();
        let cfg = PlatformConfig::embedded().unwrap();
        let outs = futures::future::join_all(diagnose_probes(
            &engine,
            &containers,
            &cfg,
            Duration::from_secs(3),
        ))
        .await;
        let dns = outs.iter().find(|o| o.probe == ProbeKind::Dns).unwrap();
        assert_eq!(dns.status, ProbeStatus::TimedOut, "{dns:?}");
        assert!(dns.evidence[0].contains("getent hosts temporal"), "{dns:?}");
        let disk = outs.iter().find(|o| o.probe == ProbeKind::Disk).unwrap();
        assert_eq!(disk.status, ProbeStatus::Pass, "{disk:?}");
        assert!(matches!(&disk.facts, Facts::Disk(d) if d.available_kb == 8176));
        let execs: Vec<String> = engine
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("exec "))
            .collect();
        assert_eq!(execs.len(), 1, "{execs:?}");
        assert!(execs[0].ends_with("container-ops-checks 2 dns temporal df /scratch"));
    }

    #[tokio::test]
    async fn a_check_the_script_never_reported_is_an_error_not_a_pass() {
        let engine = FakeEngine::new();
        engine.add(container("worker-1", "running"));
        let containers = engine.containers().await.unwrap();
        let cfg = PlatformConfig::embedded().unwrap();
        let outs = futures::future::join_all(diagnose_probes(
            &engine,
            &containers,
            &cfg,
            Duration::from_secs(3),
        ))
        .await;
        assert!(!outs.is_empty());
        for o in &outs {
            assert_eq!(o.status, ProbeStatus::Error, "{o:?}");
            assert!(o.evidence[0].contains("reported nothing"), "{o:?}");
        }
    }

    fn duty_of<'a>(duties: &'a [ResolveDuty<'_>], from: &str) -> &'a ResolveDuty<'a> {
        duties
            .iter()
            .find(|d| d.from.service == from)
            .unwrap_or_else(|| panic!("no duty from {from}: {duties:?}"))
    }

    #[tokio::test]
    async fn a_healthy_platform_on_one_network_resolves_everything_from_one_container() {
        let engine = FakeEngine::riftwing();
        let containers = engine.containers().await.unwrap();
        let cfg = PlatformConfig::embedded().unwrap();
        let duties = resolve_duties(&containers, &cfg);
        assert_eq!(duties.len(), 1, "{duties:?}");
        // worker-1 is asked anyway (its volume is checked), so it carries the DNS checks too.
        let d = duty_of(&duties, "worker-1");
        let mut every_dep: Vec<String> = containers
            .iter()
            .flat_map(|c| cfg.direct_runtime_deps(&c.service))
            .collect();
        every_dep.sort();
        every_dep.dedup();
        let names: Vec<&str> = d.names.iter().map(DnsName::as_str).collect();
        assert_eq!(names, every_dep);
        assert!(d.on_behalf_of.iter().any(|s| s == "api-1"), "{d:?}");
        assert!(d.on_behalf_of.iter().any(|s| s == "worker-1"), "{d:?}");

        futures::future::join_all(diagnose_probes(
            &engine,
            &containers,
            &cfg,
            Duration::from_secs(3),
        ))
        .await;
        let execs = engine
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("exec "))
            .count();
        assert_eq!(execs, 1);
    }

    #[tokio::test]
    async fn an_unhealthy_restarted_or_detached_container_resolves_its_own_dependencies() {
        let engine = FakeEngine::riftwing();
        engine.update("api-1", |c| c.health = Some("unhealthy".into()));
        engine.update("worker-2", |c| c.networks.clear());
        engine.update("console", |c| c.restart_count = 2);
        let containers = engine.containers().await.unwrap();
        let cfg = PlatformConfig::embedded().unwrap();
        let duties = resolve_duties(&containers, &cfg);
        for own in ["api-1", "worker-2", "console"] {
            let d = duty_of(&duties, own);
            assert_eq!(d.on_behalf_of, vec![own.to_string()]);
            let want = cfg.direct_runtime_deps(own);
            assert_eq!(
                d.names.iter().map(DnsName::as_str).collect::<Vec<_>>(),
                want
            );
        }
        // The rest still resolve through one container, and nobody is asked twice.
        assert_eq!(duties.len(), 4, "{duties:?}");
        let group = duty_of(&duties, "worker-1");
        assert!(!group.on_behalf_of.contains(&"api-1".to_string()));
        assert!(!group.on_behalf_of.contains(&"console".to_string()));
        assert!(group.on_behalf_of.contains(&"api-2".to_string()));
    }

    #[test]
    fn host_names_with_shell_or_option_characters_are_refused() {
        for bad in [
            "",
            "-oProxyCommand=x",
            "a b",
            "a;b",
            "$(id)",
            "a..b",
            "x/y",
            "a-",
        ] {
            assert!(DnsName::parse(bad).is_err(), "{bad} accepted");
        }
        for good in ["postgres", "api-1", "minio.local", "db_backup"] {
            assert!(DnsName::parse(good).is_ok(), "{good} refused");
        }
    }

    #[test]
    fn mount_paths_must_be_plain_and_absolute() {
        assert!(MountPath::parse("/scratch").is_ok());
        for bad in ["scratch", "/a/../etc", "/a b", "/a;rm", "-h"] {
            assert!(MountPath::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn exec_checks_build_fixed_argv_with_the_name_as_one_element() {
        let n = DnsName::parse("temporal").unwrap();
        assert_eq!(
            ExecCheck::Port {
                host: n.clone(),
                port: 7233
            }
            .argv(),
            vec!["nc", "-z", "-w", "2", "temporal", "7233"]
        );
        assert_eq!(
            ExecCheck::Resolve(vec![n]).argv(),
            vec!["getent", "hosts", "temporal"]
        );
        assert_eq!(
            ExecCheck::DiskFree(MountPath::parse("/scratch").unwrap()).argv(),
            vec!["df", "-P", "/scratch"]
        );
    }

    #[test]
    fn getent_output_marks_the_names_that_did_not_resolve() {
        let names = vec![
            DnsName::parse("temporal").unwrap(),
            DnsName::parse("postgres").unwrap(),
        ];
        let got = parse_getent(&names, "172.20.0.4      temporal\n");
        assert_eq!(got[0], ("temporal".into(), Some("172.20.0.4".into())));
        assert_eq!(got[1], ("postgres".into(), None));
    }

    #[test]
    fn df_output_gives_percent_used_and_available() {
        let out = "Filesystem     1024-blocks  Used Available Capacity Mounted on\ntmpfs                 8192  8192         0     100% /scratch\n";
        assert_eq!(parse_df(out), Some((100, 8192, 0)));
        assert_eq!(parse_df("garbage"), None);
    }
}
