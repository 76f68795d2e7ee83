//! Integration tests of the Docker adapter against the real platform replica.
//!
//! Every test here needs the Compose project of deploy/dev running and healthy
//! (`CONTAINER_OPS_TEST_PROJECT`, default `riftwing`); they fail, loudly, without it.
//! Tests that change state put it back. Only `mcp-server` is restarted, so the other
//! tests do not look at its state.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use container_ops::core::engine::{ContainerInfo, Engine, EngineError, LogQuery, LogStream};
use container_ops::infra::docker::DockerEngine;

use common::{Foreign, LONG_RUNNING, docker, project};

async fn engine() -> DockerEngine {
    DockerEngine::connect(None, &project())
        .await
        .expect("the Docker Engine must be reachable for these tests")
}

async fn service(engine: &DockerEngine, name: &str) -> ContainerInfo {
    let all = engine.containers().await.unwrap();
    all.into_iter()
        .find(|c| c.service == name)
        .unwrap_or_else(|| {
            panic!(
                "service {name} not found in project {}: is the platform up (deploy/dev)?",
                project()
            )
        })
}

#[tokio::test]
async fn every_service_of_the_project_is_listed_with_its_health() {
    let e = engine().await;
    let all = e.containers().await.unwrap();
    let services: BTreeSet<&str> = all.iter().map(|c| c.service.as_str()).collect();
    for s in LONG_RUNNING {
        assert!(services.contains(s), "{s} missing from {services:?}");
    }
    let inits: Vec<&ContainerInfo> = all
        .iter()
        .filter(|c| c.service.ends_with("-init"))
        .collect();
    assert!(!inits.is_empty(), "one-shot *-init jobs are listed too");
    for c in &inits {
        assert_eq!(c.state, "exited", "{}", c.name);
        assert_eq!(c.exit_code, Some(0), "{}", c.name);
        assert!(c.finished_at.is_some(), "{}", c.name);
    }
    for c in all
        .iter()
        .filter(|c| c.service != "mcp-server" && LONG_RUNNING.contains(&c.service.as_str()))
    {
        assert_eq!(c.state, "running", "{}", c.name);
        assert_eq!(
            c.health.as_deref(),
            Some("healthy"),
            "{}: {:?}",
            c.name,
            c.health_log
        );
        assert!(
            !c.health_log.is_empty(),
            "{} has healthcheck outputs",
            c.name
        );
        assert!(
            c.started_at.is_some() && c.exit_code.is_none(),
            "{}",
            c.name
        );
        assert_eq!(c.id.len(), 64, "full ids");
    }
    let keys: Vec<(&str, &str)> = all
        .iter()
        .map(|c| (c.service.as_str(), c.name.as_str()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "sorted by service then name");

    let pg = all.iter().find(|c| c.service == "postgres").unwrap();
    assert!(
        pg.volumes.iter().any(|v| v.ends_with("postgres_data")),
        "{:?}",
        pg.volumes
    );
    assert!(
        pg.ports
            .iter()
            .any(|p| p.container_port == 5432 && p.host_ip == "127.0.0.1"),
        "{:?}",
        pg.ports
    );
    assert!(
        pg.networks
            .iter()
            .any(|(n, ip)| n.starts_with(&project()) && ip.contains('.')),
        "{:?}",
        pg.networks
    );
}

#[tokio::test]
async fn worker_1_logs_show_that_it_registered() {
    let e = engine().await;
    let w = service(&e, "worker-1").await;
    // The line is printed once at start; 10 000 lines cover hours of this worker's output.
    let q = LogQuery {
        tail: 10_000,
        since: None,
        timestamps: false,
        max_bytes: usize::MAX,
    };
    let lines = e.logs(&w.id, &q).await.unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.text.contains("Worker successfully registered")),
        "{} lines, none with the registration",
        lines.len()
    );
}

#[tokio::test]
async fn a_log_tail_returns_at_most_the_lines_asked_for_with_their_times() {
    let e = engine().await;
    let w = service(&e, "worker-1").await;
    let q = LogQuery {
        tail: 5,
        since: None,
        timestamps: false,
        max_bytes: usize::MAX,
    };
    let lines = e.logs(&w.id, &q).await.unwrap();
    assert_eq!(lines.len(), 5, "worker-1 has written far more than 5 lines");
    for l in &lines {
        let at = l.at.expect("the Engine timestamp is parsed");
        assert!(at <= Utc::now());
        // The app writes its own time without an offset; the Engine's RFC 3339 prefix is gone.
        let first = l.text.split(' ').next().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(first).is_err(),
            "{:?}",
            l.text
        );
        assert!(l.text.contains("[worker-1]"), "{:?}", l.text);
    }
    assert!(lines.windows(2).all(|w| w[0].at <= w[1].at), "oldest first");

    let q = LogQuery {
        tail: 2,
        since: None,
        timestamps: true,
        max_bytes: usize::MAX,
    };
    let with_ts = e.logs(&w.id, &q).await.unwrap();
    assert!(with_ts.len() <= 2);
    for l in &with_ts {
        let (prefix, _) = l.text.split_once(' ').unwrap();
        let parsed =
            chrono::DateTime::parse_from_rfc3339(prefix).expect("Engine timestamp kept in text");
        assert_eq!(Some(parsed.with_timezone(&Utc)), l.at);
    }
}

#[tokio::test]
async fn logs_since_a_time_hold_no_older_line() {
    let e = engine().await;
    let w = service(&e, "worker-1").await;
    let since = Utc::now() - chrono::Duration::seconds(20);
    let q = LogQuery {
        tail: 1000,
        since: Some(since),
        timestamps: false,
        max_bytes: usize::MAX,
    };
    let lines = e.logs(&w.id, &q).await.unwrap();
    assert!(!lines.is_empty(), "worker-1 logs every couple of seconds");
    assert!(lines.iter().all(|l| l.at.unwrap() >= since));
    assert!(
        lines
            .iter()
            .all(|l| l.stream == LogStream::Stdout || l.stream == LogStream::Stderr)
    );
}

#[tokio::test]
async fn stats_of_a_running_container_report_memory_and_its_limit() {
    let e = engine().await;
    let pg = service(&e, "postgres").await;
    let s = e.stats(&pg.id).await.unwrap();
    assert!(s.memory_usage > 0, "{s:?}");
    assert!(
        s.memory_limit > 0,
        "no limit set means the host's memory: {s:?}"
    );
    assert!(s.memory_usage < s.memory_limit, "{s:?}");
    assert!(s.pids > 0, "{s:?}");
    assert!(s.cpu_percent >= 0.0 && s.cpu_percent.is_finite(), "{s:?}");
    assert!(s.net_rx > 0, "postgres talks to its clients: {s:?}");
}

/// A finished one-shot job of the platform.
async fn init_job(e: &DockerEngine) -> ContainerInfo {
    e.containers()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.service.ends_with("-init"))
        .expect("an init job")
}

#[tokio::test]
async fn memory_usage_from_one_sample_is_what_stats_report_and_is_scoped_like_it() {
    let e = engine().await;
    let pg = service(&e, "postgres").await;
    let one = e.memory_usage(&pg.id).await.unwrap();
    let full = e.stats(&pg.id).await.unwrap();
    assert!(one > 0 && one < full.memory_limit, "{one} of {full:?}");
    // The same cgroup a moment apart: within a factor of two of the two-sample figure.
    assert!(
        one / 2 < full.memory_usage && full.memory_usage / 2 < one,
        "{one} vs {full:?}"
    );
    let err = e.memory_usage(&init_job(&e).await.id).await.unwrap_err();
    assert!(err.to_string().contains("not running"), "{err}");
    assert!(matches!(
        e.memory_usage("not-a-container-of-ours").await,
        Err(EngineError::NoSuchContainer(_))
    ));
}

#[tokio::test]
async fn stats_of_a_finished_one_shot_job_say_it_is_not_running() {
    let e = engine().await;
    let err = e.stats(&init_job(&e).await.id).await.unwrap_err();
    assert!(err.to_string().contains("not running"), "{err}");
}

#[tokio::test]
async fn restarting_mcp_server_brings_it_back_started_and_healthy() {
    let e = engine().await;
    let before = service(&e, "mcp-server").await;
    assert_eq!(before.state, "running", "precondition");
    e.restart(&before.id, Duration::from_secs(10))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = service(&e, "mcp-server").await;
        assert_eq!(now.id, before.id, "a restart keeps the container");
        if now.started_at > before.started_at && now.health.as_deref() == Some("healthy") {
            assert_eq!(now.state, "running");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mcp-server not healthy again after 90 s: {:?} {:?} {:?}",
            now.state,
            now.health,
            now.health_log
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn exec_of_printenv_returns_the_container_hostname() {
    let e = engine().await;
    let api = service(&e, "api-1").await;
    let argv = vec!["printenv".to_string(), "HOSTNAME".to_string()];
    let out = e
        .exec(&api.id, &argv, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    // Without `hostname:` in the Compose file the hostname is the short container id.
    assert_eq!(out.stdout.trim(), &api.id[..12], "{out:?}");
    assert_eq!(out.stderr, "");
}

#[tokio::test]
async fn exec_reports_a_failing_exit_code_and_stderr() {
    let e = engine().await;
    let api = service(&e, "api-1").await;
    let argv: Vec<String> = ["ls", "/definitely-not-here"].map(String::from).to_vec();
    let out = e
        .exec(&api.id, &argv, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(2), "{out:?}");
    assert!(out.stderr.contains("definitely-not-here"), "{out:?}");
}

#[tokio::test]
async fn exec_arguments_are_never_interpreted_by_a_shell() {
    let e = engine().await;
    let api = service(&e, "api-1").await;
    let argv: Vec<String> = ["echo", "$HOSTNAME; id"].map(String::from).to_vec();
    let out = e
        .exec(&api.id, &argv, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.stdout, "$HOSTNAME; id\n");
}

#[tokio::test]
async fn exec_output_is_capped_and_says_so() {
    let e = engine().await;
    let api = service(&e, "api-1").await;
    // 4 MiB of zeros from /dev/zero, well past the 1 MiB cap.
    let argv: Vec<String> = ["head", "-c", "4194304", "/dev/zero"]
        .map(String::from)
        .to_vec();
    let out = e
        .exec(&api.id, &argv, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(
        out.exit_code,
        Some(0),
        "the process was drained, not blocked"
    );
    assert!(out.stdout.len() < 1024 * 1024 + 100, "{}", out.stdout.len());
    assert!(out.stdout.ends_with("[output capped at 1024 KiB]"));
}

#[tokio::test]
async fn exec_past_its_deadline_is_a_timeout() {
    let e = engine().await;
    let api = service(&e, "api-1").await;
    let argv = vec!["sleep".to_string(), "30".to_string()];
    let started = Instant::now();
    let err = e
        .exec(&api.id, &argv, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Timeout(d) if d == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn env_of_worker_1_has_its_configured_variables() {
    let e = engine().await;
    let w = service(&e, "worker-1").await;
    let env = e.env(&w.id).await.unwrap();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("WORKER_NAME"), Some("worker-1"));
    assert_eq!(get("TEMPORAL_ADDRESS"), Some("temporal:7233"));
    // Split at the first '=' only: the URL's own '=' and ':' stay in the value.
    assert!(
        get("DATABASE_URL").unwrap().starts_with("postgres://"),
        "{env:?}"
    );
    assert!(get("PATH").is_some());
}

#[tokio::test]
async fn volumes_are_the_projects_own_without_sizes() {
    let e = engine().await;
    let vols = e.volumes().await.unwrap();
    let p = project();
    assert!(!vols.is_empty());
    for v in &vols {
        assert!(v.name.starts_with(&format!("{p}_")), "{v:?}");
        assert_eq!(v.size, None, "listing volumes never runs /system/df");
        assert_eq!(v.driver, "local");
    }
    let compose: BTreeSet<&str> = vols
        .iter()
        .filter_map(|v| v.compose_name.as_deref())
        .collect();
    assert!(compose.contains("postgres_data"), "{compose:?}");
}

#[tokio::test]
async fn networks_are_the_projects_own_with_container_addresses() {
    let e = engine().await;
    let nets = e.networks().await.unwrap();
    let p = project();
    assert!(!nets.is_empty());
    assert!(
        nets.iter().all(|n| n.name.starts_with(&format!("{p}_"))),
        "{nets:?}"
    );
    let default = nets
        .iter()
        .find(|n| n.name == format!("{p}_default"))
        .expect("default network");
    assert_eq!(default.driver, "bridge");
    assert!(
        default.subnet.as_deref().is_some_and(|s| s.contains('/')),
        "{default:?}"
    );
    for svc in ["postgres", "redis", "api-1"] {
        let (_, ip) = default
            .containers
            .iter()
            .find(|(name, _)| {
                name.contains(&format!("_{svc}_")) || name.contains(&format!("-{svc}-"))
            })
            .unwrap_or_else(|| panic!("{svc} not on {default:?}"));
        assert!(
            ip.contains('.') && ip.contains('/'),
            "IPv4 with prefix: {ip}"
        );
    }
}

#[tokio::test]
async fn unknown_and_malformed_container_ids_are_no_such_container() {
    let e = engine().await;
    for id in ["0123456789abcdef0123", "../../images/json", "x?all=1"] {
        let err = e.env(id).await.unwrap_err();
        assert!(
            matches!(err, EngineError::NoSuchContainer(_)),
            "{id}: {err:?}"
        );
    }
}

#[tokio::test]
async fn another_projects_container_is_neither_listed_nor_touched() {
    let e = engine().await;
    let foreign = Foreign::with_own_volume();
    let before = foreign.state();
    assert!(before.ends_with("running"), "{before}");

    let all = e.containers().await.unwrap();
    assert!(
        all.iter()
            .all(|c| c.id != foreign.id && c.service != "intruder")
    );
    let vols = e.volumes().await.unwrap();
    assert!(
        vols.iter()
            .all(|v| Some(v.name.as_str()) != foreign.volume.as_deref())
    );

    let no_such = |r: Result<(), EngineError>, what: &str| match r {
        Err(EngineError::NoSuchContainer(_)) => {}
        other => panic!("{what} of a foreign container: {other:?}"),
    };
    no_such(
        e.restart(&foreign.id, Duration::from_secs(1)).await,
        "restart",
    );
    no_such(e.stop(&foreign.id, Duration::from_secs(1)).await, "stop");
    no_such(e.start(&foreign.id).await, "start");
    let argv = vec!["touch".to_string(), "/data/pwned".to_string()];
    assert!(matches!(
        e.exec(&foreign.id, &argv, Duration::from_secs(5)).await,
        Err(EngineError::NoSuchContainer(_))
    ));
    // By name and by short id too: references are resolved, then checked.
    let name = docker(&["inspect", "-f", "{{.Name}}", &foreign.id]);
    for r in [name.trim_start_matches('/'), &foreign.id[..12]] {
        assert!(
            matches!(e.env(r).await, Err(EngineError::NoSuchContainer(_))),
            "{r}"
        );
        let q = LogQuery {
            tail: 10,
            since: None,
            timestamps: false,
            max_bytes: usize::MAX,
        };
        assert!(
            matches!(e.logs(r, &q).await, Err(EngineError::NoSuchContainer(_))),
            "{r}"
        );
        assert!(
            matches!(e.stats(r).await, Err(EngineError::NoSuchContainer(_))),
            "{r}"
        );
    }

    assert_eq!(foreign.state(), before, "never restarted nor stopped");
    let pwned = Command::new("docker")
        .args(["exec", &foreign.id, "test", "-e", "/data/pwned"])
        .status()
        .unwrap();
    assert!(!pwned.success(), "the exec never ran");
}

#[tokio::test]
async fn a_project_container_can_be_named_by_its_name_or_short_id() {
    let e = engine().await;
    let w = service(&e, "worker-1").await;
    for r in [w.name.as_str(), &w.id[..12]] {
        let env = e.env(r).await.unwrap();
        assert!(
            env.iter()
                .any(|(k, v)| k == "WORKER_NAME" && v == "worker-1"),
            "{r}"
        );
    }
}

/// Slow (the daemon's /system/df takes ~45 s to 2 min here) and it keeps the daemon's
/// single disk-usage slot busy, so it is opt-in.
#[tokio::test]
#[ignore = "slow: runs /system/df (~1-3 min); run with --run-ignored"]
async fn disk_usage_is_read_on_api_1_41_and_bounded_by_its_deadline() {
    let e = engine()
        .await
        .with_disk_usage_deadline(Duration::from_secs(1));
    let started = Instant::now();
    let err = e.disk_usage().await.unwrap_err();
    assert!(matches!(err, EngineError::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // The daemon may still be busy with the abandoned computation: retry until it is idle,
    // which also leaves the machine as the test found it.
    let e = e.with_disk_usage_deadline(Duration::from_secs(180));
    let deadline = Instant::now() + Duration::from_secs(400);
    let usage = loop {
        match e.disk_usage().await {
            Ok(u) => break u,
            Err(EngineError::Other(m))
                if m.contains("already computing") && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    };
    assert!(
        usage.images_size > 100_000_000,
        "the platform image alone is ~590 MB: {usage:?}"
    );
    assert!(usage.volumes_size > 0, "postgres data: {usage:?}");
}
