//! The seed's Container Operations Report as data, and its Markdown form.

use std::fmt::Write as _;

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
    /// Markdown with exactly the seed's "Output Format" headings, in its order.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "## Container Operations Report\n");
        let _ = writeln!(md, "### Issue: {}\n", self.issue);

        let _ = writeln!(md, "### Services Affected:");
        if self.affected.is_empty() {
            let _ = writeln!(md, "- none - all services running and healthy");
        }
        for a in &self.affected {
            let _ = writeln!(md, "- {} - {}", a.service, a.status);
        }

        let _ = writeln!(md, "\n### Root Cause:");
        if self.root_causes.is_empty() {
            let _ = writeln!(
                md,
                "No fault found: every probe answered within its deadline and nothing is down, unhealthy or failing."
            );
        }
        for (i, rc) in self.root_causes.iter().enumerate() {
            if i > 0 {
                md.push('\n');
            }
            let lead = if rc.established {
                String::new()
            } else {
                "Cause not established: ".to_string()
            };
            let _ = writeln!(md, "{lead}{}", rc.summary);
            for e in &rc.evidence {
                let _ = writeln!(md, "> {}", one_line(e));
            }
        }
        if !self.timed_out.is_empty() {
            let _ = writeln!(
                md,
                "\nProbes that timed out (no answer within their deadline): {}.",
                self.timed_out.join("; ")
            );
        }
        if !self.observations.is_empty() {
            let _ = writeln!(md, "\nObservations (not faults):");
            for o in &self.observations {
                let _ = writeln!(md, "- {}", one_line(o));
            }
        }

        let _ = writeln!(md, "\n### Resolution Steps:");
        for (i, s) in self.steps.iter().enumerate() {
            let _ = write!(md, "{}. {}", i + 1, s.action);
            match (&s.bot, &s.compose) {
                (Some(b), Some(c)) => {
                    let _ = write!(md, ": `{b}` (`{c}`)");
                }
                (Some(b), None) => {
                    let _ = write!(md, ": `{b}`");
                }
                (None, Some(c)) => {
                    let _ = write!(md, ": `{c}`");
                }
                (None, None) => {}
            }
            md.push('\n');
        }

        let _ = writeln!(md, "\n### Verification:\n```bash");
        for v in &self.verification {
            let _ = writeln!(md, "{v}");
        }
        let _ = writeln!(md, "```");

        let _ = writeln!(md, "\n### Prevention:");
        for p in &self.prevention {
            let _ = writeln!(md, "- {p}");
        }

        let _ = writeln!(md, "\n### Related Services to Monitor:");
        if self.related.is_empty() {
            let _ = writeln!(md, "- none");
        }
        for r in &self.related {
            let _ = writeln!(md, "- {r}");
        }
        md
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

/// Evidence is quoted inline: a log line must not break the Markdown structure.
fn one_line(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    flat.replace("```", "'''")
}
