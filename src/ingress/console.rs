//! The terminal chat adapter: one-shot or interactive, rendering reports as Markdown and saving attachments.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::core::catalog::{Catalog, OptionType};
use crate::core::error::PipelineError;
use crate::core::report::{Attachment, render_markdown};
use crate::core::store::AuditDecision;
use crate::core::types::{ChannelId, UserId};
use crate::pipeline::{Core, Invocation};

/// Exit status of a one-shot run: 0 ran, 2 the person can fix it, 1 internal or engine down.
pub fn exit_code<T>(result: &Result<T, PipelineError>) -> u8 {
    match result {
        Ok(_) => 0,
        Err(PipelineError::User(u)) if u.decision() == AuditDecision::Failed => 1,
        Err(PipelineError::User(_)) => 2,
        Err(PipelineError::Internal(_)) => 1,
    }
}

/// Keeps attachment names to one safe path component.
fn file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "attachment.txt".into()
    } else {
        cleaned
    }
}

/// Writes attachments whole into `dir` (created if needed) and returns their paths.
/// Writes the attachments into `dir`, readable by this user only (0700 directory, 0600 files):
/// they are redacted, but they are still the platform's logs and configuration.
pub fn write_attachments(dir: &Path, attachments: &[Attachment]) -> std::io::Result<Vec<PathBuf>> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    attachments
        .iter()
        .map(|a| {
            let path = dir.join(file_name(&a.name));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            f.write_all(a.body.as_bytes())?;
            Ok(path)
        })
        .collect()
}

/// The OS user running this process: its name from `/etc/passwd`, else `uid <n>`, else
/// `$USER`. Read once.
pub fn os_user() -> &'static str {
    static USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    USER.get_or_init(|| {
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|rest| rest.split_whitespace().next().map(str::to_owned))
            });
        let Some(uid) = uid else {
            return std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        };
        std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|p| {
                p.lines().find_map(|l| {
                    let mut f = l.split(':');
                    let name = f.next()?;
                    (f.nth(1)? == uid).then(|| name.to_owned())
                })
            })
            .unwrap_or_else(|| format!("uid {uid}"))
    })
}

/// Where attachments go when no directory was given: a fresh directory under the system temp dir.
pub fn default_attachments_dir(correlation_id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("container-ops-{correlation_id}"))
}

/// A console session: who is typing, where, and where attachments are saved.
pub struct Console<'a> {
    pub core: &'a Core,
    pub user: UserId,
    pub channel: ChannelId,
    pub attachments_dir: Option<PathBuf>,
}

impl Console<'_> {
    /// Runs one line and prints the reply; returns the exit status for scripts.
    pub async fn run_line(&self, line: &str, out: &mut dyn Write) -> std::io::Result<u8> {
        let mut inv = Invocation::from_line(self.user.clone(), self.channel.clone(), line);
        // `--as` is self-asserted: the audit says it came from this host's console and who
        // was logged in.
        inv.via = format!("console:{}", os_user());
        let cid = inv.correlation_id.clone();
        let result = self.core.run(inv).await;
        let code = exit_code(&result);
        match &result {
            Ok(reply) => {
                let rendered =
                    render_markdown(&reply.report, self.core.settings.limits.message_limit);
                writeln!(out, "{}", rendered.text.trim_end())?;
                if !rendered.attachments.is_empty() {
                    let dir = self
                        .attachments_dir
                        .clone()
                        .unwrap_or_else(|| default_attachments_dir(&cid));
                    for p in write_attachments(&dir, &rendered.attachments)? {
                        writeln!(out, "📎 saved: {}", p.display())?;
                    }
                }
            }
            Err(e) => writeln!(out, "{}", e.markdown())?,
        }
        Ok(code)
    }
}
/// Tab completion for a console line up to the cursor: command names, then option keys,
/// then values where they are known without Docker (choices, booleans, groups).
/// Returns the byte offset where the completed word starts and the candidates.
pub fn complete(catalog: &Catalog, groups: &[String], before_cursor: &str) -> (usize, Vec<String>) {
    // The word starts after the last whitespace character, whatever its width in bytes.
    let start = before_cursor
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &before_cursor[start..];
    if start == 0 {
        let w = word.trim_start_matches('/');
        let names = catalog
            .names()
            .filter(|n| n.as_str().starts_with(w))
            .map(|n| format!("/{n}"))
            .collect();
        return (start, names);
    }
    let first = before_cursor
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_start_matches('/');
    let Some(cmd) = catalog.get(first) else {
        return (start, Vec::new());
    };
    if let Some((key, partial)) = word.split_once(':') {
        let Some(opt) = cmd.option(key) else {
            return (start, Vec::new());
        };
        let values: Vec<String> = match opt.kind {
            OptionType::Boolean => vec!["true".into(), "false".into()],
            OptionType::Group | OptionType::Service => groups.to_vec(),
            _ => opt.choices.clone(),
        };
        let found = values
            .into_iter()
            .filter(|v| v.starts_with(partial))
            .map(|v| format!("{key}:{v}"))
            .collect();
        return (start, found);
    }
    let keys = cmd
        .options
        .iter()
        .filter(|o| o.name.starts_with(word))
        .map(|o| format!("{}:", o.name))
        .collect();
    (start, keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::UserError;
    use crate::core::report::Report;

    fn catalog() -> Catalog {
        let groups = ["app", "infra"]
            .iter()
            .map(|g| crate::core::types::GroupName::parse(g).unwrap())
            .collect();
        Catalog::load_dir(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("commands"),
            &groups,
        )
        .unwrap()
    }

    #[test]
    fn completion_offers_commands_then_options_then_known_values() {
        let c = catalog();
        let groups = vec!["app".to_owned(), "infra".to_owned()];
        assert_eq!(
            complete(&c, &groups, "/resta"),
            (
                0,
                vec![
                    "/restart".into(),
                    "/restart-app".into(),
                    "/restart-infra".into()
                ]
            )
        );
        assert_eq!(
            complete(&c, &groups, "/logs api-1 t"),
            (12, vec!["tail:".into(), "timestamps:".into()])
        );
        assert_eq!(
            complete(&c, &groups, "/logs api-1 timestamps:t"),
            (12, vec!["timestamps:true".into()])
        );
        assert_eq!(
            complete(&c, &groups, "/logs service:i"),
            (6, vec!["service:infra".into()])
        );
        assert_eq!(complete(&c, &groups, "/nosuch x"), (8, vec![]));
    }

    #[test]
    fn completion_after_wide_whitespace_starts_at_the_next_character() {
        let c = catalog();
        let groups = vec!["app".to_owned()];
        // U+3000 is three bytes wide: the word starts after all of them.
        let line = "/logs\u{3000}a";
        assert_eq!(complete(&c, &groups, line), ("/logs\u{3000}".len(), vec![]));
        let (start, found) = complete(&c, &groups, "/logs\u{2003}t");
        assert_eq!(start, "/logs\u{2003}".len());
        assert_eq!(found, ["tail:", "timestamps:"]);
    }

    #[test]
    fn attachments_are_private_to_the_user() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("out");
        let written = write_attachments(
            &dir,
            &[Attachment {
                name: "logs-api-1.txt".into(),
                content_type: "text/plain".into(),
                body: "line".into(),
            }],
        )
        .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&written[0]), 0o600);
    }
    use crate::core::report::{Block, Severity};

    #[test]
    fn attachment_names_cannot_escape_the_directory() {
        assert_eq!(file_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(file_name("logs-api-1+api-2.txt"), "logs-api-1+api-2.txt");
        assert_eq!(file_name(""), "attachment.txt");
    }

    #[test]
    fn attachments_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let body = "line\n".repeat(10_000);
        let paths = write_attachments(
            dir.path(),
            &[Attachment {
                name: "logs-api-1.txt".into(),
                content_type: "text/plain".into(),
                body: body.clone(),
            }],
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(&paths[0]).unwrap(), body);
    }

    #[test]
    fn exit_codes_separate_user_errors_from_internal_ones() {
        assert_eq!(
            exit_code(&Ok(
                Report::new("t", Severity::Info).with(Block::Text("x".into()))
            )),
            0
        );
        assert_eq!(
            exit_code::<()>(&Err(UserError::Refused("no".into()).into())),
            2
        );
        assert_eq!(
            exit_code::<()>(&Err(UserError::Unavailable("down".into()).into())),
            1
        );
        assert_eq!(
            exit_code::<()>(&Err(PipelineError::internal(anyhow::anyhow!("x")))),
            1
        );
    }
}
