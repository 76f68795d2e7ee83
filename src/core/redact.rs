//! Secret redaction: every piece of text the bot emits (chat, logs, audit) passes through here first.
//!
//! Built-in rules are compiled once. A `RegexSet` over all rules is the prefilter: ordinary
//! log text is scanned once and returned untouched; only the rules that match run their
//! replacement. Rules keep enough context to read the line (`password=****`,
//! `postgres://app:****@postgres:5432/app`, `ghp_****`) and mask only the secret part.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use regex::{Captures, Regex, RegexSet};

pub const MASK: &str = "****";

/// Learned values shorter than this are ignored: they would mask ordinary words.
const MIN_LEARNED_LEN: usize = 6;

/// `S3_ACCESS_KEY`, `AWS_ACCESS_KEY_ID`, `accessKeyId`: the identifier that goes with a
/// secret key.
fn is_key_id_name(name: &str) -> bool {
    let words = split_name(name);
    let n = words.len();
    let ends = |tail: &[&str]| n >= tail.len() && words[n - tail.len()..] == *tail;
    // `AWS_SECRET_ACCESS_KEY` is the secret itself.
    if words.iter().any(|w| w.contains("SECRET")) {
        return false;
    }
    ends(&["ACCESS", "KEY"])
        || ends(&["ACCESS", "KEY", "ID"])
        || ends(&["KEY", "ID"])
        || ends(&["ACCESSKEY"])
        || ends(&["ACCESSKEY", "ID"])
        || ends(&["ACCESSKEYID"])
}

/// A value worth masking wherever it recurs: long, or mixing kinds of characters. An ordinary
/// word (`riftwing`, `postgres`) would mask every mention of a name that happens to be used
/// as a password; a secret-named variable still has its own value masked in `/config`.
fn looks_like_secret(v: &str) -> bool {
    let v = v.trim();
    let n = v.chars().count();
    if n < MIN_LEARNED_LEN {
        return false;
    }
    if n >= 16 {
        return true;
    }
    let kinds = [
        v.chars().any(|c| c.is_lowercase()),
        v.chars().any(|c| c.is_uppercase()),
        v.chars().any(|c| c.is_ascii_digit()),
        v.chars().any(|c| !c.is_alphanumeric()),
    ];
    kinds.iter().filter(|k| **k).count() >= 2
}

/// True for env var names (or free-text keys) that look secret.
///
/// The name is split into words on `_`, `-`, `.` and camelCase humps, so `API_KEY`,
/// `x-api-key` and `apiKey` agree. The last secret-looking word decides, unless a
/// following word says the variable describes the secret rather than holds it
/// (`PASSWORD_FILE`, `TOKEN_TTL`, `PASSWORD_MIN_LENGTH`).
pub fn is_secret_name(name: &str) -> bool {
    let words = split_name(name);
    // The shell's working directory, present in every `env` dump; `DB_PWD` still counts.
    if words.len() == 1 && words[0] == "PWD" {
        return false;
    }
    let Some(last) = (0..words.len()).rev().find(|&i| secret_word(&words, i)) else {
        return false;
    };
    !words[last + 1..]
        .iter()
        .any(|w| DESCRIPTORS.contains(&w.as_str()))
}

/// Words after a secret word that make the variable a setting about the secret.
const DESCRIPTORS: &[&str] = &[
    "FILE",
    "PATH",
    "DIR",
    "URL",
    "URI",
    "ENDPOINT",
    "HOST",
    "PORT",
    "TTL",
    "EXPIRY",
    "EXPIRES",
    "EXPIRATION",
    "LIFETIME",
    "TIMEOUT",
    "MIN",
    "MAX",
    "LENGTH",
    "LEN",
    "SIZE",
    "BITS",
    "LIMIT",
    "COUNT",
    "PREFIX",
    "PATTERN",
    "NAME",
    "HEADER",
    "FIELD",
    "COLUMN",
    "TYPE",
    "ALGORITHM",
    "ALG",
    "FORMAT",
    "MODE",
    "POLICY",
    "ENABLED",
    "DISABLED",
    "REQUIRED",
    "ROTATION",
    "RESET",
    "HINT",
    "LABEL",
    "VERSION",
    "BUCKET",
    "REFILL",
    "RATE",
    "AUDIENCE",
    "ISSUER",
    "SCOPE",
    "SCOPES",
    "STORE",
    "PROVIDER",
    "METHOD",
    "STRATEGY",
    "USER",
    "USERNAME",
];

/// Words before `KEY` that name a lookup key, not a cryptographic one.
const KEY_QUALIFIERS: &[&str] = &[
    "PUBLIC",
    "PRIMARY",
    "FOREIGN",
    "PARTITION",
    "SORT",
    "HASH",
    "RANGE",
    "CACHE",
    "IDEMPOTENCY",
    "ROUTING",
    "SHARD",
    "OBJECT",
    "S3",
    "BUCKET",
    "DEDUP",
    "DEDUPE",
    "LOCK",
    "REDIS",
    "GROUP",
    "LOOKUP",
    "UNIQUE",
    "COMPOSITE",
    "SEARCH",
    "MAP",
    "INDEX",
    "QUEUE",
    "TENANT",
    "HOT",
    "RATE",
    "LIMIT",
];

/// Words before `TOKEN` that name a cursor or a control handle, not a credential.
const TOKEN_QUALIFIERS: &[&str] = &[
    "PAGE",
    "NEXT",
    "CONTINUATION",
    "PAGINATION",
    "CURSOR",
    "SYNC",
    "CANCELLATION",
    "CANCEL",
    "MAX",
];

const KEY_COMPOUNDS: &[&str] = &[
    "APIKEY",
    "ACCESSKEY",
    "SECRETKEY",
    "PRIVATEKEY",
    "MASTERKEY",
    "SIGNINGKEY",
    "ENCRYPTIONKEY",
    "LICENSEKEY",
];

fn secret_word(words: &[String], i: usize) -> bool {
    let w = words[i].as_str();
    let prev = i.checked_sub(1).map(|p| words[p].as_str());
    if (w.contains("PASSWORD") || w.contains("PASSWD") || w.contains("PASSPHRASE"))
        || (w.contains("SECRET") && !w.contains("SECRETARY"))
    {
        return true;
    }
    match w {
        "PWD" | "DSN" | "CREDENTIAL" | "CREDENTIALS" | "CREDS" | "SIGNATURE" | "SIG" => true,
        // `KEY` alone is too common in free text (Redis keys, object keys).
        "KEY" => prev.is_some_and(|p| !KEY_QUALIFIERS.contains(&p)),
        // `*_AUTH` only: `AUTH_MODE` is a setting.
        "AUTH" => prev.is_some() && i + 1 == words.len(),
        _ if KEY_COMPOUNDS.contains(&w) => true,
        _ if w.ends_with("TOKEN") => !prev.is_some_and(|p| TOKEN_QUALIFIERS.contains(&p)),
        _ => false,
    }
}

/// Upper-cased words of a name: `data.apiKey` -> `DATA`, `API`, `KEY`.
fn split_name(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_uppercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

type Apply = fn(&Captures) -> String;

struct Rule {
    re: Regex,
    apply: Apply,
}

/// Built-in rules, in the order they run; each sees the output of the ones before it. The
/// PEM block goes first so no line-oriented rule cuts into it, the generic `key=value`
/// rule last so a specific rule has already masked what it recognises.
const RULE_SPECS: &[(&str, Apply)] = &[
    // PEM private keys: the whole body between the armour lines, over any number of lines.
    (
        r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)(?s:.*?)(-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)",
        |c| format!("{}{MASK}{}", &c[1], &c[2]),
    ),
    // A block cut off before its END line (truncated log, `tail`): mask the base64 lines
    // that follow the header, real or `\n`-escaped, and stop at the first other line.
    (
        r"(?m)(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)(?:(?:\r?\n(?:[A-Za-z0-9+/=]{0,100}|Proc-Type:[^\n]*|DEK-Info:[^\n]*)\r?$)+|(?:\\n[A-Za-z0-9+/=]{1,100})+|[ \t]+[A-Za-z0-9+/=]{16,})",
        |c| format!("{}{MASK}", &c[1]),
    ),
    // Authorization headers, in HTTP dumps and JSON header maps.
    (
        r#"(?i)\b((?:proxy-)?authorization\\?["']?[ \t]*[:=][ \t]*\\?["']?)((?:bearer|basic|digest|token|bot|apikey|negotiate|aws4-hmac-sha256)[ \t]+)?([^\s"'\\,;]+)"#,
        |c| {
            let value = &c[3];
            if c.get(2).is_some() || token_like(value) {
                format!("{}{}{MASK}", &c[1], c.get(2).map_or("", |m| m.as_str()))
            } else {
                c[0].to_string()
            }
        },
    ),
    // A bare bearer token (`curl -H ... Bearer xyz`, error messages); prose such as
    // `bearer authentication required` has no digits and stays.
    (r"(?i)\b(Bearer[ \t]+)[A-Za-z0-9._~+/-]{20,}=*", |c| {
        if token_like(&c[0]) {
            format!("{}{MASK}", &c[1])
        } else {
            c[0].to_string()
        }
    }),
    // Cookies carry sessions: every value of `Cookie:`, the first pair of `Set-Cookie:`
    // (the rest are attributes such as `Path=/`).
    (
        r#"(?i)\b((set-)?cookie\\?["']?[ \t]*:[ \t]*\\?["']?)([^\r\n"\\]+)"#,
        |c| {
            let only_first = c.get(2).is_some();
            let pairs: Vec<String> = c[3]
                .split(';')
                .enumerate()
                .map(|(i, pair)| match pair.split_once('=') {
                    Some((name, value)) if (i == 0 || !only_first) && !value.trim().is_empty() => {
                        format!("{name}={MASK}")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{}{}", &c[1], pairs.join(";"))
        },
    ),
    // JWTs: header `{"` is `eyJ` in base64url; the signature may be empty (`alg: none`).
    (
        r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.(?:[A-Za-z0-9_-]+\b)?",
        |_| MASK.to_string(),
    ),
    // Slack and Discord webhooks: the path is the credential.
    (
        r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+",
        |c| format!("{}{MASK}", &c[1]),
    ),
    (
        r"(https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api(?:/v\d+)?/webhooks/\d+/)[A-Za-z0-9_-]+",
        |c| format!("{}{MASK}", &c[1]),
    ),
    // Passwords in URLs; greedy up to the last `@` so an unescaped `@` in it does not leak.
    (
        r#"(?i)\b([a-z][a-z0-9+.-]{1,20}://[^\s:/@?#"'<>]*:)[^\s/?#"'<>]+@"#,
        |c| format!("{}{MASK}@", &c[1]),
    ),
    // Provider tokens: keep the prefix that says what kind of token it was.
    (r"\b(gh[posur]_)[A-Za-z0-9]{30,}\b", |c| {
        format!("{}{MASK}", &c[1])
    }),
    (r"\b(github_pat_)[A-Za-z0-9_]{20,}\b", |c| {
        format!("{}{MASK}", &c[1])
    }),
    (r"\b(xox[abprs]-|xapp-)[A-Za-z0-9-]{10,}", |c| {
        format!("{}{MASK}", &c[1])
    }),
    (r"\b(AKIA|ASIA)[A-Z0-9]{16}\b", |c| {
        format!("{}{MASK}", &c[1])
    }),
    (r"\b(sk-(?:proj-|ant-)?)[A-Za-z0-9_-]{20,}", |c| {
        if token_like(&c[0]) {
            format!("{}{MASK}", &c[1])
        } else {
            c[0].to_string()
        }
    }),
    (r"\b([rs]k_(?:live|test)_)[A-Za-z0-9]{16,}", |c| {
        format!("{}{MASK}", &c[1])
    }),
    (r"\b(AIza)[A-Za-z0-9_-]{35}", |c| format!("{}{MASK}", &c[1])),
    // Discord bot tokens: the first segment is the base64 of the bot's snowflake id.
    (
        r"\b([A-Za-z0-9_-]{23,28})\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,40}\b",
        |c| {
            if is_base64_snowflake(&c[1]) {
                MASK.to_string()
            } else {
                c[0].to_string()
            }
        },
    ),
    // Redis: `AUTH [user] password` in MONITOR output; the last argument is the password.
    (r#"(?i)("AUTH")((?:[ \t]+"(?:[^"\\\n]|\\[^\n])*")+)"#, |c| {
        static ARG: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r#"[ \t]+"(?:[^"\\\n]|\\[^\n])*""#).expect("built-in pattern compiles")
        });
        let args = &c[2];
        let keep = ARG.find_iter(args).last().map_or(0, |m| m.start());
        format!("{}{} \"{MASK}\"", &c[1], &args[..keep])
    }),
    (
        r#"(\bredis-cli\b[^\n]*?[ \t](?:-a|--pass)[ \t]+)("[^"\n]*"|'[^'\n]*'|\S+)"#,
        |c| format!("{}{}", &c[1], mask_value(&c[2])),
    ),
    (
        r#"(?i)(\b(?:requirepass|masterauth)"?[ \t]+)("[^"\n]*"|'[^'\n]*'|[^\s"']+)"#,
        |c| format!("{}{}", &c[1], mask_value(&c[2])),
    ),
    // SQL: `CREATE ROLE app PASSWORD 'x'`, as Postgres logs it with `log_statement`.
    (
        r#"(?i)(\bPASSWORD[ \t]+)('(?:[^'\n]|'')*'|"(?:[^"\n]|"")*")"#,
        |c| format!("{}{}", &c[1], mask_value(&c[2])),
    ),
    // `key=value`, `key: value`, `"key":"value"`, `key => value` with a secret-looking key.
    // The value is a quoted string (also `\"`-escaped inside JSON), a `${VAR}` reference, a
    // bare word up to a delimiter, or, for a line cut inside a quote, the rest of the word.
    (
        r#"(?i)(\b[a-z0-9_.-]*(?:pass(?:wd|word|phrase)|pwd|secret|token|key|cred|auth|dsn|sig)[a-z0-9_.-]*)((?:\\?["'])?[ \t]*(?:=>|[:=])[ \t]*)(\\"(?:[^"\\\n]|\\[^"\n])*\\"|"(?:[^"\\\n]|\\[^\n])*"|'(?:[^'\\\n]|\\[^\n])*'|\$\{[^}\s]*\}|[^\s,;&"'<>(){}\[\]]+|["'][^\s,;&"']+)"#,
        |c| {
            let value = &c[3];
            if is_secret_name(&c[1]) && !is_placeholder(value) {
                format!("{}{}{}", &c[1], &c[2], mask_value(value))
            } else {
                c[0].to_string()
            }
        },
    ),
];

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    RULE_SPECS
        .iter()
        .map(|(pattern, apply)| Rule {
            re: Regex::new(pattern).expect("built-in redaction pattern compiles"),
            apply: *apply,
        })
        .collect()
});

static PREFILTER: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new(RULE_SPECS.iter().map(|(p, _)| *p)).expect("built-in redaction set compiles")
});

/// Masks the inside of a quoted value and keeps its quotes (a quote left open by a cut-off
/// line stays open); masks a bare value whole.
fn mask_value(value: &str) -> String {
    for q in ["\\\"", "\"", "'"] {
        if value.len() >= 2 * q.len() && value.starts_with(q) && value.ends_with(q) {
            return format!("{q}{MASK}{q}");
        }
    }
    match value.chars().next() {
        Some(q @ ('"' | '\'')) => format!("{q}{MASK}"),
        _ => MASK.to_string(),
    }
}

/// Values that reveal nothing and keep a line readable when left alone.
fn is_placeholder(value: &str) -> bool {
    let v = value.trim_matches(|c| c == '"' || c == '\'' || c == '\\');
    v.is_empty()
        // Already masked by an earlier rule (`x-access-token:****@github.com`), or PEM
        // armour whose private body the PEM rule owns.
        || v.chars().all(|c| c == '*')
        || v.starts_with(MASK)
        || v.starts_with("-----")
        // References to other variables (`${DB_PASSWORD}`, `$DB_PASSWORD`) in compose files.
        || v.starts_with("${")
        || v.len() > 1
            && v.starts_with('$')
            && v[1..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        || [
            "null",
            "undefined",
            "none",
            "nil",
            "true",
            "false",
            "[redacted]",
            "<redacted>",
            "redacted",
            "[filtered]",
        ]
        .iter()
        .any(|p| v.eq_ignore_ascii_case(p))
}

/// A credential-looking word: long, with both letters and digits.
fn token_like(value: &str) -> bool {
    value.len() >= 16
        && value.chars().any(|c| c.is_ascii_digit())
        && value.chars().any(|c| c.is_ascii_alphabetic())
}

/// True when `segment` is unpadded base64 of a 17-20 digit decimal id (a Discord snowflake).
fn is_base64_snowflake(segment: &str) -> bool {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut digits = 0;
    for c in segment.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return false,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            let byte = (bits >> nbits) & 0xff;
            if !(u32::from(b'0')..=u32::from(b'9')).contains(&byte) {
                return false;
            }
            digits += 1;
        }
    }
    (17..=20).contains(&digits)
}

/// Masks built-in secret patterns and learned literal values. Cheap to clone, `Send + Sync`.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Learned values, longest first so a value never leaks the tail of a longer one.
    literals: Vec<String>,
    /// Variable names whose values are learned whatever they look like (the settings'
    /// `secret_names`), upper-cased.
    always: Vec<String>,
    /// One alternation over `literals`; `None` when empty or too large to compile.
    literal_re: Option<Regex>,
}

impl fmt::Debug for Redactor {
    // Learned values are secrets themselves: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("learned", &self.literals.len())
            .finish()
    }
}

impl Redactor {
    /// Built-in patterns only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Values of these variables are learned whatever they look like (a short or plain
    /// password the team names in the settings).
    pub fn with_secret_names(mut self, names: &[String]) -> Self {
        self.always = names.iter().map(|n| n.to_ascii_uppercase()).collect();
        self
    }

    /// Masks this exact value wherever it appears. Values shorter than 6 characters
    /// (after trimming) are ignored: they would mask ordinary words.
    pub fn learn_secret(&mut self, value: &str) {
        let value = value.trim();
        if value.chars().count() < MIN_LEARNED_LEN
            || value.chars().all(|c| c == '*')
            || self.literals.iter().any(|l| l == value)
        {
            return;
        }
        self.literals.push(value.to_string());
        self.literals
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        let alternation = self
            .literals
            .iter()
            .map(|l| regex::escape(l))
            .collect::<Vec<_>>()
            .join("|");
        // Too many huge values can exceed the regex size limit; fall back to plain search.
        self.literal_re = Regex::new(&alternation).ok();
    }

    /// Learns the values of secret-named variables, and passwords embedded in URLs of any
    /// variable (`DATABASE_URL`), so they are masked wherever they show up later.
    pub fn learn_env(&mut self, pairs: &[(String, String)]) {
        static URL_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r#"(?i)\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@?#"'<>]*:([^\s/?#"'<>]+)@"#)
                .expect("built-in URL pattern compiles")
        });
        for (name, value) in pairs {
            if self.always.iter().any(|a| a.eq_ignore_ascii_case(name)) {
                self.learn_secret(value);
            } else if is_secret_name(name) {
                // An access key id is masked where it is shown, but it is an account's name:
                // learned, it would mask that name everywhere (`S3_ACCESS_KEY=riftwing`).
                if !is_key_id_name(name) && looks_like_secret(value) {
                    self.learn_secret(value);
                }
            } else {
                let found: Vec<String> = URL_PASSWORD
                    .captures_iter(value)
                    .map(|c| c[1].to_string())
                    .filter(|p| looks_like_secret(p))
                    .collect();
                for password in found {
                    self.learn_secret(&password);
                }
            }
        }
    }

    /// Everything secret in `text` replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        let mut out: Cow<'_, str> = Cow::Borrowed(text);
        // Learned values first: a built-in rule could otherwise mask half of one and leave
        // the rest unrecognisable.
        if !self.literals.is_empty() {
            out = match &self.literal_re {
                Some(re) => match re.replace_all(&out, MASK) {
                    Cow::Borrowed(_) => out,
                    Cow::Owned(s) => Cow::Owned(s),
                },
                None => {
                    let mut s = out.into_owned();
                    for l in &self.literals {
                        s = s.replace(l.as_str(), MASK);
                    }
                    Cow::Owned(s)
                }
            };
        }
        let hits = PREFILTER.matches(&out);
        if !hits.matched_any() {
            return out.into_owned();
        }
        for i in hits.iter() {
            let rule = &RULES[i];
            if let Cow::Owned(s) = rule.re.replace_all(&out, |c: &Captures| (rule.apply)(c)) {
                out = Cow::Owned(s);
            }
        }
        out.into_owned()
    }

    /// [`MASK`] for a secret-named variable, otherwise the value with secrets inside it
    /// (a password in `DATABASE_URL`) masked.
    pub fn mask_env(&self, name: &str, value: &str) -> String {
        if is_secret_name(name) {
            MASK.to_string()
        } else {
            self.redact(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_env_names_are_recognised() {
        for name in [
            "POSTGRES_PASSWORD",
            "PGPASSWORD",
            "DB_PASSWD",
            "DB_PWD",
            "JWT_SECRET",
            "SESSION_SECRET",
            "CLIENT_SECRETS",
            "GITHUB_TOKEN",
            "AUTHTOKEN",
            "API_KEY",
            "OPENAI_API_KEY",
            "APIKEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "SSH_PRIVATE_KEY",
            "SECRET_KEY_BASE",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "REGISTRY_CREDENTIAL",
            "REDIS_AUTH",
            "SENTRY_DSN",
            "TLS_PASSPHRASE",
            "X-Amz-Signature",
            "x-api-key",
            "apiKey",
            "clientSecret",
            "accessToken",
            "refresh_token",
            "password",
            "token",
        ] {
            assert!(is_secret_name(name), "{name} should be secret");
        }
    }

    #[test]
    fn names_that_only_contain_a_secret_word_are_not_secret() {
        for name in [
            "KEYBOARD_LAYOUT",
            "MONKEY",
            "HOCKEY_TEAM",
            "KEY",
            "KEYS",
            "PRIMARY_KEY",
            "PUBLIC_KEY",
            "CACHE_KEY_PREFIX",
            "IDEMPOTENCY_KEY",
            "AUTH_MODE",
            "AUTHORIZATION",
            "PWD",
            "OLDPWD",
            "MAX_TOKENS",
            "TOKEN_TTL",
            "TOKEN_BUCKET_SIZE",
            "nextPageToken",
            "PASSWORD_MIN_LENGTH",
            "POSTGRES_PASSWORD_FILE",
            "SECRETARY",
            "DATABASE_URL",
            "POSTGRES_USER",
            "",
            "___",
        ] {
            assert!(!is_secret_name(name), "{name} should not be secret");
        }
    }

    #[test]
    fn mask_env_hides_a_secret_variable_whole_and_only_the_password_of_a_url() {
        let r = Redactor::new();
        assert_eq!(r.mask_env("POSTGRES_PASSWORD", "hunter22"), MASK);
        assert_eq!(r.mask_env("MAX_TOKENS", "4096"), "4096");
        assert_eq!(
            r.mask_env("DATABASE_URL", "postgres://app:hunter22@postgres:5432/app"),
            "postgres://app:****@postgres:5432/app"
        );
    }

    #[test]
    fn a_learned_secret_is_masked_wherever_it_appears() {
        let mut r = Redactor::new();
        r.learn_secret("Zq8vLr2pWx");
        assert_eq!(
            r.redact("retrying with Zq8vLr2pWx (attempt 2), hash(Zq8vLr2pWx)"),
            "retrying with **** (attempt 2), hash(****)"
        );
    }

    #[test]
    fn learned_values_shorter_than_six_characters_are_ignored() {
        let mut r = Redactor::new();
        r.learn_secret("app12");
        r.learn_secret("  ");
        r.learn_secret("******");
        assert_eq!(r.redact("user app12 connected"), "user app12 connected");
        assert_eq!(format!("{r:?}"), "Redactor { learned: 0 }");
    }

    #[test]
    fn surrounding_whitespace_of_a_learned_value_is_not_part_of_it() {
        let mut r = Redactor::new();
        r.learn_secret("hunter2222\n");
        assert_eq!(r.redact("pw hunter2222."), "pw ****.");
    }

    #[test]
    fn a_longer_learned_secret_is_masked_whole_even_when_a_shorter_one_is_its_prefix() {
        let mut r = Redactor::new();
        r.learn_secret("abcdef");
        r.learn_secret("abcdef-and-more");
        assert_eq!(r.redact("x abcdef-and-more y"), "x **** y");
        assert_eq!(r.redact("x abcdef y"), "x **** y");
    }

    #[test]
    fn learn_env_learns_secret_values_and_url_passwords_but_not_ordinary_values() {
        let mut r = Redactor::new();
        r.learn_env(&[
            ("MINIO_ROOT_PASSWORD".into(), "minio-root-pass".into()),
            (
                "DATABASE_URL".into(),
                "postgres://app:Zq8vLr2pWx@postgres:5432/app".into(),
            ),
            ("POSTGRES_DB".into(), "application".into()),
        ]);
        assert_eq!(
            r.redact("mc alias set local http://minio:9000 admin minio-root-pass"),
            "mc alias set local http://minio:9000 admin ****"
        );
        assert_eq!(r.redact("psql -W Zq8vLr2pWx"), "psql -W ****");
        assert_eq!(
            r.redact("database application ready"),
            "database application ready"
        );
    }

    #[test]
    fn access_key_ids_and_ordinary_words_are_not_learned_as_secrets() {
        let mut r = Redactor::new();
        r.learn_env(&[
            ("S3_ACCESS_KEY".into(), "riftwing".into()),
            ("AWS_ACCESS_KEY_ID".into(), "AKIAIOSFODNN7EXAMPLE".into()),
            ("MINIO_SECRET_KEY".into(), "riftwing-s3-secret-key".into()),
            ("POSTGRES_PASSWORD".into(), "postgres".into()),
        ]);
        assert_eq!(
            r.redact("project riftwing on postgres, bucket key riftwing-s3-secret-key"),
            "project riftwing on postgres, bucket key ****"
        );
        for id in [
            "S3_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "accessKeyId",
            "MINIO_ACCESS_KEY",
        ] {
            assert!(is_key_id_name(id), "{id}");
        }
        for secret in ["MINIO_SECRET_KEY", "API_KEY", "AWS_SECRET_ACCESS_KEY"] {
            assert!(!is_key_id_name(secret), "{secret}");
        }
        let mut named = Redactor::new().with_secret_names(&["POSTGRES_PASSWORD".into()]);
        named.learn_env(&[("postgres_password".into(), "postgres".into())]);
        assert_eq!(named.redact("user postgres"), "user ****");
    }

    #[test]
    fn cloning_a_redactor_keeps_what_it_learned_and_later_lessons_stay_local() {
        let mut a = Redactor::new();
        a.learn_secret("first-secret");
        let mut b = a.clone();
        b.learn_secret("second-secret");
        assert_eq!(a.redact("first-secret second-secret"), "**** second-secret");
        assert_eq!(b.redact("first-secret second-secret"), "**** ****");
    }

    #[test]
    fn debug_output_never_shows_learned_values() {
        let mut r = Redactor::new();
        r.learn_secret("do-not-print-me");
        let shown = format!("{r:?}");
        assert!(!shown.contains("do-not-print-me"), "{shown}");
        assert!(shown.contains("learned: 1"), "{shown}");
    }

    #[test]
    fn redaction_is_idempotent() {
        let r = Redactor::new();
        for text in [
            "password=hunter22 token=abcdef123456",
            "postgres://app:hunter22@postgres:5432/app",
            "Authorization: Bearer abcdefghijklmnop1234",
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
            "\"AUTH\" \"default\" \"redis-pass-777\"",
        ] {
            let once = r.redact(text);
            assert_ne!(once, text);
            assert_eq!(r.redact(&once), once, "{text}");
        }
    }

    #[test]
    fn text_without_secrets_comes_back_byte_for_byte() {
        let r = Redactor::new();
        let text = "ünïcödé ✓ api-1 | GET /healthz 200\r\n\tworker-1 | done\n";
        assert_eq!(r.redact(text), text);
        assert_eq!(r.redact(""), "");
    }

    #[test]
    fn a_private_key_in_a_blob_is_masked_without_swallowing_the_following_lines() {
        let r = Redactor::new();
        let text = "a\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\nkqhkiG9w0BAQEF\n-----END PRIVATE KEY-----\nb\n";
        assert_eq!(
            r.redact(text),
            "a\n-----BEGIN PRIVATE KEY-----****-----END PRIVATE KEY-----\nb\n"
        );
    }

    #[test]
    fn a_discord_like_token_whose_first_segment_is_not_a_snowflake_is_left_alone() {
        let r = Redactor::new();
        // Same shape as a bot token, but the first segment decodes to letters.
        let text = "QWJjZGVmZ2hpamtsbW5vcHFyc3R1.abcdef.abcdefghijklmnopqrstuvwxyz0";
        assert_eq!(r.redact(text), text);
        assert!(is_base64_snowflake("MTE4NzQzNTEyMzQ1Njc4OTAxMg"));
        assert!(!is_base64_snowflake("QWJjZGVmZ2hpamtsbW5vcHFyc3R1"));
    }

    #[test]
    fn a_redactor_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Redactor>();
    }

    #[test]
    fn a_megabyte_of_clean_log_comes_back_unchanged() {
        // No timing bound here (timed tests flake on a loaded machine): the regex crate runs
        // in linear time by construction, and redaction speed is measured by `cargo bench
        // --bench logs`, whose path redacts every line.
        let line = "api-1  | 2026-11-30T03:12:44Z INFO GET /v1/runs?tenant=acme&page=2 200 12ms key=ai:cache:9f2c\n";
        let text = line.repeat((1 << 20) / line.len());
        let mut r = Redactor::new();
        r.learn_secret("Zq8vLr2pWx");
        assert_eq!(r.redact(&text), text);
    }

    #[test]
    #[ignore = "timing report, run with --run-ignored"]
    fn throughput_report() {
        let clean = "api-1  | 2026-11-30T03:12:44Z INFO GET /v1/runs?tenant=acme&page=2 200 12ms\n";
        let dirty = "api-1  | connect postgres://app:Zq8vLr2pWx@postgres:5432/app password=hunter22 Authorization: Bearer abcdefghijklmnop1234\n";
        let mut r = Redactor::new();
        r.learn_env(&[("REDIS_PASSWORD".into(), "redis-pass-777".into())]);
        for (name, line) in [("clean", clean), ("dirty", dirty)] {
            let text = line.repeat((4 << 20) / line.len());
            let start = std::time::Instant::now();
            let out = r.redact(&text);
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{name}: {:.1} MiB/s ({} -> {} bytes)",
                4.0 / secs,
                text.len(),
                out.len()
            );
        }
    }
}
