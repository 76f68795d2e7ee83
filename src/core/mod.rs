//! The core: names, errors, reports, the catalog, policy, limits, settings, approvals, and the ports to the world.

pub mod approvals;
pub mod args;
pub mod audit;
pub mod catalog;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod platform;
pub mod policy;
pub mod ratelimit;
pub mod redact;
pub mod replica;
pub mod report;
pub mod settings;
pub mod store;
pub mod threads;
pub mod types;
