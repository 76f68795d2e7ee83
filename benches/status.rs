//! Benchmark: `/status` through the pipeline (in-process, warm) against `docker-compose ps` and
//! `docker ps --filter label=…` on the platform replica; prints medians and their ratios.
//!
//! Run: `cargo bench --bench status` with the replica up (deploy/dev/platform up).

mod common;

use std::process::Command;

use container_ops::core::engine::Engine;

use common::{docker, machine_facts, ms, project, repo, runs, say, time_runs};

fn main() {
    let n = runs();
    let project = project();
    println!(
        "/status benchmark on project `{project}`: {}",
        machine_facts()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let core = rt.block_on(common::core());

    // Warm up: the connection and the first listing are not what a running bot pays.
    let first = rt.block_on(say(&core, "dave", "/status"));
    let label = format!("label=com.docker.compose.project={project}");
    let containers = docker(&["ps", "-aq", "--filter", &label]).lines().count();
    assert!(
        first.text.contains(&format!("Status of {project}:")) && containers > 10,
        "the replica is not up (deploy/dev/platform up): {}",
        first.text
    );

    let bot = time_runs(n, || {
        let r = rt.block_on(say(&core, "dave", "/status"));
        assert!(r.text.contains("Status of"), "{}", r.text);
    });
    // The adapter alone: list and inspect the project's containers, no pipeline around it.
    let engine = rt.block_on(common::engine());
    let adapter = time_runs(n, || {
        let cs = rt.block_on(engine.containers()).expect("containers");
        assert_eq!(cs.len(), containers);
    });
    let compose_file = repo("deploy/dev/docker-compose.yml");
    let compose_file = compose_file.to_str().expect("utf-8 path");
    let compose = time_runs(n, || {
        let out = Command::new("docker-compose")
            .args(["-f", compose_file, "-p", &project, "ps"])
            .output()
            .expect("docker-compose");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let ps = time_runs(n, || {
        let out = docker(&["ps", "-a", "--filter", &label]);
        assert!(out.lines().count() > containers, "{out}");
    });

    println!("{containers} containers, median of {n} runs each (min … max)");
    for (what, t) in [
        ("/status through the pipeline, in-process, warm", &bot),
        ("the adapter's listing alone, no pipeline", &adapter),
        ("docker-compose ps", &compose),
        ("docker ps -a --filter label=…", &ps),
    ] {
        println!(
            "  {what:<48} {:>11}  ({} … {})",
            ms(t.median),
            ms(t.min),
            ms(t.max)
        );
    }
    let ratio = |t: &common::Timing| t.median.as_secs_f64() / bot.median.as_secs_f64();
    println!(
        "ratio: docker-compose ps / bot = {:.1}x; docker ps / bot = {:.2}x (docker ps / adapter alone = {:.2}x)",
        ratio(&compose),
        ratio(&ps),
        ps.median.as_secs_f64() / adapter.median.as_secs_f64()
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at the end: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
