//! container-ops: a chat-ops bot that runs on-call operations against a Docker Compose platform.
//!
//! Layers point down only (see ARCHITECTURE.md): `core` ← `infra`, `ops` ← `pipeline` ←
//! `ingress` ← `app`. `tests/layers.rs` fails when an import runs back up or in a circle.

pub mod app;
pub mod core;
pub mod infra;
pub mod ingress;
pub mod ops;
pub mod pipeline;
