//! `/diagnose` and two dependency views through the console on the healthy platform replica.
//!
//! Needs the Compose project up and healthy (`CONTAINER_OPS_TEST_PROJECT`, default `riftwing`,
//! ports from the seed's variables); injects no faults, but takes the platform lock so a fault
//! test never runs underneath it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::TestPlatform;
use container_ops::app::wire::load_config;
use container_ops::core::audit::MemoryAudit;
use container_ops::core::types::{ChannelId, UserId};
use container_ops::ingress::console::Console;
use container_ops::pipeline::{Core, LazyEngine};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

const SEED_HEADINGS: [&str; 8] = [
    "## Container Operations Report",
    "### Issue:",
    "### Services Affected:",
    "### Root Cause:",
    "### Resolution Steps:",
    "### Verification:",
    "### Prevention:",
    "### Related Services to Monitor:",
];

async fn core(p: &TestPlatform) -> Core {
    let fixed: Vec<(String, String)> = vec![
        ("CONTAINER_OPS_PROJECT".into(), p.project.clone()),
        (
            "CONTAINER_OPS_COMMANDS_DIR".into(),
            repo("commands").display().to_string(),
        ),
        (
            "CONTAINER_OPS_PERMISSIONS_DIR".into(),
            repo("permissions").display().to_string(),
        ),
    ];
    // The seed's port variables come from the process, as they would for the bot.
    let lookup = move |k: &str| {
        fixed
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                k.ends_with("_PORT")
                    .then(|| std::env::var(k).ok())
                    .flatten()
            })
    };
    let (settings, catalog, policy) =
        load_config(None, &lookup).expect("the shipped settings, commands and permissions load");
    Core::new(
        settings,
        catalog,
        policy,
        LazyEngine::ready(p.engine().await),
        Arc::new(MemoryAudit::new()),
    )
}

async fn say(core: &Core, line: &str) -> (u8, String) {
    let dir = tempfile::tempdir().unwrap();
    let console = Console {
        core,
        user: UserId::parse("dave").unwrap(),
        channel: ChannelId::parse("console").unwrap(),
        attachments_dir: Some(dir.path().to_owned()),
    };
    let mut out = Vec::new();
    let code = console.run_line(line, &mut out).await.unwrap();
    (code, String::from_utf8(out).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_on_the_healthy_platform_says_healthy_with_every_seed_heading() {
    let p = TestPlatform::get();
    p.wait_healthy(Duration::from_secs(120)).await;
    let core = core(&p).await;
    let (code, text) = say(&core, "/diagnose").await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("Container Operations Report: healthy"),
        "{text}"
    );
    assert!(
        text.contains("- none - all services running and healthy"),
        "{text}"
    );
    let mut from = 0;
    for h in SEED_HEADINGS {
        let at = text[from..]
            .find(h)
            .unwrap_or_else(|| panic!("`{h}` missing or out of order in:\n{text}"));
        from += at + h.len();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_connections_and_redis_info_answer_through_the_console() {
    let p = TestPlatform::get();
    p.wait_healthy(Duration::from_secs(120)).await;
    let core = core(&p).await;
    let (code, text) = say(&core, "/db view:connections").await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("max_connections"), "{text}");
    let (code, text) = say(&core, "/redis view:info").await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ping"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_temporal_storage_and_network_check_answer_through_the_console() {
    let p = TestPlatform::get();
    p.wait_healthy(Duration::from_secs(120)).await;
    let core = core(&p).await;
    for (line, expect) in [
        ("/health target:redis", "probes pass"),
        ("/temporal", "workflows in namespace"),
        ("/storage view:stat", "exists      true"),
        (
            "/network-check view:dns from:api-1 name:postgres",
            "postgres",
        ),
        (
            "/network-check view:port from:api-1 host:redis port:6379",
            "open",
        ),
    ] {
        let (code, text) = say(&core, line).await;
        assert_eq!(code, 0, "{line}: {text}");
        assert!(text.contains(expect), "{line}: {text}");
    }
}
