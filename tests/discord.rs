//! The Discord adapter end to end against a protocol-level simulator (no Discord is reachable):
//! registration, round trips on the real platform replica, autocomplete, attachments,
//! ephemeral refusals, and the signed HTTP interactions endpoint.

#[path = "support/discord_sim.rs"]
mod discord_sim;
#[path = "support/discord_spec.rs"]
mod discord_spec;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use container_ops::core::audit::{AuditSink, MemoryAudit, StoreAudit};
use container_ops::core::catalog::Catalog;
use container_ops::core::engine::Engine;
use container_ops::core::policy::Policy;
use container_ops::core::settings::{DEFAULT_SETTINGS, Settings};
use container_ops::core::store::{AuditQuery, Store};
use container_ops::core::types::Secret;
use container_ops::core::types::{ChannelId, UserId};
use container_ops::infra::docker::DockerEngine;
use container_ops::infra::fake::FakeEngine;
use container_ops::infra::store::SqliteStore;
use container_ops::ingress::console::Console;
use container_ops::ingress::discord::{self, Bot, DiscordConfig, endpoint};
use container_ops::pipeline::{Core, LazyEngine};
use discord_sim::{APP_ID, CHANNEL_ID, GUILD_ID, Permission, Sim, SimChannel, interaction};
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
/// Two people with the approver role (and no other).
const APPROVER: u64 = 1_500_000_000_000_000_003;
const APPROVER2: u64 = 1_500_000_000_000_000_004;

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
users = ["erin", "{APPROVER}", "{APPROVER2}"]

[[grants]]
roles = ["viewer"]
commands = ["status", "logs", "stats", "config", "volumes", "network", "disk", "help"]
services = ["*"]
channels = ["*"]

[[grants]]
roles = ["approver"]
commands = ["approve", "deny", "pending", "status", "logs"]
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

/// Replaces the team's permissions: `VIEWER` is a viewer, the approver role (which the
/// catalog's destructive commands name) holds nobody, and `grants` are all the grants.
fn team_permissions(dir: &Path, grants: &str) {
    let roles = format!("[roles.viewer]\nusers = [\"{VIEWER}\"]\n\n[roles.approver]\n");
    std::fs::write(dir.join("permissions/team.toml"), roles + grants).unwrap();
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
    Arc::new(build_core(dir, engine, tweak, Arc::new(MemoryAudit::new())))
}

/// A core whose approvals, audit and incidents live in `store` (shared by restarted bots).
fn store_core(
    dir: &Path,
    engine: Arc<dyn Engine>,
    store: Arc<dyn Store>,
    tweak: impl FnOnce(&mut Settings),
) -> Arc<Core> {
    let audit = Arc::new(StoreAudit::new(store.clone()));
    Arc::new(build_core(dir, engine, tweak, audit).with_store(store))
}

fn build_core(
    dir: &Path,
    engine: Arc<dyn Engine>,
    tweak: impl FnOnce(&mut Settings),
    audit: Arc<dyn AuditSink>,
) -> Core {
    let mut settings = Settings::parse(Path::new("default"), DEFAULT_SETTINGS).unwrap();
    tweak(&mut settings);
    settings.commands_dir = dir.join("commands");
    settings.permissions_dir = dir.join("permissions");
    let groups = settings.groups.keys().cloned().collect();
    let catalog = Catalog::load_dir(&settings.commands_dir, &groups).unwrap();
    let policy = Policy::load_dir(&settings.permissions_dir).unwrap();
    policy.check_catalog(&catalog).unwrap();
    Core::new(settings, catalog, policy, LazyEngine::ready(engine), audit)
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

/// The bot as production runs it: `https://discord.com` (the simulator over TLS, see
/// `tests/fixtures/tls`) with serenity's own rate limiter on.
fn config(sim: &Sim, token: &str) -> DiscordConfig {
    DiscordConfig {
        token: Secret::new(token),
        guild: Some(GuildId::new(GUILD_ID)),
        api_base: None,
        ack_budget: Duration::from_millis(1500),
        application_id: Some(ApplicationId::new(APP_ID)),
        public_key: None,
        interactions_addr: None,
        allowed_guilds: vec![GuildId::new(GUILD_ID)],
        allow_dms: false,
        http_client: Some(sim.discord_client()),
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
        let token = slash(&sim, VIEWER, &[], CHANNEL_ID, "status", json!([]));
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
    let token = slash(
        &sim,
        VIEWER,
        &[],
        CHANNEL_ID,
        "logs",
        json!([
            opt("service", 3, json!("minio-init")),
            opt("tail", 4, json!(10))
        ]),
    );
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
    let token = slash(
        &sim,
        ADMIN_USER,
        &[ADMIN_ROLE],
        CHANNEL_ID,
        "restart",
        json!([opt("service", 3, json!("mcp-server"))]),
    );
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
    let token = slash(
        &sim,
        VIEWER,
        &[],
        CHANNEL_ID,
        "logs",
        json!([
            opt("service", 3, json!("api-1")),
            opt("tail", 4, json!(2000))
        ]),
    );
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
    let token = slash(
        &sim,
        STRANGER,
        &[],
        CHANNEL_ID,
        "restart",
        json!([opt("service", 3, json!("api-1"))]),
    );
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
async fn commands_from_direct_messages_and_other_servers_are_refused_and_nothing_runs() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    team_permissions(
        dir.path(),
        r#"
[[grants]]
roles = ["viewer"]
commands = ["status"]
services = ["*"]
channels = ["*"]
"#,
    );
    let fake = Arc::new(FakeEngine::riftwing());
    let bot = start_bot(&sim, core(dir.path(), fake.clone())).await;

    // A direct message: no server, no member, the user alone.
    let (id, dm) = ids();
    let mut d = interaction(2, id, &dm, VIEWER, &[], "status", json!([]));
    let member = d.as_object_mut().unwrap().remove("member").unwrap();
    d.as_object_mut().unwrap().remove("guild_id");
    d["user"] = member["user"].clone();
    d["context"] = json!(1);
    sim.dispatch_interaction(d);
    // A user-installed use in someone else's DM or a group DM (context 2): the command is
    // not registered for it, and if it arrives anyway it is refused like a DM.
    let (id, private) = ids();
    let mut d = interaction(2, id, &private, VIEWER, &[], "status", json!([]));
    let member = d.as_object_mut().unwrap().remove("member").unwrap();
    d.as_object_mut().unwrap().remove("guild_id");
    d["user"] = member["user"].clone();
    d["context"] = json!(2);
    d["authorizing_integration_owners"] = json!({"1": VIEWER.to_string()});
    sim.dispatch_interaction(d);
    // Another server the bot was invited to.
    let (id, other) = ids();
    let mut d = interaction(2, id, &other, VIEWER, &[], "status", json!([]));
    d["guild_id"] = json!("1400000000000000099");
    sim.dispatch_interaction(d);

    for (token, place) in [
        (dm, "direct messages"),
        (private, "direct messages"),
        (other, "not in server"),
    ] {
        let fin = sim.final_answer(&token, WAIT).await.expect("an answer");
        assert!(fin.ephemeral, "{fin:?}");
        assert!(
            fin.content.starts_with("**Denied.**") && fin.content.contains(place),
            "{}",
            fin.content
        );
    }
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_thread_the_grants_of_its_parent_channel_apply() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    // Viewers may run /status in the ops channel only.
    team_permissions(
        dir.path(),
        &format!(
            r#"
[[grants]]
roles = ["viewer"]
commands = ["status"]
services = ["*"]
channels = ["{CHANNEL_ID}"]
"#
        ),
    );
    let fake = Arc::new(FakeEngine::riftwing());
    let bot = start_bot(&sim, core(dir.path(), fake.clone())).await;
    let in_ops = sim.add_channel("incident-1", Some(CHANNEL_ID));
    let elsewhere = sim.add_channel("random", None);
    let in_elsewhere = sim.add_channel("chatter", Some(elsewhere));

    let t = slash(&sim, VIEWER, &[], in_ops, "status", json!([]));
    let fin = sim.final_answer(&t, WAIT).await.expect("an answer");
    assert!(!fin.ephemeral, "a thread of ops has ops' grants: {fin:?}");
    let text = format!("{}{:?}", fin.content, fin.embeds);
    assert!(text.contains("api-1"), "{text}");

    for channel in [elsewhere, in_elsewhere] {
        let t = slash(&sim, VIEWER, &[], channel, "status", json!([]));
        let fin = sim.final_answer(&t, WAIT).await.expect("an answer");
        assert!(fin.ephemeral, "{fin:?}");
        assert!(fin.content.starts_with("**Denied.**"), "{}", fin.content);
    }
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
    let token = slash(
        &sim,
        ADMIN_USER,
        &[ADMIN_ROLE],
        CHANNEL_ID,
        "restart",
        json!([opt("service", 3, json!("api-1"))]),
    );
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
    let token = slash(
        &sim,
        ADMIN_USER,
        &[ADMIN_ROLE],
        CHANNEL_ID,
        "restart",
        json!([opt("service", 3, json!("api-2"))]),
    );
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
async fn a_failure_after_deferral_is_an_edit_of_the_placeholder_not_a_deletion_and_a_follow_up() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    // The restart takes 6 s, the bot waits 2 s + 1 s stop timeout: deferred, then timed out.
    let fake = Arc::new(FakeEngine::riftwing().with_delay(Duration::from_secs(6)));
    let core = core_with(dir.path(), fake, |s| {
        s.limits.operation_timeout = Duration::from_secs(2);
        s.limits.stop_timeout = Duration::from_secs(1);
    });
    let bot = start_bot(&sim, core).await;
    let token = slash(
        &sim,
        ADMIN_USER,
        &[ADMIN_ROLE],
        CHANNEL_ID,
        "restart",
        json!([opt("service", 3, json!("api-1"))]),
    );
    // Discord turns the first follow-up after a deferral into an edit of the placeholder and
    // ignores its ephemeral flag: the bot edits the placeholder itself.
    let answer = sim
        .final_answer(&token, Duration::from_secs(15))
        .await
        .expect("the placeholder is edited with the answer");
    assert_eq!(answer.ack_type, 5);
    let content = answer.content.clone();
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
        ["POST", "PATCH"],
        "defer, then edit the placeholder"
    );
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_keeps_discords_windows_and_turns_the_first_follow_up_after_a_deferral_into_an_edit()
 {
    let sim = Sim::start(TOKEN).await;
    let quiet = json!({"parse": []});
    // Past 3 seconds the first answer is refused: the interaction is gone.
    sim.pretend_dispatched("late", 2, Duration::from_secs(4));
    let body = json!({"type": 5}).to_string();
    let (st, resp) = request(
        sim.rest,
        "POST",
        "/api/v10/interactions/1/late/callback",
        &[],
        body.as_bytes(),
    )
    .await;
    assert_eq!(st, 404, "{resp}");
    assert!(resp.contains("10062"), "{resp}");
    assert_eq!(sim.take_violations().len(), 1);

    // Deferred, then an "ephemeral" follow-up: Discord edits the loading message with it.
    sim.pretend_dispatched("defer", 2, Duration::ZERO);
    let (st, _) = request(
        sim.rest,
        "POST",
        "/api/v10/interactions/1/defer/callback",
        &[],
        body.as_bytes(),
    )
    .await;
    assert_eq!(st, 204);
    let original = sim.original("defer").expect("a loading message");
    let follow = json!({"content": "done", "flags": 64, "allowed_mentions": quiet}).to_string();
    let path = format!("/api/v10/webhooks/{APP_ID}/defer");
    let (st, resp) = request(sim.rest, "POST", &path, &[], follow.as_bytes()).await;
    assert_eq!(st, 200, "{resp}");
    let m = sim.message(original).expect("the loading message");
    assert_eq!(m.body["content"], "done");
    assert!(!m.ephemeral, "the deferral was public, so the answer is");
    // The second follow-up is a new message.
    let (st, resp) = request(sim.rest, "POST", &path, &[], follow.as_bytes()).await;
    assert_eq!(st, 200);
    let second: u64 = serde_json::from_str::<Value>(&resp).unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(second, original);
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_an_api_proxy_base_the_bot_registers_and_answers() {
    // DISCORD_API_BASE: an HTTP proxy in front of Discord (serenity's limiter is off then,
    // the proxy limits).
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let core = core_with(dir.path(), Arc::new(FakeEngine::riftwing()), |_| {});
    let before = sim.requests().len();
    let cfg = DiscordConfig {
        api_base: Some(sim.base()),
        http_client: None,
        ..config(&sim, TOKEN)
    };
    let bot = tokio::spawn(async move {
        if let Err(e) = discord::serve(core, cfg).await {
            eprintln!("bot stopped: {e:#}");
        }
    });
    sim.registration(before, WAIT).await.expect("registered");
    let t = slash(&sim, VIEWER, &[], CHANNEL_ID, "status", json!([]));
    sim.final_answer(&t, WAIT).await.expect("an answer");
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_429_serenitys_rate_limiter_waits_and_the_answer_arrives_once() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let core = core_with(dir.path(), Arc::new(FakeEngine::riftwing()), |_| {});
    let before = sim.requests().len();
    let cfg = config(&sim, TOKEN);
    let bot = tokio::spawn(async move {
        if let Err(e) = discord::serve(core, cfg).await {
            eprintln!("bot stopped: {e:#}");
        }
    });
    sim.registration(before, WAIT)
        .await
        .expect("registered through the rate limiter, over TLS");
    sim.rate_limit("POST", "/callback", 1, Duration::from_millis(800));
    let t = slash(&sim, VIEWER, &[], CHANNEL_ID, "status", json!([]));
    let fin = sim
        .final_answer(&t, WAIT)
        .await
        .expect("the answer, after the wait");
    assert!(
        fin.ack_after >= Duration::from_millis(800),
        "{:?}",
        fin.ack_after
    );
    assert!(
        fin.ack_after < Duration::from_secs(3),
        "{:?}",
        fin.ack_after
    );
    let callbacks: Vec<u16> = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains(&format!("/{t}/callback")))
        .map(|r| r.status)
        .collect();
    assert_eq!(callbacks, [429, 204], "refused once, then sent once");
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
    let fine = json!({"type": 4, "data": {"content": "ok", "embeds": [{"title": "t", "description": "d"}], "allowed_mentions": {"parse": []}}});
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
        let token = slash(
            &sim,
            ADMIN_USER,
            &[ADMIN_ROLE],
            CHANNEL_ID,
            "restart",
            json!([opt("service", 3, json!("worker-1"))]),
        );
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

    let token = slash(
        &sim,
        VIEWER,
        &[],
        CHANNEL_ID,
        "logs",
        json!([opt("service", 3, json!("no-such-service"))]),
    );
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

/// The bot behind its HTTP interactions endpoint (REST calls go to the simulator); returns
/// the endpoint's address, the key Discord signs with, and the server task.
async fn endpoint_bot(
    sim: &Sim,
    fake: Arc<FakeEngine>,
    tweak: impl FnOnce(&mut DiscordConfig),
) -> (
    SocketAddr,
    SigningKey,
    tokio::task::JoinHandle<()>,
    tempfile::TempDir,
) {
    let dir = config_dir();
    let mut cfg = config(sim, TOKEN);
    tweak(&mut cfg);
    let (addr, key, server) = serve_endpoint(core(dir.path(), fake), cfg).await;
    (addr, key, server, dir)
}

/// The first accepted edit of `token`'s original response whose body contains `containing`.
async fn original_edit(sim: &Sim, token: &str, containing: &str) -> Option<discord_sim::Recorded> {
    let path = format!("/webhooks/{APP_ID}/{token}/messages/@original");
    sim.wait_for(WAIT, |rs| {
        rs.iter()
            .find(|r| {
                r.method == "PATCH"
                    && r.path.ends_with(&path)
                    && r.status == 200
                    && r.json.to_string().contains(containing)
            })
            .cloned()
    })
    .await
}

/// `core` behind the HTTP interactions endpoint; the endpoint's address, the key Discord
/// signs with, and the server task.
async fn serve_endpoint(
    core: Arc<Core>,
    cfg: DiscordConfig,
) -> (SocketAddr, SigningKey, tokio::task::JoinHandle<()>) {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public: String = key
        .verifying_key()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let bot = Arc::new(Bot::new(core, Arc::new(cfg.http()), cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = endpoint::router(bot, endpoint::verifier(&public).unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, key, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interactions_endpoint_runs_only_correctly_signed_fresh_requests() {
    let sim = Sim::start(TOKEN).await;
    let fake = Arc::new(FakeEngine::riftwing());
    let (addr, key, server, _dir) = endpoint_bot(&sim, fake.clone(), |_| {}).await;

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

    // The same signed request again, two seconds later: a replay, refused, nothing runs twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (st, _) = post(addr, &signed(&key, now, &body), &body).await;
    assert_eq!(st, 409, "a replay");
    assert_eq!(fake.calls(), ["restart riftwing-api-1-1"], "ran once");

    // A forgery that a weak key would accept (R = identity, s = 0) does not verify.
    let mut forged = [0u8; 64];
    forged[0] = 1;
    let hex: String = forged.iter().map(|b| format!("{b:02x}")).collect();
    let (id, token) = ids();
    let other_body = restart(&token, id);
    let h = vec![
        ("X-Signature-Ed25519", hex),
        ("X-Signature-Timestamp", now.to_string()),
    ];
    let (st, _) = post(addr, &h, &other_body).await;
    assert_eq!(st, 401, "degenerate signature");
    server.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_endpoint_an_edit_that_reaches_discord_before_the_reply_is_retried() {
    let sim = Sim::start(TOKEN).await;
    // The restart outlasts the ack budget: the reply defers, the result is an edit.
    let fake = Arc::new(FakeEngine::riftwing().with_delay(Duration::from_millis(500)));
    let (addr, key, server, _dir) = endpoint_bot(&sim, fake.clone(), |c| {
        c.ack_budget = Duration::from_millis(100);
    })
    .await;
    let (id, token) = ids();
    let body = interaction(
        2,
        id,
        &token,
        ADMIN_USER,
        &[ADMIN_ROLE],
        "restart",
        json!([opt("service", 3, json!("api-1"))]),
    )
    .to_string()
    .into_bytes();
    sim.sent_over_http(&token);
    let now = chrono::Utc::now().timestamp();
    let (st, resp) = post(addr, &signed(&key, now, &body), &body).await;
    assert_eq!(st, 200, "{resp}");
    assert_eq!(serde_json::from_str::<Value>(&resp).unwrap()["type"], 5);
    // Discord is slow to take in the reply: the bot's edit arrives first and is refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sim.early_webhook_calls() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no edit came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim.reply_read(&token);
    let edited = original_edit(&sim, &token, "")
        .await
        .expect("the edit is retried once Discord knows the interaction");
    assert!(
        edited.json.to_string().contains("api-1"),
        "{:?}",
        edited.json
    );
    assert_eq!(fake.calls(), ["restart riftwing-api-1-1"]);
    server.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_handler_is_too_slow_the_endpoint_defers_and_the_late_answer_edits_the_placeholder()
 {
    let sim = Sim::start(TOKEN).await;
    // The handler would answer directly after 3 s (its ack budget is longer than the
    // endpoint's 2.5 s): the endpoint answers for it, and the answer must not be lost.
    let fake = Arc::new(FakeEngine::riftwing().with_delay(Duration::from_millis(3000)));
    let (addr, key, server, _dir) = endpoint_bot(&sim, fake.clone(), |c| {
        c.ack_budget = Duration::from_secs(10);
    })
    .await;
    let (id, token) = ids();
    let body = interaction(
        2,
        id,
        &token,
        ADMIN_USER,
        &[ADMIN_ROLE],
        "restart",
        json!([opt("service", 3, json!("api-1"))]),
    )
    .to_string()
    .into_bytes();
    let now = chrono::Utc::now().timestamp();
    let (st, resp) = post(addr, &signed(&key, now, &body), &body).await;
    assert_eq!(st, 200, "{resp}");
    assert_eq!(serde_json::from_str::<Value>(&resp).unwrap()["type"], 5);
    let edited = original_edit(&sim, &token, "")
        .await
        .expect("the late answer arrives as an edit of the placeholder");
    assert!(
        edited.json.to_string().contains("api-1"),
        "{:?}",
        edited.json
    );
    assert_eq!(fake.calls(), ["restart riftwing-api-1-1"], "ran once");
    server.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_stand_in_answer_fits_the_interaction_autocomplete_gets_no_choices() {
    let sim = Sim::start(TOKEN).await;
    // Autocomplete reads the service list from the engine, here slower than 2.5 s.
    let fake = Arc::new(FakeEngine::riftwing().with_list_delay(Duration::from_millis(3500)));
    let (addr, key, server, _dir) = endpoint_bot(&sim, fake, |_| {}).await;
    let (id, token) = ids();
    let mut d = interaction(
        4,
        id,
        &token,
        ADMIN_USER,
        &[ADMIN_ROLE],
        "logs",
        json!([{"name": "service", "type": 3, "value": "ap", "focused": true}]),
    );
    d["data"]["options"][0]["focused"] = json!(true);
    let body = d.to_string().into_bytes();
    let now = chrono::Utc::now().timestamp();
    let started = std::time::Instant::now();
    let (st, resp) = post(addr, &signed(&key, now, &body), &body).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "within Discord's 3 s"
    );
    assert_eq!(st, 200, "{resp}");
    let resp: Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(resp["type"], 8, "autocomplete cannot be deferred: {resp}");
    server.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_the_endpoint_the_timers_and_the_threads_share_one_rest_client() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let core = core_with(dir.path(), Arc::new(FakeEngine::riftwing()), |_| {});
    let (_tx, rx) = tokio::sync::watch::channel(());
    let (client, bot) = discord::assemble(core, config(&sim, TOKEN), rx)
        .await
        .unwrap();
    assert!(
        Arc::ptr_eq(&client.http, &bot.http),
        "one Http, so one rate limiter sees every request"
    );
}

/// GET `path` on `addr`; status and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, "GET", path, &[], b"").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_lets_a_running_restart_finish_refuses_new_commands_and_ends_with_0_and_the_audit_intact()
 {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    // Each restart takes 4 s: it is still running when the stop comes.
    let fake = Arc::new(FakeEngine::riftwing().with_delay(Duration::from_secs(4)));
    let store = sqlite(dir.path()).await;
    let core = store_core(dir.path(), fake.clone(), store.clone(), |_| {});
    let (stop, stops) = tokio::sync::mpsc::channel(4);
    let before = sim.requests().len();
    let bot = discord::serve(core.clone(), config(&sim, TOKEN));
    let serving = tokio::spawn(container_ops::app::cli::serve_until(
        core,
        bot,
        stops,
        Duration::from_secs(30),
    ));
    sim.registration(before, WAIT).await.expect("registered");
    let restart = slash(
        &sim,
        ADMIN_USER,
        &[ADMIN_ROLE],
        CHANNEL_ID,
        "restart",
        json!([opt("service", 3, json!("api-1"))]),
    );
    let cb = callback(&sim, &restart).await;
    assert_eq!(cb.json["type"], 5, "deferred: it takes a while");
    stop.send(()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = slash(&sim, VIEWER, &[], CHANNEL_ID, "status", json!([]));
    let refused = sim.final_answer(&late, WAIT).await.expect("an answer");
    assert!(
        refused.ephemeral && refused.content.contains("restarting"),
        "{refused:?}"
    );
    let fin = sim
        .final_answer(&restart, WAIT)
        .await
        .expect("the running restart finishes and answers");
    assert!(
        fin.embeds[0].to_string().contains("api-1"),
        "{:?}",
        fin.embeds
    );
    let (code, err) = tokio::time::timeout(WAIT, serving)
        .await
        .expect("ends once nothing runs")
        .unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(fake.calls(), ["restart riftwing-api-1-1"]);
    let report = container_ops::core::store::verify_audit(&*store)
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    let decisions: Vec<String> = store
        .audit_page(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {}", e.entry.command, e.entry.decision.as_str()))
        .collect();
    assert!(
        decisions.contains(&"restart executing".to_owned())
            && decisions.contains(&"restart ran".to_owned())
            && decisions.contains(&"status failed".to_owned()),
        "{decisions:?}"
    );
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_health_and_metrics_and_exits_0_on_sigterm() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings = std::fs::read_to_string(repo.join("deploy/container-ops.toml"))
        .unwrap()
        .replace(
            "commands_dir = \"commands\"",
            &format!("commands_dir = {:?}", dir.path().join("commands")),
        )
        .replace(
            "permissions_dir = \"permissions\"",
            &format!("permissions_dir = {:?}", dir.path().join("permissions")),
        );
    let settings_file = dir.path().join("settings.toml");
    std::fs::write(&settings_file, settings).unwrap();
    let health = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let env = [
        ("DISCORD_TOKEN_FILE", token_file.display().to_string()),
        ("DISCORD_GUILD_ID", GUILD_ID.to_string()),
        ("DISCORD_APPLICATION_ID", APP_ID.to_string()),
        ("DISCORD_API_BASE", sim.base()),
        ("CONTAINER_OPS_PROJECT", test_project()),
        (
            "CONTAINER_OPS_DATA_DIR",
            dir.path().join("state").display().to_string(),
        ),
        ("CONTAINER_OPS_HEALTH_ADDR", health.to_string()),
        ("CONTAINER_OPS_LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let before = sim.requests().len();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_container-ops"))
        .arg("--config")
        .arg(&settings_file)
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sim.registration(before, WAIT)
        .await
        .expect("registered, with the token read from its file");
    let mut ready = (0, String::new());
    for _ in 0..100 {
        ready = get(health, "/readyz").await;
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready.0, 200, "{}", ready.1);
    let r: Value = serde_json::from_str(&ready.1).unwrap();
    assert_eq!(
        (&r["store"], &r["engine"], &r["gateway"]),
        (&json!("up"), &json!("up"), &json!("up"))
    );
    assert_eq!(get(health, "/healthz").await.0, 200);
    for _ in 0..2 {
        let t = slash(&sim, VIEWER, &[], CHANNEL_ID, "status", json!([]));
        sim.final_answer(&t, WAIT).await.expect("status");
    }
    let t = slash(
        &sim,
        1,
        &[],
        CHANNEL_ID,
        "restart",
        json!([opt("service", 3, json!("api-1"))]),
    );
    sim.final_answer(&t, WAIT).await.expect("a denial");
    let (_, metrics) = get(health, "/metrics").await;
    for line in [
        r#"container_ops_commands_total{command="status",outcome="ran"} 2"#,
        r#"container_ops_commands_total{command="restart",outcome="denied"} 1"#,
        "container_ops_gateway_connects_total 1",
        "container_ops_audit_spill_backlog 0",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    // SAFETY: kill(2) on the child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    assert!(status.success(), "{status:?}\n{logs}");
    // JSON logs: one object per line, the shutdown among them.
    let shut = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "shut down cleanly");
    assert!(shut.is_some(), "{logs}");
    assert!(!logs.contains(TOKEN), "the token never reaches the logs");
    sim.assert_no_violations();
}

// ---------------------------------------------------------------------------------------------
// Approval cards, incident threads, hidden commands.

/// Dispatches a slash command by `user` (with Discord `roles`) in `channel`; returns its token.
fn slash(sim: &Sim, user: u64, roles: &[u64], channel: u64, name: &str, options: Value) -> String {
    let (id, token) = ids();
    let mut d = interaction(2, id, &token, user, roles, name, options);
    d["channel_id"] = json!(channel.to_string());
    sim.dispatch_interaction(d);
    token
}

/// Clicks a button of a message; returns the click's token.
fn click(sim: &Sim, user: u64, roles: &[u64], message: u64, custom_id: &str) -> String {
    let (id, token) = ids();
    sim.click(id, &token, user, roles, message, custom_id);
    token
}

/// The first follow-up message of an interaction, once it arrived.
async fn follow_up(sim: &Sim, token: &str) -> Option<discord_sim::Recorded> {
    let path = format!("/webhooks/{APP_ID}/{token}");
    sim.wait_for(WAIT, |rs| {
        rs.iter()
            .find(|r| r.method == "POST" && r.path.ends_with(&path))
            .cloned()
    })
    .await
}

/// The first answer (callback) to an interaction, once it arrived.
async fn callback(sim: &Sim, token: &str) -> discord_sim::Recorded {
    sim.wait_for(WAIT, |rs| {
        rs.iter()
            .find(|r| r.path.contains(&format!("/{token}/callback")))
            .cloned()
    })
    .await
    .unwrap_or_else(|| panic!("no answer to {token}"))
}

/// (custom_id, disabled) of every button of a message as it stands.
fn buttons(m: &discord_sim::SimMessage) -> Vec<(String, bool)> {
    m.body["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .map(|b| {
            (
                b["custom_id"].as_str().unwrap_or("").to_owned(),
                b["disabled"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn card_title(m: &discord_sim::SimMessage) -> String {
    m.body["embeds"][0]["title"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn card_field(m: &discord_sim::SimMessage, name: &str) -> String {
    m.body["embeds"][0]["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["name"] == name)
        .and_then(|f| f["value"].as_str())
        .unwrap_or("")
        .to_owned()
}

/// Runs a destructive command and returns its card: (message id, request id). The card is
/// the command's answer: deferred, then edited to the embed with live buttons.
async fn post_card(sim: &Sim, user: u64, roles: &[u64], channel: u64, name: &str) -> (u64, String) {
    let token = slash(sim, user, roles, channel, name, json!([]));
    let fin = sim.final_answer(&token, WAIT).await.expect("an answer");
    assert!(
        fin.ack_after < Duration::from_secs(3),
        "acked after {:?}",
        fin.ack_after
    );
    assert!(!fin.ephemeral, "the card is for the channel");
    let card = sim.original(&token).expect("the card message");
    let m = sim.message(card).unwrap();
    assert!(
        card_title(&m).starts_with(&format!("Approval needed: /{name}")),
        "{:#?}",
        m.body
    );
    let b = buttons(&m);
    assert_eq!(b.len(), 2, "Approve and Deny: {b:?}");
    assert!(b.iter().all(|(id, off)| !off && id.len() <= 100));
    let request = b[0]
        .0
        .strip_prefix("approval:approve:")
        .expect("an approve button")
        .to_owned();
    assert_eq!(b[1].0, format!("approval:deny:{request}"));
    for f in [
        "request",
        "what",
        "targets",
        "digest",
        "requester",
        "expires",
        "approvals",
    ] {
        assert!(
            !card_field(&m, f).is_empty(),
            "field {f} missing: {:#?}",
            m.body
        );
    }
    assert_eq!(card_field(&m, "requester"), format!("<@{user}>"));
    (card, request)
}

/// Replaces `from` by `to` in the private copy of a command file.
fn edit_command(dir: &Path, name: &str, from: &str, to: &str) {
    let path = dir.join(format!("commands/{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{name}.toml has no `{from}`");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

/// A bot on a fake engine with its own store, and the card of `command` run by the admin.
struct CardBot {
    sim: Arc<Sim>,
    fake: Arc<FakeEngine>,
    bot: tokio::task::JoinHandle<()>,
    card: u64,
    request: String,
    _dir: tempfile::TempDir,
}

impl CardBot {
    async fn start(fake: FakeEngine, command: &str, edit: impl FnOnce(&Path)) -> Self {
        let sim = Sim::start(TOKEN).await;
        let dir = config_dir();
        edit(dir.path());
        let fake = Arc::new(fake);
        let store = sqlite(dir.path()).await;
        let bot = start_bot(&sim, store_core(dir.path(), fake.clone(), store, |_| {})).await;
        let (card, request) = post_card(&sim, ADMIN_USER, &[ADMIN_ROLE], CHANNEL_ID, command).await;
        Self {
            sim,
            fake,
            bot,
            card,
            request,
            _dir: dir,
        }
    }

    /// `user` clicks Approve (or Deny); returns the click's token.
    fn click(&self, user: u64, approve: bool) -> String {
        let what = if approve { "approve" } else { "deny" };
        click(
            &self.sim,
            user,
            &[],
            self.card,
            &format!("approval:{what}:{}", self.request),
        )
    }

    /// The card once its title starts with `title`.
    async fn card_when(&self, title: &str) -> discord_sim::SimMessage {
        self.sim
            .until(WAIT, || {
                let m = self.sim.message(self.card)?;
                card_title(&m).starts_with(title).then_some(m)
            })
            .await
            .unwrap_or_else(|| {
                panic!(
                    "the card never showed `{title}`: {:#?}",
                    self.sim.message(self.card)
                )
            })
    }

    fn stop(self) {
        self.bot.abort();
        self.sim.assert_no_violations();
    }
}

async fn sqlite(dir: &Path) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(dir.join("state.db").to_str().unwrap())
            .await
            .unwrap(),
    )
}

/// The replica's Redis, reached from the outside as an operator would check it.
async fn platform_redis() -> redis::aio::MultiplexedConnection {
    let url = container_ops::core::settings::load_platform(None, &|k| std::env::var(k).ok())
        .unwrap()
        .redis
        .unwrap()
        .url;
    redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("the replica's Redis at {url} (deploy/dev/platform up): {e}"))
}

/// FLUSHALL calls Redis itself has counted since it started.
async fn flushall_calls(con: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(con)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_flushall:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_hides_commands_granted_to_nobody_unless_the_catalog_shows_them() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    // Viewers get eight commands; `reset` is granted only to a role nobody holds; everything
    // else is granted to nobody. `/flush-redis` asks to be shown anyway.
    team_permissions(
        dir.path(),
        r#"
[[grants]]
roles = ["viewer"]
commands = ["status", "logs", "stats", "config", "volumes", "network", "disk", "help"]

[[grants]]
roles = ["approver"]
commands = ["reset"]
"#,
    );
    edit_command(
        dir.path(),
        "flush-redis",
        "destructive = true",
        "destructive = true\nshow_when_ungranted = true",
    );
    let bot = start_bot(&sim, core(dir.path(), Arc::new(FakeEngine::riftwing()))).await;
    let reg = sim.registration(0, WAIT).await.unwrap();
    let published: Vec<&str> = reg
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        published,
        [
            "config",
            "disk",
            "flush-redis",
            "help",
            "logs",
            "network",
            "stats",
            "status",
            "volumes"
        ]
    );
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_button_flow_on_the_platform_refuses_the_requester_runs_flushall_once_and_shows_the_result()
 {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let store = sqlite(dir.path()).await;
    let core = store_core(dir.path(), platform().await, store.clone(), on_test_project);
    let bot = start_bot(&sim, core).await;
    let mut redis = platform_redis().await;
    let _: () = redis::cmd("SET")
        .arg("disc:planted")
        .arg("1")
        .query_async(&mut redis)
        .await
        .unwrap();
    let flushes_before = flushall_calls(&mut redis).await;

    let (card, request) =
        post_card(&sim, ADMIN_USER, &[ADMIN_ROLE], CHANNEL_ID, "flush-redis").await;

    // The requester's own click: refused, only they see why, nothing changes.
    let own = click(
        &sim,
        ADMIN_USER,
        &[ADMIN_ROLE],
        card,
        &format!("approval:approve:{request}"),
    );
    let cb = callback(&sim, &own).await;
    assert_eq!(cb.json["type"], 4, "{}", cb.json);
    assert_eq!(
        cb.json["data"]["flags"].as_u64().unwrap_or(0) & 64,
        64,
        "ephemeral"
    );
    let text = cb.json["data"]["content"].as_str().unwrap();
    assert!(text.contains("cannot approve your own request"), "{text}");
    // Someone without the approver role: refused too.
    let viewer = click(
        &sim,
        VIEWER,
        &[],
        card,
        &format!("approval:approve:{request}"),
    );
    let cb = callback(&sim, &viewer).await;
    assert_eq!(
        cb.json["data"]["flags"].as_u64().unwrap_or(0) & 64,
        64,
        "ephemeral"
    );
    assert!(
        cb.json["data"]["content"]
            .as_str()
            .unwrap()
            .starts_with("**Denied.**"),
        "{}",
        cb.json
    );
    let m = sim.message(card).unwrap();
    assert!(buttons(&m).iter().all(|(_, off)| !off), "still open");
    assert_eq!(flushall_calls(&mut redis).await, flushes_before);
    let exists: u32 = redis::cmd("EXISTS")
        .arg("disc:planted")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(exists, 1, "nothing ran yet");

    // A double click by one approver and a click by another, at the same moment.
    let id = format!("approval:approve:{request}");
    let clicks = [
        click(&sim, APPROVER, &[], card, &id),
        click(&sim, APPROVER, &[], card, &id),
        click(&sim, APPROVER2, &[], card, &id),
    ];
    let fin = sim
        .until(WAIT, || {
            let m = sim.message(card)?;
            card_title(&m).starts_with("Approved and ran").then_some(m)
        })
        .await
        .expect("the card shows the result");
    assert!(
        buttons(&fin).iter().all(|(_, off)| *off),
        "buttons off: {:?}",
        buttons(&fin)
    );
    let approver = card_field(&fin, "approved by");
    assert!(
        approver.starts_with(&format!("<@{APPROVER}>"))
            || approver.starts_with(&format!("<@{APPROVER2}>")),
        "{approver}"
    );
    assert!(
        card_field(&fin, "result").contains("Redis flushed"),
        "{:#?}",
        fin.body
    );
    for t in &clicks {
        callback(&sim, t).await;
    }
    // Every click answered once; the run's report was posted once (by the winning click).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rs = sim.requests();
    for t in &clicks {
        let n = rs
            .iter()
            .filter(|r| r.path.contains(&format!("/{t}/callback")))
            .count();
        assert_eq!(n, 1, "one answer per click");
    }
    let reports: Vec<&discord_sim::Recorded> = rs
        .iter()
        .filter(|r| {
            r.method == "POST"
                && clicks
                    .iter()
                    .any(|t| r.path.ends_with(&format!("/webhooks/{APP_ID}/{t}")))
                && r.json["flags"].as_u64().unwrap_or(0) & 64 == 0
        })
        .collect();
    assert_eq!(
        reports.len(),
        1,
        "the run's report is posted once: {reports:#?}"
    );
    // Redis itself counted one FLUSHALL, and the planted key is gone.
    assert_eq!(flushall_calls(&mut redis).await, flushes_before + 1);
    let exists: u32 = redis::cmd("EXISTS")
        .arg("disc:planted")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(exists, 0, "FLUSHALL ran");
    // The audit holds the refusal, the approval and the run, in that order.
    let mut audit = store
        .query_audit(&AuditQuery {
            limit: 200,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    audit.reverse();
    let results: Vec<String> = audit
        .iter()
        .filter(|e| e.entry.result.contains(&request))
        .map(|e| format!("{} {}", e.entry.decision, e.entry.result))
        .collect();
    let pos = |needle: &str| {
        results
            .iter()
            .position(|r| r.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in {results:#?}"))
    };
    assert!(pos("own request") < pos("approved by") && pos("approved by") < pos("succeeded"));
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_click_closes_the_card_naming_who_denied_and_nothing_runs() {
    let t = CardBot::start(FakeEngine::riftwing(), "flush-redis", |_| {}).await;
    let cb = callback(&t.sim, &t.click(APPROVER, false)).await;
    assert_eq!(
        cb.json["type"], 7,
        "the card is updated in place: {}",
        cb.json
    );
    let m = t.sim.message(t.card).unwrap();
    assert!(card_title(&m).starts_with("Denied"), "{:#?}", m.body);
    assert!(card_field(&m, "denied by").starts_with(&format!("<@{APPROVER}>")));
    assert!(buttons(&m).iter().all(|(_, off)| *off));
    // A late approve on the closed card is refused ephemerally.
    let cb = callback(&t.sim, &t.click(APPROVER2, true)).await;
    assert_eq!(cb.json["data"]["flags"].as_u64().unwrap_or(0) & 64, 64);
    let text = cb.json["data"]["content"].as_str().unwrap();
    assert!(text.contains("already **denied**"), "{text}");
    let calls = t.fake.calls();
    assert!(!calls.iter().any(|c| c.contains("FLUSHALL")), "{calls:?}");
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_card_has_its_buttons_disabled_through_the_channel_route_even_after_a_restart() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    edit_command(dir.path(), "flush-redis", "ttl = \"15m\"", "ttl = \"4s\"");
    let fake = Arc::new(FakeEngine::riftwing());
    let store = sqlite(dir.path()).await;
    let channel_edit = |card: u64| {
        let path = format!("/api/v10/channels/{}/messages/{card}", CHANNEL_ID);
        move |rs: &[discord_sim::Recorded]| {
            rs.iter()
                .find(|r| r.method == "PATCH" && r.path == path && r.status == 200)
                .cloned()
        }
    };

    // A live bot: its timer closes the card after the interaction token is gone.
    let bot = start_bot(
        &sim,
        store_core(dir.path(), fake.clone(), store.clone(), |_| {}),
    )
    .await;
    let token = slash(
        &sim,
        ADMIN_USER,
        &[ADMIN_ROLE],
        CHANNEL_ID,
        "flush-redis",
        json!([]),
    );
    sim.final_answer(&token, WAIT).await.expect("the card");
    let card = sim.original(&token).unwrap();
    sim.expire_token(&token);
    sim.wait_for(WAIT, channel_edit(card))
        .await
        .expect("the card edited through the channel route");
    let m = sim.message(card).unwrap();
    assert!(card_title(&m).starts_with("Expired"), "{:#?}", m.body);
    assert!(buttons(&m).iter().all(|(_, off)| *off), "{:?}", buttons(&m));

    // A card whose bot stops before the expiry: nothing closes it while no bot runs ...
    let token = slash(
        &sim,
        ADMIN_USER,
        &[ADMIN_ROLE],
        CHANNEL_ID,
        "flush-redis",
        json!([]),
    );
    sim.final_answer(&token, WAIT).await.expect("the card");
    let card2 = sim.original(&token).unwrap();
    sim.expire_token(&token);
    bot.abort();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        channel_edit(card2)(&sim.requests()).is_none(),
        "no bot, no edit"
    );
    // ... and the restarted bot finds it in the store and closes it.
    let bot = start_bot(
        &sim,
        store_core(dir.path(), fake.clone(), store.clone(), |_| {}),
    )
    .await;
    sim.wait_for(WAIT, channel_edit(card2))
        .await
        .expect("the restarted bot closes the card");
    let m = sim.message(card2).unwrap();
    assert!(card_title(&m).starts_with("Expired"), "{:#?}", m.body);
    assert!(buttons(&m).iter().all(|(_, off)| *off));
    // A click on the expired card is refused and runs nothing.
    let id = card_field(&m, "request").trim_matches('`').to_owned();
    let late = click(
        &sim,
        APPROVER,
        &[],
        card2,
        &format!("approval:approve:{id}"),
    );
    let cb = callback(&sim, &late).await;
    assert_eq!(cb.json["data"]["flags"].as_u64().unwrap_or(0) & 64, 64);
    assert!(
        fake.calls().iter().all(|c| !c.contains("FLUSHALL")),
        "{:?}",
        fake.calls()
    );
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_thread_lists_two_commands_and_an_approval_in_order_and_is_archived_on_close() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let store = sqlite(dir.path()).await;
    let core = store_core(dir.path(), platform().await, store.clone(), on_test_project);
    let bot = start_bot(&sim, core).await;
    let admin = &[ADMIN_ROLE][..];

    let open = slash(
        &sim,
        ADMIN_USER,
        admin,
        CHANNEL_ID,
        "incident",
        json!([
            opt("action", 3, json!("open")),
            opt("title", 3, json!("Redis memory alert"))
        ]),
    );
    let fin = sim.final_answer(&open, WAIT).await.expect("an answer");
    let d = fin.embeds[0]["description"].as_str().unwrap().to_owned();
    let threads = sim.threads();
    assert_eq!(threads.len(), 1, "one thread");
    let thread = &threads[0];
    assert_eq!(
        (thread.kind, thread.parent),
        (11, Some(CHANNEL_ID)),
        "public, in the channel"
    );
    assert!(
        thread.name.ends_with("Redis memory alert"),
        "{}",
        thread.name
    );
    assert!(
        d.contains("opened: Redis memory alert") && d.contains(&format!("<#{}>", thread.id)),
        "{d}"
    );
    let summary = &sim.messages_in(thread.id)[0];
    assert_eq!(thread.pins, [summary.id], "the summary is pinned");
    assert!(
        summary.body["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .contains("Redis memory alert")
    );

    // Two commands, then a destructive one approved with the card's button, all in the thread.
    let t = slash(&sim, VIEWER, &[], thread.id, "status", json!([]));
    sim.final_answer(&t, WAIT).await.expect("status");
    let t = slash(
        &sim,
        VIEWER,
        &[],
        thread.id,
        "logs",
        json!([
            opt("service", 3, json!("minio-init")),
            opt("tail", 4, json!(5))
        ]),
    );
    sim.final_answer(&t, WAIT).await.expect("logs");
    let (card, request) = post_card(&sim, ADMIN_USER, admin, thread.id, "flush-redis").await;
    click(
        &sim,
        APPROVER,
        &[],
        card,
        &format!("approval:approve:{request}"),
    );
    sim.until(WAIT, || {
        card_title(&sim.message(card)?)
            .starts_with("Approved and ran")
            .then_some(())
    })
    .await
    .expect("the approval ran");
    // Give the click's timeline entry (written after its answer) a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let close = slash(
        &sim,
        ADMIN_USER,
        admin,
        thread.id,
        "incident",
        json!([opt("action", 3, json!("close"))]),
    );
    let fin = sim.final_answer(&close, WAIT).await.expect("the timeline");
    let mut timeline = fin.embeds[0]["description"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    for (_, body) in &fin.files {
        timeline.push_str(&String::from_utf8_lossy(body));
    }
    let order = [
        "opened: incident opened: Redis memory alert",
        "command: /status",
        "command: /logs service:minio-init tail:5",
        &format!("command: /flush-redis → pending: approval {request}"),
        &format!("approval: approve {request} → ran: Approved request {request} ran"),
        "closed: incident closed",
    ];
    let mut at = 0;
    for needle in order {
        let found = timeline[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` missing or out of order in:\n{timeline}"));
        at += found + needle.len();
    }
    assert!(timeline.contains(&ADMIN_USER.to_string()) && timeline.contains(&APPROVER.to_string()));
    let archived = sim
        .until(WAIT, || {
            let c = sim.channel(thread.id)?;
            (c.archived && c.locked).then_some(c)
        })
        .await;
    assert!(archived.is_some(), "the thread is archived and locked");
    // serenity 0.12 pins through the spec's deprecated route (it has no route for the new
    // one); Discord still serves it. The only deprecated call the bot makes.
    assert_eq!(
        sim.deprecated_routes(),
        ["PUT /channels/{channel_id}/pins/{message_id}"]
    );
    bot.abort();
    sim.assert_no_violations();
}

/// Opens an incident from the channel and returns the answer's text and the thread, if any.
async fn open_incident(sim: &Arc<Sim>, title: &str) -> (String, Option<SimChannel>) {
    let open = slash(
        sim,
        ADMIN_USER,
        &[ADMIN_ROLE],
        CHANNEL_ID,
        "incident",
        json!([
            opt("action", 3, json!("open")),
            opt("title", 3, json!(title))
        ]),
    );
    let fin = sim.final_answer(&open, WAIT).await.expect("an answer");
    let mut text = fin.content.clone();
    for e in &fin.embeds {
        text.push_str(e["description"].as_str().unwrap_or(""));
        text.push_str(e["title"].as_str().unwrap_or(""));
    }
    (text, sim.threads().into_iter().next())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pin_messages_an_incident_still_opens_and_says_the_summary_is_not_pinned() {
    let sim = Sim::start(TOKEN).await;
    sim.deny(CHANNEL_ID, Permission::PinMessages);
    let dir = config_dir();
    let store = sqlite(dir.path()).await;
    let core = store_core(
        dir.path(),
        Arc::new(FakeEngine::riftwing()),
        store.clone(),
        |_| {},
    );
    let bot = start_bot(&sim, core).await;
    let (text, thread) = open_incident(&sim, "API 502s").await;
    let thread = thread.expect("the thread exists");
    assert!(
        text.contains("opened: API 502s")
            && text.contains("could not be pinned")
            && text.contains("Pin Messages"),
        "{text}"
    );
    assert!(thread.pins.is_empty());
    assert_eq!(
        sim.messages_in(thread.id).len(),
        1,
        "the summary is in the thread"
    );
    let open = store.open_incidents().await.unwrap();
    assert_eq!(open.len(), 1, "the incident is open, not orphaned");
    assert_eq!(
        open[0].thread_id.as_deref(),
        Some(thread.id.to_string().as_str())
    );
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_create_public_threads_no_incident_is_opened_and_the_permission_is_named() {
    let sim = Sim::start(TOKEN).await;
    sim.deny(CHANNEL_ID, Permission::CreatePublicThreads);
    let dir = config_dir();
    let store = sqlite(dir.path()).await;
    let core = store_core(
        dir.path(),
        Arc::new(FakeEngine::riftwing()),
        store.clone(),
        |_| {},
    );
    let bot = start_bot(&sim, core).await;
    let (text, thread) = open_incident(&sim, "API 502s").await;
    assert!(thread.is_none());
    assert!(
        text.contains("could not be created") && text.contains("Create Public Threads"),
        "{text}"
    );
    assert!(store.open_incidents().await.unwrap().is_empty());
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_manage_threads_closing_says_in_the_thread_that_it_stays_open() {
    let sim = Sim::start(TOKEN).await;
    sim.deny(CHANNEL_ID, Permission::ManageThreads);
    let dir = config_dir();
    let store = sqlite(dir.path()).await;
    let core = store_core(
        dir.path(),
        Arc::new(FakeEngine::riftwing()),
        store.clone(),
        |_| {},
    );
    let bot = start_bot(&sim, core).await;
    let (_, thread) = open_incident(&sim, "disk full").await;
    let thread = thread.expect("a thread");
    let close = slash(
        &sim,
        ADMIN_USER,
        &[ADMIN_ROLE],
        thread.id,
        "incident",
        json!([opt("action", 3, json!("close"))]),
    );
    sim.final_answer(&close, WAIT).await.expect("the timeline");
    let said = sim
        .wait_for(WAIT, |rs| {
            rs.iter()
                .find(|r| {
                    r.method == "POST"
                        && r.path.contains(&format!("/webhooks/{APP_ID}/{close}"))
                        && r.json["content"]
                            .as_str()
                            .is_some_and(|c| c.contains("could not be archived"))
                })
                .map(|r| r.json["content"].as_str().unwrap().to_owned())
        })
        .await
        .expect("a message in the thread");
    assert!(said.contains("Manage Threads"), "{said}");
    let c = sim.channel(thread.id).unwrap();
    assert!(!c.archived && !c.locked);
    assert!(
        store.open_incidents().await.unwrap().is_empty(),
        "closed in the store"
    );
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_the_bot_sends_can_ping_anyone_and_its_commands_are_for_servers_only() {
    let sim = Sim::start(TOKEN).await;
    let dir = config_dir();
    let core = core_with(dir.path(), Arc::new(FakeEngine::riftwing()), |_| {});
    let bot = start_bot(&sim, core).await;
    let t = slash(&sim, VIEWER, &[], CHANNEL_ID, "status", json!([]));
    sim.final_answer(&t, WAIT).await.expect("status");
    let t = slash(&sim, 1, &[], CHANNEL_ID, "status", json!([]));
    sim.final_answer(&t, WAIT).await.expect("a denial");
    let reqs = sim.requests();
    let reg = reqs
        .iter()
        .find(|r| r.method == "PUT" && r.path.ends_with("/commands"))
        .expect("registered");
    for c in reg.json.as_array().unwrap() {
        assert_eq!(c["contexts"], json!([0]), "{}", c["name"]);
        assert_eq!(c["integration_types"], json!([0]), "{}", c["name"]);
    }
    let messages: Vec<&Value> = reqs
        .iter()
        .filter(|r| r.path.contains("/callback") || r.path.contains("/webhooks/"))
        .map(|r| {
            if r.json["data"].is_object() {
                &r.json["data"]
            } else {
                &r.json
            }
        })
        .filter(|m| m["content"].is_string() || m["embeds"].is_array())
        .collect();
    assert!(messages.len() >= 2);
    for m in messages {
        assert_eq!(m["allowed_mentions"]["parse"], json!([]), "{m}");
    }
    bot.abort();
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_approved_run_is_acknowledged_in_time_shows_running_then_the_result() {
    // Each restart takes 3 s: the click is acknowledged (type 6) and the card edited later.
    let slow = FakeEngine::riftwing().with_delay(Duration::from_secs(3));
    let t = CardBot::start(slow, "restart-infra", |_| {}).await;
    let cb = callback(&t.sim, &t.click(APPROVER, true)).await;
    assert_eq!(cb.json["type"], 6, "deferred update: {}", cb.json);
    let fin = t.card_when("Approved and ran").await;
    let titles: Vec<String> = fin
        .history
        .iter()
        .filter_map(|b| b["embeds"][0]["title"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        titles,
        [
            "Approval needed: /restart-infra",
            "Approved, running: /restart-infra",
            "Approved and ran: /restart-infra"
        ],
        "pending, running (buttons off), done"
    );
    let mut calls = t.fake.calls();
    calls.sort();
    assert_eq!(
        calls,
        [
            "restart riftwing-postgres-1",
            "restart riftwing-redis-1",
            "restart riftwing-temporal-1"
        ],
        "each infra service restarted once"
    );
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_endpoint_a_slow_click_gets_a_deferred_update_and_the_card_follows_as_an_edit() {
    let slow = FakeEngine::riftwing().with_delay(Duration::from_secs(3));
    let t = CardBot::start(slow, "restart-infra", |_| {}).await;
    // The same store behind the HTTP endpoint, with a handler that would answer only after
    // the run (3 s), later than the endpoint's 2.5 s.
    let store = sqlite(t._dir.path()).await;
    let core = store_core(t._dir.path(), t.fake.clone(), store, |_| {});
    let mut cfg = config(&t.sim, TOKEN);
    cfg.ack_budget = Duration::from_secs(10);
    let (addr, key, server) = serve_endpoint(core, cfg).await;

    let (id, token) = ids();
    let body = t
        .sim
        .click_payload(
            id,
            &token,
            APPROVER,
            &[],
            t.card,
            &format!("approval:approve:{}", t.request),
        )
        .to_string()
        .into_bytes();
    let now = chrono::Utc::now().timestamp();
    let started = std::time::Instant::now();
    let (st, resp) = post(addr, &signed(&key, now, &body), &body).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(st, 200, "{resp}");
    let resp: Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(
        resp["type"], 6,
        "a deferred update of the card, not a public thinking: {resp}"
    );
    original_edit(&t.sim, &token, "Approved and ran")
        .await
        .expect("the card's update arrives as an edit once the run ends");
    let mut calls = t.fake.calls();
    calls.sort();
    assert_eq!(
        calls,
        [
            "restart riftwing-postgres-1",
            "restart riftwing-redis-1",
            "restart riftwing-temporal-1"
        ],
        "ran once"
    );
    server.abort();
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_run_that_fails_shows_failed_on_the_card_and_tells_the_approver() {
    // The fake's redis-cli prints nothing, so FLUSHALL is not confirmed: the run fails.
    let t = CardBot::start(FakeEngine::riftwing(), "flush-redis", |_| {}).await;
    let approve = t.click(APPROVER, true);
    let sim = &t.sim;
    let follow = follow_up(sim, &approve)
        .await
        .expect("a follow-up for the approver");
    assert_eq!(
        follow.json["flags"].as_u64().unwrap_or(0) & 64,
        64,
        "ephemeral"
    );
    assert!(
        follow.json["content"].as_str().unwrap().contains("failed"),
        "{}",
        follow.json
    );
    let m = t.card_when("Approved, but failed").await;
    assert!(
        card_title(&m).starts_with("Approved, but failed"),
        "{:#?}",
        m.body
    );
    assert!(
        card_field(&m, "result").contains("FLUSHALL"),
        "{:#?}",
        m.body
    );
    assert!(buttons(&m).iter().all(|(_, off)| *off));
    assert_eq!(
        t.fake
            .calls()
            .iter()
            .filter(|c| c.contains("FLUSHALL"))
            .count(),
        1,
        "attempted once, not retried"
    );
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_refuses_thread_pin_and_message_requests_as_discord_does() {
    let sim = Sim::start(TOKEN).await;
    let auth = || vec![("Authorization", format!("Bot {TOKEN}"))];
    let send = |method: &'static str, path: String, body: Value| {
        let sim = sim.clone();
        async move {
            let (st, resp) = request(
                sim.rest,
                method,
                &path,
                &auth(),
                body.to_string().as_bytes(),
            )
            .await;
            let code = serde_json::from_str::<Value>(&resp)
                .ok()
                .and_then(|v| v["code"].as_u64());
            (st, code, resp)
        }
    };
    let threads = format!("/api/v10/channels/{CHANNEL_ID}/threads");
    // Refused thread creations: name too long or empty, not a thread type, a bad archive
    // duration, an unknown channel.
    for (body, code) in [
        (json!({"name": "n".repeat(101), "type": 11}), 50035),
        (json!({"name": "", "type": 11}), 50035),
        (json!({"name": "x", "type": 0}), 50035),
        (
            json!({"name": "x", "type": 11, "auto_archive_duration": 30}),
            50035,
        ),
    ] {
        let (st, c, resp) = send("POST", threads.clone(), body).await;
        assert_eq!((st, c), (400, Some(code)), "{resp}");
    }
    let (st, c, _) = send(
        "POST",
        "/api/v10/channels/42/threads".into(),
        json!({"name": "x", "type": 11}),
    )
    .await;
    assert_eq!((st, c), (404, Some(10003)));
    assert_eq!(sim.take_violations().len(), 5);

    // A good thread; no thread inside a thread.
    let (st, _, resp) = send(
        "POST",
        threads.clone(),
        json!({"name": "incident-1 x", "type": 11}),
    )
    .await;
    assert_eq!(st, 201, "{resp}");
    let thread: u64 = serde_json::from_str::<Value>(&resp).unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (st, c, _) = send(
        "POST",
        format!("/api/v10/channels/{thread}/threads"),
        json!({"name": "x", "type": 11}),
    )
    .await;
    assert_eq!((st, c), (400, Some(50024)));

    // Pins need a message of that channel; archiving is for threads; an archived thread takes no posts.
    let (st, _, resp) = send(
        "POST",
        format!("/api/v10/channels/{thread}/messages"),
        json!({"content": "summary", "allowed_mentions": {"parse": []}}),
    )
    .await;
    assert_eq!(st, 200, "{resp}");
    let msg = serde_json::from_str::<Value>(&resp).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, c, _) = send(
        "PUT",
        format!("/api/v10/channels/{CHANNEL_ID}/pins/{msg}"),
        Value::Null,
    )
    .await;
    assert_eq!((st, c), (404, Some(10008)), "a message of another channel");
    let (st, _, _) = send(
        "PUT",
        format!("/api/v10/channels/{thread}/pins/{msg}"),
        Value::Null,
    )
    .await;
    assert_eq!(st, 204);
    let (st, c, _) = send(
        "PATCH",
        format!("/api/v10/channels/{CHANNEL_ID}"),
        json!({"archived": true}),
    )
    .await;
    assert_eq!(
        (st, c),
        (400, Some(50035)),
        "a text channel is not archived"
    );
    let (st, _, _) = send(
        "PATCH",
        format!("/api/v10/channels/{thread}"),
        json!({"archived": true, "locked": true}),
    )
    .await;
    assert_eq!(st, 200);
    let (st, c, _) = send(
        "POST",
        format!("/api/v10/channels/{thread}/messages"),
        json!({"content": "late", "allowed_mentions": {"parse": []}}),
    )
    .await;
    assert_eq!((st, c), (400, Some(50083)));
    let (st, c, _) = send(
        "PATCH",
        format!("/api/v10/channels/{thread}/messages/{msg}"),
        json!({"content": "edit", "allowed_mentions": {"parse": []}}),
    )
    .await;
    assert_eq!((st, c), (400, Some(50083)));
    assert_eq!(sim.take_violations().len(), 5);
    let t = sim.channel(thread).unwrap();
    assert!(t.archived && t.locked && t.pins.len() == 1);

    // Interaction answers: one first answer per token; an expired token is refused.
    let cb = "/api/v10/interactions/1/tok-once/callback".to_owned();
    let (st, _, _) = send(
        "POST",
        cb.clone(),
        json!({"type": 4, "data": {"content": "ok", "allowed_mentions": {"parse": []}}}),
    )
    .await;
    assert_eq!(st, 204);
    let (st, c, _) = send("POST", cb, json!({"type": 4, "data": {"content": "again"}})).await;
    assert_eq!((st, c), (400, Some(40060)));
    sim.expire_token("tok-late");
    let (st, c, _) = send(
        "POST",
        "/api/v10/interactions/2/tok-late/callback".into(),
        json!({"type": 5}),
    )
    .await;
    assert_eq!((st, c), (401, Some(50027)));
    assert_eq!(sim.take_violations().len(), 2);
    sim.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_approvals_needed_the_first_click_counts_on_the_card_and_the_second_runs_it() {
    let two = |d: &Path| edit_command(d, "restart-infra", "min_approvals = 1", "min_approvals = 2");
    let t = CardBot::start(FakeEngine::riftwing(), "restart-infra", two).await;
    assert_eq!(
        callback(&t.sim, &t.click(APPROVER, true)).await.json["type"],
        7
    );
    let m = t.sim.message(t.card).unwrap();
    assert!(
        card_title(&m).starts_with("Approval needed"),
        "{:#?}",
        m.body
    );
    assert!(
        card_field(&m, "approvals").starts_with("1 of 2"),
        "{:#?}",
        m.body
    );
    assert!(
        buttons(&m).iter().all(|(_, off)| !off),
        "still open for the second approver"
    );
    assert!(
        t.fake.calls().is_empty(),
        "one approval of two runs nothing"
    );
    // The same person again does not count twice.
    let cb = callback(&t.sim, &t.click(APPROVER, true)).await;
    let text = cb.json["data"]["content"].as_str().unwrap();
    assert!(text.contains("already reviewed"), "{text}");
    callback(&t.sim, &t.click(APPROVER2, true)).await;
    let m = t.card_when("Approved and ran").await;
    assert!(
        card_field(&m, "approvals").starts_with("2 of 2"),
        "{:#?}",
        m.body
    );
    assert_eq!(
        t.fake.calls().len(),
        3,
        "postgres, temporal and redis restarted once"
    );
    t.stop();
}
