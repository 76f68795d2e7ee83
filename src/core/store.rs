//! The bot's durable state behind one port: the hash-chained audit log, approval requests and incidents.
//!
//! Two adapters in `infra::store` implement [`Store`]: SQLite (embedded, one node) and
//! Postgres (shared by several bot replicas). Both pass `tests/store_contract.rs`.
//! The types here are plain (strings, not the pipeline's newtypes) so the store depends
//! only on the approval records.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use crate::core::types::hex;

use crate::core::approvals::request::{ApprovalRequest, ApprovalState, Review};

/// `prev_hash` of the first audit entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How one audited event ended. Pipeline endings and approval transitions share one vocabulary
/// so queries by decision work across both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditDecision {
    /// Refused by permissions, or an approval request denied by a reviewer.
    Denied,
    Limited,
    Invalid,
    /// Stopped at the approval gate: an approval request was created.
    Pending,
    /// An approval was counted, or a request reached its quorum.
    Approved,
    /// An approval attempt that the rules refused (own request, not an approver, expired).
    Refused,
    Expired,
    Cancelled,
    /// An approved request was claimed for execution.
    Executing,
    Ran,
    Failed,
}

impl AuditDecision {
    pub const ALL: [AuditDecision; 11] = [
        Self::Denied,
        Self::Limited,
        Self::Invalid,
        Self::Pending,
        Self::Approved,
        Self::Refused,
        Self::Expired,
        Self::Cancelled,
        Self::Executing,
        Self::Ran,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Denied => "denied",
            Self::Limited => "limited",
            Self::Invalid => "invalid",
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Refused => "refused",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Executing => "executing",
            Self::Ran => "ran",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for AuditDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditDecision {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown audit decision `{s}`"))
    }
}

/// What the caller appends; arguments must already be redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub roles: Vec<String>,
    pub channel: String,
    pub command: String,
    pub args: String,
    /// Services, containers or volumes the event concerned.
    pub target: Vec<String>,
    pub decision: AuditDecision,
    pub result: String,
    pub duration_ms: u64,
    pub correlation_id: String,
}

impl NewAuditEntry {
    /// The form that is stored and hashed: the instant cut to microseconds (what both
    /// databases keep) and NUL characters replaced (Postgres text cannot hold them, and an
    /// audit entry must never be lost to its content).
    pub fn normalized(mut self) -> Self {
        fn clean(s: &mut String) {
            if s.contains('\0') {
                *s = s.replace('\0', "\u{fffd}");
            }
        }
        self.at = to_micros(self.at);
        for s in [
            &mut self.actor,
            &mut self.channel,
            &mut self.command,
            &mut self.args,
            &mut self.result,
            &mut self.correlation_id,
        ] {
            clean(s);
        }
        self.roles
            .iter_mut()
            .chain(self.target.iter_mut())
            .for_each(clean);
        self
    }
}

/// An appended entry with its place in the hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub entry: NewAuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// Filters for reading the audit log; results are newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub actor: Option<String>,
    /// Entries whose target list contains this name.
    pub target: Option<String>,
    pub command: Option<String>,
    pub decision: Option<AuditDecision>,
    /// Everything one invocation or approval request led to.
    pub correlation_id: Option<String>,
    /// Inclusive.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
    pub limit: u32,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            actor: None,
            target: None,
            command: None,
            decision: None,
            correlation_id: None,
            since: None,
            until: None,
            limit: 100,
        }
    }
}

/// The newest appended entry, as the store's head record remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub last_id: i64,
    pub last_hash: String,
}

/// Whether a review could be recorded, decided atomically with the request's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewAdded {
    /// Recorded; `approvals` counts the request's approving reviews including this one.
    Added { approvals: u32 },
    /// This reviewer had already reviewed the request; nothing changed.
    Duplicate,
    /// The request does not exist, is no longer pending, or has expired.
    NotOpen,
}

/// A conditional state change: it happens only if the request is in one of `from`
/// (and, with `unexpired_at`, has not expired at that instant). The audit entry is
/// appended in the same transaction, and only when the change happened.
#[derive(Debug, Clone)]
pub struct Transition {
    pub id: String,
    pub from: Vec<ApprovalState>,
    pub to: ApprovalState,
    pub unexpired_at: Option<DateTime<Utc>>,
    /// Replaces the stored result text when set.
    pub result: Option<String>,
    /// Records who executes the request and until when (the claim).
    pub lease: Option<Lease>,
    /// An extra condition on the current lease (recovery).
    pub lease_check: Option<LeaseCheck>,
    pub at: DateTime<Utc>,
    pub audit: NewAuditEntry,
}

/// The executing replica and the end of its lease, renewed while the operation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub executor: String,
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseCheck {
    /// The lease ended at or before this instant (or there is none).
    ExpiredAt(DateTime<Utc>),
    /// The lease is held by exactly this executor (one proven to have stopped).
    HeldBy(String),
}

impl LeaseCheck {
    /// The two optional SQL parameters the adapters bind: expired-at and held-by.
    pub(crate) fn params(check: &Option<LeaseCheck>) -> (Option<DateTime<Utc>>, Option<String>) {
        match check {
            None => (None, None),
            Some(Self::ExpiredAt(t)) => (Some(to_micros(*t)), None),
            Some(Self::HeldBy(e)) => (None, Some(e.clone())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIncident {
    pub channel: String,
    /// The chat thread that tracks the incident, once created.
    pub thread_id: Option<String>,
    pub title: String,
    pub opened_by: String,
    pub opened_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: i64,
    pub channel: String,
    pub thread_id: Option<String>,
    pub title: String,
    pub opened_by: String,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    pub incident_id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// `note`, `command`, `status`, ...: free for the caller.
    pub kind: String,
    pub text: String,
}

/// The bot's durable state. Every method is one transaction.
/// Why the store did not do what was asked. Told apart by type, never by looking inside.
#[derive(Debug)]
pub enum StoreError {
    /// It could not be reached (refused, closed, timed out, shutting down): nothing happened there.
    Unavailable(String),
    /// It answered with an error, or with something this build cannot read.
    Failed(anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// For callers that only log or report the cause chain.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            StoreError::Unavailable(why) => anyhow::anyhow!("the store is unreachable: {why}"),
            StoreError::Failed(e) => e,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(why) => write!(f, "the store is unreachable: {why}"),
            StoreError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

/// An error that is not about reaching the store: the store, or this build, failed.
impl From<anyhow::Error> for StoreError {
    fn from(e: anyhow::Error) -> Self {
        StoreError::Failed(e)
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Appends to the audit log, chaining the entry to the previous one. Serialised across
    /// connections and processes sharing the store, so concurrent appends form one chain.
    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry>;
    async fn query_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;
    /// Entries with `id > after_id` in id order, for verification and export.
    async fn audit_page(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AuditEntry>>;
    async fn audit_head(&self) -> StoreResult<AuditHead>;

    /// Inserts a new request (state and reviews as given) and appends `audit`.
    /// `Ok(false)` when the id is already taken.
    async fn insert_approval(
        &self,
        request: &ApprovalRequest,
        audit: NewAuditEntry,
    ) -> StoreResult<bool>;
    async fn get_approval(&self, id: &str) -> StoreResult<Option<ApprovalRequest>>;
    /// Requests in any of `states`, oldest first.
    async fn list_approvals(&self, states: &[ApprovalState]) -> StoreResult<Vec<ApprovalRequest>>;
    /// Records a review if the request is pending and unexpired at `review.at`; appends
    /// `audit` when recorded.
    async fn add_review(
        &self,
        id: &str,
        review: &Review,
        audit: NewAuditEntry,
    ) -> StoreResult<ReviewAdded>;
    /// Applies `t` if its condition holds; true when this call made the change.
    async fn transition(&self, t: Transition) -> StoreResult<bool>;
    /// Extends the lease of an executing request held by `executor`; false when it is not
    /// (any more) executing under that executor. Not audited: it changes nothing but time.
    async fn renew_lease(
        &self,
        id: &str,
        executor: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<bool>;

    async fn open_incident(&self, incident: NewIncident) -> StoreResult<Incident>;
    /// Attaches the chat thread once it exists; false if the incident is unknown.
    async fn set_incident_thread(&self, id: i64, thread_id: &str) -> StoreResult<bool>;
    /// False when the incident is unknown or already closed.
    async fn close_incident(&self, id: i64, at: DateTime<Utc>) -> StoreResult<bool>;
    async fn get_incident(&self, id: i64) -> StoreResult<Option<Incident>>;
    async fn incident_by_thread(&self, thread_id: &str) -> StoreResult<Option<Incident>>;
    async fn open_incidents(&self) -> StoreResult<Vec<Incident>>;
    async fn add_timeline(&self, entry: TimelineEntry) -> StoreResult<()>;
    /// The incident's timeline in time order.
    async fn timeline(&self, incident_id: i64) -> StoreResult<Vec<TimelineEntry>>;
}

/// Where the chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The first entry that does not verify (for a deleted entry: the one after the gap,
    /// or the missing id when entries were cut off the end).
    pub id: i64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub checked: u64,
    /// Id and hash of the last entry; record them elsewhere to detect later truncation.
    pub last: Option<(i64, String)>,
    pub problem: Option<ChainBreak>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.problem, &self.last) {
            (Some(p), _) => write!(
                f,
                "audit log BROKEN at entry {}: {} ({} entries checked)",
                p.id, p.reason, self.checked
            ),
            (None, Some((id, hash))) => write!(
                f,
                "audit log OK: {} entries, last {id} {hash}",
                self.checked
            ),
            (None, None) => f.write_str("audit log OK: empty"),
        }
    }
}

/// Walks the whole audit log and checks every link: ids without gaps, `prev_hash` equal to
/// the previous entry's hash, and each hash recomputed from the entry's fields. Also checks
/// the store's head record so entries cut off the end are noticed.
pub async fn verify_audit(store: &dyn Store) -> StoreResult<VerifyReport> {
    verify_audit_paged(store, 1000).await
}

pub(crate) async fn verify_audit_paged(
    store: &dyn Store,
    page_size: u32,
) -> StoreResult<VerifyReport> {
    let mut checked = 0u64;
    let mut prev_id = 0i64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let broken = |checked, prev_id, prev_hash: &str, id, reason: String| VerifyReport {
        checked,
        last: (prev_id > 0).then(|| (prev_id, prev_hash.to_owned())),
        problem: Some(ChainBreak { id, reason }),
    };
    loop {
        let page = store.audit_page(prev_id, page_size).await?;
        let full = page.len() as u32 == page_size;
        for e in page {
            if e.id != prev_id + 1 {
                let reason = format!("entries {} to {} are missing", prev_id + 1, e.id - 1);
                return Ok(broken(checked, prev_id, &prev_hash, e.id, reason));
            }
            if e.prev_hash != prev_hash {
                let reason = format!(
                    "prev_hash does not match the hash of entry {prev_id} (changed or deleted)"
                );
                return Ok(broken(checked, prev_id, &prev_hash, e.id, reason));
            }
            if entry_hash(&e.prev_hash, e.id, &e.entry) != e.hash {
                let reason = "its fields do not match its hash (changed)".to_owned();
                return Ok(broken(checked, prev_id, &prev_hash, e.id, reason));
            }
            checked += 1;
            prev_id = e.id;
            prev_hash = e.hash;
        }
        if !full {
            break;
        }
    }
    let head = store.audit_head().await?;
    if head.last_id != prev_id || head.last_hash != prev_hash {
        let reason = format!(
            "the store's head says the last entry is {} but the log ends at {prev_id} (entries cut off the end, or the head was changed)",
            head.last_id
        );
        return Ok(broken(checked, prev_id, &prev_hash, prev_id + 1, reason));
    }
    Ok(VerifyReport {
        checked,
        last: (prev_id > 0).then_some((prev_id, prev_hash)),
        problem: None,
    })
}

/// Microsecond precision is what both databases keep; hashing a finer instant would make
/// every entry fail verification after the round trip.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// `hash` of an entry: sha256 over the previous hash and the entry's canonical fields
/// (a JSON array in a fixed order, instants in RFC 3339 with microseconds).
pub fn entry_hash(prev_hash: &str, id: i64, e: &NewAuditEntry) -> String {
    let canonical = serde_json::json!([
        "v1",
        id,
        e.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        e.actor,
        e.roles,
        e.channel,
        e.command,
        e.args,
        e.target,
        e.decision.as_str(),
        e.result,
        e.duration_ms,
        e.correlation_id,
    ]);
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical.to_string().as_bytes());
    hex(&h.finalize())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn entry() -> NewAuditEntry {
        NewAuditEntry {
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            actor: "dave".into(),
            roles: vec!["oncall".into()],
            channel: "ops".into(),
            command: "restart".into(),
            args: "service:api-1".into(),
            target: vec!["api-1".into()],
            decision: AuditDecision::Ran,
            result: "restarted".into(),
            duration_ms: 42,
            correlation_id: "c1".into(),
        }
    }

    #[test]
    fn entry_hash_changes_with_any_field_and_with_the_previous_hash() {
        let base = entry_hash(GENESIS_HASH, 1, &entry());
        assert_eq!(base.len(), 64);
        assert_eq!(base, entry_hash(GENESIS_HASH, 1, &entry()));
        assert_ne!(base, entry_hash(&base, 1, &entry()));
        assert_ne!(base, entry_hash(GENESIS_HASH, 2, &entry()));
        let mut e = entry();
        e.roles.push("admin".into());
        assert_ne!(base, entry_hash(GENESIS_HASH, 1, &e));
        let mut e = entry();
        e.duration_ms = 43;
        assert_ne!(base, entry_hash(GENESIS_HASH, 1, &e));
    }

    #[test]
    fn fields_cannot_be_shifted_between_columns_without_changing_the_hash() {
        let mut a = entry();
        a.actor = "dave,ops".into();
        a.channel = String::new();
        let mut b = entry();
        b.actor = "dave".into();
        b.channel = ",ops".into();
        assert_ne!(
            entry_hash(GENESIS_HASH, 1, &a),
            entry_hash(GENESIS_HASH, 1, &b)
        );
    }

    #[test]
    fn every_decision_round_trips_through_its_name() {
        for d in AuditDecision::ALL {
            assert_eq!(d.as_str().parse::<AuditDecision>().unwrap(), d);
        }
        assert!("maybe".parse::<AuditDecision>().is_err());
    }

    #[test]
    fn instants_are_cut_to_microseconds() {
        let t = DateTime::from_timestamp_nanos(1_700_000_000_123_456_789);
        assert_eq!(to_micros(t).timestamp_subsec_nanos(), 123_456_000);
    }
}
