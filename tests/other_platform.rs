//! The bot on a second platform whose every name differs from riftwing's: what its operations act on comes from the platform file alone.
//!
//! `tests/fixtures/other-platform/` holds the platform file (database `orders` in service
//! `ledger`, backups by `dumper` into `/srv/dumps`, …), its settings and its team. Each test
//! runs commands through the whole pipeline on an in-memory project with those services and
//! checks what reached the Engine and what the reports say; `no_riftwing_name` fails on any
//! name of the seed's platform in a reply or an audit entry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use container_ops::core::audit::StoreAudit;
use container_ops::core::catalog::Catalog;
use container_ops::core::engine::ExecOutput;
use container_ops::core::platform::PlatformConfig;
use container_ops::core::policy::Policy;
use container_ops::core::report::Report;
use container_ops::core::settings::Settings;
use container_ops::core::store::{AuditQuery, Store};
use container_ops::core::types::{ChannelId, UserId};
use container_ops::infra::fake::{FakeEngine, container_in};
use container_ops::infra::store::SqliteStore;
use container_ops::pipeline::{Core, Invocation, LazyEngine};

const PROJECT: &str = "tradepost";
const LONG_RUNNING: &[&str] = &[
    "ledger", "kv", "blobs", "shop-a", "shop-b", "front", "cron", "dumper",
];
const ONE_SHOT: &[&str] = &["blobs-setup", "orders-migrate"];
/// Names of the seed's platform that must never reach this platform's replies.
const RIFTWING_NAMES: &[&str] = &[
    "riftwing",
    "rewst",
    "api-1",
    "api-2",
    "worker-1",
    "db-backup",
    "minio",
    "backup.sh",
    "/backups",
    "backup_",
    "ai-gateway",
    "`app`",
];

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/other-platform")
        .join(p)
}

fn platform() -> PlatformConfig {
    PlatformConfig::load(&fixture("platform.toml")).expect("the second platform file")
}

/// The project: every service running, the init jobs done, each stateful service on a volume
/// of its own, the database sharing the dump volume with the backup service.
fn project() -> Arc<FakeEngine> {
    let f = FakeEngine::project(PROJECT, LONG_RUNNING);
    for job in ONE_SHOT {
        f.add(container_in(PROJECT, job, "exited"));
    }
    let vol = |s: &str, v: &[&str]| {
        let v: Vec<String> = v.iter().map(|v| format!("{PROJECT}_{v}")).collect();
        f.update(s, |c| c.volumes = v);
    };
    vol("ledger", &["ledger-data", "dumps"]);
    vol("dumper", &["dumps"]);
    vol("kv", &["kv-data"]);
    vol("blobs", &["blobs-data"]);
    f.script_exec(
        "/opt/dump/run",
        ExecOutput {
            exit_code: Some(0),
            stdout: "dumping orders\ndump saved to /srv/dumps/orders-2026-12-05.pgdump (4 MB)\n"
                .into(),
            stderr: String::new(),
        },
    );
    f.script_exec(
        "redis-cli",
        ExecOutput {
            exit_code: Some(0),
            stdout: "OK\n".into(),
            stderr: String::new(),
        },
    );
    Arc::new(f)
}

async fn core(fake: Arc<FakeEngine>) -> (Core, Arc<dyn Store>) {
    let text = std::fs::read_to_string(fixture("container-ops.toml")).unwrap();
    let mut settings = Settings::parse(&fixture("container-ops.toml"), &text).unwrap();
    settings.platform = platform();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let groups = settings.groups.keys().cloned().collect();
    let catalog = Catalog::load_dir(&root.join(&settings.commands_dir), &groups).unwrap();
    let policy = Policy::load_dir(&root.join(&settings.permissions_dir)).unwrap();
    policy.check_catalog(&catalog).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(":memory:").await.unwrap());
    let core = Core::new(
        settings,
        catalog,
        policy,
        LazyEngine::ready(fake),
        Arc::new(StoreAudit::new(store.clone())),
    )
    .with_store(store.clone());
    (core, store)
}

fn inv(who: &str, line: &str) -> Invocation {
    Invocation::from_line(
        UserId::parse(who).unwrap(),
        ChannelId::parse("console").unwrap(),
        line,
    )
}

fn no_riftwing_name(what: &str, text: &str) {
    for name in RIFTWING_NAMES {
        assert!(
            !text.contains(name),
            "{what} names `{name}`, a name of another platform:\n{text}"
        );
    }
}

async fn run(core: &Core, who: &str, line: &str) -> Report {
    let r = core
        .run(inv(who, line))
        .await
        .unwrap_or_else(|e| panic!("{line}: {}", e.markdown()))
        .report;
    no_riftwing_name(line, &r.all_text());
    r
}

async fn refused(core: &Core, who: &str, line: &str) -> String {
    let e = core
        .run(inv(who, line))
        .await
        .err()
        .unwrap_or_else(|| panic!("{line} was not refused"));
    let md = e.markdown();
    no_riftwing_name(line, &md);
    md
}

/// Requests `line` as ana, approves it as ben, and returns the report of the run.
async fn approved(core: &Core, line: &str) -> Report {
    let pending = run(core, "ana", line).await;
    let id = pending
        .title
        .strip_prefix("Pending approval ")
        .and_then(|t| t.split(':').next())
        .unwrap_or_else(|| panic!("{line} did not wait for approval: {}", pending.title))
        .to_owned();
    run(core, "ben", &format!("/approve {id}")).await
}

async fn audit_is_clean(store: &Arc<dyn Store>) {
    let entries = store
        .query_audit(&AuditQuery {
            limit: 200,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!entries.is_empty());
    for e in entries {
        no_riftwing_name(
            "an audit entry",
            &format!(
                "{} {} {} {:?}",
                e.entry.command, e.entry.args, e.entry.result, e.entry.target
            ),
        );
    }
}

#[tokio::test]
async fn a_database_reset_backs_up_with_the_platforms_tool_and_reruns_its_own_init_job() {
    let fake = project();
    let (core, store) = core(fake.clone()).await;
    let r = approved(&core, "/reset ledger").await;
    assert!(r.title.contains("Reset `ledger`"), "{}", r.title);
    assert!(
        r.all_text().contains("/srv/dumps/orders-2026-12-05.pgdump"),
        "{}",
        r.all_text()
    );
    assert_eq!(
        fake.calls(),
        [
            "exec tradepost-dumper-1 /opt/dump/run --full",
            "recreate tradepost-ledger-1 tradepost_ledger-data",
            "run tradepost-orders-migrate-1",
        ],
        "the dump volume it shares with the backup service is kept"
    );
    audit_is_clean(&store).await;
}

#[tokio::test]
async fn resettable_services_are_the_ones_the_platform_file_names() {
    let fake = project();
    let (core, _) = core(fake.clone()).await;
    approved(&core, "/reset kv").await;
    assert_eq!(fake.calls(), ["recreate tradepost-kv-1 tradepost_kv-data"]);
    let md = refused(&core, "ana", "/reset shop-a").await;
    assert!(
        md.contains("`shop-a` cannot be reset; resettable: `blobs`, `kv`, `ledger`"),
        "{md}"
    );
}

#[tokio::test]
async fn a_restore_stops_the_platforms_writers_and_restores_its_database_from_its_dump_dir() {
    let fake = project();
    let (core, store) = core(fake.clone()).await;
    let md = refused(&core, "ana", "/restore file:nightly.sql").await;
    assert!(
        md.contains("orders-2026-11-30_04-00-00.pgdump") && md.contains("/srv/dumps"),
        "{md}"
    );
    let r = approved(&core, "/restore file:orders-2026-12-01.pgdump").await;
    assert!(
        r.title.contains("/srv/dumps/orders-2026-12-01.pgdump"),
        "{}",
        r.title
    );
    let calls = fake.calls();
    assert_eq!(calls[0], "exec tradepost-dumper-1 /opt/dump/run --full");
    let restore = calls
        .iter()
        .find(|c| c.contains("pg_restore"))
        .expect("pg_restore ran");
    assert!(
        restore.starts_with("exec tradepost-ledger-1 pg_restore -U dba -d orders ")
            && restore.ends_with(" /srv/dumps/orders-2026-12-01.pgdump"),
        "{restore}"
    );
    for s in ["shop-a", "shop-b", "cron"] {
        assert!(
            calls.contains(&format!("stop tradepost-{s}-1")),
            "{calls:?}"
        );
        assert!(
            calls.contains(&format!("start tradepost-{s}-1")),
            "{calls:?}"
        );
    }
    assert!(
        !calls.iter().any(|c| c.contains("front")),
        "only the configured writers stop: {calls:?}"
    );
    audit_is_clean(&store).await;
}

#[tokio::test]
async fn terminate_backends_and_flush_act_on_the_configured_database_and_cache() {
    let fake = project();
    let (core, _) = core(fake.clone()).await;
    let r = approved(&core, "/terminate-backends").await;
    assert!(r.title.contains("of `orders`"), "{}", r.title);
    approved(&core, "/flush-redis").await;
    let calls = fake.calls();
    assert!(
        calls[0].starts_with("exec tradepost-ledger-1 psql -U dba -d orders -At -c ")
            && calls[0].contains("current_database()"),
        "{calls:?}"
    );
    assert_eq!(calls[1], "exec tradepost-kv-1 redis-cli FLUSHALL");
}

#[tokio::test]
async fn a_project_reset_keeps_the_volumes_the_platform_file_keeps() {
    let fake = project();
    fake.set_volumes(&[
        ("tradepost_ledger-data", "ledger-data"),
        ("tradepost_dumps", "dumps"),
        ("tradepost_kv-data", "kv-data"),
        ("tradepost_blobs-data", "blobs-data"),
    ]);
    let (core, store) = core(fake.clone()).await;
    let r = approved(&core, "/reset-project").await;
    let text = r.all_text();
    assert!(text.contains("orders-2026-12-05.pgdump"), "{text}");
    let calls = fake.calls();
    assert_eq!(calls[0], "exec tradepost-dumper-1 /opt/dump/run --full");
    assert!(
        calls.contains(
            &"reset-volumes tradepost_blobs-data,tradepost_kv-data,tradepost_ledger-data"
                .to_owned()
        ),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"run tradepost-orders-migrate-1".to_owned()),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"run tradepost-blobs-setup-1".to_owned()),
        "{calls:?}"
    );
    audit_is_clean(&store).await;
}

#[tokio::test]
async fn a_stopped_database_is_diagnosed_with_the_platforms_own_names() {
    let fake = project();
    fake.update("ledger", |c| {
        c.state = "exited".into();
        c.health = None;
        c.exit_code = Some(0);
    });
    let (core, _) = core(fake).await;
    let r = run(&core, "ben", "/diagnose").await;
    let text = r.all_text();
    assert!(text.contains("/start service:ledger"), "{text}");
    assert!(text.contains("pg_isready -U svc -d orders"), "{text}");
}
