//! Settings: one TOML file (embedded default or `--config`), environment overrides, groups and limits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::core::error::ConfigError;
use crate::core::platform::{DEFAULT_PLATFORM_NAME, PlatformConfig};
use crate::core::ratelimit::RateSpec;
use crate::core::types::{GroupName, Secret, ServiceName, parse_duration};

/// The default settings, compiled in so the binary starts with no file at hand.
pub const DEFAULT_SETTINGS: &str = include_str!("../../deploy/container-ops.toml");
const DEFAULT_SETTINGS_NAME: &str = "<embedded deploy/container-ops.toml>";

/// The platform file named in the settings, or the embedded default; either way the port
/// variables it names (`port_env`) apply.
pub fn load_platform(
    file: Option<&Path>,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<PlatformConfig, ConfigError> {
    let (mut cfg, name) = match file {
        Some(path) => (PlatformConfig::load(path)?, path),
        None => (
            PlatformConfig::embedded()?,
            Path::new(DEFAULT_PLATFORM_NAME),
        ),
    };
    cfg.apply_port_env(get)
        .map_err(|m| ConfigError::new(name, m))?;
    Ok(cfg)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    project: String,
    docker_host: Option<String>,
    commands_dir: PathBuf,
    permissions_dir: PathBuf,
    store_url: Option<Secret>,
    /// The platform's probe targets; unset = the embedded `deploy/platform.toml`.
    platform_file: Option<PathBuf>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    groups: BTreeMap<GroupName, Vec<ServiceName>>,
    #[serde(default)]
    redaction: Redaction,
    #[serde(default)]
    console: ConsoleSettings,
}

/// Who may use the local console as whom. The console's `--as` is self-asserted: on a shared
/// host, this is what stops one OS user from acting (and being audited) as another person.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// OS user → the chat identities they may act as (`*`: anyone). Empty: no restriction
    /// (the embedded default, for one person on their own machine).
    #[serde(default)]
    pub os_users: BTreeMap<String, Vec<String>>,
}

impl ConsoleSettings {
    /// `Err` with the reason when `os_user` may not act as `actor`.
    pub fn may_act_as(&self, os_user: &str, actor: &str) -> Result<(), String> {
        if self.os_users.is_empty() {
            return Ok(());
        }
        match self.os_users.get(os_user) {
            None => Err(format!(
                "OS user `{os_user}` may not use the console: the settings' [console] os_users does not list it"
            )),
            Some(allowed) if allowed.iter().any(|a| a == "*" || a == actor) => Ok(()),
            Some(allowed) => Err(format!(
                "OS user `{os_user}` may act only as {} on the console, not as `{actor}` ([console] os_users)",
                allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// What the redactor learns beyond its own rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redaction {
    /// Environment variables whose values are masked wherever they recur, whatever they look
    /// like (a plain or short password the bot would otherwise take for an ordinary word).
    #[serde(default)]
    pub secret_names: Vec<String>,
}

/// Limits the core enforces; every one has a default so a settings file may omit them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub per_user: RateSpec,
    pub per_user_command: RateSpec,
    pub per_service_operation: RateSpec,
    pub log_line_cap: u32,
    pub max_arg_len: usize,
    pub message_limit: usize,
    #[serde(deserialize_with = "de_duration")]
    pub stop_timeout: Duration,
    /// Longest the bot waits for one operation (plus the stop timeout for restarts and stops).
    #[serde(deserialize_with = "de_duration")]
    pub operation_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_user: RateSpec::new(30, Duration::from_secs(60)),
            per_user_command: RateSpec::new(10, Duration::from_secs(60)),
            per_service_operation: RateSpec::new(3, Duration::from_secs(600)),
            log_line_cap: 2000,
            max_arg_len: 200,
            message_limit: 2000,
            stop_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
        }
    }
}

pub(crate) fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// The bot's settings after the file and the environment are merged.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the settings came from, for messages.
    pub source: String,
    pub project: String,
    pub docker_host: Option<String>,
    pub commands_dir: PathBuf,
    pub permissions_dir: PathBuf,
    pub store_url: Option<Secret>,
    pub platform_file: Option<PathBuf>,
    /// How the diagnosis reaches the platform's dependencies; validated at start-up.
    pub platform: PlatformConfig,
    pub limits: Limits,
    pub groups: BTreeMap<GroupName, Vec<ServiceName>>,
    pub redaction: Redaction,
    pub console: ConsoleSettings,
}

impl Settings {
    /// Reads `path` (or the embedded default) and applies the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, |k| std::env::var(k).ok())
    }

    /// Like `load`, with the environment given (tests and embedders).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut s = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError::new(p, format!("cannot read: {e}")))?;
                Self::parse(p, &text)?
            }
            None => Self::parse(Path::new(DEFAULT_SETTINGS_NAME), DEFAULT_SETTINGS)?,
        };
        s.apply_env(env)?;
        Ok(s)
    }

    /// Parses settings text; `path` only names the source in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawSettings =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
        let s = Settings {
            source: path.display().to_string(),
            project: raw.project,
            docker_host: raw.docker_host.filter(|h| !h.is_empty()),
            commands_dir: raw.commands_dir,
            permissions_dir: raw.permissions_dir,
            store_url: raw.store_url,
            platform_file: raw.platform_file,
            platform: PlatformConfig::embedded()?,
            limits: raw.limits,
            groups: raw.groups,
            redaction: raw.redaction,
            console: raw.console,
        };
        s.check().map_err(|m| ConfigError::new(path, m))?;
        Ok(s)
    }

    /// Environment overrides; `get` is the environment so tests need not mutate the process's.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("CONTAINER_OPS_PROJECT") {
            self.project = v;
        }
        if let Some(v) = get("CONTAINER_OPS_DOCKER_HOST") {
            self.docker_host = Some(v).filter(|h| !h.is_empty());
        }
        if let Some(v) = get("CONTAINER_OPS_COMMANDS_DIR") {
            self.commands_dir = v.into();
        }
        if let Some(v) = get("CONTAINER_OPS_PERMISSIONS_DIR") {
            self.permissions_dir = v.into();
        }
        if let Some(v) = get("CONTAINER_OPS_STORE_URL") {
            self.store_url = Some(Secret::new(v)).filter(|s| !s.expose().is_empty());
        }
        if let Some(v) = get("CONTAINER_OPS_PLATFORM_FILE") {
            self.platform_file = Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty());
        }
        self.platform = load_platform(self.platform_file.as_deref(), &get)?;
        self.check()
            .map_err(|m| ConfigError::new(Path::new("environment"), m))
    }

    fn check(&self) -> Result<(), String> {
        let p = &self.project;
        let ok = !p.is_empty()
            && p.len() <= 63
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !ok {
            return Err(format!(
                "project `{p}` is not a Compose project name (lowercase letters, digits, - and _)"
            ));
        }
        if self.limits.max_arg_len == 0
            || self.limits.message_limit < 200
            || self.limits.log_line_cap == 0
        {
            return Err(
                "limits: max_arg_len and log_line_cap must be positive, message_limit at least 200"
                    .into(),
            );
        }
        for (g, members) in &self.groups {
            if members.is_empty() {
                return Err(format!("group `{g}` has no services"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_with_the_seed_groups() {
        let s = Settings::parse(Path::new("default"), DEFAULT_SETTINGS).unwrap();
        assert_eq!(s.project, "riftwing");
        let app: Vec<&str> = s.groups[&GroupName::parse("app").unwrap()]
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(app, ["api-1", "api-2", "worker-1", "worker-2", "console"]);
        assert_eq!(s.groups[&GroupName::parse("infra").unwrap()].len(), 3);
        assert_eq!(
            s.limits.per_service_operation,
            RateSpec::new(3, Duration::from_secs(600))
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut s = Settings::parse(Path::new("default"), DEFAULT_SETTINGS).unwrap();
        s.apply_env(|k| match k {
            "CONTAINER_OPS_PROJECT" => Some("other".into()),
            "CONTAINER_OPS_DOCKER_HOST" => Some("tcp://10.0.0.1:2375".into()),
            "CONTAINER_OPS_STORE_URL" => Some("postgres://u:hunter22@db/bot".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.project, "other");
        assert_eq!(s.docker_host.as_deref(), Some("tcp://10.0.0.1:2375"));
        assert_eq!(
            s.store_url.as_ref().unwrap().expose(),
            "postgres://u:hunter22@db/bot"
        );
    }

    #[test]
    fn store_url_never_prints() {
        let mut s = Settings::parse(Path::new("default"), DEFAULT_SETTINGS).unwrap();
        s.store_url = Some(Secret::new("postgres://u:hunter22@db/bot"));
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter22"), "{dbg}");
        assert!(dbg.contains("****"));
        assert_eq!(s.store_url.unwrap().to_string(), "****");
    }

    #[test]
    fn unknown_field_names_the_file_and_line() {
        let text = "project = \"riftwing\"\ncommands_dir = \"c\"\npermissions_dir = \"p\"\n\n[limits]\nper_usr = \"1/1m\"\n";
        let e = Settings::parse(Path::new("bot.toml"), text).unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.to_string().starts_with("bot.toml:6:"), "{e}");
    }

    #[test]
    fn bad_group_member_is_refused_with_its_line() {
        let text = "project = \"riftwing\"\ncommands_dir = \"c\"\npermissions_dir = \"p\"\n[groups]\napp = [\"api 1\"]\n";
        let e = Settings::parse(Path::new("bot.toml"), text).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
    }

    #[test]
    fn bad_settings_fixture_is_refused_naming_the_file() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/settings/bad-rate.toml");
        let e = Settings::load(Some(&path)).unwrap_err();
        assert!(e.to_string().contains("bad-rate.toml:"), "{e}");
        assert!(e.line.is_some());
    }

    #[test]
    fn default_platform_is_the_embedded_file_and_follows_the_seed_port_variables() {
        let s = Settings::load_with_env(None, |_| None).unwrap();
        let pg = s.platform.postgres.as_ref().unwrap();
        assert_eq!(pg.port, 5432);
        let s = Settings::load_with_env(None, |k| (k == "POSTGRES_PORT").then(|| "6543".into()))
            .unwrap();
        assert_eq!(s.platform.postgres.as_ref().unwrap().port, 6543);
        let e =
            Settings::load_with_env(None, |k| (k == "REDIS_PORT").then(|| "x".into())).unwrap_err();
        assert!(e.to_string().contains("REDIS_PORT=x"), "{e}");
    }

    #[test]
    fn a_bad_platform_file_is_a_start_up_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("platform.toml");
        std::fs::write(
            &path,
            "[redis]\nservice = \"cache\"\nurl = \"http://nope\"\n",
        )
        .unwrap();
        let p = path.display().to_string();
        let e = Settings::load_with_env(None, |k| {
            (k == "CONTAINER_OPS_PLATFORM_FILE").then(|| p.clone())
        })
        .unwrap_err();
        assert_eq!(e.path, path, "{e}");
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.to_string().contains("redis://"), "{e}");
    }
}
