//! Probes run inside containers through `Engine::exec`: allow-listed argv only, names validated first.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::engine::{ContainerInfo, Engine, ExecOutput};
use crate::platform::PlatformConfig;

use super::{Facts, Observed, ProbeKind, ProbeOutcome, ProbeSpec, ProbeStatus, run_probe};

/// A host or service name that is safe as an argv element: dot-separated DNS labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsName(String);

impl DnsName {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 253 {
            return Err(format!("`{s}` is not a host name (1 to 253 characters)"));
        }
        for label in s.split('.') {
            let ok_chars = label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if label.is_empty()
                || label.len() > 63
                || !ok_chars
                || label.starts_with('-')
                || label.ends_with('-')
            {
                return Err(format!(
                    "`{s}` is not a host name: each label is 1 to 63 letters, digits, `-` or `_`, not starting or ending with `-`"
                ));
            }
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute path inside a container, plain enough to pass to `df`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPath(String);

impl MountPath {
    pub fn parse(s: &str) -> Result<Self, String> {
        let plain = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'));
        if !s.starts_with('/') || s.len() > 255 || !plain || s.split('/').any(|p| p == "..") {
            return Err(format!(
                "`{s}` is not a plain absolute path (letters, digits, `/ _ - .`, no `..`)"
            ));
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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
    let line = stdout.lines().nth(1)?;
    let cols: Vec<&str> = line.split_whitespace().collect();
    if cols.len() < 6 {
        return None;
    }
    let used = cols[2].parse().ok()?;
    let avail = cols[3].parse().ok()?;
    let pct = cols[4].trim_end_matches('%').parse().ok()?;
    Some((pct, used, avail))
}

fn exec_error_text(out: &ExecOutput) -> String {
    let text = if out.stderr.trim().is_empty() {
        out.stdout.trim()
    } else {
        out.stderr.trim()
    };
    text.lines().take(3).collect::<Vec<_>>().join(" / ")
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
    let failed: Vec<&str> = answers
        .iter()
        .filter(|(_, a)| a.is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    let mut evidence = Vec::new();
    let status = if failed.is_empty() {
        ProbeStatus::Pass
    } else {
        evidence.push(format!(
            "`{}` from {}: {} did not resolve{}",
            argv.join(" "),
            container.service,
            failed.join(", "),
            match exec_error_text(&out) {
                t if t.is_empty() => String::new(),
                t => format!(" ({t})"),
            }
        ));
        ProbeStatus::Fail
    };
    Ok(Observed::new(
        status,
        evidence,
        Facts::Dns(DnsFacts {
            from: container.service.clone(),
            answers,
        }),
    ))
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

pub async fn disk_free(
    engine: &dyn Engine,
    container: &ContainerInfo,
    path: &MountPath,
    volume: Option<String>,
    warn_percent: u8,
    timeout: Duration,
) -> Result<Observed, String> {
    let argv = ExecCheck::DiskFree(path.clone()).argv();
    let out = engine
        .exec(&container.id, &argv, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let Some((pct, used, avail)) = parse_df(&out.stdout) else {
        return Err(format!(
            "`{}` in {} gave no usable output: {}",
            argv.join(" "),
            container.service,
            exec_error_text(&out)
        ));
    };
    let line = out.stdout.lines().nth(1).unwrap_or_default().to_string();
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
            "`df -P {}` in {}: {}",
            path.as_str(),
            container.service,
            line.trim()
        )],
        Facts::Disk(DiskFacts {
            service: container.service.clone(),
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

/// The exec probes of a `/diagnose`: from every running service, resolve its direct runtime
/// dependencies (one `getent` per service); `df` every configured volume.
pub fn diagnose_probes<'a>(
    engine: &'a dyn Engine,
    containers: &'a [ContainerInfo],
    config: &'a PlatformConfig,
    deadline: Duration,
) -> Vec<BoxedProbe<'a>> {
    let mut out: Vec<BoxedProbe<'a>> = Vec::new();
    // The exec itself gets a little less than the probe so the engine call ends first.
    let exec_timeout = deadline.saturating_sub(Duration::from_millis(100));
    for c in containers.iter().filter(|c| c.state == "running") {
        let names: Vec<DnsName> = config
            .direct_runtime_deps(&c.service)
            .iter()
            .filter_map(|d| DnsName::parse(d).ok())
            .collect();
        if names.is_empty() {
            continue;
        }
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
        out.push(Box::pin(async move {
            run_probe(spec, resolve(engine, c, &names, exec_timeout)).await
        }));
    }
    for v in &config.volumes {
        let Some(c) = containers.iter().find(|c| c.service == v.service) else {
            continue;
        };
        let spec = ProbeSpec {
            probe: ProbeKind::Disk,
            target: format!("{}:{}", v.service, v.path),
            service: Some(v.service.clone()),
            deadline,
        };
        if c.state != "running" {
            continue;
        }
        let path = match MountPath::parse(&v.path) {
            Ok(p) => p,
            Err(e) => {
                out.push(Box::pin(async move {
                    run_probe(spec, async move { Err(e) }).await
                }));
                continue;
            }
        };
        let volume = v.volume.clone();
        let warn = v.warn_percent;
        out.push(Box::pin(async move {
            run_probe(
                spec,
                disk_free(engine, c, &path, volume, warn, exec_timeout),
            )
            .await
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
