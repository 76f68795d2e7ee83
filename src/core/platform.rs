//! How the bot reaches the platform's dependencies from its own host, and how services depend on each other.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// The replica's long-running services (init jobs excluded), as `deploy/dev/docker-compose.yml`
/// defines them.
pub const RIFTWING_LONG_RUNNING: &[&str] = &[
    "postgres",
    "redis",
    "minio",
    "temporal",
    "api-1",
    "api-2",
    "api-gateway",
    "worker-1",
    "worker-2",
    "ai-gateway",
    "mcp-server",
    "console",
    "db-backup",
];

/// A credential: deserialised from config, usable by the probes, never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear value, for the one place that hands it to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::core::redact::MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::core::redact::MASK)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTarget {
    /// The Compose service that runs it, so probe results land on the right service.
    #[serde(default = "default_postgres_service")]
    pub service: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub password: Secret,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTarget {
    #[serde(default = "default_redis_service")]
    pub service: String,
    /// `redis://host:port[/db]` without credentials; the password, if any, goes in `password`.
    pub url: String,
    #[serde(default)]
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Target {
    #[serde(default = "default_s3_service")]
    pub service: String,
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: Secret,
    #[serde(default = "yes")]
    pub path_style: bool,
    /// An object that should always exist (minio-init writes `.keep`); HEAD-ed by the probe.
    #[serde(default)]
    pub probe_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpEndpoint {
    pub name: String,
    /// The Compose service that answers this endpoint.
    pub service: String,
    pub url: String,
    #[serde(default = "default_expected_status")]
    pub expected_status: u16,
    /// A response header worth quoting in the report (e.g. `X-Upstream-Addr`).
    #[serde(default)]
    pub report_header: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemporalTarget {
    #[serde(default = "default_temporal_service")]
    pub service: String,
    /// Base URL of the HTTP API (the replica's stand-in serves `/api/v1/namespaces/default/workflows`).
    pub url: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

/// A mount inside a service whose fullness `df -P` checks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeCheck {
    pub service: String,
    pub path: String,
    #[serde(default)]
    pub volume: Option<String>,
    #[serde(default = "default_warn_percent")]
    pub warn_percent: u8,
}

/// Per-probe deadlines; a hung dependency costs its deadline, never more.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Deadlines {
    pub inventory_ms: u64,
    pub container_ms: u64,
    pub postgres_ms: u64,
    pub redis_ms: u64,
    pub s3_ms: u64,
    pub http_ms: u64,
    pub exec_ms: u64,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            inventory_ms: 3000,
            container_ms: 3000,
            postgres_ms: 3000,
            redis_ms: 3000,
            s3_ms: 3000,
            http_ms: 3000,
            exec_ms: 3000,
        }
    }
}

impl Deadlines {
    pub fn all(ms: u64) -> Self {
        Self {
            inventory_ms: ms,
            container_ms: ms,
            postgres_ms: ms,
            redis_ms: ms,
            s3_ms: ms,
            http_ms: ms,
            exec_ms: ms,
        }
    }
    pub fn get(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// The Compose network every service must be on; default `<project>_default`.
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub postgres: Option<PostgresTarget>,
    #[serde(default)]
    pub redis: Option<RedisTarget>,
    #[serde(default)]
    pub s3: Option<S3Target>,
    #[serde(default)]
    pub temporal: Option<TemporalTarget>,
    #[serde(default)]
    pub http: Vec<HttpEndpoint>,
    #[serde(default)]
    pub volumes: Vec<VolumeCheck>,
    /// Container ports of services, for `nc -z` checks from inside the network.
    #[serde(default)]
    pub ports: BTreeMap<String, u16>,
    /// Services that run once and exit 0 (init jobs): exited is their healthy state.
    #[serde(default)]
    pub one_shot: Vec<String>,
    /// service → services it needs (mirrors the Compose file's `depends_on`).
    #[serde(default)]
    pub depends_on: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub deadlines: Deadlines,
}

/// A problem in a platform file, with the file named.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct PlatformConfigError {
    pub file: String,
    pub message: String,
}

fn default_postgres_service() -> String {
    "postgres".into()
}
fn default_redis_service() -> String {
    "redis".into()
}
fn default_s3_service() -> String {
    "minio".into()
}
fn default_temporal_service() -> String {
    "temporal".into()
}
fn default_namespace() -> String {
    "default".into()
}
fn default_expected_status() -> u16 {
    200
}
fn default_warn_percent() -> u8 {
    90
}
fn yes() -> bool {
    true
}

/// Host ports of the replica, after the seed's environment variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSet {
    pub postgres: u16,
    pub redis: u16,
    pub minio: u16,
    pub api: u16,
    pub temporal: u16,
    pub ai_gateway: u16,
    pub mcp: u16,
    pub console: u16,
}

impl Default for PortSet {
    fn default() -> Self {
        Self {
            postgres: 5432,
            redis: 6379,
            minio: 9000,
            api: 3000,
            temporal: 7233,
            ai_gateway: 3338,
            mcp: 3337,
            console: 5173,
        }
    }
}

impl PortSet {
    /// Reads `POSTGRES_PORT`, `REDIS_PORT`, ... through `lookup`; a missing variable keeps the default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let d = Self::default();
        let get = |name: &str, default: u16| -> Result<u16, String> {
            match lookup(name) {
                None => Ok(default),
                Some(v) if v.trim().is_empty() => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name}={v} is not a port number")),
            }
        };
        Ok(Self {
            postgres: get("POSTGRES_PORT", d.postgres)?,
            redis: get("REDIS_PORT", d.redis)?,
            minio: get("MINIO_PORT", d.minio)?,
            api: get("API_PORT", d.api)?,
            temporal: get("TEMPORAL_PORT", d.temporal)?,
            ai_gateway: get("AI_GATEWAY_PORT", d.ai_gateway)?,
            mcp: get("MCP_PORT", d.mcp)?,
            console: get("CONSOLE_PORT", d.console)?,
        })
    }
}

impl PlatformConfig {
    /// The replica's layout with the seed's default ports (the same as `deploy/platform.toml`).
    pub fn riftwing_default() -> Self {
        Self::riftwing(PortSet::default())
    }

    /// The replica's layout on the given host ports (a second instance runs on shifted ports).
    pub fn riftwing(p: PortSet) -> Self {
        let deps = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut depends_on = BTreeMap::new();
        for (svc, d) in [
            ("minio-init", deps(&["minio"])),
            ("temporal", deps(&["postgres"])),
            ("temporal-init", deps(&["temporal"])),
            ("api-1", deps(&["postgres", "redis"])),
            ("api-2", deps(&["postgres", "redis"])),
            ("api-gateway", deps(&["api-1", "api-2"])),
            ("worker-1", deps(&["temporal", "minio-init"])),
            ("worker-2", deps(&["temporal", "minio-init"])),
            ("ai-gateway", deps(&["ai-gateway-init", "redis"])),
            ("ai-gateway-init", deps(&["postgres"])),
            ("console", deps(&["api-gateway"])),
            ("db-backup", deps(&["postgres"])),
        ] {
            depends_on.insert(svc.to_string(), d);
        }
        let mut groups = BTreeMap::new();
        groups.insert(
            "app".to_string(),
            deps(&["api-1", "api-2", "worker-1", "worker-2", "console"]),
        );
        groups.insert(
            "infra".to_string(),
            deps(&["postgres", "temporal", "redis", "minio"]),
        );
        let mut ports = BTreeMap::new();
        for (svc, port) in [
            ("postgres", 5432),
            ("redis", 6379),
            ("minio", 9000),
            ("temporal", 7233),
            ("api-1", 3000),
            ("api-2", 3000),
            ("api-gateway", 80),
            ("ai-gateway", 3338),
            ("mcp-server", 3337),
            ("console", 5173),
        ] {
            ports.insert(svc.to_string(), port);
        }
        let http =
            |name: &str, service: &str, port: u16, path: &str, header: Option<&str>| HttpEndpoint {
                name: name.into(),
                service: service.into(),
                url: format!("http://127.0.0.1:{port}{path}"),
                expected_status: 200,
                report_header: header.map(str::to_string),
            };
        Self {
            network: None,
            postgres: Some(PostgresTarget {
                service: "postgres".into(),
                host: "127.0.0.1".into(),
                port: p.postgres,
                user: "app".into(),
                database: "app".into(),
                password: Secret::new("app-secret-pw"),
            }),
            redis: Some(RedisTarget {
                service: "redis".into(),
                url: format!("redis://127.0.0.1:{}", p.redis),
                password: None,
            }),
            s3: Some(S3Target {
                service: "minio".into(),
                endpoint: format!("http://127.0.0.1:{}", p.minio),
                region: "us-east-1".into(),
                bucket: "rewst-artifacts".into(),
                access_key: "riftwing".into(),
                secret_key: Secret::new("riftwing-s3-secret-key"),
                path_style: true,
                probe_key: Some(".keep".into()),
            }),
            temporal: Some(TemporalTarget {
                service: "temporal".into(),
                url: format!("http://127.0.0.1:{}", p.temporal),
                namespace: "default".into(),
            }),
            http: vec![
                http(
                    "api",
                    "api-gateway",
                    p.api,
                    "/healthz",
                    Some("X-Upstream-Addr"),
                ),
                http("ai-gateway", "ai-gateway", p.ai_gateway, "/health", None),
                http("mcp", "mcp-server", p.mcp, "/health", None),
                http("console", "console", p.console, "/__vite_ping", None),
                http("temporal", "temporal", p.temporal, "/health", None),
            ],
            volumes: vec![VolumeCheck {
                service: "worker-1".into(),
                path: "/scratch".into(),
                volume: Some("worker-scratch".into()),
                warn_percent: 90,
            }],
            ports,
            one_shot: deps(&["minio-init", "temporal-init", "ai-gateway-init"]),
            depends_on,
            groups,
            deadlines: Deadlines::default(),
        }
    }

    /// Parses a platform file; errors name the file and, where toml knows it, the line.
    pub fn from_toml_str(text: &str, file: &str) -> Result<Self, PlatformConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| PlatformConfigError {
            file: file.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate().map_err(|message| PlatformConfigError {
            file: file.to_string(),
            message,
        })?;
        Ok(cfg)
    }

    pub fn load(path: &std::path::Path) -> Result<Self, PlatformConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlatformConfigError {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    fn validate(&self) -> Result<(), String> {
        use crate::core::types::DnsName;
        let check = |what: &str, name: &str| {
            DnsName::parse(name)
                .map(|_| ())
                .map_err(|e| format!("{what}: {e}"))
        };
        for (svc, deps) in &self.depends_on {
            check("depends_on", svc)?;
            for d in deps {
                check(&format!("depends_on.{svc}"), d)?;
            }
        }
        for (g, members) in &self.groups {
            for m in members {
                check(&format!("groups.{g}"), m)?;
            }
        }
        for svc in self.ports.keys().chain(self.one_shot.iter()) {
            check("service", svc)?;
        }
        for h in &self.http {
            check(&format!("http `{}` service", h.name), &h.service)?;
            if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
                return Err(format!(
                    "http `{}`: url `{}` must start with http:// or https://",
                    h.name, h.url
                ));
            }
        }
        for v in &self.volumes {
            check("volumes service", &v.service)?;
            crate::core::types::MountPath::parse(&v.path).map_err(|e| format!("volumes: {e}"))?;
        }
        if let Some(r) = &self.redis
            && !(r.url.starts_with("redis://") || r.url.starts_with("rediss://"))
        {
            return Err(format!("redis.url `{}` must start with redis://", r.url));
        }
        if let Some(r) = &self.redis
            && r.url.contains('@')
        {
            return Err(
                "redis.url must not carry credentials: put the password in redis.password".into(),
            );
        }
        Ok(())
    }

    /// The network the project's containers must share.
    pub fn network_for(&self, project: &str) -> String {
        self.network
            .clone()
            .unwrap_or_else(|| format!("{project}_default"))
    }

    pub fn is_one_shot(&self, service: &str) -> bool {
        self.one_shot.iter().any(|s| s == service)
    }

    /// Everything `service` needs, directly or through other services (cycles tolerated).
    pub fn dependencies_of(&self, service: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![service.to_string()];
        while let Some(s) = stack.pop() {
            for d in self.depends_on.get(&s).into_iter().flatten() {
                if d != service && seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen
    }

    /// Every service that needs `service`, directly or transitively.
    pub fn dependents_of(&self, service: &str) -> BTreeSet<String> {
        let mut all: BTreeSet<&String> = self.depends_on.keys().collect();
        all.extend(self.depends_on.values().flatten());
        all.into_iter()
            .filter(|s| s.as_str() != service && self.dependencies_of(s).contains(service))
            .cloned()
            .collect()
    }

    /// Direct long-running dependencies of `service` (init jobs are not resolvable once done).
    pub fn direct_runtime_deps(&self, service: &str) -> Vec<String> {
        self.depends_on
            .get(service)
            .into_iter()
            .flatten()
            .filter(|d| !self.is_one_shot(d))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_platform_file_matches_the_riftwing_defaults() {
        let text = include_str!("../../deploy/platform.toml");
        let cfg = PlatformConfig::from_toml_str(text, "deploy/platform.toml").unwrap();
        assert_eq!(cfg, PlatformConfig::riftwing_default());
    }

    #[test]
    fn unknown_field_in_a_platform_file_is_an_error_naming_the_file_and_line() {
        let text = "[redis]\nurl = \"redis://127.0.0.1:6379\"\nurll = \"x\"\n";
        let err = PlatformConfig::from_toml_str(text, "platform.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("platform.toml: "), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("urll"), "{msg}");
    }

    #[test]
    fn a_service_name_that_is_not_a_dns_label_is_refused() {
        let text = "[depends_on]\n\"api;rm\" = [\"postgres\"]\n";
        let err = PlatformConfig::from_toml_str(text, "p.toml").unwrap_err();
        assert!(err.to_string().contains("api;rm"), "{err}");
    }

    #[test]
    fn secrets_print_as_the_mask_in_debug_and_display() {
        let cfg = PlatformConfig::riftwing_default();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("app-secret-pw"));
        assert!(!dbg.contains("riftwing-s3-secret-key"));
        assert!(dbg.contains("****"));
        assert_eq!(Secret::new("hunter22").to_string(), "****");
    }

    #[test]
    fn postgres_dependents_include_transitive_ones() {
        let cfg = PlatformConfig::riftwing_default();
        let d = cfg.dependents_of("postgres");
        for s in [
            "api-1",
            "api-2",
            "api-gateway",
            "temporal",
            "worker-1",
            "console",
        ] {
            assert!(d.contains(s), "{s} missing from {d:?}");
        }
        assert!(!d.contains("mcp-server"));
        assert!(!d.contains("postgres"));
    }

    #[test]
    fn ports_come_from_the_seed_environment_variables() {
        let p = PortSet::from_lookup(|k| (k == "REDIS_PORT").then(|| "6779".to_string())).unwrap();
        assert_eq!(p.redis, 6779);
        assert_eq!(p.postgres, 5432);
        assert!(PortSet::from_lookup(|_| Some("nope".into())).is_err());
    }
}
