//! `/diagnose` of the healthy platform: concurrent wall time vs the same probes one by one vs the seed's shell commands.
//!
//! Run: `cargo bench --bench diagnose` with the platform up (project and ports from the same
//! environment as the platform script: COMPOSE_PROJECT_NAME / CONTAINER_OPS_TEST_PROJECT, POSTGRES_PORT, ...).

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use container_ops::core::engine::Engine;
use container_ops::core::platform::PlatformConfig;
use container_ops::infra::docker::DockerEngine;
use container_ops::ops::diagnose::probe_and_diagnose;
use container_ops::ops::diagnose::probes::engine::container_probe;
use container_ops::ops::diagnose::probes::exec::diagnose_probes;
use container_ops::ops::diagnose::probes::{ProbeKind, ProbeOutcome, ProbeStatus, Probes};
use futures::future::join_all;

// Shared with the tests; this bench only reads the healthcheck interval from it.
#[path = "../tests/common/cli.rs"]
#[allow(dead_code)]
mod cli;

/// Rounds: `CONTAINER_OPS_BENCH_RUNS`, default 10, at least 5.
fn round_count() -> usize {
    std::env::var("CONTAINER_OPS_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10usize)
        .max(5)
}

/// Busy CPU time of the whole machine so far (every process: the bot, dockerd, runc, the
/// platform's services), from the first line of /proc/stat.
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...; USER_HZ is 100 on Linux.
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    let total: u64 = ticks.iter().take(8).sum();
    Duration::from_millis(10) * (total - idle) as u32
}

/// CPU time of this process so far (the bot's side of every probe), from /proc/self/stat.
fn own_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name's closing parenthesis; utime and stime are the 12th and 13th.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Duration::from_millis(10) * ticks as u32
}

/// Awaits `fut`; returns its output, the wall time and the machine's busy CPU time meanwhile.
async fn measured<T>(fut: impl Future<Output = T>) -> (T, Duration, Duration) {
    let busy = machine_busy();
    let t = Instant::now();
    let out = fut.await;
    (out, t.elapsed(), machine_busy().saturating_sub(busy))
}

/// One family of probes alone, `rounds` times: prints the median wall and CPU per run.
async fn family(name: &str, rounds: usize, mut run: impl AsyncFnMut()) {
    let (mut walls, mut cpu) = (Vec::new(), Duration::ZERO);
    for _ in 0..rounds {
        let ((), wall, busy) = measured(run()).await;
        walls.push(wall);
        cpu += busy;
    }
    println!(
        "  {name:<28} {:>9} | {}",
        ms(median(walls)),
        ms(cpu / rounds as u32)
    );
}

/// "Close to the slowest single probe": the goal, as a ratio.
const GOAL: f64 = 1.5;

/// The shortest any concurrent `/diagnose` can take, from the probes' times alone: the
/// container-side probes cannot start before the inventory has found their containers, so
/// the chain is the inventory plus the slowest of them; the network probes run beside it.
fn critical_path(outs: &[ProbeOutcome]) -> Duration {
    let slowest = |pick: &dyn Fn(ProbeKind) -> bool| {
        outs.iter()
            .filter(|o| pick(o.probe))
            .map(|o| o.duration)
            .max()
            .unwrap_or_default()
    };
    let inventory = slowest(&|k| k == ProbeKind::Inventory);
    let after_inventory = slowest(&|k| {
        matches!(
            k,
            ProbeKind::Container | ProbeKind::Dns | ProbeKind::Port | ProbeKind::Disk
        )
    });
    let network = slowest(&|k| {
        matches!(
            k,
            ProbeKind::Postgres | ProbeKind::Redis | ProbeKind::S3 | ProbeKind::Http
        )
    });
    (inventory + after_inventory).max(network)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The seed's runbook equivalents of what `/diagnose` checks, run one after another.
fn seed_commands(project: &str, cfg: &PlatformConfig) -> Vec<Vec<String>> {
    let http = |name: &str| {
        cfg.http
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.url.clone())
            .unwrap_or_else(|| panic!("the platform file has no http check `{name}`"))
    };
    let s3 = cfg.s3.as_ref().expect("[s3]");
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/dev/docker-compose.yml");
    let compose = |args: &[&str]| {
        let mut v: Vec<String> = vec![
            "docker-compose".into(),
            "-f".into(),
            file.display().to_string(),
            "-p".into(),
            project.into(),
        ];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    };
    let psql = |sql: &str| {
        compose(&[
            "exec", "-T", "postgres", "psql", "-U", "app", "-d", "app", "-c", sql,
        ])
    };
    let mut cmds = vec![
        compose(&["ps"]),
        compose(&[
            "exec",
            "-T",
            "postgres",
            "pg_isready",
            "-U",
            "app",
            "-d",
            "app",
        ]),
        psql(
            "SELECT pid, age(clock_timestamp(), query_start), query FROM pg_stat_activity WHERE state != 'idle' ORDER BY age DESC;",
        ),
        psql(
            "SELECT pg_database.datname, pg_size_pretty(pg_database_size(pg_database.datname)) FROM pg_database;",
        ),
        psql("SELECT * FROM pg_locks WHERE NOT granted;"),
        psql(
            "SELECT query, calls, mean_exec_time FROM pg_stat_statements ORDER BY mean_exec_time DESC LIMIT 10;",
        ),
        psql(
            "SELECT sum(heap_blks_read) as heap_read, sum(heap_blks_hit) as heap_hit, sum(heap_blks_hit) / (sum(heap_blks_hit) + sum(heap_blks_read)) as ratio FROM pg_statio_user_tables;",
        ),
        psql("SELECT count(*) FROM pg_stat_activity;"),
        compose(&["exec", "-T", "redis", "redis-cli", "ping"]),
        compose(&["exec", "-T", "redis", "redis-cli", "INFO", "memory"]),
        compose(&["exec", "-T", "redis", "redis-cli", "INFO", "persistence"]),
        vec![
            "curl".into(),
            "-sI".into(),
            format!(
                "{}/{}/{}",
                s3.endpoint,
                s3.bucket,
                s3.probe_key.as_deref().unwrap_or("")
            ),
        ],
        compose(&[
            "exec",
            "-T",
            "api-1",
            "curl",
            "-f",
            "http://localhost:3000/healthz",
        ]),
        compose(&[
            "exec",
            "-T",
            "temporal",
            "curl",
            "-f",
            "http://localhost:7233/health",
        ]),
        vec!["curl".into(), "-s".into(), http("ai-gateway")],
        vec!["curl".into(), "-sI".into(), http("api")],
        vec!["curl".into(), "-s".into(), http("console")],
        vec!["curl".into(), "-s".into(), http("mcp")],
        compose(&["exec", "-T", "worker-1", "df", "-h", "/scratch"]),
    ];
    for (svc, _) in cfg.depends_on.iter().filter(|(s, _)| !cfg.is_one_shot(s)) {
        let deps = cfg.direct_runtime_deps(svc);
        if let Some(first) = deps.first() {
            cmds.push(compose(&["exec", "-T", svc, "getent", "hosts", first]));
        }
    }
    for svc in cfg.long_running() {
        cmds.push(compose(&["logs", "--tail=300", &svc]));
    }
    cmds
}

fn main() {
    let project = std::env::var("CONTAINER_OPS_TEST_PROJECT")
        .or_else(|_| std::env::var("COMPOSE_PROJECT_NAME"))
        .unwrap_or_else(|_| "riftwing".into());
    let platform = container_ops::core::settings::load_platform(None, &|k| std::env::var(k).ok())
        .expect("the platform file and its port variables");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let engine: Arc<dyn Engine> = Arc::new(
            DockerEngine::connect(None, &project)
                .await
                .unwrap_or_else(|e| {
                    panic!("docker engine for `{project}`: {e} (is the platform up?)")
                }),
        );
        let probes = Probes::new(platform.clone(), &project).expect("probes");
        // Warm-up: connection pools, DNS, first exec.
        let (report, outcomes) = probe_and_diagnose(&probes, engine.clone()).await;
        if !report.healthy {
            // Timings are still real; say the platform was not healthy so they are read as such.
            println!(
                "WARNING: the platform is not healthy, timings include failing probes:\n{}",
                report.to_markdown()
            );
        }
        println!("project {project}: {} probes per /diagnose", outcomes.len());
        // The replica's healthcheck interval (HEALTH_INTERVAL) sets how busy the idle platform is.
        let interval = match cli::slowest_healthcheck_interval(&project) {
            Ok(Some(d)) => format!("{d:?}"),
            _ => "unknown".into(),
        };
        let containers = engine.containers().await.expect("containers");
        println!("healthcheck interval of the platform: {interval}");

        let mut concurrent = Vec::new();
        let mut one_by_one = Vec::new();
        let mut probe_sum = Vec::new();
        let mut slowest_alone = Vec::new();
        let mut chain_alone = Vec::new();
        let mut rounds = Vec::new();
        let rounds_n = round_count();
        let (mut cpu_conc, mut cpu_seq, mut cpu_bot) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for _ in 0..rounds_n {
            let bot_before = own_cpu();
            let (conc, wall, busy) = measured(probes.run_all(engine.clone())).await;
            cpu_bot += own_cpu().saturating_sub(bot_before);
            concurrent.push(wall);
            cpu_conc += busy;
            let late = conc
                .iter()
                .filter(|o| o.status == ProbeStatus::TimedOut)
                .count();
            if late > 0 {
                println!("note: {late} probe(s) timed out in this round");
            }
            let (seq, wall, busy) = measured(probes.run_one_by_one(engine.clone())).await;
            one_by_one.push(wall);
            cpu_seq += busy;
            probe_sum.push(seq.iter().map(|o| o.duration).sum());
            slowest_alone.push(seq.iter().map(|o| o.duration).max().unwrap_or_default());
            chain_alone.push(critical_path(&seq));
            rounds.push((conc, seq));
        }
        // Where the time goes: per probe kind, the slowest probe of the kind, under
        // concurrency and alone (medians over the rounds).
        let kinds: BTreeSet<ProbeKind> = rounds[0].0.iter().map(|o| o.probe).collect();
        println!(
            "per kind, slowest probe of the kind (median of {rounds_n}): concurrent | alone | count"
        );
        for k in kinds {
            let worst = |outs: &[ProbeOutcome]| {
                outs.iter()
                    .filter(|o| o.probe == k)
                    .map(|o| o.duration)
                    .max()
                    .unwrap_or_default()
            };
            let c = median(rounds.iter().map(|r| worst(&r.0)).collect());
            let a = median(rounds.iter().map(|r| worst(&r.1)).collect());
            let n = rounds[0].0.iter().filter(|o| o.probe == k).count();
            println!("  {k:<10} {:>9} | {:>9} | {n}", ms(c), ms(a));
        }
        let dns_probes = rounds[0]
            .0
            .iter()
            .filter(|o| o.probe == ProbeKind::Dns)
            .count();
        let (conc, seq) = rounds.pop().expect("rounds");
        for (name, mut outs) in [("concurrent", conc), ("one by one", seq)] {
            outs.sort_by_key(|o| std::cmp::Reverse(o.duration));
            let top: Vec<String> = outs
                .iter()
                .take(5)
                .map(|o| format!("{} {}", o.label(), ms(o.duration)))
                .collect();
            println!("slowest probes ({name}, last round): {}", top.join(", "));
        }
        let c = median(concurrent);
        let s = median(one_by_one);
        let slowest = median(slowest_alone);
        println!("/diagnose concurrent (median of {rounds_n}):   {}", ms(c));
        println!(
            "same probes one by one (median):      {}  (sum of probe durations {})",
            ms(s),
            ms(median(probe_sum))
        );
        println!("slowest single probe alone (median):  {}", ms(slowest));
        println!(
            "ratio one-by-one / concurrent:        {:.1}x",
            s.as_secs_f64() / c.as_secs_f64()
        );
        let ratio = c.as_secs_f64() / slowest.as_secs_f64();
        println!(
            "ratio concurrent / slowest probe:     {ratio:.2}x (goal: within {GOAL}x: {})",
            if ratio <= GOAL { "met" } else { "NOT met" }
        );
        let chain = median(chain_alone);
        println!(
            "critical path alone (inventory, then the slowest probe that needs it): {}; concurrent / critical path: {:.2}x",
            ms(chain),
            c.as_secs_f64() / chain.as_secs_f64()
        );
        println!("exec-side DNS probes per /diagnose:   {dns_probes}");
        // The floor no scheduling can beat: the machine's CPU work for one /diagnose spread
        // over every core (tick resolution 10 ms, averaged over the rounds).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = |d: Duration| d / rounds_n as u32;
        println!(
            "machine CPU per /diagnose (all processes): concurrent {}, one by one {}; on {cores} cores the floor is {} ({:.2}x the slowest probe)",
            ms(per(cpu_conc)),
            ms(per(cpu_seq)),
            ms(per(cpu_conc) / cores as u32),
            (per(cpu_conc) / cores as u32).as_secs_f64() / slowest.as_secs_f64()
        );
        // Part of that is the platform idling (healthcheck execs, workers' loops): the same
        // machine with nobody asking, over 2 s, scaled to the concurrent run's wall time.
        let ((), idle_wall, idle_busy) = measured(tokio::time::sleep(Duration::from_secs(2))).await;
        let background = idle_busy.mul_f64(c.as_secs_f64() / idle_wall.as_secs_f64());
        let own = per(cpu_conc).saturating_sub(background);
        println!(
            "  of which the idle platform: {} ({:.0} ms CPU per second), the bot process {}; /diagnose's own: {}, floor {} ({:.2}x the slowest probe)",
            ms(background),
            idle_busy.as_secs_f64() * 1000.0 / idle_wall.as_secs_f64(),
            ms(per(cpu_bot)),
            ms(own),
            ms(own / cores as u32),
            (own / cores as u32).as_secs_f64() / slowest.as_secs_f64()
        );
        // Where that CPU goes: each family of probes alone, all of its probes at once.
        let network = probes.config.network_for(&project);
        let deadline = Duration::from_secs(3);
        println!("by family, each alone (median wall | machine CPU per run, {rounds_n} runs):");
        family("engine list + inspect", rounds_n, async || {
            engine.containers().await.expect("list");
        })
        .await;
        family("container probes (logs)", rounds_n, async || {
            join_all(containers.iter().map(|c| {
                container_probe(engine.as_ref(), c, &probes.config, &network, deadline)
            }))
            .await;
        })
        .await;
        family("exec probes (dns, df)", rounds_n, async || {
            join_all(diagnose_probes(
                engine.as_ref(),
                &containers,
                &probes.config,
                deadline,
            ))
            .await;
        })
        .await;
        family("network probes (pg, redis, s3, http)", rounds_n, async || {
            join_all(probes.network_probes()).await;
        })
        .await;

        let cmds = seed_commands(&project, &platform);
        let t = Instant::now();
        let mut failed = 0;
        for argv in &cmds {
            let ok = Command::new(&argv[0])
                .args(&argv[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                failed += 1;
            }
        }
        let shell = t.elapsed();
        println!(
            "seed shell commands in sequence:      {} ({} commands, {failed} failed)",
            ms(shell),
            cmds.len()
        );
        println!(
            "ratio shell / concurrent:             {:.1}x",
            shell.as_secs_f64() / c.as_secs_f64()
        );
    });
}
