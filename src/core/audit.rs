//! The audit port: every ending of the pipeline is recorded, with an in-memory sink for tests and the console.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::core::store::AuditDecision;
use crate::core::types::{ChannelId, RoleId, UserId};

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub correlation_id: String,
    pub actor: UserId,
    pub roles: Vec<RoleId>,
    pub channel: ChannelId,
    /// As typed (it may not be a known command).
    pub command: String,
    /// Raw arguments after redaction.
    pub args: String,
    /// Services (or `project`) the command resolved to, when it got that far.
    pub target: Vec<String>,
    pub decision: AuditDecision,
    /// Short outcome: the report title, the user error, or the internal error reference.
    pub result: String,
    pub duration: Duration,
    /// How the invocation came in (`discord`, `console:<os user>`).
    pub via: String,
}

/// Where audit records go: the bot's [`crate::infra::store::ResilientStore`], [`StoreAudit`] on a
/// plain store, [`MemoryAudit`] in tests.
#[async_trait]
pub trait AuditSink: Send + Sync {
    /// Keeps the record; `Ok(Some(notice))` when the reply should say something about the
    /// audit (kept aside while the store is down, or written later). An error means the
    /// record could be kept nowhere.
    async fn record(&self, record: AuditRecord) -> anyhow::Result<Option<String>>;
}

/// Keeps records in memory: for tests and the one-shot console.
#[derive(Debug, Default)]
pub struct MemoryAudit {
    records: Mutex<Vec<AuditRecord>>,
}

impl MemoryAudit {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn records(&self) -> Vec<AuditRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl AuditSink for MemoryAudit {
    async fn record(&self, record: AuditRecord) -> anyhow::Result<Option<String>> {
        tracing::info!(
            target: "audit",
            correlation_id = %record.correlation_id,
            actor = %record.actor,
            channel = %record.channel,
            command = %record.command,
            decision = record.decision.as_str(),
            duration_ms = record.duration.as_millis() as u64,
            "{}",
            record.result
        );
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
        Ok(None)
    }
}

/// Appends pipeline endings to the store's hash-chained audit log.
pub struct StoreAudit {
    store: std::sync::Arc<dyn crate::core::store::Store>,
}

impl StoreAudit {
    pub fn new(store: std::sync::Arc<dyn crate::core::store::Store>) -> Self {
        Self { store }
    }
}

impl From<AuditRecord> for crate::core::store::NewAuditEntry {
    fn from(r: AuditRecord) -> Self {
        Self {
            at: r.at,
            actor: r.actor.to_string(),
            roles: r.roles.iter().map(|r| r.to_string()).collect(),
            channel: r.channel.to_string(),
            command: r.command,
            args: r.args,
            target: r.target,
            decision: r.decision,
            result: r.result,
            duration_ms: r.duration.as_millis() as u64,
            correlation_id: r.correlation_id,
            via: r.via,
        }
    }
}

#[async_trait]
impl AuditSink for StoreAudit {
    async fn record(&self, record: AuditRecord) -> anyhow::Result<Option<String>> {
        self.store
            .append_audit(record.into())
            .await
            .map_err(crate::core::store::StoreError::into_anyhow)?;
        Ok(None)
    }
}

/// The bot's sink: appends to the store, or keeps the record in the spill file while the
/// store is unreachable.
#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_audit_keeps_records_in_order() {
        let a = MemoryAudit::new();
        for (i, d) in [AuditDecision::Denied, AuditDecision::Ran]
            .into_iter()
            .enumerate()
        {
            a.record(AuditRecord {
                at: Utc::now(),
                correlation_id: format!("c{i}"),
                actor: UserId::parse("dave").unwrap(),
                roles: vec![],
                channel: ChannelId::parse("console").unwrap(),
                command: "status".into(),
                args: String::new(),
                target: vec![],
                decision: d,
                result: String::new(),
                duration: Duration::ZERO,
                via: "console".into(),
            })
            .await
            .unwrap();
        }
        let r = a.records();
        assert_eq!(
            r.iter().map(|r| r.decision).collect::<Vec<_>>(),
            [AuditDecision::Denied, AuditDecision::Ran]
        );
        assert_eq!(r[1].correlation_id, "c1");
    }

    #[tokio::test]
    async fn store_audit_appends_a_verifiable_entry() {
        let store: std::sync::Arc<dyn crate::core::store::Store> = std::sync::Arc::new(
            crate::infra::store::SqliteStore::open(":memory:")
                .await
                .unwrap(),
        );
        StoreAudit::new(store.clone())
            .record(AuditRecord {
                at: Utc::now(),
                correlation_id: "c9".into(),
                actor: UserId::parse("alice").unwrap(),
                roles: vec![RoleId::parse("operator").unwrap()],
                channel: ChannelId::parse("console").unwrap(),
                command: "reset".into(),
                args: "redis".into(),
                target: vec!["redis".into()],
                decision: AuditDecision::Pending,
                result: "pending approval".into(),
                duration: Duration::from_millis(7),
                via: "discord".into(),
            })
            .await
            .unwrap();
        let got = store
            .query_audit(&crate::core::store::AuditQuery::default())
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].entry.actor, "alice");
        assert_eq!(got[0].entry.via, "discord");
        assert_eq!(
            got[0].entry.decision,
            crate::core::store::AuditDecision::Pending
        );
        assert!(
            crate::core::store::verify_audit(&*store)
                .await
                .unwrap()
                .is_ok()
        );
    }
}
