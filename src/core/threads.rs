//! The port to chat threads, where incidents live; the Discord adapter implements it.

use async_trait::async_trait;

use crate::core::report::Report;

/// A thread the chat adapter created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    pub id: String,
    /// How to point at it in a message (Discord: `<#id>`).
    pub mention: String,
    /// What did not work after the thread existed (the summary not posted or not pinned),
    /// said to the person: the thread is kept and used, never orphaned.
    pub notes: Vec<String>,
}

/// The chat refused for a reason the person can act on (a missing permission), in their words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Where incidents live in chat.
#[async_trait]
pub trait Threads: Send + Sync {
    /// Creates a thread under `channel` named `name`, posts `summary` in it and pins that message.
    /// Fails only when there is no thread; what failed after is in [`Thread::notes`].
    async fn open(&self, channel: &str, name: &str, summary: &Report) -> anyhow::Result<Thread>;
}
