//! Benchmark: `/logs tail:1000` through the pipeline on a container with a 1 GB log, against
//! `docker logs --tail 1000`: time (median) and peak memory (RSS high-water) of each.
//!
//! Run: `cargo bench --bench logs` with the replica up. The bench creates its own container,
//! labelled into the project as service `bench-log`, fills its log with 1 GiB of 200-character
//! lines, measures, and removes it (also when it fails).

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use container_ops::core::engine::{Engine, LogQuery};

use common::{docker, machine_facts, ms, project, runs, say, time_runs};

const SERVICE: &str = "bench-log";
const LOG_BYTES: u64 = 1 << 30;

/// The 1 GB-log container; removed however the bench ends.
struct BenchLog {
    id: String,
}

impl BenchLog {
    fn start(project: &str) -> Self {
        let name = format!("{project}_{SERVICE}_1");
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        let id = docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &format!("com.docker.compose.project={project}"),
            "--label",
            &format!("com.docker.compose.service={SERVICE}"),
            // The daemon's default rotates logs at 10 MB; this log must stay whole.
            "--log-driver",
            "json-file",
            "--log-opt",
            "max-size=4g",
            "--log-opt",
            "max-file=1",
            "riftwing-base:bookworm",
            "sh",
            "-c",
            "yes \"$(head -c 200 /dev/zero | tr '\\0' x)\" | head -c 1G; echo; echo bench-log done",
        ]);
        BenchLog { id }
    }

    /// Waits for the writer to finish and returns the size of the log file on disk.
    fn wait_written(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            let state = docker(&["inspect", "-f", "{{.State.Status}} {{.LogPath}}", &self.id]);
            let (status, path) = state.split_once(' ').expect("status and log path");
            if status == "exited" {
                let size = std::fs::metadata(path)
                    .unwrap_or_else(|e| panic!("log file {path}: {e} (run as root)"))
                    .len();
                assert!(size >= LOG_BYTES, "log is only {size} bytes");
                return size;
            }
            assert!(Instant::now() < deadline, "the log writer did not finish");
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

impl Drop for BenchLog {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

/// kB from a /proc/self/status line such as `VmHWM:   123456 kB`.
fn proc_status_kb(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("a kB figure")
}

/// Resets this process's RSS high-water mark to its current RSS (Linux ≥ 4.0).
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM via /proc/self/clear_refs");
}

/// Runs `docker logs --tail 1000` to completion; returns its stdout line count and peak RSS in kB.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also returns its peak RSS"
)]
fn docker_logs(id: &str) -> (usize, u64) {
    let mut child = Command::new("docker")
        .args(["logs", "--tail", "1000", id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker logs");
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut out)
        .expect("read docker logs");
    let pid = i32::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: rusage is plain data, zeroed is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our unwaited child; the pointers are to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    let status = std::process::ExitStatus::from_raw(status);
    assert!(status.success(), "docker logs: {status}");
    let lines = out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
    (lines, u64::try_from(usage.ru_maxrss).unwrap_or(0))
}

fn main() {
    let n = runs().min(20);
    let project = project();
    println!(
        "/logs benchmark on project `{project}`: {}",
        machine_facts()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let core = rt.block_on(common::core());

    let log = BenchLog::start(&project);
    let filling = Instant::now();
    let size = log.wait_written();
    println!(
        "log of service `{SERVICE}`: {:.2} GiB on disk (json-file), written in {:.0} s",
        size as f64 / f64::from(1u32 << 30),
        filling.elapsed().as_secs_f64()
    );

    let line = format!("/logs {SERVICE} tail:1000");
    // Warm-up, and the check that the bot really returns the last 1000 lines.
    let first = rt.block_on(say(&core, "dave", &line));
    let body = &first
        .attachments
        .iter()
        .find(|a| a.name == format!("logs-{SERVICE}.txt"))
        .unwrap_or_else(|| panic!("no log attachment: {}", first.text))
        .body;
    assert_eq!(body.lines().count(), 1000, "{}", first.text);
    assert!(body.ends_with("bench-log done"), "the newest line is last");
    let (cli_lines, _) = docker_logs(&log.id);
    assert_eq!(cli_lines, 1000);

    let rss_before = proc_status_kb("VmRSS:");
    let mut bot_peak = 0;
    let bot = time_runs(n, || {
        reset_peak_rss();
        let r = rt.block_on(say(&core, "dave", &line));
        bot_peak = bot_peak.max(proc_status_kb("VmHWM:"));
        assert!(!r.attachments.is_empty());
    });
    // The adapter alone (one Engine logs call, tail 1000), to split Engine time from the rest
    // of the pipeline (listing, env for redaction, redaction, rendering).
    let engine = rt.block_on(common::engine());
    let q = LogQuery {
        tail: 1000,
        since: None,
        timestamps: false,
        max_bytes: usize::MAX,
    };
    let adapter = time_runs(n, || {
        let lines = rt.block_on(engine.logs(&log.id, &q)).expect("logs");
        assert_eq!(lines.len(), 1000);
    });
    let mut cli_peak = 0;
    let cli = time_runs(n, || {
        let (lines, peak) = docker_logs(&log.id);
        assert_eq!(lines, 1000);
        cli_peak = cli_peak.max(peak);
    });
    drop(log);

    println!("median of {n} runs each (min … max); peak RSS is the process's high-water mark");
    println!(
        "  /logs tail:1000 through the pipeline, in-process  {:>11}  ({} … {})  peak RSS {:.1} MiB (RSS before {:.1} MiB)",
        ms(bot.median),
        ms(bot.min),
        ms(bot.max),
        bot_peak as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    println!(
        "  the adapter's Engine logs call alone, no pipeline {:>11}  ({} … {})",
        ms(adapter.median),
        ms(adapter.min),
        ms(adapter.max)
    );
    println!(
        "  docker logs --tail 1000 (a new process per run)   {:>11}  ({} … {})  peak RSS {:.1} MiB",
        ms(cli.median),
        ms(cli.min),
        ms(cli.max),
        cli_peak as f64 / 1024.0
    );
    println!(
        "ratio: time docker logs / bot = {:.2}x (docker logs / adapter alone = {:.2}x); peak RSS bot / docker logs = {:.2}x",
        cli.median.as_secs_f64() / bot.median.as_secs_f64(),
        cli.median.as_secs_f64() / adapter.median.as_secs_f64(),
        bot_peak as f64 / cli_peak.max(1) as f64
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
