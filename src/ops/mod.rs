//! The operations: one module per family, each parsing its parameters, running, and reporting.

pub mod containers;
pub mod destructive;
pub mod diagnose;
pub mod incidents;
pub mod temporal;
