//! How the bot reaches the platform's dependencies from its own host, and how services depend on each other.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

use crate::core::error::ConfigError;
pub use crate::core::types::Secret;
use crate::core::types::{DnsName, MountPath};

/// The default platform layout, compiled in so the binary starts with no file at hand.
pub const DEFAULT_PLATFORM: &str = include_str!("../../deploy/platform.toml");
/// How the embedded layout is named in messages.
pub const DEFAULT_PLATFORM_NAME: &str = "<embedded deploy/platform.toml>";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTarget {
    /// The Compose service that runs it, so probe results land on the right service.
    pub service: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub password: Secret,
    /// The superuser the bot uses inside the container (`psql`, `pg_restore`); Postgres's own default.
    #[serde(default = "default_admin_user")]
    pub admin_user: String,
    /// The application's database: what `/restore` restores and `/terminate-backends` clears.
    /// Defaults to `database`.
    #[serde(default)]
    pub app_database: Option<String>,
    /// An environment variable that, when set, moves `port` (the seed's `POSTGRES_PORT`).
    #[serde(default)]
    pub port_env: Option<String>,
}

impl PostgresTarget {
    pub fn app_database(&self) -> &str {
        self.app_database.as_deref().unwrap_or(&self.database)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTarget {
    pub service: String,
    /// `redis://host:port[/db]` without credentials; the password, if any, goes in `password`.
    pub url: String,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub port_env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Target {
    pub service: String,
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: Secret,
    #[serde(default = "yes")]
    pub path_style: bool,
    /// An object that should always exist (the init job writes it); HEAD-ed by the probe.
    #[serde(default)]
    pub probe_key: Option<String>,
    /// The one-shot job that creates the bucket (and `probe_key`) again.
    #[serde(default)]
    pub init_job: Option<String>,
    #[serde(default)]
    pub port_env: Option<String>,
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
    #[serde(default)]
    pub port_env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemporalTarget {
    pub service: String,
    /// Base URL of the HTTP API (the replica's stand-in serves `/api/v1/namespaces/default/workflows`).
    pub url: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default)]
    pub port_env: Option<String>,
}

/// How the platform backs up its database: a script in a service of its own.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// The service that runs the script (and mounts `dir`).
    pub service: String,
    /// The script's argv, run as is (never through a shell).
    pub script: Vec<String>,
    /// The script's line that names the dump, e.g. `backup written: /backups/backup_….dump`.
    pub written_prefix: String,
    /// Where dumps are, in the backup service and in the database's container alike.
    pub dir: String,
    /// Dump names are `<file_prefix>…<file_suffix>`; `/restore` takes nothing else.
    pub file_prefix: String,
    pub file_suffix: String,
}

/// What `/restore` stops while it replaces the database.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreConfig {
    /// The services that write to the database.
    pub stop_services: Vec<String>,
}

/// One service `/reset` may recreate with fresh volumes.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetTarget {
    /// The one-shot job that initialises it again.
    #[serde(default)]
    pub init_job: Option<String>,
    /// Back up the database (`[backup]`) before its volume goes.
    #[serde(default)]
    pub backup_first: bool,
}

/// The full reset (`/reset-project`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectResetConfig {
    /// Volumes, by their name in the Compose file, kept through a full reset (the backups).
    #[serde(default)]
    pub keep_volumes: Vec<String>,
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
    pub deadlines: Deadlines,
    #[serde(default)]
    pub backup: Option<BackupConfig>,
    #[serde(default)]
    pub restore: Option<RestoreConfig>,
    /// Services `/reset` may recreate, by service name.
    #[serde(default)]
    pub reset: BTreeMap<String, ResetTarget>,
    #[serde(default)]
    pub project_reset: ProjectResetConfig,
    /// Hosts `/network-check` may reach besides the platform's services and the hosts of its
    /// targets (a managed database outside Compose, say).
    #[serde(default)]
    pub network_hosts: Vec<String>,
}

fn default_admin_user() -> String {
    "postgres".into()
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

impl PlatformConfig {
    /// The layout compiled into the binary (`deploy/platform.toml`), as written.
    pub fn embedded() -> Result<Self, ConfigError> {
        Self::from_toml_str(
            DEFAULT_PLATFORM,
            std::path::Path::new(DEFAULT_PLATFORM_NAME),
        )
    }

    /// Parses a platform file; errors name the file and, where known, the line.
    pub fn from_toml_str(text: &str, path: &std::path::Path) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
        cfg.validate()
            .map_err(|(key, message)| ConfigError::at_key(path, text, &key, message))?;
        Ok(cfg)
    }

    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path, format!("cannot read: {e}")))?;
        Self::from_toml_str(&text, path)
    }

    /// Moves each target named with a `port_env` to the port in that variable, when it is set
    /// (the seed's `POSTGRES_PORT`, `REDIS_PORT`, …: a second instance on shifted host ports).
    pub fn apply_port_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let port = |var: &Option<String>| -> Result<Option<u16>, String> {
            let Some(name) = var else { return Ok(None) };
            match get(name) {
                Some(v) if !v.trim().is_empty() => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name}={v} is not a port number")),
                _ => Ok(None),
            }
        };
        if let Some(pg) = &mut self.postgres
            && let Some(p) = port(&pg.port_env)?
        {
            pg.port = p;
        }
        if let Some(r) = &mut self.redis
            && let Some(p) = port(&r.port_env)?
        {
            r.url = with_port(&r.url, p);
        }
        if let Some(s) = &mut self.s3
            && let Some(p) = port(&s.port_env)?
        {
            s.endpoint = with_port(&s.endpoint, p);
        }
        if let Some(t) = &mut self.temporal
            && let Some(p) = port(&t.port_env)?
        {
            t.url = with_port(&t.url, p);
        }
        for h in &mut self.http {
            if let Some(p) = port(&h.port_env)? {
                h.url = with_port(&h.url, p);
            }
        }
        Ok(())
    }

    /// Every name `/network-check` may resolve or connect to: the services the file names,
    /// the hosts of its targets, and `network_hosts`.
    pub fn network_hosts(&self) -> BTreeSet<String> {
        let mut all = self.long_running();
        all.extend(self.one_shot.iter().cloned());
        all.extend(self.network_hosts.iter().cloned());
        let host_of = |url: &str| {
            url.split_once("://")
                .map(|(_, rest)| rest)
                .and_then(|rest| rest.split(['/', '?']).next())
                .map(|auth| auth.rsplit_once(':').map_or(auth, |(h, _)| h).to_owned())
        };
        if let Some(p) = &self.postgres {
            all.insert(p.host.clone());
        }
        let urls = [
            self.redis.as_ref().map(|r| r.url.as_str()),
            self.s3.as_ref().map(|s| s.endpoint.as_str()),
            self.temporal.as_ref().map(|t| t.url.as_str()),
        ];
        for u in urls
            .into_iter()
            .flatten()
            .chain(self.http.iter().map(|h| h.url.as_str()))
        {
            all.extend(host_of(u));
        }
        all
    }

    /// The services that keep running (every service the file names, init jobs excluded).
    pub fn long_running(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self.depends_on.keys().cloned().collect();
        all.extend(self.depends_on.values().flatten().cloned());
        all.extend(self.ports.keys().cloned());
        all.retain(|s| !self.is_one_shot(s));
        all
    }

    /// The first problem found, with the key to point at.
    fn validate(&self) -> Result<(), (String, String)> {
        let check = |key: &str, what: &str, name: &str| {
            DnsName::parse(name)
                .map(|_| ())
                .map_err(|e| (key.to_owned(), format!("{what}: {e}")))
        };
        for (svc, deps) in &self.depends_on {
            check("depends_on", "depends_on", svc)?;
            for d in deps {
                check(svc, &format!("depends_on.{svc}"), d)?;
            }
        }
        for svc in self.ports.keys() {
            check("ports", "service", svc)?;
        }
        for svc in &self.one_shot {
            check("one_shot", "service", svc)?;
        }
        let targets = [
            self.postgres.as_ref().map(|t| ("postgres", &t.service)),
            self.redis.as_ref().map(|t| ("redis", &t.service)),
            self.s3.as_ref().map(|t| ("s3", &t.service)),
            self.temporal.as_ref().map(|t| ("temporal", &t.service)),
        ];
        for (section, svc) in targets.into_iter().flatten() {
            check(section, &format!("{section}.service"), svc)?;
        }
        for h in &self.http {
            check(&h.name, &format!("http `{}` service", h.name), &h.service)?;
            if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
                return Err((
                    h.url.clone(),
                    format!(
                        "http `{}`: url `{}` must start with http:// or https://",
                        h.name, h.url
                    ),
                ));
            }
        }
        for v in &self.volumes {
            check("volumes", "volumes service", &v.service)?;
            MountPath::parse(&v.path)
                .map_err(|e| ("volumes".to_owned(), format!("volumes: {e}")))?;
        }
        if let Some(r) = &self.redis
            && !(r.url.starts_with("redis://") || r.url.starts_with("rediss://"))
        {
            return Err((
                r.url.clone(),
                format!("redis.url `{}` must start with redis://", r.url),
            ));
        }
        if let Some(r) = &self.redis
            && r.url.contains('@')
        {
            return Err((
                r.url.clone(),
                "redis.url must not carry credentials: put the password in redis.password".into(),
            ));
        }
        let urls = [
            self.redis.as_ref().map(|t| (&t.port_env, &t.url)),
            self.s3.as_ref().map(|t| (&t.port_env, &t.endpoint)),
            self.temporal.as_ref().map(|t| (&t.port_env, &t.url)),
        ];
        for (env, url) in urls
            .into_iter()
            .flatten()
            .chain(self.http.iter().map(|h| (&h.port_env, &h.url)))
        {
            if env.is_some() && port_span(url).is_none() {
                return Err((
                    url.clone(),
                    format!("`{url}` has no explicit port, so `port_env` cannot move it"),
                ));
            }
        }
        if let Some(b) = &self.backup {
            check("backup", "backup.service", &b.service)?;
            MountPath::parse(&b.dir).map_err(|e| ("dir".to_owned(), format!("backup.dir: {e}")))?;
            match b.script.first() {
                Some(s) => MountPath::parse(s)
                    .map(|_| ())
                    .map_err(|e| ("script".to_owned(), format!("backup.script: {e}")))?,
                None => return Err(("script".into(), "backup.script must name a program".into())),
            }
            if b.file_prefix.is_empty() || b.file_suffix.is_empty() {
                return Err((
                    "file_prefix".into(),
                    "backup.file_prefix and backup.file_suffix must not be empty".into(),
                ));
            }
        }
        if let Some(r) = &self.restore {
            for s in &r.stop_services {
                check("stop_services", "restore.stop_services", s)?;
            }
        }
        for (svc, r) in &self.reset {
            check(svc, "reset", svc)?;
            if let Some(j) = &r.init_job {
                check(j, &format!("reset.{svc}.init_job"), j)?;
            }
            if r.backup_first && self.backup.is_none() {
                return Err((
                    "backup_first".into(),
                    format!("reset.{svc}.backup_first needs a [backup] section"),
                ));
            }
        }
        for h in &self.network_hosts {
            check("network_hosts", "network_hosts", h)?;
        }
        if let Some(j) = self.s3.as_ref().and_then(|s| s.init_job.as_ref()) {
            check("init_job", "s3.init_job", j)?;
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

/// Byte range of the port in `scheme://host:PORT[/path]`, if the URL spells one out.
fn port_span(url: &str) -> Option<std::ops::Range<usize>> {
    let authority_start = url.find("://")? + 3;
    let rest = &url[authority_start..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let colon = rest[..authority_end].rfind(':')?;
    let digits = &rest[colon + 1..authority_end];
    (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
        .then(|| authority_start + colon + 1..authority_start + authority_end)
}

/// `url` with its port replaced (validation made sure it has one).
fn with_port(url: &str, port: u16) -> String {
    match port_span(url) {
        Some(r) => format!("{}{port}{}", &url[..r.start], &url[r.end..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Result<PlatformConfig, ConfigError> {
        PlatformConfig::from_toml_str(text, Path::new("platform.toml"))
    }

    #[test]
    fn the_shipped_platform_file_parses_with_every_section() {
        let cfg = PlatformConfig::embedded().unwrap();
        assert!(cfg.postgres.is_some() && cfg.redis.is_some() && cfg.s3.is_some());
        let backup = cfg.backup.as_ref().expect("[backup]");
        assert!(cfg.long_running().contains(&backup.service));
        assert!(!cfg.reset.is_empty());
        assert!(!cfg.project_reset.keep_volumes.is_empty());
        assert!(cfg.long_running().iter().all(|s| !cfg.is_one_shot(s)));
    }

    #[test]
    fn unknown_field_in_a_platform_file_is_an_error_naming_the_file_and_line() {
        let text = "[redis]\nservice = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nurll = \"x\"\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.line, Some(4), "{err}");
        assert!(err.to_string().starts_with("platform.toml:4: "), "{err}");
        assert!(err.message.contains("urll"), "{err}");
    }

    #[test]
    fn a_service_name_that_is_not_a_dns_label_is_refused_at_its_line() {
        let text = "one_shot = []\n[depends_on]\n\"api;rm\" = [\"db\"]\n";
        let err = parse(text).unwrap_err();
        assert!(err.message.contains("api;rm"), "{err}");
        assert_eq!(err.line, Some(2), "{err}");
    }

    #[test]
    fn a_reset_that_backs_up_first_needs_a_backup_section() {
        let text = "[reset.db]\nbackup_first = true\n";
        let err = parse(text).unwrap_err();
        assert!(err.message.contains("needs a [backup] section"), "{err}");
        assert_eq!(err.line, Some(2), "{err}");
    }

    #[test]
    fn secrets_print_as_the_mask_in_debug_and_display() {
        let cfg = PlatformConfig::embedded().unwrap();
        let pg = cfg.postgres.as_ref().unwrap();
        let s3 = cfg.s3.as_ref().unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains(pg.password.expose()));
        assert!(!dbg.contains(s3.secret_key.expose()));
        assert!(dbg.contains("****"));
        assert_eq!(Secret::new("hunter22").to_string(), "****");
    }

    #[test]
    fn dependents_include_transitive_ones() {
        let text = "[depends_on]\napp = [\"db\"]\nedge = [\"app\"]\nreport = [\"cache\"]\n";
        let cfg = parse(text).unwrap();
        let d = cfg.dependents_of("db");
        assert_eq!(d, BTreeSet::from(["app".to_owned(), "edge".to_owned()]));
    }

    #[test]
    fn port_variables_move_exactly_the_targets_that_name_them() {
        let text = "[redis]\nservice = \"cache\"\nurl = \"redis://127.0.0.1:6379/2\"\nport_env = \"CACHE_PORT\"\n\n[[http]]\nname = \"api\"\nservice = \"edge\"\nurl = \"http://127.0.0.1:3000/healthz\"\nport_env = \"API_PORT\"\n\n[[http]]\nname = \"ui\"\nservice = \"ui\"\nurl = \"http://127.0.0.1:5173/\"\n";
        let mut cfg = parse(text).unwrap();
        cfg.apply_port_env(|k| match k {
            "CACHE_PORT" => Some("6779".into()),
            "API_PORT" => Some(" ".into()),
            _ => Some("1".into()),
        })
        .unwrap();
        assert_eq!(cfg.redis.as_ref().unwrap().url, "redis://127.0.0.1:6779/2");
        assert_eq!(
            cfg.http[0].url, "http://127.0.0.1:3000/healthz",
            "blank keeps the file's port"
        );
        assert_eq!(
            cfg.http[1].url, "http://127.0.0.1:5173/",
            "no port_env, never moved"
        );
        let err = cfg.apply_port_env(|_| Some("nope".into())).unwrap_err();
        assert_eq!(err, "CACHE_PORT=nope is not a port number");
    }

    #[test]
    fn the_shipped_file_follows_the_seed_port_variables() {
        let mut cfg = PlatformConfig::embedded().unwrap();
        cfg.apply_port_env(|k| (k == "POSTGRES_PORT").then(|| "6543".into()))
            .unwrap();
        assert_eq!(cfg.postgres.as_ref().unwrap().port, 6543);
        assert_eq!(cfg, {
            let mut c = PlatformConfig::embedded().unwrap();
            c.postgres.as_mut().unwrap().port = 6543;
            c
        });
    }

    #[test]
    fn a_port_variable_on_a_url_without_a_port_is_refused() {
        let text = "[[http]]\nname = \"api\"\nservice = \"api\"\nurl = \"http://api.internal/health\"\nport_env = \"API_PORT\"\n";
        let err = parse(text).unwrap_err();
        assert!(err.message.contains("no explicit port"), "{err}");
        assert_eq!(err.line, Some(4), "{err}");
    }
}
