//! container-ops: a chat-ops bot that runs on-call operations against a Docker Compose platform.

pub mod diagnosis;
pub mod docker;
pub mod engine;
pub mod platform;
pub mod probes;
pub mod redact;
