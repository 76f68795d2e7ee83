//! Reviewing approval requests and reading the audit log: `/approve`, `/deny`, `/cancel`, `/pending`, `/audit`.

use std::time::Duration;

use chrono::Utc;

use crate::core::approvals::{Approvals, Outcome};
use crate::core::args::Args;
use crate::core::catalog::Operation;
use crate::core::error::{PipelineError, UserError};
use crate::core::report::{Block, Report, Severity};
use crate::core::store::{AuditQuery, Store, StoreResult};

/// Which entries `/audit` lists.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditParams {
    pub user: Option<String>,
    pub service: Option<String>,
    /// Without its leading slash.
    pub command: Option<String>,
    /// How far back; a span longer than the calendar allows means "everything".
    pub since: Option<Duration>,
    /// 1 to 200 entries, newest first.
    pub limit: u32,
}

/// A review or audit command with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Approve { id: String },
    Deny { id: String, reason: String },
    Cancel { id: String },
    Pending,
    Audit(AuditParams),
}

impl Request {
    /// `None` for operations of other families.
    pub fn parse(op: Operation, args: &Args) -> Option<Self> {
        let id = || args.string("id").unwrap_or_default().trim().to_owned();
        Some(match op {
            Operation::Approve => Request::Approve { id: id() },
            Operation::Deny => Request::Deny {
                id: id(),
                reason: args.string("reason").unwrap_or_default().to_owned(),
            },
            Operation::Cancel => Request::Cancel { id: id() },
            Operation::Pending => Request::Pending,
            Operation::Audit => Request::Audit(AuditParams {
                user: args.string("user").map(str::to_owned),
                service: args.string("service").map(str::to_owned),
                command: args
                    .string("command")
                    .map(|c| c.trim_start_matches('/').to_owned()),
                since: args.duration("since"),
                limit: args.integer("limit").unwrap_or(25).clamp(1, 200) as u32,
            }),
            _ => return None,
        })
    }
}

/// What a review ended in.
pub enum Reviewed {
    Answer(Report),
    /// This approval completed the quorum: the caller claims and runs the request.
    ReadyToRun(String),
}

/// Runs one review or audit command against the approvals and the store.
pub async fn run(
    req: &Request,
    approvals: &Approvals,
    store: &dyn Store,
    who: &str,
    roles: &[String],
) -> Result<Reviewed, PipelineError> {
    let answer = match req {
        Request::Approve { id } => return approve(approvals, id, who, roles).await,
        Request::Deny { id, reason } => {
            outcome(id, approvals.deny(id, who, roles, reason, Utc::now()).await)?
        }
        Request::Cancel { id } => outcome(id, approvals.cancel(id, who, Utc::now()).await)?,
        Request::Pending => pending(approvals).await?,
        Request::Audit(q) => audit(store, q).await?,
    };
    Ok(Reviewed::Answer(answer))
}

fn outcome(id: &str, o: StoreResult<Outcome>) -> Result<Report, PipelineError> {
    match o? {
        Outcome::Refused(r) => Err(UserError::Approval(r).into()),
        Outcome::Denied => Ok(Report::new(
            format!("Request {id} denied; it will not run"),
            Severity::Info,
        )),
        Outcome::Cancelled => Ok(Report::new(
            format!("Request {id} cancelled; it will not run"),
            Severity::Info,
        )),
        Outcome::Approved { .. } => Err(PipelineError::internal(anyhow::anyhow!(
            "unexpected approval outcome for {id}"
        ))),
    }
}

async fn approve(
    a: &Approvals,
    id: &str,
    who: &str,
    roles: &[String],
) -> Result<Reviewed, PipelineError> {
    let report = match a.approve(id, who, roles, Utc::now()).await? {
        Outcome::Refused(r) => return Err(UserError::Approval(r).into()),
        Outcome::Approved {
            ready_to_run: true, ..
        } => return Ok(Reviewed::ReadyToRun(id.to_owned())),
        Outcome::Approved {
            approvals, needed, ..
        } if approvals >= needed => Report::new(
            format!("Approved {id}; a simultaneous approval completed it and runs it (once)"),
            Severity::Info,
        ),
        Outcome::Approved {
            approvals, needed, ..
        } => Report::new(
            format!("Approved {id} ({approvals} of {needed}); waiting for more approvals"),
            Severity::Info,
        ),
        Outcome::Denied | Outcome::Cancelled => {
            return Err(PipelineError::internal(anyhow::anyhow!(
                "unexpected review outcome for {id}"
            )));
        }
    };
    Ok(Reviewed::Answer(report))
}

async fn pending(a: &Approvals) -> Result<Report, PipelineError> {
    let now = Utc::now();
    let expired = a.expire_due(now).await?;
    // Requests whose executor stopped are settled here too, not only when a bot starts.
    let interrupted = a.recover_interrupted(now).await?;
    let open = a.pending().await?;
    let mut r = Report::new(
        format!("{} approval request(s) waiting", open.len()),
        Severity::Info,
    );
    if !open.is_empty() {
        r.push(Block::Table {
            headers: [
                "id",
                "command",
                "targets",
                "requester",
                "approvals",
                "expires",
            ]
            .map(String::from)
            .to_vec(),
            rows: open
                .iter()
                .map(|q| {
                    vec![
                        q.id.clone(),
                        format!("/{} {}", q.command, q.args).trim_end().to_owned(),
                        q.targets.join(", "),
                        q.requester.clone(),
                        format!("{}/{}", q.approvals(), q.min_approvals),
                        q.expires_at.format("%H:%M:%S UTC").to_string(),
                    ]
                })
                .collect(),
        });
    }
    if !expired.is_empty() {
        r.push(Block::Text(format!(
            "Expired just now: {}",
            expired.join(", ")
        )));
    }
    if !interrupted.is_empty() {
        r.push(Block::Text(format!(
            "Marked `failed: interrupted` just now (their executor stopped; not re-run): {}",
            interrupted.join(", ")
        )));
    }
    Ok(r)
}

async fn audit(store: &dyn Store, p: &AuditParams) -> Result<Report, PipelineError> {
    let q = AuditQuery {
        actor: p.user.clone(),
        target: p.service.clone(),
        command: p.command.clone(),
        since: p
            .since
            .and_then(|d| chrono::Duration::from_std(d).ok())
            // Further back than the calendar goes means "everything".
            .and_then(|d| Utc::now().checked_sub_signed(d)),
        limit: p.limit,
        ..Default::default()
    };
    let entries = store.query_audit(&q).await?;
    let mut r = Report::new(
        format!(
            "{} audit entr{}",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" }
        ),
        Severity::Info,
    );
    if !entries.is_empty() {
        r.push(Block::Table {
            headers: ["id", "at", "actor", "command", "decision", "result"]
                .map(String::from)
                .to_vec(),
            rows: entries
                .iter()
                .map(|e| {
                    vec![
                        e.id.to_string(),
                        e.entry.at.format("%m-%d %H:%M:%S").to_string(),
                        e.entry.actor.clone(),
                        format!("/{} {}", e.entry.command, e.entry.args)
                            .trim_end()
                            .to_owned(),
                        e.entry.decision.to_string(),
                        e.entry.result.chars().take(120).collect(),
                    ]
                })
                .collect(),
        });
    }
    Ok(r)
}
