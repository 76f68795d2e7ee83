//! The operations, over the Engine port; each returns a Report (redacted later by the pipeline).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;

use crate::core::args::Args;
use crate::core::catalog::{Catalog, Command, Operation, OptionType, Target};
use crate::core::engine::{ContainerInfo, Engine, EngineError, LogQuery};
use crate::core::error::PipelineError;
use crate::core::policy::Policy;
use crate::core::redact::Redactor;
use crate::core::report::{Block, Report, Severity, code};
use crate::core::types::{ChannelId, RoleId, ServiceName, format_bytes, format_duration};

/// Containers an operation acts on, plus services that were asked for but have no container.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub containers: Vec<ContainerInfo>,
    pub missing: Vec<ServiceName>,
}

impl Targets {
    fn missing_note(&self) -> Option<Block> {
        (!self.missing.is_empty()).then(|| {
            Block::Text(format!(
                "⚠️ No container for: {} (not in the project, or never created).",
                self.missing
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

/// Engine failures that mean "stop everything" versus ones that only concern one container.
fn fatal(e: EngineError) -> Result<String, PipelineError> {
    match e {
        e @ (EngineError::Unavailable(_) | EngineError::Timeout(_) | EngineError::Forbidden(_)) => {
            Err(e.into())
        }
        EngineError::NoSuchContainer(c) => Ok(format!("container {c} is gone")),
        EngineError::Other(m) => Ok(m),
    }
}

fn by_service(mut cs: Vec<ContainerInfo>) -> Vec<ContainerInfo> {
    cs.sort_by(|a, b| a.service.cmp(&b.service).then(a.name.cmp(&b.name)));
    cs
}

/// Unhealthy, crash-looping, dead, OOM-killed or exited with an error. A container that
/// exited 0 (a one-shot init job, or a clean stop) is shown as not running but not flagged.
fn needs_attention(c: &ContainerInfo) -> bool {
    c.health.as_deref() == Some("unhealthy")
        || c.oom_killed
        || matches!(c.state.as_str(), "restarting" | "dead")
        || (c.state == "exited" && c.exit_code != Some(0))
}

pub fn status(project: &str, t: &Targets) -> Report {
    let now = Utc::now();
    let cs = by_service(t.containers.clone());
    let mut bad = 0;
    let mut up = 0;
    let rows = cs
        .iter()
        .map(|c| {
            let running = c.state == "running";
            up += usize::from(running);
            if needs_attention(c) {
                bad += 1;
            }
            let uptime = match (running, c.started_at) {
                (true, Some(s)) => format_duration(Duration::from_secs(
                    (now - s).to_std().unwrap_or_default().as_secs(),
                )),
                _ => "-".into(),
            };
            let ports = c
                .ports
                .iter()
                .map(|p| {
                    format!(
                        "{}:{}→{}/{}",
                        p.host_ip, p.host_port, p.container_port, p.protocol
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                c.service.clone(),
                c.name.clone(),
                if c.oom_killed {
                    format!("{} (OOM)", c.state)
                } else {
                    c.state.clone()
                },
                c.health.clone().unwrap_or_else(|| "-".into()),
                uptime,
                c.restart_count.to_string(),
                c.exit_code.map_or("-".into(), |e| e.to_string()),
                if ports.is_empty() { "-".into() } else { ports },
            ]
        })
        .collect();
    let severity = if cs.is_empty() || bad > 0 {
        Severity::Warning
    } else if up == cs.len() {
        Severity::Success
    } else {
        Severity::Info
    };
    let mut r = Report::new(
        format!(
            "Status of {project}: {up}/{} running, {bad} need attention",
            cs.len()
        ),
        severity,
    );
    r.push(Block::Table {
        headers: [
            "service",
            "container",
            "state",
            "health",
            "uptime",
            "restarts",
            "exit",
            "ports",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    });
    if let Some(n) = t.missing_note() {
        r.push(n);
    }
    r
}

/// Learns the secret env values of the containers so they are masked wherever they appear.
async fn learn_env(
    engine: &dyn Engine,
    cs: &[ContainerInfo],
    redactor: &mut Redactor,
) -> Result<(), PipelineError> {
    let envs = join_all(cs.iter().map(|c| engine.env(&c.id))).await;
    for e in envs {
        match e {
            Ok(pairs) => redactor.learn_env(&pairs),
            Err(e) => {
                fatal(e)?;
            }
        }
    }
    Ok(())
}

/// Most bytes of log text one `/logs` holds, across all its services (each gets its share;
/// the newest lines are kept). 13 services × 2,000 lines × 16 KiB lines would be 416 MiB.
pub const LOGS_BUDGET: usize = 32 * 1024 * 1024;

/// What `/logs` reads and how it shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogsParams {
    /// Lines per container, as asked (the settings cap it).
    pub tail: i64,
    pub since: Option<Duration>,
    pub grep: Option<String>,
    pub timestamps: bool,
}

impl LogsParams {
    pub fn parse(args: &Args) -> Self {
        Self {
            tail: args.integer("tail").unwrap_or(100).max(1),
            since: args.duration("since"),
            grep: args.string("grep").map(str::to_owned),
            timestamps: args.boolean("timestamps").unwrap_or(false),
        }
    }
}

/// A container operation with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Status,
    Logs(LogsParams),
    Stats,
    /// Restart, stop or start; `timeout` is how long a stop waits (the settings' default when unset).
    Mutate {
        mutation: Mutation,
        timeout: Option<Duration>,
    },
    Config,
    Volumes,
    Network,
    DiskUsage,
}

impl Request {
    /// `None` for operations of other families.
    pub fn parse(op: Operation, args: &Args) -> Option<Self> {
        let mutate = |mutation| Request::Mutate {
            mutation,
            timeout: args.duration("timeout"),
        };
        Some(match op {
            Operation::Status => Request::Status,
            Operation::Logs => Request::Logs(LogsParams::parse(args)),
            Operation::Stats => Request::Stats,
            Operation::Restart => mutate(Mutation::Restart),
            Operation::Stop => mutate(Mutation::Stop),
            Operation::Start => mutate(Mutation::Start),
            Operation::Config => Request::Config,
            Operation::Volumes => Request::Volumes,
            Operation::Network => Request::Network,
            Operation::DiskUsage => Request::DiskUsage,
            _ => return None,
        })
    }

    /// Acts on the project's containers (the others read the Engine or the catalog as a whole).
    pub fn needs_containers(&self) -> bool {
        !matches!(
            self,
            Request::Volumes | Request::Network | Request::DiskUsage
        )
    }
}

/// What a container operation needs besides the Engine.
pub struct Context<'a> {
    pub project: &'a str,
    pub stop_timeout: Duration,
    pub log_line_cap: u32,
}

/// Runs one container operation.
pub async fn run(
    req: &Request,
    engine: &dyn Engine,
    t: &Targets,
    cx: &Context<'_>,
    redactor: &mut Redactor,
) -> Result<Report, PipelineError> {
    match req {
        Request::Status => Ok(status(cx.project, t)),
        Request::Logs(p) => logs(engine, t, p, cx.log_line_cap, redactor).await,
        Request::Stats => stats(engine, t).await,
        Request::Mutate { mutation, timeout } => {
            mutate(engine, t, *mutation, timeout.unwrap_or(cx.stop_timeout)).await
        }
        Request::Config => config(engine, t, redactor).await,
        Request::Volumes => volumes(engine, cx.project).await,
        Request::Network => network(engine, cx.project).await,
        Request::DiskUsage => disk_usage(engine).await,
    }
}

pub async fn logs(
    engine: &dyn Engine,
    t: &Targets,
    p: &LogsParams,
    log_line_cap: u32,
    redactor: &mut Redactor,
) -> Result<Report, PipelineError> {
    let asked = p.tail;
    let tail = u32::try_from(asked).unwrap_or(u32::MAX).min(log_line_cap);
    // A `since` further back than the calendar allows simply means "everything".
    let since = p.since.and_then(|d| {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| Utc::now().checked_sub_signed(d))
    });
    let grep = p.grep.as_deref().map(str::to_lowercase);
    let show_ts = p.timestamps;
    // `timestamps` asks the adapter to keep the Engine's timestamp inside the text; the core
    // renders its own from `at` (which the adapter always parses and which orders the merge).
    let cs = by_service(t.containers.clone());
    let q = LogQuery {
        tail,
        since,
        timestamps: false,
        // However many services and however long their lines, one /logs holds a bounded amount.
        max_bytes: LOGS_BUDGET / cs.len().max(1),
    };
    learn_env(engine, &t.containers, redactor).await?;
    let results = join_all(cs.iter().map(|c| engine.logs(&c.id, &q))).await;
    let several = cs.len() > 1;
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    let mut read = 0usize;
    for (c, res) in cs.iter().zip(results) {
        match res {
            Ok(ls) => {
                read += ls.len();
                for l in ls {
                    if grep
                        .as_ref()
                        .is_some_and(|g| !l.text.to_lowercase().contains(g))
                    {
                        continue;
                    }
                    lines.push((l.at, c.service.clone(), l.text));
                }
            }
            Err(e) => notes.push(format!("`{}`: {}", c.service, fatal(e)?)),
        }
    }
    // Stable: lines of one container keep their order when timestamps tie.
    lines.sort_by_key(|(at, _, _)| *at);
    let width = cs.iter().map(|c| c.service.len()).max().unwrap_or(0);
    let text = lines
        .iter()
        .map(|(at, svc, text)| {
            let mut s = String::new();
            if show_ts {
                s.push_str(&at.map_or("-".into(), |a| {
                    a.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                }));
                s.push(' ');
            }
            if several {
                s.push_str(&format!("{svc:<width$} | "));
            }
            s.push_str(text.trim_end_matches(['\n', '\r']));
            s
        })
        .collect::<Vec<_>>()
        .join("\n");
    let names: Vec<&str> = cs.iter().map(|c| c.service.as_str()).collect();
    let mut r = Report::new(format!("Logs of {}", names.join(", ")), Severity::Info);
    let mut summary = format!("Last {tail} line(s) per container");
    if let Some(s) = p.since {
        summary.push_str(&format!(", since {} ago", format_duration(s)));
    }
    if let Some(g) = &p.grep {
        summary.push_str(&format!("; {} of {read} matched {}", lines.len(), code(g)));
    } else {
        summary.push_str(&format!("; {read} line(s)"));
    }
    if i64::from(tail) < asked {
        summary.push_str(&format!(" (tail capped at {log_line_cap})"));
    }
    r.push(Block::Text(summary + "."));
    if lines.is_empty() {
        r.push(Block::Text("No matching lines.".into()));
    } else {
        r.push(Block::Code {
            name: format!("logs-{}.txt", names.join("+")),
            lang: String::new(),
            text,
        });
    }
    if !notes.is_empty() {
        r.push(Block::List {
            ordered: false,
            items: notes,
        });
    }
    if let Some(n) = t.missing_note() {
        r.push(n);
    }
    Ok(r)
}

pub async fn stats(engine: &dyn Engine, t: &Targets) -> Result<Report, PipelineError> {
    let cs = by_service(t.containers.clone());
    let results = join_all(cs.iter().map(|c| async move {
        if c.state == "running" {
            Some(engine.stats(&c.id).await)
        } else {
            None
        }
    }))
    .await;
    let mut rows = Vec::new();
    for (c, res) in cs.iter().zip(results) {
        let row = match res {
            None => vec![
                c.service.clone(),
                format!("({})", c.state),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ],
            Some(Ok(s)) => {
                let mem = if s.memory_limit > 0 {
                    format!(
                        "{} / {} ({:.0}%)",
                        format_bytes(s.memory_usage),
                        format_bytes(s.memory_limit),
                        s.memory_usage as f64 * 100.0 / s.memory_limit as f64
                    )
                } else {
                    format!("{} / unlimited", format_bytes(s.memory_usage))
                };
                vec![
                    c.service.clone(),
                    format!("{:.1}%", s.cpu_percent),
                    mem,
                    format!("{} / {}", format_bytes(s.net_rx), format_bytes(s.net_tx)),
                    format!(
                        "{} / {}",
                        format_bytes(s.block_read),
                        format_bytes(s.block_write)
                    ),
                    s.pids.to_string(),
                ]
            }
            Some(Err(e)) => vec![
                c.service.clone(),
                format!("error: {}", fatal(e)?),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ],
        };
        rows.push(row);
    }
    let mut r = Report::new(
        format!("Resource usage ({} container(s))", cs.len()),
        Severity::Info,
    );
    r.push(Block::Table {
        headers: [
            "service",
            "cpu",
            "memory",
            "net rx / tx",
            "block r / w",
            "pids",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    });
    if let Some(n) = t.missing_note() {
        r.push(n);
    }
    Ok(r)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    Restart,
    Stop,
    Start,
}

impl Mutation {
    fn verb(self) -> &'static str {
        match self {
            Mutation::Restart => "restart",
            Mutation::Stop => "stop",
            Mutation::Start => "start",
        }
    }
}

/// Restart, stop or start the target containers, all at once.
pub async fn mutate(
    engine: &dyn Engine,
    t: &Targets,
    m: Mutation,
    timeout: Duration,
) -> Result<Report, PipelineError> {
    let cs = by_service(t.containers.clone());
    let results = join_all(cs.iter().map(|c| async move {
        let started = std::time::Instant::now();
        let r = match m {
            Mutation::Restart => engine.restart(&c.id, timeout).await,
            Mutation::Stop => engine.stop(&c.id, timeout).await,
            Mutation::Start => engine.start(&c.id).await,
        };
        (r, started.elapsed())
    }))
    .await;
    let mut rows = Vec::new();
    let mut failed = 0;
    for (c, (res, took)) in cs.iter().zip(results) {
        let outcome = match res {
            Ok(()) => "ok".to_owned(),
            Err(e) => {
                failed += 1;
                format!("failed: {}", fatal(e)?)
            }
        };
        rows.push(vec![
            c.service.clone(),
            c.name.clone(),
            outcome,
            format!("{:.1}s", took.as_secs_f64()),
        ]);
    }
    let n = cs.len();
    let severity = match failed {
        0 => Severity::Success,
        f if f == n => Severity::Error,
        _ => Severity::Warning,
    };
    let names: BTreeSet<&str> = cs.iter().map(|c| c.service.as_str()).collect();
    let title = format!(
        "{} of {}: {}/{n} ok",
        capitalize(m.verb()),
        names.into_iter().collect::<Vec<_>>().join(", "),
        n - failed
    );
    let mut r = Report::new(title, severity);
    r.push(Block::Table {
        headers: ["service", "container", "result", "took"]
            .map(String::from)
            .to_vec(),
        rows,
    });
    if let Some(n) = t.missing_note() {
        r.push(n);
    }
    r.push(Block::Text(
        "Check with `/status`; volumes are untouched.".into(),
    ));
    Ok(r)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A service's environment with secret values masked (by name, and by value wherever they recur).
pub async fn config(
    engine: &dyn Engine,
    t: &Targets,
    redactor: &mut Redactor,
) -> Result<Report, PipelineError> {
    let cs = by_service(t.containers.clone());
    let mut r = Report::new(
        format!(
            "Configuration of {}",
            cs.iter()
                .map(|c| c.service.as_str())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Severity::Info,
    );
    for c in &cs {
        let env = match engine.env(&c.id).await {
            Ok(e) => e,
            Err(e) => {
                r.push(Block::Text(format!("`{}`: {}", c.name, fatal(e)?)));
                continue;
            }
        };
        redactor.learn_env(&env);
        let text = env
            .iter()
            .map(|(k, v)| format!("{k}={}", redactor.mask_env(k, v)))
            .collect::<Vec<_>>()
            .join("\n");
        r.push(Block::Fields(vec![
            ("Container".into(), c.name.clone()),
            ("Image".into(), c.image.clone()),
        ]));
        r.push(Block::Code {
            name: format!("config-{}.env", c.service),
            lang: "ini".into(),
            text,
        });
    }
    if let Some(n) = t.missing_note() {
        r.push(n);
    }
    Ok(r)
}

pub async fn volumes(engine: &dyn Engine, project: &str) -> Result<Report, PipelineError> {
    let mut vs = engine.volumes().await?;
    vs.sort_by(|a, b| a.name.cmp(&b.name));
    let rows = vs
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                v.compose_name.clone().unwrap_or_else(|| "-".into()),
                v.driver.clone(),
                v.size
                    .and_then(|s| u64::try_from(s).ok())
                    .map_or("-".into(), crate::core::types::format_bytes),
                v.created_at.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    Ok(Report::new(
        format!("Volumes of {project}: {}", vs.len()),
        Severity::Info,
    )
    .with(Block::Table {
        headers: ["volume", "compose name", "driver", "size", "created"]
            .map(String::from)
            .to_vec(),
        rows,
    }))
}

pub async fn network(engine: &dyn Engine, project: &str) -> Result<Report, PipelineError> {
    let mut ns = engine.networks().await?;
    ns.sort_by(|a, b| a.name.cmp(&b.name));
    let mut r = Report::new(
        format!("Networks of {project}: {}", ns.len()),
        Severity::Info,
    );
    for n in ns {
        r.push(Block::Fields(vec![
            ("Network".into(), n.name.clone()),
            ("Driver".into(), n.driver.clone()),
            (
                "Subnet".into(),
                n.subnet.clone().unwrap_or_else(|| "-".into()),
            ),
        ]));
        let mut cs = n.containers.clone();
        cs.sort();
        r.push(Block::Table {
            headers: vec!["container".into(), "address".into()],
            rows: cs.into_iter().map(|(c, a)| vec![c, a]).collect(),
        });
    }
    Ok(r)
}

pub async fn disk_usage(engine: &dyn Engine) -> Result<Report, PipelineError> {
    let d = engine.disk_usage().await?;
    let b = |n: i64| format_bytes(u64::try_from(n).unwrap_or(0));
    Ok(
        Report::new("Docker disk usage", Severity::Info).with(Block::Fields(vec![
            ("Images".into(), b(d.images_size)),
            ("Containers".into(), b(d.containers_size)),
            ("Volumes".into(), b(d.volumes_size)),
            ("Build cache".into(), b(d.build_cache_size)),
            (
                "Total".into(),
                b(d.images_size
                    .saturating_add(d.containers_size)
                    .saturating_add(d.volumes_size)
                    .saturating_add(d.build_cache_size)),
            ),
        ])),
    )
}

/// The commands this person may run in this channel, or one command's options.
pub fn help(
    catalog: &Catalog,
    policy: &Policy,
    roles: &BTreeSet<RoleId>,
    channel: &ChannelId,
    command: Option<&str>,
) -> Report {
    if let Some(name) = command {
        let name = name.trim_start_matches('/');
        return match catalog.get(name) {
            Some(c) => command_help(c, policy.may_run(roles, name, channel)),
            None => Report::new(
                format!("No command {}", code(&format!("/{name}"))),
                Severity::Warning,
            )
            .with(Block::Text("Run `/help` to list the commands.".into())),
        };
    }
    let rows: Vec<Vec<String>> = catalog
        .iter()
        .filter(|c| policy.may_run(roles, c.name.as_str(), channel))
        .map(|c| {
            vec![
                format!("/{}{}", c.name, if c.destructive { " ⚠" } else { "" }),
                c.description.clone(),
            ]
        })
        .collect();
    let mut r = Report::new(
        format!("Commands you may run here ({})", rows.len()),
        Severity::Info,
    );
    r.push(Block::Table {
        headers: vec!["command".into(), "description".into()],
        rows,
    });
    r.push(Block::Text("Arguments are `name:value` (the first may be given alone): `/logs <service> tail:50 grep:error`. ⚠ = needs approval. `/help command:logs` explains one command.".into()));
    r
}

fn command_help(c: &Command, allowed: bool) -> Report {
    let mut r = Report::new(format!("/{} — {}", c.name, c.description), Severity::Info);
    r.push(Block::Code {
        name: format!("usage-{}.txt", c.name),
        lang: String::new(),
        text: c.usage(),
    });
    let rows = c
        .options
        .iter()
        .map(|o| {
            let mut d = o.description.clone();
            if !o.choices.is_empty() {
                d.push_str(&format!(" (one of: {})", o.choices.join(", ")));
            }
            if o.kind == OptionType::Integer && (o.min.is_some() || o.max.is_some()) {
                d.push_str(&format!(
                    " ({}–{})",
                    o.min.map_or("…".into(), |m| m.to_string()),
                    o.max.map_or("…".into(), |m| m.to_string())
                ));
            }
            vec![
                o.name.clone(),
                o.kind.to_string(),
                if o.required {
                    "yes".into()
                } else {
                    "no".into()
                },
                d,
            ]
        })
        .collect::<Vec<_>>();
    if !rows.is_empty() {
        r.push(Block::Table {
            headers: ["option", "type", "required", "description"]
                .map(String::from)
                .to_vec(),
            rows,
        });
    }
    let mut facts = Vec::new();
    if let Target::Group(g) = &c.target {
        facts.push(("Acts on".to_owned(), format!("group `{g}`")));
    }
    if let Some(a) = &c.approval {
        facts.push((
            "Approval".to_owned(),
            format!(
                "{} of role(s) {}",
                a.min_approvals,
                a.approvers
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    facts.push((
        "You may run it here".to_owned(),
        if allowed { "yes".into() } else { "no".into() },
    ));
    r.push(Block::Fields(facts));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::fake::{FakeEngine, container};

    /// The text of a report's first code block (logs, tables).
    fn code_block(r: &Report) -> String {
        r.blocks
            .iter()
            .find_map(|b| match b {
                Block::Code { text, .. } => Some(text.clone()),
                _ => None,
            })
            .expect("a code block")
    }

    fn targets(f: &FakeEngine, services: &[&str]) -> Targets {
        let all = futures::executor::block_on(f.containers()).unwrap();
        Targets {
            containers: all
                .into_iter()
                .filter(|c| services.contains(&c.service.as_str()))
                .collect(),
            missing: vec![],
        }
    }

    #[test]
    fn status_shows_a_table_and_warns_about_stopped_containers() {
        let f = FakeEngine::riftwing();
        f.update("worker-2", |c| {
            c.state = "exited".into();
            c.exit_code = Some(137);
            c.oom_killed = true;
            c.restart_count = 4;
            c.health = None;
        });
        let all = futures::executor::block_on(f.containers()).unwrap();
        let r = status(
            "riftwing",
            &Targets {
                containers: all,
                missing: vec![],
            },
        );
        assert_eq!(r.severity, Severity::Warning);
        assert!(
            r.title.contains("10/11 running, 1 need attention"),
            "{}",
            r.title
        );
        let Block::Table { rows, .. } = &r.blocks[0] else {
            panic!()
        };
        let w2 = rows.iter().find(|r| r[0] == "worker-2").unwrap();
        assert_eq!(w2[2], "exited (OOM)");
        assert_eq!(w2[5], "4");
        assert_eq!(w2[6], "137");
        let gw = rows.iter().find(|r| r[0] == "gateway").unwrap();
        assert_eq!(gw[7], "127.0.0.1:3000→80/tcp");
    }

    #[tokio::test]
    async fn logs_of_several_services_are_merged_by_time_and_filtered() {
        let f = FakeEngine::riftwing();
        f.set_logs(
            "api-1",
            &[
                (1, "GET /healthz 200"),
                (5, "ERROR db timeout"),
                (9, "GET / 200"),
            ],
        );
        f.set_logs(
            "worker-1",
            &[(3, "activity started"), (7, "Error: activity failed")],
        );
        let t = targets(&f, &["api-1", "worker-1"]);
        let mut red = Redactor::new();
        let mut args = Args::default();
        let r = logs(&f, &t, &LogsParams::parse(&args), 2000, &mut red)
            .await
            .unwrap();
        let text = code_block(&r);
        let order: Vec<&str> = text
            .lines()
            .map(|l| l.split(" | ").nth(1).unwrap())
            .collect();
        assert_eq!(
            order,
            [
                "GET /healthz 200",
                "activity started",
                "ERROR db timeout",
                "Error: activity failed",
                "GET / 200"
            ]
        );
        assert!(
            text.lines().next().unwrap().starts_with("api-1    | "),
            "{text}"
        );

        args = crate::core::args::parse(
            &crate::core::catalog::parse_command(
                std::path::Path::new("logs.toml"),
                &std::fs::read_to_string(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/commands/logs.toml"
                ))
                .unwrap(),
                &Default::default(),
            )
            .unwrap(),
            "service:api-1 grep:error timestamps:true",
            &crate::core::args::ArgContext {
                max_arg_len: 200,
                known_services: None,
                groups: &Default::default(),
            },
        )
        .unwrap();
        let r = logs(&f, &t, &LogsParams::parse(&args), 2000, &mut red)
            .await
            .unwrap();
        let text = code_block(&r);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.starts_with("2026-11-30T03:00:05.000Z api-1"), "{text}");
        assert!(
            r.blocks
                .iter()
                .any(|b| matches!(b, Block::Text(t) if t.contains("2 of 5 matched `error`")))
        );
    }

    #[tokio::test]
    async fn one_logs_call_shares_a_bounded_budget_among_its_services() {
        let f = FakeEngine::riftwing();
        let all: Vec<&str> = crate::infra::fake::RIFTWING.to_vec();
        let t = targets(&f, &all);
        logs(
            &f,
            &t,
            &LogsParams::parse(&Args::default()),
            2000,
            &mut Redactor::new(),
        )
        .await
        .unwrap();
        let asked = f.log_queries();
        assert_eq!(asked.len(), all.len());
        let total: usize = asked.iter().map(|(_, q)| q.max_bytes).sum();
        assert!(total <= LOGS_BUDGET, "{total}");
        assert!(
            asked
                .iter()
                .all(|(_, q)| q.max_bytes == LOGS_BUDGET / all.len())
        );
    }

    #[tokio::test]
    async fn logs_tail_is_capped_by_the_settings_and_says_so() {
        let f = FakeEngine::riftwing();
        let lines: Vec<(u32, String)> = (0..50).map(|i| (i, format!("line {i}"))).collect();
        let refs: Vec<(u32, &str)> = lines.iter().map(|(i, s)| (*i, s.as_str())).collect();
        f.set_logs("api-1", &refs);
        let groups = Default::default();
        let cmd = crate::core::catalog::parse_command(
            std::path::Path::new("logs.toml"),
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/commands/logs.toml"))
                .unwrap(),
            &groups,
        )
        .unwrap();
        let args = crate::core::args::parse(
            &cmd,
            "api-1 tail:500",
            &crate::core::args::ArgContext {
                max_arg_len: 200,
                known_services: None,
                groups: &Default::default(),
            },
        )
        .unwrap();
        let r = logs(
            &f,
            &targets(&f, &["api-1"]),
            &LogsParams::parse(&args),
            10,
            &mut Redactor::new(),
        )
        .await
        .unwrap();
        let text = code_block(&r);
        assert_eq!(text.lines().count(), 10);
        assert_eq!(text.lines().last(), Some("line 49"));
        assert!(
            r.blocks
                .iter()
                .any(|b| matches!(b, Block::Text(t) if t.contains("capped at 10")))
        );
    }

    #[tokio::test]
    async fn logs_mask_the_containers_own_secrets() {
        let f = FakeEngine::riftwing();
        f.set_env("api-1", &[("DB_PASSWORD", "s3cr3t-pass-123")]);
        f.set_logs("api-1", &[(1, "connecting with s3cr3t-pass-123")]);
        let mut red = Redactor::new();
        let mut r = logs(
            &f,
            &targets(&f, &["api-1"]),
            &LogsParams::parse(&Args::default()),
            100,
            &mut red,
        )
        .await
        .unwrap();
        r.redact(&red);
        assert!(!r.all_text().contains("s3cr3t-pass-123"));
        assert!(r.all_text().contains("connecting with ****"));
    }

    #[tokio::test]
    async fn restart_of_a_group_runs_containers_in_parallel() {
        let f = FakeEngine::riftwing().with_delay(Duration::from_millis(200));
        let t = targets(&f, &["api-1", "api-2", "worker-1", "worker-2", "console"]);
        let started = std::time::Instant::now();
        let r = mutate(&f, &t, Mutation::Restart, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(r.severity, Severity::Success);
        assert!(r.title.contains("5/5 ok"), "{}", r.title);
        let mut calls = f.calls();
        calls.sort();
        assert_eq!(
            calls,
            [
                "restart riftwing-api-1-1",
                "restart riftwing-api-2-1",
                "restart riftwing-console-1",
                "restart riftwing-worker-1-1",
                "restart riftwing-worker-2-1"
            ]
        );
    }

    #[tokio::test]
    async fn stop_then_start_changes_the_state() {
        let f = FakeEngine::riftwing();
        let t = targets(&f, &["console"]);
        mutate(&f, &t, Mutation::Stop, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(targets(&f, &["console"]).containers[0].state, "exited");
        mutate(&f, &t, Mutation::Start, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(targets(&f, &["console"]).containers[0].state, "running");
    }

    #[tokio::test]
    async fn engine_down_is_an_error_not_a_partial_report() {
        let f = FakeEngine::riftwing();
        let t = targets(&f, &["api-1"]);
        f.set_unavailable(true);
        let e = mutate(&f, &t, Mutation::Restart, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            PipelineError::User(crate::core::error::UserError::EngineDown(_))
        ));
    }

    #[tokio::test]
    async fn config_masks_secret_values_by_name_and_wherever_they_recur() {
        let f = FakeEngine::riftwing();
        f.set_env(
            "api-1",
            &[
                ("NODE_ENV", "development"),
                ("POSTGRES_PASSWORD", "pg-pass-9876"),
                (
                    "DATABASE_URL",
                    "postgres://app:pg-pass-9876@postgres:5432/app",
                ),
            ],
        );
        let mut red = Redactor::new();
        let mut r = config(&f, &targets(&f, &["api-1"]), &mut red)
            .await
            .unwrap();
        r.redact(&red);
        let all = r.all_text();
        assert!(!all.contains("pg-pass-9876"), "{all}");
        assert!(all.contains("NODE_ENV=development"));
        assert!(all.contains("POSTGRES_PASSWORD=****"));
        assert!(
            all.contains("DATABASE_URL=postgres://app:****@postgres:5432/app"),
            "{all}"
        );
    }

    #[tokio::test]
    async fn an_access_key_id_or_a_plain_word_password_does_not_mask_the_word_everywhere() {
        let f = FakeEngine::riftwing();
        f.set_env(
            "minio",
            &[
                ("S3_ACCESS_KEY", "riftwing"),
                ("S3_SECRET_KEY", "riftwing-s3-secret-key"),
                ("COMPOSE_PROJECT", "riftwing"),
            ],
        );
        let mut red = Redactor::new();
        let mut r = config(&f, &targets(&f, &["minio"]), &mut red)
            .await
            .unwrap();
        r.redact(&red);
        let all = r.all_text();
        assert!(all.contains("COMPOSE_PROJECT=riftwing"), "{all}");
        assert!(all.contains("S3_SECRET_KEY=****"), "{all}");
        assert!(!all.contains("riftwing-s3-secret-key"), "{all}");
    }

    #[tokio::test]
    async fn stats_skip_stopped_containers_and_run_in_parallel() {
        let f = FakeEngine::riftwing().with_delay(Duration::from_millis(200));
        f.update("console", |c| c.state = "exited".into());
        let all = f.containers().await.unwrap();
        let started = std::time::Instant::now();
        let r = stats(
            &f,
            &Targets {
                containers: all,
                missing: vec![],
            },
        )
        .await
        .unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "took {:?}",
            started.elapsed()
        );
        let Block::Table { rows, .. } = &r.blocks[0] else {
            panic!()
        };
        assert_eq!(
            rows.iter().find(|r| r[0] == "console").unwrap()[1],
            "(exited)"
        );
        assert_eq!(
            rows.iter().find(|r| r[0] == "api-1").unwrap()[2],
            "100.0 MiB / 512.0 MiB (20%)"
        );
    }

    #[tokio::test]
    async fn volumes_network_and_disk_report_what_the_engine_says() {
        let f = FakeEngine::riftwing();
        let v = volumes(&f, "riftwing").await.unwrap();
        assert!(
            v.all_text().contains("riftwing_postgres_data") && v.all_text().contains("48.0 MiB")
        );
        let n = network(&f, "riftwing").await.unwrap();
        assert!(
            n.all_text().contains("riftwing-api-1-1") && n.all_text().contains("172.20.0.0/16")
        );
        let d = disk_usage(&f).await.unwrap();
        assert!(
            d.all_text().contains("**Images:** 1.9 GiB"),
            "{}",
            d.all_text()
        );
    }

    #[test]
    fn a_finished_init_job_is_not_flagged_but_a_crash_is() {
        let mut init = container("minio-init", "exited");
        init.exit_code = Some(0);
        let mut crashed = container("worker-1", "exited");
        crashed.exit_code = Some(1);
        let r = status(
            "riftwing",
            &Targets {
                containers: vec![container("api-1", "running"), init.clone()],
                missing: vec![],
            },
        );
        assert_eq!(r.severity, Severity::Info);
        assert!(
            r.title.contains("1/2 running, 0 need attention"),
            "{}",
            r.title
        );
        let r = status(
            "riftwing",
            &Targets {
                containers: vec![init, crashed],
                missing: vec![],
            },
        );
        assert_eq!(r.severity, Severity::Warning);
        assert!(
            r.title.contains("0/2 running, 1 need attention"),
            "{}",
            r.title
        );
    }

    #[test]
    fn missing_group_members_are_reported() {
        let t = Targets {
            containers: vec![container("api-1", "running")],
            missing: vec![ServiceName::parse("console").unwrap()],
        };
        assert!(
            status("riftwing", &t)
                .all_text()
                .contains("No container for: `console`")
        );
    }

    #[tokio::test]
    async fn an_absurd_since_reads_everything_instead_of_panicking() {
        let f = FakeEngine::riftwing();
        f.set_logs("api-1", &[(1, "old line")]);
        let cmd = crate::core::catalog::parse_command(
            std::path::Path::new("logs.toml"),
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/commands/logs.toml"))
                .unwrap(),
            &Default::default(),
        )
        .unwrap();
        let cx = crate::core::args::ArgContext {
            max_arg_len: 200,
            known_services: None,
            groups: &Default::default(),
        };
        let args = crate::core::args::parse(&cmd, "api-1 since:99999999999d", &cx).unwrap();
        let r = logs(
            &f,
            &targets(&f, &["api-1"]),
            &LogsParams::parse(&args),
            100,
            &mut Redactor::new(),
        )
        .await
        .unwrap();
        assert!(r.all_text().contains("old line"));
    }
}
