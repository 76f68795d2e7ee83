//! PLACEHOLDER for the redaction engine (owned by helper `redact`): same API, simple behaviour.
//! The lead replaces this file with the real engine at merge.

pub const MASK: &str = "****";

/// True for env var names that look secret.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["PASSWORD", "SECRET", "TOKEN", "PRIVATE", "CREDENTIAL"]
        .iter()
        .any(|w| n.contains(w))
        || n.ends_with("_KEY")
        || n == "API_KEY"
        || n.contains("ACCESS_KEY")
}

#[derive(Clone, Default)]
pub struct Redactor {
    literals: Vec<String>,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn learn_secret(&mut self, value: &str) {
        if value.chars().count() >= 6 && !self.literals.iter().any(|l| l == value) {
            self.literals.push(value.to_owned());
            // Longest first so a secret containing another is masked whole.
            self.literals.sort_by_key(|l| std::cmp::Reverse(l.len()));
        }
    }

    pub fn learn_env(&mut self, pairs: &[(String, String)]) {
        for (k, v) in pairs {
            if is_secret_name(k) {
                self.learn_secret(v);
            }
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for l in &self.literals {
            out = out.replace(l.as_str(), MASK);
        }
        mask_url_passwords(&out)
    }

    pub fn mask_env(&self, name: &str, value: &str) -> String {
        if is_secret_name(name) {
            MASK.to_owned()
        } else {
            self.redact(value)
        }
    }
}

/// `scheme://user:password@host` → `scheme://user:****@host`.
fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.find(':'), authority.rfind('@')) {
            (Some(c), Some(a)) if c < a => {
                out.push_str(&authority[..=c]);
                out.push_str(MASK);
                out.push_str(&authority[a..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}
