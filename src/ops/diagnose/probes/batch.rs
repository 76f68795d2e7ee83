//! All of one container's diagnose checks in one exec: a constant script, the checks as argv, one record per check.
//!
//! Docker runs execs through `runc exec`, about 80 ms of daemon work each, and concurrent
//! execs queue behind one another (measured: 4 at once 190 ms, 11 at once 665 ms). So a
//! `/diagnose` asks each container once, with everything it needs from it.

use std::time::Duration;

use crate::core::types::{DnsName, MountPath};

/// The only script the bot passes to `sh -c`. It is a constant: the checks and their names
/// arrive after it as separate argv entries (`$1`, `$2`, ...), are only ever expanded inside
/// double quotes and reach `getent`/`df` as single arguments, so nothing a check names is
/// ever read as shell text. Each check runs in the background under `timeout` (when the
/// container has it), so a hung check costs its own bound and the others still report.
/// Output lines are written as `<index>|<line>` and a check's end as `<index>=<exit code>`,
/// one `printf` each, so interleaved lines of parallel checks stay attributable. Lines are
/// split by the shell itself (`IFS`, no `while read` pipeline): every fork counts on a busy host.
pub const SCRIPT: &str = r#"t=$1; shift
if command -v timeout >/dev/null 2>&1; then bounded() { timeout "$t" "$@"; }; else bounded() { "$@"; }; fi
check() {
  i=$1; shift
  out=$(bounded "$@" 2>&1); rc=$?
  IFS='
'; set -f
  for line in $out; do printf '%s|%s\n' "$i" "$line"; done
  printf '%s=%s\n' "$i" "$rc"
}
i=0
while [ $# -gt 0 ]; do
  case $1 in
    dns) check "$i" getent hosts "$2" & shift 2 ;;
    df) check "$i" df -P "$2" & shift 2 ;;
    *) echo "unknown check $1" >&2; exit 2 ;;
  esac
  i=$((i+1))
done
wait
"#;

/// `$0` of the script, as `ps` in the container shows it.
const SCRIPT_NAME: &str = "container-ops-checks";

/// One allow-listed check; the names are validated newtypes, never raw input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// `getent hosts NAME`
    Resolve(DnsName),
    /// `df -P PATH`
    DiskFree(MountPath),
}

impl Check {
    /// The command as a person would type it, for evidence.
    pub fn shown(&self) -> String {
        match self {
            Check::Resolve(n) => format!("getent hosts {}", n.as_str()),
            Check::DiskFree(p) => format!("df -P {}", p.as_str()),
        }
    }
}

/// The bound each check gets inside the container: whole seconds (what every `timeout`
/// accepts), a second under the probe deadline so the record arrives before the deadline.
pub fn per_check_timeout(deadline: Duration) -> Duration {
    Duration::from_secs(
        deadline
            .saturating_sub(Duration::from_secs(1))
            .as_secs()
            .max(1),
    )
}

/// `sh -c SCRIPT container-ops-checks SECONDS (dns NAME | df PATH)...`
pub fn argv(checks: &[Check], per_check: Duration) -> Vec<String> {
    let mut v = vec![
        "sh".to_string(),
        "-c".to_string(),
        SCRIPT.to_string(),
        SCRIPT_NAME.to_string(),
        per_check.as_secs().max(1).to_string(),
    ];
    for c in checks {
        let (verb, arg) = match c {
            Check::Resolve(n) => ("dns", n.as_str()),
            Check::DiskFree(p) => ("df", p.as_str()),
        };
        v.push(verb.to_string());
        v.push(arg.to_string());
    }
    v
}

/// What one check printed (stdout and stderr together) and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub exit_code: i64,
    pub output: String,
}

impl Record {
    /// Ended by its `timeout`: 124 from coreutils, 143 (SIGTERM) from busybox.
    pub fn timed_out(&self) -> bool {
        matches!(self.exit_code, 124 | 143)
    }
}

/// One entry per check, in order; `None` for a check whose end line never came (the exec
/// was cut short, or the script could not run).
pub fn parse_records(stdout: &str, checks: usize) -> Vec<Option<Record>> {
    let mut lines: Vec<Vec<&str>> = vec![Vec::new(); checks];
    let mut ends: Vec<Option<i64>> = vec![None; checks];
    for l in stdout.lines() {
        let digits = l.len() - l.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let Ok(i) = l[..digits].parse::<usize>() else {
            continue;
        };
        if i >= checks {
            continue;
        }
        match l[digits..].split_at_checked(1) {
            Some(("|", rest)) => lines[i].push(rest),
            Some(("=", code)) => ends[i] = code.trim().parse().ok(),
            _ => {}
        }
    }
    ends.into_iter()
        .zip(lines)
        .map(|(end, lines)| {
            end.map(|exit_code| Record {
                exit_code,
                output: lines.join("\n"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;
    use std::time::Instant;

    fn dns(n: &str) -> Check {
        Check::Resolve(DnsName::parse(n).unwrap())
    }

    #[test]
    fn names_are_argv_entries_after_a_constant_script() {
        let v = argv(
            &[
                dns("postgres"),
                Check::DiskFree(MountPath::parse("/scratch").unwrap()),
            ],
            Duration::from_secs(2),
        );
        assert_eq!(v[..3], ["sh", "-c", SCRIPT]);
        assert_eq!(
            v[3..],
            [
                "container-ops-checks",
                "2",
                "dns",
                "postgres",
                "df",
                "/scratch"
            ]
        );
        assert!(!SCRIPT.contains("postgres") && !SCRIPT.contains("eval"));
    }

    #[test]
    fn the_per_check_bound_is_whole_seconds_under_the_deadline() {
        assert_eq!(
            per_check_timeout(Duration::from_millis(3000)),
            Duration::from_secs(2)
        );
        assert_eq!(
            per_check_timeout(Duration::from_millis(1500)),
            Duration::from_secs(1)
        );
        assert_eq!(
            per_check_timeout(Duration::from_millis(200)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn interleaved_records_are_split_by_index_and_unfinished_checks_are_none() {
        let out = "1|Filesystem 1024-blocks Used\n0|172.20.0.4      postgres\n1|tmpfs 8192 8192\n0=0\nnoise\n7=1\n1=0\n";
        let r = parse_records(out, 3);
        assert_eq!(
            r[0],
            Some(Record {
                exit_code: 0,
                output: "172.20.0.4      postgres".into()
            })
        );
        assert_eq!(
            r[1].as_ref().unwrap().output,
            "Filesystem 1024-blocks Used\ntmpfs 8192 8192"
        );
        assert_eq!(r[2], None);
    }

    /// A directory whose `getent` answers like the real one, except that `hung` never answers.
    fn fake_tools() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let getent = dir.path().join("getent");
        std::fs::write(
            &getent,
            "#!/bin/sh\ncase $2 in hung) sleep 30 ;; nowhere) exit 2 ;; *) echo \"10.0.0.1        $2\" ;; esac\n",
        )
        .unwrap();
        std::fs::set_permissions(&getent, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    fn run_script(checks: &[Check], path_first: &std::path::Path) -> (String, Duration) {
        let v = argv(checks, Duration::from_secs(1));
        let path = format!(
            "{}:{}",
            path_first.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let started = Instant::now();
        let out = Command::new(&v[0])
            .args(&v[1..])
            .env("PATH", path)
            .output()
            .expect("sh runs");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            started.elapsed(),
        )
    }

    #[test]
    fn a_hung_check_times_out_alone_and_the_others_still_report() {
        let tools = fake_tools();
        let checks = [dns("postgres"), dns("hung"), dns("nowhere"), dns("redis")];
        let (out, took) = run_script(&checks, tools.path());
        assert!(took < Duration::from_secs(5), "took {took:?}: {out}");
        let r = parse_records(&out, checks.len());
        let r: Vec<Record> = r.into_iter().map(|x| x.expect(&out)).collect();
        assert_eq!(r[0].output, "10.0.0.1        postgres");
        assert!(r[1].timed_out(), "{:?}", r[1]);
        assert_eq!(r[2].exit_code, 2);
        assert!(!r[2].timed_out());
        assert_eq!(r[3].output, "10.0.0.1        redis");
    }

    #[test]
    fn a_name_with_shell_characters_never_reaches_the_shell_as_text() {
        // DnsName refuses such names at the edge; the script must not depend on that.
        let tools = fake_tools();
        let marker = tools.path().join("ran");
        let evil = format!("x; touch {}", marker.display());
        let v = {
            let mut v = argv(&[], Duration::from_secs(1));
            v.push("dns".into());
            v.push(evil.clone());
            v
        };
        let out = Command::new(&v[0])
            .args(&v[1..])
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    tools.path().display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let r = parse_records(&stdout, 1);
        assert_eq!(
            r[0].as_ref().unwrap().output,
            format!("10.0.0.1        {evil}")
        );
        assert!(!marker.exists(), "the name was run as a command");
    }
}
