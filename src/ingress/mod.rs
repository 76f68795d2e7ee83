//! Where invocations come from and replies go: Discord (gateway and HTTP endpoint) and the console.

pub mod console;
pub mod discord;
