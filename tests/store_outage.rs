//! The bot's Postgres store goes down and comes back: read-only commands keep answering, destructive
//! ones are refused, and every audit entry reaches the log in order once it is back.
//!
//! Runs the real binary (`container-ops console --command …`, one process per line, as an
//! operator would) against the platform replica (`CONTAINER_OPS_TEST_PROJECT`, default
//! `riftwing`) and a disposable Postgres of its own, started and removed through
//! `deploy/dev/bot-store` under another name, volume and port. The platform is only read:
//! the one destructive command must be refused, which is checked on Redis itself.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::TestPlatform;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A Postgres of this test's own, removed with its volume however the test ends.
struct OwnStore {
    name: String,
    port: u16,
    url: String,
}

impl OwnStore {
    fn start() -> Self {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        // A port the kernel just handed out is free unless someone takes it in between.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = Self {
            name: format!("container-ops-outage-{tag}"),
            port,
            url: String::new(),
        };
        s.script("up");
        s.url = String::from_utf8(s.script("url").stdout)
            .unwrap()
            .trim()
            .to_owned();
        s
    }

    /// `deploy/dev/bot-store VERB` for this store's name, volume and port.
    fn command(&self, verb: &str) -> Command {
        let mut c = Command::new(repo().join("deploy/dev/bot-store"));
        c.arg(verb)
            .env("CONTAINER_OPS_STORE_NAME", &self.name)
            .env("CONTAINER_OPS_STORE_VOLUME", format!("{}-data", self.name))
            .env("CONTAINER_OPS_STORE_PORT", self.port.to_string());
        c
    }

    fn script(&self, verb: &str) -> Output {
        let out = self.command(verb).output().expect("deploy/dev/bot-store");
        assert!(
            out.status.success(),
            "bot-store {verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for OwnStore {
    fn drop(&mut self) {
        // Container and volume go whatever happened; a failure here is not worth a panic in drop.
        let _ = self.command("reset").output();
    }
}

struct Bot {
    project: String,
    store_url: String,
    data_dir: PathBuf,
}

struct Reply {
    code: i32,
    out: String,
    err: String,
}

impl Bot {
    /// One process of the binary with these arguments, in the repository, on this bot's store.
    fn cli(&self, args: &[&str]) -> Reply {
        let out = Command::new(env!("CARGO_BIN_EXE_container-ops"))
            .args(args)
            .current_dir(repo())
            .env("CONTAINER_OPS_PROJECT", &self.project)
            .env("CONTAINER_OPS_STORE_URL", &self.store_url)
            .env("CONTAINER_OPS_DATA_DIR", &self.data_dir)
            .env_remove("CONTAINER_OPS_AUDIT_SPILL")
            .output()
            .expect("the container-ops binary");
        Reply {
            code: out.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// One console process running one line, as `who`.
    fn run(&self, who: &str, line: &str) -> Reply {
        let r = self.cli(&["console", "--as", who, "--command", line]);
        println!(
            "$ {who}: {line} → {}\n{}\n{}",
            r.code,
            r.out.trim_end(),
            r.err.trim_end()
        );
        r
    }

    fn verify(&self) -> Reply {
        self.cli(&["audit", "verify"])
    }

    fn spill(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("audit-spill.jsonl")).unwrap_or_default()
    }
}

/// (actor, command, decision) of every audit entry, in chain order, read with psql in the store's container.
fn audit_rows(store: &OwnStore) -> Vec<(String, String, String)> {
    let out = Command::new("docker")
        .args([
            "exec",
            "-e",
            "PGPASSWORD=container-ops-dev",
            &store.name,
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "app",
            "-d",
            "app",
            "-At",
            "-F",
            "|",
            "-c",
            "SELECT actor, command, decision FROM audit_log ORDER BY id",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('|').map(str::to_owned);
            Some((f.next()?, f.next()?, f.next()?))
        })
        .collect()
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What a reset of Redis would change: its container and start, the volume's creation, FLUSHALL
/// calls. Read only: the platform may be shared.
fn redis_fingerprint(project: &str) -> (String, String, String, String) {
    let id = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        "label=com.docker.compose.service=redis",
    ]);
    assert!(!id.is_empty(), "redis of `{project}` is not running");
    let volume = docker(&[
        "volume",
        "inspect",
        "-f",
        "{{.CreatedAt}}",
        &format!("{project}_redis-data"),
    ]);
    let started = docker(&["inspect", "-f", "{{.State.StartedAt}}", &id]);
    let flushes = docker(&["exec", &id, "redis-cli", "INFO", "commandstats"])
        .lines()
        .find(|l| l.starts_with("cmdstat_flushall:"))
        .map(|l| l.split(',').next().unwrap_or("").to_owned())
        .unwrap_or_default();
    (id, started, volume, flushes)
}

fn triples(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(a, c, d)| (a.to_string(), c.to_string(), d.to_string()))
        .collect()
}

#[test]
fn with_the_store_down_reads_answer_destructive_commands_are_refused_and_no_audit_entry_is_lost() {
    let platform = TestPlatform::get();
    let store = OwnStore::start();
    let dir = tempfile::tempdir().unwrap();
    let bot = Bot {
        project: platform.project.clone(),
        store_url: store.url.clone(),
        data_dir: dir.path().to_owned(),
    };

    let up = bot.run("alice", "/status");
    assert_eq!(up.code, 0, "{}", up.out);
    assert!(!up.out.contains("unreachable"), "{}", up.out);

    store.script("stop");
    let status = bot.run("alice", "/status");
    assert_eq!(status.code, 0, "read-only still answers: {}", status.out);
    assert!(
        status.out.contains("redis") && status.out.contains("api-1"),
        "{}",
        status.out
    );
    assert!(
        status
            .out
            .contains("audit store unreachable: 1 entry kept in"),
        "{}",
        status.out
    );
    assert!(
        status.err.contains("store is unreachable"),
        "{}",
        status.err
    );

    let before = redis_fingerprint(&bot.project);
    let reset = bot.run("alice", "/reset redis");
    assert_ne!(reset.code, 0);
    assert!(
        reset
            .out
            .contains("the approval store is unreachable, so destructive commands are refused"),
        "{}",
        reset.out
    );
    assert!(reset.out.contains("2 entries kept"), "{}", reset.out);
    assert_eq!(redis_fingerprint(&bot.project), before, "Redis untouched");

    let pending = bot.run("bob", "/pending");
    assert!(
        pending.out.contains("approval store is unreachable"),
        "{}",
        pending.out
    );
    assert_eq!(bot.spill().lines().count(), 3);

    store.script("up");
    let back = bot.run("dave", "/status");
    assert_eq!(back.code, 0, "{}", back.out);
    assert!(
        back.out.contains("3 kept entries") && back.out.contains("written to the audit log"),
        "the first reply after the flush says so: {}",
        back.out
    );
    assert_eq!(bot.spill(), "", "the spill is emptied");
    assert_eq!(
        audit_rows(&store),
        triples(&[
            ("alice", "status", "ran"),
            ("alice", "status", "ran"),
            ("alice", "reset", "failed"),
            ("bob", "pending", "failed"),
            ("dave", "status", "ran"),
        ]),
        "every entry, in the order the commands ran"
    );
    let verify = bot.verify();
    assert_eq!(verify.code, 0, "{}{}", verify.out, verify.err);
    assert!(
        verify.out.contains("audit log OK: 5 entries"),
        "{}",
        verify.out
    );

    // A bot that starts while the store is down, and is restarted before it is back: the
    // next process to reach the store writes what the earlier ones kept.
    store.script("stop");
    let first = bot.run("carol", "/status");
    assert!(first.err.contains("store is unreachable"), "{}", first.err);
    assert!(first.out.contains("1 entry kept"), "{}", first.out);
    let second = bot.run("dave", "/status");
    assert!(second.out.contains("2 entries kept"), "{}", second.out);
    store.script("up");
    let verify = bot.verify();
    assert_eq!(verify.code, 0, "{}{}", verify.out, verify.err);
    assert!(
        verify.out.contains("audit log OK: 7 entries"),
        "{}",
        verify.out
    );
    let rows = audit_rows(&store);
    assert_eq!(
        rows[5..],
        triples(&[("carol", "status", "ran"), ("dave", "status", "ran")])
    );
    assert_eq!(bot.spill(), "");
}

/// The outage seen from inside one long-running bot process (the `serve` case): its pooled
/// connections die with the server, and the real errors Postgres and the pool give are taken
/// for an outage, not for internal errors.
#[test]
fn a_running_bot_whose_store_stops_keeps_entries_aside_and_writes_them_when_it_is_back() {
    use container_ops::core::approvals::ApprovalState;
    use container_ops::core::store::{Store, verify_audit};
    use container_ops::infra::store::ResilientStore;
    use container_ops::infra::store::spill::Spill;

    let store = OwnStore::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bot = ResilientStore::for_url(
        store.url.clone(),
        Spill::new(dir.path().join("audit-spill.jsonl")),
        None,
    )
    .with_backoff(
        std::time::Duration::from_millis(200),
        std::time::Duration::from_secs(1),
    );
    let entry = |n: u64| audit_entry(n, "status");
    rt.block_on(async {
        bot.connect_now().await.unwrap();
        assert_eq!(bot.record_audit(entry(1)).await.unwrap(), None);
        // Open pooled connections that the stop will cut.
        bot.list_approvals(&[ApprovalState::Pending]).await.unwrap();
    });

    store.script("stop");
    rt.block_on(async {
        let kept = bot.record_audit(entry(2)).await.unwrap().unwrap();
        assert!(kept.contains("1 entry kept"), "{kept}");
        let e = bot
            .list_approvals(&[ApprovalState::Pending])
            .await
            .unwrap_err();
        assert!(e.is_unavailable(), "{e}");
        let kept = bot.record_audit(entry(3)).await.unwrap().unwrap();
        assert!(kept.contains("2 entries kept"), "{kept}");
    });

    store.script("up");
    rt.block_on(async {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let back = bot.record_audit(entry(4)).await.unwrap().unwrap();
        assert!(back.contains("2 kept entries"), "{back}");
        let log = bot.audit_page(0, 10).await.unwrap();
        assert_eq!(
            log.iter().map(|e| e.entry.duration_ms).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        let report = verify_audit(&bot).await.unwrap();
        assert!(report.is_ok(), "{report}");
    });
}

/// The loss the security review observed: a command ran, then the SQLite store stayed locked
/// by another process past its busy timeout, and the entry was kept nowhere.
#[test]
fn an_entry_made_while_another_process_holds_the_sqlite_write_lock_is_spilled_then_written_in_order()
 {
    use container_ops::core::store::{Store, verify_audit};
    use container_ops::infra::store::ResilientStore;
    use container_ops::infra::store::spill::Spill;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bot = ResilientStore::for_url(
        format!("sqlite:{}", db.display()),
        Spill::new(dir.path().join("audit-spill.jsonl")),
        None,
    );
    let entry = |n: u64| audit_entry(n, "stats");
    rt.block_on(async {
        bot.connect_now().await.unwrap();
        assert_eq!(bot.record_audit(entry(1)).await.unwrap(), None);
    });
    let other = rusqlite::Connection::open(&db).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let kept = rt.block_on(bot.record_audit(entry(2))).unwrap().unwrap();
    assert!(
        kept.contains("refused the entry") && kept.contains("locked"),
        "{kept}"
    );
    other.execute_batch("COMMIT").unwrap();
    drop(other);
    rt.block_on(async {
        let back = bot.record_audit(entry(3)).await.unwrap().unwrap();
        assert!(back.contains("1 kept entry"), "{back}");
        let log = bot.audit_page(0, 10).await.unwrap();
        assert_eq!(
            log.iter().map(|e| e.entry.duration_ms).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(verify_audit(&bot).await.unwrap().is_ok());
    });
}

/// An entry as a console command by `user-<n>` leaves it; `n` is also its duration, so the
/// order in which entries were written shows in the log.
fn audit_entry(n: u64, command: &str) -> container_ops::core::store::NewAuditEntry {
    container_ops::core::store::NewAuditEntry {
        at: chrono::Utc::now(),
        actor: format!("user-{n}"),
        roles: vec![],
        channel: "console".into(),
        command: command.into(),
        args: String::new(),
        target: vec![],
        decision: container_ops::core::store::AuditDecision::Ran,
        result: "ok".into(),
        duration_ms: n,
        correlation_id: format!("c{n}"),
        via: "console:ops".into(),
    }
}
