//! What the benchmarks share: the bot on the real Engine, the docker CLI, timing and machine facts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use container_ops::app::wire::load_config;
use container_ops::core::audit::MemoryAudit;
use container_ops::core::ratelimit::RateSpec;
use container_ops::core::report::{Rendered, render_markdown};
use container_ops::core::types::{ChannelId, UserId};
use container_ops::infra::docker::DockerEngine;
use container_ops::pipeline::{Core, Invocation, LazyEngine};

// Shared with the tests; not every bench calls every helper.
#[path = "../../tests/common/cli.rs"]
#[allow(dead_code)]
mod cli;
pub use cli::{docker, project};

pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Runs per side: `CONTAINER_OPS_BENCH_RUNS`, at least 10.
pub fn runs() -> usize {
    std::env::var("CONTAINER_OPS_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20usize)
        .max(10)
}

/// The bot as the console builds it: shipped settings, commands and permissions, real Engine.
pub async fn core() -> Core {
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
    let (mut settings, catalog, policy) = load_config(None, &lookup).expect("shipped config");
    // The limiter is still consulted on every run; only its quotas are raised so that N runs by
    // one person are not refused (the shipped 10 per minute per command would stop the bench).
    let lots = RateSpec::new(1_000_000, Duration::from_secs(1));
    settings.limits.per_user = lots;
    settings.limits.per_user_command = lots;
    let engine = DockerEngine::connect(settings.docker_host.as_deref(), &project())
        .await
        .expect("the Docker Engine must be reachable: run deploy/dev/platform up");
    Core::new(
        settings,
        catalog,
        policy,
        LazyEngine::ready(Arc::new(engine)),
        Arc::new(MemoryAudit::new()),
    )
}

/// The adapter alone, to show what the Engine costs apart from the pipeline.
pub async fn engine() -> DockerEngine {
    DockerEngine::connect(None, &project())
        .await
        .expect("the Docker Engine must be reachable: run deploy/dev/platform up")
}

/// One console line through the whole pipeline and the Markdown renderer, as the person sees it.
pub async fn say(core: &Core, who: &str, line: &str) -> Rendered {
    let inv = Invocation::from_line(
        UserId::parse(who).expect("user"),
        ChannelId::parse("console").expect("channel"),
        line,
    );
    match core.run(inv).await {
        Ok(r) => render_markdown(&r.report, core.settings.limits.message_limit),
        Err(e) => panic!("{line} failed: {}", e.markdown()),
    }
}

/// Median, min and max of `n` timed runs of `f`.
pub struct Timing {
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
}

pub fn time_runs(n: usize, mut f: impl FnMut()) -> Timing {
    let mut t: Vec<Duration> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    Timing {
        median: t[t.len() / 2],
        min: t[0],
        max: t[t.len() - 1],
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The facts a reader needs to judge the figures: cores, Docker version, load, build profile.
pub fn machine_facts() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let docker = docker(&[
        "version",
        "-f",
        "{{.Server.Version}} (API {{.Server.APIVersion}})",
    ]);
    let profile = if cfg!(debug_assertions) {
        "unoptimised (debug assertions on)"
    } else {
        "optimised"
    };
    format!(
        "{cores} cores, Docker {docker}, load average {} at start, bot built {profile}",
        load.join(" ")
    )
}
