//! container-ops: a chat-ops bot that runs on-call operations against a Docker Compose platform.

pub mod catalog;
pub mod docker;
pub mod engine;
pub mod error;
pub mod policy;
pub mod ratelimit;
pub mod redact;
pub mod settings;
pub mod types;
