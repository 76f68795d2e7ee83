//! What the bot counts for `/metrics`: commands by name and outcome, stage latencies, and gauges read at scrape time.
//!
//! prometheus-client (the Prometheus project's own Rust client) keeps the counters and writes
//! the text format; the pipeline updates them, `app::health` serves them.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// The bot's metrics; cheap to clone (every handle shares its counters).
pub struct Metrics {
    registry: Registry,
    commands: Family<CommandLabels, Counter>,
    stages: Family<StageLabels, Histogram>,
    approvals: Family<StateLabels, Gauge>,
    spill_backlog: Gauge,
    store_up: Gauge,
    gateway_connects: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("container_ops");
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "commands",
            "Commands that reached an end, by command name and outcome (the audit decision)",
            commands.clone(),
        );
        // 1 ms to about 65 s.
        let stages = Family::<StageLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 17))
        });
        registry.register(
            "stage_seconds",
            "Time spent per pipeline stage (total, audit)",
            stages.clone(),
        );
        let approvals = Family::<StateLabels, Gauge>::default();
        registry.register(
            "approvals",
            "Approval requests by state, read from the store at scrape time",
            approvals.clone(),
        );
        let spill_backlog = Gauge::default();
        registry.register(
            "audit_spill_backlog",
            "Audit entries waiting in the spill file for the store",
            spill_backlog.clone(),
        );
        let store_up = Gauge::default();
        registry.register(
            "store_up",
            "1 when the store answered the last readiness check",
            store_up.clone(),
        );
        let gateway_connects = Counter::default();
        registry.register(
            "gateway_connects",
            "Discord gateway sessions started (READY received)",
            gateway_connects.clone(),
        );
        Self {
            registry,
            commands,
            stages,
            approvals,
            spill_backlog,
            store_up,
            gateway_connects,
        }
    }

    /// One command ended with `outcome` after `took`.
    pub fn command(&self, command: &str, outcome: &str, took: Duration) {
        self.commands
            .get_or_create(&CommandLabels {
                command: command.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.stage("total", took);
    }

    pub fn stage(&self, stage: &str, took: Duration) {
        self.stages
            .get_or_create(&StageLabels {
                stage: stage.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn set_approvals(&self, state: &str, n: usize) {
        self.approvals
            .get_or_create(&StateLabels {
                state: state.to_owned(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_spill_backlog(&self, n: usize) {
        self.spill_backlog.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_store_up(&self, up: bool) {
        self.store_up.set(i64::from(up));
    }

    pub fn gateway_connected(&self) {
        self.gateway_connects.inc();
    }

    /// Gateway sessions started since the process began.
    pub fn gateway_sessions(&self) -> u64 {
        self.gateway_connects.get()
    }

    /// The Prometheus text format (OpenMetrics flavour prometheus-client writes).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!("metrics not rendered: {e}");
        }
        out
    }

    /// How many commands ended as `command` with `outcome` (for tests and readiness).
    pub fn commands_ended(&self, command: &str, outcome: &str) -> u64 {
        self.commands
            .get_or_create(&CommandLabels {
                command: command.to_owned(),
                outcome: outcome.to_owned(),
            })
            .get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_counted_by_name_and_outcome_and_rendered_in_the_text_format() {
        let m = Metrics::new();
        m.command("status", "ran", Duration::from_millis(3));
        m.command("status", "ran", Duration::from_millis(4));
        m.command("restart", "denied", Duration::from_millis(1));
        m.set_spill_backlog(2);
        let text = m.render();
        assert!(
            text.contains(r#"container_ops_commands_total{command="status",outcome="ran"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"container_ops_commands_total{command="restart",outcome="denied"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("container_ops_audit_spill_backlog 2"),
            "{text}"
        );
        assert!(
            text.contains(r#"container_ops_stage_seconds_count{stage="total"} 3"#),
            "{text}"
        );
        assert_eq!(m.commands_ended("status", "ran"), 2);
    }
}
