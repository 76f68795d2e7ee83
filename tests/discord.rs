//! The Discord adapter end to end against a protocol-level simulator (no Discord is reachable):
//! registration, round trips on the real platform replica, autocomplete, attachments,
//! ephemeral refusals, and the signed HTTP interactions endpoint.

#[path = "support/discord_sim.rs"]
mod discord_sim;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use container_ops::audit::MemoryAudit;
use container_ops::catalog::Catalog;
use container_ops::console::Console;
use container_ops::discord::{self, Bot, DiscordConfig, endpoint};
use container_ops::docker::DockerEngine;
use container_ops::engine::Engine;
use container_ops::fake::FakeEngine;
use container_ops::pipeline::{Core, LazyEngine};
use container_ops::policy::Policy;
use container_ops::settings::{DEFAULT_SETTINGS, Secret, Settings};
use container_ops::types::{ChannelId, UserId};
use discord_sim::{APP_ID, GUILD_ID, Sim, interaction};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use serenity::all::{ApplicationId, GuildId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "MTEwMDAwMDAwMDAwMDAwMDAwMg.sim.token-for-tests";
/// Holds the viewer role by user id.
const VIEWER: u64 = 1_500_000_000_000_000_001;
/// Holds no role at all.
const STRANGER: u64 = 1_500_000_000_000_000_009;
/// A Discord role id mapped to the bot's admin role.
const ADMIN_ROLE: u64 = 1_600_000_000_000_000_001;
const ADMIN_USER: u64 = 1_500_000_000_000_000_002;

const WAIT: Duration = Duration::from_secs(45);

fn permissions() -> String {
    format!(
        r#"
[roles.viewer]
users = ["dave", "{VIEWER}"]

[roles.admin]
users = ["erin"]
discord_roles = ["{ADMIN_ROLE}"]

[roles.approver]
users = ["erin"]

[[grants]]
roles = ["viewer"]
commands = ["status", "logs", "stats", "config", "volumes", "network", "disk", "help"]
services = ["*"]
channels = ["*"]

[[grants]]
roles = ["admin"]
commands = ["*"]
services = ["*"]
channels = ["*"]
"#
    )
}

/// A private copy of the shipped catalog and a permissions file naming Discord ids.
fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let commands = dir.path().join("commands");
    std::fs::create_dir_all(&commands).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("commands");
    for e in std::fs::read_dir(shipped).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, commands.join(p.file_name().unwrap())).unwrap();
    }
    let perms = dir.path().join("permissions");
    std::fs::create_dir_all(&perms).unwrap();
    std::fs::write(perms.join("team.toml"), permissions()).unwrap();
    dir
}

fn core(dir: &Path, engine: Arc<dyn Engine>) -> Arc<Core> {
    core_with(dir, engine, |_| {})
}

fn core_with(dir: &Path, engine: Arc<dyn Engine>, tweak: impl FnOnce(&mut Settings)) -> Arc<Core> {
    let mut settings = Settings::parse(Path::new("default"), DEFAULT_SETTINGS).unwrap();
    tweak(&mut settings);
    settings.commands_dir = dir.join("commands");
    settings.permissions_dir = dir.join("permissions");
    let groups = settings.groups.keys().cloned().collect();
    let catalog = Catalog::load_dir(&settings.commands_dir, &groups).unwrap();
    let policy = Policy::load_dir(&settings.permissions_dir).unwrap();
    policy.check_catalog(&catalog).unwrap();
    Arc::new(Core::new(
        settings,
        catalog,
        policy,
        LazyEngine::ready(engine),
        Arc::new(MemoryAudit::new()),
    ))
}

/// The replica's Compose project these tests run against (CI may run its own instance).
fn test_project() -> String {
    std::env::var("CONTAINER_OPS_TEST_PROJECT").unwrap_or_else(|_| "riftwing".into())
}

fn on_test_project(settings: &mut Settings) {
    settings.project = test_project();
}

async fn platform() -> Arc<dyn Engine> {
    Arc::new(
        DockerEngine::connect(None, &test_project())
            .await
            .expect("the replica's Docker Engine (deploy/dev/platform up)"),
    )
}

fn config(sim: &Sim, token: &str) -> DiscordConfig {
    DiscordConfig {
        token: Secret::new(token),
        guild: Some(GuildId::new(GUILD_ID)),
        api_base: Some(sim.base()),
        ack_budget: Duration::from_millis(1500),
        application_id: Some(ApplicationId::new(APP_ID)),
        public_key: None,
        interactions_addr: None,
    }
}

/// Starts the bot on the gateway and waits for its registration (the sign it is ready).
async fn start_bot(sim: &Arc<Sim>, core: Arc<Core>) -> tokio::task::JoinHandle<()> {
    let before = sim.requests().len();
    let cfg = config(sim, TOKEN);
    let bot = tokio::spawn(async move {
        if let Err(e) = discord::serve(core, cfg).await {
            eprintln!("bot stopped: {e:#}");
        }
    });
    sim.registration(before, WAIT)
        .await
        .expect("the bot registers its commands after READY");
    bot
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// A fresh interaction id and token.
fn ids() -> (u64, String) {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (
        1_700_000_000_000_000_000 + n,
        format!("itoken-{n}-{}", uuid()),
    )
}

fn uuid() -> String {
    format!("{:x}", std::process::id())
}

fn opt(name: &str, kind: u8, value: Value) -> Value {
    json!({"name": name, "type": kind, "value": value})
}

/// Durations (uptimes) move between two runs and change column widths: compare without them.
fn normalise(s: &str) -> String {
    let dur = regex::Regex::new(r"\b\d+[dhms]( \d+[dhms])?\b").unwrap();
    let spaces = regex::Regex::new(r" +").unwrap();
    s.lines()
        .map(|l| {
            spaces
                .replace_all(&dur.replace_all(l, "<t>"), " ")
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_publishes_exactly_the_catalog_and_a_new_file_adds_a_command_after_restart() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let bot = start_bot(&sim, core(dir.path(), Arc::new(FakeEngine::riftwing()))).await;
    let reg = sim.registration(0, WAIT).await.unwrap();
    assert_eq!(
        reg.path,
        format!("/api/v10/applications/{APP_ID}/guilds/{GUILD_ID}/commands"),
        "guild commands for the configured guild"
    );
    let groups = Settings::parse(Path::new("d"), DEFAULT_SETTINGS)
        .unwrap()
        .groups
        .keys()
        .cloned()
        .collect();
    let catalog = Catalog::load_dir(&dir.path().join("commands"), &groups).unwrap();
    let published: Vec<&str> = reg
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = catalog.names().map(|n| n.as_str()).collect();
    assert_eq!(published, expected);
    for c in reg.json.as_array().unwrap() {
        let cmd = catalog.get(c["name"].as_str().unwrap()).unwrap();
        let mut opts: Vec<&str> = c["options"]
            .as_array()
            .map(|o| o.iter().map(|o| o["name"].as_str().unwrap()).collect())
            .unwrap_or_default();
        opts.sort();
        let mut want: Vec<&str> = cmd.options.iter().map(|o| o.name.as_str()).collect();
        want.sort();
        assert_eq!(opts, want, "options of /{}", cmd.name);
    }
    let logs = reg
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "logs")
        .unwrap();
    let service = &logs["options"][0];
    assert_eq!(
        (service["name"].as_str(), service["type"].as_u64()),
        (Some("service"), Some(3))
    );
    assert_eq!(service["required"], true);
    assert_eq!(service["autocomplete"], true);

    // An operator adds a command as a file; after a restart Discord knows it.
    bot.abort();
    std::fs::write(
        dir.path().join("commands/uptime.toml"),
        "name = \"uptime\"\ndescription = \"Status of the whole project\"\noperation = \"status\"\ntarget = { kind = \"project\" }\n",
    )
    .unwrap();
    let before = sim.requests().len();
    let bot = start_bot(&sim, core(dir.path(), Arc::new(FakeEngine::riftwing()))).await;
    let reg2 = sim.registration(before, WAIT).await.unwrap();
    let names: Vec<&str> = reg2
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), expected.len() + 1);
    assert!(names.contains(&"uptime"), "{names:?}");
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_on_the_platform_is_acked_within_three_seconds_and_matches_the_console() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let core = core_with(dir.path(), platform().await, on_test_project);
    let bot = start_bot(&sim, core.clone()).await;
    let console = Console {
        core: &core,
        user: UserId::parse("dave").unwrap(),
        channel: ChannelId::parse("console").unwrap(),
        attachments_dir: Some(dir.path().join("attachments")),
    };
    // The replica is shared and live (health flips while others inject faults), so Discord
    // and the console are compared over a few back-to-back pairs: a pair taken while the
    // platform held still must be identical; a rendering difference never matches.
    let mut pairs = Vec::new();
    for _ in 0..5 {
        let (id, token) = ids();
        sim.dispatch_interaction(interaction(2, id, &token, VIEWER, &[], "status", json!([])));
        let fin = sim.final_answer(&token, WAIT).await.expect("an answer");
        assert!(
            fin.ack_after < Duration::from_secs(3),
            "acked after {:?}",
            fin.ack_after
        );
        assert!(!fin.ephemeral);
        let description = fin.embeds[0]["description"].as_str().unwrap().to_owned();
        assert!(
            description.contains(&format!("Status of {}", test_project())),
            "{description}"
        );

        let mut out = Vec::new();
        assert_eq!(console.run_line("/status", &mut out).await.unwrap(), 0);
        let out = String::from_utf8(out).unwrap();
        assert!(
            !out.contains("📎"),
            "precondition: the console shows the whole status inline: {out}"
        );
        let pair = (normalise(&description), normalise(&out));
        if pair.0 == pair.1 {
            pairs.clear();
            break;
        }
        pairs.push(pair);
    }
    assert!(
        pairs.is_empty(),
        "Discord never matched the console: {:#?}",
        pairs.last()
    );
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_a_finished_job_on_the_platform_match_the_console() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let core = core_with(dir.path(), platform().await, on_test_project);
    let bot = start_bot(&sim, core.clone()).await;
    // An exited init job's log no longer changes, so both sides read the same lines.
    let (id, token) = ids();
    sim.dispatch_interaction(interaction(
        2,
        id,
        &token,
        VIEWER,
        &[],
        "logs",
        json!([
            opt("service", 3, json!("minio-init")),
            opt("tail", 4, json!(10))
        ]),
    ));
    let fin = sim.final_answer(&token, WAIT).await.expect("an answer");
    assert!(
        fin.ack_after < Duration::from_secs(3),
        "acked after {:?}",
        fin.ack_after
    );
    let description = fin.embeds[0]["description"].as_str().unwrap().to_owned();
    let console = Console {
        core: &core,
        user: UserId::parse("dave").unwrap(),
        channel: ChannelId::parse("console").unwrap(),
        attachments_dir: Some(dir.path().join("attachments")),
    };
    let mut out = Vec::new();
    assert_eq!(
        console
            .run_line("/logs service:minio-init tail:10", &mut out)
            .await
            .unwrap(),
        0
    );
    let out = String::from_utf8(out).unwrap();
    assert!(
        !out.contains("📎"),
        "precondition: inline on the console: {out}"
    );
    assert!(description.contains("minio-init"), "{description}");
    assert!(
        description.contains("bucket rewst-artifacts ready"),
        "{description}"
    );
    assert_eq!(description, out.trim_end());
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_mcp_server_from_discord_is_acked_in_time_and_reports_the_result() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let bot = start_bot(
        &sim,
        core_with(dir.path(), platform().await, on_test_project),
    )
    .await;
    let (id, token) = ids();
    sim.dispatch_interaction(interaction(
        2,
        id,
        &token,
        ADMIN_USER,
        &[ADMIN_ROLE],
        "restart",
        json!([opt("service", 3, json!("mcp-server"))]),
    ));
    let fin = sim.final_answer(&token, WAIT).await.expect("an answer");
    assert!(
        fin.ack_after < Duration::from_secs(3),
        "acked after {:?}",
        fin.ack_after
    );
    let d = fin.embeds[0]["description"].as_str().unwrap();
    assert!(d.contains("mcp-server"), "{d}");
    assert!(!fin.ephemeral);
    // Answered once: exactly one first response for the token.
    let callbacks = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains(&format!("/{token}/callback")))
        .count();
    assert_eq!(callbacks, 1);
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autocomplete_for_service_offers_the_live_services_that_start_with_what_was_typed() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let core = core_with(dir.path(), platform().await, on_test_project);
    let bot = start_bot(&sim, core.clone()).await;
    let (id, token) = ids();
    let mut focused = opt("service", 3, json!("api"));
    focused["focused"] = json!(true);
    sim.dispatch_interaction(interaction(
        4,
        id,
        &token,
        VIEWER,
        &[],
        "logs",
        json!([focused]),
    ));
    let choices = sim
        .autocomplete_choices(&token, WAIT)
        .await
        .expect("choices");
    let live: Vec<String> = core
        .service_names()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.to_string())
        .filter(|s| s.starts_with("api"))
        .collect();
    assert_eq!(choices, live);
    assert!(choices.contains(&"api-1".to_string()), "{choices:?}");
    assert!(!choices.iter().any(|c| c == "redis"), "{choices:?}");
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_megabyte_log_request_arrives_whole_as_an_attachment() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let fake = Arc::new(FakeEngine::riftwing());
    let lines: Vec<String> = (0..2000)
        .map(|i| format!("request {i:04} {}", "x".repeat(2_700)))
        .collect();
    let refs: Vec<(u32, &str)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u32, l.as_str()))
        .collect();
    fake.set_logs("api-1", &refs);
    let bot = start_bot(&sim, core(dir.path(), fake)).await;
    let (id, token) = ids();
    sim.dispatch_interaction(interaction(
        2,
        id,
        &token,
        VIEWER,
        &[],
        "logs",
        json!([
            opt("service", 3, json!("api-1")),
            opt("tail", 4, json!(2000))
        ]),
    ));
    let fin = sim.final_answer(&token, WAIT).await.expect("an answer");
    assert!(
        fin.ack_after < Duration::from_secs(3),
        "acked after {:?}",
        fin.ack_after
    );
    let total: usize = fin.files.iter().map(|(_, b)| b.len()).sum();
    assert!(total >= 5_000_000, "{total} bytes attached");
    let all: String = fin
        .files
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(all.contains(&lines[0]) && all.contains(&lines[1999]));
    let d = fin.embeds[0]["description"].as_str().unwrap();
    assert!(d.contains("attached whole"), "{d}");
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_is_ephemeral_says_what_to_do_and_touches_nothing() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let fake = Arc::new(FakeEngine::riftwing());
    let bot = start_bot(&sim, core(dir.path(), fake.clone())).await;
    let (id, token) = ids();
    sim.dispatch_interaction(interaction(
        2,
        id,
        &token,
        STRANGER,
        &[],
        "restart",
        json!([opt("service", 3, json!("api-1"))]),
    ));
    let fin = sim.final_answer(&token, WAIT).await.expect("an answer");
    assert_eq!(fin.ack_type, 4, "a cheap refusal is answered at once");
    assert!(fin.ephemeral, "refusals are ephemeral");
    assert!(fin.content.starts_with("**Denied.**"), "{}", fin.content);
    assert!(fin.content.contains("Ask an admin"), "{}", fin.content);
    assert!(fake.calls().is_empty());
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_command_is_deferred_within_three_seconds_then_the_original_response_is_edited() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    // Every restart takes 4 s: longer than Discord's 3 s window.
    let fake = Arc::new(FakeEngine::riftwing().with_delay(Duration::from_secs(4)));
    let bot = start_bot(&sim, core(dir.path(), fake.clone())).await;
    let (id, token) = ids();
    sim.dispatch_interaction(interaction(
        2,
        id,
        &token,
        ADMIN_USER,
        &[ADMIN_ROLE],
        "restart",
        json!([opt("service", 3, json!("api-1"))]),
    ));
    let fin = sim.final_answer(&token, WAIT).await.expect("an answer");
    assert_eq!(fin.ack_type, 5, "deferred");
    assert!(
        fin.ack_after < Duration::from_secs(3),
        "acked after {:?}",
        fin.ack_after
    );
    let d = fin.embeds[0]["description"].as_str().unwrap();
    assert!(d.contains("api-1"), "{d}");
    assert_eq!(
        fake.calls(),
        ["restart riftwing-api-1-1"],
        "ran exactly once"
    );
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_killed_mid_command_the_bot_reconnects_and_answers_exactly_once() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let fake = Arc::new(FakeEngine::riftwing().with_delay(Duration::from_secs(3)));
    let bot = start_bot(&sim, core(dir.path(), fake.clone())).await;
    let (id, token) = ids();
    sim.dispatch_interaction(interaction(
        2,
        id,
        &token,
        ADMIN_USER,
        &[ADMIN_ROLE],
        "restart",
        json!([opt("service", 3, json!("api-2"))]),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    sim.kill_gateway();
    let fin = sim.final_answer(&token, WAIT).await.expect("an answer");
    assert!(
        fin.embeds[0]["description"]
            .as_str()
            .unwrap()
            .contains("api-2")
    );
    let deadline = std::time::Instant::now() + WAIT;
    while sim.handshakes().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        sim.handshakes().len() >= 2,
        "handshakes: {:?}",
        sim.handshakes()
    );
    // Nothing more arrives for the token after the reconnect.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let for_token: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains(&token))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(for_token.len(), 2, "one ack and one edit: {for_token:#?}");
    assert_eq!(
        fake.calls(),
        ["restart riftwing-api-2-1"],
        "ran exactly once"
    );
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_deferral_replaces_the_public_placeholder_with_an_ephemeral_answer() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    // The restart takes 6 s, the bot waits 2 s + 1 s stop timeout: deferred, then timed out.
    let fake = Arc::new(FakeEngine::riftwing().with_delay(Duration::from_secs(6)));
    let core = core_with(dir.path(), fake, |s| {
        s.limits.operation_timeout = Duration::from_secs(2);
        s.limits.stop_timeout = Duration::from_secs(1);
    });
    let bot = start_bot(&sim, core).await;
    let (id, token) = ids();
    sim.dispatch_interaction(interaction(
        2,
        id,
        &token,
        ADMIN_USER,
        &[ADMIN_ROLE],
        "restart",
        json!([opt("service", 3, json!("api-1"))]),
    ));
    let follow_up = sim
        .wait_for(WAIT, |rs| {
            rs.iter()
                .find(|r| {
                    r.method == "POST" && r.path.ends_with(&format!("/webhooks/{APP_ID}/{token}"))
                })
                .cloned()
        })
        .await
        .expect("an ephemeral follow-up");
    assert_eq!(
        follow_up.json["flags"].as_u64().unwrap_or(0) & 64,
        64,
        "ephemeral"
    );
    let content = follow_up.json["content"].as_str().unwrap();
    assert!(
        content.starts_with("**Unavailable.**") && content.contains("/status"),
        "{content}"
    );
    let methods: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains(&token))
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(
        methods,
        ["POST", "DELETE", "POST"],
        "defer, remove placeholder, answer"
    );
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_rejects_what_discord_would_reject_with_code_50035() {
    let sim = Sim::start(TOKEN).await;
    let cb = "/api/v10/interactions/1/tok/callback";
    let bad = [
        json!({"type": 4, "data": {"content": "x".repeat(2001)}}),
        json!({"type": 4, "data": {"embeds": [{"title": "t".repeat(257)}]}}),
        json!({"type": 4, "data": {"embeds": [{"description": "d".repeat(4097)}]}}),
        json!({"type": 4, "data": {"embeds": [{"fields": (0..26).map(|i| json!({"name": i.to_string(), "value": "v"})).collect::<Vec<_>>()}]}}),
        json!({"type": 4, "data": {"embeds": [{"fields": [{"name": "n", "value": "v".repeat(1025)}]}]}}),
        json!({"type": 4, "data": {"embeds": [{"description": "d".repeat(4000)}, {"description": "d".repeat(2001)}]}}),
        json!({"type": 4, "data": {"content": "x", "components": [{"type": 1, "components": [{"type": 2, "style": 1, "label": "a", "custom_id": "c".repeat(101)}]}]}}),
        json!({"type": 4, "data": {"content": "x", "components": [{"type": 1, "components": (0..6).map(|i| json!({"type": 2, "style": 1, "label": "a", "custom_id": i.to_string()})).collect::<Vec<_>>()}]}}),
        json!({"type": 4, "data": {}}),
    ];
    for (i, b) in bad.iter().enumerate() {
        let body = b.to_string();
        let (st, resp) = request(sim.rest, "POST", cb, &[], body.as_bytes()).await;
        assert_eq!(st, 400, "case {i}");
        let resp: Value = serde_json::from_str(&resp).unwrap();
        assert!(
            resp["code"] == 50035 || resp["code"] == 50006,
            "case {i}: {resp}"
        );
        assert!(!sim.take_violations().is_empty(), "case {i} recorded");
    }
    let fine = json!({"type": 4, "data": {"content": "ok", "embeds": [{"title": "t", "description": "d"}]}});
    let (st, _) = request(sim.rest, "POST", cb, &[], fine.to_string().as_bytes()).await;
    assert_eq!(st, 204);
    let reg = "/api/v10/applications/1/commands";
    let (st, _) = request(
        sim.rest,
        "PUT",
        reg,
        &[("Authorization", "Bot wrong".into())],
        b"[]",
    )
    .await;
    assert_eq!(st, 401, "a bad bot token is refused");
    sim.assert_no_violations();
}

#[test]
fn an_interaction_serenity_would_not_understand_fails_the_simulator_loudly() {
    let mut d = interaction(2, 1, "t", VIEWER, &[], "status", json!([]));
    d.as_object_mut().unwrap().remove("entitlements");
    let frame = json!({"op": 0, "t": "INTERACTION_CREATE", "s": 1, "d": d});
    let caught = std::panic::catch_unwind(|| discord_sim::check_event(&frame));
    assert!(
        caught.is_err(),
        "a payload missing a required field must not pass silently"
    );
    let ok = json!({"op": 0, "t": "INTERACTION_CREATE", "s": 1,
        "d": interaction(2, 1, "t", VIEWER, &[], "status", json!([]))});
    discord_sim::check_event(&ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_and_bad_argument_refusals_are_ephemeral_and_say_what_to_do() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let fake = Arc::new(FakeEngine::riftwing());
    let bot = start_bot(&sim, core(dir.path(), fake.clone())).await;
    let mut last = None;
    // Default limit: 3 restarts of one service per 10 minutes; the fourth is refused.
    for _ in 0..4 {
        let (id, token) = ids();
        sim.dispatch_interaction(interaction(
            2,
            id,
            &token,
            ADMIN_USER,
            &[ADMIN_ROLE],
            "restart",
            json!([opt("service", 3, json!("worker-1"))]),
        ));
        last = sim.final_answer(&token, WAIT).await;
    }
    let limited = last.expect("an answer");
    assert!(limited.ephemeral);
    assert!(
        limited.content.starts_with("**Rate limited**") && limited.content.contains("Try again in"),
        "{}",
        limited.content
    );
    assert_eq!(fake.calls().len(), 3);

    let (id, token) = ids();
    sim.dispatch_interaction(interaction(
        2,
        id,
        &token,
        VIEWER,
        &[],
        "logs",
        json!([opt("service", 3, json!("no-such-service"))]),
    ));
    let bad = sim.final_answer(&token, WAIT).await.expect("an answer");
    assert!(bad.ephemeral);
    assert!(
        bad.content.contains("unknown service `no-such-service`"),
        "{}",
        bad.content
    );
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_and_nothing_is_registered() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let cfg = config(&sim, "not-the-token");
    let core = core(dir.path(), Arc::new(FakeEngine::riftwing()));
    let bot = tokio::spawn(async move {
        let _ = discord::serve(core, cfg).await;
    });
    let refused = sim
        .wait_for(Duration::from_secs(10), |rs| {
            rs.iter().find(|r| r.status == 401).cloned()
        })
        .await;
    assert!(
        refused.is_some(),
        "the simulator answers a bad token with 401"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.method == "PUT" && r.status == 200),
        "nothing may be registered with a bad token"
    );
    bot.abort();
    sim.assert_no_violations();
}

/// Minimal HTTP/1.1 POST to `/interactions` (the test tree has no HTTP client).
async fn post(addr: SocketAddr, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    request(addr, "POST", "/interactions", headers, body).await
}

/// Minimal HTTP/1.1 request; returns status and body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn signed(key: &SigningKey, ts: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let msg = [ts.to_string().as_bytes(), body].concat();
    let sig = key.sign(&msg);
    let hex: String = sig.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    vec![
        ("X-Signature-Ed25519", hex),
        ("X-Signature-Timestamp", ts.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interactions_endpoint_runs_only_correctly_signed_fresh_requests() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let fake = Arc::new(FakeEngine::riftwing());
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public: String = key
        .verifying_key()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cfg = config(&sim, TOKEN);
    let bot = Arc::new(Bot::new(
        core(dir.path(), fake.clone()),
        Arc::new(cfg.http()),
        cfg,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = endpoint::router(bot, endpoint::verifier(&public).unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let restart = |token: &str, id: u64| {
        interaction(
            2,
            id,
            token,
            ADMIN_USER,
            &[ADMIN_ROLE],
            "restart",
            json!([opt("service", 3, json!("api-1"))]),
        )
        .to_string()
        .into_bytes()
    };
    let now = chrono::Utc::now().timestamp();

    // Tampered body: signed for api-1, sent for api-2.
    let (id, token) = ids();
    let body = restart(&token, id);
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("api-1", "api-2");
    let (st, _) = post(addr, &signed(&key, now, &body), tampered.as_bytes()).await;
    assert_eq!(st, 401, "tampered body");

    // Signed by another key.
    let other = SigningKey::from_bytes(&[9u8; 32]);
    let (st, _) = post(addr, &signed(&other, now, &body), &body).await;
    assert_eq!(st, 401, "wrong key");

    // Correctly signed, but six minutes old (a replay).
    let (st, _) = post(addr, &signed(&key, now - 360, &body), &body).await;
    assert_eq!(st, 401, "old timestamp");

    // Missing signature header.
    let mut h = signed(&key, now, &body);
    h.remove(0);
    let (st, _) = post(addr, &h, &body).await;
    assert_eq!(st, 401, "missing header");
    assert!(fake.calls().is_empty(), "nothing ran for a bad request");

    // Ping and a valid command.
    let ping = json!({"id": "1", "application_id": APP_ID.to_string(), "type": 1, "token": "p", "version": 1}).to_string();
    let (st, resp) = post(addr, &signed(&key, now, ping.as_bytes()), ping.as_bytes()).await;
    assert_eq!(st, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&resp).unwrap()["type"],
        1,
        "PONG"
    );
    let (st, resp) = post(addr, &signed(&key, now, &body), &body).await;
    assert_eq!(st, 200, "{resp}");
    let resp: Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(resp["type"], 4, "{resp}");
    let problems = discord_sim::message_problems(&resp["data"], &[], true);
    assert!(
        problems.is_empty(),
        "the endpoint's answer breaks Discord's rules: {problems:?}"
    );
    assert!(
        resp["data"]["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .contains("api-1")
    );
    assert_eq!(fake.calls(), ["restart riftwing-api-1-1"]);
    server.abort();
    sim.assert_no_violations();
}
