//! Adapters behind the core's ports: the Docker Engine, the stores, and the engine test double.

pub mod docker;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
pub mod store;
