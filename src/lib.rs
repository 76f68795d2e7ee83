//! container-ops: a chat-ops bot that runs on-call operations against a Docker Compose platform.

pub mod approvals;
pub mod docker;
pub mod engine;
pub mod redact;
pub mod store;
