//! Incident threads on Discord: the core's thread port (create, post and pin the summary) and the hooks that keep the timeline.

use std::sync::Arc;

use async_trait::async_trait;
use serenity::all::{
    AutoArchiveDuration, ChannelId as DiscordChannel, ChannelType, CommandInteraction,
    CreateThread, EditThread, Http,
};

use super::{Bot, create_message, render};
use crate::core::report::Report;
use crate::core::threads::{Thread, Threads};

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
            .await?;
        let msgs = render::report(summary);
        let first = thread
            .id
            .send_message(&*self.http, create_message(&msgs[0]))
            .await?;
        for m in &msgs[1..] {
            thread
                .id
                .send_message(&*self.http, create_message(m))
                .await?;
        }
        thread.id.pin(&*self.http, first.id).await?;
        Ok(Thread {
            id: thread.id.to_string(),
            mention: format!("<#{}>", thread.id),
        })
    }
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
