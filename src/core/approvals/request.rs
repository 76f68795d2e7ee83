//! The approval records the store keeps: requests, their states, reviews, and why an action is refused.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApprovalState {
    Pending,
    Approved,
    Executing,
    Succeeded,
    Failed,
    Denied,
    Expired,
    Cancelled,
}

impl ApprovalState {
    pub const ALL: [ApprovalState; 8] = [
        Self::Pending,
        Self::Approved,
        Self::Executing,
        Self::Succeeded,
        Self::Failed,
        Self::Denied,
        Self::Expired,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Executing => "executing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    /// No transition leaves these.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Denied | Self::Expired | Self::Cancelled
        )
    }
}

impl fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApprovalState {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown approval state `{s}`"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewDecision {
    Approve,
    Deny,
}

impl ReviewDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Deny => "deny",
        }
    }
}

impl FromStr for ReviewDecision {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "approve" => Ok(Self::Approve),
            "deny" => Ok(Self::Deny),
            _ => anyhow::bail!("unknown review decision `{s}`"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub reviewer: String,
    pub decision: ReviewDecision,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// An operation with everything it will act on resolved, as the caller is about to run it.
/// Its digest is stored with the request; comparing it again just before execution shows
/// whether what runs is what was approved (a replaced container has a new id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundOperation {
    pub command: String,
    /// Resolved targets, kind-prefixed: `container:<id>`, `volume:<name>`, `service:<name>`.
    pub targets: Vec<String>,
    /// Arguments by name, as the operation will receive them.
    pub args: BTreeMap<String, String>,
}

impl BoundOperation {
    /// sha256 over command, sorted targets and args; the order targets were resolved in does not matter.
    pub fn digest(&self) -> String {
        let mut targets = self.targets.clone();
        targets.sort();
        targets.dedup();
        let canonical = serde_json::json!(["v1", self.command, targets, self.args]);
        crate::core::types::hex(&Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// What the caller knows when an operation stops at the approval gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    pub operation: BoundOperation,
    /// The arguments for display and audit, already redacted.
    pub args_display: String,
    pub requester: String,
    pub requester_roles: Vec<String>,
    /// Roles that may approve this command (from the catalog).
    pub approver_roles: Vec<String>,
    /// Approvals needed, none of which may come from the requester.
    pub min_approvals: u32,
    pub ttl: Duration,
    pub channel: String,
    pub correlation_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    pub id: String,
    pub command: String,
    pub args: String,
    pub targets: Vec<String>,
    pub requester: String,
    pub requester_roles: Vec<String>,
    pub approver_roles: Vec<String>,
    pub min_approvals: u32,
    pub channel: String,
    pub correlation_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub digest: String,
    pub state: ApprovalState,
    pub reviews: Vec<Review>,
    /// Outcome text once finished, or why it failed/was denied/cancelled.
    pub result: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// The replica that claimed it for execution ([`crate::core::replica::ReplicaId`] text).
    pub executor: Option<String>,
    /// Until when that claim holds unless renewed.
    pub lease_until: Option<DateTime<Utc>>,
}

impl ApprovalRequest {
    pub fn approvals(&self) -> u32 {
        self.reviews
            .iter()
            .filter(|r| r.decision == ReviewDecision::Approve)
            .count() as u32
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }

    /// True when `op` is exactly what was approved.
    pub fn matches(&self, op: &BoundOperation) -> bool {
        self.digest == op.digest()
    }

    /// Why `who` holding `roles` may not review this request at `now`, if anything.
    /// Order matters for the message: a closed request is reported as such first, and a
    /// requester is told they cannot approve their own request even when they hold the role.
    pub fn check_reviewer(
        &self,
        who: &str,
        roles: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        if self.state != ApprovalState::Pending {
            return Err(Refusal::NotPending(self.state));
        }
        if who == self.requester {
            return Err(Refusal::OwnRequest);
        }
        if !roles.iter().any(|r| self.approver_roles.contains(r)) {
            return Err(Refusal::NotAnApprover {
                allowed: self.approver_roles.clone(),
            });
        }
        if self.is_expired(now) {
            return Err(Refusal::Expired);
        }
        Ok(())
    }
}

/// Why an action on a request was refused; `markdown()` is safe to show to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    OwnRequest,
    NotAnApprover { allowed: Vec<String> },
    Expired,
    NotPending(ApprovalState),
    AlreadyReviewed,
    NotRequester,
}

impl Refusal {
    pub fn markdown(&self) -> String {
        match self {
            Self::NotFound => "No such approval request; check the id.".into(),
            Self::OwnRequest => "You cannot approve your own request; ask another approver.".into(),
            Self::NotAnApprover { allowed } => format!(
                "You cannot review this request: it needs one of the roles {}.",
                allowed
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Self::Expired => {
                "This request has expired; run the command again to request a new approval.".into()
            }
            Self::NotPending(s) => format!("This request is already **{s}**; nothing to do."),
            Self::AlreadyReviewed => "You have already reviewed this request.".into(),
            Self::NotRequester => "Only the requester can cancel this request.".into(),
        }
    }

    pub(crate) fn audit_text(&self) -> String {
        match self {
            Self::NotFound => "not found".into(),
            Self::OwnRequest => "own request".into(),
            Self::NotAnApprover { .. } => "not an approver".into(),
            Self::Expired => "expired".into(),
            Self::NotPending(s) => format!("already {s}"),
            Self::AlreadyReviewed => "already reviewed".into(),
            Self::NotRequester => "not the requester".into(),
        }
    }
}
