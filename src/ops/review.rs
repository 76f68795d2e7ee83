//! Reviewing approval requests and reading the audit log: `/approve`, `/deny`, `/cancel`, `/pending`, `/audit`.

use std::time::Duration;

use crate::core::args::Args;
use crate::core::catalog::Operation;

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
