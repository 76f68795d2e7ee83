//! Destructive operations: binding one to exactly what it will touch, and running it once approved.
//!
//! `bind` resolves a destructive command to container ids and volume names; the approval
//! request stores the digest of that binding, and execution binds again and refuses to run
//! when the digest differs (a recreated container has a new id, a replaced volume a new name
//! or mount). Every program runs as an argv; user input never reaches a shell.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::approvals::BoundOperation;
use crate::args::Args;
use crate::catalog::{Command, Operation};
use crate::engine::{ContainerInfo, Engine, ExecOutput};
use crate::error::{PipelineError, UserError};
use crate::ops::{self, Mutation, Targets};
use crate::report::{Block, Report, Severity};
use crate::types::ServiceName;

/// Services `/reset` may recreate, with the one-shot job that initialises each again.
pub const RESETTABLE: &[(&str, Option<&str>)] = &[
    ("redis", None),
    ("minio", Some("minio-init")),
    ("postgres", Some("ai-gateway-init")),
];
/// Stopped during a restore so nothing writes half-restored tables.
pub const APP_SERVICES: &[&str] = &["api-1", "api-2", "worker-1", "worker-2"];
const BACKUP_SERVICE: &str = "db-backup";
const BACKUP_SCRIPT: &str = "/usr/local/bin/backup.sh";
/// Ends every client session of the app database except the one asking.
const TERMINATE_SQL: &str = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = 'app' AND pid <> pg_backend_pid() AND backend_type = 'client backend'";
/// How long a destructive operation may take as a whole (a Postgres reset backs up,
/// recreates, waits for health and re-runs an init job).
pub const DEADLINE: Duration = Duration::from_secs(600);
const HEALTH_WAIT: Duration = Duration::from_secs(120);

/// A destructive command resolved against the live project.
#[derive(Debug, Clone)]
pub struct Bound {
    pub op: BoundOperation,
    /// Containers by service, as resolved.
    pub containers: Vec<ContainerInfo>,
    /// Volumes a reset will recreate.
    pub volumes: Vec<String>,
}

impl Bound {
    fn container(&self, service: &str) -> Result<&ContainerInfo, PipelineError> {
        self.containers
            .iter()
            .find(|c| c.service == service)
            .ok_or_else(|| {
                UserError::NotFound(format!("no container of `{service}` in the project")).into()
            })
    }
}

/// A dump name `/restore` accepts: `backup_*.dump` with nothing that could leave /backups.
pub fn valid_backup_name(name: &str) -> bool {
    name.starts_with("backup_")
        && name.ends_with(".dump")
        && name.len() > "backup_.dump".len()
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Resolves `cmd` to the containers and volumes it will act on. `services` are the command's
/// target services (from its option or group); operations with fixed services add theirs.
pub fn bind(
    cmd: &Command,
    args: &Args,
    services: &[ServiceName],
    all: &[ContainerInfo],
) -> Result<Bound, PipelineError> {
    let mut wanted: Vec<String> = services.iter().map(|s| s.to_string()).collect();
    let mut volumes = Vec::new();
    match cmd.operation {
        Operation::Reset => {
            let [service] = services else {
                return Err(invalid("`/reset` takes exactly one service"));
            };
            if !RESETTABLE.iter().any(|(s, _)| *s == service.as_str()) {
                return Err(invalid(format!(
                    "`{service}` cannot be reset; resettable: {}",
                    RESETTABLE
                        .iter()
                        .map(|(s, _)| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if let Some((_, Some(init))) = RESETTABLE.iter().find(|(s, _)| *s == service.as_str()) {
                wanted.push((*init).into());
            }
            if service.as_str() == "postgres" {
                wanted.push(BACKUP_SERVICE.into());
            }
            let own = all
                .iter()
                .find(|c| c.service == service.as_str())
                .ok_or_else(|| missing(service.as_str()))?;
            // Only volumes no other container mounts: postgres shares `backups` with db-backup,
            // and a reset must never take the backups with it.
            volumes = own
                .volumes
                .iter()
                .filter(|v| !all.iter().any(|c| c.id != own.id && c.volumes.contains(v)))
                .cloned()
                .collect();
            if volumes.is_empty() {
                return Err(invalid(format!(
                    "`{service}` has no volume of its own to reset"
                )));
            }
        }
        Operation::Backup => wanted.push(BACKUP_SERVICE.into()),
        Operation::FlushRedis => wanted.push("redis".into()),
        Operation::TerminateBackends => wanted.push("postgres".into()),
        Operation::Restore => {
            let file = args.string("file").unwrap_or_default();
            if !valid_backup_name(file) {
                return Err(invalid(format!(
                    "`{file}` is not a dump name: it must look like `backup_2026-11-30_04-00-00.dump` (a file in /backups, no path)"
                )));
            }
            wanted.push("postgres".into());
            wanted.push(BACKUP_SERVICE.into());
            wanted.extend(APP_SERVICES.iter().map(|s| s.to_string()));
        }
        _ => {}
    }
    let wanted: BTreeSet<String> = wanted.into_iter().collect();
    let mut containers = Vec::new();
    for s in &wanted {
        let mut found: Vec<ContainerInfo> =
            all.iter().filter(|c| &c.service == s).cloned().collect();
        if found.is_empty() {
            return Err(missing(s));
        }
        containers.append(&mut found);
    }
    let mut targets: Vec<String> = containers
        .iter()
        .map(|c| format!("container:{}:{}", c.service, c.id))
        .collect();
    targets.extend(volumes.iter().map(|v| format!("volume:{v}")));
    Ok(Bound {
        op: BoundOperation {
            command: cmd.name.to_string(),
            targets,
            args: args.canonical(),
        },
        containers,
        volumes,
    })
}

fn invalid(m: impl Into<String>) -> PipelineError {
    UserError::InvalidArgument(m.into()).into()
}

fn missing(service: &str) -> PipelineError {
    UserError::NotFound(format!(
        "no container of `{service}` exists in the project; see `/status`"
    ))
    .into()
}

/// Why a binding no longer matches what was approved, in words.
pub fn explain_change(approved: &[String], now: &[String]) -> String {
    let gone: Vec<&String> = approved.iter().filter(|t| !now.contains(t)).collect();
    let new: Vec<&String> = now.iter().filter(|t| !approved.contains(t)).collect();
    let mut parts = Vec::new();
    if !gone.is_empty() {
        parts.push(format!(
            "approved but gone: {}",
            gone.iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !new.is_empty() {
        parts.push(format!(
            "now present: {}",
            new.iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if parts.is_empty() {
        "the arguments differ from what was approved".into()
    } else {
        format!(
            "the target changed since approval (container recreated or volume replaced): {}",
            parts.join("; ")
        )
    }
}

fn failed(what: &str, out: &ExecOutput) -> PipelineError {
    let tail = |s: &str| {
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    };
    UserError::Unavailable(format!(
        "{what} failed (exit {}): {}",
        out.exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "unknown".into()),
        tail(if out.stderr.trim().is_empty() {
            &out.stdout
        } else {
            &out.stderr
        })
    ))
    .into()
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Runs the backup script in db-backup and returns the dump's path.
async fn backup(engine: &dyn Engine, b: &Bound) -> Result<String, PipelineError> {
    let c = b.container(BACKUP_SERVICE)?;
    let out = engine
        .exec(&c.id, &argv(&[BACKUP_SCRIPT]), Duration::from_secs(300))
        .await?;
    if out.exit_code != Some(0) {
        return Err(failed("the backup", &out));
    }
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("backup written: "))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .ok_or_else(|| {
            PipelineError::internal(anyhow::anyhow!(
                "backup.sh did not name its file: {}",
                out.stdout
            ))
        })
}

async fn wait_healthy(engine: &dyn Engine, service: &str) -> Result<ContainerInfo, PipelineError> {
    let started = std::time::Instant::now();
    loop {
        let cs = engine.containers().await?;
        if let Some(c) = cs.iter().find(|c| c.service == service)
            && c.state == "running"
            && c.health.as_deref().is_none_or(|h| h == "healthy")
        {
            return Ok(c.clone());
        }
        if started.elapsed() > HEALTH_WAIT {
            return Err(UserError::Unavailable(format!(
                "`{service}` was recreated but is not healthy after {}s; check `/status` and `/logs {service}`",
                HEALTH_WAIT.as_secs()
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs an approved, freshly re-bound destructive operation.
pub async fn execute(
    engine: &dyn Engine,
    cmd: &Command,
    args: &Args,
    b: &Bound,
    stop_timeout: Duration,
) -> Result<Report, PipelineError> {
    match cmd.operation {
        Operation::Restart | Operation::Stop | Operation::Start => {
            let m = match cmd.operation {
                Operation::Restart => Mutation::Restart,
                Operation::Stop => Mutation::Stop,
                _ => Mutation::Start,
            };
            let timeout = args.duration("timeout").unwrap_or(stop_timeout);
            let t = Targets {
                containers: b.containers.clone(),
                missing: Vec::new(),
            };
            ops::mutate(engine, &t, m, timeout).await
        }
        Operation::Backup => {
            let file = backup(engine, b).await?;
            Ok(
                Report::new(format!("Backup written: {file}"), Severity::Success)
                    .with(Block::Fields(vec![("file".into(), file)])),
            )
        }
        Operation::FlushRedis => {
            let c = b.container("redis")?;
            let out = engine
                .exec(
                    &c.id,
                    &argv(&["redis-cli", "FLUSHALL"]),
                    Duration::from_secs(60),
                )
                .await?;
            if out.exit_code != Some(0) || !out.stdout.contains("OK") {
                return Err(failed("FLUSHALL", &out));
            }
            Ok(Report::new(
                "Redis flushed: every key deleted",
                Severity::Success,
            ))
        }
        Operation::TerminateBackends => {
            let c = b.container("postgres")?;
            let out = engine
                .exec(
                    &c.id,
                    &argv(&[
                        "psql",
                        "-U",
                        "postgres",
                        "-d",
                        "app",
                        "-At",
                        "-c",
                        TERMINATE_SQL,
                    ]),
                    Duration::from_secs(60),
                )
                .await?;
            if out.exit_code != Some(0) {
                return Err(failed("terminating backends", &out));
            }
            Ok(Report::new(
                format!(
                    "Terminated {} Postgres backend(s) of `app`",
                    out.stdout.trim()
                ),
                Severity::Success,
            ))
        }
        Operation::Restore => restore(engine, args, b, stop_timeout).await,
        Operation::Reset => reset(engine, b, stop_timeout).await,
        other => Err(PipelineError::internal(anyhow::anyhow!(
            "operation {other} is not a destructive operation"
        ))),
    }
}

async fn restore(
    engine: &dyn Engine,
    args: &Args,
    b: &Bound,
    stop_timeout: Duration,
) -> Result<Report, PipelineError> {
    let file = args.string("file").unwrap_or_default();
    if !valid_backup_name(file) {
        return Err(invalid(format!("`{file}` is not a dump name")));
    }
    let before = backup(engine, b).await?;
    let pg = b.container("postgres")?;
    let apps: Vec<&ContainerInfo> = b
        .containers
        .iter()
        .filter(|c| APP_SERVICES.contains(&c.service.as_str()))
        .collect();
    for c in &apps {
        engine.stop(&c.id, stop_timeout).await?;
    }
    let path = format!("/backups/{file}");
    let restored = engine
        .exec(
            &pg.id,
            &argv(&[
                "pg_restore",
                "-U",
                "postgres",
                "-d",
                "app",
                "-c",
                "--if-exists",
                "--exit-on-error",
                &path,
            ]),
            Duration::from_secs(300),
        )
        .await;
    // The app comes back whatever happened to the restore.
    let mut start_errors = Vec::new();
    for c in &apps {
        if let Err(e) = engine.start(&c.id).await {
            start_errors.push(format!("`{}`: {e}", c.service));
        }
    }
    let out = restored?;
    if out.exit_code != Some(0) {
        return Err(failed(
            &format!("pg_restore of {path} (backup taken first: {before})"),
            &out,
        ));
    }
    let mut r = Report::new(
        format!("Postgres restored from {path}"),
        if start_errors.is_empty() {
            Severity::Success
        } else {
            Severity::Warning
        },
    )
    .with(Block::Fields(vec![
        ("restored".into(), path.clone()),
        ("backup taken before".into(), before),
        (
            "app services".into(),
            apps.iter()
                .map(|c| c.service.clone())
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ]));
    if !start_errors.is_empty() {
        r.push(Block::Text(format!(
            "Could not start again: {}",
            start_errors.join("; ")
        )));
    }
    Ok(r)
}

async fn reset(
    engine: &dyn Engine,
    b: &Bound,
    stop_timeout: Duration,
) -> Result<Report, PipelineError> {
    let (service, init) = RESETTABLE
        .iter()
        .find(|(s, _)| b.containers.iter().any(|c| c.service == *s))
        .copied()
        .ok_or_else(|| {
            PipelineError::internal(anyhow::anyhow!("reset bound to no resettable service"))
        })?;
    let mut fields = Vec::new();
    if service == "postgres" {
        let file = backup(engine, b).await?;
        fields.push(("backup taken before".to_owned(), file));
    }
    let c = b.container(service)?;
    let new_id = engine
        .recreate_with_fresh_volumes(&c.id, &b.volumes, stop_timeout)
        .await?;
    fields.push(("volumes recreated".into(), b.volumes.join(", ")));
    fields.push((
        "container".into(),
        format!(
            "{} → {}",
            c.id.chars().take(12).collect::<String>(),
            new_id.chars().take(12).collect::<String>()
        ),
    ));
    wait_healthy(engine, service).await?;
    if let Some(job) = init {
        let j = b.container(job)?;
        let out = engine.run_one_shot(&j.id, Duration::from_secs(180)).await?;
        if out.exit_code != Some(0) {
            return Err(failed(&format!("the init job `{job}`"), &out));
        }
        fields.push(("init job".into(), format!("`{job}` exited 0")));
    }
    Ok(Report::new(
        format!("Reset `{service}`: fresh volume, healthy again"),
        Severity::Success,
    )
    .with(Block::Fields(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_backup_names_are_restorable() {
        assert!(valid_backup_name("backup_2026-11-30_04-00-00.dump"));
        for bad in [
            "../etc/passwd",
            "backup_../../x.dump",
            "backup_/x.dump",
            "backup_.dump",
            "other.dump",
            "backup_x.dump; rm -rf /",
            "backup_x.sql",
        ] {
            assert!(!valid_backup_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_changed_target_is_explained() {
        let why = explain_change(
            &["container:redis:aaa".into(), "volume:v".into()],
            &["container:redis:bbb".into(), "volume:v".into()],
        );
        assert!(
            why.contains("approved but gone: `container:redis:aaa`"),
            "{why}"
        );
        assert!(why.contains("now present: `container:redis:bbb`"), "{why}");
    }
}
