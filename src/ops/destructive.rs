//! Destructive operations: binding one to exactly what it will touch, and running it once approved.
//!
//! `bind` resolves a destructive command to container ids and volume names; the approval
//! request stores the digest of that binding, and execution binds again and refuses to run
//! when the digest differs (a recreated container has a new id, a replaced volume a new name
//! or mount). Every program runs as an argv; user input never reaches a shell.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::core::approvals::BoundOperation;
use crate::core::args::Args;
use crate::core::catalog::{Command, Operation};
use crate::core::engine::{ContainerInfo, Engine, ExecOutput, VolumeInfo};
use crate::core::error::{PipelineError, UserError};
use crate::core::platform::{BackupConfig, PlatformConfig};
use crate::core::report::{Block, Report, Severity, code};
use crate::core::types::{MountPath, ServiceName};
use crate::ops::containers::{self, Mutation, Targets};
use crate::ops::temporal::{self, TemporalError, WorkflowId};

/// Ends every client session of the database psql is connected to, except its own (the
/// database is named by `-d`, so no name is ever pasted into SQL).
const TERMINATE_SQL: &str = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'";
/// How long a destructive operation may take as a whole (a Postgres reset backs up,
/// recreates, waits for health and re-runs an init job).
pub const DEADLINE: Duration = Duration::from_secs(600);
const HEALTH_WAIT: Duration = Duration::from_secs(120);
/// How long a full reset waits, in all, for the restarted project to be healthy.
const PROJECT_HEALTH_WAIT: Duration = Duration::from_secs(300);
/// One init job of a full reset.
const INIT_JOB_WAIT: Duration = Duration::from_secs(180);

/// An operation that runs only once approved, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// An ordinary container operation a command file puts behind approval
    /// (`destructive = true`, e.g. restarting the infrastructure group).
    Mutate {
        mutation: Mutation,
        timeout: Option<Duration>,
    },
    Reset,
    Backup,
    Restore {
        file: String,
    },
    FlushRedis,
    TerminateBackends,
    ResetProject,
    TerminateWorkflow {
        workflow: WorkflowId,
    },
}

impl Request {
    /// `None` for an operation that cannot be put behind approval.
    pub fn parse(op: Operation, args: &Args) -> Result<Option<Self>, UserError> {
        let mutate = |mutation| Request::Mutate {
            mutation,
            timeout: args.duration("timeout"),
        };
        Ok(Some(match op {
            Operation::Restart => mutate(Mutation::Restart),
            Operation::Stop => mutate(Mutation::Stop),
            Operation::Start => mutate(Mutation::Start),
            Operation::Reset => Request::Reset,
            Operation::Backup => Request::Backup,
            Operation::Restore => Request::Restore {
                file: args.string("file").unwrap_or_default().to_owned(),
            },
            Operation::FlushRedis => Request::FlushRedis,
            Operation::TerminateBackends => Request::TerminateBackends,
            Operation::ResetProject => Request::ResetProject,
            Operation::TerminateWorkflow => Request::TerminateWorkflow {
                workflow: WorkflowId::parse(args.string("workflow").unwrap_or_default())
                    .map_err(UserError::InvalidArgument)?,
            },
            _ => return Ok(None),
        }))
    }
}

/// A destructive command resolved against the live project.
#[derive(Debug, Clone)]
pub struct Bound {
    pub op: BoundOperation,
    /// Containers by service, as resolved.
    pub containers: Vec<ContainerInfo>,
    /// Volumes a reset will recreate.
    pub volumes: Vec<String>,
    /// Volumes of the project a full reset leaves alone (named so the approver sees them).
    pub kept: Vec<String>,
    /// The workflow a terminate acts on.
    pub workflow: Option<WorkflowId>,
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

/// A platform section a destructive operation needs, or a clear refusal naming it.
fn section<'a, T>(s: Option<&'a T>, name: &str) -> Result<&'a T, PipelineError> {
    s.ok_or_else(|| {
        UserError::Unavailable(format!(
            "the platform file has no `[{name}]` section, so this operation has nothing to act on"
        ))
        .into()
    })
}

/// A dump name `/restore` accepts: `<file_prefix>…<file_suffix>` with nothing that could
/// leave the backup directory.
pub fn valid_backup_name(name: &str, backup: &BackupConfig) -> bool {
    name.starts_with(&backup.file_prefix)
        && name.ends_with(&backup.file_suffix)
        && name.len() > backup.file_prefix.len() + backup.file_suffix.len()
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Resolves `cmd` to the containers and volumes it will act on. `services` are the command's
/// target services (from its option or group); operations with fixed services add theirs.
/// `volumes` are the project's volumes (by Compose label), which only a full reset reads.
pub fn bind(
    cmd: &Command,
    req: &Request,
    args: &Args,
    services: &[ServiceName],
    all: &[ContainerInfo],
    platform: &PlatformConfig,
    project_volumes: &[VolumeInfo],
) -> Result<Bound, PipelineError> {
    let mut wanted: Vec<String> = services.iter().map(|s| s.to_string()).collect();
    let mut volumes = Vec::new();
    let mut kept = Vec::new();
    let mut workflow = None;
    match req {
        Request::Reset => {
            let [service] = services else {
                return Err(invalid("`/reset` takes exactly one service"));
            };
            let Some(target) = platform.reset.get(service.as_str()) else {
                return Err(invalid(format!(
                    "`{service}` cannot be reset; resettable: {}",
                    platform
                        .reset
                        .keys()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            if let Some(init) = &target.init_job {
                wanted.push(init.clone());
            }
            if target.backup_first {
                wanted.push(section(platform.backup.as_ref(), "backup")?.service.clone());
            }
            let own = all
                .iter()
                .find(|c| c.service == service.as_str())
                .ok_or_else(|| missing(service.as_str()))?;
            // Only volumes no other container mounts: a database shares its backup volume with
            // the backup service, and a reset must never take the backups with it.
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
        Request::Backup => {
            wanted.push(section(platform.backup.as_ref(), "backup")?.service.clone())
        }
        Request::FlushRedis => {
            wanted.push(section(platform.redis.as_ref(), "redis")?.service.clone())
        }
        Request::TerminateBackends => wanted.push(
            section(platform.postgres.as_ref(), "postgres")?
                .service
                .clone(),
        ),
        Request::Restore { file } => {
            let backup = section(platform.backup.as_ref(), "backup")?;
            if !valid_backup_name(file, backup) {
                return Err(invalid(format!(
                    "{} is not a dump name: it must look like `{}2026-11-30_04-00-00{}` (a file in {}, no path)",
                    code(file),
                    backup.file_prefix,
                    backup.file_suffix,
                    backup.dir
                )));
            }
            wanted.push(
                section(platform.postgres.as_ref(), "postgres")?
                    .service
                    .clone(),
            );
            wanted.push(backup.service.clone());
            wanted.extend(
                section(platform.restore.as_ref(), "restore")?
                    .stop_services
                    .iter()
                    .cloned(),
            );
        }
        Request::ResetProject => {
            // Every container of the project: a full reset stops them all.
            wanted.extend(all.iter().map(|c| c.service.clone()));
            // The database is backed up before anything else; without it, no reset.
            let needed = [
                section(platform.postgres.as_ref(), "postgres")?
                    .service
                    .as_str(),
                section(platform.backup.as_ref(), "backup")?
                    .service
                    .as_str(),
            ];
            for s in needed {
                match all.iter().find(|c| c.service == s) {
                    Some(c) if c.state == "running" => {}
                    Some(c) => {
                        return Err(UserError::Unavailable(format!(
                            "`{s}` is {}: a full reset backs up Postgres first and cannot without it. Nothing was requested; start it (`/start {s}` or `/restart-infra`) and ask again",
                            c.state
                        ))
                        .into());
                    }
                    None => return Err(missing(s)),
                }
            }
            // Only volumes carrying the project's Compose label (the engine listed them by it);
            // a volume a container mounts from outside the project is never touched.
            for v in project_volumes {
                let keep = v
                    .compose_name
                    .as_deref()
                    .is_some_and(|n| platform.project_reset.keep_volumes.iter().any(|k| k == n));
                if keep {
                    kept.push(v.name.clone());
                } else {
                    volumes.push(v.name.clone());
                }
            }
            volumes.sort();
            kept.sort();
            if volumes.is_empty() {
                return Err(invalid(
                    "the project has no volumes to reset (see `/volumes`)",
                ));
            }
        }
        Request::TerminateWorkflow { workflow: id } => {
            let t = section(platform.temporal.as_ref(), "temporal")?;
            wanted.push(t.service.clone());
            workflow = Some(id.clone());
        }
        Request::Mutate { .. } => {}
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
    targets.extend(kept.iter().map(|v| format!("kept-volume:{v}")));
    if let Some(w) = &workflow {
        targets.push(format!("workflow:{w}"));
    }
    Ok(Bound {
        op: BoundOperation {
            command: cmd.name.to_string(),
            targets,
            args: args.canonical(),
        },
        containers,
        volumes,
        kept,
        workflow,
    })
}

/// [`bind`] against the live platform: reads what binding needs from the engine and checks
/// what only the live system can tell (another project's container on a volume; the workflow
/// exists and runs). Used when the request is made and again right before it runs.
pub async fn bind_live(
    engine: &dyn Engine,
    cmd: &Command,
    req: &Request,
    args: &Args,
    services: &[ServiceName],
    all: &[ContainerInfo],
    platform: &PlatformConfig,
) -> Result<Bound, PipelineError> {
    let project_volumes = if *req == Request::ResetProject {
        engine.volumes().await?
    } else {
        Vec::new()
    };
    let b = bind(cmd, req, args, services, all, platform, &project_volumes)?;
    match req {
        Request::ResetProject => {
            for v in &b.volumes {
                let users = engine.volume_users_outside_project(v).await?;
                if !users.is_empty() {
                    return Err(UserError::Refused(format!(
                        "volume `{v}` is also mounted by {} outside this project; a full reset would take it from under them. Nothing was changed",
                        users
                            .iter()
                            .map(|u| format!("`{u}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .into());
                }
            }
        }
        Request::TerminateWorkflow { workflow: id } => {
            let t = section(platform.temporal.as_ref(), "temporal")?;
            let w = temporal::find(t, id).await.map_err(temporal_error)?;
            if w.status != "Running" {
                return Err(invalid(format!(
                    "workflow `{id}` is {}, not running; nothing to terminate (`/temporal` lists the running ones)",
                    w.status
                )));
            }
        }
        _ => {}
    }
    Ok(b)
}

fn temporal_error(e: TemporalError) -> PipelineError {
    match e {
        TemporalError::NotFound(_) => UserError::NotFound(e.to_string()).into(),
        TemporalError::Unavailable(_) => UserError::Unavailable(e.to_string()).into(),
    }
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

/// Runs the platform's backup script in its service and returns the dump's path.
async fn backup(
    engine: &dyn Engine,
    b: &Bound,
    platform: &PlatformConfig,
) -> Result<String, PipelineError> {
    let cfg = section(platform.backup.as_ref(), "backup")?;
    let c = b.container(&cfg.service)?;
    let out = engine
        .exec(&c.id, &cfg.script, Duration::from_secs(300))
        .await?;
    if out.exit_code != Some(0) {
        return Err(failed("the backup", &out));
    }
    let file = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix(cfg.written_prefix.as_str()))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .ok_or_else(|| {
            PipelineError::internal(anyhow::anyhow!(
                "the backup script {} did not name its file: {}",
                cfg.script.join(" "),
                out.stdout
            ))
        })?;
    // A report that says "backup taken" must name a file that is there and not empty.
    let path = MountPath::parse(&file).map_err(|e| {
        PipelineError::internal(anyhow::anyhow!(
            "the backup script named {file}, which is not a plain path: {e}"
        ))
    })?;
    let there = engine
        .exec(
            &c.id,
            &argv(&["test", "-s", path.as_str()]),
            Duration::from_secs(10),
        )
        .await?;
    if there.exit_code != Some(0) {
        return Err(UserError::Unavailable(format!(
            "the backup script said it wrote {file}, but no such non-empty file is in `{}`; nothing else was done",
            cfg.service
        ))
        .into());
    }
    Ok(file)
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
    req: &Request,
    b: &Bound,
    platform: &PlatformConfig,
    stop_timeout: Duration,
) -> Result<Report, PipelineError> {
    match req {
        Request::Mutate { mutation, timeout } => {
            let t = Targets {
                containers: b.containers.clone(),
                missing: Vec::new(),
            };
            containers::mutate(engine, &t, *mutation, timeout.unwrap_or(stop_timeout)).await
        }
        Request::Backup => {
            let file = backup(engine, b, platform).await?;
            Ok(
                Report::new(format!("Backup written: {file}"), Severity::Success)
                    .with(Block::Fields(vec![("file".into(), file)])),
            )
        }
        Request::FlushRedis => {
            let c = b.container(&section(platform.redis.as_ref(), "redis")?.service)?;
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
        Request::TerminateBackends => {
            let pg = section(platform.postgres.as_ref(), "postgres")?;
            let c = b.container(&pg.service)?;
            let out = engine
                .exec(
                    &c.id,
                    &argv(&[
                        "psql",
                        "-U",
                        &pg.admin_user,
                        "-d",
                        pg.app_database(),
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
                    "Terminated {} Postgres backend(s) of `{}`",
                    out.stdout.trim(),
                    pg.app_database()
                ),
                Severity::Success,
            ))
        }
        Request::Restore { file } => restore(engine, file, b, platform, stop_timeout).await,
        Request::Reset => reset(engine, b, platform, stop_timeout).await,
        Request::ResetProject => reset_project(engine, b, platform, stop_timeout).await,
        Request::TerminateWorkflow { workflow: id } => {
            let t = section(platform.temporal.as_ref(), "temporal")?;
            let status = temporal::terminate(t, id).await.map_err(temporal_error)?;
            Ok(
                Report::new(format!("Workflow `{id}` terminated"), Severity::Success).with(
                    Block::Fields(vec![
                        ("workflow".into(), id.to_string()),
                        ("status now".into(), status),
                        ("namespace".into(), t.namespace.clone()),
                    ]),
                ),
            )
        }
    }
}

async fn restore(
    engine: &dyn Engine,
    file: &str,
    b: &Bound,
    platform: &PlatformConfig,
    stop_timeout: Duration,
) -> Result<Report, PipelineError> {
    let backup_cfg = section(platform.backup.as_ref(), "backup")?;
    let pg_cfg = section(platform.postgres.as_ref(), "postgres")?;
    let stop = &section(platform.restore.as_ref(), "restore")?.stop_services;
    if !valid_backup_name(file, backup_cfg) {
        return Err(invalid(format!("{} is not a dump name", code(file))));
    }
    let before = backup(engine, b, platform).await?;
    let pg = b.container(&pg_cfg.service)?;
    let apps: Vec<&ContainerInfo> = b
        .containers
        .iter()
        .filter(|c| stop.contains(&c.service))
        .collect();
    for (n, c) in apps.iter().enumerate() {
        if let Err(e) = engine.stop(&c.id, stop_timeout).await {
            // Nothing is restored half-stopped: what was stopped starts again, and we say so.
            let mut restarted = Vec::new();
            for s in &apps[..n] {
                match engine.start(&s.id).await {
                    Ok(()) => restarted.push(format!("`{}`", s.service)),
                    Err(se) => restarted.push(format!("`{}` (could not start: {se})", s.service)),
                }
            }
            return Err(UserError::Unavailable(format!(
                "stopping `{}` before the restore failed ({e}); nothing was restored, the backup taken first is {before}, and the services stopped so far were started again: {}",
                c.service,
                if restarted.is_empty() {
                    "none".to_owned()
                } else {
                    restarted.join(", ")
                }
            ))
            .into());
        }
    }
    let path = format!("{}/{file}", backup_cfg.dir.trim_end_matches('/'));
    let restored = engine
        .exec(
            &pg.id,
            &argv(&[
                "pg_restore",
                "-U",
                &pg_cfg.admin_user,
                "-d",
                pg_cfg.app_database(),
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
    platform: &PlatformConfig,
    stop_timeout: Duration,
) -> Result<Report, PipelineError> {
    // The bound volumes belong to the service being reset: the one container that mounts them.
    let (service, target) = b
        .containers
        .iter()
        .filter(|c| c.volumes.iter().any(|v| b.volumes.contains(v)))
        .find_map(|c| platform.reset.get_key_value(&c.service))
        .ok_or_else(|| {
            PipelineError::internal(anyhow::anyhow!("reset bound to no resettable service"))
        })?;
    let (service, init) = (service.as_str(), target.init_job.as_deref());
    let mut fields = Vec::new();
    if target.backup_first {
        let file = backup(engine, b, platform).await?;
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

/// Services in start order: each layer only after the layers its dependencies are in
/// (Compose's `depends_on`, from the platform config). A cycle or an unknown dependency
/// cannot stall it: a service is never placed deeper than the number of services.
fn start_layers(services: &BTreeSet<String>, platform: &PlatformConfig) -> Vec<Vec<String>> {
    let mut depth: std::collections::BTreeMap<&str, usize> =
        services.iter().map(|s| (s.as_str(), 0)).collect();
    for _ in 0..services.len() {
        let mut changed = false;
        for s in services {
            let d = platform
                .depends_on
                .get(s)
                .into_iter()
                .flatten()
                .filter_map(|dep| depth.get(dep.as_str()).map(|d| d + 1))
                .max()
                .unwrap_or(0);
            if depth[s.as_str()] != d {
                depth.insert(s.as_str(), d);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let max = depth.values().copied().max().unwrap_or(0);
    (0..=max)
        .map(|l| {
            depth
                .iter()
                .filter(|(_, d)| **d == l)
                .map(|(s, _)| s.to_string())
                .collect()
        })
        .filter(|l: &Vec<String>| !l.is_empty())
        .collect()
}

fn is_up(c: &ContainerInfo) -> bool {
    c.state == "running" && c.health.as_deref().is_none_or(|h| h == "healthy")
}

/// Starts the whole project layer by layer as Compose would: long-running services started,
/// init jobs run to their end, each layer waited on (all together bounded by `deadline`)
/// before the next. Carries on past a failure so the platform is never left down on purpose;
/// returns what went wrong, in words.
async fn bring_up(
    engine: &dyn Engine,
    platform: &PlatformConfig,
    deadline: std::time::Instant,
) -> Result<Vec<String>, PipelineError> {
    let mut problems = Vec::new();
    let services: BTreeSet<String> = engine
        .containers()
        .await?
        .into_iter()
        .map(|c| c.service)
        .collect();
    for layer in start_layers(&services, platform) {
        let cs = engine.containers().await?;
        let (jobs, long): (Vec<&ContainerInfo>, Vec<&ContainerInfo>) = cs
            .iter()
            .filter(|c| layer.contains(&c.service))
            .partition(|c| platform.one_shot.contains(&c.service));
        for c in &long {
            if c.state != "running"
                && let Err(e) = engine.start(&c.id).await
            {
                problems.push(format!("`{}` did not start: {e}", c.service));
            }
        }
        let runs = jobs.iter().map(|j| async move {
            (
                j.service.clone(),
                engine.run_one_shot(&j.id, INIT_JOB_WAIT).await,
            )
        });
        for (job, out) in futures::future::join_all(runs).await {
            match out {
                Ok(o) if o.exit_code == Some(0) => {}
                Ok(o) => problems.push(format!(
                    "the init job `{job}` exited {}: {}",
                    o.exit_code.map_or("unknown".into(), |c| c.to_string()),
                    o.stdout.lines().last().unwrap_or("")
                )),
                Err(e) => problems.push(format!("the init job `{job}` did not run: {e}")),
            }
        }
        let names: Vec<String> = long.iter().map(|c| c.service.clone()).collect();
        loop {
            let now = engine.containers().await?;
            let waiting: Vec<&ContainerInfo> = now
                .iter()
                .filter(|c| names.contains(&c.service) && !is_up(c))
                .collect();
            if waiting.is_empty() {
                break;
            }
            if std::time::Instant::now() >= deadline {
                problems.push(format!(
                    "not healthy within {}s: {}",
                    PROJECT_HEALTH_WAIT.as_secs(),
                    waiting
                        .iter()
                        .map(|c| format!(
                            "`{}` ({}{})",
                            c.service,
                            c.state,
                            c.health
                                .as_deref()
                                .map(|h| format!(", {h}"))
                                .unwrap_or_default()
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(problems)
}

/// The full reset: back up Postgres, stop the whole project, recreate its volumes empty
/// (all but the platform's `keep_volumes`), start it again in dependency order, re-run the init jobs.
///
/// If it fails before the volumes are touched (backup, a check), nothing has changed. If it
/// fails after the stop, the engine has created the removed containers again, every container
/// is started in order, and the error says which step failed; the backup named in it is on
/// the kept volume either way.
async fn reset_project(
    engine: &dyn Engine,
    b: &Bound,
    platform: &PlatformConfig,
    stop_timeout: Duration,
) -> Result<Report, PipelineError> {
    let file = backup(engine, b, platform).await?;
    let ids: Vec<String> = b.containers.iter().map(|c| c.id.clone()).collect();
    let deadline = std::time::Instant::now() + PROJECT_HEALTH_WAIT;
    let renewed = match engine.reset_volumes(&ids, &b.volumes, stop_timeout).await {
        Ok(r) => r,
        Err(e) => {
            // Whatever was stopped comes back; the volumes are either all renewed or named below.
            let restarted = bring_up(engine, platform, deadline).await;
            let after = match restarted {
                Ok(p) if p.is_empty() => "every service was started again".to_owned(),
                Ok(p) => format!("starting again: {}", p.join("; ")),
                Err(e) => format!("starting again failed too: {e}"),
            };
            return Err(UserError::Unavailable(format!(
                "the full reset stopped while removing and recreating the volumes: {e}. Backup taken first: {file} (on the kept volume). {after}. Check `/status` and `/volumes`"
            ))
            .into());
        }
    };
    let problems = bring_up(engine, platform, deadline).await?;
    let now = engine.containers().await?;
    let mut r = Report::new(
        if problems.is_empty() {
            format!(
                "Project reset: {} volume(s) recreated empty, every service healthy again",
                b.volumes.len()
            )
        } else {
            format!(
                "Project reset: {} volume(s) recreated empty, but not everything came back",
                b.volumes.len()
            )
        },
        if problems.is_empty() {
            Severity::Success
        } else {
            Severity::Warning
        },
    )
    .with(Block::Fields(vec![
        ("backup taken before".into(), file),
        ("volumes removed and recreated".into(), b.volumes.join(", ")),
        (
            "volumes kept".into(),
            if b.kept.is_empty() {
                "none".into()
            } else {
                b.kept.join(", ")
            },
        ),
        (
            "containers recreated".into(),
            renewed
                .iter()
                .map(|(old, new)| {
                    let svc = b
                        .containers
                        .iter()
                        .find(|c| &c.id == old)
                        .map(|c| c.service.as_str())
                        .unwrap_or("?");
                    format!(
                        "{svc} {} → {}",
                        old.chars().take(12).collect::<String>(),
                        new.chars().take(12).collect::<String>()
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "init jobs re-run".into(),
            platform
                .one_shot
                .iter()
                .filter(|j| now.iter().any(|c| &c.service == *j))
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ]));
    r.push(Block::Table {
        headers: ["service", "state", "health"].map(String::from).to_vec(),
        rows: now
            .iter()
            .map(|c| {
                vec![
                    c.service.clone(),
                    c.state.clone(),
                    c.health.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect(),
    });
    if !problems.is_empty() {
        r.push(Block::Text(format!(
            "{}. Check `/diagnose`.",
            problems.join("; ")
        )));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup_cfg() -> BackupConfig {
        PlatformConfig::embedded().unwrap().backup.unwrap()
    }

    fn backup_script() -> String {
        backup_cfg().script[0].clone()
    }

    #[test]
    fn only_plain_backup_names_are_restorable() {
        let b = backup_cfg();
        assert!(valid_backup_name("backup_2026-11-30_04-00-00.dump", &b));
        for bad in [
            "../etc/passwd",
            "backup_../../x.dump",
            "backup_/x.dump",
            "backup_.dump",
            "other.dump",
            "backup_x.dump; rm -rf /",
            "backup_x.sql",
        ] {
            assert!(!valid_backup_name(bad, &b), "{bad}");
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

    use crate::core::args::{self, ArgContext};
    use crate::core::catalog::Catalog;
    use crate::infra::fake::FakeEngine;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn catalog() -> Catalog {
        let groups = ["app", "infra"]
            .iter()
            .map(|g| crate::core::types::GroupName::parse(g).unwrap())
            .collect();
        Catalog::load_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("commands"),
            &groups,
        )
        .unwrap()
    }

    fn parse(cat: &Catalog, name: &str, raw: &str) -> Result<Args, UserError> {
        args::parse(
            cat.get(name).unwrap(),
            raw,
            &ArgContext {
                max_arg_len: 200,
                known_services: None,
                groups: &BTreeMap::new(),
            },
        )
    }

    /// The replica's volume layout: postgres shares `backups` with db-backup.
    fn project() -> FakeEngine {
        let f = FakeEngine::riftwing();
        let mount = |svc: &str, vols: &[&str]| {
            f.update(svc, |c| {
                c.volumes = vols.iter().map(|v| v.to_string()).collect()
            })
        };
        mount("postgres", &["riftwing_postgres_data", "riftwing_backups"]);
        mount("db-backup", &["riftwing_backups"]);
        mount("redis", &["riftwing_redis-data"]);
        mount("minio", &["riftwing_minio-data"]);
        f.set_volumes(&[
            ("riftwing_postgres_data", "postgres_data"),
            ("riftwing_backups", "backups"),
            ("riftwing_redis-data", "redis-data"),
            ("riftwing_minio-data", "minio-data"),
        ]);
        f
    }

    /// The arguments and the parsed request of a gated command.
    fn gated(cat: &Catalog, name: &str, raw: &str) -> Result<(Args, Request), UserError> {
        let args = parse(cat, name, raw)?;
        let req = Request::parse(cat.get(name).unwrap().operation, &args)?.expect("gated");
        Ok((args, req))
    }

    async fn bind_reset(f: &FakeEngine) -> Result<Bound, PipelineError> {
        let cat = catalog();
        let cmd = cat.get("reset-project").unwrap();
        let all = f.containers().await.unwrap();
        let (args, req) = gated(&cat, "reset-project", "").unwrap();
        bind_live(
            f,
            cmd,
            &req,
            &args,
            &[],
            &all,
            &PlatformConfig::embedded().unwrap(),
        )
        .await
    }

    async fn run_reset(f: &FakeEngine, b: &Bound) -> Result<Report, PipelineError> {
        execute(
            f,
            &Request::ResetProject,
            b,
            &PlatformConfig::embedded().unwrap(),
            Duration::from_secs(1),
        )
        .await
    }

    fn backup_ok() -> ExecOutput {
        ExecOutput {
            exit_code: Some(0),
            stdout: "backup written: /backups/backup_2026-12-03_18-00-00.dump (12 KiB)\n".into(),
            stderr: String::new(),
        }
    }

    #[tokio::test]
    async fn a_project_reset_binds_every_container_and_every_volume_but_the_backups() {
        let f = project();
        let b = bind_reset(&f).await.unwrap();
        let t = &b.op.targets;
        for svc in crate::infra::fake::RIFTWING {
            assert!(
                t.contains(&format!("container:{svc}:id-{svc}")),
                "{svc}: {t:?}"
            );
        }
        for v in [
            "riftwing_postgres_data",
            "riftwing_redis-data",
            "riftwing_minio-data",
        ] {
            assert!(t.contains(&format!("volume:{v}")), "{v}: {t:?}");
        }
        assert!(
            t.contains(&"kept-volume:riftwing_backups".to_string()),
            "{t:?}"
        );
        assert!(!t.contains(&"volume:riftwing_backups".to_string()), "{t:?}");
        assert!(f.calls().is_empty(), "binding changes nothing");
    }

    #[tokio::test]
    async fn the_project_reset_digest_changes_when_a_container_or_a_volume_changes() {
        let f = project();
        let first = bind_reset(&f).await.unwrap().op.digest();
        assert_eq!(bind_reset(&f).await.unwrap().op.digest(), first, "stable");
        f.update("api-1", |c| c.id = "id-api-1-recreated".into());
        let recreated = bind_reset(&f).await.unwrap().op.digest();
        assert_ne!(recreated, first, "a recreated container changes the digest");
        f.set_volumes(&[
            ("riftwing_postgres_data", "postgres_data"),
            ("riftwing_backups", "backups"),
            ("riftwing_redis-data", "redis-data"),
            ("riftwing_minio-data", "minio-data"),
            ("riftwing_extra", "extra"),
        ]);
        assert_ne!(
            bind_reset(&f).await.unwrap().op.digest(),
            recreated,
            "a new volume changes the digest"
        );
    }

    #[tokio::test]
    async fn a_project_reset_refuses_a_volume_another_project_mounts_and_changes_nothing() {
        let f = project();
        f.set_foreign_users("riftwing_redis-data", &["other-project-cache-1"]);
        let e = bind_reset(&f).await.unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("riftwing_redis-data")
                && m.contains("other-project-cache-1")
                && m.contains("Nothing was changed"),
            "{m}"
        );
        assert!(f.calls().is_empty(), "{:?}", f.calls());
    }

    #[tokio::test]
    async fn a_project_reset_is_refused_while_postgres_cannot_be_backed_up() {
        let f = project();
        f.update("postgres", |c| c.state = "exited".into());
        let m = bind_reset(&f).await.unwrap_err().to_string();
        assert!(
            m.contains("`postgres` is exited") && m.contains("backs up Postgres first"),
            "{m}"
        );
        assert!(f.calls().is_empty());
    }

    #[tokio::test]
    async fn a_failed_backup_ends_the_project_reset_before_anything_is_stopped() {
        let f = project();
        f.script_exec(
            &backup_script(),
            ExecOutput {
                exit_code: Some(2),
                stdout: String::new(),
                stderr: "pg_dump: connection refused".into(),
            },
        );
        let b = bind_reset(&f).await.unwrap();
        let e = run_reset(&f, &b).await.unwrap_err();
        assert!(e.to_string().contains("connection refused"), "{e}");
        let calls = f.calls();
        assert!(
            calls.iter().all(|c| c.starts_with("exec ")),
            "only the backup ran: {calls:?}"
        );
    }

    #[tokio::test]
    async fn a_backup_the_script_names_but_that_is_not_there_stops_the_reset_before_anything_else()
    {
        let f = project();
        f.script_exec(&backup_script(), backup_ok());
        f.script_exec(
            "test",
            ExecOutput {
                exit_code: Some(1),
                stdout: String::new(),
                stderr: String::new(),
            },
        );
        let b = bind_reset(&f).await.unwrap();
        let e = run_reset(&f, &b).await.unwrap_err();
        assert!(e.to_string().contains("no such non-empty file"), "{e}");
        let calls = f.calls();
        assert!(
            calls.iter().all(|c| c.starts_with("exec ")),
            "nothing but the backup and its check ran: {calls:?}"
        );
        assert!(
            calls.iter().any(|c| c.contains(" test -s /backups/")),
            "{calls:?}"
        );
    }

    #[tokio::test]
    async fn a_stop_that_fails_before_a_restore_starts_the_others_again_and_restores_nothing() {
        let f = project();
        f.script_exec(&backup_script(), backup_ok());
        f.fail("stop", "worker-1");
        let cat = catalog();
        let (args, req) = gated(&cat, "restore", "file:backup_2026-12-01.dump").unwrap();
        let p = PlatformConfig::embedded().unwrap();
        let all = f.containers().await.unwrap();
        let b = bind_live(&f, cat.get("restore").unwrap(), &req, &args, &[], &all, &p)
            .await
            .unwrap();
        let e = execute(&f, &req, &b, &p, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("stopping `worker-1` before the restore failed"),
            "{e}"
        );
        let calls = f.calls();
        assert!(!calls.iter().any(|c| c.contains("pg_restore")), "{calls:?}");
        let stopped: Vec<&String> = calls.iter().filter(|c| c.starts_with("stop ")).collect();
        assert!(!stopped.is_empty(), "{calls:?}");
        for s in stopped {
            let started = s.replacen("stop ", "start ", 1);
            assert!(
                calls.contains(&started),
                "{s} was not started again: {calls:?}"
            );
        }
        let now = f.containers().await.unwrap();
        assert!(
            now.iter()
                .filter(|c| ["api-1", "api-2", "worker-2"].contains(&c.service.as_str()))
                .all(|c| c.state == "running"),
            "{now:?}"
        );
    }

    #[tokio::test]
    async fn a_project_reset_backs_up_first_keeps_backups_and_starts_in_dependency_order() {
        let f = project();
        f.script_exec(&backup_script(), backup_ok());
        let b = bind_reset(&f).await.unwrap();
        let r = run_reset(&f, &b).await.unwrap();
        let text = r.all_text();
        assert!(
            text.contains("/backups/backup_2026-12-03_18-00-00.dump"),
            "{text}"
        );
        assert!(
            text.contains("riftwing_backups"),
            "kept volume named: {text}"
        );
        assert_eq!(r.severity, Severity::Success, "{text}");
        let calls = f.calls();
        let at = |want: &str| {
            calls
                .iter()
                .position(|c| c == want || c.starts_with(want))
                .unwrap_or_else(|| panic!("{want} missing from {calls:?}"))
        };
        let renew = at("reset-volumes ");
        assert_eq!(
            calls[renew],
            "reset-volumes riftwing_minio-data,riftwing_postgres_data,riftwing_redis-data"
        );
        assert!(at("exec riftwing-db-backup-1") < renew, "{calls:?}");
        assert!(renew < at("start riftwing-postgres-1"), "{calls:?}");
        assert!(
            at("start riftwing-postgres-1") < at("start riftwing-api-1-1"),
            "postgres before what needs it: {calls:?}"
        );
        assert!(
            at("start riftwing-temporal-1") < at("start riftwing-worker-1-1"),
            "{calls:?}"
        );
    }

    #[tokio::test]
    async fn a_project_reset_that_fails_at_the_volumes_names_the_step_and_the_backup() {
        let f = project();
        f.script_exec(&backup_script(), backup_ok());
        let b = bind_reset(&f).await.unwrap();
        // Between approval and the engine's own check, another project starts using a volume.
        f.set_foreign_users("riftwing_minio-data", &["other-project-minio-1"]);
        let e = run_reset(&f, &b).await.unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("removing and recreating the volumes")
                && m.contains("other-project-minio-1")
                && m.contains("backup_2026-12-03_18-00-00.dump")
                && m.contains("every service was started again"),
            "{m}"
        );
        assert!(
            !f.calls().iter().any(|c| c.starts_with("reset-volumes")),
            "{:?}",
            f.calls()
        );
    }

    #[test]
    fn start_layers_follow_the_dependencies() {
        let p = PlatformConfig::embedded().unwrap();
        let services: BTreeSet<String> = [
            "console",
            "api-gateway",
            "api-1",
            "postgres",
            "redis",
            "temporal",
            "temporal-init",
            "minio",
            "minio-init",
            "worker-1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let layers = start_layers(&services, &p);
        let layer = |s: &str| {
            layers
                .iter()
                .position(|l| l.iter().any(|x| x == s))
                .unwrap()
        };
        assert_eq!(layer("postgres"), 0);
        assert!(layer("temporal") > layer("postgres"));
        assert!(layer("temporal-init") > layer("temporal"));
        assert!(layer("worker-1") > layer("minio-init"));
        assert!(layer("console") > layer("api-gateway"));
        assert!(layer("api-gateway") > layer("api-1"));
        assert_eq!(layers.iter().map(Vec::len).sum::<usize>(), services.len());
    }

    #[tokio::test]
    async fn a_bad_workflow_id_is_refused_before_temporal_is_asked() {
        let f = project();
        let cat = catalog();
        for bad in ["../../x", "wf-1/terminate", "-x"] {
            let e = gated(&cat, "temporal-terminate", &format!("workflow:{bad}")).unwrap_err();
            assert!(
                matches!(e, UserError::InvalidArgument(_)) && e.to_string().contains("/temporal"),
                "{bad}: {e}"
            );
        }
        assert!(f.calls().is_empty());
    }

    #[tokio::test]
    async fn a_workflow_terminate_is_bound_to_the_temporal_container_and_the_workflow() {
        let f = project();
        let cat = catalog();
        let cmd = cat.get("temporal-terminate").unwrap();
        let all = f.containers().await.unwrap();
        let p = PlatformConfig::embedded().unwrap();
        let bound = |id: &str| {
            let (args, req) = gated(&cat, "temporal-terminate", &format!("workflow:{id}")).unwrap();
            bind(cmd, &req, &args, &[], &all, &p, &[]).unwrap()
        };
        let one = bound("wf-0001");
        assert!(
            one.op
                .targets
                .contains(&"container:temporal:id-temporal".to_string()),
            "{:?}",
            one.op.targets
        );
        assert!(
            one.op.targets.contains(&"workflow:wf-0001".to_string()),
            "{:?}",
            one.op.targets
        );
        assert_ne!(one.op.digest(), bound("wf-0002").op.digest());
        let mut no_temporal = p.clone();
        no_temporal.temporal = None;
        let (args, req) = gated(&cat, "temporal-terminate", "workflow:wf-0001").unwrap();
        let e = bind(cmd, &req, &args, &[], &all, &no_temporal, &[]).unwrap_err();
        assert!(e.to_string().contains("[temporal]"), "{e}");
    }
}
