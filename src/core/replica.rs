//! Which bot process this is (for leases on executing requests), and whether another one is provably gone.
//!
//! A replica id is random per process and also records where the process runs: host name,
//! pid, the process's start time, its pid namespace and the kernel's boot id. Another
//! process that shares the boot id and pid namespace sees the same pid table, so it can
//! prove the holder has stopped: its pid is gone, or belongs to a process started at another
//! time (pid reuse). Anywhere else (another host, container or OS) nothing is provable and
//! only the lease's expiry counts.

use std::fmt;
use std::sync::LazyLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaId {
    pub nonce: String,
    pub host: String,
    pub pid: u32,
    /// Start time of the process in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start: Option<u64>,
    /// The pid namespace's inode number.
    pub pid_ns: Option<String>,
    pub boot: Option<String>,
}

static CURRENT: LazyLock<ReplicaId> = LazyLock::new(ReplicaId::detect);

impl ReplicaId {
    /// This process's id, the same for its whole life.
    pub fn current() -> &'static ReplicaId {
        &CURRENT
    }

    fn detect() -> Self {
        let pid = std::process::id();
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        Self {
            nonce: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
            host: read("/proc/sys/kernel/hostname")
                .or_else(|| std::env::var("HOSTNAME").ok())
                .map(|h| h.replace(['/', ' '], "_"))
                .unwrap_or_else(|| "unknown-host".into()),
            pid,
            start: start_ticks(pid),
            pid_ns: std::fs::read_link("/proc/self/ns/pid").ok().and_then(|l| {
                let l = l.to_string_lossy().into_owned();
                let digits: String = l.chars().filter(char::is_ascii_digit).collect();
                (!digits.is_empty()).then_some(digits)
            }),
            boot: read("/proc/sys/kernel/random/boot_id"),
        }
    }

    /// `nonce@host/pid=N`, for messages.
    pub fn short(&self) -> String {
        format!("{}@{}/pid={}", self.nonce, self.host, self.pid)
    }

    /// Parses the stored form; `None` for text this build did not write.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('/');
        let (nonce, host) = parts.next()?.split_once('@')?;
        let mut id = Self {
            nonce: nonce.to_owned(),
            host: host.to_owned(),
            pid: 0,
            start: None,
            pid_ns: None,
            boot: None,
        };
        for kv in parts {
            let (k, v) = kv.split_once('=')?;
            match k {
                "pid" => id.pid = v.parse().ok()?,
                "start" => id.start = Some(v.parse().ok()?),
                "ns" => id.pid_ns = Some(v.to_owned()),
                "boot" => id.boot = Some(v.to_owned()),
                _ => {}
            }
        }
        (id.pid != 0).then_some(id)
    }

    /// True only when `observer` can see this replica's pid table and the process is not in
    /// it any more. Never true for the observer itself.
    pub fn is_provably_gone(&self, observer: &ReplicaId) -> bool {
        let same_table = self.boot.is_some()
            && self.boot == observer.boot
            && self.pid_ns.is_some()
            && self.pid_ns == observer.pid_ns;
        if !same_table || self == observer {
            return false;
        }
        match start_ticks(self.pid) {
            None => !std::path::Path::new(&format!("/proc/{}", self.pid)).exists(),
            Some(now) => self.start.is_some_and(|then| then != now),
        }
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}/pid={}", self.nonce, self.host, self.pid)?;
        if let Some(s) = self.start {
            write!(f, "/start={s}")?;
        }
        if let Some(n) = &self.pid_ns {
            write!(f, "/ns={n}")?;
        }
        if let Some(b) = &self.boot {
            write!(f, "/boot={b}")?;
        }
        Ok(())
    }
}

fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last `)`.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_form_round_trips() {
        let me = ReplicaId::current();
        assert_eq!(ReplicaId::parse(&me.to_string()).as_ref(), Some(me));
        assert!(ReplicaId::parse("legacy").is_none());
        assert!(ReplicaId::parse("a@b/pid=x").is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_stopped_process_on_this_host_is_provably_gone_and_a_running_one_is_not() {
        let me = ReplicaId::current();
        assert!(
            me.start.is_some() && me.pid_ns.is_some() && me.boot.is_some(),
            "{me}"
        );
        assert!(!me.is_provably_gone(me), "never oneself");

        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let running = ReplicaId {
            nonce: "other".into(),
            pid: child.id(),
            start: start_ticks(child.id()),
            ..me.clone()
        };
        assert!(!running.is_provably_gone(me), "{running}");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(running.is_provably_gone(me), "{running}");

        // A reused pid (same number, other start time) is not the holder either.
        let reused = ReplicaId {
            nonce: "other".into(),
            start: me.start.map(|s| s + 1),
            ..me.clone()
        };
        assert!(reused.is_provably_gone(me));

        // Another host or pid namespace: nothing can be proven from here.
        let elsewhere = ReplicaId {
            pid_ns: Some("1".into()),
            ..running.clone()
        };
        assert!(!elsewhere.is_provably_gone(me));
    }
}
