//! S3 (MinIO) probe: bucket exists, the marker object answers, a few keys list; static credentials only.

use std::time::{Duration, Instant};

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::core::platform::S3Target;

use super::{Facts, Observed, ProbeStatus};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct S3Facts {
    pub endpoint: String,
    pub bucket: String,
    /// None when the server did not answer HeadBucket with a status.
    pub bucket_exists: Option<bool>,
    pub bucket_status: Option<u16>,
    pub probe_key: Option<String>,
    /// (status, size) of HEAD on the probe key.
    pub probe_object: Option<(u16, Option<i64>)>,
    pub sample_keys: Vec<String>,
    pub latency_ms: u128,
}

/// Metadata of one object (storage stat / check).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    pub key: String,
    pub status: u16,
    pub size: Option<i64>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

pub struct S3Probe {
    client: aws_sdk_s3::Client,
    pub bucket: String,
    pub endpoint: String,
    pub probe_key: Option<String>,
    /// The one-shot job that creates the bucket, named in advice when it is missing.
    pub init_job: Option<String>,
}

impl S3Probe {
    /// The client is built from explicit endpoint, region and static credentials: the AWS
    /// default chain is never consulted, so no request stalls on the EC2 metadata service.
    pub fn new(t: &S3Target, deadline: Duration) -> Self {
        let creds = Credentials::new(
            t.access_key.clone(),
            t.secret_key.expose().to_string(),
            None,
            None,
            "container-ops-platform-config",
        );
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&t.endpoint)
            .region(Region::new(t.region.clone()))
            .credentials_provider(creds)
            .force_path_style(t.path_style)
            .http_client(http)
            // A probe reports what it sees now; retries with backoff would hide it and blow the deadline.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(deadline)
                    .operation_timeout(deadline)
                    .build(),
            )
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket: t.bucket.clone(),
            endpoint: t.endpoint.clone(),
            probe_key: t.probe_key.clone(),
            init_job: t.init_job.clone(),
        }
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// HeadBucket: Some(true) 2xx, Some(false) 404, Err when no HTTP answer or another status.
    pub async fn bucket_exists(&self) -> Result<(bool, u16), String> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok((true, 200)),
            Err(e) => match status_of(&e) {
                Some(404) => Ok((false, 404)),
                _ => Err(format!("HeadBucket {}: {}", self.bucket, describe(&e))),
            },
        }
    }

    pub async fn stat(&self, key: &str) -> Result<ObjectInfo, String> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(ObjectInfo {
                key: key.to_string(),
                status: 200,
                size: o.content_length(),
                etag: o.e_tag().map(str::to_string),
                last_modified: o.last_modified().map(|t| t.to_string()),
            }),
            Err(e) => match status_of(&e) {
                Some(s @ (403 | 404)) => Ok(ObjectInfo {
                    key: key.to_string(),
                    status: s,
                    size: None,
                    etag: None,
                    last_modified: None,
                }),
                _ => Err(format!("HeadObject {key}: {}", describe(&e))),
            },
        }
    }

    /// Up to `max` keys under `prefix`, and whether there were more.
    pub async fn list(
        &self,
        prefix: Option<&str>,
        max: i32,
    ) -> Result<(Vec<String>, bool), String> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .set_prefix(prefix.map(str::to_string))
            .max_keys(max)
            .send()
            .await
            .map_err(|e| format!("ListObjectsV2 {}: {}", self.bucket, describe(&e)))?;
        let keys = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        Ok((keys, out.is_truncated().unwrap_or(false)))
    }

    pub async fn buckets(&self) -> Result<Vec<(String, Option<String>)>, String> {
        let out = self
            .client
            .list_buckets()
            .send()
            .await
            .map_err(|e| format!("ListBuckets: {}", describe(&e)))?;
        Ok(out
            .buckets()
            .iter()
            .map(|b| {
                (
                    b.name().unwrap_or_default().to_string(),
                    b.creation_date().map(|d| d.to_string()),
                )
            })
            .collect())
    }

    pub async fn probe(&self) -> Result<Observed, String> {
        let started = Instant::now();
        let mut facts = S3Facts {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            probe_key: self.probe_key.clone(),
            ..Default::default()
        };
        let (exists, status) = self.bucket_exists().await?;
        facts.bucket_exists = Some(exists);
        facts.bucket_status = Some(status);
        let mut evidence = Vec::new();
        if !exists {
            evidence.push(format!(
                "HeadBucket {} on {} answered HTTP {status} (bucket does not exist)",
                self.bucket, self.endpoint
            ));
            facts.latency_ms = started.elapsed().as_millis();
            return Ok(Observed::new(ProbeStatus::Fail, evidence, Facts::S3(facts)));
        }
        let key_check = async {
            match &self.probe_key {
                Some(k) => Some(self.stat(k).await),
                None => None,
            }
        };
        let (obj, listing) = futures::join!(key_check, self.list(None, 5));
        let mut status = ProbeStatus::Pass;
        match obj {
            Some(Ok(o)) => {
                if o.status != 200 {
                    status = ProbeStatus::Warn;
                    evidence.push(format!(
                        "HEAD {}/{} answered HTTP {}",
                        self.bucket, o.key, o.status
                    ));
                }
                facts.probe_object = Some((o.status, o.size));
            }
            Some(Err(e)) => {
                status = ProbeStatus::Warn;
                evidence.push(e);
            }
            None => {}
        }
        match listing {
            Ok((keys, _)) => facts.sample_keys = keys,
            Err(e) => {
                status = ProbeStatus::Warn;
                evidence.push(e);
            }
        }
        facts.latency_ms = started.elapsed().as_millis();
        evidence.insert(
            0,
            format!(
                "bucket {} exists on {} ({} ms)",
                self.bucket, self.endpoint, facts.latency_ms
            ),
        );
        Ok(Observed::new(status, evidence, Facts::S3(facts)))
    }
}

fn status_of<E, R>(e: &SdkError<E, R>) -> Option<u16>
where
    R: HttpStatus,
{
    e.raw_response().map(HttpStatus::status_u16)
}

/// The status of whatever response type the SDK hands back.
pub trait HttpStatus {
    fn status_u16(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_u16(&self) -> u16 {
        self.status().as_u16()
    }
}

fn describe<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    match (status, e.code()) {
        (Some(s), Some(code)) => format!("HTTP {s} {code}"),
        (Some(s), None) => format!("HTTP {s}"),
        _ => {
            // No HTTP answer: dispatch/timeout failure; the context chain names the cause.
            let full = DisplayErrorContext(e).to_string();
            full.chars().take(300).collect()
        }
    }
}

/// An object key from a user: bounded, printable, not starting with `/`.
/// An object key of the configured bucket: no leading `/` and no `.` or `..` segment, which a
/// path-style request would resolve to another bucket or object.
pub fn parse_key(s: &str) -> Result<String, String> {
    let dot_segment = s.split('/').any(|seg| seg == "." || seg == "..");
    if s.is_empty()
        || s.len() > 1024
        || s.starts_with('/')
        || dot_segment
        || s.chars().any(char::is_control)
    {
        return Err(format!(
            "{} is not a valid object key: 1 to 1024 printable characters, not starting with `/`, no `.` or `..` segment",
            crate::core::report::code(s)
        ));
    }
    Ok(s.to_string())
}
