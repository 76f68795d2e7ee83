//! HTTP health probe: status against the expected one, latency, and a header worth quoting.

use std::time::Instant;

use crate::core::platform::HttpEndpoint;

use super::{Facts, Observed, ProbeStatus};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpFacts {
    pub name: String,
    pub url: String,
    pub expected_status: u16,
    pub status: Option<u16>,
    pub latency_ms: u128,
    /// (header name, value) when the endpoint config asks for one and the response has it.
    pub header: Option<(String, String)>,
    /// The first bytes of the body, for quoting a health payload.
    pub body_snippet: String,
}

pub struct HttpProbe {
    client: reqwest::Client,
}

impl HttpProbe {
    pub fn new() -> Result<Self, String> {
        // No pooled keep-alive: a probe must see the endpoint as a new caller does.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("container-ops-probe")
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(Self { client })
    }

    pub async fn get(
        &self,
        url: &str,
    ) -> Result<(u16, reqwest::header::HeaderMap, String), String> {
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| describe(url, &e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.map_err(|e| describe(url, &e))?;
        Ok((status, headers, body))
    }

    pub async fn probe(&self, ep: &HttpEndpoint) -> Result<Observed, String> {
        let started = Instant::now();
        let (status, headers, body) = self.get(&ep.url).await?;
        let latency_ms = started.elapsed().as_millis();
        let header = ep.report_header.as_ref().and_then(|h| {
            headers
                .get(h.as_str())
                .and_then(|v| v.to_str().ok())
                .map(|v| (h.clone(), v.to_string()))
        });
        let snippet: String = body.trim().chars().take(200).collect();
        let ok = status == ep.expected_status;
        let mut line = format!("GET {} → {status} in {latency_ms} ms", ep.url);
        if let Some((h, v)) = &header {
            line.push_str(&format!(" ({h}: {v})"));
        }
        let mut evidence = vec![line];
        if !ok {
            evidence[0].push_str(&format!(", expected {}", ep.expected_status));
            if !snippet.is_empty() {
                evidence.push(format!("body: {snippet}"));
            }
        }
        Ok(Observed::new(
            if ok {
                ProbeStatus::Pass
            } else {
                ProbeStatus::Fail
            },
            evidence,
            Facts::Http(HttpFacts {
                name: ep.name.clone(),
                url: ep.url.clone(),
                expected_status: ep.expected_status,
                status: Some(status),
                latency_ms,
                header,
                body_snippet: snippet,
            }),
        ))
    }
}

fn describe(url: &str, e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut msg = format!("GET {url}: ");
    msg.push_str(if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    });
    let mut src = e.source();
    let mut last = None;
    while let Some(s) = src {
        last = Some(s.to_string());
        src = s.source();
    }
    if let Some(l) = last {
        msg.push_str(&format!(" ({l})"));
    }
    msg
}
