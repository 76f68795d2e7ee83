//! Incidents: one chat thread per incident, and its stored timeline of who ran what there.
//!
//! `/incident open title:…` records an incident in the store and asks the chat adapter's
//! [`Threads`] port for a thread with a pinned summary; commands run inside that thread are
//! appended to the timeline by the adapter ([`record`]); `/incident close` (typed in the
//! thread) closes the incident and answers with the whole timeline. The console has no
//! threads, so there `/incident` says it is a Discord feature.

use chrono::{DateTime, Utc};

use crate::core::args::Args;
use crate::core::error::{PipelineError, UserError};
use crate::core::report::{Block, Report, Severity, escape};
use crate::core::store::AuditDecision;
use crate::core::store::{NewIncident, Store, StoreResult, TimelineEntry};
use crate::core::threads::{Thread, Threads};
use crate::core::types::{ChannelId, UserId, bounded};

/// Discord counts a thread name up to 100 characters.
const THREAD_NAME: usize = 100;
/// Timeline texts stay short; the audit log holds the rest.
const TEXT: usize = 300;

/// The answer on a chat surface without threads.
pub const NO_THREADS: &str = "Incident threads are a Discord feature: run `/incident action:open title:…` in a Discord channel. The console has no threads; `/audit` shows what was run here.";

/// Who typed `/incident` and where.
pub struct Who<'a> {
    pub actor: &'a UserId,
    pub channel: &'a ChannelId,
}

/// What `/incident` was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Open { title: String },
    Close,
}

impl Action {
    pub fn parse(args: &Args) -> Result<Self, UserError> {
        match args.string("action") {
            Some("open") => {
                let title = one_line(args.string("title").unwrap_or_default());
                if title.is_empty() {
                    return Err(UserError::InvalidArgument(
                        "an incident needs a title: `/incident action:open title:API 502s since 14:05`"
                            .into(),
                    ));
                }
                Ok(Action::Open { title })
            }
            Some("close") => Ok(Action::Close),
            _ => Err(UserError::InvalidArgument(
                "say `action:open title:…` to open an incident, or `action:close` inside its thread"
                    .into(),
            )),
        }
    }
}

/// How `/incident` ended: the answer, and the incident and thread it concerns.
pub enum Outcome {
    Opened {
        report: Report,
        incident: i64,
        thread: Thread,
    },
    /// Closed from inside its thread, which the chat adapter archives after answering.
    Closed {
        report: Report,
        incident: i64,
        thread_id: String,
    },
}

/// `/incident action:open|close`, after the pipeline's catalog, policy and rate-limit stages.
pub async fn run(
    threads: Option<&dyn Threads>,
    store: Option<&dyn Store>,
    action: &Action,
    who: &Who<'_>,
) -> Result<Outcome, PipelineError> {
    let Some(threads) = threads else {
        return Err(UserError::Unavailable(NO_THREADS.into()).into());
    };
    let Some(store) = store else {
        return Err(UserError::Unavailable(
            "this bot runs without a store, so it cannot keep an incident timeline".into(),
        )
        .into());
    };
    match action {
        Action::Open { title } => open(store, threads, title, who).await,
        Action::Close => close(store, who).await,
    }
}

/// Whitespace and control characters collapse to single spaces (a thread name is one line).
fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn open(
    store: &dyn Store,
    threads: &dyn Threads,
    title: &str,
    inv: &Who<'_>,
) -> Result<Outcome, PipelineError> {
    let channel = inv.channel.to_string();
    if let Some(i) = store
        .incident_by_thread(&channel)
        .await?
        .filter(|i| i.closed_at.is_none())
    {
        return Err(UserError::InvalidArgument(format!(
            "this is the thread of incident {} ({}); open a new incident from the channel",
            i.id, i.title
        ))
        .into());
    }
    let now = Utc::now();
    let incident = store
        .open_incident(NewIncident {
            channel: channel.clone(),
            thread_id: None,
            title: title.to_owned(),
            opened_by: inv.actor.to_string(),
            opened_at: now,
        })
        .await?;
    let summary = Report::new(
        format!("Incident {}: {}", incident.id, escape(title)),
        Severity::Warning,
    )
    .with(Block::Fields(vec![
        ("opened by".into(), inv.actor.to_string()),
        ("opened".into(), at(now)),
    ]))
    .with(Block::Text(
        "Commands run in this thread, and the approvals of what they request, go into the incident's timeline. `/incident action:close` here posts the timeline and archives the thread.".into(),
    ));
    let name = bounded(&format!("incident-{} {title}", incident.id), THREAD_NAME);
    let thread = match threads.open(&channel, &name, &summary).await {
        Ok(t) => t,
        Err(e) => {
            // No thread means no incident: close the record instead of leaving it dangling.
            if let Err(c) = store.close_incident(incident.id, Utc::now()).await {
                tracing::error!(
                    incident = incident.id,
                    "could not close a threadless incident: {c:#}"
                );
            }
            tracing::warn!(incident = incident.id, "incident thread not created: {e:#}");
            let why = e
                .downcast_ref::<crate::core::threads::Refused>()
                .map_or_else(
                    || "check that the bot may create public threads in this channel".to_owned(),
                    |r| r.to_string(),
                );
            return Err(UserError::Unavailable(format!(
                "the incident thread could not be created ({why}), so no incident was opened"
            ))
            .into());
        }
    };
    store.set_incident_thread(incident.id, &thread.id).await?;
    store
        .add_timeline(TimelineEntry {
            incident_id: incident.id,
            at: now,
            actor: inv.actor.to_string(),
            kind: "opened".into(),
            text: format!("incident opened: {title}"),
        })
        .await?;
    let report = Report::new(
        format!("Incident {} opened: {}", incident.id, escape(title)),
        Severity::Warning,
    )
    .with(Block::Text(format!(
        "Thread: {}. Run commands there so they are part of the incident's timeline.",
        thread.mention
    )));
    let report = if thread.notes.is_empty() {
        report
    } else {
        report.with(Block::Text(format!("⚠ {}", thread.notes.join(" "))))
    };
    Ok(Outcome::Opened {
        report,
        incident: incident.id,
        thread,
    })
}

async fn close(store: &dyn Store, inv: &Who<'_>) -> Result<Outcome, PipelineError> {
    let channel = inv.channel.to_string();
    let Some(incident) = store
        .incident_by_thread(&channel)
        .await?
        .filter(|i| i.closed_at.is_none())
    else {
        return Err(UserError::InvalidArgument(
            "this is not the thread of an open incident: run `/incident action:close` inside the incident's thread".into(),
        )
        .into());
    };
    let now = Utc::now();
    store
        .add_timeline(TimelineEntry {
            incident_id: incident.id,
            at: now,
            actor: inv.actor.to_string(),
            kind: "closed".into(),
            text: "incident closed".into(),
        })
        .await?;
    if !store.close_incident(incident.id, now).await? {
        return Err(UserError::InvalidArgument(format!(
            "incident {} was closed a moment ago by someone else",
            incident.id
        ))
        .into());
    }
    let entries = store.timeline(incident.id).await?;
    let lasted = (now - incident.opened_at).to_std().unwrap_or_default();
    let report = Report::new(
        format!(
            "Incident {} closed: {}",
            incident.id,
            escape(&incident.title)
        ),
        Severity::Info,
    )
    .with(Block::Fields(vec![
        ("opened by".into(), incident.opened_by.clone()),
        ("opened".into(), at(incident.opened_at)),
        ("closed by".into(), inv.actor.to_string()),
        (
            "lasted".into(),
            crate::core::types::format_duration(std::time::Duration::from_secs(lasted.as_secs())),
        ),
    ]))
    .with(timeline_table(&entries))
    .with(Block::Text(
        "The thread is archived and locked; the timeline stays in the bot's store.".into(),
    ));
    Ok(Outcome::Closed {
        report,
        incident: incident.id,
        thread_id: channel,
    })
}

fn at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The timeline as a table, oldest first.
pub fn timeline_table(entries: &[TimelineEntry]) -> Block {
    Block::Table {
        headers: ["#", "time (UTC)", "who", "what"]
            .map(String::from)
            .to_vec(),
        rows: entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                vec![
                    (i + 1).to_string(),
                    e.at.format("%H:%M:%S").to_string(),
                    e.actor.clone(),
                    format!("{}: {}", e.kind, e.text),
                ]
            })
            .collect(),
    }
}

/// Appends to the timeline of the open incident whose thread is `channel`. False when the
/// channel is not such a thread (the common case: nothing to do).
pub async fn record(
    store: &dyn Store,
    channel: &str,
    actor: &str,
    kind: &str,
    text: &str,
) -> StoreResult<bool> {
    let Some(incident) = store
        .incident_by_thread(channel)
        .await?
        .filter(|i| i.closed_at.is_none())
    else {
        return Ok(false);
    };
    store
        .add_timeline(TimelineEntry {
            incident_id: incident.id,
            at: Utc::now(),
            actor: actor.to_owned(),
            kind: kind.to_owned(),
            text: bounded(&one_line(text), TEXT),
        })
        .await?;
    Ok(true)
}

/// How a pipeline run ended, in a few words for a timeline: the decision and a short result.
pub fn ending(result: Result<&Report, &PipelineError>) -> String {
    let text = match result {
        Ok(r) => format!("ran: {}", r.title),
        Err(PipelineError::User(u)) => {
            let word = match u.decision() {
                AuditDecision::Denied => "denied",
                AuditDecision::Limited => "rate limited",
                AuditDecision::Pending => "needs approval",
                AuditDecision::Invalid => "invalid",
                _ => "failed",
            };
            format!("{word}: {u}")
        }
        Err(e @ PipelineError::Internal(_)) => format!("failed: {e}"),
    };
    bounded(&one_line(&text), TEXT)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::core::audit::MemoryAudit;
    use crate::core::catalog::Catalog;
    use crate::core::policy::Policy;
    use crate::core::settings::{DEFAULT_SETTINGS, Settings};
    use crate::core::threads::Thread;
    use crate::core::types::{ChannelId, UserId};
    use crate::infra::fake::FakeEngine;
    use crate::infra::store::SqliteStore;
    use crate::pipeline::{Core, Invocation, LazyEngine};
    use async_trait::async_trait;

    #[derive(Default)]
    struct FakeThreads {
        opened: Mutex<Vec<(String, String, String)>>,
        fail: bool,
    }

    #[async_trait]
    impl Threads for FakeThreads {
        async fn open(
            &self,
            channel: &str,
            name: &str,
            summary: &Report,
        ) -> anyhow::Result<Thread> {
            if self.fail {
                anyhow::bail!("50013 Missing Permissions");
            }
            let mut o = self.opened.lock().unwrap();
            o.push((channel.into(), name.into(), summary.title.clone()));
            let id = format!("thread-{}", o.len());
            Ok(Thread {
                mention: format!("<#{id}>"),
                id,
                notes: Vec::new(),
            })
        }
    }

    async fn core(threads: Option<Arc<FakeThreads>>) -> (Core, Arc<dyn Store>) {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let settings = Settings::parse(Path::new("default"), DEFAULT_SETTINGS).unwrap();
        let groups = settings.groups.keys().cloned().collect();
        let catalog = Catalog::load_dir(&repo.join("commands"), &groups).unwrap();
        let policy = Policy::load_dir(&repo.join("permissions")).unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(":memory:").await.unwrap());
        let core = Core::new(
            settings,
            catalog,
            policy,
            LazyEngine::ready(Arc::new(FakeEngine::riftwing())),
            Arc::new(MemoryAudit::new()),
        )
        .with_store(store.clone());
        if let Some(t) = threads {
            assert!(core.set_threads(t));
        }
        (core, store)
    }

    fn inv(who: &str, channel: &str, line: &str) -> Invocation {
        Invocation::from_line(
            UserId::parse(who).unwrap(),
            ChannelId::parse(channel).unwrap(),
            line,
        )
    }

    #[tokio::test]
    async fn the_console_is_told_incident_threads_are_a_discord_feature() {
        let (core, _) = core(None).await;
        let e = core
            .run(inv("alice", "console", "/incident action:open title:x"))
            .await
            .unwrap_err();
        assert!(e.markdown().contains("Discord feature"), "{}", e.markdown());
        // Policy still comes first: a viewer is denied before anything else is said.
        let e = core
            .run(inv("dave", "console", "/incident action:open title:x"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, PipelineError::User(UserError::Denied { .. })),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn an_incident_title_is_shown_as_typed_and_links_nothing() {
        let threads = Arc::new(FakeThreads::default());
        let (core, _) = core(Some(threads.clone())).await;
        let r = core
            .run(inv(
                "alice",
                "ops",
                "/incident action:open title:\"[Approve request here](https://evil.example)\"",
            ))
            .await
            .unwrap()
            .report;
        assert!(
            r.title
                .ends_with("\\[Approve request here\\]\\(https://evil.example\\)"),
            "{}",
            r.title
        );
        let summary = &threads.opened.lock().unwrap()[0].2;
        assert!(!summary.contains("](https"), "{summary}");
    }

    #[tokio::test]
    async fn open_record_and_close_keep_the_timeline_in_order() {
        let threads = Arc::new(FakeThreads::default());
        let (core, store) = core(Some(threads.clone())).await;
        let reply = core
            .run(inv(
                "alice",
                "ops",
                "/incident action:open title:\"API 502s\"",
            ))
            .await
            .unwrap();
        let crate::pipeline::ReplyKind::IncidentOpened { incident, thread } = &reply.kind else {
            panic!("not an opening: {:?}", reply.kind)
        };
        assert_eq!((*incident, thread.id.as_str()), (1, "thread-1"));
        let r = reply.report;
        assert!(
            r.title.starts_with("Incident 1 opened: API 502s"),
            "{}",
            r.title
        );
        let opened = threads.opened.lock().unwrap().clone();
        assert_eq!(
            opened,
            [(
                "ops".into(),
                "incident-1 API 502s".into(),
                "Incident 1: API 502s".into()
            )]
        );
        assert!(
            !record(&*store, "ops", "bob", "command", "x").await.unwrap(),
            "not a thread"
        );
        assert!(
            record(&*store, "thread-1", "bob", "command", "/status → ran")
                .await
                .unwrap()
        );
        let e = core
            .run(inv("alice", "ops", "/incident action:close"))
            .await
            .unwrap_err();
        assert!(
            e.markdown().contains("inside the incident's thread"),
            "{}",
            e.markdown()
        );
        let reply = core
            .run(inv("bob", "thread-1", "/incident action:close"))
            .await
            .unwrap();
        assert!(
            matches!(&reply.kind, crate::pipeline::ReplyKind::IncidentClosed { incident: 1, thread_id } if thread_id == "thread-1"),
            "{:?}",
            reply.kind
        );
        let r = reply.report;
        let Block::Table { rows, .. } = &r.blocks[1] else {
            panic!("{r:?}")
        };
        let whats: Vec<&str> = rows.iter().map(|r| r[3].as_str()).collect();
        assert_eq!(
            whats,
            [
                "opened: incident opened: API 502s",
                "command: /status → ran",
                "closed: incident closed"
            ]
        );
        assert!(
            !record(&*store, "thread-1", "bob", "command", "late")
                .await
                .unwrap(),
            "closed"
        );
        let e = core
            .run(inv("bob", "thread-1", "/incident action:close"))
            .await
            .unwrap_err();
        assert!(e.markdown().contains("not the thread of an open incident"));
    }

    #[tokio::test]
    async fn a_thread_that_cannot_be_created_leaves_no_open_incident() {
        let threads = Arc::new(FakeThreads {
            fail: true,
            ..Default::default()
        });
        let (core, store) = core(Some(threads)).await;
        let e = core
            .run(inv("alice", "ops", "/incident action:open title:x"))
            .await
            .unwrap_err();
        assert!(
            e.markdown().contains("could not be created"),
            "{}",
            e.markdown()
        );
        assert!(store.open_incidents().await.unwrap().is_empty());
        let e = core
            .run(inv("alice", "ops", "/incident action:open"))
            .await
            .unwrap_err();
        assert!(e.markdown().contains("needs a title"), "{}", e.markdown());
    }

    #[test]
    fn endings_are_one_short_line() {
        let long = Report::new(format!("Status\n{}", "x".repeat(1000)), Severity::Info);
        let e = ending(Ok(&long));
        assert!(
            e.starts_with("ran: Status x") && e.chars().count() <= TEXT,
            "{e}"
        );
        let d = ending(Err(&UserError::Refused("no".into()).into()));
        assert_eq!(d, "denied: no");
    }
}
