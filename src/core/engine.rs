//! Port to the container engine: the little the core needs from Docker, in plain types.
//!
//! Every call is scoped by the adapter to the configured Compose project; the core never
//! sees, and cannot name, another project's containers.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// One container of the project, as status and the pipeline need it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    /// Name without the leading slash (`riftwing_api-1_1` or `riftwing-api-1-1`).
    pub name: String,
    /// `com.docker.compose.service` label.
    pub service: String,
    pub image: String,
    /// Engine state: `running`, `exited`, `restarting`, `created`, `paused`, `dead`.
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`; `None` when the image has no healthcheck.
    pub health: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub restart_count: i64,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub ports: Vec<PortMapping>,
    /// Output of the last healthcheck runs, newest last.
    pub health_log: Vec<String>,
    /// Memory limit in bytes, 0 when unlimited.
    pub memory_limit: u64,
    /// Named volumes mounted into the container.
    pub volumes: Vec<String>,
    /// Networks the container is attached to, with its address on each.
    pub networks: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

/// What to read from a container's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// Lines from the end; the Engine reads from the end, so this bounds memory.
    pub tail: u32,
    pub since: Option<DateTime<Utc>>,
    /// Whether the adapter keeps the Engine's RFC 3339 timestamp at the start of `LogLine::text`.
    /// The adapter always asks the Engine for timestamps and parses them into `LogLine::at`; with
    /// `false` it strips them from the text. The core passes `false` and, for `/logs
    /// timestamps:true`, prints its own timestamp from `at`, so a line never shows two.
    pub timestamps: bool,
    /// Most bytes of line text kept: past it the oldest lines go, so a tail of long lines
    /// cannot take the bot's memory.
    pub max_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub at: Option<DateTime<Utc>>,
    pub stream: LogStream,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One stats sample of a running container.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsSnapshot {
    pub cpu_percent: f64,
    pub memory_usage: u64,
    pub memory_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VolumeInfo {
    pub name: String,
    pub driver: String,
    pub mountpoint: String,
    pub created_at: Option<String>,
    /// `com.docker.compose.volume` label (the name in the Compose file).
    pub compose_name: Option<String>,
    /// Bytes used, when the Engine reported it.
    pub size: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkInfo {
    pub name: String,
    pub id: String,
    pub driver: String,
    pub subnet: Option<String>,
    /// (container name, IPv4 address with prefix)
    pub containers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DiskUsage {
    pub images_size: i64,
    pub containers_size: i64,
    pub volumes_size: i64,
    pub build_cache_size: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
}

/// Failures of the engine, kept apart so the core can say what to do.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the Docker Engine is not reachable: {0}")]
    Unavailable(String),
    #[error("container {0} no longer exists")]
    NoSuchContainer(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("docker engine error: {0}")]
    Other(String),
    /// The bot's Docker access does not allow this call (a proxy's allow-list said 403).
    #[error("the bot's Docker access does not allow this: {0}")]
    Forbidden(String),
}

/// The container engine, scoped to one Compose project.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Every container of the project, running or not, inspected (restart count, health).
    async fn containers(&self) -> Result<Vec<ContainerInfo>, EngineError>;
    async fn logs(&self, container_id: &str, query: &LogQuery)
    -> Result<Vec<LogLine>, EngineError>;
    async fn stats(&self, container_id: &str) -> Result<StatsSnapshot, EngineError>;
    /// Memory in use, from one sample: what `/diagnose` compares with the limit. Cheaper than
    /// `stats`, which waits for a second sample to compute CPU.
    async fn memory_usage(&self, container_id: &str) -> Result<u64, EngineError> {
        Ok(self.stats(container_id).await?.memory_usage)
    }
    async fn restart(&self, container_id: &str, timeout: Duration) -> Result<(), EngineError>;
    async fn stop(&self, container_id: &str, timeout: Duration) -> Result<(), EngineError>;
    async fn start(&self, container_id: &str) -> Result<(), EngineError>;
    /// The container's environment as `NAME=value` pairs, unredacted: the core redacts.
    async fn env(&self, container_id: &str) -> Result<Vec<(String, String)>, EngineError>;
    /// The project's volumes (by the Compose project label).
    async fn volumes(&self) -> Result<Vec<VolumeInfo>, EngineError>;
    /// The project's networks with their attached containers.
    async fn networks(&self) -> Result<Vec<NetworkInfo>, EngineError>;
    async fn disk_usage(&self) -> Result<DiskUsage, EngineError>;
    /// Run an argv (never a shell string) inside a container, bounded by `timeout`.
    async fn exec(
        &self,
        container_id: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError>;
    /// Stops and removes the container, removes `volumes` (each must be mounted by it and
    /// belong to the project), recreates them empty with the same labels, recreates the
    /// container from its own inspected configuration, starts it and returns the new id.
    async fn recreate_with_fresh_volumes(
        &self,
        container_id: &str,
        volumes: &[String],
        timeout: Duration,
    ) -> Result<String, EngineError>;
    /// Containers outside the project (by name) that mount `volume`: a reset must not take a
    /// volume from under another project.
    /// The default refuses: an engine that cannot tell must not let a reset go ahead.
    async fn volume_users_outside_project(&self, volume: &str) -> Result<Vec<String>, EngineError> {
        Err(EngineError::Other(format!(
            "this engine cannot tell who else mounts volume {volume}"
        )))
    }
    /// The project's half of `docker compose down -v`: checks every container and volume first
    /// (project label, no other project's container on a volume) so a refusal changes nothing;
    /// then stops `containers`, removes those that mount one of `volumes`, removes `volumes` and
    /// creates them again empty with the same labels, and creates the removed containers again
    /// from their own inspected configuration, NOT started. Returns (old id, new id) pairs.
    /// If a step fails after the stop, the removed containers are still created again
    /// before the error is returned. The default refuses before touching anything.
    async fn reset_volumes(
        &self,
        containers: &[String],
        volumes: &[String],
        timeout: Duration,
    ) -> Result<Vec<(String, String)>, EngineError> {
        let _ = (containers, timeout);
        Err(EngineError::Other(format!(
            "this engine cannot reset volumes ({})",
            volumes.join(", ")
        )))
    }
    /// Starts a stopped one-shot container (an init job) and waits for it to exit, bounded
    /// by `timeout`; returns its exit code and the tail of its output.
    async fn run_one_shot(
        &self,
        container_id: &str,
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError>;
}
