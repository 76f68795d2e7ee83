//! A store handle that survives store outages: lazy reconnects with backoff, store work refused
//! while it is down, and audit entries kept in a spill file until they can be written in order.
//!
//! The adapters stay as they are; this layer sits in front of whichever one the URL names.
//! While the store is unreachable every [`Store`] call fails fast with [`StoreUnavailable`]
//! (no busy loop: the next attempt waits for a doubling backoff), except audit appends made
//! through [`ResilientStore::record_audit`], which go to the [`Spill`]. When a call finds the
//! store reachable again, the spill is written first, in order and with its original instants
//! (the hash chain is formed then), before anything else can append.
//!
//! An append the store refuses for any other reason (a locked SQLite file, a failed
//! transaction) is spilled too, and the spill is written before the next call: an audited
//! event is never lost to one bad moment of the store. After each append the handle records
//! the chain's head in the audit anchor beside the spill, outside the store.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use super::spill::{Spill, SpillLock};
use crate::core::approvals::request::{ApprovalRequest, ApprovalState, Review};
use crate::core::audit::{AuditRecord, AuditSink};
use crate::core::store::{
    AuditAnchor, AuditEntry, AuditHead, AuditKey, AuditQuery, Incident, NewAuditEntry, NewIncident,
    ReviewAdded, Store, StoreError, StoreResult, TimelineEntry, Transition,
};

/// The store could not be reached; what was tried and when the next attempt is due.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the store is unreachable: {reason}")]
pub struct StoreUnavailable {
    pub reason: String,
    pub retry_in: Duration,
}

impl From<StoreUnavailable> for StoreError {
    fn from(u: StoreUnavailable) -> Self {
        StoreError::Unavailable(format!(
            "{} (next attempt in {}s)",
            u.reason,
            u.retry_in.as_secs()
        ))
    }
}

type Opener = Box<dyn Fn() -> BoxFuture<'static, anyhow::Result<Arc<dyn Store>>> + Send + Sync>;
type OnFirstConnect =
    Box<dyn Fn(Arc<dyn Store>) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

pub struct ResilientStore {
    open: Opener,
    on_first_connect: Option<OnFirstConnect>,
    spill: Spill,
    min_backoff: Duration,
    max_backoff: Duration,
    /// One lock around connecting, flushing and spilling, so a flush and concurrent appends
    /// cannot reorder or duplicate entries within this process.
    inner: tokio::sync::Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    store: Option<Arc<dyn Store>>,
    reached_once: bool,
    next_try: Option<Instant>,
    backoff: Duration,
    last_error: String,
    /// Set by a flush, told in the next reply.
    flushed: Option<String>,
    /// An entry was spilled while the store was connected: write the spill before the next call.
    spilled_while_up: bool,
}

impl ResilientStore {
    /// `open` connects (and migrates); it is called lazily, again after each outage.
    pub fn new(
        open: impl Fn() -> BoxFuture<'static, anyhow::Result<Arc<dyn Store>>> + Send + Sync + 'static,
        spill: Spill,
    ) -> Self {
        Self {
            open: Box::new(open),
            on_first_connect: None,
            spill,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            inner: tokio::sync::Mutex::new(Inner::default()),
        }
    }

    /// The store named by `url` (see [`super::open`]); the spill and the anchor are sealed
    /// with the same key as the chain.
    pub fn for_url(url: String, spill: Spill, key: Option<AuditKey>) -> Self {
        let spill = spill.with_key(key.clone());
        Self::new(
            move || {
                let (url, key) = (url.clone(), key.clone());
                Box::pin(async move { super::open(&url, key).await })
            },
            spill,
        )
    }

    /// The anchor this handle writes, if any was written yet.
    pub fn read_anchor(&self) -> std::io::Result<Option<AuditAnchor>> {
        self.spill.read_anchor()
    }

    /// Records the chain's current head outside the store. A failure is logged, not
    /// returned: the entry itself is stored, and the next append tries again.
    async fn anchor(&self, store: &Arc<dyn Store>, known: Option<(i64, String)>) {
        let head = match known {
            Some(h) => h,
            None => match store.audit_head().await {
                Ok(h) => (h.last_id, h.last_hash),
                Err(e) => {
                    tracing::warn!("the audit anchor was not updated: {e:#}");
                    return;
                }
            },
        };
        // Sealed with the spill's key: one key for the chain, the spill and the anchor.
        let anchor = AuditAnchor::new(head.0, head.1, self.spill.key().as_deref());
        let spill = self.spill.clone();
        let written = tokio::task::spawn_blocking(move || spill.write_anchor(&anchor)).await;
        if let Err(e) = written.map_err(anyhow::Error::from).and_then(|r| Ok(r?)) {
            tracing::warn!(
                path = %self.spill.anchor_path().display(),
                "the audit anchor was not updated: {e:#}"
            );
        }
    }

    /// Runs once, the first time the store is reached (after the spill is flushed): start-up
    /// recovery belongs here, since the store may be down when the bot starts.
    pub fn on_first_connect(
        mut self,
        f: impl Fn(Arc<dyn Store>) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync + 'static,
    ) -> Self {
        self.on_first_connect = Some(Box::new(f));
        self
    }

    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    pub fn spill_path(&self) -> &Path {
        self.spill.path()
    }

    /// Tries to reach the store now, whatever the backoff says (start-up).
    pub async fn connect_now(&self) -> Result<(), StoreUnavailable> {
        let mut inner = self.inner.lock().await;
        inner.next_try = None;
        self.connected(&mut inner).await.map(|_| ())
    }

    /// Appends an audit entry, or keeps it in the spill file while the store is unreachable.
    /// Returns a short notice for the reply when something about the audit is worth saying.
    /// Fails only when the entry could be kept nowhere.
    pub async fn record_audit(&self, entry: NewAuditEntry) -> anyhow::Result<Option<String>> {
        let mut inner = self.inner.lock().await;
        let mut refused = None;
        if let Ok(store) = self.connected(&mut inner).await {
            match store.append_audit(entry.clone()).await {
                Ok(e) => {
                    self.anchor(&store, Some((e.id, e.hash))).await;
                    return Ok(inner.flushed.take());
                }
                Err(StoreError::Unavailable(why)) => self.mark_down(&mut inner, &why),
                Err(StoreError::Failed(e)) => {
                    // The store is there but did not take this entry (locked, failed
                    // transaction): keep it and write it before the next call.
                    tracing::error!(
                        "the audit store refused an entry; keeping it in the spill file: {e:#}"
                    );
                    inner.spilled_while_up = true;
                    refused = Some(format!("{e:#}"));
                }
            }
        }
        let path = self.spill.path().display().to_string();
        if let Some(why) = refused {
            let kept = self.spill_entry(entry).await.with_context(|| {
                format!("the audit store refused the entry ({why}) and it could not be kept in the spill file {path} either")
            })?;
            return Ok(Some(format!(
                "⚠ the audit store refused the entry ({why}); {kept} entr{} kept in {path}, to be written on the next call",
                if kept == 1 { "y" } else { "ies" }
            )));
        }
        let kept = self
            .spill_entry(entry)
            .await
            .with_context(|| format!("the audit store is unreachable ({}) and the audit entry could not be kept in the spill file {path} either", inner.last_error))?;
        tracing::warn!(spill = %path, kept, "audit store unreachable: entry kept in the spill file");
        Ok(Some(format!(
            "⚠ audit store unreachable: {kept} entr{} kept in {path}; they will be written when it is back",
            if kept == 1 { "y" } else { "ies" }
        )))
    }

    async fn spill_entry(&self, entry: NewAuditEntry) -> anyhow::Result<usize> {
        let lock = self.lock_spill().await?;
        Ok(self.spill.append(&lock, &entry)?)
    }

    async fn lock_spill(&self) -> anyhow::Result<SpillLock> {
        let spill = self.spill.clone();
        // Another process may hold it while it flushes: wait off the async threads.
        Ok(tokio::task::spawn_blocking(move || spill.lock()).await??)
    }

    /// The connected store, reconnecting when an attempt is due; flushes the spill first.
    async fn connected(&self, inner: &mut Inner) -> Result<Arc<dyn Store>, StoreUnavailable> {
        if let Some(s) = inner.store.clone() {
            if inner.spilled_while_up {
                match self.flush(&s).await {
                    Ok(flushed) => {
                        inner.spilled_while_up = false;
                        if flushed.is_some() {
                            inner.flushed = flushed;
                        }
                        self.anchor(&s, None).await;
                    }
                    Err(e) => tracing::warn!("the audit spill is still not written: {e:#}"),
                }
            }
            return Ok(s);
        }
        if let Some(t) = inner.next_try
            && Instant::now() < t
        {
            return Err(self.unavailable(inner));
        }
        let attempt = async {
            let store = (self.open)().await?;
            let flushed = self.flush(&store).await?;
            if flushed.is_some() {
                self.anchor(&store, None).await;
            }
            anyhow::Ok((store, flushed))
        };
        match attempt.await {
            Ok((store, flushed)) => {
                if let Some(f) = flushed {
                    inner.flushed = Some(f);
                }
                if !inner.reached_once {
                    inner.reached_once = true;
                    if let Some(hook) = &self.on_first_connect
                        && let Err(e) = hook(store.clone()).await
                    {
                        tracing::error!("start-up work on the store failed: {e:#}");
                    }
                }
                if !inner.last_error.is_empty() {
                    tracing::info!("the store is reachable again");
                }
                inner.spilled_while_up = false;
                inner.next_try = None;
                inner.backoff = Duration::ZERO;
                inner.last_error.clear();
                inner.store = Some(store.clone());
                Ok(store)
            }
            Err(e) => {
                self.mark_down(inner, &e);
                Err(self.unavailable(inner))
            }
        }
    }

    /// Writes the spilled entries in order and empties the file; an entry already in the
    /// store (its commit went through but the answer was lost) is not written twice.
    async fn flush(&self, store: &Arc<dyn Store>) -> anyhow::Result<Option<String>> {
        let lock = self.lock_spill().await?;
        let contents = self.spill.read(&lock).with_context(|| {
            format!(
                "the audit spill file {} cannot be read",
                self.spill.path().display()
            )
        })?;
        if contents.entries.is_empty() && contents.bad.is_empty() {
            return Ok(None);
        }
        let mut written = 0usize;
        for e in &contents.entries {
            if !already_stored(&**store, e)
                .await
                .map_err(StoreError::into_anyhow)?
            {
                store
                    .append_audit(e.clone())
                    .await
                    .map_err(StoreError::into_anyhow)?;
            }
            written += 1;
        }
        self.spill.clear(&lock, &contents.bad)?;
        let path = self.spill.path().display();
        tracing::warn!(spill = %path, written, "audit spill flushed to the store");
        let mut notice = format!(
            "✓ audit store reachable again: {written} kept entr{} from {path} written to the audit log",
            if written == 1 { "y" } else { "ies" }
        );
        for b in &contents.bad {
            tracing::error!(line = b.line, "audit spill line set aside: {}", b.reason);
            notice.push_str(&format!(
                "; line {} set aside in {} ({})",
                b.line,
                self.spill.bad_path().display(),
                b.reason
            ));
        }
        Ok(Some(notice))
    }

    fn mark_down(&self, inner: &mut Inner, e: &dyn std::fmt::Display) {
        // Only a lost connection is logged here: a failed first connect is returned to
        // `connect_now`'s caller, which tells the person once (the console printed it twice).
        if inner.store.take().is_some() {
            tracing::warn!("the store is unreachable: {e:#}");
        }
        inner.backoff = if inner.backoff.is_zero() {
            self.min_backoff
        } else {
            (inner.backoff * 2).min(self.max_backoff)
        };
        inner.next_try = Some(Instant::now() + inner.backoff);
        inner.last_error = format!("{e:#}");
    }

    fn unavailable(&self, inner: &Inner) -> StoreUnavailable {
        StoreUnavailable {
            reason: inner.last_error.clone(),
            retry_in: inner
                .next_try
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or_default(),
        }
    }

    /// [`Self::with`] for calls that may append to the audit log: the anchor follows them.
    async fn appending<T, F, Fut>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(Arc<dyn Store>) -> Fut + Send,
        Fut: Future<Output = StoreResult<T>> + Send,
    {
        let mut store = None;
        let out = self
            .with(|s| {
                store = Some(s.clone());
                f(s)
            })
            .await;
        if out.is_ok()
            && let Some(s) = store
        {
            self.anchor(&s, None).await;
        }
        out
    }

    /// Runs one store call on the connected store; a connection failure marks the store down.
    async fn with<T, F, Fut>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(Arc<dyn Store>) -> Fut + Send,
        Fut: Future<Output = StoreResult<T>> + Send,
    {
        let store = {
            let mut inner = self.inner.lock().await;
            self.connected(&mut inner).await?
        };
        match f(store).await {
            Err(StoreError::Unavailable(why)) => {
                let mut inner = self.inner.lock().await;
                self.mark_down(&mut inner, &why);
                Err(self.unavailable(&inner).into())
            }
            other => other,
        }
    }
}

async fn already_stored(store: &dyn Store, e: &NewAuditEntry) -> StoreResult<bool> {
    let e = e.clone().normalized();
    let same = store
        .query_audit(&AuditQuery {
            correlation_id: Some(e.correlation_id.clone()),
            since: Some(e.at),
            limit: 200,
            ..AuditQuery::default()
        })
        .await?;
    Ok(same.iter().any(|s| s.entry == e))
}

#[async_trait]
impl Store for ResilientStore {
    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry> {
        self.appending(|s| async move { s.append_audit(entry).await })
            .await
    }
    async fn query_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        self.with(|s| async move { s.query_audit(query).await })
            .await
    }
    async fn audit_page(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        self.with(|s| async move { s.audit_page(after_id, limit).await })
            .await
    }
    async fn audit_head(&self) -> StoreResult<AuditHead> {
        self.with(|s| async move { s.audit_head().await }).await
    }
    async fn insert_approval(
        &self,
        request: &ApprovalRequest,
        audit: NewAuditEntry,
    ) -> StoreResult<bool> {
        self.appending(|s| async move { s.insert_approval(request, audit).await })
            .await
    }
    async fn get_approval(&self, id: &str) -> StoreResult<Option<ApprovalRequest>> {
        self.with(|s| async move { s.get_approval(id).await }).await
    }
    async fn list_approvals(&self, states: &[ApprovalState]) -> StoreResult<Vec<ApprovalRequest>> {
        self.with(|s| async move { s.list_approvals(states).await })
            .await
    }
    async fn add_review(
        &self,
        id: &str,
        review: &Review,
        audit: NewAuditEntry,
    ) -> StoreResult<ReviewAdded> {
        self.appending(|s| async move { s.add_review(id, review, audit).await })
            .await
    }
    async fn transition(&self, t: Transition) -> StoreResult<bool> {
        self.appending(|s| async move { s.transition(t).await })
            .await
    }
    async fn renew_lease(
        &self,
        id: &str,
        executor: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.with(|s| async move { s.renew_lease(id, executor, until).await })
            .await
    }
    async fn open_incident(&self, incident: NewIncident) -> StoreResult<Incident> {
        self.with(|s| async move { s.open_incident(incident).await })
            .await
    }
    async fn set_incident_thread(&self, id: i64, thread_id: &str) -> StoreResult<bool> {
        self.with(|s| async move { s.set_incident_thread(id, thread_id).await })
            .await
    }
    async fn close_incident(&self, id: i64, at: DateTime<Utc>) -> StoreResult<bool> {
        self.with(|s| async move { s.close_incident(id, at).await })
            .await
    }
    async fn get_incident(&self, id: i64) -> StoreResult<Option<Incident>> {
        self.with(|s| async move { s.get_incident(id).await }).await
    }
    async fn incident_by_thread(&self, thread_id: &str) -> StoreResult<Option<Incident>> {
        self.with(|s| async move { s.incident_by_thread(thread_id).await })
            .await
    }
    async fn open_incidents(&self) -> StoreResult<Vec<Incident>> {
        self.with(|s| async move { s.open_incidents().await }).await
    }
    async fn add_timeline(&self, entry: TimelineEntry) -> StoreResult<()> {
        self.with(|s| async move { s.add_timeline(entry).await })
            .await
    }
    async fn timeline(&self, incident_id: i64) -> StoreResult<Vec<TimelineEntry>> {
        self.with(|s| async move { s.timeline(incident_id).await })
            .await
    }
}

#[async_trait]
impl AuditSink for ResilientStore {
    async fn record(&self, record: AuditRecord) -> anyhow::Result<Option<String>> {
        self.record_audit(record.into()).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::core::store::{AuditDecision, verify_audit};
    use crate::infra::store::SqliteStore;

    /// An SQLite store behind a switch: while "down", every call fails as a refused connection would.
    pub(crate) struct Switch {
        inner: Arc<dyn Store>,
        down: Arc<AtomicBool>,
        /// Appends are answered with an error that is not a lost connection, as a locked
        /// SQLite file answers.
        refuse: Arc<AtomicBool>,
    }

    impl Switch {
        fn check(&self) -> StoreResult<()> {
            if self.down.load(Ordering::SeqCst) {
                let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
                return Err(crate::infra::store::classify(
                    anyhow::Error::new(refused).context("no connection to the test store"),
                ));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl Store for Switch {
        async fn append_audit(&self, e: NewAuditEntry) -> StoreResult<AuditEntry> {
            self.check()?;
            if self.refuse.load(Ordering::SeqCst) {
                return Err(crate::infra::store::classify(anyhow::anyhow!(
                    "database is locked"
                )));
            }
            self.inner.append_audit(e).await
        }
        async fn query_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
            self.check()?;
            self.inner.query_audit(q).await
        }
        async fn audit_page(&self, a: i64, l: u32) -> StoreResult<Vec<AuditEntry>> {
            self.check()?;
            self.inner.audit_page(a, l).await
        }
        async fn audit_head(&self) -> StoreResult<AuditHead> {
            self.check()?;
            self.inner.audit_head().await
        }
        async fn insert_approval(
            &self,
            r: &ApprovalRequest,
            a: NewAuditEntry,
        ) -> StoreResult<bool> {
            self.check()?;
            self.inner.insert_approval(r, a).await
        }
        async fn get_approval(&self, id: &str) -> StoreResult<Option<ApprovalRequest>> {
            self.check()?;
            self.inner.get_approval(id).await
        }
        async fn list_approvals(&self, s: &[ApprovalState]) -> StoreResult<Vec<ApprovalRequest>> {
            self.check()?;
            self.inner.list_approvals(s).await
        }
        async fn add_review(
            &self,
            id: &str,
            r: &Review,
            a: NewAuditEntry,
        ) -> StoreResult<ReviewAdded> {
            self.check()?;
            self.inner.add_review(id, r, a).await
        }
        async fn transition(&self, t: Transition) -> StoreResult<bool> {
            self.check()?;
            self.inner.transition(t).await
        }
        async fn renew_lease(&self, id: &str, e: &str, u: DateTime<Utc>) -> StoreResult<bool> {
            self.check()?;
            self.inner.renew_lease(id, e, u).await
        }
        async fn open_incident(&self, i: NewIncident) -> StoreResult<Incident> {
            self.check()?;
            self.inner.open_incident(i).await
        }
        async fn set_incident_thread(&self, id: i64, t: &str) -> StoreResult<bool> {
            self.check()?;
            self.inner.set_incident_thread(id, t).await
        }
        async fn close_incident(&self, id: i64, at: DateTime<Utc>) -> StoreResult<bool> {
            self.check()?;
            self.inner.close_incident(id, at).await
        }
        async fn get_incident(&self, id: i64) -> StoreResult<Option<Incident>> {
            self.check()?;
            self.inner.get_incident(id).await
        }
        async fn incident_by_thread(&self, t: &str) -> StoreResult<Option<Incident>> {
            self.check()?;
            self.inner.incident_by_thread(t).await
        }
        async fn open_incidents(&self) -> StoreResult<Vec<Incident>> {
            self.check()?;
            self.inner.open_incidents().await
        }
        async fn add_timeline(&self, e: TimelineEntry) -> StoreResult<()> {
            self.check()?;
            self.inner.add_timeline(e).await
        }
        async fn timeline(&self, id: i64) -> StoreResult<Vec<TimelineEntry>> {
            self.check()?;
            self.inner.timeline(id).await
        }
    }

    /// A resilient handle over `data` that is unreachable while `down` is set (no backoff).
    pub(crate) fn switched(
        data: Arc<dyn Store>,
        down: Arc<AtomicBool>,
        spill: std::path::PathBuf,
        opens: Arc<AtomicUsize>,
    ) -> ResilientStore {
        switched_refusing(data, down, Arc::default(), spill, opens)
    }

    fn switched_refusing(
        data: Arc<dyn Store>,
        down: Arc<AtomicBool>,
        refuse: Arc<AtomicBool>,
        spill: std::path::PathBuf,
        opens: Arc<AtomicUsize>,
    ) -> ResilientStore {
        ResilientStore::new(
            move || {
                opens.fetch_add(1, Ordering::SeqCst);
                let s: Arc<dyn Store> = Arc::new(Switch {
                    inner: data.clone(),
                    down: down.clone(),
                    refuse: refuse.clone(),
                });
                let down = down.clone();
                Box::pin(async move {
                    if down.load(Ordering::SeqCst) {
                        anyhow::bail!(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
                    }
                    Ok(s)
                })
            },
            Spill::new(spill),
        )
        .with_backoff(Duration::ZERO, Duration::ZERO)
    }

    struct Rig {
        _dir: tempfile::TempDir,
        data: Arc<dyn Store>,
        down: Arc<AtomicBool>,
        refuse: Arc<AtomicBool>,
        opens: Arc<AtomicUsize>,
        firsts: Arc<AtomicUsize>,
        spill_path: std::path::PathBuf,
    }

    impl Rig {
        async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let data: Arc<dyn Store> = Arc::new(SqliteStore::open(":memory:").await.unwrap());
            let spill_path = dir.path().join("audit-spill.jsonl");
            Self {
                _dir: dir,
                data,
                down: Arc::new(AtomicBool::new(false)),
                refuse: Arc::new(AtomicBool::new(false)),
                opens: Arc::new(AtomicUsize::new(0)),
                firsts: Arc::new(AtomicUsize::new(0)),
                spill_path,
            }
        }

        /// A bot process: its own handle over the same data and spill file.
        fn process(&self) -> ResilientStore {
            let firsts = self.firsts.clone();
            switched_refusing(
                self.data.clone(),
                self.down.clone(),
                self.refuse.clone(),
                self.spill_path.clone(),
                self.opens.clone(),
            )
            .on_first_connect(move |_| {
                firsts.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { anyhow::Ok(()) })
            })
        }

        fn set_down(&self, down: bool) {
            self.down.store(down, Ordering::SeqCst);
        }

        async fn stored(&self) -> Vec<(u64, String)> {
            self.data
                .audit_page(0, 1000)
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.entry.duration_ms, e.entry.actor))
                .collect()
        }
    }

    /// Everything logged at warn and above while `f` runs.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        let buf = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
        (out, text)
    }

    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_first_connect_is_the_callers_to_report_and_a_lost_connection_is_logged_once() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let rig = rt.block_on(Rig::new());
        let store = rig.process();
        rig.set_down(true);
        let (first, log) = logged(|| rt.block_on(store.connect_now()));
        assert!(first.is_err());
        assert_eq!(log, "", "the caller prints this one");

        rig.set_down(false);
        rt.block_on(store.connect_now()).unwrap();
        rig.set_down(true);
        let (_, log) = logged(|| {
            rt.block_on(async {
                for n in 0..3 {
                    store.record_audit(entry(n, "dave")).await.unwrap();
                }
            })
        });
        assert_eq!(log.matches("the store is unreachable").count(), 1, "{log}");
    }

    fn entry(n: u64, actor: &str) -> NewAuditEntry {
        NewAuditEntry {
            at: Utc::now(),
            actor: actor.into(),
            roles: vec![],
            channel: "console".into(),
            command: "status".into(),
            args: String::new(),
            target: vec![],
            decision: AuditDecision::Ran,
            result: "ok".into(),
            duration_ms: n,
            correlation_id: format!("c{n}"),
            via: "console:dave".into(),
        }
    }

    #[tokio::test]
    async fn an_entry_the_store_refuses_is_spilled_and_written_first_on_the_next_call() {
        let rig = Rig::new().await;
        let p = rig.process();
        assert_eq!(p.record_audit(entry(1, "dave")).await.unwrap(), None);
        rig.refuse.store(true, Ordering::SeqCst);
        let notice = p.record_audit(entry(2, "erin")).await.unwrap().unwrap();
        assert!(
            notice.contains("refused the entry (database is locked)")
                && notice.contains("1 entry kept"),
            "{notice}"
        );
        assert_eq!(rig.stored().await.len(), 1);
        rig.refuse.store(false, Ordering::SeqCst);
        let flushed = p.record_audit(entry(3, "frank")).await.unwrap().unwrap();
        assert!(flushed.contains("1 kept entry"), "{flushed}");
        assert_eq!(
            rig.stored().await,
            [(1, "dave".into()), (2, "erin".into()), (3, "frank".into())]
        );
        assert!(verify_audit(&*rig.data).await.unwrap().is_ok());
        assert_eq!(std::fs::read_to_string(&rig.spill_path).unwrap(), "");
    }

    #[tokio::test]
    async fn an_entry_neither_the_store_nor_the_spill_file_takes_is_an_error_not_a_silence() {
        let rig = Rig::new().await;
        let blocked = rig.spill_path.with_file_name("not-a-dir");
        std::fs::write(&blocked, "").unwrap();
        let p = switched_refusing(
            rig.data.clone(),
            rig.down.clone(),
            rig.refuse.clone(),
            blocked.join("audit-spill.jsonl"),
            rig.opens.clone(),
        );
        rig.refuse.store(true, Ordering::SeqCst);
        let e = p.record_audit(entry(1, "dave")).await.unwrap_err();
        assert!(
            format!("{e:#}").contains("could not be kept in the spill file"),
            "{e:#}"
        );
    }

    #[tokio::test]
    async fn every_append_moves_the_anchor_to_the_stores_head() {
        let rig = Rig::new().await;
        let p = rig.process();
        for n in 0..3 {
            p.record_audit(entry(n, "dave")).await.unwrap();
        }
        let head = rig.data.audit_head().await.unwrap();
        let anchor = p.read_anchor().unwrap().unwrap();
        assert_eq!((anchor.last_id, anchor.last_hash), (3, head.last_hash));
    }

    #[tokio::test]
    async fn entries_made_while_the_store_is_down_are_written_first_and_in_order_when_it_is_back() {
        let rig = Rig::new().await;
        let p = rig.process();
        assert!(p.record_audit(entry(1, "a")).await.unwrap().is_none());
        rig.set_down(true);
        let n2 = p.record_audit(entry(2, "a")).await.unwrap().unwrap();
        assert!(
            n2.contains("1 entry kept in") && n2.contains("audit-spill.jsonl"),
            "{n2}"
        );
        let n3 = p.record_audit(entry(3, "a")).await.unwrap().unwrap();
        assert!(n3.contains("2 entries kept"), "{n3}");
        let e = p.get_approval("x").await.unwrap_err();
        assert!(e.is_unavailable(), "{e}");
        assert_eq!(rig.stored().await.len(), 1);

        rig.set_down(false);
        let back = p.record_audit(entry(4, "a")).await.unwrap().unwrap();
        assert!(
            back.contains("2 kept entries") && back.contains("written"),
            "{back}"
        );
        assert_eq!(
            rig.stored().await.iter().map(|e| e.0).collect::<Vec<_>>(),
            [1, 2, 3, 4],
            "the spill goes in before the entry that found the store back"
        );
        assert!(
            p.record_audit(entry(5, "a")).await.unwrap().is_none(),
            "said once"
        );
        assert!(verify_audit(&*rig.data).await.unwrap().is_ok());
        assert_eq!(
            std::fs::read(&rig.spill_path).unwrap().len(),
            0,
            "spill emptied"
        );
    }

    #[tokio::test]
    async fn a_spill_left_by_a_previous_process_is_flushed_at_the_next_connection_before_start_up_work()
     {
        let rig = Rig::new().await;
        rig.set_down(true);
        let old = rig.process();
        assert!(old.connect_now().await.is_err());
        old.record_audit(entry(1, "old")).await.unwrap();
        old.record_audit(entry(2, "old")).await.unwrap();
        drop(old);
        assert_eq!(rig.firsts.load(Ordering::SeqCst), 0, "never reached");

        rig.set_down(false);
        let new = rig.process();
        new.connect_now().await.unwrap();
        assert_eq!(rig.firsts.load(Ordering::SeqCst), 1);
        assert_eq!(
            rig.stored().await,
            [(1, "old".to_string()), (2, "old".to_string())]
        );
        new.record_audit(entry(3, "new")).await.unwrap();
        assert_eq!(rig.stored().await.len(), 3);
        assert!(verify_audit(&*rig.data).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn concurrent_appends_around_a_flush_are_neither_lost_reordered_nor_duplicated() {
        let rig = Rig::new().await;
        let p = Arc::new(rig.process());
        rig.set_down(true);
        for i in 0..20 {
            p.record_audit(entry(i, "spilled")).await.unwrap();
        }
        rig.set_down(false);
        let tasks: Vec<_> = (100..150)
            .map(|i| {
                let p = p.clone();
                tokio::spawn(async move { p.record_audit(entry(i, "live")).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let stored = rig.stored().await;
        assert_eq!(stored.len(), 70);
        let spilled: Vec<u64> = stored.iter().take(20).map(|e| e.0).collect();
        assert_eq!(
            spilled,
            (0..20).collect::<Vec<_>>(),
            "spill first, in order"
        );
        let mut live: Vec<u64> = stored.iter().skip(20).map(|e| e.0).collect();
        live.sort();
        assert_eq!(live, (100..150).collect::<Vec<_>>());
        assert!(verify_audit(&*rig.data).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn an_entry_already_stored_before_the_outage_was_noticed_is_not_written_twice() {
        let rig = Rig::new().await;
        let p = rig.process();
        let e = entry(1, "a");
        rig.data.append_audit(e.clone()).await.unwrap();
        // Its commit went through but the answer was lost: it was spilled as well.
        let spill = Spill::new(rig.spill_path.clone());
        let lock = spill.lock().unwrap();
        spill.append(&lock, &e).unwrap();
        drop(lock);
        p.connect_now().await.unwrap();
        assert_eq!(rig.stored().await.len(), 1);
    }

    #[tokio::test]
    async fn while_down_the_store_is_tried_again_only_after_the_backoff() {
        let rig = Rig::new().await;
        rig.set_down(true);
        let p = rig
            .process()
            .with_backoff(Duration::from_secs(60), Duration::from_secs(60));
        assert!(p.connect_now().await.is_err());
        for _ in 0..10 {
            let e = p.pending_like().await.unwrap_err();
            let StoreError::Unavailable(why) = &e else {
                panic!("not an outage: {e}")
            };
            let secs: u64 = why
                .rsplit_once("next attempt in ")
                .and_then(|(_, s)| s.trim_end_matches("s)").parse().ok())
                .unwrap_or_else(|| panic!("{why}"));
            assert!(secs >= 50, "{why}");
        }
        assert_eq!(rig.opens.load(Ordering::SeqCst), 1, "no busy loop");
    }

    #[tokio::test]
    async fn an_unwritable_spill_fails_the_record_instead_of_dropping_it() {
        let rig = Rig::new().await;
        std::fs::create_dir(&rig.spill_path).unwrap(); // a directory where the file should be
        rig.set_down(true);
        let e = rig.process().record_audit(entry(1, "a")).await.unwrap_err();
        assert!(format!("{e:#}").contains("could not be kept"), "{e:#}");
    }

    impl ResilientStore {
        async fn pending_like(&self) -> StoreResult<Vec<ApprovalRequest>> {
            self.list_approvals(&[ApprovalState::Pending]).await
        }
    }
}
