//! Incident threads on Discord: the core's thread port (create, post and pin the summary) and the hooks that keep the timeline.

use std::sync::Arc;

use async_trait::async_trait;
use serenity::all::{
    AutoArchiveDuration, ChannelId as DiscordChannel, ChannelType, CommandInteraction,
    CreateThread, EditThread, Http,
};

use super::{Bot, create_message, render};
use crate::core::report::Report;
use crate::core::threads::{Refused, Thread, Threads};

/// Creates public threads with the bot's REST client.
pub(super) struct DiscordThreads {
    http: Arc<Http>,
}

impl DiscordThreads {
    pub(super) fn new(http: Arc<Http>) -> Self {
        Self { http }
    }
}

#[async_trait]
impl Threads for DiscordThreads {
    async fn open(&self, channel: &str, name: &str, summary: &Report) -> anyhow::Result<Thread> {
        let parent = channel
            .parse::<u64>()
            .ok()
            .filter(|n| *n != 0)
            .map(DiscordChannel::new)
            .ok_or_else(|| anyhow::anyhow!("channel `{channel}` is not a Discord channel id"))?;
        // Public, so everyone in the channel can follow; a week before Discord auto-archives.
        let thread = parent
            .create_thread(
                &*self.http,
                CreateThread::new(name)
                    .kind(ChannelType::PublicThread)
                    .auto_archive_duration(AutoArchiveDuration::OneWeek),
            )
            .await;
        let thread = thread.map_err(|e| refused(e, "Create Public Threads"))?;
        let mut notes = Vec::new();
        let msgs = render::report(summary);
        let mut first = None;
        for m in &msgs {
            match thread.id.send_message(&*self.http, create_message(m)).await {
                Ok(sent) => {
                    first.get_or_insert(sent.id);
                }
                Err(e) => {
                    tracing::warn!(thread = %thread.id, "incident summary not posted: {e:#}");
                    notes.push(format!(
                        "The summary could not be posted in the thread ({}).",
                        why(&e, "Send Messages in Threads")
                    ));
                    break;
                }
            }
        }
        if let Some(first) = first
            && let Err(e) = thread.id.pin(&*self.http, first).await
        {
            tracing::warn!(thread = %thread.id, "incident summary not pinned: {e:#}");
            notes.push(format!(
                "The summary could not be pinned ({}).",
                why(&e, "Pin Messages")
            ));
        }
        Ok(Thread {
            id: thread.id.to_string(),
            mention: format!("<#{}>", thread.id),
            notes,
        })
    }
}

/// Discord's answer in words: a missing permission is named (403, code 50013), anything else
/// is Discord's own message.
pub(super) fn why(e: &serenity::Error, permission: &str) -> String {
    match e {
        serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r))
            if r.status_code.as_u16() == 403 =>
        {
            format!("the bot lacks the {permission} permission in this channel")
        }
        serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) => {
            format!(
                "Discord answered {}: {}",
                r.status_code.as_u16(),
                r.error.message
            )
        }
        other => format!("{other}"),
    }
}

fn refused(e: serenity::Error, permission: &str) -> anyhow::Error {
    let words = why(&e, permission);
    anyhow::Error::new(e).context(Refused(words))
}

/// Appends to the timeline when `channel` is an open incident's thread; failures are logged,
/// never shown (the command itself has been answered).
pub(super) async fn record(bot: &Bot, channel: &str, actor: &str, kind: &str, text: &str) {
    let Some(store) = bot.core.store() else {
        return;
    };
    if let Err(e) = crate::ops::incidents::record(store.as_ref(), channel, actor, kind, text).await
    {
        tracing::warn!(channel, "incident timeline entry lost: {e:#}");
    }
}

/// What a command did to an incident, as the core's reply said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Incident {
    None,
    /// The core recorded the opening itself.
    Opened,
    /// Closed from its thread: archive and lock the thread once the answer is posted in it.
    Closed,
}

/// After a command was answered: it joins the incident's timeline when typed in its thread;
/// a closed incident's thread is archived and locked (after the answer, which is posted in it).
pub(super) async fn after_command(
    bot: &Bot,
    c: &CommandInteraction,
    typed: &str,
    ending: &str,
    incident: Incident,
) {
    if incident == Incident::Closed {
        let edit = EditThread::new().archived(true).locked(true);
        if let Err(e) = c.channel_id.edit_thread(&*bot.http, edit).await {
            tracing::warn!(thread = %c.channel_id, "could not archive the incident thread: {e:#}");
            // Said where the people are, through the interaction's webhook (which needs no
            // channel permission): the incident is closed, the thread is not.
            let text = format!(
                "⚠ The incident is closed, but this thread could not be archived and locked ({}). Archive it by hand, or give the bot that permission.",
                why(&e, "Manage Threads")
            );
            let m = &render::text(&text, false)[0];
            let sent = super::on_webhook("follow-up", || {
                c.create_followup(&*bot.http, super::followup_message(m))
            });
            if let Err(e) = sent.await {
                tracing::error!("could not say that the thread stays open: {e:#}");
            }
        }
        return;
    }
    if incident == Incident::Opened {
        // The core records opening and closing itself.
        return;
    }
    let text = format!("{typed} → {ending}");
    record(
        bot,
        &c.channel_id.to_string(),
        &c.user.id.to_string(),
        "command",
        &text,
    )
    .await;
}
