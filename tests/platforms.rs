//! The same pipeline tests on two platform files: the seed's (`deploy/platform.toml`) and one whose every name differs (`tests/fixtures/other-platform/`).
//!
//! What the destructive operations and the diagnosis act on comes from the platform file
//! alone, so each test reads the names it expects from the file it runs on, never from a
//! literal: the database's service and user, the backup service and script, the dump
//! directory and name, what a restore stops, what a reset re-runs, what a full reset keeps.
//! On the second platform every reply and audit entry is also checked for the seed's names.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use container_ops::core::audit::StoreAudit;
use container_ops::core::catalog::Catalog;
use container_ops::core::engine::ExecOutput;
use container_ops::core::platform::PlatformConfig;
use container_ops::core::policy::Policy;
use container_ops::core::report::Report;
use container_ops::core::settings::{DEFAULT_SETTINGS, Settings};
use container_ops::core::store::{AuditQuery, Store};
use container_ops::core::types::{ChannelId, UserId};
use container_ops::infra::fake::{FakeEngine, container_in};
use container_ops::infra::store::SqliteStore;
use container_ops::pipeline::{Core, Invocation, LazyEngine};

/// Names of the seed's platform that must never reach the second platform's replies.
const SEED_NAMES: &[&str] = &[
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

/// One platform under test: its files, and who asks for and approves destructive commands.
#[derive(Clone)]
struct Platform {
    settings: Settings,
    cfg: PlatformConfig,
    requester: &'static str,
    approver: &'static str,
    /// The second platform: no seed name may appear in what the bot says or records.
    foreign: bool,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The seed's platform: the embedded settings and `deploy/platform.toml`, as shipped.
fn seed() -> Platform {
    let settings = Settings::parse(Path::new("default"), DEFAULT_SETTINGS).unwrap();
    Platform {
        cfg: PlatformConfig::load(&root().join("deploy/platform.toml")).unwrap(),
        settings,
        requester: "erin",
        approver: "bob",
        foreign: false,
    }
}

/// The second platform: its own settings, team and platform file.
fn other() -> Platform {
    let dir = root().join("tests/fixtures/other-platform");
    let path = dir.join("container-ops.toml");
    let settings = Settings::parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
    Platform {
        cfg: PlatformConfig::load(&dir.join("platform.toml")).unwrap(),
        settings,
        requester: "ana",
        approver: "ben",
        foreign: true,
    }
}

impl Platform {
    fn project(&self) -> &str {
        &self.settings.project
    }

    fn container(&self, service: &str) -> String {
        format!("{}-{service}-1", self.project())
    }

    fn volume(&self, name: &str) -> String {
        format!("{}_{name}", self.project())
    }

    fn db(&self) -> &container_ops::core::platform::PostgresTarget {
        self.cfg.postgres.as_ref().expect("[postgres]")
    }

    fn backup(&self) -> &container_ops::core::platform::BackupConfig {
        self.cfg.backup.as_ref().expect("[backup]")
    }

    /// The dump volume, by its Compose name: the one a full reset keeps.
    fn dumps(&self) -> &str {
        &self.cfg.project_reset.keep_volumes[0]
    }

    /// A dump the backup script "writes".
    fn fresh_dump(&self) -> String {
        let b = self.backup();
        format!("{}/{}2026-12-05{}", b.dir, b.file_prefix, b.file_suffix)
    }

    /// The project as the Engine shows it: every service running, every init job done, each
    /// resettable service on a volume of its own, the database sharing the dump volume with
    /// the backup service.
    fn engine(&self) -> Arc<FakeEngine> {
        let services: Vec<String> = self.cfg.long_running().into_iter().collect();
        let names: Vec<&str> = services.iter().map(String::as_str).collect();
        let f = FakeEngine::project(self.project(), &names);
        for job in &self.cfg.one_shot {
            f.add(container_in(self.project(), job, "exited"));
        }
        for s in &services {
            f.update(s, |c| c.volumes.clear());
        }
        for s in self.cfg.reset.keys() {
            let v = self.volume(&format!("{s}-data"));
            f.update(s, |c| c.volumes = vec![v]);
        }
        let dumps = self.volume(self.dumps());
        f.update(&self.db().service, |c| c.volumes.push(dumps.clone()));
        f.update(&self.backup().service, |c| c.volumes = vec![dumps.clone()]);
        let mut volumes: Vec<(String, String)> = self
            .cfg
            .reset
            .keys()
            .map(|s| (self.volume(&format!("{s}-data")), format!("{s}-data")))
            .collect();
        volumes.push((dumps, self.dumps().to_owned()));
        let pairs: Vec<(&str, &str)> = volumes
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        f.set_volumes(&pairs);
        let b = self.backup();
        f.script_exec(
            &b.script[0],
            ExecOutput {
                exit_code: Some(0),
                stdout: format!(
                    "dumping\n{}{} (4 MB)\n",
                    b.written_prefix,
                    self.fresh_dump()
                ),
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

    async fn core(&self, fake: Arc<FakeEngine>) -> (Core, Arc<dyn Store>) {
        let mut settings = self.settings.clone();
        settings.platform = self.cfg.clone();
        let groups = settings.groups.keys().cloned().collect();
        let catalog = Catalog::load_dir(&root().join(&settings.commands_dir), &groups).unwrap();
        let policy = Policy::load_dir(&root().join(&settings.permissions_dir)).unwrap();
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

    fn clean(&self, what: &str, text: &str) {
        if !self.foreign {
            return;
        }
        for name in SEED_NAMES {
            assert!(
                !text.contains(name),
                "{what} names `{name}`, a name of another platform:\n{text}"
            );
        }
    }

    async fn run(&self, core: &Core, who: &str, line: &str) -> Report {
        let r = core
            .run(inv(who, line))
            .await
            .unwrap_or_else(|e| panic!("{line}: {}", e.markdown()))
            .report;
        self.clean(line, &r.all_text());
        r
    }

    async fn refused(&self, core: &Core, line: &str) -> String {
        let e = core
            .run(inv(self.requester, line))
            .await
            .err()
            .unwrap_or_else(|| panic!("{line} was not refused"));
        let md = e.markdown();
        self.clean(line, &md);
        md
    }

    /// Requests `line`, has the approver approve it, and returns the report of the run.
    async fn approved(&self, core: &Core, line: &str) -> Report {
        let pending = self.run(core, self.requester, line).await;
        let id = pending
            .title
            .strip_prefix("Pending approval ")
            .and_then(|t| t.split(':').next())
            .unwrap_or_else(|| panic!("{line} did not wait for approval: {}", pending.title))
            .to_owned();
        self.run(core, self.approver, &format!("/approve {id}"))
            .await
    }

    async fn audit_is_clean(&self, store: &Arc<dyn Store>) {
        let q = AuditQuery {
            limit: 200,
            ..Default::default()
        };
        let entries = store.query_audit(&q).await.unwrap();
        assert!(!entries.is_empty());
        for e in entries {
            let text = format!(
                "{} {} {} {:?}",
                e.entry.command, e.entry.args, e.entry.result, e.entry.target
            );
            self.clean("an audit entry", &text);
        }
    }
}

fn inv(who: &str, line: &str) -> Invocation {
    Invocation::from_line(
        UserId::parse(who).unwrap(),
        ChannelId::parse("console").unwrap(),
        line,
    )
}

/// Runs a test body once per platform file, as two tests named after it.
macro_rules! on_both_platforms {
    ($($name:ident),* $(,)?) => {
        mod seed_platform {
            $(#[tokio::test]
            async fn $name() {
                super::$name(&super::seed()).await
            })*
        }
        mod other_platform {
            $(#[tokio::test]
            async fn $name() {
                super::$name(&super::other()).await
            })*
        }
    };
}

on_both_platforms!(
    a_database_reset_backs_up_with_the_platforms_tool_and_reruns_its_own_init_job,
    resettable_services_are_the_ones_the_platform_file_names,
    a_restore_stops_the_platforms_writers_and_restores_its_database_from_its_dump_dir,
    terminate_backends_and_flush_act_on_the_configured_database_and_cache,
    a_project_reset_keeps_the_volumes_the_platform_file_keeps,
    a_stopped_database_is_diagnosed_with_the_platforms_own_names,
);

async fn a_database_reset_backs_up_with_the_platforms_tool_and_reruns_its_own_init_job(
    p: &Platform,
) {
    let fake = p.engine();
    let (core, store) = p.core(fake.clone()).await;
    let db = &p.db().service;
    let r = p.approved(&core, &format!("/reset {db}")).await;
    assert!(r.title.contains(&format!("Reset `{db}`")), "{}", r.title);
    assert!(r.all_text().contains(&p.fresh_dump()), "{}", r.all_text());
    let init = p.cfg.reset[db.as_str()]
        .init_job
        .as_deref()
        .expect("an init job");
    assert_eq!(
        fake.calls(),
        [
            format!(
                "exec {} {}",
                p.container(&p.backup().service),
                p.backup().script.join(" ")
            ),
            format!(
                "exec {} test -s {}",
                p.container(&p.backup().service),
                p.fresh_dump()
            ),
            format!(
                "recreate {} {}",
                p.container(db),
                p.volume(&format!("{db}-data"))
            ),
            format!("run {}", p.container(init)),
        ],
        "the dump volume it shares with the backup service is kept"
    );
    p.audit_is_clean(&store).await;
}

async fn resettable_services_are_the_ones_the_platform_file_names(p: &Platform) {
    let fake = p.engine();
    let (core, _) = p.core(fake.clone()).await;
    let (plain, _) = p
        .cfg
        .reset
        .iter()
        .find(|(_, r)| r.init_job.is_none() && !r.backup_first)
        .expect("a service reset with nothing before or after");
    p.approved(&core, &format!("/reset {plain}")).await;
    assert_eq!(
        fake.calls(),
        [format!(
            "recreate {} {}",
            p.container(plain),
            p.volume(&format!("{plain}-data"))
        )]
    );
    let writer = &p.cfg.restore.as_ref().unwrap().stop_services[0];
    let md = p.refused(&core, &format!("/reset {writer}")).await;
    let resettable: Vec<String> = p.cfg.reset.keys().map(|s| format!("`{s}`")).collect();
    assert!(
        md.contains(&format!(
            "`{writer}` cannot be reset; resettable: {}",
            resettable.join(", ")
        )),
        "{md}"
    );
}

async fn a_restore_stops_the_platforms_writers_and_restores_its_database_from_its_dump_dir(
    p: &Platform,
) {
    let fake = p.engine();
    let (core, store) = p.core(fake.clone()).await;
    let b = p.backup();
    let md = p.refused(&core, "/restore file:nightly.sql").await;
    assert!(
        md.contains(&format!(
            "{}2026-11-30_04-00-00{}",
            b.file_prefix, b.file_suffix
        )) && md.contains(&b.dir),
        "{md}"
    );
    let file = format!("{}2026-12-01{}", b.file_prefix, b.file_suffix);
    let path = format!("{}/{file}", b.dir);
    let r = p.approved(&core, &format!("/restore file:{file}")).await;
    assert!(r.title.contains(&path), "{}", r.title);
    let calls = fake.calls();
    assert_eq!(
        calls[0],
        format!("exec {} {}", p.container(&b.service), b.script.join(" "))
    );
    let restore = calls
        .iter()
        .find(|c| c.contains("pg_restore"))
        .expect("pg_restore ran");
    let db = p.db();
    assert!(
        restore.starts_with(&format!(
            "exec {} pg_restore -U {} -d {} ",
            p.container(&db.service),
            db.admin_user,
            db.app_database()
        )) && restore.ends_with(&format!(" {path}")),
        "{restore}"
    );
    let writers: BTreeSet<&String> = p
        .cfg
        .restore
        .as_ref()
        .unwrap()
        .stop_services
        .iter()
        .collect();
    for s in &writers {
        assert!(
            calls.contains(&format!("stop {}", p.container(s))),
            "{calls:?}"
        );
        assert!(
            calls.contains(&format!("start {}", p.container(s))),
            "{calls:?}"
        );
    }
    let stopped = calls.iter().filter(|c| c.starts_with("stop ")).count();
    assert_eq!(
        stopped,
        writers.len(),
        "only the configured writers stop: {calls:?}"
    );
    p.audit_is_clean(&store).await;
}

async fn terminate_backends_and_flush_act_on_the_configured_database_and_cache(p: &Platform) {
    let fake = p.engine();
    let (core, _) = p.core(fake.clone()).await;
    let db = p.db();
    let r = p.approved(&core, "/terminate-backends").await;
    assert!(
        r.title.contains(&format!("of `{}`", db.app_database())),
        "{}",
        r.title
    );
    p.approved(&core, "/flush-redis").await;
    let calls = fake.calls();
    assert!(
        calls[0].starts_with(&format!(
            "exec {} psql -U {} -d {} -At -c ",
            p.container(&db.service),
            db.admin_user,
            db.app_database()
        )) && calls[0].contains("current_database()"),
        "{calls:?}"
    );
    let cache = &p.cfg.redis.as_ref().unwrap().service;
    assert_eq!(
        calls[1],
        format!("exec {} redis-cli FLUSHALL", p.container(cache))
    );
}

async fn a_project_reset_keeps_the_volumes_the_platform_file_keeps(p: &Platform) {
    let fake = p.engine();
    let (core, store) = p.core(fake.clone()).await;
    let r = p.approved(&core, "/reset-project").await;
    assert!(r.all_text().contains(&p.fresh_dump()), "{}", r.all_text());
    let calls = fake.calls();
    assert_eq!(
        calls[0],
        format!(
            "exec {} {}",
            p.container(&p.backup().service),
            p.backup().script.join(" ")
        )
    );
    let renewed: Vec<String> = p
        .cfg
        .reset
        .keys()
        .map(|s| p.volume(&format!("{s}-data")))
        .collect();
    assert!(
        calls.contains(&format!("reset-volumes {}", renewed.join(","))),
        "everything but {} is renewed: {calls:?}",
        p.dumps()
    );
    for job in &p.cfg.one_shot {
        assert!(
            calls.contains(&format!("run {}", p.container(job))),
            "{calls:?}"
        );
    }
    p.audit_is_clean(&store).await;
}

async fn a_stopped_database_is_diagnosed_with_the_platforms_own_names(p: &Platform) {
    let fake = p.engine();
    let db = p.db();
    fake.update(&db.service, |c| {
        c.state = "exited".into();
        c.health = None;
        c.exit_code = Some(0);
    });
    // Nothing answers on port 1: the dependencies are unreachable from here on both
    // platforms (the seed's replica may be up beside the test), and the Engine says why.
    let mut cfg = p.cfg.clone();
    cfg.deadlines = container_ops::core::platform::Deadlines::all(1000);
    if let Some(pg) = &mut cfg.postgres {
        pg.port = 1;
    }
    if let Some(r) = &mut cfg.redis {
        r.url = "redis://127.0.0.1:1".into();
    }
    if let Some(s3) = &mut cfg.s3 {
        s3.endpoint = "http://127.0.0.1:1".into();
    }
    if let Some(t) = &mut cfg.temporal {
        t.url = "http://127.0.0.1:1".into();
    }
    for h in &mut cfg.http {
        h.url = "http://127.0.0.1:1/".into();
    }
    let p = Platform { cfg, ..p.clone() };
    let (core, _) = p.core(fake).await;
    let r = p.run(&core, p.approver, "/diagnose").await;
    let text = r.all_text();
    assert!(
        text.contains(&format!("/start service:{}", db.service)),
        "{text}"
    );
    assert!(
        text.contains(&format!("pg_isready -U {} -d {}", db.user, db.database)),
        "{text}"
    );
}

#[test]
fn both_platform_files_differ_in_every_name_the_tests_read() {
    let (a, b) = (seed(), other());
    assert_ne!(a.project(), b.project());
    assert_ne!(a.db().service, b.db().service);
    assert_ne!(a.db().app_database(), b.db().app_database());
    assert_ne!(a.backup().service, b.backup().service);
    assert_ne!(a.backup().script, b.backup().script);
    assert_ne!(a.backup().dir, b.backup().dir);
    assert_ne!(a.dumps(), b.dumps());
    let keys = |p: &Platform| p.cfg.reset.keys().cloned().collect::<BTreeSet<_>>();
    assert!(keys(&a).is_disjoint(&keys(&b)));
}
