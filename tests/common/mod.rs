//! Shared by the platform integration tests: project and ports from the environment, one test at a time, fault injection.
// Each test crate uses a different part of this module.
#![allow(dead_code, unused_imports)]

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use container_ops::core::engine::Engine;
use container_ops::core::platform::PlatformConfig;
use container_ops::infra::docker::DockerEngine;
use container_ops::ops::diagnose::probes::{ProbeKind, ProbeOutcome, ProbeStatus, Probes};
use container_ops::ops::diagnose::report::OpsReport;

mod cli;
pub use cli::{docker, project};

pub struct TestPlatform {
    pub project: String,
    /// The embedded platform file with the seed's port variables applied.
    pub platform: PlatformConfig,
    script: PathBuf,
    /// Held for the whole test: fault tests share one platform, so they run one at a time.
    _lock: File,
}

impl TestPlatform {
    pub fn get() -> Self {
        let project = std::env::var("CONTAINER_OPS_TEST_PROJECT")
            .or_else(|_| std::env::var("COMPOSE_PROJECT_NAME"))
            .unwrap_or_else(|_| "riftwing".into());
        let platform =
            container_ops::core::settings::load_platform(None, &|k| std::env::var(k).ok())
                .expect("the platform file and its port variables");
        let script = std::env::var("CONTAINER_OPS_PLATFORM_SCRIPT")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/dev/platform")
            });
        let lock =
            File::create(std::env::temp_dir().join(format!("container-ops-faults-{project}.lock")))
                .expect("lock file");
        lock.lock().expect("lock the platform for this test");
        Self {
            project,
            platform,
            script,
            _lock: lock,
        }
    }

    pub fn config(&self) -> PlatformConfig {
        self.platform.clone()
    }

    pub async fn engine(&self) -> Arc<dyn Engine> {
        match DockerEngine::connect(None, &self.project).await {
            Ok(e) => Arc::new(e),
            Err(e) => panic!(
                "cannot reach the Docker Engine for project `{}`: {e}. Start the platform with \
                 `deploy/dev/platform up` (for another instance, export the variables \
                 `deploy/dev/platform env` prints for it)",
                self.project
            ),
        }
    }

    pub async fn diagnose_with(&self, cfg: PlatformConfig) -> (OpsReport, Vec<ProbeOutcome>) {
        let probes = Probes::new(cfg, &self.project).expect("probe clients");
        container_ops::ops::diagnose::probe_and_diagnose(&probes, self.engine().await).await
    }

    pub async fn diagnose(&self) -> (OpsReport, Vec<ProbeOutcome>) {
        self.diagnose_with(self.config()).await
    }

    /// Waits until the whole platform diagnoses healthy; fails with the last report otherwise.
    pub async fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let (report, outcomes) = self.diagnose().await;
            if report.healthy {
                return;
            }
            let inventory_failed = outcomes
                .iter()
                .any(|o| o.probe == ProbeKind::Inventory && o.status != ProbeStatus::Pass);
            if inventory_failed || Instant::now() >= deadline {
                panic!(
                    "platform `{}` is not reachable or not healthy. Start it with \
                     `deploy/dev/platform up` and wait until `deploy/dev/platform status` shows every \
                     service healthy. Last report:\n{}",
                    self.project,
                    report.to_markdown()
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    pub fn fault(&self, verb: &str, undo: bool) {
        let mut cmd = Command::new(&self.script);
        cmd.arg("fault").arg(verb);
        if undo {
            cmd.arg("--undo");
        }
        // The port variables, if any, are inherited: the script and the tests see the same ones.
        let out = cmd
            .env("COMPOSE_PROJECT_NAME", &self.project)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.script.display()));
        assert!(
            out.status.success(),
            "fault {verb}{}: {}\n{}",
            if undo { " --undo" } else { "" },
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Fault tests wait seconds for a container to turn unhealthy, which takes three failed
    /// checks: at a 30 s interval (`HEALTH_INTERVAL=30s`) that is past their bounds, and the
    /// failure would read as a missed diagnosis. Say what to run instead.
    fn require_fast_healthchecks(&self) {
        const MAX: Duration = Duration::from_secs(5);
        let slowest = cli::slowest_healthcheck_interval(&self.project)
            .unwrap_or_else(|e| panic!("healthchecks of platform `{}`: {e}", self.project))
            .unwrap_or_default();
        assert!(
            slowest <= MAX,
            "platform `{}` runs healthchecks every {slowest:?}; fault tests need the replica's 3 s \
             (at most {MAX:?}). Recreate it with `deploy/dev/platform up` (without HEALTH_INTERVAL).",
            self.project
        );
    }

    /// Injects a fault, polls `/diagnose` until `check` accepts the report (or fails with the
    /// last report), undoes the fault whatever happened, and waits for the platform to recover.
    pub async fn with_fault(
        &self,
        verb: &str,
        within: Duration,
        check: impl Fn(&OpsReport) -> Result<(), String>,
    ) -> OpsReport {
        self.wait_healthy(Duration::from_secs(120)).await;
        self.require_fast_healthchecks();
        self.fault(verb, false);
        let undo = Undo {
            platform: self,
            verb,
        };
        let deadline = Instant::now() + within;
        let result = loop {
            let (report, _) = self.diagnose().await;
            match check(&report) {
                Ok(()) => break Ok(report),
                Err(why) if Instant::now() >= deadline => break Err((why, report)),
                Err(_) => tokio::time::sleep(Duration::from_secs(3)).await,
            }
        };
        drop(undo);
        match result {
            Ok(report) => {
                println!("fault {verb}:\n{}", report.to_markdown());
                self.wait_healthy(Duration::from_secs(120)).await;
                report
            }
            Err((why, report)) => panic!("fault {verb}: {why}\n{}", report.to_markdown()),
        }
    }
}

/// Undoes the fault even when the test panics, so the next test gets a healthy platform.
pub struct Undo<'a> {
    platform: &'a TestPlatform,
    verb: &'a str,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        self.platform.fault(self.verb, true);
    }
}

/// The replica's long-running services (init jobs excluded), as `deploy/dev/docker-compose.yml`
/// defines them.
pub const LONG_RUNNING: &[&str] = &[
    "postgres",
    "redis",
    "minio",
    "temporal",
    "api-1",
    "api-2",
    "api-gateway",
    "worker-1",
    "worker-2",
    "ai-gateway",
    "mcp-server",
    "console",
    "db-backup",
];

/// A running container of another Compose project (`other-project`, service `intruder`),
/// removed however the test ends, with the volume it created if any.
pub struct Foreign {
    pub id: String,
    pub name: String,
    /// A volume labelled as `other-project`'s, created for it and removed with it.
    pub volume: Option<String>,
}

impl Foreign {
    /// With no volume.
    pub fn start() -> Self {
        Self::run(None, None)
    }

    /// With a volume of its own project mounted at /data.
    pub fn with_own_volume() -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let volume = format!("other-project_data_{}", &tag[..8]);
        docker(&[
            "volume",
            "create",
            "--label",
            "com.docker.compose.project=other-project",
            &volume,
        ]);
        Self::run(Some(volume.clone()), Some(volume))
    }

    /// Mounting `volume` (someone else's, e.g. the project under test's) at /data; it is not removed.
    pub fn mounting(volume: &str) -> Self {
        Self::run(Some(volume.to_owned()), None)
    }

    fn run(mount: Option<String>, own: Option<String>) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("container-ops-test-other-{}", &tag[..8]);
        let mut args = vec![
            "run".to_string(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "--label".into(),
            "com.docker.compose.project=other-project".into(),
            "--label".into(),
            "com.docker.compose.service=intruder".into(),
        ];
        if let Some(v) = &mount {
            args.push("-v".into());
            args.push(format!("{v}:/data"));
        }
        args.extend(["riftwing-base:bookworm", "sleep", "300"].map(String::from));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = docker(&argv);
        Self {
            id,
            name,
            volume: own,
        }
    }

    /// Start time and status, to show it was never restarted nor stopped.
    pub fn state(&self) -> String {
        docker(&[
            "inspect",
            "-f",
            "{{.State.StartedAt}} {{.State.Status}}",
            &self.id,
        ])
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
        if let Some(v) = &self.volume {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", v])
                .output();
        }
    }
}
