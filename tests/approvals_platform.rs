//! Approvals and destructive operations against a live platform replica.
//!
//! The Compose project comes from `CONTAINER_OPS_TEST_PROJECT` (default `riftwing`, what CI
//! starts with `deploy/dev/platform up`); the Postgres store from `CONTAINER_OPS_TEST_STORE_URL`
//! (default: `deploy/dev/bot-store`). A platform that is not up fails these tests; it never
//! skips them. Effects are checked on the platform side (Docker, redis-cli, psql), not in the bot.

mod common;

use std::path::Path;
use std::process::Command as Proc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use container_ops::app::cli::{Cli, execute};
use container_ops::app::wire::load_config;
use container_ops::core::approvals::{ApprovalState, Approvals, INTERRUPTED};
use container_ops::core::audit::StoreAudit;
use container_ops::core::engine::Engine;
use container_ops::core::platform::PlatformConfig;
use container_ops::core::report::Report;
use container_ops::core::store::{AuditDecision, AuditQuery, Store};
use container_ops::core::types::{ChannelId, UserId};
use container_ops::infra::docker::DockerEngine;
use container_ops::infra::store::postgres::PostgresOptions;
use container_ops::infra::store::{PostgresStore, SqliteStore};
use container_ops::ops::diagnose::probes::s3::S3Probe;
use container_ops::pipeline::{Core, Invocation, LazyEngine};

use common::{Foreign, project};

const DEFAULT_PG_URL: &str = "postgres://app:container-ops-dev@127.0.0.1:55432/app";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The seed's port variables, so a side-by-side instance on shifted ports is reached.
const PORT_VARS: &[&str] = &[
    "POSTGRES_PORT",
    "REDIS_PORT",
    "MINIO_PORT",
    "TEMPORAL_PORT",
    "API_PORT",
    "AI_GATEWAY_PORT",
    "MCP_PORT",
    "CONSOLE_PORT",
];

/// The environment the bot sees in these tests: the project, and the port variables if set.
fn env_lookup(extra: Vec<(String, String)>) -> impl Fn(&str) -> Option<String> {
    let mut vars = vec![("CONTAINER_OPS_PROJECT".to_string(), project())];
    for k in PORT_VARS {
        if let Ok(v) = std::env::var(k) {
            vars.push((k.to_string(), v));
        }
    }
    vars.extend(extra);
    move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

/// Fails loudly unless every long-running service of the project is up.
async fn require_platform() -> Arc<dyn Engine> {
    let p = project();
    let engine = DockerEngine::connect(None, &p)
        .await
        .unwrap_or_else(|e| panic!("Docker is not reachable ({e}); these tests need the platform replica `{p}`: deploy/dev/platform up"));
    let cs = engine.containers().await.unwrap();
    let running = cs.iter().filter(|c| c.state == "running").count();
    assert!(
        running >= 13,
        "the platform replica `{p}` is not up ({running} running containers); start it with `deploy/dev/platform up` (COMPOSE_PROJECT_NAME={p})"
    );
    Arc::new(engine)
}

async fn core(store: Arc<dyn Store>) -> Core {
    std::env::set_current_dir(repo()).unwrap();
    let env = env_lookup(vec![]);
    let (settings, catalog, policy) = load_config(None, &env).unwrap();
    let p = settings.project.clone();
    let engine = LazyEngine::new(move || {
        let p = p.clone();
        Box::pin(async move {
            DockerEngine::connect(None, &p)
                .await
                .map(|e| Arc::new(e) as Arc<dyn Engine>)
        })
    });
    Core::new(
        settings,
        catalog,
        policy,
        engine,
        Arc::new(StoreAudit::new(store.clone())),
    )
    .with_store(store)
}

fn inv(who: &str, line: &str) -> Invocation {
    Invocation::from_line(
        UserId::parse(who).unwrap(),
        ChannelId::parse("console").unwrap(),
        line,
    )
}

fn pending_id(r: &Report) -> String {
    r.title
        .strip_prefix("Pending approval ")
        .and_then(|t| t.split(':').next())
        .unwrap_or_else(|| panic!("not a pending report: {}", r.title))
        .to_owned()
}

fn container_name(service: &str) -> String {
    let out = Proc::new("docker")
        .args([
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={}", project()),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no container of {service}"))
        .to_owned()
}

/// Runs a program in a service's container from the outside, as an operator would check.
fn docker_exec(service: &str, argv: &[&str]) -> String {
    let out = Proc::new("docker")
        .arg("exec")
        .arg(container_name(service))
        .args(argv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker exec {service} {argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn volume_created_at(name: &str) -> String {
    let out = Proc::new("docker")
        .args(["volume", "inspect", "-f", "{{.CreatedAt}}", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "volume {name} missing");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn platform_wait(secs: u32) {
    let status = Proc::new(repo().join("deploy/dev/platform"))
        .args(["wait", &secs.to_string()])
        .env("COMPOSE_PROJECT_NAME", project())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the platform did not become healthy again"
    );
}

async fn sqlite_store(dir: &Path) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(dir.join("state.db").to_str().unwrap())
            .await
            .unwrap(),
    )
}

async fn audit_of(store: &dyn Store, id: &str) -> Vec<(AuditDecision, String)> {
    let mut all = store
        .query_audit(&AuditQuery {
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    all.reverse();
    all.into_iter()
        .filter(|e| e.entry.result.contains(id) || e.entry.args.contains(id))
        .map(|e| (e.entry.decision, e.entry.result))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reset_of_redis_needs_another_approver_and_recreates_the_volume() {
    require_platform().await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let core = core(store.clone()).await;
    let volume = format!("{}_redis-data", project());
    docker_exec(
        "redis",
        &["redis-cli", "SET", "approvals-test-key", "before-reset"],
    );
    let created_before = volume_created_at(&volume);

    let r = core.run(inv("alice", "/reset redis")).await.unwrap().report;
    let id = pending_id(&r);
    let text = r.all_text();
    assert!(text.contains(&format!("volume:{volume}")), "{text}");
    let own = core
        .run(inv("alice", &format!("/approve {id}")))
        .await
        .unwrap_err();
    assert!(own.markdown().contains("own request"), "{}", own.markdown());
    assert_eq!(
        docker_exec("redis", &["redis-cli", "GET", "approvals-test-key"]).trim(),
        "before-reset",
        "nothing ran on a refused approval"
    );

    // Volume timestamps have one-second resolution.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ran = core
        .run(inv("bob", &format!("/approve {id}")))
        .await
        .unwrap_or_else(|e| panic!("{}", e.markdown()))
        .report;
    assert!(ran.title.contains("Reset `redis`"), "{}", ran.title);
    assert_ne!(volume_created_at(&volume), created_before, "a new volume");
    assert_eq!(
        docker_exec("redis", &["redis-cli", "GET", "approvals-test-key"]).trim(),
        "",
        "the key set before the reset is gone"
    );
    platform_wait(120);

    let decisions: Vec<AuditDecision> = audit_of(&*store, &id)
        .await
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    for want in [
        AuditDecision::Pending,
        AuditDecision::Refused,
        AuditDecision::Approved,
        AuditDecision::Executing,
        AuditDecision::Ran,
    ] {
        assert!(
            decisions.contains(&want),
            "{want} missing from {decisions:?}"
        );
    }
    let req = core.approvals().unwrap().get(&id).await.unwrap().unwrap();
    assert_eq!(req.state, ApprovalState::Succeeded);
}

fn flushall_calls() -> u64 {
    docker_exec("redis", &["redis-cli", "INFO", "commandstats"])
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_flushall:calls="))
        .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
        .unwrap_or(0)
}

async fn pg_store(url: &str, schema: &str) -> Arc<dyn Store> {
    Arc::new(
        PostgresStore::connect_with(
            url,
            PostgresOptions {
                schema: Some(schema.to_owned()),
                pool_size: 8,
                ..PostgresOptions::default()
            },
        )
        .await
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_approvals_from_two_replicas_run_flushall_once() {
    require_platform().await;
    let url = std::env::var("CONTAINER_OPS_TEST_STORE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_PG_URL.to_owned());
    let schema = format!("co_appr_{}", uuid::Uuid::new_v4().simple());
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("the bot store is unreachable ({e}); deploy/dev/bot-store up"));
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    // Two replicas: separate pools on the same database, as two bot processes would have.
    let a = core(pg_store(&url, &schema).await).await;
    let b = core(pg_store(&url, &schema).await).await;
    let id = pending_id(&a.run(inv("alice", "/flush-redis")).await.unwrap().report);
    let before = flushall_calls();

    let approvers = ["bob", "carol", "erin"];
    let calls = (0..200).map(|i| {
        let replica = if i % 2 == 0 { &a } else { &b };
        replica.run(inv(approvers[i % 3], &format!("/approve {id}")))
    });
    let results = futures::future::join_all(calls).await;
    let ran = results
        .iter()
        .filter(|r| {
            r.as_ref().is_ok_and(|r| {
                r.report
                    .title
                    .starts_with(&format!("Approved request {id} ran"))
            })
        })
        .count();
    assert_eq!(ran, 1, "exactly one approval call runs it");
    assert_eq!(
        flushall_calls(),
        before + 1,
        "Redis counted exactly one FLUSHALL"
    );
    let req = a.approvals().unwrap().get(&id).await.unwrap().unwrap();
    assert_eq!(req.state, ApprovalState::Succeeded);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// Runs one console line as a child process (this test binary in child mode), so it can be killed.
fn spawn_console(who: &str, line: &str, store_url: &str) -> std::process::Child {
    Proc::new(std::env::current_exe().unwrap())
        .args(["--exact", "console_child", "--ignored", "--nocapture"])
        .env("CHILD_AS", who)
        .env("CHILD_LINE", line)
        .env("CHILD_STORE_URL", store_url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Child mode of [`spawn_console`]; run only by it.
#[test]
#[ignore = "child process of the kill test"]
fn console_child() {
    let who = std::env::var("CHILD_AS").expect("run by spawn_console");
    let line = std::env::var("CHILD_LINE").unwrap();
    let env = env_lookup(vec![(
        "CONTAINER_OPS_STORE_URL".into(),
        std::env::var("CHILD_STORE_URL").unwrap(),
    )]);
    std::env::set_current_dir(repo()).unwrap();
    let cli = <Cli as clap::Parser>::try_parse_from([
        "container-ops",
        "console",
        "--as",
        &who,
        "--command",
        &line,
    ])
    .unwrap();
    let code = execute(cli, &env, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code.into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_killed_while_executing_leaves_the_request_failed_interrupted_and_never_reruns_it() {
    require_platform().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("state.db").display());
    let store = sqlite_store(dir.path()).await;
    let requester = core(store.clone()).await;
    let id = pending_id(
        &requester
            .run(inv("alice", "/reset redis"))
            .await
            .unwrap_or_else(|e| panic!("{}", e.markdown()))
            .report,
    );
    let mut child = spawn_console("bob", &format!("/approve {id}"), &url);
    let approvals = Approvals::new(store.clone());
    let started = Instant::now();
    loop {
        let state = approvals.get(&id).await.unwrap().unwrap().state;
        if state == ApprovalState::Executing {
            break;
        }
        assert!(
            !state.is_final() && started.elapsed() < Duration::from_secs(60),
            "never saw it executing (state {state})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        approvals.get(&id).await.unwrap().unwrap().state,
        ApprovalState::Executing,
        "killed before it could finish"
    );

    // The bot starts again (any command): start-up recovery marks it, and never re-runs it.
    let out = spawn_console("carol", "/pending", &url)
        .wait_with_output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let req = approvals.get(&id).await.unwrap().unwrap();
    assert_eq!(req.state, ApprovalState::Failed);
    let result = req.result.unwrap_or_default();
    assert!(
        result.starts_with(INTERRUPTED) && result.contains("stopped"),
        "{result}"
    );
    let again = requester
        .run(inv("carol", &format!("/approve {id}")))
        .await
        .unwrap_err();
    assert!(again.markdown().contains("failed"), "{}", again.markdown());
    let trail = audit_of(&*store, &id).await;
    let executions = trail
        .iter()
        .filter(|(d, _)| *d == AuditDecision::Executing)
        .count();
    assert_eq!(executions, 1, "{trail:?}");
    assert!(
        trail
            .iter()
            .any(|(d, t)| *d == AuditDecision::Failed && t.contains("interrupted")),
        "{trail:?}"
    );
    // The reset was cut off half-way; a person repairs it (here: Compose brings redis back).
    let up = Proc::new(repo().join("deploy/dev/platform"))
        .arg("up")
        .env("COMPOSE_PROJECT_NAME", project())
        .status()
        .unwrap();
    assert!(up.success());
    platform_wait(120);
}

fn psql(sql: &str) -> String {
    docker_exec(
        "postgres",
        &["psql", "-U", "postgres", "-d", "app", "-At", "-c", sql],
    )
}

/// Inserts a row with a fresh marker payload and returns the marker.
fn plant_row(prefix: &str) -> String {
    let marker = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    psql(&format!(
        "INSERT INTO tenant_records (tenant_id, payload) VALUES ('approvals-test', '{marker}')"
    ));
    assert_eq!(rows_with(&marker), "1");
    marker
}

fn rows_with(marker: &str) -> String {
    psql(&format!(
        "SELECT count(*) FROM tenant_records WHERE payload = '{marker}'"
    ))
    .trim()
    .to_owned()
}

/// The dump a report names as `/backups/<file>`, if any.
fn backup_named(text: &str) -> Option<String> {
    text.split_whitespace().find_map(|w| {
        w.trim_matches(|c: char| {
            !c.is_ascii_alphanumeric() && c != '_' && c != '.' && c != '-' && c != '/'
        })
        .strip_prefix("/backups/")
        .map(str::to_owned)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_reset_leaves_a_backup_that_restores_the_rows_from_before() {
    require_platform().await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let core = core(store.clone()).await;
    let marker = plant_row("before-reset-");

    let id = pending_id(
        &core
            .run(inv("alice", "/reset postgres"))
            .await
            .unwrap()
            .report,
    );
    let reset = core
        .run(inv("bob", &format!("/approve {id}")))
        .await
        .unwrap_or_else(|e| panic!("{}", e.markdown()))
        .report;
    let text = reset.all_text();
    let file =
        backup_named(&text).unwrap_or_else(|| panic!("the reset report names its backup: {text}"));
    platform_wait(180);
    assert_eq!(rows_with(&marker), "0", "the reset emptied the database");

    let id = pending_id(
        &core
            .run(inv("alice", &format!("/restore file:{file}")))
            .await
            .unwrap_or_else(|e| panic!("{}", e.markdown()))
            .report,
    );
    let restored = core
        .run(inv("carol", &format!("/approve {id}")))
        .await
        .unwrap_or_else(|e| panic!("{}", e.markdown()))
        .report;
    assert!(restored.title.contains("restored"), "{}", restored.title);
    assert_eq!(
        rows_with(&marker),
        "1",
        "the row from before the reset is back"
    );
    platform_wait(180);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_container_was_recreated_fails_closed_and_says_why() {
    require_platform().await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let core = core(store.clone()).await;
    let id = pending_id(&core.run(inv("alice", "/flush-redis")).await.unwrap().report);
    let old = container_name("redis");
    let recreated = Proc::new(repo().join("deploy/dev/platform"))
        .args([
            "compose",
            "up",
            "-d",
            "--no-deps",
            "--force-recreate",
            "redis",
        ])
        .env("COMPOSE_PROJECT_NAME", project())
        .status()
        .unwrap();
    assert!(recreated.success());
    assert_ne!(container_name("redis"), old, "redis has a new container");
    let before = flushall_calls();
    let e = core
        .run(inv("bob", &format!("/approve {id}")))
        .await
        .unwrap_err();
    let md = e.markdown();
    assert!(
        md.contains("failed closed") && md.contains("target changed") && md.contains(&old[..12]),
        "{md}"
    );
    assert_eq!(flushall_calls(), before, "FLUSHALL did not run");
    let req = core.approvals().unwrap().get(&id).await.unwrap().unwrap();
    assert_eq!(req.state, ApprovalState::Failed);
    platform_wait(120);
}

fn platform_config() -> PlatformConfig {
    container_ops::core::settings::load_platform(None, &|k| std::env::var(k).ok()).unwrap()
}

fn s3() -> S3Probe {
    S3Probe::new(
        platform_config().s3.as_ref().unwrap(),
        Duration::from_secs(10),
    )
}

async fn put_object(key: &str) {
    let s = s3();
    s.client()
        .put_object()
        .bucket(&platform_config().s3.unwrap().bucket)
        .key(key)
        .body(b"planted before a reset".to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    assert_eq!(s.stat(key).await.unwrap().status, 200, "{key} planted");
}

async fn object_status(key: &str) -> u16 {
    s3().stat(key).await.unwrap().status
}

/// Requests `line` as alice (an operator) and has bob (an approver) approve it.
async fn request_and_approve(core: &Core, line: &str) -> (Report, Report) {
    let pending = core
        .run(inv("alice", line))
        .await
        .unwrap_or_else(|e| panic!("{line}: {}", e.markdown()))
        .report;
    let id = pending_id(&pending);
    let ran = core
        .run(inv("bob", &format!("/approve {id}")))
        .await
        .unwrap_or_else(|e| panic!("approve {line}: {}", e.markdown()))
        .report;
    (pending, ran)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minio_reset_leaves_the_bucket_recreated_empty_by_its_init_job() {
    require_platform().await;
    let dir = tempfile::tempdir().unwrap();
    let core = core(sqlite_store(dir.path()).await).await;
    let key = format!("planted/{}", uuid::Uuid::new_v4().simple());
    put_object(&key).await;

    let (pending, ran) = request_and_approve(&core, "/reset minio").await;
    assert!(
        pending
            .all_text()
            .contains(&format!("volume:{}_minio-data", project())),
        "{}",
        pending.all_text()
    );
    let text = ran.all_text();
    assert!(
        ran.title.contains("Reset `minio`") && text.contains("`minio-init` exited 0"),
        "{text}"
    );
    assert_eq!(object_status(&key).await, 404, "the planted object is gone");
    assert_eq!(
        object_status(".keep").await,
        200,
        "minio-init created the bucket again"
    );
    platform_wait(180);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_backends_ends_a_long_running_query_and_the_platform_stays_healthy() {
    require_platform().await;
    let dir = tempfile::tempdir().unwrap();
    let core = core(sqlite_store(dir.path()).await).await;
    let pg = platform_config().postgres.unwrap();
    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host={} port={} user={} password={} dbname={}",
            pg.host,
            pg.port,
            pg.user,
            pg.password.expose(),
            pg.database
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("connect to the platform's Postgres: {e}"));
    tokio::spawn(conn);
    let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(600)").await });
    // The query is running before the request is made.
    let started = Instant::now();
    while psql("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600)'").trim()
        != "1"
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "pg_sleep never showed up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (_, ran) = request_and_approve(&core, "/terminate-backends").await;
    assert!(ran.title.contains("Terminated"), "{}", ran.title);
    let ended = tokio::time::timeout(Duration::from_secs(20), sleeper)
        .await
        .expect("the long query ended long before its 600 s")
        .unwrap();
    let err = ended.expect_err("the query was cut off, not finished");
    // 57P01 admin_shutdown: "terminating connection due to administrator command".
    assert!(
        err.code() == Some(&tokio_postgres::error::SqlState::ADMIN_SHUTDOWN) || err.is_closed(),
        "{err:?}"
    );
    assert_eq!(
        psql("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600)'").trim(),
        "0"
    );
    platform_wait(120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_terminate_marks_it_terminated_in_temporal_and_an_unknown_id_is_explained() {
    require_platform().await;
    let dir = tempfile::tempdir().unwrap();
    let core = core(sqlite_store(dir.path()).await).await;
    let listed = core
        .run(inv("alice", "/temporal"))
        .await
        .unwrap_or_else(|e| panic!("{}", e.markdown()))
        .report
        .all_text();
    let status_of = |text: &str, id: &str| {
        text.lines().find(|l| l.contains(id)).map(|l| {
            l.split_whitespace()
                .last()
                .unwrap_or("")
                .trim_matches('|')
                .trim()
                .to_owned()
        })
    };
    let id = (1..=5)
        .map(|i| format!("wf-{i:04}"))
        .find(|id| status_of(&listed, id).as_deref() == Some("Running"))
        .unwrap_or_else(|| panic!("no running workflow in the stand-in: {listed}"));

    let unknown = core
        .run(inv("alice", "/temporal-terminate workflow:wf-9999"))
        .await
        .unwrap_err()
        .markdown();
    assert!(
        unknown.contains("wf-9999") && unknown.contains("/temporal"),
        "{unknown}"
    );
    let bad = core
        .run(inv("alice", "/temporal-terminate workflow:../x"))
        .await
        .unwrap_err()
        .markdown();
    assert!(bad.contains("not a workflow id"), "{bad}");

    let (pending, ran) =
        request_and_approve(&core, &format!("/temporal-terminate workflow:{id}")).await;
    assert!(
        pending.all_text().contains(&format!("workflow:{id}")),
        "{}",
        pending.all_text()
    );
    assert!(
        ran.title.contains(&format!("Workflow `{id}` terminated")),
        "{}",
        ran.title
    );
    let after = core
        .run(inv("alice", "/temporal"))
        .await
        .unwrap()
        .report
        .all_text();
    assert_eq!(
        status_of(&after, &id).as_deref(),
        Some("Terminated"),
        "{after}"
    );
}

fn redis_get(key: &str) -> String {
    docker_exec("redis", &["redis-cli", "GET", key])
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_project_reset_empties_every_store_but_keeps_the_backup_that_restores_the_row() {
    require_platform().await;
    let dir = tempfile::tempdir().unwrap();
    let core = core(sqlite_store(dir.path()).await).await;
    let marker = plant_row("before-full-reset-");
    docker_exec("redis", &["redis-cli", "SET", &marker, "planted"]);
    let key = format!("planted/{marker}");
    put_object(&key).await;
    let backups = format!("{}_backups", project());
    // A local volume's CreatedAt follows its directory's mtime, so the kept volume is
    // recognised by a file planted in it, not by a timestamp.
    let kept_marker = format!("/backups/kept-{marker}");
    docker_exec("db-backup", &["touch", &kept_marker]);
    let pg_volume = format!("{}_postgres_data", project());
    let pg_created = volume_created_at(&pg_volume);
    // Volume timestamps have one-second resolution.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let (pending, ran) = request_and_approve(&core, "/reset-project").await;
    let asked = pending.all_text();
    assert!(
        asked.contains(&format!("kept-volume:{backups}"))
            && asked.contains(&format!("volume:{pg_volume}")),
        "the approver sees what goes and what stays: {asked}"
    );
    let text = ran.all_text();
    assert!(ran.title.contains("every service healthy again"), "{text}");
    let file = backup_named(&text).unwrap_or_else(|| panic!("the report names its backup: {text}"));
    platform_wait(180);

    assert_ne!(
        volume_created_at(&pg_volume),
        pg_created,
        "postgres got a new volume"
    );
    docker_exec("db-backup", &["test", "-f", &kept_marker]);
    assert_eq!(rows_with(&marker), "0", "the row is gone");
    assert_eq!(redis_get(&marker), "", "the Redis key is gone");
    assert_eq!(object_status(&key).await, 404, "the S3 object is gone");
    assert_eq!(object_status(".keep").await, 200, "minio-init ran again");
    docker_exec("db-backup", &["test", "-s", &format!("/backups/{file}")]);
    docker_exec("db-backup", &["rm", &kept_marker]);

    let (_, restored) = request_and_approve(&core, &format!("/restore file:{file}")).await;
    assert!(restored.title.contains("restored"), "{}", restored.title);
    assert_eq!(
        rows_with(&marker),
        "1",
        "the pre-reset backup restores the row"
    );
    platform_wait(180);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_reset_is_refused_when_another_projects_container_uses_one_of_its_volumes() {
    require_platform().await;
    let dir = tempfile::tempdir().unwrap();
    let core = core(sqlite_store(dir.path()).await).await;
    let volume = format!("{}_redis-data", project());
    // Another project's container with this project's Redis volume mounted.
    let foreign = Foreign::mounting(&volume);
    let before = volume_created_at(&volume);
    let refused = core.run(inv("alice", "/reset-project")).await;
    let md = refused.expect_err("refused at the request").markdown();
    assert!(
        md.contains(&volume) && md.contains(&foreign.name) && md.contains("Nothing was changed"),
        "{md}"
    );
    assert!(
        core.approvals()
            .unwrap()
            .pending()
            .await
            .unwrap()
            .is_empty(),
        "no request was made"
    );
    assert_eq!(volume_created_at(&volume), before);
}
