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

/// Most of a response body the bot reads: a health payload or a page of workflows is far
/// smaller, and a service that answers with gigabytes must not take the bot's memory.
pub const MAX_BODY: usize = 1024 * 1024;

/// The body as text, reading no more than `max` bytes (the rest is left unread).
pub async fn body_within(mut resp: reqwest::Response, max: usize) -> reqwest::Result<String> {
    let mut body = Vec::new();
    while body.len() < max {
        let Some(chunk) = resp.chunk().await? else {
            break;
        };
        let room = max - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The HTTP client of the health probes and the Temporal views.
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
        let body = body_within(resp, MAX_BODY)
            .await
            .map_err(|e| describe(url, &e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_huge_body_is_read_only_up_to_the_bound() {
        // 64 MiB of body, streamed: the probe keeps the first MiB and stops reading.
        let chunk = axum::body::Bytes::from(vec![b'x'; 1024 * 1024]);
        let app = axum::Router::new().route(
            "/health",
            axum::routing::get(move || {
                let chunk = chunk.clone();
                async move {
                    let stream = futures::stream::iter(
                        (0..64).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                    );
                    axum::body::Body::from_stream(stream)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let probe = HttpProbe::new().unwrap();
        let (status, _, body) = probe.get(&format!("http://{addr}/health")).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body.len(), MAX_BODY);
        server.abort();
    }
}
