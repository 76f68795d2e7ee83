//! `/diagnose` against a real platform instance: inject each fault, check the report names its cause.
//!
//! Needs the platform up (`deploy/dev/platform up`) and the bollard adapter (`container_ops::docker`).
//! Project and ports come from the environment the platform script uses (COMPOSE_PROJECT_NAME or
//! CONTAINER_OPS_TEST_PROJECT, POSTGRES_PORT, REDIS_PORT, MINIO_PORT, API_PORT, ...), defaulting to
//! the riftwing defaults. An unreachable platform FAILS the tests with what to do.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use container_ops::diagnosis::{self, OpsReport};
use container_ops::docker::DockerEngine;
use container_ops::engine::Engine;
use container_ops::platform::{PlatformConfig, PortSet};
use container_ops::probes::{ProbeKind, ProbeOutcome, ProbeStatus, Probes};

struct TestPlatform {
    project: String,
    ports: PortSet,
    script: PathBuf,
    /// Held for the whole test: fault tests share one platform, so they run one at a time.
    _lock: File,
}

impl TestPlatform {
    fn get() -> Self {
        let project = std::env::var("CONTAINER_OPS_TEST_PROJECT")
            .or_else(|_| std::env::var("COMPOSE_PROJECT_NAME"))
            .unwrap_or_else(|_| "riftwing".into());
        let ports = PortSet::from_lookup(|k| std::env::var(k).ok()).expect("port variables");
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
            ports,
            script,
            _lock: lock,
        }
    }

    fn config(&self) -> PlatformConfig {
        PlatformConfig::riftwing(self.ports)
    }

    async fn engine(&self) -> Arc<dyn Engine> {
        match DockerEngine::connect(None, &self.project).await {
            Ok(e) => Arc::new(e),
            Err(e) => panic!(
                "cannot reach the Docker Engine for project `{}`: {e}. Start the platform with \
                 `deploy/dev/platform up` (for the rwdiag instance: `source /work/briefing/rwdiag.env` first)",
                self.project
            ),
        }
    }

    async fn diagnose_with(&self, cfg: PlatformConfig) -> (OpsReport, Vec<ProbeOutcome>) {
        let probes = Probes::new(cfg, &self.project).expect("probe clients");
        diagnosis::run(&probes, self.engine().await).await
    }

    async fn diagnose(&self) -> (OpsReport, Vec<ProbeOutcome>) {
        self.diagnose_with(self.config()).await
    }

    /// Waits until the whole platform diagnoses healthy; fails with the last report otherwise.
    async fn wait_healthy(&self, within: Duration) {
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
                    "platform `{}` is not reachable or not healthy (ports {:?}). Start it with \
                     `deploy/dev/platform up` and wait until `deploy/dev/platform status` shows every \
                     service healthy. Last report:\n{}",
                    self.project,
                    self.ports,
                    report.to_markdown()
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    fn fault(&self, verb: &str, undo: bool) {
        let mut cmd = Command::new(&self.script);
        cmd.arg("fault").arg(verb);
        if undo {
            cmd.arg("--undo");
        }
        let out = cmd
            .env("COMPOSE_PROJECT_NAME", &self.project)
            .env("POSTGRES_PORT", self.ports.postgres.to_string())
            .env("REDIS_PORT", self.ports.redis.to_string())
            .env("MINIO_PORT", self.ports.minio.to_string())
            .env("API_PORT", self.ports.api.to_string())
            .env("TEMPORAL_PORT", self.ports.temporal.to_string())
            .env("AI_GATEWAY_PORT", self.ports.ai_gateway.to_string())
            .env("MCP_PORT", self.ports.mcp.to_string())
            .env("CONSOLE_PORT", self.ports.console.to_string())
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

    /// Injects a fault, polls `/diagnose` until `check` accepts the report (or fails with the
    /// last report), undoes the fault whatever happened, and waits for the platform to recover.
    async fn with_fault(
        &self,
        verb: &str,
        within: Duration,
        check: impl Fn(&OpsReport) -> Result<(), String>,
    ) -> OpsReport {
        self.wait_healthy(Duration::from_secs(120)).await;
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
                Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
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
struct Undo<'a> {
    platform: &'a TestPlatform,
    verb: &'a str,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        self.platform.fault(self.verb, true);
    }
}

fn root_is(r: &OpsReport, service: &str, words: &str) -> Result<(), String> {
    let rc = r
        .root_causes
        .iter()
        .find(|c| c.service == service)
        .ok_or_else(|| format!("root causes {:?} do not name {service}", r.root_services()))?;
    if !rc.summary.contains(words) {
        return Err(format!(
            "root cause of {service} does not say `{words}`: {}",
            rc.summary
        ));
    }
    Ok(())
}

fn affected(r: &OpsReport, services: &[&str]) -> Result<(), String> {
    for s in services {
        if !r.affected_services().contains(s) {
            return Err(format!(
                "{s} not yet among affected {:?}",
                r.affected_services()
            ));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_platform_diagnoses_healthy_with_no_invented_cause() {
    let p = TestPlatform::get();
    p.wait_healthy(Duration::from_secs(120)).await;
    let (report, outcomes) = p.diagnose().await;
    assert!(report.healthy, "{}", report.to_markdown());
    assert!(report.root_causes.is_empty());
    for kind in [
        ProbeKind::Postgres,
        ProbeKind::Redis,
        ProbeKind::S3,
        ProbeKind::Http,
        ProbeKind::Dns,
        ProbeKind::Disk,
    ] {
        assert!(
            outcomes
                .iter()
                .any(|o| o.probe == kind
                    && matches!(o.status, ProbeStatus::Pass | ProbeStatus::Warn)),
            "no passing {kind} probe: {outcomes:#?}"
        );
    }
    let md = report.to_markdown();
    assert!(
        md.contains("### Issue: None: the platform is healthy"),
        "{md}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_service_is_named_as_stopped() {
    let p = TestPlatform::get();
    p.with_fault("stop-service", Duration::from_secs(30), |r| {
        root_is(r, "mcp-server", "not running")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_is_named_with_its_fatal_line() {
    let p = TestPlatform::get();
    let r = p
        .with_fault("crash-loop", Duration::from_secs(60), |r| {
            root_is(r, "ai-gateway", "crash loop")?;
            let rc = r
                .root_causes
                .iter()
                .find(|c| c.service == "ai-gateway")
                .unwrap();
            if !rc
                .evidence
                .iter()
                .any(|e| e.contains("missing AI_PROVIDER"))
            {
                return Err(format!("FATAL line not quoted: {:?}", rc.evidence));
            }
            Ok(())
        })
        .await;
    assert!(
        r.affected
            .iter()
            .any(|a| a.service == "ai-gateway" && a.status.contains("exit code 3")),
        "{:?}",
        r.affected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_killed_worker_is_named_with_its_memory_limit() {
    let p = TestPlatform::get();
    p.with_fault("oom", Duration::from_secs(60), |r| {
        root_is(r, "worker-2", "OOM killer")?;
        root_is(r, "worker-2", "48.0 MiB")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_healthcheck_of_a_running_api_is_named() {
    let p = TestPlatform::get();
    p.with_fault("unhealthy", Duration::from_secs(60), |r| {
        root_is(r, "api-2", "healthcheck fails")?;
        if r.root_services().contains(&"postgres") || r.root_services().contains(&"redis") {
            return Err("a healthy dependency was blamed".into());
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_cut_off_the_network_is_named() {
    let p = TestPlatform::get();
    let network = format!("{}_default", p.project);
    p.with_fault("disconnect", Duration::from_secs(30), |r| {
        root_is(r, "worker-1", &network)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_scratch_volume_is_named() {
    let p = TestPlatform::get();
    p.with_fault("fill-volume", Duration::from_secs(30), |r| {
        root_is(r, "worker-1", "is full")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_postgres_is_the_cause_and_the_apis_are_affected() {
    let p = TestPlatform::get();
    p.with_fault("stop-postgres", Duration::from_secs(60), |r| {
        root_is(r, "postgres", "not running")?;
        if r.root_causes.len() != 1 {
            return Err(format!(
                "dependents should be explained by postgres, roots: {:?}",
                r.root_services()
            ));
        }
        affected(r, &["api-1", "api-2"])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_redis_is_the_cause_and_the_apis_are_affected() {
    let p = TestPlatform::get();
    p.with_fault("stop-redis", Duration::from_secs(60), |r| {
        root_is(r, "redis", "not running")?;
        if r.root_causes.len() != 1 {
            return Err(format!(
                "dependents should be explained by redis, roots: {:?}",
                r.root_services()
            ));
        }
        affected(r, &["api-1", "api-2"])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_bucket_is_the_cause_and_the_workers_are_affected() {
    let p = TestPlatform::get();
    p.with_fault("delete-bucket", Duration::from_secs(60), |r| {
        root_is(r, "minio", "does not exist")?;
        if r.root_causes.len() != 1 {
            return Err(format!(
                "workers should be explained by the bucket, roots: {:?}",
                r.root_services()
            ));
        }
        affected(r, &["worker-1", "worker-2"])
    })
    .await;
}

/// Accepts connections and never answers: a hung dependency.
fn hung_listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let clone = l.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in clone.incoming().flatten() {
            held.push(s);
        }
    });
    (l, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_dependency_costs_its_deadline_and_is_marked_timed_out() {
    let p = TestPlatform::get();
    p.wait_healthy(Duration::from_secs(120)).await;
    let (_listener, port) = hung_listener();
    let mut cfg = p.config();
    cfg.redis.as_mut().unwrap().url = format!("redis://127.0.0.1:{port}");
    cfg.http[1].url = format!("http://127.0.0.1:{port}/health");
    cfg.deadlines.redis_ms = 1500;
    cfg.deadlines.http_ms = 1500;
    let slowest = Duration::from_millis(
        [
            cfg.deadlines.inventory_ms + cfg.deadlines.container_ms.max(cfg.deadlines.exec_ms),
            cfg.deadlines.postgres_ms,
            cfg.deadlines.s3_ms,
        ]
        .into_iter()
        .max()
        .unwrap(),
    );
    let started = Instant::now();
    let (report, outcomes) = p.diagnose_with(cfg).await;
    let elapsed = started.elapsed();
    let redis = outcomes
        .iter()
        .find(|o| o.probe == ProbeKind::Redis)
        .unwrap();
    assert_eq!(redis.status, ProbeStatus::TimedOut, "{redis:?}");
    assert!(
        redis.duration >= Duration::from_millis(1500)
            && redis.duration < Duration::from_millis(2500),
        "{redis:?}"
    );
    let http = outcomes
        .iter()
        .find(|o| o.probe == ProbeKind::Http && o.target.contains(&port.to_string()))
        .unwrap();
    assert_eq!(http.status, ProbeStatus::TimedOut, "{http:?}");
    // Concurrent: the hung probes cost their 1.5 s deadline once, in parallel with everything else.
    assert!(
        elapsed < Duration::from_millis(1500) + Duration::from_secs(1),
        "took {elapsed:?} (slowest other deadline {slowest:?})"
    );
    let md = report.to_markdown();
    assert!(md.contains("Probes that timed out"), "{md}");
    assert!(
        report
            .affected
            .iter()
            .any(|a| a.service == "redis" && a.status.contains("timed out")),
        "{md}"
    );
}
