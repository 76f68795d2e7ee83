//! The two kinds of failure: user errors that say what to do, and internal errors shown only by reference.

use std::time::Duration;

use crate::core::engine::EngineError;
use crate::core::types::format_duration;

/// What the person is told while the store is down (approvals and the audit log live there).
pub const STORE_DOWN: &str = "the approval store is unreachable, so destructive commands are refused until it is back; read-only commands still work";

/// Something the person can act on; the text is short Markdown meant for the chat.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Denied(String),
    #[error("rate limited ({scope}); retry in {}", format_duration(*retry_after))]
    RateLimited {
        scope: String,
        retry_after: Duration,
    },
    #[error("needs approval")]
    NeedsApproval {
        command: String,
        approvers: Vec<String>,
        min_approvals: u32,
        ttl: Duration,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unavailable(String),
}

impl UserError {
    /// The same error with every text run through the redactor (messages may echo input).
    pub fn redacted(self, r: &crate::core::redact::Redactor) -> Self {
        match self {
            UserError::Denied(m) => UserError::Denied(r.redact(&m)),
            UserError::NotFound(m) => UserError::NotFound(r.redact(&m)),
            UserError::InvalidArgument(m) => UserError::InvalidArgument(r.redact(&m)),
            UserError::Unavailable(m) => UserError::Unavailable(r.redact(&m)),
            UserError::RateLimited { scope, retry_after } => UserError::RateLimited {
                scope: r.redact(&scope),
                retry_after,
            },
            other @ UserError::NeedsApproval { .. } => other,
        }
    }

    /// The same error with a line added to its message (variants without free text keep theirs).
    pub fn with_note(self, note: &str) -> Self {
        let add = |m: String| format!("{m}\n{note}");
        match self {
            UserError::Denied(m) => UserError::Denied(add(m)),
            UserError::NotFound(m) => UserError::NotFound(add(m)),
            UserError::InvalidArgument(m) => UserError::InvalidArgument(add(m)),
            UserError::Unavailable(m) => UserError::Unavailable(add(m)),
            other => {
                tracing::warn!("{note}");
                other
            }
        }
    }

    /// The chat message: what happened and what to do next.
    pub fn markdown(&self) -> String {
        match self {
            UserError::Denied(why) => format!(
                "**Denied.** {why}\nAsk an admin for a role that grants it, or use a channel where it is allowed."
            ),
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
                "**`/{command}` needs approval.** It is destructive: {min_approvals} person(s) with role {} must approve it (requests expire after {}). Approval requests are not built into the bot yet, so it cannot run from here for now; ask an approver to do it by hand following the runbook.",
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
            // The store's own refusal already says what still works; the Docker hint would mislead.
            UserError::Unavailable(what) if what.starts_with(STORE_DOWN) => {
                format!("**Unavailable.** {what}\nTry again shortly.")
            }
            UserError::Unavailable(what) => format!(
                "**Unavailable.** {what}\nTry again shortly; if it persists, check the Docker host."
            ),
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

impl From<EngineError> for PipelineError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unavailable(why) => {
                UserError::Unavailable(format!("The Docker Engine is not reachable ({why})."))
                    .into()
            }
            EngineError::Timeout(d) => UserError::Unavailable(format!(
                "The Docker Engine did not answer within {}.",
                format_duration(d)
            ))
            .into(),
            EngineError::NoSuchContainer(c) => UserError::NotFound(format!(
                "Container `{c}` no longer exists; run `/status` to see the current containers."
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
            PipelineError::User(UserError::Unavailable(_))
        ));
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
