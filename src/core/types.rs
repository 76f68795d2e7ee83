//! Newtypes for the names the bot handles, parsed once at the edge so the core never re-checks them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::report::code;

/// Why a name was refused; the message is safe to show to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

fn check_name(kind: &str, s: &str, max: usize, ok: impl Fn(char) -> bool) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError(format!("{kind} must not be empty")));
    }
    if s.chars().count() > max {
        return Err(NameError(format!(
            "{kind} `{}…` is longer than {max} characters",
            truncate(s, 20)
        )));
    }
    if let Some(bad) = s.chars().find(|c| !ok(*c)) {
        return Err(NameError(format!(
            "{kind} `{}` contains `{}`, which is not allowed",
            truncate(s, 64),
            bad.escape_default()
        )));
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

macro_rules! name_types {
    ($($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr;)*) => {
        $(name_type_item!($(#[$doc])* $name, $kind, $check);)*
    };
}

macro_rules! name_type_item {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Parses a ", $kind, ", refusing anything outside its alphabet or length.")]
            pub fn parse(s: &str) -> Result<Self, NameError> {
                let check: fn(&str) -> Result<(), NameError> = $check;
                check(s)?;
                Ok(Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

fn lower_label(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
}

fn local_id(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

name_types! {
    /// A Compose service name (DNS-label-ish: what Compose accepts, at most 63 characters).
    ServiceName, "service name", |s| {
        check_name("service name", s, 63, |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))?;
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(NameError(format!("service name `{s}` must start with a letter or digit")));
        }
        Ok(())
    };
    /// A slash command name without the slash, Discord's rule: lowercase, at most 32 characters.
    CommandName, "command name", |s| check_name("command name", s, 32, lower_label);
    /// A role of the bot's permission model (not a Discord role id).
    RoleId, "role", |s| check_name("role", s, 64, lower_label);
    /// A person: a Discord user snowflake or a local console name.
    UserId, "user", |s| check_name("user", s, 64, local_id);
    /// Where a command was typed: a Discord channel snowflake or a name such as `console`.
    ChannelId, "channel", |s| check_name("channel", s, 100, local_id);
    /// A named set of services from the settings (`app`, `infra`).
    GroupName, "group", |s| check_name("group", s, 64, lower_label);
}

/// A host or service name that is safe as an argv element: dot-separated DNS labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsName(String);

impl DnsName {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 253 {
            return Err(format!("`{s}` is not a host name (1 to 253 characters)"));
        }
        for label in s.split('.') {
            let ok_chars = label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if label.is_empty()
                || label.len() > 63
                || !ok_chars
                || label.starts_with('-')
                || label.ends_with('-')
            {
                return Err(format!(
                    "`{s}` is not a host name: each label is 1 to 63 letters, digits, `-` or `_`, not starting or ending with `-`"
                ));
            }
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute path inside a container, plain enough to pass to `df`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPath(String);

impl MountPath {
    pub fn parse(s: &str) -> Result<Self, String> {
        let plain = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'));
        if !s.starts_with('/') || s.len() > 255 || !plain || s.split('/').any(|p| p == "..") {
            return Err(format!(
                "`{s}` is not a plain absolute path (letters, digits, `/ _ - .`, no `..`)"
            ));
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A credential or a token: read from a file or the environment, handed to the one client
/// that needs it, never printed (Debug and Display show the mask).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear value; grep for it to audit every use.
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

/// Parses `30s`, `15m`, `2h`, `1d` or a sum such as `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "{} is not a duration (use e.g. 30s, 15m, 2h)",
                    code(s)
                ));
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{} is not a duration (use e.g. 30s, 15m, 2h)", code(s)))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {} is too large", code(s)))?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(format!("{} needs a unit (s, m, h or d)", code(s)));
    }
    Ok(Duration::from_secs(total))
}

/// Short human form of a duration: `350 ms`, `1.5s`, `45s`, `3m 20s`, `2h 5m`, `3d 4h`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 && d.subsec_millis() != 0 {
        return if s == 0 {
            format!("{} ms", d.as_millis())
        } else {
            format!("{:.1}s", d.as_secs_f64())
        };
    }
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Short human form of a size in binary units: `512 B`, `1.5 KiB`, `48.0 MiB`, `2.0 GiB`.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `s` cut to at most `max` characters, the cut marked with `…`.
pub fn bounded(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Lowercase hex of bytes (digests).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_accept_compose_names_and_refuse_the_rest() {
        assert!(ServiceName::parse("api-1").is_ok());
        assert!(ServiceName::parse("db_backup.2").is_ok());
        assert!(ServiceName::parse("").is_err());
        assert!(ServiceName::parse("-api").is_err());
        assert!(ServiceName::parse("api;rm -rf").is_err());
        assert!(ServiceName::parse(&"a".repeat(64)).is_err());
        assert!(ServiceName::parse(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn command_names_follow_discord_rules() {
        assert!(CommandName::parse("restart-app").is_ok());
        assert!(CommandName::parse("Restart").is_err());
        assert!(CommandName::parse(&"x".repeat(33)).is_err());
    }

    #[test]
    fn users_may_be_snowflakes_or_local_names() {
        assert!(UserId::parse("123456789012345678").is_ok());
        assert!(UserId::parse("alice").is_ok());
        assert!(UserId::parse("alice bob").is_err());
    }

    #[test]
    fn names_deserialize_through_their_parser() {
        let bad: Result<RoleId, _> = serde_json::from_str("\"Not A Role\"");
        assert!(bad.is_err());
        let good: RoleId = serde_json::from_str("\"viewer\"").unwrap();
        assert_eq!(good.as_str(), "viewer");
    }

    #[test]
    fn durations_parse_units_and_sums() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("fifteen").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn durations_format_briefly() {
        assert_eq!(format_duration(Duration::from_secs(45)), "45s");
        assert_eq!(format_duration(Duration::from_secs(200)), "3m 20s");
        assert_eq!(format_duration(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(format_duration(Duration::from_millis(350)), "350 ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(2000)), "2s");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(48 * 1024 * 1024), "48.0 MiB");
        assert_eq!(format_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn bounded_text_keeps_its_limit_and_marks_the_cut() {
        assert_eq!(bounded("short", 10), "short");
        let cut = bounded(&"é".repeat(300), 100);
        assert_eq!(cut.chars().count(), 100);
        assert!(cut.ends_with('…'));
    }
}
