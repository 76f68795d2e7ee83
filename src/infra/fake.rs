//! The one test double of the Engine port: an in-memory Compose project that records what was done to it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::core::engine::{
    ContainerInfo, DiskUsage, Engine, EngineError, ExecOutput, LogLine, LogQuery, LogStream,
    NetworkInfo, PortMapping, StatsSnapshot, VolumeInfo,
};

#[derive(Default)]
struct State {
    containers: Vec<ContainerInfo>,
    logs: HashMap<String, Vec<LogLine>>,
    env: HashMap<String, Vec<(String, String)>>,
    unavailable: bool,
    calls: Vec<String>,
    /// Every log query, with the container id it was for (reads are not in `calls`).
    log_queries: Vec<(String, LogQuery)>,
    /// What `exec` answers per container id; unset: exit 0 with no output.
    exec_output: HashMap<String, ExecOutput>,
    /// `verb container-name` pairs that fail (`stop riftwing-worker-1-1`).
    failing: Vec<String>,
}

/// An in-memory project. Containers are `riftwing-<service>-1` with id `id-<service>`.
#[derive(Default)]
pub struct FakeEngine {
    state: Mutex<State>,
    /// How long each mutation or stats call takes, to show that the core runs them in parallel.
    pub delay: Duration,
    /// How long listing the containers takes (a slow Engine behind autocomplete).
    pub list_delay: Duration,
    /// Scripted answers for exec and volume users (see `script_exec`, `set_foreign_users`).
    scripted: Mutex<Scripted>,
}

#[derive(Default)]
struct Scripted {
    /// program name → output of an exec of it.
    exec: HashMap<String, ExecOutput>,
    /// volume → containers of other projects that mount it.
    foreign: HashMap<String, Vec<String>>,
    /// The project's volumes, when a test sets them.
    volumes: Option<Vec<VolumeInfo>>,
}

/// The services of the seed's platform.
pub const RIFTWING: &[&str] = &[
    "postgres",
    "temporal",
    "redis",
    "minio",
    "gateway",
    "api-1",
    "api-2",
    "worker-1",
    "worker-2",
    "console",
    "db-backup",
];

pub fn container(service: &str, state: &str) -> ContainerInfo {
    container_in("riftwing", service, state)
}

/// A container of `project`'s `service`, named as Compose v2 names it.
pub fn container_in(project: &str, service: &str, state: &str) -> ContainerInfo {
    let started = "2026-11-30T01:00:00Z".parse::<DateTime<Utc>>().ok();
    ContainerInfo {
        id: format!("id-{service}"),
        name: format!("{project}-{service}-1"),
        service: service.to_owned(),
        image: format!("{project}/{service}:dev"),
        state: state.to_owned(),
        health: Some("healthy".into()).filter(|_| state == "running"),
        started_at: started,
        finished_at: None,
        restart_count: 0,
        exit_code: Some(0).filter(|_| state != "running"),
        oom_killed: false,
        ports: if service == "gateway" {
            vec![PortMapping {
                host_ip: "127.0.0.1".into(),
                host_port: 3000,
                container_port: 80,
                protocol: "tcp".into(),
            }]
        } else {
            vec![]
        },
        health_log: vec![],
        memory_limit: 512 * 1024 * 1024,
        volumes: if service == "postgres" {
            vec![format!("{project}_postgres_data")]
        } else {
            vec![]
        },
        networks: vec![(
            format!("{project}_default"),
            format!("172.20.0.{}/16", 10 + service.len()),
        )],
    }
}

impl FakeEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// `project` with these services, running and healthy.
    pub fn project(project: &str, services: &[&str]) -> Self {
        let f = Self::new();
        for s in services {
            f.add(container_in(project, s, "running"));
        }
        f
    }

    /// Every seed service, running and healthy.
    pub fn riftwing() -> Self {
        let f = Self::new();
        for s in RIFTWING {
            f.add(container(s, "running"));
        }
        f
    }

    pub fn with_delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    pub fn with_list_delay(mut self, d: Duration) -> Self {
        self.list_delay = d;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, c: ContainerInfo) {
        self.lock().containers.push(c);
    }

    pub fn update(&self, service: &str, f: impl FnOnce(&mut ContainerInfo)) {
        if let Some(c) = self
            .lock()
            .containers
            .iter_mut()
            .find(|c| c.service == service)
        {
            f(c);
        }
    }

    /// Log lines of a service's container, oldest first, `(seconds after 03:00, text)`.
    pub fn set_logs(&self, service: &str, lines: &[(u32, &str)]) {
        let base = "2026-11-30T03:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("valid");
        let lines = lines
            .iter()
            .map(|(s, t)| LogLine {
                at: Some(base + chrono::Duration::seconds(i64::from(*s))),
                stream: LogStream::Stdout,
                text: (*t).to_owned(),
            })
            .collect();
        self.lock().logs.insert(format!("id-{service}"), lines);
    }

    pub fn set_env(&self, service: &str, pairs: &[(&str, &str)]) {
        let pairs = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.lock().env.insert(format!("id-{service}"), pairs);
    }

    /// What an exec in the service's container prints and how it exits.
    pub fn set_exec_output(&self, service: &str, out: ExecOutput) {
        self.lock().exec_output.insert(format!("id-{service}"), out);
    }

    pub fn set_unavailable(&self, down: bool) {
        self.lock().unavailable = down;
    }

    /// What was done, e.g. `restart riftwing-api-1-1`, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The log queries asked so far, in order, with the container id each was for.
    pub fn log_queries(&self) -> Vec<(String, LogQuery)> {
        self.lock().log_queries.clone()
    }

    fn up(&self) -> Result<(), EngineError> {
        if self.lock().unavailable {
            Err(EngineError::Unavailable("fake engine is down".into()))
        } else {
            Ok(())
        }
    }

    fn find(&self, id: &str) -> Result<ContainerInfo, EngineError> {
        self.lock()
            .containers
            .iter()
            .find(|c| c.id == id)
            .cloned()
            .ok_or_else(|| EngineError::NoSuchContainer(id.to_owned()))
    }

    /// Makes `verb` on this service's container fail from now on (a stuck stop, say).
    pub fn fail(&self, verb: &str, service: &str) {
        let name = self
            .lock()
            .containers
            .iter()
            .find(|c| c.service == service)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        self.lock().failing.push(format!("{verb} {name}"));
    }

    async fn act(&self, verb: &str, id: &str, new_state: &str) -> Result<(), EngineError> {
        self.up()?;
        let c = self.find(id)?;
        if self.lock().failing.contains(&format!("{verb} {}", c.name)) {
            return Err(EngineError::Other(format!("{verb} of {} failed", c.name)));
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let mut s = self.lock();
        s.calls.push(format!("{verb} {}", c.name));
        if let Some(c) = s.containers.iter_mut().find(|c| c.id == id) {
            c.state = new_state.to_owned();
        }
        Ok(())
    }
}

#[async_trait]
impl Engine for FakeEngine {
    async fn containers(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        self.up()?;
        if !self.list_delay.is_zero() {
            tokio::time::sleep(self.list_delay).await;
        }
        Ok(self.lock().containers.clone())
    }

    async fn logs(&self, id: &str, q: &LogQuery) -> Result<Vec<LogLine>, EngineError> {
        self.up()?;
        self.find(id)?;
        let mut st = self.lock();
        st.log_queries.push((id.to_string(), q.clone()));
        let all = st.logs.get(id).cloned().unwrap_or_default();
        drop(st);
        let kept: Vec<LogLine> = all
            .into_iter()
            .filter(|l| match (q.since, l.at) {
                (Some(since), Some(at)) => at >= since,
                _ => true,
            })
            .collect();
        let skip = kept.len().saturating_sub(q.tail as usize);
        Ok(kept.into_iter().skip(skip).collect())
    }

    async fn stats(&self, id: &str) -> Result<StatsSnapshot, EngineError> {
        self.up()?;
        let c = self.find(id)?;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        Ok(StatsSnapshot {
            cpu_percent: 1.5,
            memory_usage: 100 * 1024 * 1024,
            memory_limit: c.memory_limit,
            net_rx: 2048,
            net_tx: 1024,
            block_read: 4096,
            block_write: 0,
            pids: 7,
        })
    }

    async fn restart(&self, id: &str, _timeout: Duration) -> Result<(), EngineError> {
        self.act("restart", id, "running").await
    }

    async fn stop(&self, id: &str, _timeout: Duration) -> Result<(), EngineError> {
        self.act("stop", id, "exited").await
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        self.act("start", id, "running").await
    }

    async fn env(&self, id: &str) -> Result<Vec<(String, String)>, EngineError> {
        self.up()?;
        self.find(id)?;
        Ok(self.lock().env.get(id).cloned().unwrap_or_default())
    }

    async fn volumes(&self) -> Result<Vec<VolumeInfo>, EngineError> {
        self.up()?;
        if let Some(v) = self.scripted().volumes.clone() {
            return Ok(v);
        }
        Ok(vec![VolumeInfo {
            name: "riftwing_postgres_data".into(),
            driver: "local".into(),
            mountpoint: "/var/lib/docker/volumes/riftwing_postgres_data/_data".into(),
            created_at: Some("2026-11-29T10:00:00Z".into()),
            compose_name: Some("postgres_data".into()),
            size: Some(48 * 1024 * 1024),
        }])
    }

    async fn networks(&self) -> Result<Vec<NetworkInfo>, EngineError> {
        self.up()?;
        let containers = self
            .lock()
            .containers
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.networks.first().map(|n| n.1.clone()).unwrap_or_default(),
                )
            })
            .collect();
        Ok(vec![NetworkInfo {
            name: "riftwing_default".into(),
            id: "net1".into(),
            driver: "bridge".into(),
            subnet: Some("172.20.0.0/16".into()),
            containers,
        }])
    }

    async fn disk_usage(&self) -> Result<DiskUsage, EngineError> {
        self.up()?;
        Ok(DiskUsage {
            images_size: 2_000_000_000,
            containers_size: 10_000_000,
            volumes_size: 50_000_000,
            build_cache_size: 0,
        })
    }

    async fn exec(
        &self,
        id: &str,
        argv: &[String],
        _timeout: Duration,
    ) -> Result<ExecOutput, EngineError> {
        self.up()?;
        let c = self.find(id)?;
        self.lock()
            .calls
            .push(format!("exec {} {}", c.name, argv.join(" ")));
        // A per-container answer wins over a per-program one.
        let per_container = self.lock().exec_output.get(id).cloned();
        let scripted = per_container.or_else(|| {
            argv.first()
                .and_then(|p| self.scripted().exec.get(p).cloned())
        });
        Ok(scripted.unwrap_or(ExecOutput {
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
        }))
    }

    async fn recreate_with_fresh_volumes(
        &self,
        id: &str,
        volumes: &[String],
        _timeout: Duration,
    ) -> Result<String, EngineError> {
        self.up()?;
        let c = self.find(id)?;
        let new_id = format!("{}-new", c.id);
        let mut st = self.lock();
        st.calls
            .push(format!("recreate {} {}", c.name, volumes.join(",")));
        if let Some(x) = st.containers.iter_mut().find(|x| x.id == id) {
            x.id = new_id.clone();
        }
        Ok(new_id)
    }

    async fn volume_users_outside_project(&self, volume: &str) -> Result<Vec<String>, EngineError> {
        self.up()?;
        Ok(self
            .scripted()
            .foreign
            .get(volume)
            .cloned()
            .unwrap_or_default())
    }

    async fn reset_volumes(
        &self,
        containers: &[String],
        volumes: &[String],
        _timeout: Duration,
    ) -> Result<Vec<(String, String)>, EngineError> {
        self.up()?;
        for v in volumes {
            if let Some(f) = self.scripted().foreign.get(v).filter(|f| !f.is_empty()) {
                return Err(EngineError::Other(format!(
                    "volume {v} is also mounted by {}",
                    f.join(", ")
                )));
            }
        }
        let mut found = Vec::new();
        for id in containers {
            found.push(self.find(id)?);
        }
        let mut st = self.lock();
        st.calls
            .push(format!("reset-volumes {}", volumes.join(",")));
        let mut renewed = Vec::new();
        for c in found {
            st.calls.push(format!("stop {}", c.name));
            if let Some(x) = st.containers.iter_mut().find(|x| x.id == c.id) {
                x.state = "exited".into();
                if x.volumes.iter().any(|v| volumes.contains(v)) {
                    x.id = format!("{}-new", c.id);
                    renewed.push((c.id.clone(), x.id.clone()));
                }
            }
        }
        Ok(renewed)
    }

    async fn run_one_shot(&self, id: &str, _timeout: Duration) -> Result<ExecOutput, EngineError> {
        self.up()?;
        let c = self.find(id)?;
        self.lock().calls.push(format!("run {}", c.name));
        Ok(ExecOutput {
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
        })
    }
}

/// Scripting of the destructive paths (exec answers, volumes shared with other projects).
impl FakeEngine {
    fn scripted(&self) -> std::sync::MutexGuard<'_, Scripted> {
        self.scripted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every later exec of `program` answers `out`.
    pub fn script_exec(&self, program: &str, out: ExecOutput) {
        self.scripted().exec.insert(program.to_owned(), out);
    }

    /// Marks `volume` as mounted by these containers of other projects.
    pub fn set_foreign_users(&self, volume: &str, containers: &[&str]) {
        self.scripted().foreign.insert(
            volume.to_owned(),
            containers.iter().map(|c| (*c).to_owned()).collect(),
        );
    }

    /// The project's volumes from now on: `(name, name in the Compose file)`.
    pub fn set_volumes(&self, volumes: &[(&str, &str)]) {
        self.scripted().volumes = Some(
            volumes
                .iter()
                .map(|(name, compose)| VolumeInfo {
                    name: (*name).to_owned(),
                    driver: "local".into(),
                    mountpoint: format!("/var/lib/docker/volumes/{name}/_data"),
                    created_at: None,
                    compose_name: Some((*compose).to_owned()),
                    size: None,
                })
                .collect(),
        );
    }
}
