//! container-ops: a chat-ops bot that runs on-call operations against a Docker Compose platform.

pub mod approvals;
pub mod args;
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod console;
pub mod destructive;
pub mod diag_ops;
pub mod diagnosis;
pub mod discord;
pub mod docker;
pub mod engine;
pub mod error;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
pub mod incidents;
pub mod ops;
pub mod pipeline;
pub mod platform;
pub mod policy;
pub mod probes;
pub mod ratelimit;
pub mod redact;
pub mod replica;
pub mod report;
pub mod settings;
pub mod store;
pub mod temporal;
pub mod types;
