//! Redis probe: PING, memory against maxmemory, persistence health, keyspace; key listing by bounded SCAN.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, IntoConnectionInfo};

use crate::core::platform::RedisTarget;
use crate::core::types::format_bytes;

use super::{Facts, Observed, ProbeStatus};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RedisFacts {
    pub pong: bool,
    pub used_memory: u64,
    /// 0 = no limit.
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    pub aof_enabled: bool,
    pub rdb_last_bgsave_status: String,
    pub aof_last_write_status: String,
    /// (db, keys)
    pub keyspace: Vec<(String, u64)>,
}

/// Parses INFO output (`key:value` lines, `#` section headers).
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

pub fn facts_from_info(pong: bool, info: &BTreeMap<String, String>) -> RedisFacts {
    let num = |k: &str| info.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    let text = |k: &str| info.get(k).cloned().unwrap_or_default();
    let keyspace = info
        .iter()
        .filter(|(k, _)| k.starts_with("db") && k[2..].chars().all(|c| c.is_ascii_digit()))
        .map(|(k, v)| {
            let keys = v
                .split(',')
                .find_map(|p| p.strip_prefix("keys="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            (k.clone(), keys)
        })
        .collect();
    RedisFacts {
        pong,
        used_memory: num("used_memory"),
        maxmemory: num("maxmemory"),
        maxmemory_policy: text("maxmemory_policy"),
        aof_enabled: text("aof_enabled") == "1",
        rdb_last_bgsave_status: text("rdb_last_bgsave_status"),
        aof_last_write_status: text("aof_last_write_status"),
        keyspace,
    }
}

pub fn judge(f: &RedisFacts) -> (ProbeStatus, Vec<String>) {
    let mut status = if f.pong {
        ProbeStatus::Pass
    } else {
        ProbeStatus::Fail
    };
    let mut evidence = vec![format!(
        "PING {}; used_memory {} of maxmemory {} ({})",
        if f.pong { "PONG" } else { "no PONG" },
        format_bytes(f.used_memory),
        if f.maxmemory == 0 {
            "unlimited".to_string()
        } else {
            format_bytes(f.maxmemory)
        },
        f.maxmemory_policy
    )];
    if f.maxmemory > 0 && f.used_memory * 10 >= f.maxmemory * 9 {
        status = status.max_severity(ProbeStatus::Warn);
        evidence.push("memory above 90% of maxmemory".into());
    }
    for (what, v) in [
        ("rdb_last_bgsave_status", &f.rdb_last_bgsave_status),
        ("aof_last_write_status", &f.aof_last_write_status),
    ] {
        if !v.is_empty() && v != "ok" {
            status = status.max_severity(ProbeStatus::Warn);
            evidence.push(format!("{what}:{v}"));
        }
    }
    (status, evidence)
}

/// Keys listed per call at most; SCAN never blocks the server the way KEYS does.
pub const MAX_KEYS: usize = 200;
const MAX_SCAN_ROUNDS: usize = 100;

pub struct RedisProbe {
    client: redis::Client,
    timeout: Duration,
}

impl RedisProbe {
    /// `timeout` bounds connecting and each command (the library's default is shorter than a probe deadline).
    pub fn new(t: &RedisTarget, timeout: Duration) -> Result<Self, String> {
        let mut info = t
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("redis url `{}`: {e}", t.url))?;
        if let Some(pw) = &t.password {
            let settings = info.redis_settings().clone().set_password(pw.expose());
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| format!("redis: {e}"))?;
        Ok(Self { client, timeout })
    }

    pub async fn connection(&self) -> Result<MultiplexedConnection, String> {
        self.client
            .get_multiplexed_async_connection_with_config(
                &AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout)),
            )
            .await
            .map_err(|e| format!("redis connect: {e}"))
    }

    pub async fn info(&self, section: &str) -> Result<String, String> {
        let mut con = self.connection().await?;
        redis::cmd("INFO")
            .arg(section)
            .query_async::<String>(&mut con)
            .await
            .map_err(|e| format!("INFO {section}: {e}"))
    }

    pub async fn probe(&self) -> Result<Observed, String> {
        let mut con = self.connection().await?;
        let pong: String = redis::cmd("PING")
            .query_async(&mut con)
            .await
            .map_err(|e| format!("PING: {e}"))?;
        let (mem, pers, ks): (String, String, String) = redis::pipe()
            .cmd("INFO")
            .arg("memory")
            .cmd("INFO")
            .arg("persistence")
            .cmd("INFO")
            .arg("keyspace")
            .query_async(&mut con)
            .await
            .map_err(|e| format!("INFO: {e}"))?;
        let info = parse_info(&format!("{mem}\n{pers}\n{ks}"));
        let facts = facts_from_info(pong == "PONG", &info);
        let (status, evidence) = judge(&facts);
        Ok(Observed::new(status, evidence, Facts::Redis(facts)))
    }

    /// Keys matching `pattern` by SCAN, at most MAX_KEYS; the flag says the listing was cut.
    pub async fn keys(&self, pattern: &KeyPattern) -> Result<(Vec<String>, bool), String> {
        let mut con = self.connection().await?;
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        for _ in 0..MAX_SCAN_ROUNDS {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern.as_str())
                .arg("COUNT")
                .arg(100)
                .query_async(&mut con)
                .await
                .map_err(|e| format!("SCAN: {e}"))?;
            keys.extend(batch);
            if keys.len() >= MAX_KEYS {
                keys.truncate(MAX_KEYS);
                return Ok((keys, true));
            }
            cursor = next;
            if cursor == 0 {
                keys.sort();
                return Ok((keys, false));
            }
        }
        keys.sort();
        Ok((keys, true))
    }
}

/// A SCAN MATCH pattern from a user: printable, no spaces, bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern(String);

impl KeyPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 100 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{} is not a key pattern: 1 to 100 printable characters without spaces, e.g. `ai:*`",
                crate::core::report::code(s)
            ));
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Memory\r\nused_memory:1048576\r\nmaxmemory:134217728\r\nmaxmemory_policy:allkeys-lru\r\n\r\n# Persistence\r\naof_enabled:1\r\nrdb_last_bgsave_status:ok\r\naof_last_write_status:err\r\n\r\n# Keyspace\r\ndb0:keys=12,expires=3,avg_ttl=0\r\n";

    #[test]
    fn info_sections_become_memory_persistence_and_keyspace_facts() {
        let f = facts_from_info(true, &parse_info(INFO));
        assert_eq!(f.used_memory, 1 << 20);
        assert_eq!(f.maxmemory, 128 << 20);
        assert_eq!(f.maxmemory_policy, "allkeys-lru");
        assert!(f.aof_enabled);
        assert_eq!(f.keyspace, vec![("db0".to_string(), 12)]);
        let (status, ev) = judge(&f);
        assert_eq!(status, ProbeStatus::Warn);
        assert!(
            ev.iter().any(|e| e == "aof_last_write_status:err"),
            "{ev:?}"
        );
    }

    #[test]
    fn key_patterns_with_spaces_are_refused() {
        assert!(KeyPattern::parse("ai:*").is_ok());
        assert!(KeyPattern::parse("a b").is_err());
        assert!(KeyPattern::parse("").is_err());
    }
}
