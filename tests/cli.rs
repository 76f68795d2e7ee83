//! The command line end to end, in-process: check-config, commands, console one-shot exit codes, serve.
//! (In-process because the binary path in the shared target dir is rebuilt by parallel branches.)

use clap::{CommandFactory, Parser};
use container_ops::app::cli::{Cli, execute};

/// Runs the CLI from the repository root with only the given environment overrides.
fn run(args: &[&str], env: &[(&str, &str)]) -> (u8, String, String) {
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).expect("repo root");
    let cli = Cli::try_parse_from(std::iter::once("container-ops").chain(args.iter().copied()))
        .expect("valid command line");
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        // Nothing here may reach a real Docker daemon.
        .chain([
            (
                "CONTAINER_OPS_DOCKER_HOST".to_string(),
                "unix:///nonexistent/container-ops-test.sock".to_string(),
            ),
            // The default SQLite store goes to a scratch directory, not the repository.
            (
                "CONTAINER_OPS_DATA_DIR".to_string(),
                std::env::temp_dir()
                    .join(format!("container-ops-cli-{}", std::process::id()))
                    .display()
                    .to_string(),
            ),
        ])
        .collect();
    let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = execute(cli, &lookup, &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[test]
fn check_config_accepts_the_shipped_files() {
    let (code, out, err) = run(&["check-config"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("33 command(s)") && out.contains("4 role(s)"),
        "{out}"
    );
}

#[test]
fn check_config_names_the_bad_command_file_and_line_and_fails() {
    let (code, _, err) = run(
        &["check-config"],
        &[(
            "CONTAINER_OPS_COMMANDS_DIR",
            "tests/fixtures/commands-bad-operation",
        )],
    );
    assert_eq!(code, 1);
    assert!(err.contains("reboot.toml:4:"), "{err}");
}

#[test]
fn check_config_refuses_a_catalog_discord_would_refuse_and_says_why() {
    // The shipped catalog (the grants name its commands) plus one command Discord would
    // refuse: an integer choice beyond i32, which serenity can only send as a string.
    let dir = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in std::fs::read_dir(repo.join("commands")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        dir.path().join("tail.toml"),
        r#"name = "tail"
description = "Recent log lines of one service"
operation = "logs"
target = { kind = "service", option = "service" }

[[options]]
name = "service"
description = "Service to read"
type = "service"
required = true

[[options]]
name = "tail"
description = "Lines from the end"
type = "integer"
choices = ["100", "3000000000"]
"#,
    )
    .unwrap();
    let commands = dir.path().display().to_string();
    let (code, _, err) = run(
        &["check-config"],
        &[("CONTAINER_OPS_COMMANDS_DIR", commands.as_str())],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("/tail: choice `3000000000` of integer option `tail`")
            && err.contains("Discord would refuse the registration"),
        "{err}"
    );
}

#[test]
fn check_config_refuses_a_destructive_operation_without_approvals_naming_file_and_line() {
    let (code, _, err) = run(
        &["check-config"],
        &[(
            "CONTAINER_OPS_COMMANDS_DIR",
            "tests/fixtures/commands-destructive-unguarded",
        )],
    );
    assert_eq!(code, 1);
    assert!(err.contains("wipe-cache.toml:4:"), "{err}");
    assert!(
        err.contains("operation `flush_redis` is destructive"),
        "{err}"
    );
}

#[test]
fn check_config_warns_of_a_service_pattern_that_reaches_past_the_group_it_means() {
    let (code, out, err) = run(&["check-config"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !out.contains("warning"),
        "the shipped files name their services: {out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let team = std::fs::read_to_string("permissions/team.toml")
        .unwrap()
        .replace(
            "services = [\"api-1\", \"api-2\", \"worker-1\", \"worker-2\", \"console\"]",
            "services = [\"api-*\", \"worker-*\", \"console\"]",
        );
    std::fs::write(dir.path().join("team.toml"), &team).unwrap();
    let perms = dir.path().display().to_string();
    let (code, out, err) = run(
        &["check-config"],
        &[("CONTAINER_OPS_PERMISSIONS_DIR", &perms)],
    );
    assert_eq!(code, 0, "a warning, not an error: {out}{err}");
    let line = team.lines().position(|l| l.contains("\"api-*\"")).unwrap() + 1;
    assert!(
        out.contains(&format!("team.toml:{line}: service pattern `api-*` matches `api-1`, `api-2` of group `app` and also `api-gateway`")),
        "{out}"
    );
}

#[test]
fn check_config_refuses_a_bad_permissions_file() {
    let (code, _, err) = run(
        &["check-config"],
        &[(
            "CONTAINER_OPS_PERMISSIONS_DIR",
            "tests/fixtures/permissions-undefined-role",
        )],
    );
    assert_eq!(code, 1);
    assert!(err.contains("ops.toml:6:"), "{err}");
}

#[test]
fn check_config_refuses_a_bad_settings_file() {
    let (code, _, err) = run(
        &[
            "--config",
            "tests/fixtures/settings/bad-rate.toml",
            "check-config",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("bad-rate.toml:7:"), "{err}");
}

#[test]
fn commands_prints_the_catalog() {
    let (code, out, _) = run(&["commands"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("/restart-infra") && out.contains("group infra"),
        "{out}"
    );
}

#[test]
fn console_help_runs_without_docker() {
    let (code, out, err) = run(&["console", "--as", "dave", "--command", "/help"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("/status") && !out.contains("/restart"),
        "{out}"
    );
}

#[test]
fn console_denial_exits_2() {
    let (code, out, _) = run(&["console", "--as", "mallory", "--command", "/status"], &[]);
    assert_eq!(code, 2);
    assert!(out.contains("Denied"), "{out}");
}

#[test]
fn a_destructive_command_is_not_requested_when_its_targets_cannot_be_resolved() {
    let (code, out, _) = run(
        &["console", "--as", "erin", "--command", "/restart-infra"],
        &[],
    );
    assert_eq!(
        code, 1,
        "the request binds container ids, so Docker must answer: {out}"
    );
    assert!(!out.contains("Pending approval"), "{out}");
}

#[test]
fn audit_verify_passes_on_a_clean_log_and_names_the_first_tampered_entry() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let url = format!("sqlite:{}", db.display());
    let spill = dir.path().join("audit-spill.jsonl").display().to_string();
    let env = [
        ("CONTAINER_OPS_STORE_URL", url.as_str()),
        ("CONTAINER_OPS_AUDIT_SPILL", spill.as_str()),
    ];
    for who in ["alice", "bob", "carol"] {
        // Each refused run is audited in the store.
        let (code, _, _) = run(&["console", "--as", who, "--command", "/nosuch"], &env);
        assert_eq!(code, 2);
    }
    let (code, out, err) = run(&["audit", "verify"], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("audit log OK: 3 entries"), "{out}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let changed = conn
        .execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 2", [])
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let (code, out, _) = run(&["audit", "verify"], &env);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at entry 2"), "{out}");
}

/// A scratch store, spill and anchor, with an audit key file when `key` is given.
struct Scratch {
    dir: tempfile::TempDir,
    url: String,
    spill: String,
    key: String,
}

impl Scratch {
    fn new(key: Option<&[u8]>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("state.db").display());
        let spill = dir.path().join("audit-spill.jsonl").display().to_string();
        let key = match key {
            Some(k) => {
                let p = dir.path().join("audit.key");
                std::fs::write(&p, k).unwrap();
                p.display().to_string()
            }
            None => String::new(),
        };
        Self {
            dir,
            url,
            spill,
            key,
        }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("CONTAINER_OPS_STORE_URL", self.url.as_str()),
            ("CONTAINER_OPS_AUDIT_SPILL", self.spill.as_str()),
            ("CONTAINER_OPS_AUDIT_KEY_FILE", self.key.as_str()),
        ]
    }

    fn sql(&self, sql: &str) {
        let c = rusqlite::Connection::open(self.dir.path().join("state.db")).unwrap();
        c.execute_batch(sql).unwrap();
    }
}

#[test]
fn audit_verify_with_the_key_and_anchor_detects_the_newest_entries_cut_off_and_the_head_moved() {
    let s = Scratch::new(Some(b"0123456789abcdef0123456789abcdef\n"));
    for who in ["alice", "bob", "carol"] {
        assert_eq!(
            run(&["console", "--as", who, "--command", "/nosuch"], &s.env()).0,
            2
        );
    }
    let (code, out, err) = run(&["audit", "verify"], &s.env());
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("audit log OK: 3 entries")
            && out.contains("keyed with the audit key from entry 1")
            && out.contains("anchor at entry 3 matches"),
        "{out}"
    );
    let c = rusqlite::Connection::open(s.dir.path().join("state.db")).unwrap();
    let second: String = c
        .query_row("SELECT hash FROM audit_log WHERE id = 2", [], |r| r.get(0))
        .unwrap();
    s.sql(&format!(
        "DELETE FROM audit_log WHERE id = 3; UPDATE audit_head SET last_id = 2, last_hash = '{second}'"
    ));
    let (code, out, _) = run(&["audit", "verify"], &s.env());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("BROKEN at entry 3") && out.contains("cut off the end"),
        "{out}"
    );
}

#[test]
fn an_audit_key_file_that_is_missing_or_too_short_stops_the_console_with_a_clear_error() {
    let s = Scratch::new(Some(b"short"));
    let (code, _, err) = run(&["console", "--as", "dave", "--command", "/help"], &s.env());
    assert_eq!(code, 1);
    assert!(
        err.contains("at least 32 bytes, it has 5") && err.contains("CONTAINER_OPS_AUDIT_KEY_FILE"),
        "{err}"
    );
    let mut env = s.env();
    env[2].1 = "/nonexistent/audit.key";
    let (code, _, err) = run(&["console", "--as", "dave", "--command", "/help"], &env);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read the audit key file /nonexistent/audit.key"),
        "{err}"
    );
}

#[test]
fn console_entries_say_they_came_from_the_console_and_which_os_user_ran_it() {
    let s = Scratch::new(None);
    run(&["console", "--as", "dave", "--command", "/help"], &s.env());
    let c = rusqlite::Connection::open(s.dir.path().join("state.db")).unwrap();
    let via: String = c
        .query_row("SELECT via FROM audit_log WHERE actor = 'dave'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        via,
        format!("console:{}", container_ops::ingress::console::os_user())
    );
    assert!(!via.ends_with(':'), "{via}");
}

#[test]
fn the_settings_can_restrict_which_os_user_may_act_as_whom_on_the_console() {
    let s = Scratch::new(None);
    let me = container_ops::ingress::console::os_user();
    let settings = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/container-ops.toml"),
    )
    .unwrap();
    let config = s.dir.path().join("settings.toml");
    let write = |console: &str| {
        let text = settings
            .replace("commands_dir = \"", "commands_dir = \"CARGO_DIR/")
            .replace("permissions_dir = \"", "permissions_dir = \"CARGO_DIR/")
            .replace("CARGO_DIR", env!("CARGO_MANIFEST_DIR"));
        std::fs::write(&config, format!("{text}\n[console]\n{console}\n")).unwrap();
    };
    let cfg = config.display().to_string();
    write(&format!("os_users = {{ \"{me}\" = [\"dave\"] }}"));
    let (code, out, err) = run(
        &[
            "--config",
            &cfg,
            "console",
            "--as",
            "alice",
            "--command",
            "/help",
        ],
        &s.env(),
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains(&format!("OS user `{me}` may act only as `dave`")),
        "{err}"
    );
    let (code, out, err) = run(
        &[
            "--config",
            &cfg,
            "console",
            "--as",
            "dave",
            "--command",
            "/help",
        ],
        &s.env(),
    );
    assert_eq!(code, 0, "{out}{err}");
    write("os_users = { someone-else = [\"*\"] }");
    let (code, _, err) = run(
        &[
            "--config",
            &cfg,
            "console",
            "--as",
            "dave",
            "--command",
            "/help",
        ],
        &s.env(),
    );
    assert_eq!(code, 2);
    assert!(err.contains("may not use the console"), "{err}");
}

#[test]
fn a_secret_can_come_from_a_file_and_both_forms_or_an_unreadable_file_are_refused() {
    let s = Scratch::new(None);
    let url_file = s.dir.path().join("store-url");
    std::fs::write(&url_file, format!("{}\n", s.url)).unwrap();
    let file = url_file.display().to_string();
    let env = [
        ("CONTAINER_OPS_STORE_URL_FILE", file.as_str()),
        ("CONTAINER_OPS_AUDIT_SPILL", s.spill.as_str()),
    ];
    assert_eq!(
        run(&["console", "--as", "dave", "--command", "/help"], &env).0,
        0
    );
    let c = rusqlite::Connection::open(s.dir.path().join("state.db")).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "the store named in the file was used");
    let both = [
        ("CONTAINER_OPS_STORE_URL_FILE", file.as_str()),
        ("CONTAINER_OPS_STORE_URL", s.url.as_str()),
    ];
    let (code, _, err) = run(&["console", "--as", "dave", "--command", "/help"], &both);
    assert_eq!(code, 2);
    assert!(
        err.contains("both CONTAINER_OPS_STORE_URL and CONTAINER_OPS_STORE_URL_FILE"),
        "{err}"
    );
    let (code, _, err) = run(&["serve"], &[("DISCORD_TOKEN_FILE", "/nonexistent/token")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read DISCORD_TOKEN_FILE (/nonexistent/token)"),
        "{err}"
    );
}

#[test]
fn console_with_docker_unreachable_exits_1() {
    let (code, out, err) = run(&["console", "--as", "dave", "--command", "/status"], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("Unavailable") || out.contains("internal error"),
        "{out}"
    );
}

#[test]
fn serve_without_a_token_says_which_variable_to_set() {
    let (code, _, err) = run(&["serve"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("DISCORD_TOKEN is not set"), "{err}");
}

#[test]
fn help_documents_the_exit_codes() {
    let help = Cli::command().render_long_help().to_string();
    assert!(
        help.contains("EXIT CODES") && help.contains("user error"),
        "{help}"
    );
}

/// The "bot killed while executing" case without the platform: the predecessor's claim still
/// has most of its lease, but its process is gone from this host, so the next start settles it.
#[test]
fn a_bot_started_after_its_predecessor_died_mid_execution_marks_the_request_interrupted_at_once() {
    use container_ops::core::approvals::{ApprovalState, Approvals, BoundOperation, NewRequest};
    use container_ops::core::replica::ReplicaId;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("state.db").display());
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let gone = ReplicaId {
        nonce: "gone".into(),
        pid,
        ..ReplicaId::current().clone()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt
        .block_on(container_ops::infra::store::open(&url, None))
        .unwrap();
    let before = Approvals::new(store.clone()).as_replica(gone, Duration::from_secs(3600));
    let now = chrono::Utc::now;
    let id = rt.block_on(async {
        let r = before
            .create(
                NewRequest {
                    operation: BoundOperation {
                        command: "flush-redis".into(),
                        targets: vec!["container:redis:1234".into()],
                        args: Default::default(),
                    },
                    args_display: String::new(),
                    requester: "alice".into(),
                    requester_roles: vec!["operator".into()],
                    approver_roles: vec!["approver".into()],
                    min_approvals: 1,
                    ttl: Duration::from_secs(900),
                    channel: "console".into(),
                    correlation_id: "c-killed".into(),
                },
                now(),
            )
            .await
            .unwrap();
        before
            .approve(&r.id, "bob", &["approver".into()], now())
            .await
            .unwrap();
        assert!(
            before
                .claim_for_execution(
                    &r.id,
                    &container_ops::core::approvals::Runner {
                        actor: "bob",
                        roles: &[],
                    },
                    now(),
                )
                .await
                .unwrap()
        );
        r.id
    });

    let (code, out, err) = run(
        &["console", "--as", "bob", "--command", "/pending"],
        &[("CONTAINER_OPS_STORE_URL", &url)],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains(&id) && err.contains("interrupted"), "{err}");
    let req = rt.block_on(before.get(&id)).unwrap().unwrap();
    assert_eq!(req.state, ApprovalState::Failed);
    let result = req.result.unwrap_or_default();
    assert!(result.starts_with("interrupted (replica gone@"), "{result}");
}
