//! The audit spill file: entries the store could not take, kept durably and in order until it is back.
//!
//! One JSON object per line, each written with a single `write` and fsync'd before the command
//! is answered, so an acknowledged entry survives a crash. A process that dies mid-write leaves
//! at most one cut-off last line; reading sets such lines aside (in `<file>.bad`, never deleted)
//! and says so, instead of refusing the whole file. Several processes may share one file (two
//! consoles on one machine): every read-modify step runs under an exclusive lock on
//! `<file>.lock`.
//!
//! The spill and its siblings are private to the bot's user (0600): they hold audit entries
//! before the store does. With an audit key each line is sealed (an HMAC over the line), and a
//! line that is not sealed with the key is set aside like an unreadable one, so an entry
//! written into the file by hand never enters the chain as genuine. The same directory keeps
//! the audit anchor ([`AuditAnchor`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::store::{AuditAnchor, AuditKey, NewAuditEntry};

/// One spilled entry, as written on its line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    at: DateTime<Utc>,
    actor: String,
    roles: Vec<String>,
    channel: String,
    command: String,
    args: String,
    target: Vec<String>,
    decision: String,
    result: String,
    duration_ms: u64,
    correlation_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    via: String,
    /// HMAC with the audit key over the line without this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
}

impl Line {
    /// The line's text as sealed: serialised without its `mac`.
    fn body(&self) -> serde_json::Result<String> {
        let mut unsealed = serde_json::to_value(self)?;
        if let Some(o) = unsealed.as_object_mut() {
            o.remove("mac");
        }
        serde_json::to_string(&unsealed)
    }

    fn seal(&self, key: &AuditKey) -> serde_json::Result<String> {
        Ok(key.mac(&["audit-spill", &self.body()?]))
    }
}

impl From<&NewAuditEntry> for Line {
    fn from(e: &NewAuditEntry) -> Self {
        Self {
            at: e.at,
            actor: e.actor.clone(),
            roles: e.roles.clone(),
            channel: e.channel.clone(),
            command: e.command.clone(),
            args: e.args.clone(),
            target: e.target.clone(),
            decision: e.decision.as_str().to_owned(),
            result: e.result.clone(),
            duration_ms: e.duration_ms,
            correlation_id: e.correlation_id.clone(),
            via: e.via.clone(),
            mac: None,
        }
    }
}

impl TryFrom<Line> for NewAuditEntry {
    type Error = anyhow::Error;
    fn try_from(l: Line) -> anyhow::Result<Self> {
        Ok(Self {
            at: l.at,
            actor: l.actor,
            roles: l.roles,
            channel: l.channel,
            command: l.command,
            args: l.args,
            target: l.target,
            decision: l.decision.parse()?,
            result: l.result,
            duration_ms: l.duration_ms,
            correlation_id: l.correlation_id,
            via: l.via,
        })
    }
}

/// A line that could not be read back, with why; kept aside rather than dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number in the spill file.
    pub line: usize,
    pub text: String,
    pub reason: String,
}

/// What the spill file holds, oldest first.
#[derive(Debug, Default)]
pub struct SpillContents {
    pub entries: Vec<NewAuditEntry>,
    pub bad: Vec<BadLine>,
}

/// Holds the cross-process lock on a spill file until dropped (closing the file releases it).
pub struct SpillLock {
    _file: File,
}

#[derive(Debug, Clone)]
pub struct Spill {
    path: PathBuf,
    key: Option<Arc<AuditKey>>,
}

/// Opens `path` for writing, private to this user whatever its mode was.
fn private(opts: &mut OpenOptions, path: &Path) -> io::Result<File> {
    let f = opts.mode(0o600).open(path)?;
    if f.metadata()?.permissions().mode() & 0o077 != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

impl Spill {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            key: None,
        }
    }

    /// Seals new lines with `key` and accepts only lines sealed with it.
    pub fn with_key(mut self, key: Option<AuditKey>) -> Self {
        self.key = key.map(Arc::new);
        self
    }

    pub fn key(&self) -> Option<Arc<AuditKey>> {
        self.key.clone()
    }

    /// Where the audit anchor is kept: beside the spill, outside the store.
    pub fn anchor_path(&self) -> PathBuf {
        self.path.with_file_name("audit-anchor.json")
    }

    /// Records that the chain holds `anchor`'s entry, unless the file already records a
    /// later one (another process sharing the directory got further). Written to a temporary
    /// file and renamed, so a crash leaves the old anchor or the new one.
    pub fn write_anchor(&self, anchor: &AuditAnchor) -> io::Result<()> {
        if let Ok(Some(current)) = self.read_anchor()
            && current.last_id > anchor.last_id
            && current.is_genuine(self.key.as_deref())
        {
            return Ok(());
        }
        let path = self.anchor_path();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = sibling(&path, &format!("{}.tmp", std::process::id()));
        let mut f = private(
            OpenOptions::new().create(true).write(true).truncate(true),
            &tmp,
        )?;
        serde_json::to_writer(&mut f, anchor)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    }

    /// The anchor, if one was written; an unreadable file is an error, not "no anchor".
    pub fn read_anchor(&self) -> io::Result<Option<AuditAnchor>> {
        match std::fs::read(self.anchor_path()) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where unreadable lines are set aside.
    pub fn bad_path(&self) -> PathBuf {
        sibling(&self.path, "bad")
    }

    /// Takes the exclusive lock shared by every process using this file; blocks until free.
    pub fn lock(&self) -> io::Result<SpillLock> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = private(
            OpenOptions::new().create(true).truncate(false).write(true),
            &sibling(&self.path, "lock"),
        )?;
        file.lock()?;
        Ok(SpillLock { _file: file })
    }

    /// Appends one entry (normalised, as the store would keep it) and fsyncs; returns how
    /// many entries the file now holds. Call with the lock held.
    pub fn append(&self, _lock: &SpillLock, entry: &NewAuditEntry) -> io::Result<usize> {
        let mut file = private(
            OpenOptions::new().create(true).read(true).append(true),
            &self.path,
        )?;
        let mut existing = Vec::new();
        file.read_to_end(&mut existing)?;
        let mut line = Vec::with_capacity(512);
        // A line cut off by a crash must not swallow this one: start on a fresh line.
        if existing.last().is_some_and(|b| *b != b'\n') {
            line.push(b'\n');
        }
        let mut sealed = Line::from(&entry.clone().normalized());
        if let Some(k) = &self.key {
            sealed.mac = Some(sealed.seal(k)?);
        }
        serde_json::to_writer(&mut line, &sealed)?;
        line.push(b'\n');
        file.write_all(&line)?;
        file.sync_all()?;
        let lines = existing
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        Ok(lines + 1)
    }

    /// Reads every entry in order; lines that do not parse are returned apart with the reason.
    /// A missing file is an empty spill.
    pub fn read(&self, _lock: &SpillLock) -> io::Result<SpillContents> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SpillContents::default()),
            Err(e) => return Err(e),
        };
        Ok(parse(&bytes, self.key.as_deref()))
    }

    /// Empties the file after its entries were stored; unreadable lines are first appended
    /// (fsync'd) to [`Spill::bad_path`] so nothing disappears.
    pub fn clear(&self, _lock: &SpillLock, bad: &[BadLine]) -> io::Result<()> {
        if !bad.is_empty() {
            let mut f = private(
                OpenOptions::new().create(true).append(true),
                &self.bad_path(),
            )?;
            for b in bad {
                writeln!(f, "{}", b.text)?;
            }
            f.sync_all()?;
        }
        match OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => {
                f.set_len(0)?;
                f.sync_all()
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn parse(bytes: &[u8], key: Option<&AuditKey>) -> SpillContents {
    let mut out = SpillContents::default();
    let ends_cleanly = bytes.last().is_none_or(|b| *b == b'\n');
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let last_text = lines.iter().rposition(|l| !l.is_empty());
    for (i, raw) in lines.iter().enumerate() {
        if raw.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(raw).into_owned();
        let parsed = serde_json::from_slice::<Line>(raw)
            .map_err(anyhow::Error::from)
            .and_then(|l| match key {
                Some(k) if l.mac.as_deref() != Some(l.seal(k)?.as_str()) => Err(anyhow::anyhow!(
                    "not sealed with the audit key (written or changed by something other than the bot)"
                )),
                _ => NewAuditEntry::try_from(l),
            });
        match parsed {
            Ok(e) => out.entries.push(e),
            Err(e) => {
                let cut_off = !ends_cleanly && Some(i) == last_text;
                let reason = if cut_off {
                    format!(
                        "the last line ({} bytes) was cut off, most likely by a crash while it was being written; that entry was never acknowledged",
                        raw.len()
                    )
                } else {
                    format!("not a valid audit entry: {e:#}")
                };
                out.bad.push(BadLine {
                    line: i + 1,
                    text,
                    reason,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::store::AuditDecision;

    fn entry(i: u64) -> NewAuditEntry {
        NewAuditEntry {
            at: DateTime::from_timestamp_nanos(1_700_000_000_123_456_789 + i as i64 * 1000),
            actor: "dave".into(),
            roles: vec!["viewer".into()],
            channel: "console".into(),
            command: "status".into(),
            args: format!("n:{i}"),
            target: vec!["api-1".into()],
            decision: AuditDecision::Ran,
            result: "Status of riftwing: 11/11 running".into(),
            duration_ms: i,
            correlation_id: format!("c{i}"),
            via: "console:dave".into(),
        }
    }

    fn spill() -> (tempfile::TempDir, Spill) {
        let dir = tempfile::tempdir().unwrap();
        let s = Spill::new(dir.path().join("state").join("audit-spill.jsonl"));
        (dir, s)
    }

    #[test]
    fn entries_come_back_in_the_order_they_were_spilled_with_their_instants() {
        let (_d, s) = spill();
        let lock = s.lock().unwrap();
        for i in 0..5 {
            assert_eq!(s.append(&lock, &entry(i)).unwrap(), i as usize + 1);
        }
        let got = s.read(&lock).unwrap();
        assert!(got.bad.is_empty(), "{:?}", got.bad);
        let want: Vec<_> = (0..5).map(|i| entry(i).normalized()).collect();
        assert_eq!(got.entries, want);
    }

    #[test]
    fn clearing_empties_the_file_and_a_missing_file_is_an_empty_spill() {
        let (_d, s) = spill();
        let lock = s.lock().unwrap();
        assert!(s.read(&lock).unwrap().entries.is_empty());
        s.clear(&lock, &[]).unwrap();
        s.append(&lock, &entry(1)).unwrap();
        s.clear(&lock, &[]).unwrap();
        assert!(s.read(&lock).unwrap().entries.is_empty());
        assert_eq!(s.append(&lock, &entry(2)).unwrap(), 1, "counting restarts");
    }

    #[test]
    fn a_line_cut_off_by_a_crash_is_set_aside_with_a_clear_reason_and_the_rest_is_kept() {
        let (_d, s) = spill();
        let lock = s.lock().unwrap();
        s.append(&lock, &entry(1)).unwrap();
        s.append(&lock, &entry(2)).unwrap();
        // A crash in the middle of writing the third line.
        let full = serde_json::to_string(&Line::from(&entry(3))).unwrap();
        let mut f = OpenOptions::new().append(true).open(s.path()).unwrap();
        f.write_all(&full.as_bytes()[..40]).unwrap();
        drop(f);
        let got = s.read(&lock).unwrap();
        assert_eq!(got.entries.len(), 2);
        assert_eq!(got.bad.len(), 1);
        assert_eq!(got.bad[0].line, 3);
        assert!(
            got.bad[0].reason.contains("cut off"),
            "{}",
            got.bad[0].reason
        );

        // The next append starts on a fresh line instead of gluing itself to the cut one.
        assert_eq!(s.append(&lock, &entry(4)).unwrap(), 4);
        let got = s.read(&lock).unwrap();
        assert_eq!(
            got.entries
                .iter()
                .map(|e| e.duration_ms)
                .collect::<Vec<_>>(),
            [1, 2, 4]
        );
        assert!(got.bad[0].reason.contains("not a valid audit entry"));

        s.clear(&lock, &got.bad).unwrap();
        let aside = std::fs::read_to_string(s.bad_path()).unwrap();
        assert_eq!(aside.trim_end(), &full[..40], "set aside, not deleted");
        assert!(s.read(&lock).unwrap().entries.is_empty());
    }

    #[test]
    fn a_line_with_an_unknown_field_or_decision_is_not_taken_for_an_entry() {
        let (_d, s) = spill();
        let lock = s.lock().unwrap();
        let mut v = serde_json::to_value(Line::from(&entry(1))).unwrap();
        v["extra"] = 1.into();
        let mut w = serde_json::to_value(Line::from(&entry(2))).unwrap();
        w["decision"] = "maybe".into();
        std::fs::write(s.path(), format!("{v}\n{w}\n")).unwrap();
        let got = s.read(&lock).unwrap();
        assert!(got.entries.is_empty());
        assert_eq!(got.bad.len(), 2);
        assert!(got.bad.iter().all(|b| b.reason.contains("not a valid")));
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn key() -> AuditKey {
        AuditKey::from_bytes(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn the_spill_its_lock_its_set_aside_lines_and_the_anchor_are_private_to_the_bots_user() {
        let (_d, s) = spill();
        let lock = s.lock().unwrap();
        // A file left world-readable by an older version is made private on the next write.
        std::fs::write(s.path(), "").unwrap();
        std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        s.append(&lock, &entry(1)).unwrap();
        std::fs::write(s.path(), "not json\n").unwrap();
        let bad = s.read(&lock).unwrap().bad;
        s.clear(&lock, &bad).unwrap();
        s.write_anchor(&AuditAnchor::new(3, "h".into(), None))
            .unwrap();
        for p in [
            s.path().to_owned(),
            sibling(s.path(), "lock"),
            s.bad_path(),
            s.anchor_path(),
        ] {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }

    #[test]
    fn with_a_key_a_line_written_or_changed_by_hand_is_set_aside_and_sealed_lines_are_kept() {
        let (_d, s) = spill();
        let s = s.with_key(Some(key()));
        let lock = s.lock().unwrap();
        s.append(&lock, &entry(1)).unwrap();
        s.append(&lock, &entry(2)).unwrap();
        let text = std::fs::read_to_string(s.path()).unwrap();
        assert!(text.lines().all(|l| l.contains("\"mac\":")), "{text}");
        // A forged entry in the same format, and a genuine one with its actor changed.
        let forged = serde_json::to_string(&Line::from(&entry(3))).unwrap();
        let changed = text
            .lines()
            .nth(1)
            .unwrap()
            .replace("\"dave\"", "\"mallory\"");
        let first = text.lines().next().unwrap();
        std::fs::write(s.path(), format!("{first}\n{changed}\n{forged}\n")).unwrap();
        let got = s.read(&lock).unwrap();
        assert_eq!(got.entries, [entry(1).normalized()]);
        assert_eq!(got.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [2, 3]);
        assert!(
            got.bad
                .iter()
                .all(|b| b.reason.contains("not sealed with the audit key")),
            "{:?}",
            got.bad
        );
        // Without the key, the same file's forged line would have been taken as genuine.
        let unkeyed = Spill::new(s.path().to_owned());
        assert_eq!(unkeyed.read(&lock).unwrap().entries.len(), 3);
    }

    #[test]
    fn the_anchor_moves_only_forward_and_reads_back_as_written() {
        let (_d, s) = spill();
        assert_eq!(s.read_anchor().unwrap(), None);
        let later = AuditAnchor::new(9, "h9".into(), None);
        s.write_anchor(&later).unwrap();
        s.write_anchor(&AuditAnchor::new(4, "h4".into(), None))
            .unwrap();
        assert_eq!(s.read_anchor().unwrap(), Some(later));
        std::fs::write(s.anchor_path(), "{").unwrap();
        assert!(
            s.read_anchor().is_err(),
            "an unreadable anchor is not 'no anchor'"
        );
    }
}
