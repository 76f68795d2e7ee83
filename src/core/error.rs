//! The two kinds of failure: user errors that say what to do, and internal errors shown only by reference.

use std::fmt;
use std::time::Duration;

use crate::core::approvals::request::Refusal;
use crate::core::engine::EngineError;
use crate::core::store::AuditDecision;
use crate::core::store::StoreError;
use crate::core::types::{ChannelId, CommandName, RoleId, ServiceName, UserId, format_duration};

/// What the person is told while the store is down (approvals and the audit log live there).
pub const STORE_DOWN: &str = "the approval store is unreachable, so destructive commands are refused until it is back; read-only commands still work";

/// Something the person can act on: data, rendered as chat Markdown in [`UserError::markdown`] only.
#[derive(Debug, Clone, PartialEq)]
pub enum UserError {
    /// No grant lets these roles run the command (on these services) in this channel.
    Denied {
        actor: UserId,
        roles: Vec<RoleId>,
        command: CommandName,
        /// The services refused; empty when the command itself is not granted.
        services: Vec<ServiceName>,
        channel: ChannelId,
    },
    /// An approval rule refused the action (own request, no approver role, expired, …).
    Approval(Refusal),
    /// Refused for a reason in words (a target changed since approval, a request not runnable here).
    Refused(String),
    RateLimited {
        scope: String,
        retry_after: Duration,
    },
    /// Destructive, and this bot has no store to keep an approval request in.
    NeedsApproval {
        command: String,
        approvers: Vec<String>,
        min_approvals: u32,
        ttl: Duration,
    },
    NotFound(String),
    InvalidArgument(String),
    /// The bot's own store (approvals, audit) cannot be reached.
    StoreDown,
    /// The Docker Engine cannot be reached or did not answer.
    EngineDown(String),
    /// Something the bot asked (a dependency, a service, the operation as a whole) did not answer or failed.
    Unavailable(String),
    /// An approved request ran and failed; `cause` says how.
    ApprovedRunFailed {
        id: String,
        cause: Box<UserError>,
    },
    /// Any of the above with a line the reply must carry (an audit notice).
    Noted {
        error: Box<UserError>,
        note: String,
    },
}

impl std::error::Error for UserError {}

/// One line, for logs, the audit and the incident timeline.
impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserError::Denied { .. } => f.write_str(&self.denial()),
            UserError::Approval(r) => f.write_str(&r.markdown()),
            UserError::Refused(m)
            | UserError::NotFound(m)
            | UserError::InvalidArgument(m)
            | UserError::EngineDown(m)
            | UserError::Unavailable(m) => f.write_str(m),
            UserError::RateLimited { scope, retry_after } => write!(
                f,
                "rate limited ({scope}); retry in {}",
                format_duration(*retry_after)
            ),
            UserError::NeedsApproval { .. } => f.write_str("needs approval"),
            UserError::StoreDown => f.write_str(STORE_DOWN),
            UserError::ApprovedRunFailed { id, cause } => {
                write!(f, "approved request {id} failed: {cause}")
            }
            UserError::Noted { error, .. } => error.fmt(f),
        }
    }
}

fn ticked<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl UserError {
    fn denial(&self) -> String {
        let UserError::Denied {
            actor,
            roles,
            command,
            services,
            channel,
        } = self
        else {
            return String::new();
        };
        let roles = if roles.is_empty() {
            "no roles".to_owned()
        } else {
            ticked(roles)
        };
        let what = if services.is_empty() {
            format!("`/{command}`")
        } else {
            format!("`/{command}` on {}", ticked(services))
        };
        format!("`{actor}` ({roles}) may not run {what} in `{channel}`.")
    }

    /// The same error with every text run through the redactor (messages may echo input).
    pub fn redacted(self, r: &crate::core::redact::Redactor) -> Self {
        match self {
            UserError::Refused(m) => UserError::Refused(r.redact(&m)),
            UserError::NotFound(m) => UserError::NotFound(r.redact(&m)),
            UserError::InvalidArgument(m) => UserError::InvalidArgument(r.redact(&m)),
            UserError::EngineDown(m) => UserError::EngineDown(r.redact(&m)),
            UserError::Unavailable(m) => UserError::Unavailable(r.redact(&m)),
            UserError::RateLimited { scope, retry_after } => UserError::RateLimited {
                scope: r.redact(&scope),
                retry_after,
            },
            UserError::ApprovedRunFailed { id, cause } => UserError::ApprovedRunFailed {
                id,
                cause: Box::new(cause.redacted(r)),
            },
            UserError::Noted { error, note } => UserError::Noted {
                error: Box::new(error.redacted(r)),
                note: r.redact(&note),
            },
            // Parsed names and fixed texts only.
            other @ (UserError::Denied { .. }
            | UserError::Approval(_)
            | UserError::NeedsApproval { .. }
            | UserError::StoreDown) => other,
        }
    }

    /// The same error with a line added to the reply.
    pub fn with_note(self, note: impl Into<String>) -> Self {
        UserError::Noted {
            error: Box::new(self),
            note: note.into(),
        }
    }

    /// The audit's word for how a refused or failed run ended.
    pub fn decision(&self) -> AuditDecision {
        match self {
            UserError::Noted { error, .. } => error.decision(),
            UserError::Denied { .. } | UserError::Approval(_) | UserError::Refused(_) => {
                AuditDecision::Denied
            }
            UserError::RateLimited { .. } => AuditDecision::Limited,
            UserError::NeedsApproval { .. } => AuditDecision::Pending,
            UserError::NotFound(_) | UserError::InvalidArgument(_) => AuditDecision::Invalid,
            UserError::StoreDown
            | UserError::EngineDown(_)
            | UserError::Unavailable(_)
            | UserError::ApprovedRunFailed { .. } => AuditDecision::Failed,
        }
    }

    /// The chat message: what happened and what to do next.
    pub fn markdown(&self) -> String {
        match self {
            UserError::Denied { .. } => format!(
                "**Denied.** {}\nAsk an admin for a role that grants it, or use a channel where it is allowed.",
                self.denial()
            ),
            UserError::Approval(r @ Refusal::NotAnApprover { .. }) => format!(
                "**Denied.** {}\nAsk an admin for an approver role if you should review it.",
                r.markdown()
            ),
            UserError::Approval(r) => format!("**Denied.** {}", r.markdown()),
            UserError::Refused(why) => format!("**Refused.** {why}"),
            UserError::RateLimited { scope, retry_after } => {
                let secs = retry_after.as_secs().max(1);
                format!(
                    "**Rate limited** ({scope}). Try again in {}.",
                    format_duration(Duration::from_secs(secs))
                )
            }
            UserError::NeedsApproval {
                command,
                approvers,
                min_approvals,
                ttl,
            } => format!(
                "**`/{command}` needs approval.** It is destructive: {min_approvals} person(s) with role {} must approve it (requests expire after {}). This bot runs without a store to keep approval requests in, so it cannot run from here; ask an approver to do it by hand following the runbook.",
                approvers
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(" or "),
                format_duration(*ttl)
            ),
            UserError::NotFound(what) => format!("**Not found.** {what}"),
            UserError::InvalidArgument(what) => {
                format!("**Invalid argument.** {what}\nSee `/help` for the command's options.")
            }
            UserError::StoreDown => format!("**Unavailable.** {STORE_DOWN}\nTry again shortly."),
            UserError::EngineDown(what) => format!(
                "**Unavailable.** {what}\nTry again shortly; if it persists, check the Docker host."
            ),
            UserError::Unavailable(what) => format!("**Unavailable.** {what}\nTry again shortly."),
            UserError::ApprovedRunFailed { id, cause } => match cause.as_ref() {
                UserError::NotFound(m) | UserError::InvalidArgument(m) | UserError::Refused(m) => {
                    format!("**Refused.** Approved request {id} failed closed: {m}")
                }
                other => format!(
                    "**Approved request {id} failed.** {}",
                    other.markdown().trim_start_matches("**Unavailable.** ")
                ),
            },
            UserError::Noted { error, note } => format!("{}\n{note}", error.markdown()),
        }
    }
}

/// Anything the person cannot fix: logged in full, shown as a reference.
#[derive(Debug)]
pub struct InternalError {
    pub reference: String,
    pub cause: anyhow::Error,
}

impl InternalError {
    /// Logs the whole cause chain once, under a short reference the user can quote.
    pub fn new(cause: anyhow::Error) -> Self {
        let reference = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        tracing::error!(reference = %reference, "internal error: {cause:#}");
        Self { reference, cause }
    }
}

/// Why a pipeline run did not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    User(#[from] UserError),
    #[error("internal error (ref {})", .0.reference)]
    Internal(InternalError),
}

impl PipelineError {
    pub fn internal(cause: anyhow::Error) -> Self {
        PipelineError::Internal(InternalError::new(cause))
    }

    pub fn markdown(&self) -> String {
        match self {
            PipelineError::User(u) => u.markdown(),
            PipelineError::Internal(i) => format!(
                "**internal error (ref {})** — the details are in the bot's log; quote the ref when asking for help.",
                i.reference
            ),
        }
    }
}

/// The store's outage is the person's news (nothing ran); anything else it says is internal.
impl From<StoreError> for PipelineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(why) => {
                tracing::warn!("store work refused: {why}");
                UserError::StoreDown.into()
            }
            StoreError::Failed(e) => PipelineError::internal(e),
        }
    }
}

impl From<EngineError> for PipelineError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unavailable(why) => {
                UserError::EngineDown(format!("The Docker Engine is not reachable ({why}).")).into()
            }
            EngineError::Timeout(d) => UserError::EngineDown(format!(
                "The Docker Engine did not answer within {}.",
                format_duration(d)
            ))
            .into(),
            EngineError::NoSuchContainer(c) => UserError::NotFound(format!(
                "Container `{c}` no longer exists; run `/status` to see the current containers."
            ))
            .into(),
            EngineError::Forbidden(why) => UserError::Refused(format!(
                "The bot's Docker access does not allow this ({why}). Its Docker API proxy runs a profile without this operation; an operator profile allows it."
            ))
            .into(),
            other @ EngineError::Other(_) => PipelineError::internal(anyhow::Error::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_message_says_when_to_retry() {
        let e = UserError::RateLimited {
            scope: "restart of api-1".into(),
            retry_after: Duration::from_secs(125),
        };
        let md = e.markdown();
        assert!(md.contains("Try again in 2m 5s"), "{md}");
        assert!(md.contains("restart of api-1"));
    }

    #[test]
    fn internal_errors_show_only_a_reference() {
        let e = PipelineError::internal(anyhow::anyhow!("secret detail").context("outer"));
        let md = e.markdown();
        assert!(md.contains("internal error (ref "));
        assert!(!md.contains("secret detail"));
        if let PipelineError::Internal(i) = e {
            assert_eq!(i.reference.len(), 8);
            assert_eq!(format!("{:#}", i.cause), "outer: secret detail");
        }
    }

    #[test]
    fn missing_container_becomes_not_found_and_engine_errors_become_internal() {
        assert!(matches!(
            PipelineError::from(EngineError::NoSuchContainer("x".into())),
            PipelineError::User(UserError::NotFound(_))
        ));
        assert!(matches!(
            PipelineError::from(EngineError::Other("boom".into())),
            PipelineError::Internal(_)
        ));
        assert!(matches!(
            PipelineError::from(EngineError::Unavailable("down".into())),
            PipelineError::User(UserError::EngineDown(_))
        ));
    }

    #[test]
    fn only_the_engine_being_down_points_at_the_docker_host() {
        let engine = PipelineError::from(EngineError::Unavailable("refused".into())).markdown();
        assert!(engine.contains("check the Docker host"), "{engine}");
        for e in [
            UserError::StoreDown,
            UserError::Unavailable("Postgres said: password authentication failed".into()),
        ] {
            assert!(!e.markdown().contains("Docker"), "{}", e.markdown());
        }
    }

    #[test]
    fn a_store_outage_is_the_persons_news_and_any_other_store_error_is_internal() {
        let down = PipelineError::from(StoreError::Unavailable("connection refused".into()));
        assert!(matches!(down, PipelineError::User(UserError::StoreDown)));
        assert!(down.markdown().contains(STORE_DOWN));
        let failed = PipelineError::from(StoreError::Failed(anyhow::anyhow!("constraint")));
        assert!(matches!(failed, PipelineError::Internal(_)));
    }

    #[test]
    fn a_denial_names_who_which_roles_what_and_where_from_its_data() {
        let e = UserError::Denied {
            actor: UserId::parse("dave").unwrap(),
            roles: vec![RoleId::parse("viewer").unwrap()],
            command: CommandName::parse("restart").unwrap(),
            services: vec![
                ServiceName::parse("db").unwrap(),
                ServiceName::parse("cache").unwrap(),
            ],
            channel: ChannelId::parse("ops").unwrap(),
        };
        assert_eq!(
            e.to_string(),
            "`dave` (`viewer`) may not run `/restart` on `db`, `cache` in `ops`."
        );
        assert_eq!(e.decision(), AuditDecision::Denied);
        let noted = e.with_note("⚠ kept in the spill file");
        assert_eq!(noted.decision(), AuditDecision::Denied);
        assert!(
            noted.markdown().starts_with("**Denied.**") && noted.markdown().ends_with("spill file")
        );
    }
}

/// A data file the bot refuses to start with: names the file and, where known, the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub path: std::path::PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: &std::path::Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            line: None,
            message: message.into(),
        }
    }

    /// An error at a byte span of the file's text.
    pub fn at(
        path: &std::path::Path,
        text: &str,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.to_owned(),
            line: span.map(|s| line_of(text, s.start)),
            message: message.into(),
        }
    }

    /// An error about a value found by its text: the first line that mentions `key`.
    pub fn at_key(
        path: &std::path::Path,
        text: &str,
        key: &str,
        message: impl Into<String>,
    ) -> Self {
        let span = text.find(key).map(|at| at..at);
        Self::at(path, text, span, message)
    }

    /// Turns toml's error (message plus span) into file:line form.
    pub fn from_toml(path: &std::path::Path, text: &str, err: &toml::de::Error) -> Self {
        Self::at(path, text, err.span(), err.message().trim().to_owned())
    }
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}
