//! `/diagnose` against a real platform instance: inject each fault, check the report names its cause.
//!
//! Needs the platform up (`deploy/dev/platform up`) and the bollard adapter (`container_ops::infra::docker`).
//! Project and ports come from the environment the platform script uses (COMPOSE_PROJECT_NAME or
//! CONTAINER_OPS_TEST_PROJECT, POSTGRES_PORT, REDIS_PORT, MINIO_PORT, API_PORT, ...), defaulting to
//! the riftwing defaults. An unreachable platform FAILS the tests with what to do.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::TestPlatform;
use container_ops::ops::diagnose::probes::exec::DnsFacts;
use container_ops::ops::diagnose::probes::{Facts, ProbeKind, ProbeStatus};
use container_ops::ops::diagnose::report::OpsReport;

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

/// The dependents are affected and explained by `root`, not reported as causes of their own.
fn attributed(r: &OpsReport, services: &[&str], root: &str) -> Result<(), String> {
    for s in services {
        let a = r
            .affected
            .iter()
            .find(|a| a.service == *s)
            .ok_or_else(|| format!("{s} not yet among affected {:?}", r.affected_services()))?;
        if !a.status.contains(&format!("depends on {root}")) {
            return Err(format!("{s} is not attributed to {root}: {}", a.status));
        }
        if r.root_services().contains(s) {
            return Err(format!("{s} is reported as a cause of its own"));
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
    // Every service sits on the one project network, so one container resolves for all.
    let dns: Vec<&DnsFacts> = outcomes
        .iter()
        .filter_map(|o| match &o.facts {
            Facts::Dns(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(dns.len(), 1, "{dns:?}");
    for name in [
        "postgres",
        "redis",
        "temporal",
        "api-1",
        "api-2",
        "api-gateway",
    ] {
        assert!(
            dns[0]
                .answers
                .iter()
                .any(|(n, addr)| n == name && addr.is_some()),
            "{name} not resolved: {dns:?}"
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
async fn a_gateway_left_with_the_old_api_addresses_is_named_with_them() {
    let p = TestPlatform::get();
    // nginx answers "no live upstreams" (no addresses) for 10 s after both fail: retry past it.
    p.with_fault("stale-gateway", Duration::from_secs(45), |r| {
        root_is(r, "api-gateway", "sends requests to")?;
        let cause = &r.root_causes[0].summary;
        for s in [
            "api-1 at ",
            "api-2 at ",
            "(no container of the project has it)",
        ] {
            if !cause.contains(s) {
                return Err(format!("the cause does not say `{s}`: {cause}"));
            }
        }
        if r.root_services() != ["api-gateway"] {
            return Err(format!("other causes: {:?}", r.root_services()));
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_postgres_is_the_cause_and_the_apis_are_affected() {
    let p = TestPlatform::get();
    p.with_fault("stop-postgres", Duration::from_secs(60), |r| {
        root_is(r, "postgres", "not running")?;
        attributed(r, &["api-1", "api-2"], "postgres")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_redis_is_the_cause_and_the_apis_are_affected() {
    let p = TestPlatform::get();
    p.with_fault("stop-redis", Duration::from_secs(60), |r| {
        root_is(r, "redis", "not running")?;
        attributed(r, &["api-1", "api-2"], "redis")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_bucket_is_the_cause_and_the_workers_are_affected() {
    let p = TestPlatform::get();
    p.with_fault("delete-bucket", Duration::from_secs(60), |r| {
        root_is(r, "minio", "does not exist")?;
        attributed(r, &["worker-1", "worker-2"], "minio")
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
    // The worst a /diagnose can take: the engine chain (inventory, then container/exec probes)
    // or the slowest network probe, each bounded by its deadline.
    let bound = Duration::from_millis(
        [
            cfg.deadlines.inventory_ms + cfg.deadlines.container_ms.max(cfg.deadlines.exec_ms),
            cfg.deadlines.postgres_ms,
            cfg.deadlines.redis_ms,
            cfg.deadlines.s3_ms,
            cfg.deadlines.http_ms,
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
    assert!(http.duration < Duration::from_millis(2500), "{http:?}");
    // Concurrent: the report arrives within the deadline bound, about the slowest chain of
    // probes, and well under their sum (the two hung probes alone sum to 3 s).
    let slowest_chain = {
        let dur = |k: ProbeKind| {
            outcomes
                .iter()
                .filter(|o| o.probe == k)
                .map(|o| o.duration)
                .max()
                .unwrap_or_default()
        };
        let engine_chain = dur(ProbeKind::Inventory)
            + dur(ProbeKind::Container)
                .max(dur(ProbeKind::Dns))
                .max(dur(ProbeKind::Disk));
        [
            engine_chain,
            dur(ProbeKind::Postgres),
            dur(ProbeKind::Redis),
            dur(ProbeKind::S3),
            dur(ProbeKind::Http),
        ]
        .into_iter()
        .max()
        .unwrap()
    };
    let sum: Duration = outcomes.iter().map(|o| o.duration).sum();
    let margin = Duration::from_secs(1);
    assert!(
        elapsed < bound + margin,
        "took {elapsed:?}, bound {bound:?}"
    );
    assert!(
        elapsed < slowest_chain + margin,
        "took {elapsed:?}, slowest chain {slowest_chain:?}"
    );
    assert!(
        elapsed < sum,
        "took {elapsed:?}, sum of probes {sum:?}: not concurrent"
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
