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
    /// How the event came in: `discord`, `console:<os user>`, `approvals`; empty in entries
    /// written before this was recorded (they keep their original hash form).
    pub via: String,
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
            &mut self.via,
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
    /// The first entry hashed with the audit key (earlier ones predate it).
    pub keyed_from: Option<i64>,
    /// The anchored entry that was found with its recorded hash.
    pub anchored: Option<i64>,
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
            )?,
            (None, Some((id, hash))) => write!(
                f,
                "audit log OK: {} entries, last {id} {hash}",
                self.checked
            )?,
            (None, None) => f.write_str("audit log OK: empty")?,
        }
        if self.problem.is_none() && self.last.is_some() {
            match self.keyed_from {
                Some(k) => write!(f, "; keyed with the audit key from entry {k}")?,
                None => f.write_str(
                    "; not keyed (detects damage, not rewriting by someone with write access to the store)",
                )?,
            }
            if let Some(a) = self.anchored {
                write!(f, "; anchor at entry {a} matches")?;
            }
        }
        Ok(())
    }
}

/// What a verification checks against besides the store itself.
#[derive(Debug, Clone, Default)]
pub struct VerifyWith {
    /// Checks keyed entries; with a key, an unkeyed entry after a keyed one is a break.
    pub key: Option<AuditKey>,
    /// The record of an entry the bot appended (see [`AuditAnchor`]).
    pub anchor: Option<AuditAnchor>,
}

/// Walks the whole audit log and checks every link: ids without gaps, `prev_hash` equal to
/// the previous entry's hash, and each hash recomputed from the entry's fields. Also checks
/// the store's head record so entries cut off the end are noticed.
pub async fn verify_audit(store: &dyn Store) -> StoreResult<VerifyReport> {
    verify_audit_with(store, &VerifyWith::default()).await
}

/// [`verify_audit`] with the audit key and the anchor: someone who can write the store can
/// recompute a plain chain and move its head, but not a keyed one, nor the anchor kept
/// outside the store.
pub async fn verify_audit_with(store: &dyn Store, with: &VerifyWith) -> StoreResult<VerifyReport> {
    verify_audit_paged(store, with, 1000).await
}

pub(crate) async fn verify_audit_paged(
    store: &dyn Store,
    with: &VerifyWith,
    page_size: u32,
) -> StoreResult<VerifyReport> {
    let key = with.key.as_ref();
    let mut report = VerifyReport {
        checked: 0,
        last: None,
        keyed_from: None,
        anchored: None,
        problem: None,
    };
    let mut prev_id = 0i64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let broken = |mut report: VerifyReport, prev_id, prev_hash: &str, id, reason: String| {
        report.last = (prev_id > 0).then(|| (prev_id, prev_hash.to_owned()));
        report.problem = Some(ChainBreak { id, reason });
        Ok(report)
    };
    if let Some(a) = &with.anchor
        && !a.is_genuine(key)
    {
        let reason = "the anchor file was not sealed with this audit key (changed or forged)";
        return broken(report, 0, GENESIS_HASH, a.last_id, reason.into());
    }
    loop {
        let page = store.audit_page(prev_id, page_size).await?;
        let full = page.len() as u32 == page_size;
        for e in page {
            if e.id != prev_id + 1 {
                let reason = format!("entries {} to {} are missing", prev_id + 1, e.id - 1);
                return broken(report, prev_id, &prev_hash, e.id, reason);
            }
            if e.prev_hash != prev_hash {
                let reason = format!(
                    "prev_hash does not match the hash of entry {prev_id} (changed or deleted)"
                );
                return broken(report, prev_id, &prev_hash, e.id, reason);
            }
            let keyed = e.hash.starts_with(KEYED_PREFIX);
            if keyed && key.is_none() {
                return Err(StoreError::Failed(anyhow::anyhow!(
                    "entry {} is keyed with the audit key: verifying the log needs it (CONTAINER_OPS_AUDIT_KEY_FILE)",
                    e.id
                )));
            }
            if !keyed && report.keyed_from.is_some() {
                let reason = "not keyed, after keyed entries (rewritten without the audit key)";
                return broken(report, prev_id, &prev_hash, e.id, reason.into());
            }
            let expected = entry_hash(&e.prev_hash, e.id, &e.entry, keyed.then_some(key).flatten());
            if expected != e.hash {
                let reason = if keyed {
                    "its fields do not match its keyed hash (changed, or a different audit key)"
                } else {
                    "its fields do not match its hash (changed)"
                };
                return broken(report, prev_id, &prev_hash, e.id, reason.into());
            }
            if keyed && report.keyed_from.is_none() {
                report.keyed_from = Some(e.id);
            }
            if let Some(a) = &with.anchor
                && a.last_id == e.id
            {
                if a.last_hash != e.hash {
                    let reason = format!(
                        "the anchor recorded a different hash for it ({}): the log was rewritten and re-chained",
                        a.last_hash
                    );
                    return broken(report, prev_id, &prev_hash, e.id, reason);
                }
                report.anchored = Some(e.id);
            }
            report.checked += 1;
            prev_id = e.id;
            prev_hash = e.hash;
        }
        if !full {
            break;
        }
    }
    if key.is_some() && prev_id > 0 && report.keyed_from.is_none() {
        // With a key set, every new entry is keyed: a log that ends unkeyed was rewritten
        // without it (or nothing was appended since the key was set).
        let reason = "the newest entry is not keyed although an audit key is set: the log was rewritten without the key, or nothing was appended since the key was set".to_owned();
        return broken(report, prev_id, &prev_hash, prev_id, reason);
    }
    if let Some(a) = &with.anchor
        && a.last_id > prev_id
    {
        let reason = format!(
            "the anchor records entry {} (hash {}) but the log ends at {prev_id}: entries were cut off the end",
            a.last_id, a.last_hash
        );
        return broken(report, prev_id, &prev_hash, prev_id + 1, reason);
    }
    let head = store.audit_head().await?;
    if head.last_id != prev_id || head.last_hash != prev_hash {
        let reason = format!(
            "the store's head says the last entry is {} but the log ends at {prev_id} (entries cut off the end, or the head was changed)",
            head.last_id
        );
        return broken(report, prev_id, &prev_hash, prev_id + 1, reason);
    }
    report.last = (prev_id > 0).then_some((prev_id, prev_hash));
    Ok(report)
}

/// Microsecond precision is what both databases keep; hashing a finer instant would make
/// every entry fail verification after the round trip.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// The secret that keys the audit chain (HMAC-SHA256), read from a file outside the store so
/// that someone who can write the store cannot recompute hashes after changing an entry.
#[derive(Clone)]
pub struct AuditKey(Vec<u8>);

/// Keyed hashes carry this prefix, so a verifier knows which entries a key must check.
pub const KEYED_PREFIX: &str = "k1:";

impl AuditKey {
    /// At least 32 bytes of the file's content (trailing newline ignored).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        if trimmed.len() < 32 {
            return Err(format!(
                "the audit key must be at least 32 bytes, it has {}",
                trimmed.len()
            ));
        }
        Ok(Self(trimmed.to_vec()))
    }

    /// HMAC-SHA256 of `parts`, each followed by a newline, in hex.
    pub fn mac(&self, parts: &[&str]) -> String {
        use hmac::{KeyInit, Mac};
        let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        for p in parts {
            m.update(p.as_bytes());
            m.update(b"\n");
        }
        hex(&m.finalize().into_bytes())
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::core::redact::MASK)
    }
}

/// `hash` of an entry over the previous hash and the entry's canonical fields (a JSON array
/// in a fixed order, instants in RFC 3339 with microseconds): SHA-256 without a key, and
/// `k1:` + HMAC-SHA256 with one. Entries without `via` keep the v1 field list, so logs written
/// before it existed still verify.
pub fn entry_hash(prev_hash: &str, id: i64, e: &NewAuditEntry, key: Option<&AuditKey>) -> String {
    let mut fields = serde_json::json!([
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
    if !e.via.is_empty()
        && let Some(list) = fields.as_array_mut()
    {
        list[0] = "v2".into();
        list.push(e.via.clone().into());
    }
    let canonical = fields.to_string();
    match key {
        Some(k) => format!("{KEYED_PREFIX}{}", k.mac(&[prev_hash, &canonical])),
        None => {
            let mut h = Sha256::new();
            h.update(prev_hash.as_bytes());
            h.update(b"\n");
            h.update(canonical.as_bytes());
            hex(&h.finalize())
        }
    }
}

/// A record, kept outside the store, of an entry the bot appended: the chain must still hold
/// that entry with that hash. Someone who can write the store but not this file cannot cut
/// entries off the end or rewrite the chain up to it unnoticed; with a key, `mac` binds the
/// record so the file cannot be edited either.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditAnchor {
    pub last_id: i64,
    pub last_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl AuditAnchor {
    pub fn new(last_id: i64, last_hash: String, key: Option<&AuditKey>) -> Self {
        let mut a = Self {
            last_id,
            last_hash,
            mac: None,
        };
        a.mac = key.map(|k| a.expected_mac(k));
        a
    }

    fn expected_mac(&self, key: &AuditKey) -> String {
        key.mac(&["audit-anchor", &self.last_id.to_string(), &self.last_hash])
    }

    /// Without a key any anchor is taken as written; with one, only an anchor it sealed.
    pub fn is_genuine(&self, key: Option<&AuditKey>) -> bool {
        match key {
            None => true,
            Some(k) => self.mac.as_deref() == Some(self.expected_mac(k).as_str()),
        }
    }
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
            via: String::new(),
        }
    }

    #[test]
    fn entry_hash_changes_with_any_field_and_with_the_previous_hash() {
        let base = entry_hash(GENESIS_HASH, 1, &entry(), None);
        assert_eq!(base.len(), 64);
        assert_eq!(base, entry_hash(GENESIS_HASH, 1, &entry(), None));
        assert_ne!(base, entry_hash(&base, 1, &entry(), None));
        assert_ne!(base, entry_hash(GENESIS_HASH, 2, &entry(), None));
        let mut e = entry();
        e.roles.push("admin".into());
        assert_ne!(base, entry_hash(GENESIS_HASH, 1, &e, None));
        let mut e = entry();
        e.duration_ms = 43;
        assert_ne!(base, entry_hash(GENESIS_HASH, 1, &e, None));
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
            entry_hash(GENESIS_HASH, 1, &a, None),
            entry_hash(GENESIS_HASH, 1, &b, None)
        );
    }

    fn key(byte: u8) -> AuditKey {
        AuditKey::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn an_audit_key_shorter_than_32_bytes_is_refused_and_a_trailing_newline_is_not_counted() {
        let e = AuditKey::from_bytes(&[b'a'; 31]).unwrap_err();
        assert!(e.contains("at least 32 bytes, it has 31"), "{e}");
        let mut line = vec![b'a'; 31];
        line.push(b'\n');
        assert!(AuditKey::from_bytes(&line).is_err());
        assert!(AuditKey::from_bytes(&[b'a'; 32]).is_ok());
        assert_eq!(format!("{:?}", key(1)), crate::core::redact::MASK);
    }

    #[test]
    fn a_keyed_hash_depends_on_the_key_and_is_marked_as_keyed() {
        let plain = entry_hash(GENESIS_HASH, 1, &entry(), None);
        let k1 = entry_hash(GENESIS_HASH, 1, &entry(), Some(&key(1)));
        let k2 = entry_hash(GENESIS_HASH, 1, &entry(), Some(&key(2)));
        assert!(k1.starts_with(KEYED_PREFIX) && !plain.starts_with(KEYED_PREFIX));
        assert_ne!(k1, k2);
        assert_eq!(k1, entry_hash(GENESIS_HASH, 1, &entry(), Some(&key(1))));
    }

    #[test]
    fn how_an_entry_came_in_is_part_of_its_hash_and_entries_without_it_keep_their_old_hash() {
        // The v1 hash of this entry, as logs written before `via` existed hold it.
        let v1 = entry_hash(GENESIS_HASH, 1, &entry(), None);
        let mut e = entry();
        e.via = "console:root".into();
        let v2 = entry_hash(GENESIS_HASH, 1, &e, None);
        assert_ne!(v1, v2);
        e.via = "discord".into();
        assert_ne!(v2, entry_hash(GENESIS_HASH, 1, &e, None));
    }

    #[test]
    fn an_anchor_is_genuine_only_under_the_key_that_sealed_it() {
        let a = AuditAnchor::new(7, "abc".into(), Some(&key(1)));
        assert!(a.is_genuine(Some(&key(1))));
        assert!(!a.is_genuine(Some(&key(2))));
        let mut moved = a.clone();
        moved.last_id = 5;
        assert!(
            !moved.is_genuine(Some(&key(1))),
            "moving the anchor back breaks its seal"
        );
        let unsealed = AuditAnchor::new(7, "abc".into(), None);
        assert!(unsealed.is_genuine(None));
        assert!(!unsealed.is_genuine(Some(&key(1))));
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
