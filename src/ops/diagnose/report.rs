//! The seed's Container Operations Report as data, and its Markdown form.

use crate::core::report::{Block, render_blocks};

/// One line of "Services Affected".
#[derive(Debug, Clone, PartialEq)]
pub struct AffectedService {
    pub service: String,
    pub status: String,
}

/// One established (or explicitly not established) cause.
#[derive(Debug, Clone, PartialEq)]
pub struct RootCause {
    pub service: String,
    /// What is wrong and why, in one or two sentences.
    pub summary: String,
    /// Quoted observations that support it.
    pub evidence: Vec<String>,
    /// False when the evidence shows a symptom but not its cause.
    pub established: bool,
}

/// A numbered resolution step: what to do, as a bot command and as the Compose line.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub action: String,
    pub bot: Option<String>,
    pub compose: Option<String>,
}

/// The seed's Container Operations Report, as data.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OpsReport {
    pub issue: String,
    pub healthy: bool,
    pub affected: Vec<AffectedService>,
    pub root_causes: Vec<RootCause>,
    /// Things worth knowing that are not faults (error lines in healthy logs, lock waits, ...).
    pub observations: Vec<String>,
    /// Probes that got no answer within their deadline, as `probe target (deadline)`.
    pub timed_out: Vec<String>,
    pub steps: Vec<Step>,
    /// Shell lines for the ```bash block; bot equivalents go in as `#` comments.
    pub verification: Vec<String>,
    pub prevention: Vec<String>,
    pub related: Vec<String>,
}

impl OpsReport {
    /// The seed's "Output Format" as report blocks: exactly its headings, in its order.
    pub fn blocks(&self) -> Vec<Block> {
        let h = |text: &str| Block::Heading {
            level: 3,
            text: text.to_owned(),
        };
        let list = |items: Vec<String>| Block::List {
            ordered: false,
            items,
        };
        let mut b = vec![
            Block::Heading {
                level: 2,
                text: "Container Operations Report".into(),
            },
            h(&format!("Issue: {}", self.issue)),
            h("Services Affected:"),
        ];
        b.push(list(if self.affected.is_empty() {
            vec!["none - all services running and healthy".into()]
        } else {
            self.affected
                .iter()
                .map(|a| format!("{} - {}", a.service, a.status))
                .collect()
        }));
        b.push(h("Root Cause:"));
        if self.root_causes.is_empty() {
            b.push(Block::Text(
                "No fault found: every probe answered within its deadline and nothing is down, unhealthy or failing.".into(),
            ));
        }
        for rc in &self.root_causes {
            let lead = if rc.established {
                ""
            } else {
                "Cause not established: "
            };
            b.push(Block::Text(format!("{lead}{}", rc.summary)));
            if !rc.evidence.is_empty() {
                b.push(Block::Quote(rc.evidence.clone()));
            }
        }
        if !self.timed_out.is_empty() {
            b.push(Block::Text(format!(
                "Probes that timed out (no answer within their deadline): {}.",
                self.timed_out.join("; ")
            )));
        }
        if !self.observations.is_empty() {
            b.push(Block::Text("Observations (not faults):".into()));
            b.push(list(self.observations.clone()));
        }
        b.push(h("Resolution Steps:"));
        b.push(Block::List {
            ordered: true,
            items: self
                .steps
                .iter()
                .map(|s| match (&s.bot, &s.compose) {
                    (Some(bot), Some(c)) => format!("{}: `{bot}` (`{c}`)", s.action),
                    (Some(bot), None) => format!("{}: `{bot}`", s.action),
                    (None, Some(c)) => format!("{}: `{c}`", s.action),
                    (None, None) => s.action.clone(),
                })
                .collect(),
        });
        b.push(h("Verification:"));
        b.push(Block::Code {
            name: "verification.sh".into(),
            lang: "bash".into(),
            text: self.verification.join("\n"),
        });
        b.push(h("Prevention:"));
        b.push(list(self.prevention.clone()));
        b.push(h("Related Services to Monitor:"));
        b.push(list(if self.related.is_empty() {
            vec!["none".into()]
        } else {
            self.related.clone()
        }));
        b
    }

    /// The report as Markdown, rendered from its blocks like every other report.
    pub fn to_markdown(&self) -> String {
        render_blocks(&self.blocks())
    }

    pub fn root_services(&self) -> Vec<&str> {
        self.root_causes
            .iter()
            .map(|r| r.service.as_str())
            .collect()
    }

    pub fn affected_services(&self) -> Vec<&str> {
        self.affected.iter().map(|a| a.service.as_str()).collect()
    }
}
