//! Command-line interface: `console`, `check-config`, `commands`, `serve`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args as ClapArgs, Parser, Subcommand};

use crate::core::catalog::{Catalog, Target};
use crate::core::report::text_table;
use crate::core::settings::Settings;
use crate::core::types::{ChannelId, UserId};
use crate::infra::store::spill::Spill;
use crate::ingress::console::Console;
use anyhow::Context;

use super::wire::{
    Env, audit_key, load_config, resilient_store, spill_path, store_backed_core, store_url,
};

const EXIT_CODES: &str = "\
EXIT CODES (console --command, check-config):
  0  the command ran (check-config: every file is valid)
  1  internal error, the Docker Engine is unreachable, or a settings/catalog/permissions file is invalid
  2  user error: denied, rate limited, needs approval, unknown command/service, invalid argument
     (serve: DISCORD_TOKEN missing or a DISCORD_* variable malformed)
EXIT CODES (audit verify): 0 the chain is intact, 1 it is broken (the first bad entry is named)

FILES:
  settings     --config PATH, else the embedded deploy/container-ops.toml; env CONTAINER_OPS_PROJECT,
               CONTAINER_OPS_DOCKER_HOST, CONTAINER_OPS_COMMANDS_DIR, CONTAINER_OPS_PERMISSIONS_DIR,
               CONTAINER_OPS_STORE_URL override it
  store        store_url (postgres://… for several replicas), else sqlite file
               $CONTAINER_OPS_DATA_DIR/state.db (default .container-ops/state.db)
  audit spill  while the store is unreachable, audit entries wait in $CONTAINER_OPS_AUDIT_SPILL
               (default $CONTAINER_OPS_DATA_DIR/audit-spill.jsonl) and are written when it is back
  commands/    one TOML file per slash command (adding a file adds a command)
  permissions/ roles, people and grants (deny by default)

DISCORD (serve):
  DISCORD_TOKEN             bot token (required; never logged)
  DISCORD_GUILD_ID          register guild commands there (instant); global commands otherwise
  DISCORD_APPLICATION_ID    application id (needed by the HTTP interactions endpoint)
  DISCORD_PUBLIC_KEY        application public key (hex) for Ed25519 request verification
  DISCORD_INTERACTIONS_ADDR host:port of the HTTP interactions endpoint (with DISCORD_PUBLIC_KEY)
  DISCORD_ALLOWED_GUILDS    servers whose commands are taken (comma-separated; default DISCORD_GUILD_ID)
  DISCORD_ALLOW_DMS         true to take commands in direct messages (default false)";

/// container-ops: run on-call operations (status, logs, stats, restarts, ...) on a Docker
/// Compose platform through slash commands, with role-based permissions, rate limits,
/// approvals for destructive commands and an audit of every decision.
///
/// Start-up reads and validates every data file; a bad file stops the bot with its file and
/// line. Docker is contacted only when a command needs it.
#[derive(Debug, Parser)]
#[command(name = "container-ops", version, about, long_about, after_long_help = EXIT_CODES)]
pub struct Cli {
    /// Settings file (default: the embedded deploy/container-ops.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Type slash commands in the terminal as a given user (one-shot with --command).
    Console(ConsoleArgs),
    /// Validate settings, command catalog and permissions; print the first error as file:line.
    CheckConfig,
    /// Print the command catalog as a table.
    Commands,
    /// Run the Discord bot: gateway, slash commands from the catalog, optional HTTP interactions endpoint.
    Serve,
    /// The audit log in the store.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Check what can be checked before going live: files, Discord limits, token shape, store,
    /// Docker and what its access allows. Exit 1 when something is an error.
    Doctor,
    /// Ask a running `serve` whether it answers (its /healthz on CONTAINER_OPS_HEALTH_ADDR):
    /// exit 0 when it does. For container healthchecks, where there is no curl.
    Healthz,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain: exit 0 when intact, 1 naming the first changed or missing entry.
    Verify,
}

#[derive(Debug, ClapArgs)]
pub struct ConsoleArgs {
    /// Act as this user (a name from permissions/*.toml, e.g. alice).
    #[arg(long = "as", value_name = "USER", env = "CONTAINER_OPS_USER")]
    pub user: String,
    /// The channel the commands are typed in (grants may depend on it).
    #[arg(long, default_value = "console")]
    pub channel: String,
    /// Run this one command (e.g. "/logs api-1 tail:50") and exit with its status.
    #[arg(long, value_name = "LINE")]
    pub command: Option<String>,
    /// Where attachments of long reports are written (default: a new temp directory).
    #[arg(long, value_name = "DIR")]
    pub attachments_dir: Option<PathBuf>,
    /// Keep interactive history in this file.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
}

fn init_tracing(redactor: crate::core::redact::Redactor) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr(Arc::new(redactor)));
    // One JSON object per line for log collectors; the pipeline span's fields (invocation
    // id, user, channel, command) come along with each event.
    let _ = if std::env::var("CONTAINER_OPS_LOG_FORMAT").as_deref() == Ok("json") {
        fmt.json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init()
    } else {
        fmt.try_init()
    };
}

/// Log lines go through the redactor on their way to stderr: an error's cause chain can quote
/// a dependency's message, a URL or a header with a credential in it.
struct RedactingStderr(Arc<crate::core::redact::Redactor>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactedLine;

    fn make_writer(&'a self) -> RedactedLine {
        RedactedLine {
            redactor: self.0.clone(),
            buf: Vec::new(),
            sink: Box::new(std::io::stderr()),
        }
    }
}

/// One formatted event, written redacted when the formatter is done with it.
struct RedactedLine {
    redactor: Arc<crate::core::redact::Redactor>,
    buf: Vec<u8>,
    sink: Box<dyn Write + Send>,
}

impl Write for RedactedLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = self.redactor.redact(&String::from_utf8_lossy(&self.buf));
        self.buf.clear();
        self.sink.write_all(text.as_bytes())
    }
}

impl Drop for RedactedLine {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// The redactor for logs: the built-in rules, and the secrets the process was given.
fn log_redactor(env: &Env) -> crate::core::redact::Redactor {
    let mut r = crate::core::redact::Redactor::new();
    for name in super::wire::SECRET_VARS {
        if let Some(v) = env(name) {
            r.learn_secret(&v);
        }
    }
    r
}

/// Entry point of the binary.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let process_env = |k: &str| std::env::var(k).ok();
    let files = super::wire::secret_files(&process_env).unwrap_or_default();
    init_tracing(log_redactor(&|k: &str| {
        files
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .or_else(|| process_env(k))
    }));
    let env = |k: &str| std::env::var(k).ok();
    ExitCode::from(execute(
        cli,
        &env,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    ))
}

/// Runs a parsed command line and returns the exit status (see EXIT CODES in `--help`).
pub fn execute(cli: Cli, env: &Env, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let files = match super::wire::secret_files(env) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    };
    let with_files = move |k: &str| {
        files
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .or_else(|| env(k))
    };
    let env: &Env = &with_files;
    match cli.command {
        CliCommand::Serve => serve(cli.config, env, err),
        CliCommand::Healthz => healthz(env, out, err),
        CliCommand::Doctor => super::doctor::run(cli.config.as_deref(), env, out),
        CliCommand::CheckConfig => match load_config(cli.config.as_deref(), env) {
            Ok((s, c, p)) => {
                // Discord refuses a whole registration for one bad definition: say which.
                let defs = crate::ingress::discord::commands::all(
                    &c,
                    &s.groups,
                    crate::ingress::discord::commands::Places { dms: false },
                );
                let discord = crate::ingress::discord::commands::limit_problems(&defs);
                if !discord.is_empty() {
                    for d in &discord {
                        let _ = writeln!(
                            err,
                            "error: {}: {d} (Discord would refuse the registration)",
                            s.commands_dir.display()
                        );
                    }
                    return 1;
                }
                let _ = writeln!(
                    out,
                    "ok: settings {}, project `{}`, {} command(s) from {}, {} role(s) from {}",
                    s.source,
                    s.project,
                    c.len(),
                    s.commands_dir.display(),
                    p.role_names().count(),
                    s.permissions_dir.display()
                );
                let mut services = s.platform.long_running();
                services.extend(s.platform.one_shot.iter().cloned());
                services.extend(s.groups.values().flatten().map(|m| m.to_string()));
                for w in p.service_pattern_warnings(&services, &s.groups) {
                    let _ = writeln!(out, "warning: {w}");
                }
                0
            }
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                1
            }
        },
        CliCommand::Commands => match load_config(cli.config.as_deref(), env) {
            Ok((_, c, _)) => {
                let _ = write!(out, "{}", commands_table(&c));
                0
            }
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                1
            }
        },
        CliCommand::Console(args) => console(cli.config, args, env, out, err),
        CliCommand::Audit(AuditCommand::Verify) => audit_verify(cli.config, env, out, err),
    }
}

fn runtime(err: &mut dyn Write) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            let _ = writeln!(err, "error: cannot start the async runtime: {e}");
            None
        }
    }
}

fn spill_anchor(env: &Env) -> PathBuf {
    Spill::new(spill_path(env)).anchor_path()
}

fn audit_verify(
    config: Option<PathBuf>,
    env: &Env,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let settings = match Settings::load_with_env(config.as_deref(), env) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 1;
        }
    };
    let Some(rt) = runtime(err) else { return 1 };
    let checked = rt.block_on(async {
        // Entries kept while the store was down are part of the log: written first.
        let store = resilient_store(store_url(&settings, env)?, env).map_err(anyhow::Error::msg)?;
        store.connect_now().await?;
        let anchor = store.read_anchor().with_context(|| {
            format!(
                "the audit anchor {} cannot be read",
                spill_anchor(env).display()
            )
        })?;
        let with = crate::core::store::VerifyWith {
            key: audit_key(env).map_err(anyhow::Error::msg)?,
            anchor: anchor.clone(),
        };
        let report = crate::core::store::verify_audit_with(&store, &with)
            .await
            .map_err(crate::core::store::StoreError::into_anyhow)?;
        anyhow::Ok((report, anchor.is_some()))
    });
    match checked {
        Ok((report, anchored)) => {
            let _ = writeln!(out, "{report}");
            if !anchored {
                let _ = writeln!(
                    out,
                    "note: no audit anchor at {}: entries cut off the end of the log are only noticed through the store's own head",
                    spill_anchor(env).display()
                );
            }
            if report.is_ok() { 0 } else { 1 }
        }
        Err(e) => {
            let _ = writeln!(err, "error: cannot read the audit log: {e:#}");
            1
        }
    }
}

/// The catalog as a terminal table.
pub fn commands_table(c: &Catalog) -> String {
    let rows: Vec<Vec<String>> = c
        .iter()
        .map(|cmd| {
            let target = match &cmd.target {
                Target::ServiceOption(o) => format!("service ({o})"),
                Target::GroupOption(o) => format!("group ({o})"),
                Target::Group(g) => format!("group {g}"),
                Target::Project => "project".into(),
                Target::None => "-".into(),
            };
            vec![
                format!("/{}", cmd.name),
                cmd.operation.to_string(),
                target,
                if cmd.destructive {
                    "yes".into()
                } else {
                    "no".into()
                },
                cmd.description.clone(),
            ]
        })
        .collect();
    text_table(
        &["command", "operation", "target", "approval", "description"].map(String::from),
        &rows,
    )
}

fn serve(config: Option<PathBuf>, env: &Env, err: &mut dyn Write) -> u8 {
    let (settings, catalog, policy) = match load_config(config.as_deref(), env) {
        Ok(x) => x,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 1;
        }
    };
    let discord = match crate::ingress::discord::DiscordConfig::from_env(env) {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    };
    let Some(rt) = runtime(err) else { return 1 };
    let Some(core) = store_backed_core(&rt, settings, catalog, policy, env, err) else {
        return 1;
    };
    let core = Arc::new(core);
    let health = match env("CONTAINER_OPS_HEALTH_ADDR").filter(|a| !a.is_empty()) {
        Some(a) => match a.parse::<std::net::SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                let _ = writeln!(
                    err,
                    "error: CONTAINER_OPS_HEALTH_ADDR `{a}` is not host:port"
                );
                return 2;
            }
        },
        None => None,
    };
    let grace = match env("CONTAINER_OPS_SHUTDOWN_GRACE").filter(|g| !g.is_empty()) {
        Some(g) => match crate::core::types::parse_duration(&g) {
            Ok(d) => d,
            Err(e) => {
                let _ = writeln!(err, "error: CONTAINER_OPS_SHUTDOWN_GRACE `{g}`: {e}");
                return 2;
            }
        },
        None => std::time::Duration::from_secs(60),
    };
    let spill = spill_path(env);
    rt.block_on(async move {
        let signals = match Signals::new() {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(err, "error: cannot watch for SIGTERM/SIGINT: {e}");
                return 1;
            }
        };
        if let Some(addr) = health {
            let watched = Arc::new(super::health::Watched {
                core: core.clone(),
                spill,
                gateway: true,
            });
            tokio::spawn(async move {
                if let Err(e) = super::health::serve(addr, watched).await {
                    tracing::error!("health listener on {addr} stopped: {e}");
                }
            });
        }
        let bot = crate::ingress::discord::serve(core.clone(), discord);
        let (code, said) = serve_until(core, bot, signals.into_channel(), grace).await;
        if !said.is_empty() {
            let _ = writeln!(err, "{said}");
        }
        code
    })
}

/// Runs `bot` until it ends or a stop arrives on `stop` (SIGTERM/SIGINT in the binary). Then
/// new commands are refused ("restarting"), running ones get `grace` to finish while the bot
/// keeps answering, the audit spill is written if the store is back, and the exit status is
/// returned (0 when nothing was left running, 1 otherwise, 130 on a second stop) with what
/// to tell the operator.
pub async fn serve_until(
    core: Arc<crate::pipeline::Core>,
    bot: impl std::future::Future<Output = anyhow::Result<()>>,
    mut stop: tokio::sync::mpsc::Receiver<()>,
    grace: std::time::Duration,
) -> (u8, String) {
    tokio::pin!(bot);
    tokio::select! {
        ended = &mut bot => return match ended {
            Ok(()) => (0, String::new()),
            Err(e) => (1, format!("error: {e:#}")),
        },
        _ = stop.recv() => {}
    }
    tracing::warn!(
        in_flight = core.in_flight(),
        "shutting down: new commands are refused; running ones have {}s to finish",
        grace.as_secs()
    );
    core.drain();
    let settled = tokio::select! {
        s = core.settled(grace) => s,
        ended = &mut bot => {
            if let Err(e) = ended {
                tracing::error!("the Discord connection ended while shutting down: {e:#}");
            }
            core.settled(grace).await
        }
        _ = stop.recv() => {
            return (130, format!("second signal: exiting now, {} command(s) still running", core.in_flight()));
        }
    };
    // Entries kept aside while the store was down are written now if it is back.
    if let Some(store) = core.store()
        && let Err(e) = store.audit_head().await
    {
        tracing::warn!(
            "the store is not reachable at shutdown; the spill file keeps its entries: {e}"
        );
    }
    if settled {
        tracing::warn!("shut down cleanly");
        (0, String::new())
    } else {
        (
            1,
            format!(
                "shut down with {} command(s) still running after {}s; an interrupted approved request is marked failed on the next start",
                core.in_flight(),
                grace.as_secs()
            ),
        )
    }
}

/// GET /healthz on the health listener of this host's `serve`.
fn healthz(env: &Env, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    use std::io::Read;
    let Some(addr) = env("CONTAINER_OPS_HEALTH_ADDR").filter(|a| !a.is_empty()) else {
        let _ = writeln!(err, "error: CONTAINER_OPS_HEALTH_ADDR is not set");
        return 1;
    };
    let Ok(mut addr) = addr.parse::<std::net::SocketAddr>() else {
        let _ = writeln!(
            err,
            "error: CONTAINER_OPS_HEALTH_ADDR `{addr}` is not host:port"
        );
        return 1;
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = std::time::Duration::from_secs(2);
    let answered = std::net::TcpStream::connect_timeout(&addr, timeout).and_then(|mut s| {
        s.set_read_timeout(Some(timeout))?;
        s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        Ok(resp)
    });
    match answered {
        Ok(resp) if resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200") => {
            let _ = writeln!(out, "ok");
            0
        }
        Ok(resp) => {
            let _ = writeln!(err, "unhealthy: {}", resp.lines().next().unwrap_or(""));
            1
        }
        Err(e) => {
            let _ = writeln!(err, "unhealthy: no answer on {addr}: {e}");
            1
        }
    }
}

/// SIGTERM (docker stop) and SIGINT (Ctrl-C), first and second.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }

    /// Each signal as one message on a channel.
    fn into_channel(mut self) -> tokio::sync::mpsc::Receiver<()> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                self.next().await;
                if tx.send(()).await.is_err() {
                    return;
                }
            }
        });
        rx
    }
}

fn console(
    config: Option<PathBuf>,
    args: ConsoleArgs,
    env: &Env,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let (settings, catalog, policy) = match load_config(config.as_deref(), env) {
        Ok(x) => x,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 1;
        }
    };
    let (user, channel) = match (UserId::parse(&args.user), ChannelId::parse(&args.channel)) {
        (Ok(u), Ok(c)) => (u, c),
        (Err(e), _) | (_, Err(e)) => {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    };
    let os_user = crate::ingress::console::os_user();
    if let Err(e) = settings.console.may_act_as(os_user, user.as_str()) {
        let _ = writeln!(err, "error: {e}");
        return 2;
    }
    let Some(rt) = runtime(err) else { return 1 };
    let Some(core) = store_backed_core(&rt, settings, catalog, policy, env, err) else {
        return 1;
    };
    let console = Console {
        core: &core,
        user,
        channel,
        attachments_dir: args.attachments_dir,
    };
    if let Some(line) = args.command {
        return match rt.block_on(console.run_line(&line, out)) {
            Ok(code) => code,
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                1
            }
        };
    }
    interactive(&rt, &console, args.history.as_deref(), out, err)
}

/// Line editing with completion from the catalog (rustyline's other helper parts stay default).
struct ConsoleHelper {
    catalog: Catalog,
    groups: Vec<String>,
}

impl rustyline::completion::Completer for ConsoleHelper {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(crate::ingress::console::complete(
            &self.catalog,
            &self.groups,
            line.get(..pos).unwrap_or(line),
        ))
    }
}
impl rustyline::hint::Hinter for ConsoleHelper {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for ConsoleHelper {}
impl rustyline::validate::Validator for ConsoleHelper {}
impl rustyline::Helper for ConsoleHelper {}

fn interactive(
    rt: &tokio::runtime::Runtime,
    console: &Console<'_>,
    history: Option<&Path>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let mut ed = match rustyline::Editor::<ConsoleHelper, rustyline::history::DefaultHistory>::new()
    {
        Ok(ed) => ed,
        Err(e) => {
            let _ = writeln!(err, "error: cannot open the terminal: {e}");
            return 1;
        }
    };
    ed.set_helper(Some(ConsoleHelper {
        catalog: console.core.catalog.clone(),
        groups: console
            .core
            .settings
            .groups
            .keys()
            .map(|g| g.to_string())
            .collect(),
    }));
    if let Some(h) = history {
        let _ = ed.load_history(h);
    }
    let _ = writeln!(
        out,
        "container-ops console as `{}` in `{}`; /help lists your commands, Ctrl-D quits.",
        console.user, console.channel
    );
    let prompt = format!("{}@{}> ", console.user, console.channel);
    loop {
        match ed.readline(&prompt) {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                if matches!(line, "exit" | "quit") {
                    break;
                }
                let _ = ed.add_history_entry(line);
                if let Err(e) = rt.block_on(console.run_line(line, out)) {
                    let _ = writeln!(err, "error: {e}");
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                return 1;
            }
        }
    }
    if let Some(h) = history
        && let Err(e) = ed.save_history(h)
    {
        let _ = writeln!(err, "warning: history not saved to {}: {e}", h.display());
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_reaches_its_sink_redacted_and_whole() {
        let mut r = crate::core::redact::Redactor::new();
        r.learn_secret("s3cr3t-store-password-42");
        let out = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut line = RedactedLine {
            redactor: Arc::new(r),
            buf: Vec::new(),
            sink: Box::new(Shared(out.clone())),
        };
        // The formatter writes an event in pieces; the secret may straddle them.
        line.write_all(b"ERROR store: connect postgres://app:s3cr3t-store-")
            .unwrap();
        line.write_all(
            b"password-42@db/app failed; token ghp_abcdefghijklmnopqrstuvwxyz0123456789\n",
        )
        .unwrap();
        drop(line);
        let written = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert!(
            written.starts_with("ERROR store: connect postgres://app:"),
            "{written}"
        );
        assert!(written.ends_with('\n'), "{written}");
        for secret in [
            "s3cr3t-store-password-42",
            "abcdefghijklmnopqrstuvwxyz0123456789",
        ] {
            assert!(!written.contains(secret), "{written}");
        }
    }
}
