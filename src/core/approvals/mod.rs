//! Four-eyes approvals: the request state machine, its rules, and their enforcement through the store.
//!
//! `pending → approved → executing → succeeded | failed`, or `denied`, `expired`,
//! `cancelled`. Every transition is a conditional update in the [`Store`], so two approvers
//! clicking at once, a retried interaction or two bot replicas yield exactly one
//! `approved → executing` claim, and every transition is audited in the same transaction.
//! Time is always passed in (`now`), so the rules are testable with any clock.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub mod request;

pub use request::*;

use crate::core::replica::ReplicaId;
use crate::core::store::{
    AuditDecision, Lease, LeaseCheck, NewAuditEntry, ReviewAdded, Store, StoreResult, Transition,
    to_micros,
};

pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a claim for execution holds without renewal; the executor renews it every
/// quarter of this while the operation runs.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);
/// Letters and digits that survive being read aloud or retyped: no 0/o, 1/l/i.
const ID_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const ID_LEN: usize = 8;
/// Start of the result text of a request that was executing when its bot stopped.
pub const INTERRUPTED: &str = "interrupted";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The approval was counted. `ready_to_run` is true for exactly one caller: the one whose
    /// approval completed the quorum. It should then call [`Approvals::claim_for_execution`].
    Approved {
        ready_to_run: bool,
        approvals: u32,
        needed: u32,
    },
    Denied,
    Cancelled,
    Refused(Refusal),
}

/// Who runs an approved request: the approver whose approval completed it.
#[derive(Debug, Clone, Copy)]
pub struct Runner<'a> {
    pub actor: &'a str,
    pub roles: &'a [String],
}

/// The state machine over a store. Cheap to clone.
#[derive(Clone)]
pub struct Approvals {
    store: Arc<dyn Store>,
    /// Who this process is when it claims a request.
    replica: ReplicaId,
    lease: Duration,
}

impl Approvals {
    /// Claims made through it are held by this process, with the default lease.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            replica: ReplicaId::current().clone(),
            lease: DEFAULT_LEASE,
        }
    }

    /// Claims (and recovers) as `replica` with leases of `lease`: several replicas in one test.
    pub fn as_replica(mut self, replica: ReplicaId, lease: Duration) -> Self {
        self.replica = replica;
        self.lease = lease;
        self
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Stores a new pending request with a fresh short id and audits it.
    #[tracing::instrument(level = "debug", skip_all, fields(command = %req.operation.command, requester = %req.requester), err)]
    pub async fn create(
        &self,
        req: NewRequest,
        now: DateTime<Utc>,
    ) -> StoreResult<ApprovalRequest> {
        let now = to_micros(now);
        let ttl = chrono::Duration::from_std(req.ttl).map_err(anyhow::Error::from)?;
        let mut request = ApprovalRequest {
            id: String::new(),
            command: req.operation.command.clone(),
            args: req.args_display.clone(),
            targets: req.operation.targets.clone(),
            requester: req.requester.clone(),
            requester_roles: req.requester_roles.clone(),
            approver_roles: req.approver_roles.clone(),
            min_approvals: req.min_approvals.max(1),
            channel: req.channel.clone(),
            correlation_id: req.correlation_id.clone(),
            created_at: now,
            expires_at: to_micros(now + ttl),
            digest: req.operation.digest(),
            state: ApprovalState::Pending,
            reviews: vec![],
            result: None,
            updated_at: now,
            executor: None,
            lease_until: None,
        };
        // Eight characters from 31 give ~8.5e11 ids; a clash is retried, not an error.
        for _ in 0..5 {
            request.id = new_id();
            let audit = self.audit(
                &request,
                &request.requester,
                &request.requester_roles,
                AuditDecision::Pending,
                format!(
                    "approval {} requested: {} of {} until {}",
                    request.id,
                    request.min_approvals,
                    request.approver_roles.join("/"),
                    request.expires_at.to_rfc3339()
                ),
                now,
            );
            if self.store.insert_approval(&request, audit).await? {
                return Ok(request);
            }
        }
        Err(anyhow::anyhow!("could not find a free approval id after 5 tries").into())
    }

    pub async fn get(&self, id: &str) -> StoreResult<Option<ApprovalRequest>> {
        self.store.get_approval(id).await
    }

    /// Requests waiting for reviews, oldest first (expired ones included until `expire_due`).
    pub async fn pending(&self) -> StoreResult<Vec<ApprovalRequest>> {
        self.store.list_approvals(&[ApprovalState::Pending]).await
    }

    #[tracing::instrument(level = "debug", skip(self, approver_roles), err)]
    pub async fn approve(
        &self,
        id: &str,
        approver: &str,
        approver_roles: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Outcome> {
        let now = to_micros(now);
        let Some(req) = self.store.get_approval(id).await? else {
            return Ok(Outcome::Refused(Refusal::NotFound));
        };
        if let Err(refusal) = req.check_reviewer(approver, approver_roles, now) {
            return self
                .refuse(&req, approver, approver_roles, refusal, now)
                .await;
        }
        let review = Review {
            reviewer: approver.to_owned(),
            decision: ReviewDecision::Approve,
            reason: String::new(),
            at: now,
        };
        let needed = req.min_approvals;
        let approvals = match self
            .store
            .add_review(
                id,
                &review,
                self.audit(
                    &req,
                    approver,
                    approver_roles,
                    AuditDecision::Approved,
                    format!("approval {id}: approved by {approver}"),
                    now,
                ),
            )
            .await?
        {
            ReviewAdded::Added { approvals } => approvals,
            ReviewAdded::Duplicate => {
                let r = Refusal::AlreadyReviewed;
                return self.refuse(&req, approver, approver_roles, r, now).await;
            }
            // Someone else moved it (quorum, denial, expiry) between our read and our write.
            ReviewAdded::NotOpen => {
                return self.refuse_fresh(id, approver, approver_roles, now).await;
            }
        };
        if approvals < needed {
            return Ok(Outcome::Approved {
                ready_to_run: false,
                approvals,
                needed,
            });
        }
        let ready_to_run = self
            .store
            .transition(Transition {
                id: id.to_owned(),
                from: vec![ApprovalState::Pending],
                to: ApprovalState::Approved,
                unexpired_at: Some(now),
                lease: None,
                lease_check: None,
                result: None,
                at: now,
                audit: self.audit(
                    &req,
                    approver,
                    approver_roles,
                    AuditDecision::Approved,
                    format!("approval {id}: quorum reached ({approvals} of {needed})"),
                    now,
                ),
            })
            .await?;
        Ok(Outcome::Approved {
            ready_to_run,
            approvals,
            needed,
        })
    }

    /// A reviewer refuses the request; it is closed for good.
    #[tracing::instrument(level = "debug", skip(self, reviewer_roles, reason), err)]
    pub async fn deny(
        &self,
        id: &str,
        reviewer: &str,
        reviewer_roles: &[String],
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Outcome> {
        let now = to_micros(now);
        let Some(req) = self.store.get_approval(id).await? else {
            return Ok(Outcome::Refused(Refusal::NotFound));
        };
        if let Err(refusal) = req.check_reviewer(reviewer, reviewer_roles, now) {
            // The requester withdraws with `cancel`; this keeps "denied" meaning a second pair of eyes said no.
            return self
                .refuse(&req, reviewer, reviewer_roles, refusal, now)
                .await;
        }
        let review = Review {
            reviewer: reviewer.to_owned(),
            decision: ReviewDecision::Deny,
            reason: reason.to_owned(),
            at: now,
        };
        let text = format!("approval {id}: denied by {reviewer}: {reason}");
        match self
            .store
            .add_review(
                id,
                &review,
                self.audit(
                    &req,
                    reviewer,
                    reviewer_roles,
                    AuditDecision::Denied,
                    text.clone(),
                    now,
                ),
            )
            .await?
        {
            ReviewAdded::Added { .. } => {}
            ReviewAdded::Duplicate => {
                let r = Refusal::AlreadyReviewed;
                return self.refuse(&req, reviewer, reviewer_roles, r, now).await;
            }
            ReviewAdded::NotOpen => {
                return self.refuse_fresh(id, reviewer, reviewer_roles, now).await;
            }
        }
        let moved = self
            .store
            .transition(Transition {
                id: id.to_owned(),
                from: vec![ApprovalState::Pending],
                to: ApprovalState::Denied,
                unexpired_at: None,
                lease: None,
                lease_check: None,
                result: Some(format!("denied by {reviewer}: {reason}")),
                at: now,
                audit: self.audit(
                    &req,
                    reviewer,
                    reviewer_roles,
                    AuditDecision::Denied,
                    text,
                    now,
                ),
            })
            .await?;
        if moved {
            Ok(Outcome::Denied)
        } else {
            self.refuse_fresh(id, reviewer, reviewer_roles, now).await
        }
    }

    /// The requester withdraws a request that has not started running.
    #[tracing::instrument(level = "debug", skip(self), err)]
    pub async fn cancel(&self, id: &str, who: &str, now: DateTime<Utc>) -> StoreResult<Outcome> {
        let now = to_micros(now);
        let Some(req) = self.store.get_approval(id).await? else {
            return Ok(Outcome::Refused(Refusal::NotFound));
        };
        if who != req.requester {
            return self
                .refuse(&req, who, &[], Refusal::NotRequester, now)
                .await;
        }
        let moved = self
            .store
            .transition(Transition {
                id: id.to_owned(),
                from: vec![ApprovalState::Pending, ApprovalState::Approved],
                to: ApprovalState::Cancelled,
                unexpired_at: None,
                lease: None,
                lease_check: None,
                result: Some(format!("cancelled by {who}")),
                at: now,
                audit: self.audit(
                    &req,
                    who,
                    &req.requester_roles,
                    AuditDecision::Cancelled,
                    format!("approval {id}: cancelled by {who}"),
                    now,
                ),
            })
            .await?;
        if moved {
            Ok(Outcome::Cancelled)
        } else {
            self.refuse_fresh(id, who, &[], now).await
        }
    }

    /// Claims an approved, unexpired request for execution. Exactly one caller ever gets
    /// `true` for a request; only that caller may run the operation.
    #[tracing::instrument(level = "debug", skip(self), err)]
    pub async fn claim_for_execution(
        &self,
        id: &str,
        runner: &Runner<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let now = to_micros(now);
        let Some(req) = self.store.get_approval(id).await? else {
            return Ok(false);
        };
        if req.state != ApprovalState::Approved {
            return Ok(false);
        }
        self.store
            .transition(Transition {
                id: id.to_owned(),
                from: vec![ApprovalState::Approved],
                to: ApprovalState::Executing,
                unexpired_at: Some(now),
                lease: Some(Lease {
                    executor: self.replica.to_string(),
                    until: now
                        + chrono::Duration::from_std(self.lease).map_err(anyhow::Error::from)?,
                }),
                lease_check: None,
                result: None,
                at: now,
                audit: self.audit(
                    &req,
                    runner.actor,
                    runner.roles,
                    AuditDecision::Executing,
                    format!(
                        "approval {id}: claimed for execution by {} (requested by {}) on replica {}",
                        runner.actor,
                        req.requester,
                        self.replica.short()
                    ),
                    now,
                ),
            })
            .await
    }

    /// Extends this replica's lease on a request it is executing; call it well within the
    /// lease while the operation runs. False when the request is no longer ours to run.
    pub async fn renew_lease(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let until =
            to_micros(now) + chrono::Duration::from_std(self.lease).map_err(anyhow::Error::from)?;
        self.store
            .renew_lease(id, &self.replica.to_string(), until)
            .await
    }

    /// Records how the execution ended: `Ok(summary)` → succeeded, `Err(reason)` → failed.
    /// False if the request was not executing (already finished or recovered).
    #[tracing::instrument(level = "debug", skip(self, result), err)]
    pub async fn finish(
        &self,
        id: &str,
        runner: &Runner<'_>,
        result: Result<String, String>,
        duration: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let now = to_micros(now);
        let Some(req) = self.store.get_approval(id).await? else {
            return Ok(false);
        };
        let (to, decision, text) = match result {
            Ok(t) => (ApprovalState::Succeeded, AuditDecision::Ran, t),
            Err(t) => (ApprovalState::Failed, AuditDecision::Failed, t),
        };
        let mut audit = self.audit(
            &req,
            runner.actor,
            runner.roles,
            decision,
            format!(
                "approval {id}: {to} (run by {}, requested by {}): {text}",
                runner.actor, req.requester
            ),
            now,
        );
        audit.duration_ms = duration.as_millis() as u64;
        self.store
            .transition(Transition {
                id: id.to_owned(),
                from: vec![ApprovalState::Executing],
                to,
                unexpired_at: None,
                lease: None,
                lease_check: None,
                result: Some(text),
                at: now,
                audit,
            })
            .await
    }

    /// Marks every pending or approved request whose time is up as expired; returns their ids.
    pub async fn expire_due(&self, now: DateTime<Utc>) -> StoreResult<Vec<String>> {
        let now = to_micros(now);
        let open = self
            .store
            .list_approvals(&[ApprovalState::Pending, ApprovalState::Approved])
            .await?;
        let mut expired = vec![];
        for req in open.into_iter().filter(|r| r.is_expired(now)) {
            if self.expire(&req, now).await? {
                expired.push(req.id);
            }
        }
        Ok(expired)
    }

    /// Recovery: a request still `executing` whose executor has stopped was cut off mid-way.
    /// It is marked `failed: interrupted (replica X stopped)` and never re-run, since the
    /// operation may have half-happened; a human decides what to do next. Returns the ids.
    ///
    /// An executor has stopped when its lease ran out without renewal, or, before that, when
    /// this process can prove it gone (same host and pid namespace, pid no longer that
    /// process: see [`ReplicaId::is_provably_gone`]). A live replica's request is left alone,
    /// so any replica may run this at any time; the conditional update makes sure two
    /// recoverers record it once.
    pub async fn recover_interrupted(&self, now: DateTime<Utc>) -> StoreResult<Vec<String>> {
        let now = to_micros(now);
        let executing = self
            .store
            .list_approvals(&[ApprovalState::Executing])
            .await?;
        let mut recovered = vec![];
        for req in executing {
            let holder = req.executor.as_deref().and_then(ReplicaId::parse);
            let who = holder
                .as_ref()
                .map(ReplicaId::short)
                .or_else(|| req.executor.clone())
                .unwrap_or_else(|| "unknown".into());
            let (check, why) = match req.lease_until {
                None => (LeaseCheck::ExpiredAt(now), "it holds no lease".to_owned()),
                Some(until) if until <= now => (
                    LeaseCheck::ExpiredAt(now),
                    format!("its lease ended {} unrenewed", until.to_rfc3339()),
                ),
                Some(_) => match (&holder, &req.executor) {
                    (Some(h), Some(text)) if h.is_provably_gone(&self.replica) => (
                        LeaseCheck::HeldBy(text.clone()),
                        "its process is gone from this host".to_owned(),
                    ),
                    _ => continue,
                },
            };
            let result = format!("{INTERRUPTED} (replica {who} stopped)");
            let moved = self
                .store
                .transition(Transition {
                    id: req.id.clone(),
                    from: vec![ApprovalState::Executing],
                    to: ApprovalState::Failed,
                    unexpired_at: None,
                    lease: None,
                    lease_check: Some(check),
                    result: Some(result.clone()),
                    at: now,
                    audit: self.audit(
                        &req,
                        "container-ops",
                        &[],
                        AuditDecision::Failed,
                        format!("approval {}: failed: {result}: {why}; not re-run", req.id),
                        now,
                    ),
                })
                .await?;
            if moved {
                tracing::warn!(approval = %req.id, command = %req.command, replica = %who, "interrupted approved operation marked failed");
                recovered.push(req.id);
            }
        }
        Ok(recovered)
    }

    async fn expire(&self, req: &ApprovalRequest, now: DateTime<Utc>) -> StoreResult<bool> {
        self.store
            .transition(Transition {
                id: req.id.clone(),
                from: vec![ApprovalState::Pending, ApprovalState::Approved],
                to: ApprovalState::Expired,
                unexpired_at: None,
                lease: None,
                lease_check: None,
                result: Some("expired".into()),
                at: now,
                audit: self.audit(
                    req,
                    "container-ops",
                    &[],
                    AuditDecision::Expired,
                    format!(
                        "approval {}: expired at {}",
                        req.id,
                        req.expires_at.to_rfc3339()
                    ),
                    now,
                ),
            })
            .await
    }

    /// Re-reads the request after a lost race and reports its current state.
    async fn refuse_fresh(
        &self,
        id: &str,
        who: &str,
        roles: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Outcome> {
        let Some(req) = self.store.get_approval(id).await? else {
            return Ok(Outcome::Refused(Refusal::NotFound));
        };
        let refusal = if req.state == ApprovalState::Pending && req.is_expired(now) {
            Refusal::Expired
        } else {
            Refusal::NotPending(req.state)
        };
        self.refuse(&req, who, roles, refusal, now).await
    }

    async fn refuse(
        &self,
        req: &ApprovalRequest,
        who: &str,
        roles: &[String],
        refusal: Refusal,
        now: DateTime<Utc>,
    ) -> StoreResult<Outcome> {
        if refusal == Refusal::Expired && req.state == ApprovalState::Pending {
            self.expire(req, now).await?;
        }
        let text = format!(
            "approval {}: refused for {who}: {}",
            req.id,
            refusal.audit_text()
        );
        self.store
            .append_audit(self.audit(req, who, roles, AuditDecision::Refused, text, now))
            .await?;
        Ok(Outcome::Refused(refusal))
    }

    fn audit(
        &self,
        req: &ApprovalRequest,
        actor: &str,
        roles: &[String],
        decision: AuditDecision,
        result: String,
        now: DateTime<Utc>,
    ) -> NewAuditEntry {
        NewAuditEntry {
            at: now,
            actor: actor.to_owned(),
            roles: roles.to_vec(),
            channel: req.channel.clone(),
            command: req.command.clone(),
            args: req.args.clone(),
            target: req.targets.clone(),
            decision,
            result,
            duration_ms: 0,
            correlation_id: req.correlation_id.clone(),
            via: "approvals".into(),
        }
    }
}

fn new_id() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..ID_LEN]
        .iter()
        .map(|b| ID_ALPHABET[*b as usize % ID_ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn request() -> ApprovalRequest {
        ApprovalRequest {
            id: "abcd2345".into(),
            command: "reset-db".into(),
            args: String::new(),
            targets: vec!["container:1234".into()],
            requester: "alice".into(),
            requester_roles: vec!["oncall".into(), "approver".into()],
            approver_roles: vec!["approver".into()],
            min_approvals: 1,
            channel: "ops".into(),
            correlation_id: "c1".into(),
            created_at: at(0),
            expires_at: at(900),
            digest: String::new(),
            state: ApprovalState::Pending,
            reviews: vec![],
            result: None,
            updated_at: at(0),
            executor: None,
            lease_until: None,
        }
    }

    fn roles(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_requester_is_refused_even_holding_the_approver_role() {
        let r = request();
        assert_eq!(
            r.check_reviewer("alice", &roles(&["approver"]), at(1)),
            Err(Refusal::OwnRequest)
        );
    }

    #[test]
    fn a_reviewer_without_an_allowed_role_is_refused_with_the_roles_that_may() {
        let r = request();
        let e = r
            .check_reviewer("bob", &roles(&["oncall"]), at(1))
            .unwrap_err();
        assert_eq!(
            e,
            Refusal::NotAnApprover {
                allowed: roles(&["approver"])
            }
        );
        assert!(e.markdown().contains("`approver`"));
        assert_eq!(
            r.check_reviewer("bob", &roles(&["oncall", "approver"]), at(1)),
            Ok(())
        );
    }

    #[test]
    fn a_request_is_expired_from_its_expiry_instant_on() {
        let r = request();
        assert_eq!(
            r.check_reviewer("bob", &roles(&["approver"]), at(899)),
            Ok(())
        );
        assert_eq!(
            r.check_reviewer("bob", &roles(&["approver"]), at(900)),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn a_request_that_is_not_pending_cannot_be_reviewed() {
        let mut r = request();
        r.state = ApprovalState::Approved;
        assert_eq!(
            r.check_reviewer("bob", &roles(&["approver"]), at(1)),
            Err(Refusal::NotPending(ApprovalState::Approved))
        );
    }

    #[test]
    fn the_digest_ignores_target_order_but_not_targets_or_args() {
        let op = BoundOperation {
            command: "volume-rm".into(),
            targets: vec!["volume:a".into(), "container:1".into()],
            args: BTreeMap::from([("force".into(), "true".into())]),
        };
        let mut reordered = op.clone();
        reordered.targets.reverse();
        assert_eq!(op.digest(), reordered.digest());
        let mut other = op.clone();
        other.targets[1] = "container:2".into();
        assert_ne!(op.digest(), other.digest());
        let mut other = op.clone();
        other.args.insert("force".into(), "false".into());
        assert_ne!(op.digest(), other.digest());
    }

    #[test]
    fn ids_are_eight_unambiguous_characters() {
        for _ in 0..100 {
            let id = new_id();
            assert_eq!(id.len(), 8);
            assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)), "{id}");
        }
    }

    #[test]
    fn every_state_round_trips_through_its_name() {
        for s in ApprovalState::ALL {
            assert_eq!(s.as_str().parse::<ApprovalState>().unwrap(), s);
        }
    }
}
