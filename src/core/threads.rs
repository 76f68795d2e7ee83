//! The port to chat threads, where incidents live; the Discord adapter implements it.

use async_trait::async_trait;

use crate::core::report::Report;

/// A thread the chat adapter created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    pub id: String,
    /// How to point at it in a message (Discord: `<#id>`).
    pub mention: String,
}

/// Where incidents live in chat.
#[async_trait]
pub trait Threads: Send + Sync {
    /// Creates a thread under `channel` named `name`, posts `summary` in it and pins that message.
    async fn open(&self, channel: &str, name: &str, summary: &Report) -> anyhow::Result<Thread>;
}
