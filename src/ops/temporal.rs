//! Terminating a Temporal workflow over the HTTP API, with the workflow id checked at the edge.

use std::fmt;
use std::time::Duration;

use crate::core::platform::TemporalTarget;
use crate::core::report::code;
use crate::core::types::DnsName;
use crate::ops::diagnose::probes::http::HttpProbe;
use crate::ops::diagnose::views::temporal_workflows;

/// Longest workflow id accepted; Temporal's own limit is far higher, ours keeps URLs and cards short.
const MAX_ID_LEN: usize = 200;
/// A terminate call that has not answered by then is reported, not waited on.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A workflow id as this bot accepts it: 1–200 of `A-Z a-z 0-9 . _ : -`, not `.`/`..`, not
/// starting with `-`. It goes into a URL path, so nothing that could change the path gets in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowId(String);

impl WorkflowId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let shape = "a workflow id is 1–200 characters of letters, digits, `.`, `_`, `:` and `-` (e.g. `wf-0001`); `/temporal` lists them";
        if s.is_empty() || s.len() > MAX_ID_LEN {
            return Err(format!("`{}` is not a workflow id: {shape}", shorten(s)));
        }
        if s == "." || s == ".." || s.starts_with('-') {
            return Err(format!("{} is not a workflow id: {shape}", code(s)));
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(format!(
                "`{}` is not a workflow id (it contains `{}`): {shape}",
                shorten(s),
                bad.escape_default()
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A workflow as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    pub id: String,
    pub kind: String,
    pub status: String,
}

/// Why a workflow could not be looked up or terminated, kept apart so the caller can say what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemporalError {
    NotFound(WorkflowId),
    Unavailable(String),
}

impl fmt::Display for TemporalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemporalError::NotFound(id) => write!(
                f,
                "no workflow `{id}` in Temporal; `/temporal` lists the workflows and their status"
            ),
            TemporalError::Unavailable(m) => write!(f, "Temporal did not answer: {m}"),
        }
    }
}

fn namespace(t: &TemporalTarget) -> Result<DnsName, TemporalError> {
    DnsName::parse(&t.namespace)
        .map_err(|e| TemporalError::Unavailable(format!("temporal namespace: {e}")))
}

/// Finds one workflow in the namespace's list.
pub async fn find(t: &TemporalTarget, id: &WorkflowId) -> Result<Workflow, TemporalError> {
    let http = HttpProbe::new().map_err(TemporalError::Unavailable)?;
    let table = tokio::time::timeout(CALL_TIMEOUT, temporal_workflows(&http, t))
        .await
        .map_err(|_| TemporalError::Unavailable(format!("no answer within {CALL_TIMEOUT:?}")))?
        .map_err(TemporalError::Unavailable)?;
    table
        .rows
        .into_iter()
        .find(|r| r.first().map(String::as_str) == Some(id.as_str()))
        .map(|r| Workflow {
            id: r[0].clone(),
            kind: r.get(1).cloned().unwrap_or_default(),
            status: r.get(2).cloned().unwrap_or_default(),
        })
        .ok_or_else(|| TemporalError::NotFound(id.clone()))
}

/// `POST {url}/api/v1/namespaces/{ns}/workflows/{id}/terminate`; returns the status Temporal reports after.
pub async fn terminate(t: &TemporalTarget, id: &WorkflowId) -> Result<String, TemporalError> {
    let ns = namespace(t)?;
    let url = format!(
        "{}/api/v1/namespaces/{}/workflows/{}/terminate",
        t.url.trim_end_matches('/'),
        ns.as_str(),
        id.as_str()
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(CALL_TIMEOUT)
        .user_agent("container-ops")
        .build()
        .map_err(|e| TemporalError::Unavailable(format!("http client: {e}")))?;
    let resp = client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"reason":"terminated through container-ops after approval"}"#)
        .send()
        .await
        .map_err(|e| TemporalError::Unavailable(format!("POST {url}: {e}")))?;
    let status = resp.status().as_u16();
    let body = crate::ops::diagnose::probes::http::body_within(resp, 64 * 1024)
        .await
        .unwrap_or_default();
    match status {
        200..=299 => Ok(serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("status")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| "Terminated".into())),
        404 => Err(TemporalError::NotFound(id.clone())),
        s => Err(TemporalError::Unavailable(format!(
            "POST {url} answered HTTP {s}: {}",
            body.chars().take(200).collect::<String>()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_workflow_ids_are_accepted() {
        for ok in ["wf-0001", "order:42", "SyncArtifacts_2026.11.30", "a"] {
            assert_eq!(WorkflowId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn ids_that_could_change_the_url_or_a_shell_are_refused_with_the_shape() {
        let long = "x".repeat(201);
        for bad in [
            "",
            "..",
            ".",
            "wf/../../x",
            "wf-1/terminate",
            "wf 1",
            "wf-1?x=1",
            "wf%2f",
            "-rf",
            "wf;rm",
            "wf\n1",
            long.as_str(),
        ] {
            let e = WorkflowId::parse(bad).unwrap_err();
            assert!(
                e.contains("workflow id") && e.contains("/temporal"),
                "{bad:?}: {e}"
            );
        }
    }
}
