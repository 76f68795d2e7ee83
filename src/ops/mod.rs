//! The operations: one module per family, each parsing its parameters once, running, and reporting.

pub mod containers;
pub mod destructive;
pub mod diagnose;
pub mod incidents;
pub mod review;
pub mod temporal;

use crate::core::args::Args;
use crate::core::catalog::{Command, Operation};
use crate::core::error::UserError;

/// One command's operation with its parameters parsed from typed values, ready for the
/// pipeline to hand to its family.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Containers(containers::Request),
    Help {
        command: Option<String>,
    },
    Review(review::Request),
    /// Runs only once approved: a destructive operation, or one its command file gates.
    Gated(destructive::Request),
    Diagnosis(diagnose::Request),
    Incident(incidents::Action),
}

impl Request {
    /// Free text a person typed that the store keeps (a deny reason, an incident title) is
    /// redacted before it gets there, like the arguments in the audit: a password pasted
    /// into a reason must not sit in the approvals table.
    pub fn redact_free_text(&mut self, r: &crate::core::redact::Redactor) {
        match self {
            Request::Review(review::Request::Deny { reason, .. }) => *reason = r.redact(reason),
            Request::Incident(incidents::Action::Open { title }) => *title = r.redact(title),
            _ => {}
        }
    }

    /// Parses the command's arguments into its operation's parameters.
    pub fn parse(cmd: &Command, args: &Args) -> Result<Self, UserError> {
        let op = cmd.operation;
        let parsed = if cmd.destructive {
            destructive::Request::parse(op, args)?.map(Request::Gated)
        } else if op == Operation::Help {
            Some(Request::Help {
                command: args.string("command").map(str::to_owned),
            })
        } else if op == Operation::Incident {
            Some(Request::Incident(incidents::Action::parse(args)?))
        } else if let Some(r) = containers::Request::parse(op, args) {
            Some(Request::Containers(r))
        } else if let Some(r) = review::Request::parse(op, args) {
            Some(Request::Review(r))
        } else {
            diagnose::Request::parse(op, args)?.map(Request::Diagnosis)
        };
        // The catalog refuses such files at start-up; never run one half-understood anyway.
        parsed.ok_or_else(|| {
            UserError::InvalidArgument(format!(
                "`/{}`: operation `{op}` cannot run this way (check its command file)",
                cmd.name
            ))
        })
    }
}
