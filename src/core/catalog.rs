//! The command catalog: one `commands/*.toml` file per slash command, validated at start-up.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::core::error::{ConfigError, line_of};
use crate::core::ratelimit::RateSpec;
use crate::core::types::{CommandName, GroupName, RoleId, parse_duration};

/// The built-in operations a command can map to. Adding one is a code change, on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Status,
    Logs,
    Stats,
    Restart,
    Stop,
    Start,
    Config,
    Volumes,
    Network,
    DiskUsage,
    Help,
    /// Review and list approval requests, and read the audit log.
    Approve,
    Deny,
    Cancel,
    Pending,
    Audit,
    /// Destructive: recreate a stateful service with fresh volumes and re-run its init job.
    Reset,
    /// Destructive: run the backup script in `db-backup`.
    Backup,
    /// Destructive: `pg_restore -c` a dump from /backups with the app services stopped.
    Restore,
    /// Destructive: Redis FLUSHALL.
    FlushRedis,
    /// Destructive: terminate the app's Postgres backends.
    TerminateBackends,
    /// Destructive: the whole project's volumes recreated empty (backups kept), everything restarted.
    ResetProject,
    /// Destructive: terminate one Temporal workflow through the HTTP API.
    TerminateWorkflow,
    /// Read-only diagnosis: every probe, then the Container Operations Report.
    Diagnose,
    /// Read-only: the probes' verdicts as a table, optionally for one service or probe.
    Health,
    /// Read-only per-domain views of the platform's dependencies.
    Db,
    Redis,
    Storage,
    Temporal,
    NetworkCheck,
    /// Open an incident (a chat thread with a timeline) or close the one the command is typed in.
    Incident,
}

/// The type of an operation parameter, which an option or a fixed `params` value fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Integer,
    String,
    Boolean,
    Duration,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Status => "status",
            Operation::Logs => "logs",
            Operation::Stats => "stats",
            Operation::Restart => "restart",
            Operation::Stop => "stop",
            Operation::Start => "start",
            Operation::Config => "config",
            Operation::Volumes => "volumes",
            Operation::Network => "network",
            Operation::DiskUsage => "disk_usage",
            Operation::Help => "help",
            Operation::Approve => "approve",
            Operation::Deny => "deny",
            Operation::Cancel => "cancel",
            Operation::Pending => "pending",
            Operation::Audit => "audit",
            Operation::Reset => "reset",
            Operation::Backup => "backup",
            Operation::Restore => "restore",
            Operation::FlushRedis => "flush_redis",
            Operation::TerminateBackends => "terminate_backends",
            Operation::ResetProject => "reset_project",
            Operation::TerminateWorkflow => "terminate_workflow",
            Operation::Diagnose => "diagnose",
            Operation::Health => "health",
            Operation::Db => "db",
            Operation::Redis => "redis",
            Operation::Storage => "storage",
            Operation::Temporal => "temporal",
            Operation::NetworkCheck => "network_check",
            Operation::Incident => "incident",
        }
    }

    /// Destroys or replaces state: runs only once another person approves it, whatever the
    /// command file says. A command file may also put an ordinary operation behind approval
    /// (`destructive = true`, e.g. restarting the infrastructure).
    pub fn requires_approval(self) -> bool {
        matches!(
            self,
            Operation::Reset
                | Operation::Backup
                | Operation::Restore
                | Operation::FlushRedis
                | Operation::TerminateBackends
                | Operation::ResetProject
                | Operation::TerminateWorkflow
        )
    }

    /// Changes the state of containers (and so counts against the per-service limit).
    pub fn is_mutation(self) -> bool {
        matches!(
            self,
            Operation::Restart | Operation::Stop | Operation::Start
        )
    }

    /// The parameters the operation understands.
    pub fn params(self) -> &'static [(&'static str, ParamKind)] {
        match self {
            Operation::Logs => &[
                ("tail", ParamKind::Integer),
                ("since", ParamKind::Duration),
                ("grep", ParamKind::String),
                ("timestamps", ParamKind::Boolean),
            ],
            Operation::Restart | Operation::Stop => &[("timeout", ParamKind::Duration)],
            Operation::Help => &[("command", ParamKind::String)],
            Operation::Approve | Operation::Cancel => &[("id", ParamKind::String)],
            Operation::Deny => &[("id", ParamKind::String), ("reason", ParamKind::String)],
            Operation::Audit => &[
                ("user", ParamKind::String),
                ("service", ParamKind::String),
                ("command", ParamKind::String),
                ("since", ParamKind::Duration),
                ("limit", ParamKind::Integer),
            ],
            Operation::Restore => &[("file", ParamKind::String)],
            Operation::TerminateWorkflow => &[("workflow", ParamKind::String)],
            Operation::Diagnose => &[("service", ParamKind::String)],
            Operation::Health => &[("target", ParamKind::String)],
            Operation::Db => &[("view", ParamKind::String)],
            Operation::Redis => &[("view", ParamKind::String), ("pattern", ParamKind::String)],
            Operation::Storage => &[("view", ParamKind::String), ("key", ParamKind::String)],
            Operation::NetworkCheck => &[
                ("view", ParamKind::String),
                ("name", ParamKind::String),
                ("host", ParamKind::String),
                ("port", ParamKind::Integer),
            ],
            Operation::Incident => &[("action", ParamKind::String), ("title", ParamKind::String)],
            _ => &[],
        }
    }

    fn allowed_targets(self) -> &'static [TargetKind] {
        use TargetKind::*;
        match self {
            Operation::Status | Operation::Stats | Operation::Logs | Operation::Config => {
                &[Service, Group, Project]
            }
            Operation::Restart | Operation::Stop | Operation::Start => &[Service, Group],
            Operation::Volumes | Operation::Network | Operation::DiskUsage => &[Project],
            Operation::Help
            | Operation::Approve
            | Operation::Deny
            | Operation::Cancel
            | Operation::Pending
            | Operation::Audit
            | Operation::Backup
            | Operation::Restore
            | Operation::FlushRedis
            | Operation::TerminateBackends
            | Operation::ResetProject
            | Operation::TerminateWorkflow
            | Operation::Diagnose
            | Operation::Health
            | Operation::Db
            | Operation::Redis
            | Operation::Storage
            | Operation::Temporal
            | Operation::Incident => &[None],
            // `from` names the service the check runs in.
            Operation::NetworkCheck => &[Service, None],
            Operation::Reset => &[Service],
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptionType {
    String,
    Integer,
    Boolean,
    /// A service of the live project.
    Service,
    /// A group from the settings.
    Group,
    /// `30s`, `15m`, `2h`.
    Duration,
}

impl OptionType {
    fn param_kind(self) -> Option<ParamKind> {
        match self {
            OptionType::String => Some(ParamKind::String),
            OptionType::Integer => Some(ParamKind::Integer),
            OptionType::Boolean => Some(ParamKind::Boolean),
            OptionType::Duration => Some(ParamKind::Duration),
            OptionType::Service | OptionType::Group => None,
        }
    }
}

impl fmt::Display for OptionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OptionType::String => "string",
            OptionType::Integer => "integer",
            OptionType::Boolean => "boolean",
            OptionType::Service => "service",
            OptionType::Group => "group",
            OptionType::Duration => "duration",
        })
    }
}

/// Where a chat client gets suggestions for an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Autocomplete {
    Services,
    Groups,
    Commands,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TargetKind {
    Service,
    Group,
    Project,
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    name: Spanned<String>,
    description: String,
    operation: Spanned<Operation>,
    params: Option<Spanned<toml::Table>>,
    #[serde(default)]
    options: Vec<RawOption>,
    target: Spanned<RawTarget>,
    #[serde(default)]
    destructive: bool,
    approval: Option<Spanned<RawApproval>>,
    rate_limit: Option<RateSpec>,
    /// Publish the command in chat even when no permissions grant reaches anyone.
    #[serde(default)]
    show_when_ungranted: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOption {
    name: Spanned<String>,
    description: String,
    #[serde(rename = "type")]
    kind: OptionType,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    multiple: bool,
    #[serde(default)]
    choices: Vec<String>,
    autocomplete: Option<Autocomplete>,
    max_length: Option<usize>,
    min: Option<i64>,
    max: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    kind: TargetKind,
    option: Option<String>,
    group: Option<GroupName>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    approvers: Vec<Spanned<RoleId>>,
    #[serde(default = "one")]
    min_approvals: u32,
    #[serde(
        default = "fifteen_minutes",
        deserialize_with = "crate::core::settings::de_duration"
    )]
    ttl: Duration,
}

fn one() -> u32 {
    1
}
fn fifteen_minutes() -> Duration {
    Duration::from_secs(900)
}

/// A fixed parameter value from a command file.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Integer(i64),
    String(String),
    Boolean(bool),
    Duration(Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OptionSpec {
    pub name: String,
    pub description: String,
    pub kind: OptionType,
    pub required: bool,
    /// Accepts several values (repeated `key:value` or comma-separated).
    pub multiple: bool,
    pub choices: Vec<String>,
    pub autocomplete: Option<Autocomplete>,
    pub max_length: Option<usize>,
    pub min: Option<i64>,
    pub max: Option<i64>,
}

/// What a command acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Services named by an option; the whole project when the option is optional and absent.
    ServiceOption(String),
    /// A group named by a `group`-typed option.
    GroupOption(String),
    /// A fixed group from the settings.
    Group(GroupName),
    Project,
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRule {
    pub approvers: Vec<RoleId>,
    pub min_approvals: u32,
    pub ttl: Duration,
    /// Line of `approvers` in the command file, for start-up errors about roles.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: CommandName,
    pub description: String,
    pub operation: Operation,
    pub params: BTreeMap<String, ParamValue>,
    pub options: Vec<OptionSpec>,
    pub target: Target,
    /// Runs only with approvals: its operation requires them, or its file says `destructive`.
    pub destructive: bool,
    pub approval: Option<ApprovalRule>,
    pub rate_limit: Option<RateSpec>,
    /// Chat clients list commands granted to nobody only when this is set (hidden by default,
    /// so a menu shows what the team can actually run).
    pub show_when_ungranted: bool,
    pub source: PathBuf,
}

impl Command {
    pub fn option(&self, name: &str) -> Option<&OptionSpec> {
        self.options.iter().find(|o| o.name == name)
    }

    /// `/logs service:<service…> [tail:<integer>] …`
    pub fn usage(&self) -> String {
        let mut s = format!("/{}", self.name);
        for o in &self.options {
            let v = format!(
                "{}:<{}{}>",
                o.name,
                o.kind,
                if o.multiple { "…" } else { "" }
            );
            if o.required {
                s.push_str(&format!(" {v}"));
            } else {
                s.push_str(&format!(" [{v}]"));
            }
        }
        s
    }
}

/// Every command, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    commands: BTreeMap<CommandName, Command>,
}

impl Catalog {
    /// Loads every `*.toml` in `dir`; any bad file fails the whole catalog.
    pub fn load_dir(dir: &Path, groups: &BTreeSet<GroupName>) -> Result<Self, ConfigError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| ConfigError::new(dir, format!("cannot read the commands directory: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut catalog = Catalog::default();
        for path in files {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::new(&path, format!("cannot read: {e}")))?;
            let cmd = parse_command(&path, &text, groups)?;
            if let Some(prev) = catalog.commands.get(&cmd.name) {
                return Err(ConfigError::at(
                    &path,
                    &text,
                    Some(0..0),
                    format!(
                        "command `/{}` is already defined in {}",
                        cmd.name,
                        prev.source.display()
                    ),
                ));
            }
            catalog.commands.insert(cmd.name.clone(), cmd);
        }
        if catalog.commands.is_empty() {
            return Err(ConfigError::new(dir, "no command files (*.toml) found"));
        }
        Ok(catalog)
    }

    pub fn get(&self, name: &str) -> Option<&Command> {
        self.commands.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Command> {
        self.commands.values()
    }

    pub fn names(&self) -> impl Iterator<Item = &CommandName> {
        self.commands.keys()
    }

    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

/// Parses and validates one command file; `path` names it in errors.
pub fn parse_command(
    path: &Path,
    text: &str,
    groups: &BTreeSet<GroupName>,
) -> Result<Command, ConfigError> {
    let raw: RawCommand =
        toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
    let err =
        |span: std::ops::Range<usize>, msg: String| ConfigError::at(path, text, Some(span), msg);

    let name =
        CommandName::parse(raw.name.get_ref()).map_err(|e| err(raw.name.span(), e.to_string()))?;
    let operation = *raw.operation.get_ref();
    let op_params = operation.params();

    let mut options = Vec::new();
    for o in raw.options {
        let oname = o.name.get_ref().clone();
        CommandName::parse(&oname).map_err(|e| err(o.name.span(), format!("option name: {e}")))?;
        if options.iter().any(|x: &OptionSpec| x.name == oname) {
            return Err(err(
                o.name.span(),
                format!("option `{oname}` is defined twice"),
            ));
        }
        if let Some(kind) = o.kind.param_kind() {
            match op_params.iter().find(|(p, _)| *p == oname) {
                None => {
                    return Err(err(
                        o.name.span(),
                        format!(
                            "option `{oname}` is not a parameter of operation `{operation}` (it takes: {})",
                            list_params(op_params)
                        ),
                    ));
                }
                Some((_, want)) if *want != kind => {
                    return Err(err(
                        o.name.span(),
                        format!(
                            "option `{oname}` has type {} but operation `{operation}` needs {want:?}",
                            o.kind
                        ),
                    ));
                }
                _ => {}
            }
        }
        if !o.choices.is_empty() && !matches!(o.kind, OptionType::String | OptionType::Integer) {
            return Err(err(
                o.name.span(),
                format!("option `{oname}`: choices only apply to string and integer options"),
            ));
        }
        if o.kind == OptionType::Integer {
            for c in &o.choices {
                if c.parse::<i64>().is_err() {
                    return Err(err(
                        o.name.span(),
                        format!("option `{oname}`: choice `{c}` is not an integer"),
                    ));
                }
            }
        }
        if (o.min.is_some() || o.max.is_some()) && o.kind != OptionType::Integer {
            return Err(err(
                o.name.span(),
                format!("option `{oname}`: min/max only apply to integer options"),
            ));
        }
        if let (Some(lo), Some(hi)) = (o.min, o.max)
            && lo > hi
        {
            return Err(err(
                o.name.span(),
                format!("option `{oname}`: min {lo} is above max {hi}"),
            ));
        }
        if o.multiple && o.kind != OptionType::Service {
            return Err(err(
                o.name.span(),
                format!("option `{oname}`: only service options may take several values"),
            ));
        }
        options.push(OptionSpec {
            name: oname,
            description: o.description,
            kind: o.kind,
            required: o.required,
            multiple: o.multiple,
            choices: o.choices,
            autocomplete: o.autocomplete,
            max_length: o.max_length,
            min: o.min,
            max: o.max,
        });
    }

    let mut params = BTreeMap::new();
    let params_span = raw.params.as_ref().map(|p| p.span()).unwrap_or(0..0);
    for (k, v) in raw.params.map(|p| p.into_inner()).unwrap_or_default() {
        let Some((_, kind)) = op_params.iter().find(|(p, _)| *p == k) else {
            return Err(err(
                params_span,
                format!(
                    "params: `{k}` is not a parameter of operation `{operation}` (it takes: {})",
                    list_params(op_params)
                ),
            ));
        };
        if options.iter().any(|o| o.name == k) {
            return Err(err(
                params_span,
                format!("params: `{k}` is fixed here and also an option; pick one"),
            ));
        }
        let value = match (kind, &v) {
            (ParamKind::Integer, toml::Value::Integer(i)) => ParamValue::Integer(*i),
            (ParamKind::String, toml::Value::String(s)) => ParamValue::String(s.clone()),
            (ParamKind::Boolean, toml::Value::Boolean(b)) => ParamValue::Boolean(*b),
            (ParamKind::Duration, toml::Value::String(s)) => ParamValue::Duration(
                parse_duration(s)
                    .map_err(|e| err(params_span.clone(), format!("params: `{k}`: {e}")))?,
            ),
            _ => {
                return Err(err(
                    params_span,
                    format!("params: `{k}` must be {kind:?}, not {}", v.type_str()),
                ));
            }
        };
        params.insert(k, value);
    }

    let target_span = raw.target.span();
    let rt = raw.target.into_inner();
    if !operation.allowed_targets().contains(&rt.kind) {
        return Err(err(
            target_span,
            format!("operation `{operation}` cannot target {:?}", rt.kind).to_lowercase(),
        ));
    }
    let target = match rt.kind {
        TargetKind::Service => {
            let o = rt.option.ok_or_else(|| {
                err(
                    target_span.clone(),
                    "target kind `service` needs `option`".into(),
                )
            })?;
            match options.iter().find(|x| x.name == o) {
                Some(spec) if spec.kind == OptionType::Service => Target::ServiceOption(o),
                _ => {
                    return Err(err(
                        target_span,
                        format!("target option `{o}` is not a service option of this command"),
                    ));
                }
            }
        }
        TargetKind::Group => match (rt.group, rt.option) {
            (Some(g), None) => {
                if !groups.contains(&g) {
                    return Err(err(
                        target_span,
                        format!("group `{g}` is not defined in the settings' [groups]"),
                    ));
                }
                Target::Group(g)
            }
            (None, Some(o)) => match options.iter().find(|x| x.name == o) {
                Some(spec) if spec.kind == OptionType::Group => Target::GroupOption(o),
                _ => {
                    return Err(err(
                        target_span,
                        format!("target option `{o}` is not a group option of this command"),
                    ));
                }
            },
            _ => {
                return Err(err(
                    target_span,
                    "target kind `group` needs either `group` or `option`".into(),
                ));
            }
        },
        TargetKind::Project => Target::Project,
        TargetKind::None => Target::None,
    };
    for o in &options {
        let is_target =
            matches!(&target, Target::ServiceOption(t) | Target::GroupOption(t) if *t == o.name);
        if matches!(o.kind, OptionType::Service | OptionType::Group) && !is_target {
            return Err(err(
                target_span.clone(),
                format!(
                    "option `{}` names services but is not the target option",
                    o.name
                ),
            ));
        }
    }

    let approval = match raw.approval {
        Some(a) => {
            let span = a.span();
            let a = a.into_inner();
            if a.approvers.is_empty() {
                return Err(err(
                    span,
                    "approval.approvers must name at least one role".into(),
                ));
            }
            if a.min_approvals == 0 {
                return Err(err(
                    span,
                    "approval.min_approvals must be at least 1".into(),
                ));
            }
            let line = line_of(text, a.approvers[0].span().start);
            Some(ApprovalRule {
                approvers: a.approvers.into_iter().map(|r| r.into_inner()).collect(),
                min_approvals: a.min_approvals,
                ttl: a.ttl,
                line,
            })
        }
        None => None,
    };
    if operation.requires_approval() && approval.is_none() {
        return Err(err(
            raw.operation.span(),
            format!(
                "operation `{operation}` is destructive, so command `/{name}` needs an [approval] section with approver roles"
            ),
        ));
    }
    if raw.destructive && !(operation.is_mutation() || operation.requires_approval()) {
        return Err(err(
            raw.operation.span(),
            format!(
                "operation `{operation}` cannot be put behind approval (`destructive = true`): only restart, stop, start and the destructive operations can"
            ),
        ));
    }
    if raw.destructive && approval.is_none() {
        return Err(err(
            raw.name.span(),
            format!("command `/{name}` is destructive but has no [approval] with approver roles"),
        ));
    }

    Ok(Command {
        name,
        description: raw.description,
        operation,
        params,
        options,
        target,
        destructive: raw.destructive || operation.requires_approval(),
        approval,
        rate_limit: raw.rate_limit,
        show_when_ungranted: raw.show_when_ungranted,
        source: path.to_owned(),
    })
}

fn list_params(p: &[(&str, ParamKind)]) -> String {
    if p.is_empty() {
        "nothing".into()
    } else {
        p.iter()
            .map(|(n, _)| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> BTreeSet<GroupName> {
        ["app", "infra"]
            .iter()
            .map(|g| GroupName::parse(g).unwrap())
            .collect()
    }

    fn repo(p: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
    }

    #[test]
    fn shipped_commands_all_load() {
        let c = Catalog::load_dir(&repo("commands"), &groups()).unwrap();
        for name in [
            "status",
            "logs",
            "stats",
            "restart",
            "stop",
            "start",
            "restart-app",
            "restart-infra",
            "config",
            "volumes",
            "network",
            "disk",
            "help",
        ] {
            assert!(c.get(name).is_some(), "missing /{name}");
        }
        let infra = c.get("restart-infra").unwrap();
        assert!(infra.destructive);
        assert_eq!(
            infra.target,
            Target::Group(GroupName::parse("infra").unwrap())
        );
        assert_eq!(
            infra.approval.as_ref().unwrap().approvers,
            [RoleId::parse("approver").unwrap()]
        );
        let logs = c.get("logs").unwrap();
        assert!(logs.option("service").unwrap().multiple);
        assert_eq!(logs.operation, Operation::Logs);
    }

    fn parse(text: &str) -> Result<Command, ConfigError> {
        parse_command(Path::new("commands/x.toml"), text, &groups())
    }

    const OK: &str = "name = \"x\"\ndescription = \"d\"\noperation = \"status\"\ntarget = { kind = \"project\" }\n";

    #[test]
    fn a_minimal_command_parses() {
        let c = parse(OK).unwrap();
        assert_eq!(c.name.as_str(), "x");
        assert_eq!(c.target, Target::Project);
    }

    #[test]
    fn unknown_operation_is_refused_with_file_and_line() {
        let e = parse(&OK.replace("\"status\"", "\"reboot\"")).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("reboot"), "{e}");
        assert!(e.to_string().starts_with("commands/x.toml:3:"), "{e}");
    }

    #[test]
    fn unknown_field_is_refused_with_its_line() {
        let e = parse(&format!("{OK}colour = \"red\"\n")).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
    }

    #[test]
    fn show_when_ungranted_defaults_to_hidden_and_must_be_a_boolean() {
        assert!(!parse(OK).unwrap().show_when_ungranted);
        let shown = parse(&format!("{OK}show_when_ungranted = true\n")).unwrap();
        assert!(shown.show_when_ungranted);
        let e = parse(&format!("{OK}show_when_ungranted = \"yes\"\n")).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        // A misspelling is an unknown field, not a silently hidden command.
        let e = parse(&format!("{OK}show_when_ungrantd = true\n")).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("show_when_ungrantd"), "{e}");
    }

    #[test]
    fn destructive_command_without_approvers_is_refused() {
        let text = "name = \"x\"\ndescription = \"d\"\noperation = \"restart\"\ndestructive = true\ntarget = { kind = \"group\", group = \"infra\" }\n";
        let e = parse(text).unwrap_err();
        assert!(e.message.contains("no [approval]"), "{e}");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn a_destructive_operation_without_approvers_is_refused_at_its_operation_line() {
        let text = "name = \"wipe-cache\"\ndescription = \"d\"\noperation = \"flush_redis\"\ntarget = { kind = \"none\" }\n";
        let e = parse(text).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(
            e.message.contains("operation `flush_redis` is destructive"),
            "{e}"
        );
        let approved = format!("{text}[approval]\napprovers = [\"approver\"]\n");
        assert!(parse(&approved).unwrap().destructive, "no flag needed");
    }

    #[test]
    fn undefined_group_is_refused() {
        let text = "name = \"x\"\ndescription = \"d\"\noperation = \"restart\"\ntarget = { kind = \"group\", group = \"edge\" }\n";
        let e = parse(text).unwrap_err();
        assert!(e.message.contains("group `edge`"), "{e}");
        assert_eq!(e.line, Some(4));
    }

    #[test]
    fn option_type_must_match_the_operation_parameter() {
        let text = "name = \"x\"\ndescription = \"d\"\noperation = \"logs\"\ntarget = { kind = \"project\" }\n\n[[options]]\nname = \"tail\"\ndescription = \"n\"\ntype = \"string\"\n";
        let e = parse(text).unwrap_err();
        assert_eq!(e.line, Some(7), "{e}");
        assert!(e.message.contains("Integer"), "{e}");
        let e = parse(&text.replace("\"string\"", "\"float\"")).unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
    }

    #[test]
    fn fixed_params_are_typed() {
        let text = "name = \"x\"\ndescription = \"d\"\noperation = \"logs\"\ntarget = { kind = \"project\" }\nparams = { tail = \"many\" }\n";
        assert!(parse(text).unwrap_err().message.contains("tail"));
        let ok = parse(&text.replace("\"many\"", "50")).unwrap();
        assert_eq!(ok.params["tail"], ParamValue::Integer(50));
    }

    #[test]
    fn restart_cannot_target_the_whole_project() {
        let e = parse(&OK.replace("\"status\"", "\"restart\"")).unwrap_err();
        assert!(e.message.contains("cannot target"), "{e}");
    }

    #[test]
    fn bad_command_fixture_names_the_file_and_line() {
        let dir = repo("tests/fixtures/commands-bad-operation");
        let e = Catalog::load_dir(&dir, &groups()).unwrap_err();
        assert!(e.path.ends_with("reboot.toml"), "{e}");
        assert_eq!(e.line, Some(4), "{e}");
    }

    #[test]
    fn a_non_boolean_show_when_ungranted_fixture_names_the_file_and_line() {
        let dir = repo("tests/fixtures/commands-bad-show-when-ungranted");
        let e = Catalog::load_dir(&dir, &groups()).unwrap_err();
        assert!(e.path.ends_with("status.toml"), "{e}");
        assert_eq!(e.line, Some(4), "{e}");
    }

    #[test]
    fn duplicate_command_names_are_refused_naming_both_files() {
        let dir = repo("tests/fixtures/commands-duplicate");
        let e = Catalog::load_dir(&dir, &groups()).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("a.toml") && s.contains("b.toml"), "{s}");
    }

    #[test]
    fn adding_a_file_to_the_commands_dir_adds_the_command() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("status.toml"),
            OK.replace("\"x\"", "\"status\""),
        )
        .unwrap();
        assert_eq!(Catalog::load_dir(dir.path(), &groups()).unwrap().len(), 1);
        let text = "name = \"errors\"\ndescription = \"Recent error lines\"\noperation = \"logs\"\nparams = { grep = \"error\", tail = 500 }\ntarget = { kind = \"service\", option = \"service\" }\n[[options]]\nname = \"service\"\ndescription = \"s\"\ntype = \"service\"\nrequired = true\n";
        std::fs::write(dir.path().join("errors.toml"), text).unwrap();
        let c = Catalog::load_dir(dir.path(), &groups()).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(
            c.get("errors").unwrap().params["grep"],
            ParamValue::String("error".into())
        );
    }
}
