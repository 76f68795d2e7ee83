//! Stored rows → store types, written once for both adapters; each adapter only says how it reads a column.
//!
//! The adapters differ in encoding (Postgres arrays and timestamps; SQLite JSON text and
//! microseconds), not in which columns make up an entry, a request or an incident. Columns
//! are read by name, so a SELECT's column order does not matter.

use chrono::{DateTime, Utc};

use crate::core::approvals::request::{ApprovalRequest, Review};
use crate::core::store::{AuditEntry, Incident, NewAuditEntry, TimelineEntry};

/// How one adapter reads a column of one row.
pub(crate) trait Columns {
    fn text(&self, col: &str) -> anyhow::Result<String>;
    fn opt_text(&self, col: &str) -> anyhow::Result<Option<String>>;
    fn list(&self, col: &str) -> anyhow::Result<Vec<String>>;
    fn int(&self, col: &str) -> anyhow::Result<i64>;
    fn opt_instant(&self, col: &str) -> anyhow::Result<Option<DateTime<Utc>>>;

    fn instant(&self, col: &str) -> anyhow::Result<DateTime<Utc>> {
        self.opt_instant(col)?
            .ok_or_else(|| anyhow::anyhow!("column `{col}` is NULL"))
    }
}

pub(crate) fn audit_entry(r: &impl Columns) -> anyhow::Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.int("id")?,
        entry: NewAuditEntry {
            at: r.instant("at")?,
            actor: r.text("actor")?,
            roles: r.list("roles")?,
            channel: r.text("channel")?,
            command: r.text("command")?,
            args: r.text("args")?,
            target: r.list("target")?,
            decision: r.text("decision")?.parse()?,
            result: r.text("result")?,
            duration_ms: r.int("duration_ms")?.max(0) as u64,
            correlation_id: r.text("correlation_id")?,
            via: r.text("via")?,
        },
        prev_hash: r.text("prev_hash")?,
        hash: r.text("hash")?,
    })
}

/// A request without its reviews (they are another table).
pub(crate) fn approval(r: &impl Columns) -> anyhow::Result<ApprovalRequest> {
    Ok(ApprovalRequest {
        id: r.text("id")?,
        command: r.text("command")?,
        args: r.text("args")?,
        targets: r.list("targets")?,
        requester: r.text("requester")?,
        requester_roles: r.list("requester_roles")?,
        approver_roles: r.list("approver_roles")?,
        min_approvals: r.int("min_approvals")?.clamp(0, u32::MAX.into()) as u32,
        channel: r.text("channel")?,
        correlation_id: r.text("correlation_id")?,
        created_at: r.instant("created_at")?,
        expires_at: r.instant("expires_at")?,
        digest: r.text("digest")?,
        state: r.text("state")?.parse()?,
        reviews: vec![],
        result: r.opt_text("result")?,
        updated_at: r.instant("updated_at")?,
        executor: r.opt_text("executor")?,
        lease_until: r.opt_instant("lease_until")?,
    })
}

pub(crate) fn review(r: &impl Columns) -> anyhow::Result<Review> {
    Ok(Review {
        reviewer: r.text("reviewer")?,
        decision: r.text("decision")?.parse()?,
        reason: r.text("reason")?,
        at: r.instant("at")?,
    })
}

pub(crate) fn incident(r: &impl Columns) -> anyhow::Result<Incident> {
    Ok(Incident {
        id: r.int("id")?,
        channel: r.text("channel")?,
        thread_id: r.opt_text("thread_id")?,
        title: r.text("title")?,
        opened_by: r.text("opened_by")?,
        opened_at: r.instant("opened_at")?,
        closed_at: r.opt_instant("closed_at")?,
    })
}

pub(crate) fn timeline_entry(r: &impl Columns) -> anyhow::Result<TimelineEntry> {
    Ok(TimelineEntry {
        incident_id: r.int("incident_id")?,
        at: r.instant("at")?,
        actor: r.text("actor")?,
        kind: r.text("kind")?,
        text: r.text("text")?,
    })
}
