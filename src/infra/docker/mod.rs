//! Docker Engine adapter (bollard) for the engine port, scoped to one Compose project.
//!
//! Scoping is enforced here, not trusted to the caller: listings filter on the
//! `com.docker.compose.project` label, and every call that names a container inspects
//! it first and refuses it unless it carries this project's label. Nothing is cached,
//! so that check can never be stale.

mod convert;
mod raw;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bollard::API_DEFAULT_VERSION;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    InspectNetworkOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RestartContainerOptionsBuilder,
    StatsOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::{StreamExt, TryStreamExt, stream};
use tracing::{debug, instrument, warn};

use crate::core::engine::{
    ContainerInfo, DiskUsage, Engine, EngineError, ExecOutput, LogLine, LogQuery, NetworkInfo,
    StatsSnapshot, VolumeInfo,
};
use convert::{
    CappedOutput, LogAssembler, MAX_LOG_LINES, PROJECT_LABEL, VOLUME_LABEL, belongs_to,
    container_info, is_valid_container_ref, split_env, stats_snapshot,
};
use raw::Endpoint;

/// bollard's own per-request timeout; every call below has a tighter deadline of its own,
/// so this only has to outlast the longest of them (a slow `stop`).
const CLIENT_TIMEOUT_SECS: u64 = 600;
/// Connecting and negotiating the API version.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// Lists, inspects and other calls that the daemon answers from memory.
const CALL_DEADLINE: Duration = Duration::from_secs(30);
/// A non-streaming stats call waits for two daemon samples (about 1–2 s).
const STATS_DEADLINE: Duration = Duration::from_secs(15);
/// Slack on top of a stop timeout for the daemon to kill and report.
const STOP_SLACK: Duration = Duration::from_secs(30);
/// `/system/df` takes 50 s to 2 min on this kind of host.
const DEFAULT_DISK_USAGE_DEADLINE: Duration = Duration::from_secs(150);
/// Exec output kept across stdout and stderr.
pub const EXEC_OUTPUT_CAP: usize = 1024 * 1024;
/// Inspects in flight at once when listing (a 15-service project fits in two rounds).
const INSPECT_CONCURRENCY: usize = 8;

/// The Docker Engine, seen through one Compose project.
pub struct DockerEngine {
    docker: Docker,
    project: String,
    endpoint: Endpoint,
    disk_usage_deadline: Duration,
    /// Full ids already proven to be this project's. Sound to keep: the daemon never reuses
    /// an id and a container's labels cannot change after creation. Saves the ownership
    /// inspect on each later call (16 per `/diagnose` on the replica).
    owned_ids: std::sync::Mutex<HashSet<String>>,
}

impl std::fmt::Debug for DockerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerEngine")
            .field("project", &self.project)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl DockerEngine {
    /// `endpoint`: None = local default (`DOCKER_HOST`, else the unix socket);
    /// `unix:///path`, `tcp://host:port` or `http://host:port`. TLS is not supported.
    pub async fn connect(endpoint: Option<&str>, project: &str) -> Result<Self, EngineError> {
        let project = project.trim();
        if project.is_empty() {
            return Err(EngineError::Other(
                "the Compose project name is empty; set the project the bot manages".into(),
            ));
        }
        let docker_host = std::env::var("DOCKER_HOST").ok();
        let endpoint = raw::parse_endpoint(endpoint, docker_host.as_deref())
            .map_err(EngineError::Unavailable)?;
        let docker = match &endpoint {
            Endpoint::Unix(p) => Docker::connect_with_unix(
                &p.to_string_lossy(),
                CLIENT_TIMEOUT_SECS,
                API_DEFAULT_VERSION,
            ),
            Endpoint::Tcp(hp) => Docker::connect_with_http(
                &format!("tcp://{hp}"),
                CLIENT_TIMEOUT_SECS,
                API_DEFAULT_VERSION,
            ),
        }
        .map_err(|e| unreachable_daemon(&endpoint, &e.to_string()))?;
        // bollard speaks a newer API than Docker 20.10 (1.41) by default; without this the
        // daemon refuses every call with "client version ... is too new".
        let docker = match tokio::time::timeout(CONNECT_DEADLINE, docker.negotiate_version()).await
        {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Err(unreachable_daemon(&endpoint, &e.to_string())),
            Err(_) => {
                return Err(unreachable_daemon(
                    &endpoint,
                    &format!("no answer within {CONNECT_DEADLINE:?}"),
                ));
            }
        };
        let v = docker.client_version();
        debug!(api = %format!("{}.{}", v.major_version, v.minor_version), project, "connected to the Docker Engine");
        Ok(Self {
            docker,
            project: project.to_string(),
            endpoint,
            disk_usage_deadline: DEFAULT_DISK_USAGE_DEADLINE,
            owned_ids: Default::default(),
        })
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    /// How long `disk_usage` waits for the daemon's `/system/df` before giving up.
    pub fn with_disk_usage_deadline(mut self, deadline: Duration) -> Self {
        self.disk_usage_deadline = deadline;
        self
    }

    fn project_filter(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![format!("{PROJECT_LABEL}={}", self.project)],
        )])
    }

    /// Inspects `id` and returns it only if it is one of this project's containers.
    /// Another project's container is reported as not existing: the bot must not act on
    /// it, and need not reveal it.
    async fn owned(&self, id: &str) -> Result<ContainerInspectResponse, EngineError> {
        if !is_valid_container_ref(id) {
            return Err(EngineError::NoSuchContainer(id.to_string()));
        }
        let i = within(CALL_DEADLINE, async {
            self.docker
                .inspect_container(id, None)
                .await
                .map_err(|e| container_error(id, e))
        })
        .await?;
        if !belongs_to(&i, &self.project) {
            warn!(container = id, project = %self.project, "refused a container outside the project");
            return Err(EngineError::NoSuchContainer(id.to_string()));
        }
        Ok(i)
    }

    /// The full id of an owned container: later calls use it, never the caller's
    /// reference, so a name or prefix cannot resolve to something else in between.
    async fn owned_id(&self, id: &str) -> Result<(String, ContainerInspectResponse), EngineError> {
        let i = self.owned(id).await?;
        let full =
            i.id.clone()
                .ok_or_else(|| EngineError::Other(format!("inspect of {id} returned no id")))?;
        self.remember_owned(&full);
        Ok((full, i))
    }

    /// The full id of an owned container, for calls that need nothing else from the inspect:
    /// an id proven before is used as it is (only a full id: a name or prefix can come to mean
    /// another container, an id cannot).
    async fn owned_full_id(&self, id: &str) -> Result<String, EngineError> {
        if self.lock_owned().contains(id) {
            return Ok(id.to_string());
        }
        Ok(self.owned_id(id).await?.0)
    }

    fn remember_owned(&self, full: &str) {
        self.lock_owned().insert(full.to_string());
    }

    fn lock_owned(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.owned_ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One non-streaming stats answer; `one_shot` skips the second sample (no CPU delta).
    async fn stats_sample(
        &self,
        container_id: &str,
        one_shot: bool,
    ) -> Result<StatsSnapshot, EngineError> {
        let (full, i) = self.owned_id(container_id).await?;
        require_running(&i, "stats")?;
        let opts = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(one_shot)
            .build();
        within(STATS_DEADLINE, async {
            let sample = self
                .docker
                .stats(&full, Some(opts))
                .next()
                .await
                .ok_or_else(|| EngineError::Other("the daemon sent no stats sample".into()))?
                .map_err(|e| container_error(container_id, e))?;
            Ok(stats_snapshot(&sample))
        })
        .await
    }

    async fn project_container_ids(&self) -> Result<HashSet<String>, EngineError> {
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&self.project_filter())
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(engine_error)?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }
}

fn running_state(i: &ContainerInspectResponse) -> String {
    i.state
        .as_ref()
        .and_then(|s| s.status)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

fn require_running(i: &ContainerInspectResponse, what: &str) -> Result<(), EngineError> {
    let state = running_state(i);
    if state == "running" {
        return Ok(());
    }
    let name = i.name.as_deref().unwrap_or("").trim_start_matches('/');
    Err(EngineError::Other(format!(
        "container {name} is {state}, not running; {what} needs a running container"
    )))
}

async fn within<T>(
    deadline: Duration,
    f: impl Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    tokio::time::timeout(deadline, f)
        .await
        .map_err(|_| EngineError::Timeout(deadline))?
}

fn unreachable_daemon(endpoint: &Endpoint, cause: &str) -> EngineError {
    let at = match endpoint {
        Endpoint::Unix(p) => format!("unix://{}", p.display()),
        Endpoint::Tcp(hp) => format!("tcp://{hp}"),
    };
    EngineError::Unavailable(format!(
        "cannot talk to the Docker Engine at {at} ({cause}); check that the daemon is running \
         (`systemctl status docker`), that this user may use its socket (docker group), and \
         the configured endpoint / DOCKER_HOST"
    ))
}

fn engine_error(e: BollardError) -> EngineError {
    match e {
        BollardError::DockerResponseServerError {
            status_code: 403,
            message,
        } => EngineError::Forbidden(message),
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => EngineError::Other(format!("daemon answered {status_code}: {message}")),
        BollardError::SocketNotFoundError(path) => EngineError::Unavailable(format!(
            "no Docker socket at {path}; check that the daemon is running"
        )),
        e @ (BollardError::HyperResponseError { .. }
        | BollardError::HyperLegacyError { .. }
        | BollardError::IOError { .. }
        | BollardError::RequestTimeoutError) => EngineError::Unavailable(format!(
            "{e}; check that the Docker daemon is running and reachable"
        )),
        e => EngineError::Other(e.to_string()),
    }
}

fn container_error(id: &str, e: BollardError) -> EngineError {
    match e {
        BollardError::DockerResponseServerError {
            status_code: 404, ..
        } => EngineError::NoSuchContainer(id.to_string()),
        e => engine_error(e),
    }
}

#[async_trait]
impl Engine for DockerEngine {
    #[instrument(skip_all, fields(project = %self.project))]
    async fn containers(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        within(CALL_DEADLINE, async {
            let ids = self.project_container_ids().await?;
            let inspected: Vec<Option<ContainerInfo>> = stream::iter(ids)
                .map(|id| async move {
                    match self.docker.inspect_container(&id, None).await {
                        // Defense in depth: the label is checked again on the inspect.
                        Ok(i) if belongs_to(&i, &self.project) => {
                            if let Some(full) = &i.id {
                                self.remember_owned(full);
                            }
                            Ok(Some(container_info(&i)))
                        }
                        Ok(_) => Ok(None),
                        // Removed between list and inspect (a one-shot job, `compose down`).
                        Err(BollardError::DockerResponseServerError {
                            status_code: 404, ..
                        }) => Ok(None),
                        Err(e) => Err(engine_error(e)),
                    }
                })
                .buffer_unordered(INSPECT_CONCURRENCY)
                .try_collect()
                .await?;
            let mut out: Vec<ContainerInfo> = inspected.into_iter().flatten().collect();
            out.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
            Ok(out)
        })
        .await
    }

    #[instrument(skip_all, fields(project = %self.project, container = container_id, tail = query.tail))]
    async fn logs(
        &self,
        container_id: &str,
        query: &LogQuery,
    ) -> Result<Vec<LogLine>, EngineError> {
        let full = self.owned_full_id(container_id).await?;
        let tail = (query.tail as usize).min(MAX_LOG_LINES);
        if tail == 0 {
            return Ok(Vec::new());
        }
        // Timestamps are always requested so callers can merge several containers by time.
        let mut opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .tail(&tail.to_string());
        if let Some(since) = query.since {
            // The Engine filters by whole seconds; the assembler trims the rest.
            opts = opts.since(since.timestamp().clamp(0, i32::MAX as i64) as i32);
        }
        let opts = opts.build();
        within(CALL_DEADLINE, async {
            let mut asm =
                LogAssembler::new(tail, query.timestamps, query.since).max_bytes(query.max_bytes);
            let mut frames = self.docker.logs(&full, Some(opts));
            while let Some(frame) = frames.next().await {
                asm.push(frame.map_err(|e| container_error(container_id, e))?);
            }
            Ok(asm.finish())
        })
        .await
    }

    #[instrument(skip_all, fields(project = %self.project, container = container_id))]
    async fn stats(&self, container_id: &str) -> Result<StatsSnapshot, EngineError> {
        // Two samples: the CPU delta is over ~1 s, as `docker stats` shows it.
        self.stats_sample(container_id, false).await
    }

    #[instrument(skip_all, fields(project = %self.project, container = container_id))]
    async fn memory_usage(&self, container_id: &str) -> Result<u64, EngineError> {
        // One sample (API 1.41+): the daemon answers at its next tick (up to ~1 s) instead of
        // waiting for a second one (1-2 s); memory needs no delta.
        Ok(self.stats_sample(container_id, true).await?.memory_usage)
    }

    #[instrument(skip_all, fields(project = %self.project, container = container_id))]
    async fn restart(&self, container_id: &str, timeout: Duration) -> Result<(), EngineError> {
        let full = self.owned_full_id(container_id).await?;
        let opts = RestartContainerOptionsBuilder::default()
            .t(secs(timeout))
            .build();
        within(timeout.saturating_add(STOP_SLACK), async {
            self.docker
                .restart_container(&full, Some(opts))
                .await
                .map_err(|e| container_error(container_id, e))
        })
        .await
    }

    #[instrument(skip_all, fields(project = %self.project, container = container_id))]
    async fn stop(&self, container_id: &str, timeout: Duration) -> Result<(), EngineError> {
        let full = self.owned_full_id(container_id).await?;
        let opts = StopContainerOptionsBuilder::default()
            .t(secs(timeout))
            .build();
        within(timeout.saturating_add(STOP_SLACK), async {
            // An already stopped container answers 304, which bollard treats as success.
            self.docker
                .stop_container(&full, Some(opts))
                .await
                .map_err(|e| container_error(container_id, e))
        })
        .await
    }

    #[instrument(skip_all, fields(project = %self.project, container = container_id))]
    async fn start(&self, container_id: &str) -> Result<(), EngineError> {
        let full = self.owned_full_id(container_id).await?;
        within(CALL_DEADLINE, async {
            self.docker
                .start_container(&full, None)
                .await
                .map_err(|e| container_error(container_id, e))
        })
        .await
    }

    #[instrument(skip_all, fields(project = %self.project, container = container_id))]
    async fn env(&self, container_id: &str) -> Result<Vec<(String, String)>, EngineError> {
        let i = self.owned(container_id).await?;
        let env = i.config.and_then(|c| c.env).unwrap_or_default();
        Ok(split_env(&env))
    }

    #[instrument(skip_all, fields(project = %self.project))]
    async fn volumes(&self) -> Result<Vec<VolumeInfo>, EngineError> {
        let opts = ListVolumesOptionsBuilder::default()
            .filters(&self.project_filter())
            .build();
        let resp = within(CALL_DEADLINE, async {
            self.docker
                .list_volumes(Some(opts))
                .await
                .map_err(engine_error)
        })
        .await?;
        let mut out: Vec<VolumeInfo> = resp
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter(|v| v.labels.get(PROJECT_LABEL) == Some(&self.project))
            .map(|v| VolumeInfo {
                compose_name: v.labels.get(VOLUME_LABEL).cloned(),
                name: v.name,
                driver: v.driver,
                mountpoint: v.mountpoint,
                created_at: v.created_at,
                // Sizes only come from /system/df, far too slow for a listing.
                size: None,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    #[instrument(skip_all, fields(project = %self.project))]
    async fn networks(&self) -> Result<Vec<NetworkInfo>, EngineError> {
        within(CALL_DEADLINE, async {
            let opts = ListNetworksOptionsBuilder::default()
                .filters(&self.project_filter())
                .build();
            let nets = self
                .docker
                .list_networks(Some(opts))
                .await
                .map_err(engine_error)?;
            // A project network can have foreign containers attached; they are not shown.
            let ours = self.project_container_ids().await?;
            let ours = &ours;
            let ids: Vec<String> = nets
                .into_iter()
                .filter(|n| {
                    n.labels
                        .as_ref()
                        .and_then(|l| l.get(PROJECT_LABEL))
                        .is_some_and(|p| *p == self.project)
                })
                .filter_map(|n| n.id)
                .collect();
            let mut out: Vec<NetworkInfo> = stream::iter(ids)
                .map(|id| async move {
                    let opts = InspectNetworkOptionsBuilder::default().build();
                    let n = match self.docker.inspect_network(&id, Some(opts)).await {
                        Ok(n) => n,
                        Err(BollardError::DockerResponseServerError {
                            status_code: 404, ..
                        }) => return Ok(None),
                        Err(e) => return Err(engine_error(e)),
                    };
                    let mut containers: Vec<(String, String)> = n
                        .containers
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|(cid, _)| ours.contains(cid))
                        .map(|(_, ep)| {
                            (
                                ep.name.unwrap_or_default(),
                                ep.ipv4_address.unwrap_or_default(),
                            )
                        })
                        .collect();
                    containers.sort();
                    Ok(Some(NetworkInfo {
                        name: n.name.unwrap_or_default(),
                        id: n.id.unwrap_or(id),
                        driver: n.driver.unwrap_or_default(),
                        subnet: n
                            .ipam
                            .and_then(|i| i.config)
                            .and_then(|c| c.into_iter().find_map(|c| c.subnet)),
                        containers,
                    }))
                })
                .buffer_unordered(INSPECT_CONCURRENCY)
                .try_filter_map(|n| async move { Ok(n) })
                .try_collect()
                .await?;
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    /// The whole daemon's disk usage (`docker system df`): not per project, the Engine
    /// cannot split image layers by project. Slow; bounded by the disk-usage deadline.
    /// The daemon runs one computation at a time and does not cancel it when the client
    /// gives up, so after a timeout the next calls are refused until it finishes.
    #[instrument(skip_all)]
    async fn disk_usage(&self) -> Result<DiskUsage, EngineError> {
        let v = self.docker.client_version();
        let path = format!("/v{}.{}/system/df", v.major_version, v.minor_version);
        within(self.disk_usage_deadline, async {
            let (status, body) = raw::get(&self.endpoint, &path)
                .await
                .map_err(|e| unreachable_daemon(&self.endpoint, &e.to_string()))?;
            if status != 200 {
                let message = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("message")?.as_str().map(str::to_string))
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                if message.contains("already running") {
                    return Err(EngineError::Other(
                        "the Docker daemon is already computing disk usage for another request \
                         (only one runs at a time); try again in a minute or two"
                            .into(),
                    ));
                }
                return Err(EngineError::Other(format!(
                    "daemon answered {status} to /system/df: {message}"
                )));
            }
            raw::parse_df(&body).map_err(EngineError::Other)
        })
        .await
    }

    #[instrument(skip_all, fields(project = %self.project, container = container_id, program = argv.first().map(String::as_str)))]
    async fn exec(
        &self,
        container_id: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError> {
        if argv.is_empty() || argv[0].is_empty() {
            return Err(EngineError::Other(
                "exec needs a program to run (an argv with at least one element)".into(),
            ));
        }
        let (full, i) = self.owned_id(container_id).await?;
        require_running(&i, "exec")?;
        let mut exec_id = None;
        let result = within(timeout, async {
            let created = self
                .docker
                .create_exec(
                    &full,
                    CreateExecOptions {
                        cmd: Some(argv.to_vec()),
                        attach_stdin: Some(false),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        tty: Some(false),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| container_error(container_id, e))?;
            exec_id = Some(created.id.clone());
            let started = self
                .docker
                .start_exec(&created.id, Some(StartExecOptions::default()))
                .await
                .map_err(engine_error)?;
            let mut out = CappedOutput::new(EXEC_OUTPUT_CAP);
            if let StartExecResults::Attached { mut output, .. } = started {
                // Past the cap the stream is still drained, so the process is not blocked
                // on a full pipe; the bytes are dropped.
                while let Some(frame) = output.next().await {
                    out.push(frame.map_err(engine_error)?);
                }
            }
            // The stream ends when the process closes its output; its exit status can
            // lag behind by a moment.
            let mut exit_code = None;
            for _ in 0..20 {
                let insp = self
                    .docker
                    .inspect_exec(&created.id)
                    .await
                    .map_err(engine_error)?;
                if insp.running != Some(true) {
                    exit_code = insp.exit_code;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let mut stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.capped {
                stdout.push_str(&format!(
                    "\n…[output capped at {} KiB]",
                    EXEC_OUTPUT_CAP / 1024
                ));
            }
            Ok(ExecOutput {
                exit_code,
                stdout,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        })
        .await;
        if matches!(result, Err(EngineError::Timeout(_))) {
            // The Engine has no API to kill an exec; the process runs on in the container.
            warn!(exec = ?exec_id, "exec deadline passed; the process may still be running in the container");
        }
        result
    }

    #[instrument(skip_all, fields(project = %self.project, container = container_id))]
    async fn recreate_with_fresh_volumes(
        &self,
        container_id: &str,
        volumes: &[String],
        timeout: Duration,
    ) -> Result<String, EngineError> {
        let (full, i) = self.owned_id(container_id).await?;
        let mounted = mounted_volumes(&i);
        // Every volume is checked before anything is stopped, so a refusal changes nothing.
        for v in volumes {
            if !mounted.contains(v) {
                return Err(EngineError::Other(format!(
                    "volume {v} is not mounted by container {container_id}"
                )));
            }
        }
        let specs = self.check_volumes(volumes).await?;
        let spec = creation_spec(&full, &i)?;
        self.stop(&full, timeout).await?;
        self.remove(&full).await?;
        for vi in &specs {
            self.renew_volume(vi).await?;
        }
        let id = self.create_from(spec).await?;
        self.start(&id).await?;
        Ok(id)
    }

    #[instrument(skip_all, fields(project = %self.project, volume))]
    async fn volume_users_outside_project(&self, volume: &str) -> Result<Vec<String>, EngineError> {
        within(CALL_DEADLINE, self.foreign_users(volume)).await
    }

    #[instrument(skip_all, fields(project = %self.project, containers = containers.len(), volumes = volumes.len()))]
    async fn reset_volumes(
        &self,
        containers: &[String],
        volumes: &[String],
        timeout: Duration,
    ) -> Result<Vec<(String, String)>, EngineError> {
        // Everything is inspected and checked before the first stop, so a refusal changes nothing.
        let mut owned = Vec::new();
        for c in containers {
            owned.push(self.owned_id(c).await?);
        }
        let specs = self.check_volumes(volumes).await?;
        let wanted: HashSet<&String> = volumes.iter().collect();
        let mut recreate = Vec::new();
        for (full, i) in &owned {
            if mounted_volumes(i).iter().any(|v| wanted.contains(v)) {
                recreate.push((full.clone(), creation_spec(full, i)?));
            }
        }
        // Stopped together: the platform goes down as a whole, as with `docker compose down`.
        let stops = owned
            .iter()
            .filter(|(_, i)| running_state(i) == "running" || running_state(i) == "restarting")
            .map(|(full, _)| self.stop(full, timeout));
        futures::future::try_join_all(stops).await?;
        let mut removed = Vec::new();
        let mut failure = None;
        for (full, spec) in recreate {
            match self.remove(&full).await {
                Ok(()) => removed.push((full, spec)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_none() {
            for vi in &specs {
                if let Err(e) = self.renew_volume(vi).await {
                    failure = Some(EngineError::Other(format!(
                        "renewing volume {}: {e}",
                        vi.name
                    )));
                    break;
                }
            }
        }
        // Whatever happened above, every removed container is created again, so a failure
        // half-way leaves the project startable rather than missing containers.
        let mut renewed = Vec::new();
        for (old, spec) in removed {
            match self.create_from(spec).await {
                Ok(new) => renewed.push((old, new)),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            None => Ok(renewed),
            Some(e) => Err(e),
        }
    }

    #[instrument(skip_all, fields(project = %self.project, container = container_id))]
    async fn run_one_shot(
        &self,
        container_id: &str,
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError> {
        let full = self.owned_full_id(container_id).await?;
        self.start(&full).await?;
        let finished = within(timeout, async {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let i = self.owned(&full).await?;
                let state = i.state.clone().unwrap_or_default();
                if state.running != Some(true) {
                    return Ok::<_, EngineError>(state.exit_code);
                }
            }
        })
        .await?;
        let lines = self
            .logs(
                &full,
                &LogQuery {
                    tail: 20,
                    since: None,
                    timestamps: false,
                    max_bytes: 64 * 1024,
                },
            )
            .await
            .unwrap_or_default();
        Ok(ExecOutput {
            exit_code: finished,
            stdout: lines
                .into_iter()
                .map(|l| l.text)
                .collect::<Vec<_>>()
                .join("\n"),
            stderr: String::new(),
        })
    }
}

/// What `create_container` needs to make a container again as it was: its name, its own
/// inspected configuration, and its networks (the first attached at creation).
struct CreationSpec {
    name: String,
    body: bollard::models::ContainerCreateBody,
    networks: Vec<(String, bollard::models::EndpointSettings)>,
}

fn mounted_volumes(i: &ContainerInspectResponse) -> HashSet<String> {
    i.mounts
        .iter()
        .flatten()
        .filter_map(|m| m.name.clone())
        .collect()
}

fn creation_spec(full: &str, i: &ContainerInspectResponse) -> Result<CreationSpec, EngineError> {
    let name = i
        .name
        .clone()
        .map(|n| n.trim_start_matches('/').to_owned())
        .ok_or_else(|| EngineError::Other(format!("inspect of {full} has no name")))?;
    let config = i
        .config
        .clone()
        .ok_or_else(|| EngineError::Other(format!("inspect of {full} has no config")))?;
    let short = full.chars().take(12).collect::<String>();
    let mut networks: Vec<(String, bollard::models::EndpointSettings)> = i
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(net, e)| {
            // Only the names the endpoint was given survive; addresses and the old id alias do not.
            let aliases = e
                .aliases
                .unwrap_or_default()
                .into_iter()
                .filter(|a| *a != short && !full.starts_with(a.as_str()))
                .collect::<Vec<_>>();
            (
                net,
                bollard::models::EndpointSettings {
                    aliases: Some(aliases),
                    ..Default::default()
                },
            )
        })
        .collect();
    networks.sort_by(|a, b| a.0.cmp(&b.0));
    let first = networks.first().cloned();
    let body = bollard::models::ContainerCreateBody {
        hostname: config.hostname,
        domainname: config.domainname,
        user: config.user,
        attach_stdin: config.attach_stdin,
        attach_stdout: config.attach_stdout,
        attach_stderr: config.attach_stderr,
        exposed_ports: config.exposed_ports,
        tty: config.tty,
        open_stdin: config.open_stdin,
        stdin_once: config.stdin_once,
        env: config.env,
        cmd: config.cmd,
        healthcheck: config.healthcheck,
        args_escaped: config.args_escaped,
        image: config.image,
        volumes: config.volumes,
        working_dir: config.working_dir,
        entrypoint: config.entrypoint,
        network_disabled: config.network_disabled,
        on_build: config.on_build,
        labels: config.labels,
        stop_signal: config.stop_signal,
        stop_timeout: config.stop_timeout,
        shell: config.shell,
        host_config: i.host_config.clone(),
        networking_config: first.map(|(net, e)| bollard::models::NetworkingConfig {
            endpoints_config: Some(HashMap::from([(net, e)])),
        }),
    };
    Ok(CreationSpec {
        name,
        body,
        networks,
    })
}

impl DockerEngine {
    /// Which mutating calls the bot's Docker access lets through, asked on a container name
    /// nothing uses: the Engine answers "no such container" (allowed) or a proxy answers 403
    /// (refused). Nothing is changed. For `container-ops doctor`.
    pub async fn allowed_calls(&self) -> Vec<(&'static str, Result<bool, EngineError>)> {
        const PROBE: &str = "container-ops-doctor-no-such-container";
        let verdict = |r: Result<(), BollardError>| match r {
            Ok(()) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 403, ..
            }) => Ok(false),
            Err(e) => Err(engine_error(e)),
        };
        let restart = self
            .docker
            .restart_container(
                PROBE,
                None::<bollard::query_parameters::RestartContainerOptions>,
            )
            .await;
        let stop = self
            .docker
            .stop_container(
                PROBE,
                None::<bollard::query_parameters::StopContainerOptions>,
            )
            .await;
        let start = self
            .docker
            .start_container(
                PROBE,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await;
        let exec = self
            .docker
            .create_exec(
                PROBE,
                CreateExecOptions::<String> {
                    cmd: Some(vec!["true".into()]),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ());
        vec![
            ("restart", verdict(restart)),
            ("stop", verdict(stop)),
            ("start", verdict(start)),
            ("exec", verdict(exec)),
        ]
    }
}

impl DockerEngine {
    /// Names of containers outside this project that mount `volume`.
    async fn foreign_users(&self, volume: &str) -> Result<Vec<String>, EngineError> {
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&HashMap::from([(
                "volume".to_string(),
                vec![volume.to_string()],
            )]))
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(engine_error)?;
        Ok(list
            .into_iter()
            .filter(|c| c.labels.as_ref().and_then(|l| l.get(PROJECT_LABEL)) != Some(&self.project))
            .map(|c| {
                c.names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .or(c.id)
                    .unwrap_or_default()
            })
            .collect())
    }

    /// Inspects each volume and refuses unless it carries this project's label and no
    /// container outside the project mounts it (Docker would refuse to remove it half-way).
    async fn check_volumes(
        &self,
        volumes: &[String],
    ) -> Result<Vec<bollard::models::Volume>, EngineError> {
        let mut specs = Vec::new();
        for v in volumes {
            let vi = within(CALL_DEADLINE, async {
                self.docker.inspect_volume(v).await.map_err(engine_error)
            })
            .await?;
            if vi.labels.get(PROJECT_LABEL) != Some(&self.project) {
                warn!(volume = %v, project = %self.project, "refused a volume outside the project");
                return Err(EngineError::Other(format!(
                    "volume {v} does not belong to project {}",
                    self.project
                )));
            }
            let foreign = within(CALL_DEADLINE, self.foreign_users(v)).await?;
            if !foreign.is_empty() {
                return Err(EngineError::Other(format!(
                    "volume {v} is also mounted by {} outside project {}; nothing was changed",
                    foreign.join(", "),
                    self.project
                )));
            }
            specs.push(vi);
        }
        Ok(specs)
    }

    async fn remove(&self, full: &str) -> Result<(), EngineError> {
        within(CALL_DEADLINE, async {
            self.docker
                .remove_container(
                    full,
                    Some(bollard::query_parameters::RemoveContainerOptions {
                        v: false,
                        force: true,
                        link: false,
                    }),
                )
                .await
                .map_err(|e| container_error(full, e))
        })
        .await
    }

    /// Removes the volume and creates it again empty, with the same name, driver, options and labels.
    async fn renew_volume(&self, vi: &bollard::models::Volume) -> Result<(), EngineError> {
        within(CALL_DEADLINE, async {
            self.docker
                .remove_volume(
                    &vi.name,
                    Some(bollard::query_parameters::RemoveVolumeOptions { force: false }),
                )
                .await
                .map_err(engine_error)?;
            self.docker
                .create_volume(bollard::models::VolumeCreateRequest {
                    name: Some(vi.name.clone()),
                    driver: Some(vi.driver.clone()),
                    driver_opts: Some(vi.options.clone()),
                    labels: Some(vi.labels.clone()),
                    ..Default::default()
                })
                .await
                .map_err(engine_error)
        })
        .await
        .map(|_| ())
    }

    /// Creates the container from its spec (not started) and returns the new id.
    async fn create_from(&self, spec: CreationSpec) -> Result<String, EngineError> {
        let CreationSpec {
            name,
            body,
            networks,
        } = spec;
        let created = within(CALL_DEADLINE, async {
            self.docker
                .create_container(
                    Some(bollard::query_parameters::CreateContainerOptions {
                        name: Some(name.clone()),
                        platform: String::new(),
                    }),
                    body,
                )
                .await
                .map_err(engine_error)
        })
        .await?;
        // API 1.41 attaches one network at creation; the others are connected afterwards.
        for (net, e) in networks.into_iter().skip(1) {
            within(CALL_DEADLINE, async {
                self.docker
                    .connect_network(
                        &net,
                        bollard::models::NetworkConnectRequest {
                            container: created.id.clone(),
                            endpoint_config: Some(e),
                        },
                    )
                    .await
                    .map_err(engine_error)
            })
            .await?;
        }
        Ok(created.id)
    }
}

/// Docker takes whole seconds; a sub-second timeout still gets one second.
fn secs(d: Duration) -> i32 {
    d.as_secs().clamp(1, i32::MAX as u64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_timeouts_are_whole_seconds_and_never_zero() {
        assert_eq!(secs(Duration::from_millis(200)), 1);
        assert_eq!(secs(Duration::from_secs(10)), 10);
    }

    #[tokio::test]
    async fn a_missing_socket_is_reported_as_unavailable_with_what_to_check() {
        let e = DockerEngine::connect(Some("unix:///nonexistent/docker.sock"), "riftwing")
            .await
            .unwrap_err();
        match e {
            EngineError::Unavailable(m) => {
                assert!(m.contains("/nonexistent/docker.sock"), "{m}");
                assert!(m.contains("daemon is running"), "{m}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_closed_tcp_port_is_reported_as_unavailable() {
        // Port 1 on loopback is closed on any sane host.
        let e = DockerEngine::connect(Some("tcp://127.0.0.1:1"), "riftwing")
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::Unavailable(_)), "{e:?}");
    }

    #[tokio::test]
    async fn an_empty_project_name_is_refused() {
        let e = DockerEngine::connect(None, "  ").await.unwrap_err();
        assert!(e.to_string().contains("project"), "{e}");
    }
}
