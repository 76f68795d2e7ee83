//! Acceptance of the core on the real platform replica: console lines through the one pipeline,
//! with the shipped commands/ and permissions/ and the real Docker Engine.
//!
//! Needs the Compose project of deploy/dev up and healthy (`CONTAINER_OPS_TEST_PROJECT`, default
//! `riftwing`); every test fails, loudly, without it. Tests that change the platform (faults,
//! restarts) put it back and wait until it is healthy again before they end. Start times are read
//! with the docker CLI, not through the adapter under test.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use container_ops::app::wire::load_config;
use container_ops::core::audit::MemoryAudit;
use container_ops::core::engine::Engine;
use container_ops::core::ratelimit::RateSpec;
use container_ops::core::settings::Settings;
use container_ops::core::store::AuditDecision;
use container_ops::core::types::{ChannelId, UserId};
use container_ops::infra::docker::DockerEngine;
use container_ops::ingress::console::Console;
use container_ops::pipeline::{Core, LazyEngine};

use common::{Foreign, LONG_RUNNING, docker, project};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

const APP: &[&str] = &["api-1", "api-2", "worker-1", "worker-2", "console"];
const INFRA: &[&str] = &["postgres", "temporal", "redis"];
/// Start time of every container of the project, by service (docker CLI, not the adapter).
fn started_at() -> BTreeMap<String, String> {
    let label = format!("label=com.docker.compose.project={}", project());
    let ids = docker(&["ps", "-aq", "--filter", &label]);
    let mut args = vec![
        "inspect",
        "-f",
        "{{index .Config.Labels \"com.docker.compose.service\"}} {{.State.StartedAt}}",
    ];
    args.extend(ids.split_whitespace());
    docker(&args)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(s, t)| (s.to_owned(), t.to_owned()))
        .collect()
}

fn container_of(service: &str) -> String {
    let out = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={}", project()),
        "--filter",
        &format!("label=com.docker.compose.service={service}"),
    ]);
    assert!(!out.is_empty(), "{service} is not running");
    out
}

fn health(service: &str) -> String {
    docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
        &container_of(service),
    ])
}

/// Writes a line to a container's log as its main process would.
fn plant_log_line(service: &str, line: &str) {
    let id = container_of(service);
    // argv only: the line travels as an argument of printf, never as shell text.
    docker(&[
        "exec",
        &id,
        "sh",
        "-c",
        "printf '%s\\n' \"$1\" > /proc/1/fd/1",
        "sh",
        line,
    ]);
}

/// Undoes platform faults (last first) and waits once for the platform to be healthy again,
/// however the test ends.
struct Faults(Vec<(&'static str, &'static str)>);

impl Faults {
    /// Each fault as (verb, service it acts on).
    fn inject(faults: &[(&'static str, &'static str)]) -> Self {
        let mut f = Faults(Vec::new());
        for (verb, service) in faults {
            fault(verb, service, false);
            f.0.push((verb, service));
        }
        f
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        for (verb, service) in self.0.iter().rev() {
            fault(verb, service, true);
        }
        settle();
    }
}

fn fault(verb: &str, service: &str, undo: bool) {
    let mut args = vec!["fault", verb];
    if undo {
        args.push("--undo");
    }
    let out = Command::new(repo("deploy/dev/platform"))
        .args(&args)
        .env("COMPOSE_PROJECT_NAME", project())
        .env("FAULT_SERVICE", service)
        .output()
        .expect("deploy/dev/platform");
    // An undo that fails leaves the platform broken for everyone: say so, do not hide it.
    if !out.status.success() {
        eprintln!(
            "deploy/dev/platform {args:?} ({service}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(undo, "fault {verb} on {service} failed");
    }
}

/// Waits until every long-running service is healthy again (after restarts and faults).
fn settle() {
    let _ = Command::new(repo("deploy/dev/platform"))
        .args(["wait", "120"])
        .env("COMPOSE_PROJECT_NAME", project())
        .output();
}

/// What the person sees for one line: the message and the attachments saved beside it.
struct Reply {
    code: u8,
    text: String,
    attachments: Vec<(String, String)>,
}

impl Reply {
    fn everything(&self) -> String {
        let mut s = self.text.clone();
        for (_, body) in &self.attachments {
            s.push('\n');
            s.push_str(body);
        }
        s
    }

    /// The lines of the first code block, or of the attachment that holds it.
    fn log_lines(&self, attachment: &str) -> Vec<String> {
        if let Some((_, body)) = self.attachments.iter().find(|(n, _)| n == attachment) {
            return body.lines().map(str::to_owned).collect();
        }
        let mut inside = false;
        let mut out = Vec::new();
        for l in self.text.lines() {
            if l.starts_with("```") {
                if inside {
                    break;
                }
                inside = true;
            } else if inside {
                out.push(l.to_owned());
            }
        }
        out
    }
}

/// The bot as the console runs it, on the real Engine; `tweak` may tighten the settings.
struct Bot {
    core: Core,
    audit: Arc<MemoryAudit>,
    attachments: tempfile::TempDir,
}

async fn bot() -> Bot {
    bot_with(|_| {}).await
}

async fn bot_with(tweak: impl FnOnce(&mut Settings)) -> Bot {
    let env: Vec<(String, String)> = vec![
        ("CONTAINER_OPS_PROJECT".into(), project()),
        (
            "CONTAINER_OPS_COMMANDS_DIR".into(),
            repo("commands").display().to_string(),
        ),
        (
            "CONTAINER_OPS_PERMISSIONS_DIR".into(),
            repo("permissions").display().to_string(),
        ),
    ];
    let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (mut settings, catalog, policy) =
        load_config(None, &lookup).expect("the shipped settings, commands and permissions load");
    tweak(&mut settings);
    let engine = DockerEngine::connect(settings.docker_host.as_deref(), &project())
        .await
        .expect("the Docker Engine must be reachable for these tests");
    let listed = engine.containers().await.expect("list the project");
    assert!(
        listed.iter().filter(|c| c.state == "running").count() >= LONG_RUNNING.len() - 1,
        "project `{}` is not running: run deploy/dev/platform up",
        project()
    );
    let audit = Arc::new(MemoryAudit::new());
    let core = Core::new(
        settings,
        catalog,
        policy,
        LazyEngine::ready(Arc::new(engine)),
        audit.clone(),
    );
    Bot {
        core,
        audit,
        attachments: tempfile::tempdir().unwrap(),
    }
}

impl Bot {
    async fn say(&self, who: &str, line: &str) -> Reply {
        let console = Console {
            core: &self.core,
            user: UserId::parse(who).unwrap(),
            channel: ChannelId::parse("console").unwrap(),
            attachments_dir: Some(self.attachments.path().to_owned()),
        };
        let mut out = Vec::new();
        let code = console.run_line(line, &mut out).await.unwrap();
        let mut attachments = Vec::new();
        for f in std::fs::read_dir(self.attachments.path()).unwrap() {
            let p = f.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            attachments.push((name, std::fs::read_to_string(&p).unwrap()));
            std::fs::remove_file(&p).unwrap();
        }
        Reply {
            code,
            text: String::from_utf8(out).unwrap(),
            attachments,
        }
    }

    fn last_decision(&self) -> AuditDecision {
        self.audit.records().last().expect("audited").decision
    }
}

/// The status table's row of a service, split into its columns.
fn status_row(reply: &Reply, service: &str) -> Vec<String> {
    reply
        .everything()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|cols| cols.first().is_some_and(|c| c == service))
        .unwrap_or_else(|| panic!("no row for {service} in:\n{}", reply.everything()))
}

/// State and health of every container of the project, by service, as docker sees them.
fn states() -> BTreeMap<String, (String, String)> {
    let label = format!("label=com.docker.compose.project={}", project());
    let ids = docker(&["ps", "-aq", "--filter", &label]);
    let mut args = vec![
        "inspect",
        "-f",
        "{{index .Config.Labels \"com.docker.compose.service\"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}",
    ];
    args.extend(ids.split_whitespace());
    docker(&args)
        .lines()
        .filter_map(|l| {
            let v: Vec<&str> = l.split(' ').collect();
            (v.len() == 3).then(|| (v[0].to_owned(), (v[1].to_owned(), v[2].to_owned())))
        })
        .collect()
}

#[tokio::test]
async fn status_lists_every_service_with_its_state_and_health() {
    let bot = bot().await;
    settle();
    // Healthchecks flap on a loaded machine: compare with docker's view when it held still.
    let mut tries = 0;
    let (r, seen) = loop {
        let before = states();
        let r = bot.say("dave", "/status").await;
        if before == states() || tries == 5 {
            break (r, before);
        }
        tries += 1;
    };
    assert_eq!(r.code, 0, "{}", r.everything());
    assert!(
        r.text.contains(&format!("Status of {}:", project())),
        "{}",
        r.text
    );
    for s in LONG_RUNNING {
        assert!(seen.contains_key(*s), "{s} is not in the project");
    }
    for (s, (state, health)) in &seen {
        let row = status_row(&r, s);
        // service, container, state, health, ...
        assert_eq!(&row[2], state, "{s}: {row:?}");
        assert_eq!(&row[3], health, "{s}: {row:?}");
    }
    let running = LONG_RUNNING
        .iter()
        .filter(|s| status_row(&r, s)[2] == "running")
        .count();
    assert_eq!(running, LONG_RUNNING.len(), "{}", r.everything());
    let init = status_row(&r, "minio-init");
    assert_eq!(init[2], "exited", "one-shot jobs are listed: {init:?}");
    assert_eq!(bot.last_decision(), AuditDecision::Ran);
}

#[tokio::test]
async fn a_stopped_and_an_unhealthy_service_show_as_such() {
    let bot = bot().await;
    // db-backup rather than the default mcp-server: docker_engine's restart test (possibly run
    // from another checkout at the same time) owns mcp-server, and a restart starts it again.
    let _faults = Faults::inject(&[("stop-service", "db-backup"), ("unhealthy", "api-2")]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while health("api-2") != "running unhealthy" {
        assert!(
            Instant::now() < deadline,
            "api-2 never became unhealthy: {}",
            health("api-2")
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let r = bot.say("dave", "/status").await;
    assert_eq!(r.code, 0, "{}", r.everything());
    let stopped = status_row(&r, "db-backup");
    assert_eq!(stopped[2], "exited", "{stopped:?}");
    let api2 = status_row(&r, "api-2");
    assert_eq!(&api2[2..4], ["running", "unhealthy"], "{api2:?}");
    let api1 = status_row(&r, "api-1");
    assert_eq!(&api1[2..4], ["running", "healthy"], "{api1:?}");
    // The unhealthy one needs attention; a cleanly stopped one is shown, not flagged.
    assert!(!r.text.contains(" 0 need attention"), "{}", r.text);
}

#[tokio::test]
async fn restart_worker_1_restarts_only_that_container_and_a_second_is_refused_with_the_wait() {
    // One restart per service and operation in the window, so the second is refused.
    let bot = bot_with(|s| {
        s.limits.per_service_operation = RateSpec::new(1, Duration::from_secs(600));
    })
    .await;
    let before = started_at();
    let r = bot.say("alice", "/restart worker-1").await;
    assert_eq!(r.code, 0, "{}", r.everything());
    assert!(r.text.contains("Restart of worker-1: 1/1 ok"), "{}", r.text);
    let after = started_at();
    settle();
    assert_ne!(before["worker-1"], after["worker-1"], "worker-1 restarted");
    for (svc, t) in &before {
        // mcp-server belongs to docker_engine's restart test, which another checkout may run now.
        if svc != "worker-1" && svc != "mcp-server" {
            assert_eq!(&after[svc], t, "{svc} was not to be touched");
        }
    }

    let again = bot.say("bob", "/restart worker-1").await;
    assert_eq!(again.code, 2, "{}", again.text);
    let wait = again
        .text
        .split("Try again in ")
        .nth(1)
        .unwrap_or_else(|| panic!("no time to wait in: {}", again.text));
    assert!(
        wait.starts_with(|c: char| c.is_ascii_digit())
            && (wait.contains('m') || wait.contains('s')),
        "{}",
        again.text
    );
    assert!(again.text.contains("**Rate limited**"), "{}", again.text);
    assert_eq!(bot.last_decision(), AuditDecision::Limited);
    assert_eq!(
        started_at()["worker-1"],
        after["worker-1"],
        "the refused restart did nothing"
    );
}

#[tokio::test]
async fn restart_app_restarts_the_app_group_and_not_infra() {
    let bot = bot().await;
    let before = started_at();
    let r = bot.say("bob", "/restart-app").await;
    let after = started_at();
    settle();
    assert_eq!(r.code, 0, "{}", r.everything());
    assert!(r.text.contains("5/5 ok"), "{}", r.text);
    for s in APP {
        assert_ne!(before[*s], after[*s], "{s} restarted");
    }
    for s in INFRA.iter().chain(&["minio", "api-gateway", "ai-gateway"]) {
        assert_eq!(before[*s], after[*s], "{s} untouched");
    }
    // The command's own limit (1 per 5 minutes) refuses a second one, saying how long to wait.
    let again = bot.say("bob", "/restart-app").await;
    assert_eq!(again.code, 2);
    assert!(again.text.contains("Try again in"), "{}", again.text);
    assert_eq!(started_at()["api-1"], after["api-1"]);
}

#[tokio::test]
async fn logs_with_tail_and_grep_return_only_matching_lines() {
    let bot = bot().await;
    plant_log_line(
        "worker-1",
        "[worker-1] Worker successfully registered (planted by console_platform)",
    );
    let all = bot.say("dave", "/logs worker-1 tail:50").await;
    assert_eq!(all.code, 0, "{}", all.everything());
    let all_lines = all.log_lines("logs-worker-1.txt");
    assert!(
        all_lines.len() > 1 && all_lines.len() <= 50,
        "{all_lines:?}"
    );
    assert!(
        all_lines
            .iter()
            .any(|l| !l.to_lowercase().contains("registered")),
        "the tail also has other lines, so the filter below is tested"
    );

    let r = bot
        .say("dave", "/logs worker-1 tail:50 grep:registered")
        .await;
    assert_eq!(r.code, 0, "{}", r.everything());
    let lines = r.log_lines("logs-worker-1.txt");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("planted by console_platform")),
        "{}",
        r.everything()
    );
    for l in &lines {
        assert!(l.to_lowercase().contains("registered"), "{l}");
    }
    assert!(r.text.contains("matched `registered`"), "{}", r.text);
}

#[tokio::test]
async fn a_secret_planted_in_a_log_line_never_appears() {
    let bot = bot().await;
    let token = format!("ghp_{}", "A1b2C3d4E5".repeat(4).get(..36).unwrap());
    plant_log_line(
        "worker-1",
        &format!(
            "db password=hunter2-very-secret token={token} url=postgres://app:pg-url-secret@db/app"
        ),
    );
    for line in [
        "/logs worker-1 tail:50",
        "/logs worker-1 tail:50 grep:password",
        "/logs worker-1 tail:50 grep:token timestamps:true",
    ] {
        let r = bot.say("dave", line).await;
        assert_eq!(r.code, 0, "{}", r.everything());
        let seen = r.everything();
        assert!(seen.contains("db password="), "the line is shown: {seen}");
        for secret in ["hunter2-very-secret", token.as_str(), "pg-url-secret"] {
            assert!(!seen.contains(secret), "{secret} leaked in {line}: {seen}");
        }
    }
    for rec in bot.audit.records() {
        assert!(!format!("{rec:?}").contains("hunter2"), "{rec:?}");
    }
}

#[tokio::test]
async fn a_person_with_no_grant_gets_a_clear_denial() {
    let bot = bot().await;
    let r = bot.say("mallory", "/status").await;
    assert_eq!(r.code, 2);
    assert!(
        r.text.contains("**Denied.**")
            && r.text
                .contains("`mallory` (no roles) may not run `/status`"),
        "{}",
        r.text
    );
    assert!(r.text.contains("Ask an admin"), "{}", r.text);
    assert_eq!(bot.last_decision(), AuditDecision::Denied);
}

#[tokio::test]
async fn a_viewer_cannot_restart() {
    let bot = bot().await;
    let before = started_at();
    let r = bot.say("dave", "/restart worker-1").await;
    assert_eq!(r.code, 2);
    assert!(r.text.contains("**Denied.**"), "{}", r.text);
    assert!(r.text.contains("`viewer`"), "{}", r.text);
    assert_eq!(bot.last_decision(), AuditDecision::Denied);
    assert_eq!(started_at()["worker-1"], before["worker-1"]);
}

#[tokio::test]
async fn a_command_naming_another_projects_container_is_refused() {
    let bot = bot().await;
    let foreign = Foreign::start();
    let before = foreign.state();
    assert!(before.ends_with("running"), "{before}");
    let short = foreign.id[..12].to_owned();
    for line in [
        "/restart intruder".to_owned(),
        format!("/restart {}", foreign.name),
        format!("/stop {short}"),
        format!("/logs {} tail:5", foreign.name),
        format!("/config service:{short}"),
    ] {
        // erin is admin: only the project scope can stop her.
        let r = bot.say("erin", &line).await;
        assert_eq!(r.code, 2, "{line}: {}", r.text);
        assert!(
            r.text.contains("**Not found.** unknown service"),
            "{line}: {}",
            r.text
        );
        assert_eq!(bot.last_decision(), AuditDecision::Invalid, "{line}");
    }
    let r = bot.say("erin", "/status").await;
    assert!(
        !r.everything().contains("intruder") && !r.everything().contains(&foreign.name),
        "{}",
        r.everything()
    );
    assert_eq!(foreign.state(), before, "never restarted nor stopped");
}

#[tokio::test]
async fn a_destructive_command_stops_at_the_approval_gate() {
    let bot = bot().await;
    let before = started_at();
    let r = bot.say("erin", "/restart-infra").await;
    assert_eq!(r.code, 2);
    assert!(
        r.text.contains("**`/restart-infra` needs approval.**") && r.text.contains("`approver`"),
        "{}",
        r.text
    );
    assert_eq!(bot.last_decision(), AuditDecision::Pending);
    let after = started_at();
    for s in INFRA {
        assert_eq!(
            before[*s], after[*s],
            "{s} must not restart before approval"
        );
    }
}

#[tokio::test]
async fn bad_input_is_a_short_user_error_that_says_what_to_do_and_runs_nothing() {
    let bot = bot().await;
    let before = started_at();
    let big = "a".repeat(10 * 1024);
    let cases: Vec<(&str, String)> = vec![
        ("dave", "/reboot now".into()),
        ("dave", "/logs api-9".into()),
        ("dave", "/logs ../x".into()),
        ("alice", "/restart ../x".into()),
        ("alice", "/restart api-1; rm -rf /".into()),
        ("dave", "/logs api-1; rm -rf /".into()),
        ("dave", format!("/logs {big}")),
        ("dave", format!("/logs api-1 grep:{big}")),
        ("alice", format!("/restart service:{big}")),
        (
            "dave",
            "/logs api-1 grep:\"\\ud800\\udfff\u{fffd}\u{1b}[2J\"".into(),
        ),
        ("dave", "/logs \\xff\\xfe".into()),
        ("dave", "/logs \u{fffd}\u{fffd}".into()),
        ("dave", "/status api-1\u{0}".into()),
        ("dave", "/logs api-1 grep:\u{7}".into()),
        ("dave", "/logs tail:5".into()),
        ("alice", "/restart".into()),
        ("dave", "/logs api-1 tail:lots".into()),
        ("dave", "/logs api-1 grep:\"open".into()),
    ];
    for (who, line) in &cases {
        let r = bot.say(who, line).await;
        let shown: String = line.chars().take(60).collect();
        assert_eq!(r.code, 2, "{shown:?}: {}", r.text);
        assert!(r.attachments.is_empty(), "{shown:?}");
        assert!(
            r.text.chars().count() <= 600 && r.text.lines().count() <= 3,
            "{shown:?}: not short ({} chars): {}",
            r.text.chars().count(),
            r.text
        );
        assert!(
            r.text.contains("/help") || r.text.contains("known:"),
            "{shown:?}: says what to do? {}",
            r.text
        );
        assert!(
            r.text.starts_with("**Invalid argument.**") || r.text.starts_with("**Not found.**"),
            "{shown:?}: {}",
            r.text
        );
        assert!(
            !r.text.contains(&big[..300]),
            "the 10 KB value is not echoed back"
        );
        assert_eq!(bot.last_decision(), AuditDecision::Invalid, "{shown:?}");
    }
    assert_eq!(bot.audit.records().len(), cases.len());
    assert_eq!(started_at(), before, "nothing ran");
}
