//! The one Engine call bollard 0.21 cannot decode on API 1.41: `GET /system/df`.
//!
//! bollard 0.21's `SystemDataUsageResponse` has the API 1.52 shape (`ImageUsage`,
//! `ContainerUsage`, ...); a 1.41 daemon answers `LayersSize`, `Images`, `Containers`,
//! `Volumes`, `BuildCache`, and since every field is optional bollard silently returns
//! all zeros. bollard exposes no raw request, so this module speaks HTTP/1.0 itself
//! (HTTP/1.0: the daemon closes the connection after the body, no chunking to undo).

use std::path::PathBuf;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::core::engine::DiskUsage;

/// Where the daemon listens, as far as a raw request needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`
    Tcp(String),
}

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// `endpoint` as given by the operator, else `DOCKER_HOST`, else the local socket.
pub fn parse_endpoint(
    endpoint: Option<&str>,
    docker_host: Option<&str>,
) -> Result<Endpoint, String> {
    let raw = endpoint
        .or(docker_host)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let Some(raw) = raw else {
        return Ok(Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET)));
    };
    if let Some(path) = raw.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(format!("`{raw}` names no socket path"));
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    for scheme in ["tcp://", "http://"] {
        if let Some(rest) = raw.strip_prefix(scheme) {
            let hostport = rest.trim_end_matches('/');
            if hostport.is_empty() || hostport.contains('/') {
                return Err(format!("`{raw}` is not `{scheme}host:port`"));
            }
            let hostport = if hostport
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                hostport.to_string()
            } else {
                format!("{hostport}:2375")
            };
            return Ok(Endpoint::Tcp(hostport));
        }
    }
    Err(format!(
        "unsupported Docker endpoint `{raw}`: use unix:///path/to/docker.sock, tcp://host:port or http://host:port"
    ))
}

/// Bodies larger than this are refused rather than buffered.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// `GET path` over a fresh connection; returns the status code and the body.
pub async fn get(endpoint: &Endpoint, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    match endpoint {
        Endpoint::Unix(p) => {
            let s = tokio::net::UnixStream::connect(p).await?;
            exchange(s, path).await
        }
        Endpoint::Tcp(hp) => {
            let s = tokio::net::TcpStream::connect(hp.as_str()).await?;
            exchange(s, path).await
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    path: &str,
) -> std::io::Result<(u16, Vec<u8>)> {
    let req = format!("GET {path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: container-ops\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    (&mut s)
        .take(MAX_BODY as u64 + 64 * 1024)
        .read_to_end(&mut buf)
        .await?;
    parse_response(&buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Splits a complete HTTP/1.x response into status and body, undoing chunked encoding.
pub fn parse_response(buf: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("response has no header end")?;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let body = &buf[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_txt = String::from_utf8_lossy(&b[..eol]);
        let size_txt = size_txt.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_txt, 16)
            .map_err(|_| format!("bad chunk size `{size_txt}`"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or_default();
    }
}

/// Both shapes of `/system/df`: API ≤ 1.51 (lists) and 1.52+ (totals).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DfResponse {
    layers_size: Option<i64>,
    images: Option<Vec<DfImage>>,
    containers: Option<Vec<DfContainer>>,
    volumes: Option<Vec<DfVolume>>,
    build_cache: Option<Vec<DfBuildCache>>,
    image_usage: Option<DfTotal>,
    container_usage: Option<DfTotal>,
    volume_usage: Option<DfTotal>,
    build_cache_usage: Option<DfTotal>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DfImage {
    size: i64,
    shared_size: i64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DfContainer {
    size_rw: i64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DfVolume {
    usage_data: Option<DfVolumeUsage>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DfVolumeUsage {
    size: i64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DfBuildCache {
    size: i64,
    shared: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DfTotal {
    total_size: i64,
}

/// Sums a `/system/df` body the way `docker system df` does; `-1` ("not computed") counts 0.
pub fn parse_df(body: &[u8]) -> Result<DiskUsage, String> {
    let r: DfResponse =
        serde_json::from_slice(body).map_err(|e| format!("unexpected /system/df answer: {e}"))?;
    let pos = |v: i64| v.max(0);
    let images_size = match (&r.image_usage, r.layers_size) {
        (Some(t), _) => pos(t.total_size),
        (None, Some(layers)) => pos(layers),
        // Without LayersSize, shared layers would count once per image.
        (None, None) => r
            .images
            .iter()
            .flatten()
            .map(|i| pos(i.size - i.shared_size.max(0)))
            .sum(),
    };
    let containers_size = match &r.container_usage {
        Some(t) => pos(t.total_size),
        None => r.containers.iter().flatten().map(|c| pos(c.size_rw)).sum(),
    };
    let volumes_size = match &r.volume_usage {
        Some(t) => pos(t.total_size),
        None => r
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.usage_data.as_ref())
            .map(|u| pos(u.size))
            .sum(),
    };
    let build_cache_size = match &r.build_cache_usage {
        Some(t) => pos(t.total_size),
        None => r
            .build_cache
            .iter()
            .flatten()
            .filter(|b| !b.shared)
            .map(|b| pos(b.size))
            .sum(),
    };
    Ok(DiskUsage {
        images_size,
        containers_size,
        volumes_size,
        build_cache_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_default_to_the_local_socket_and_accept_unix_tcp_and_http() {
        assert_eq!(
            parse_endpoint(None, None),
            Ok(Endpoint::Unix(DEFAULT_SOCKET.into()))
        );
        assert_eq!(
            parse_endpoint(None, Some("unix:///run/user/1000/docker.sock")),
            Ok(Endpoint::Unix("/run/user/1000/docker.sock".into()))
        );
        assert_eq!(
            parse_endpoint(Some("tcp://10.0.0.5:2376"), Some("unix:///ignored")),
            Ok(Endpoint::Tcp("10.0.0.5:2376".into()))
        );
        assert_eq!(
            parse_endpoint(Some("http://dockerhost/"), None),
            Ok(Endpoint::Tcp("dockerhost:2375".into()))
        );
    }

    #[test]
    fn unsupported_endpoints_are_refused_with_the_accepted_forms() {
        let e = parse_endpoint(Some("ssh://me@host"), None).unwrap_err();
        assert!(e.contains("unix://"), "{e}");
        assert!(parse_endpoint(Some("unix://"), None).is_err());
        assert!(parse_endpoint(Some("tcp://host:2375/path"), None).is_err());
    }

    #[test]
    fn an_http_1_0_response_is_split_into_status_and_body() {
        let r = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}";
        assert_eq!(parse_response(r), Ok((200, b"{\"a\":1}".to_vec())));
    }

    #[test]
    fn a_chunked_response_is_reassembled() {
        let r = b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"me\r\n9\r\nssage\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(r), Ok((500, b"{\"message\":1}".to_vec())));
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
        assert!(parse_response(b"garbage").is_err());
    }

    /// Shape of a Docker 20.10 (API 1.41) answer, trimmed to two of each.
    const DF_1_41: &str = r#"{
      "LayersSize": 1092588,
      "Images": [
        {"Id":"sha256:a","ParentId":"","RepoTags":["riftwing-base:bookworm"],"Created":1,"Size":700000000,"SharedSize":650000000,"VirtualSize":700000000,"Labels":{},"Containers":3},
        {"Id":"sha256:b","ParentId":"","RepoTags":["riftwing-api:dev"],"Created":1,"Size":660000000,"SharedSize":650000000,"VirtualSize":660000000,"Labels":{},"Containers":2}
      ],
      "Containers": [
        {"Id":"c1","Names":["/riftwing_api-1_1"],"SizeRw":1000,"SizeRootFs":700001000},
        {"Id":"c2","Names":["/riftwing_redis_1"],"SizeRw":24}
      ],
      "Volumes": [
        {"Name":"riftwing_pgdata","Driver":"local","Mountpoint":"/v","Labels":{},"Scope":"local","Options":{},"UsageData":{"Size":50000000,"RefCount":1}},
        {"Name":"other","Driver":"local","Mountpoint":"/v2","Labels":null,"Scope":"local","Options":null,"UsageData":{"Size":-1,"RefCount":0}}
      ],
      "BuildCache": [
        {"ID":"x","Type":"regular","Size":300,"Shared":false,"InUse":false},
        {"ID":"y","Type":"regular","Size":5000,"Shared":true,"InUse":false}
      ]
    }"#;

    #[test]
    fn api_1_41_disk_usage_is_summed_like_docker_system_df() {
        let d = parse_df(DF_1_41.as_bytes()).unwrap();
        assert_eq!(
            d,
            DiskUsage {
                images_size: 1_092_588,
                containers_size: 1024,
                volumes_size: 50_000_000,
                build_cache_size: 300,
            }
        );
    }

    #[test]
    fn a_captured_docker_20_10_disk_usage_answer_is_summed() {
        // Captured from this machine's daemon (containers trimmed to three).
        let body = include_str!("testdata/df_api_1_41.json");
        let d = parse_df(body.as_bytes()).unwrap();
        assert_eq!(
            d,
            DiskUsage {
                images_size: 590_421_693,
                containers_size: 3072,
                volumes_size: 72_572_388,
                build_cache_size: 0,
            }
        );
    }

    #[test]
    fn bollard_0_21_cannot_read_the_api_1_41_disk_usage_shape() {
        // Documents why parse_df exists: bollard's own model decodes a 1.41 answer as empty.
        let r: bollard::models::SystemDataUsageResponse = serde_json::from_str(DF_1_41).unwrap();
        assert!(r.image_usage.is_none() && r.container_usage.is_none() && r.volume_usage.is_none());
    }

    #[test]
    fn api_1_52_disk_usage_totals_are_read_too() {
        let body = r#"{"ImageUsage":{"TotalSize":10},"ContainerUsage":{"TotalSize":20},"VolumeUsage":{"TotalSize":30},"BuildCacheUsage":{"TotalSize":40}}"#;
        let d = parse_df(body.as_bytes()).unwrap();
        assert_eq!(
            (
                d.images_size,
                d.containers_size,
                d.volumes_size,
                d.build_cache_size
            ),
            (10, 20, 30, 40)
        );
    }

    #[test]
    fn a_non_json_disk_usage_answer_is_an_error_not_zeros() {
        assert!(parse_df(b"<html>").is_err());
    }
}
