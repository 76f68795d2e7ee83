//! Pure conversions from Engine API payloads to the engine port's plain types.
//!
//! Kept free of I/O so the arithmetic (`docker stats` CPU %, memory without cache), the
//! log-frame assembly and the parsing rules are unit-tested without a daemon.

use std::collections::{HashMap, VecDeque};

use bollard::container::LogOutput;
use bollard::models::{
    ContainerInspectResponse, ContainerMemoryStats, ContainerStatsResponse, PortMap,
};
use chrono::{DateTime, Utc};

use crate::core::engine::{ContainerInfo, LogLine, LogStream, PortMapping, StatsSnapshot};

pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
pub const VOLUME_LABEL: &str = "com.docker.compose.volume";

/// Longest log line kept; the rest of a longer line is dropped and marked.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Upper bound on lines returned by one log read, whatever tail the caller asks for.
pub const MAX_LOG_LINES: usize = 10_000;
/// Healthcheck outputs are shown in chat; one probe's output is cut to this length.
const MAX_HEALTH_OUTPUT: usize = 1024;

/// A container reference is interpolated into a URL path by bollard, so only the
/// characters Docker allows in ids and names get through (no `/`, `?`, `..`).
pub fn is_valid_container_ref(id: &str) -> bool {
    let mut chars = id.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    id.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `NAME=value` pairs split at the first `=`; a bare `NAME` has an empty value.
pub fn split_env(env: &[String]) -> Vec<(String, String)> {
    env.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

/// The Engine writes `0001-01-01T00:00:00Z` for "never"; that becomes `None`.
pub fn parse_engine_time(s: &str) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc);
    (t.timestamp() > 0).then_some(t)
}

/// Published ports of an inspect `NetworkSettings.Ports` map; unpublished ones are skipped.
pub fn port_mappings(ports: &PortMap) -> Vec<PortMapping> {
    let mut out = Vec::new();
    for (key, bindings) in ports {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(container_port) = port.parse::<u16>() else {
            continue;
        };
        for b in bindings.iter().flatten() {
            let Some(host_port) = b.host_port.as_deref().and_then(|p| p.parse::<u16>().ok()) else {
                continue;
            };
            let m = PortMapping {
                host_ip: b.host_ip.clone().unwrap_or_default(),
                host_port,
                container_port,
                protocol: proto.to_string(),
            };
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out.sort_by(|a, b| {
        (a.container_port, &a.protocol, &a.host_ip, a.host_port).cmp(&(
            b.container_port,
            &b.protocol,
            &b.host_ip,
            b.host_port,
        ))
    });
    out
}

/// CPU % exactly as `docker stats` computes it: the container's share of the host's CPU
/// time between the two samples, scaled by the number of online CPUs.
pub fn cpu_percent(s: &ContainerStatsResponse) -> f64 {
    let (Some(cpu), Some(pre)) = (&s.cpu_stats, &s.precpu_stats) else {
        return 0.0;
    };
    let total = |c: &bollard::models::ContainerCpuStats| {
        c.cpu_usage
            .as_ref()
            .and_then(|u| u.total_usage)
            .unwrap_or(0)
    };
    // Counters restart from zero when the container restarts: no delta, not a wrap-around.
    let cpu_delta = total(cpu).saturating_sub(total(pre));
    let system_delta = cpu
        .system_cpu_usage
        .unwrap_or(0)
        .saturating_sub(pre.system_cpu_usage.unwrap_or(0));
    let online = match cpu.online_cpus {
        Some(n) if n > 0 => n as u64,
        _ => cpu
            .cpu_usage
            .as_ref()
            .and_then(|u| u.percpu_usage.as_ref())
            .map(|v| v.len() as u64)
            .unwrap_or(0),
    };
    if cpu_delta == 0 || system_delta == 0 || online == 0 {
        return 0.0;
    }
    cpu_delta as f64 / system_delta as f64 * online as f64 * 100.0
}

/// Memory usage without the page cache, like `docker stats`: cgroup v1 subtracts
/// `total_inactive_file`, cgroup v2 `inactive_file`; older daemons only report `cache`.
pub fn memory_usage(m: &ContainerMemoryStats) -> u64 {
    let usage = m.usage.unwrap_or(0);
    let cache = m.stats.as_ref().and_then(|st| {
        st.get("total_inactive_file")
            .or_else(|| st.get("inactive_file"))
            .or_else(|| st.get("cache"))
            .copied()
    });
    match cache {
        Some(c) if c < usage => usage - c,
        _ => usage,
    }
}

pub fn stats_snapshot(s: &ContainerStatsResponse) -> StatsSnapshot {
    let (memory_usage, memory_limit) = s
        .memory_stats
        .as_ref()
        .map(|m| (memory_usage(m), m.limit.unwrap_or(0)))
        .unwrap_or((0, 0));
    let (net_rx, net_tx) = s
        .networks
        .iter()
        .flatten()
        .fold((0u64, 0u64), |(rx, tx), (_, n)| {
            (
                rx.saturating_add(n.rx_bytes.unwrap_or(0)),
                tx.saturating_add(n.tx_bytes.unwrap_or(0)),
            )
        });
    let (block_read, block_write) = s
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
        .into_iter()
        .flatten()
        .fold((0u64, 0u64), |(r, w), e| {
            let v = e.value.unwrap_or(0);
            match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => (r.saturating_add(v), w),
                Some("write") => (r, w.saturating_add(v)),
                _ => (r, w),
            }
        });
    StatsSnapshot {
        cpu_percent: cpu_percent(s),
        memory_usage,
        memory_limit,
        net_rx,
        net_tx,
        block_read,
        block_write,
        pids: s.pids_stats.as_ref().and_then(|p| p.current).unwrap_or(0),
    }
}

pub fn labels(i: &ContainerInspectResponse) -> Option<&HashMap<String, String>> {
    i.config.as_ref()?.labels.as_ref()
}

/// True when the inspected container carries this project's Compose label.
pub fn belongs_to(i: &ContainerInspectResponse, project: &str) -> bool {
    labels(i)
        .and_then(|l| l.get(PROJECT_LABEL))
        .is_some_and(|p| p == project)
}

/// The port's view of one inspected container.
pub fn container_info(i: &ContainerInspectResponse) -> ContainerInfo {
    let state = i.state.clone().unwrap_or_default();
    let status = state.status.map(|s| s.to_string()).unwrap_or_default();
    let health = state.health.as_ref();
    let health_status = health
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none");
    let health_log = health
        .and_then(|h| h.log.as_ref())
        .into_iter()
        .flatten()
        .map(|r| truncate(r.output.as_deref().unwrap_or("").trim(), MAX_HEALTH_OUTPUT))
        .collect();
    // A running container reports exit code 0; only a finished run has a meaningful one.
    let exit_code = match status.as_str() {
        "exited" | "dead" | "restarting" => state.exit_code,
        _ => None,
    };
    let mut volumes: Vec<String> = i
        .mounts
        .iter()
        .flatten()
        .filter(|m| m.typ.as_deref() == Some("volume"))
        .filter_map(|m| m.name.clone())
        .collect();
    volumes.sort();
    let settings = i.network_settings.as_ref();
    let mut networks: Vec<(String, String)> = settings
        .and_then(|n| n.networks.as_ref())
        .into_iter()
        .flatten()
        .map(|(name, ep)| (name.clone(), ep.ip_address.clone().unwrap_or_default()))
        .collect();
    networks.sort();
    ContainerInfo {
        id: i.id.clone().unwrap_or_default(),
        name: i
            .name
            .as_deref()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_string(),
        service: labels(i)
            .and_then(|l| l.get(SERVICE_LABEL))
            .cloned()
            .unwrap_or_default(),
        image: i
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .or_else(|| i.image.clone())
            .unwrap_or_default(),
        state: status,
        health: health_status,
        started_at: state.started_at.as_deref().and_then(parse_engine_time),
        finished_at: state.finished_at.as_deref().and_then(parse_engine_time),
        restart_count: i.restart_count.unwrap_or(0),
        exit_code,
        oom_killed: state.oom_killed.unwrap_or(false),
        ports: settings
            .and_then(|n| n.ports.as_ref())
            .map(port_mappings)
            .unwrap_or_default(),
        health_log,
        memory_limit: i
            .host_config
            .as_ref()
            .and_then(|h| h.memory)
            .unwrap_or(0)
            .max(0) as u64,
        volumes,
        networks,
    }
}

/// Cuts at a char boundary at most `max` bytes in, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Splits a line the Engine prefixed with its RFC 3339 timestamp (`timestamps=true`).
pub fn split_timestamp(line: &str) -> (Option<DateTime<Utc>>, &str) {
    match line.split_once(' ') {
        Some((ts, rest)) => match DateTime::parse_from_rfc3339(ts) {
            Ok(t) => (Some(t.with_timezone(&Utc)), rest),
            Err(_) => (None, line),
        },
        None => match DateTime::parse_from_rfc3339(line) {
            // An empty line still carries its timestamp.
            Ok(t) => (Some(t.with_timezone(&Utc)), ""),
            Err(_) => (None, line),
        },
    }
}

/// Turns the demultiplexed frames of a log (or exec) stream into lines, per stream,
/// keeping only the last `tail` lines and at most [`MAX_LINE_BYTES`] of each line, so
/// memory stays bounded whatever the log size.
pub struct LogAssembler {
    tail: usize,
    max_bytes: usize,
    bytes: usize,
    keep_timestamps: bool,
    since: Option<DateTime<Utc>>,
    lines: VecDeque<LogLine>,
    partial_out: Partial,
    partial_err: Partial,
}

#[derive(Default)]
struct Partial {
    bytes: Vec<u8>,
    cut: bool,
}

impl Partial {
    fn push(&mut self, chunk: &[u8]) {
        let room = MAX_LINE_BYTES.saturating_sub(self.bytes.len());
        if chunk.len() > room {
            self.bytes.extend_from_slice(&chunk[..room]);
            self.cut = true;
        } else {
            self.bytes.extend_from_slice(chunk);
        }
    }

    fn take(&mut self) -> (Vec<u8>, bool) {
        let cut = std::mem::take(&mut self.cut);
        (std::mem::take(&mut self.bytes), cut)
    }
}

impl LogAssembler {
    /// `keep_timestamps`: leave the Engine's timestamp in the text (it is always parsed
    /// into `at`); `since`: drop lines older than this (the Engine filters by the second).
    pub fn new(tail: usize, keep_timestamps: bool, since: Option<DateTime<Utc>>) -> Self {
        let tail = tail.min(MAX_LOG_LINES);
        Self {
            tail,
            max_bytes: usize::MAX,
            bytes: 0,
            keep_timestamps,
            since,
            lines: VecDeque::with_capacity(tail.min(1024)),
            partial_out: Partial::default(),
            partial_err: Partial::default(),
        }
    }

    pub fn push(&mut self, frame: LogOutput) {
        let (stream, bytes) = match frame {
            LogOutput::StdErr { message } => (LogStream::Stderr, message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (LogStream::Stdout, message)
            }
            LogOutput::StdIn { .. } => return,
        };
        let mut rest: &[u8] = &bytes;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            self.partial(stream).push(&rest[..pos]);
            let (line, cut) = self.partial(stream).take();
            self.emit(stream, line, cut);
            rest = &rest[pos + 1..];
        }
        if !rest.is_empty() {
            self.partial(stream).push(rest);
        }
    }

    /// Keeps at most `max` bytes of line text, the newest lines.
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max;
        self
    }

    /// Flushes lines that ended without a newline and returns the kept lines, oldest first.
    pub fn finish(mut self) -> Vec<LogLine> {
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let (line, cut) = self.partial(stream).take();
            if !line.is_empty() {
                self.emit(stream, line, cut);
            }
        }
        self.lines.into()
    }

    fn partial(&mut self, stream: LogStream) -> &mut Partial {
        match stream {
            LogStream::Stdout => &mut self.partial_out,
            LogStream::Stderr => &mut self.partial_err,
        }
    }

    fn emit(&mut self, stream: LogStream, bytes: Vec<u8>, cut: bool) {
        if self.tail == 0 {
            return;
        }
        let raw = String::from_utf8_lossy(&bytes);
        let raw = raw.strip_suffix('\r').unwrap_or(&raw);
        let (at, body) = split_timestamp(raw);
        if let (Some(since), Some(at)) = (self.since, at)
            && at < since
        {
            return;
        }
        let mut text = if self.keep_timestamps { raw } else { body }.to_string();
        if cut {
            text.push_str(" …[line cut]");
        }
        self.bytes += text.len();
        self.lines.push_back(LogLine { at, stream, text });
        while self.lines.len() > self.tail || (self.bytes > self.max_bytes && self.lines.len() > 1)
        {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.text.len();
            }
        }
    }
}

/// Output of an exec, capped in bytes across both streams.
pub struct CappedOutput {
    cap: usize,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub capped: bool,
}

impl CappedOutput {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            stdout: Vec::new(),
            stderr: Vec::new(),
            capped: false,
        }
    }

    pub fn push(&mut self, frame: LogOutput) {
        let room = self
            .cap
            .saturating_sub(self.stdout.len() + self.stderr.len());
        let (buf, bytes) = match frame {
            LogOutput::StdErr { message } => (&mut self.stderr, message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (&mut self.stdout, message)
            }
            LogOutput::StdIn { .. } => return,
        };
        if bytes.len() > room {
            buf.extend_from_slice(&bytes[..room]);
            self.capped = true;
        } else {
            buf.extend_from_slice(&bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::PortBinding;

    fn out(s: &str) -> LogOutput {
        LogOutput::StdOut {
            message: s.as_bytes().to_vec().into(),
        }
    }
    fn err(s: &str) -> LogOutput {
        LogOutput::StdErr {
            message: s.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn env_is_split_at_the_first_equals_sign_only() {
        let env = vec![
            "DATABASE_URL=postgres://u:p@db/x?sslmode=disable&a=b".to_string(),
            "EMPTY=".to_string(),
            "BARE".to_string(),
        ];
        assert_eq!(
            split_env(&env),
            vec![
                (
                    "DATABASE_URL".to_string(),
                    "postgres://u:p@db/x?sslmode=disable&a=b".to_string()
                ),
                ("EMPTY".to_string(), String::new()),
                ("BARE".to_string(), String::new()),
            ]
        );
    }

    #[test]
    fn engine_zero_time_means_never() {
        assert_eq!(parse_engine_time("0001-01-01T00:00:00Z"), None);
        let t = parse_engine_time("2026-11-30T04:05:06.123456789Z").unwrap();
        assert_eq!(t.timestamp(), 1_796_011_506);
        assert_eq!(t.timestamp_subsec_nanos(), 123_456_789);
        assert_eq!(parse_engine_time("garbage"), None);
    }

    #[test]
    fn container_refs_that_could_escape_the_url_path_are_rejected() {
        assert!(is_valid_container_ref("3f2a9c"));
        assert!(is_valid_container_ref("riftwing_api-1_1"));
        for bad in [
            "",
            "../images/json",
            "a/b",
            "x?all=1",
            "-rf",
            "a b",
            ".hidden",
        ] {
            assert!(!is_valid_container_ref(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn published_ports_are_mapped_and_unpublished_ones_skipped() {
        let mut map: PortMap = HashMap::new();
        map.insert(
            "5432/tcp".into(),
            Some(vec![
                PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some("15432".into()),
                },
                // Docker lists the same binding twice on some versions.
                PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some("15432".into()),
                },
            ]),
        );
        map.insert("6379/tcp".into(), None);
        map.insert(
            "53/udp".into(),
            Some(vec![PortBinding {
                host_ip: Some("0.0.0.0".into()),
                host_port: Some("1053".into()),
            }]),
        );
        assert_eq!(
            port_mappings(&map),
            vec![
                PortMapping {
                    host_ip: "0.0.0.0".into(),
                    host_port: 1053,
                    container_port: 53,
                    protocol: "udp".into()
                },
                PortMapping {
                    host_ip: "127.0.0.1".into(),
                    host_port: 15432,
                    container_port: 5432,
                    protocol: "tcp".into()
                },
            ]
        );
    }

    /// Shaped like a Docker 20.10 cgroup v1 sample; values chosen for easy arithmetic.
    const STATS_V1: &str = r#"{
      "read":"2026-11-30T04:00:01.5Z","preread":"2026-11-30T04:00:00.5Z",
      "pids_stats":{"current":7},
      "blkio_stats":{"io_service_bytes_recursive":[
        {"major":8,"minor":0,"op":"Read","value":4096},
        {"major":8,"minor":0,"op":"Write","value":8192},
        {"major":8,"minor":16,"op":"Read","value":1000},
        {"major":8,"minor":0,"op":"Sync","value":12288},
        {"major":8,"minor":0,"op":"Total","value":12288}]},
      "cpu_stats":{"cpu_usage":{"total_usage":2500000000,"percpu_usage":[1,2],
        "usage_in_kernelmode":0,"usage_in_usermode":0},
        "system_cpu_usage":120000000000,"online_cpus":2,"throttling_data":{}},
      "precpu_stats":{"cpu_usage":{"total_usage":2000000000},
        "system_cpu_usage":118000000000,"online_cpus":2},
      "memory_stats":{"usage":104857600,"max_usage":110000000,
        "stats":{"cache":20971520,"total_inactive_file":10485760,"rss":80000000},
        "limit":536870912},
      "name":"/riftwing_api-1_1","id":"abc",
      "networks":{"eth0":{"rx_bytes":1000,"tx_bytes":2000},"eth1":{"rx_bytes":30,"tx_bytes":40}}
    }"#;

    #[test]
    fn stats_snapshot_computes_cpu_memory_net_and_block_io_like_docker_stats() {
        let s: ContainerStatsResponse = serde_json::from_str(STATS_V1).unwrap();
        let snap = stats_snapshot(&s);
        // 0.5 s of CPU over 2 s of host time on 2 CPUs = 50 %.
        assert!(
            (snap.cpu_percent - 50.0).abs() < 1e-9,
            "{}",
            snap.cpu_percent
        );
        assert_eq!(snap.memory_usage, 104_857_600 - 10_485_760);
        assert_eq!(snap.memory_limit, 536_870_912);
        assert_eq!((snap.net_rx, snap.net_tx), (1030, 2040));
        assert_eq!((snap.block_read, snap.block_write), (5096, 8192));
        assert_eq!(snap.pids, 7);
    }

    #[test]
    fn cpu_percent_is_zero_when_the_previous_sample_is_missing_or_counters_reset() {
        let mut s: ContainerStatsResponse = serde_json::from_str(STATS_V1).unwrap();
        s.precpu_stats
            .as_mut()
            .unwrap()
            .cpu_usage
            .as_mut()
            .unwrap()
            .total_usage = Some(9_000_000_000);
        assert_eq!(cpu_percent(&s), 0.0);
        s.precpu_stats = Some(Default::default());
        s.precpu_stats.as_mut().unwrap().system_cpu_usage = None;
        // A one-shot sample has an empty precpu: the delta is the whole uptime, still finite.
        assert!(cpu_percent(&s).is_finite());
    }

    #[test]
    fn cpu_count_falls_back_to_per_cpu_usage_when_online_cpus_is_absent() {
        let mut s: ContainerStatsResponse = serde_json::from_str(STATS_V1).unwrap();
        s.cpu_stats.as_mut().unwrap().online_cpus = None;
        assert!((cpu_percent(&s) - 50.0).abs() < 1e-9);
    }

    #[test]
    fn memory_usage_subtracts_cache_by_cgroup_version() {
        let mut m = ContainerMemoryStats {
            usage: Some(1000),
            stats: Some(HashMap::from([("inactive_file".to_string(), 300)])),
            ..Default::default()
        };
        assert_eq!(memory_usage(&m), 700, "cgroup v2");
        m.stats = Some(HashMap::from([("cache".to_string(), 100)]));
        assert_eq!(memory_usage(&m), 900, "old daemons");
        m.stats = Some(HashMap::from([("total_inactive_file".to_string(), 5000)]));
        assert_eq!(memory_usage(&m), 1000, "never below zero");
    }

    #[test]
    fn log_frames_are_demultiplexed_into_lines_with_parsed_timestamps() {
        let mut a = LogAssembler::new(100, false, None);
        a.push(out("2026-11-30T04:00:00.000000001Z first\n"));
        a.push(err("2026-11-30T04:00:00.5Z oops\r\n"));
        a.push(out(
            "2026-11-30T04:00:01Z second\n2026-11-30T04:00:02Z third\n",
        ));
        let lines = a.finish();
        let texts: Vec<_> = lines.iter().map(|l| (l.stream, l.text.as_str())).collect();
        assert_eq!(
            texts,
            vec![
                (LogStream::Stdout, "first"),
                (LogStream::Stderr, "oops"),
                (LogStream::Stdout, "second"),
                (LogStream::Stdout, "third"),
            ]
        );
        assert_eq!(lines[0].at.unwrap().timestamp_subsec_nanos(), 1);
        assert_eq!(lines[3].at.unwrap().timestamp(), 1_796_011_202);
    }

    #[test]
    fn timestamps_stay_in_the_text_when_asked_for() {
        let mut a = LogAssembler::new(10, true, None);
        a.push(out("2026-11-30T04:00:00Z hello\n"));
        let lines = a.finish();
        assert_eq!(lines[0].text, "2026-11-30T04:00:00Z hello");
        assert!(lines[0].at.is_some());
    }

    #[test]
    fn a_line_split_across_frames_is_joined_per_stream() {
        let mut a = LogAssembler::new(10, false, None);
        a.push(out("2026-11-30T04:00:00Z hel"));
        a.push(err("2026-11-30T04:00:00Z error line\n"));
        a.push(out("lo world\n"));
        a.push(out("2026-11-30T04:00:01Z no newline at end"));
        let lines = a.finish();
        let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            vec!["error line", "hello world", "no newline at end"]
        );
    }

    #[test]
    fn only_the_last_tail_lines_are_kept() {
        let mut a = LogAssembler::new(3, false, None);
        for i in 0..1000 {
            a.push(out(&format!("2026-11-30T04:00:00Z line {i}\n")));
        }
        let texts: Vec<_> = a.finish().into_iter().map(|l| l.text).collect();
        assert_eq!(texts, vec!["line 997", "line 998", "line 999"]);
    }

    #[test]
    fn the_kept_lines_stay_within_the_byte_budget_newest_first() {
        let mut a = LogAssembler::new(2000, false, None).max_bytes(10 * 1024);
        for i in 0..2000 {
            let line = format!("{i:04} {}\n", "y".repeat(1019));
            a.push(LogOutput::StdOut {
                message: line.into(),
            });
        }
        let lines = a.finish();
        let bytes: usize = lines.iter().map(|l| l.text.len()).sum();
        assert!(bytes <= 10 * 1024, "{bytes}");
        assert_eq!(lines.len(), 10);
        assert!(lines.last().unwrap().text.starts_with("1999 "));
    }

    #[test]
    fn a_huge_line_is_cut_and_marked() {
        let mut a = LogAssembler::new(3, false, None);
        let big = "x".repeat(MAX_LINE_BYTES * 3);
        a.push(out("2026-11-30T04:00:00Z "));
        a.push(out(&big));
        a.push(out("\n"));
        let lines = a.finish();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].text.len() <= MAX_LINE_BYTES + 20);
        assert!(lines[0].text.ends_with("[line cut]"));
    }

    #[test]
    fn lines_without_a_timestamp_keep_their_text_and_no_time() {
        let mut a = LogAssembler::new(3, false, None);
        a.push(out("plain text line\n"));
        let lines = a.finish();
        assert_eq!(lines[0].at, None);
        assert_eq!(lines[0].text, "plain text line");
    }

    #[test]
    fn lines_older_than_since_are_dropped_to_the_sub_second() {
        let since = parse_engine_time("2026-11-30T04:00:00.5Z");
        let mut a = LogAssembler::new(10, false, since);
        a.push(out(
            "2026-11-30T04:00:00.2Z early\n2026-11-30T04:00:00.7Z late\n",
        ));
        let texts: Vec<_> = a.finish().into_iter().map(|l| l.text).collect();
        assert_eq!(texts, vec!["late"]);
    }

    #[test]
    fn exec_output_is_capped_across_both_streams() {
        let mut o = CappedOutput::new(10);
        o.push(out("123456"));
        o.push(err("abcdef"));
        o.push(out("zzz"));
        assert_eq!(o.stdout, b"123456");
        assert_eq!(o.stderr, b"abcd");
        assert!(o.capped);
    }

    #[test]
    fn health_output_and_state_come_from_inspect() {
        let json = r#"{
          "Id":"abc","Name":"/riftwing_worker-1_1","RestartCount":3,
          "State":{"Status":"exited","Running":false,"OOMKilled":true,"ExitCode":137,
            "StartedAt":"2026-11-30T04:00:00Z","FinishedAt":"2026-11-30T04:10:00Z",
            "Health":{"Status":"unhealthy","FailingStreak":3,"Log":[
              {"Start":"2026-11-30T04:09:00Z","End":"2026-11-30T04:09:01Z","ExitCode":1,"Output":"connection refused\n"}]}},
          "Config":{"Image":"riftwing-worker:dev","Env":["A=1"],
            "Labels":{"com.docker.compose.project":"riftwing","com.docker.compose.service":"worker-1"}},
          "HostConfig":{"Memory":268435456},
          "Mounts":[{"Type":"volume","Name":"riftwing_data","Source":"/x","Destination":"/data"},
                    {"Type":"bind","Source":"/etc/x","Destination":"/etc/x"}],
          "NetworkSettings":{"Ports":{},"Networks":{"riftwing_default":{"IPAddress":"172.20.0.5","IPPrefixLen":16}}}
        }"#;
        let i: ContainerInspectResponse = serde_json::from_str(json).unwrap();
        assert!(belongs_to(&i, "riftwing"));
        assert!(!belongs_to(&i, "other"));
        let c = container_info(&i);
        assert_eq!(c.name, "riftwing_worker-1_1");
        assert_eq!(c.service, "worker-1");
        assert_eq!(c.state, "exited");
        assert_eq!(c.health.as_deref(), Some("unhealthy"));
        assert_eq!(c.health_log, vec!["connection refused"]);
        assert_eq!(c.exit_code, Some(137));
        assert!(c.oom_killed);
        assert_eq!(c.restart_count, 3);
        assert_eq!(c.memory_limit, 268_435_456);
        assert_eq!(c.volumes, vec!["riftwing_data"]);
        assert_eq!(
            c.networks,
            vec![("riftwing_default".to_string(), "172.20.0.5".to_string())]
        );
        assert_eq!(c.image, "riftwing-worker:dev");
    }

    #[test]
    fn a_running_container_has_no_exit_code_and_no_health_without_a_healthcheck() {
        let json = r#"{"Id":"abc","Name":"/x","State":{"Status":"running","ExitCode":0,
            "StartedAt":"2026-11-30T04:00:00Z","FinishedAt":"0001-01-01T00:00:00Z"}}"#;
        let i: ContainerInspectResponse = serde_json::from_str(json).unwrap();
        let c = container_info(&i);
        assert_eq!(c.exit_code, None);
        assert_eq!(c.health, None);
        assert_eq!(c.finished_at, None);
        assert!(c.started_at.is_some());
        assert!(!belongs_to(&i, "riftwing"), "no labels, no project");
    }
}
