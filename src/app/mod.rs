//! The application: the command line and the one place that wires everything from settings.

pub mod cli;
pub mod doctor;
pub mod health;
pub mod wire;
