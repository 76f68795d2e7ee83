//! The source rules of ARCHITECTURE.md: imports point down the layers and never in a circle, and no platform's names live in the logic.
//!
//! core ← infra, ops ← pipeline ← ingress ← app. `infra` and `ops` are siblings: neither
//! imports the other. Test code (`#[cfg(test)] mod tests`, `tests.rs` files) is left out, as
//! tests may drive a module through the layers above it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Rank and name of the layer a file belongs to; `None` for the crate root (lib.rs, main.rs).
fn layer(rel: &[String]) -> Option<(u8, &str)> {
    let top = rel.first()?.as_str();
    let rank = match top {
        "core" => 0,
        "infra" | "ops" => 1,
        "pipeline" => 2,
        "ingress" => 3,
        "app" => 4,
        _ => return None,
    };
    Some((rank, top))
}

/// Text with comments, string and char literals blanked, so a path in a doc comment or a
/// message is not taken for an import.
fn code_only(text: &str) -> String {
    strip(text, false)
}

/// Text with comments blanked (string literals kept when `keep_strings`).
fn strip(text: &str, keep_strings: bool) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
            out.push(' ');
            i += end;
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let start = 2 + hashes;
            let end = rest[start..]
                .find(&close)
                .map_or(rest.len(), |e| start + e + close.len());
            out.push_str("\"\"");
            i += end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            out.push_str(if keep_strings { &text[i..end] } else { "\"\"" });
            i = end;
        } else if b[i] == b'\'' && is_char_literal(rest) {
            let len = rest[1..].find('\'').map_or(1, |e| e + 2);
            out.push_str("' '");
            i += len;
        } else {
            let c = rest.chars().next().expect("not at the end");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `'a'`, `'\n'`, `'\u{1F600}'`, as opposed to a lifetime `'a`.
fn is_char_literal(s: &str) -> bool {
    let mut cs = s.chars().skip(1);
    match cs.next() {
        Some('\\') => true,
        Some(_) => cs.next() == Some('\''),
        None => false,
    }
}

/// The code without `#[cfg(test)] mod … { … }` blocks.
fn without_test_modules(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find(['{', ';']) else {
            return out;
        };
        if after.as_bytes()[open] == b';' {
            rest = &after[open + 1..];
            continue;
        }
        let mut depth = 0usize;
        let mut end = after.len();
        for (k, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

struct Crate {
    /// Module path → file, relative to src/.
    modules: BTreeMap<Vec<String>, PathBuf>,
}

impl Crate {
    fn read(src: &Path) -> (Self, BTreeMap<PathBuf, String>) {
        let mut modules = BTreeMap::new();
        let mut texts = BTreeMap::new();
        for p in rust_files(src) {
            let rel = p.strip_prefix(src).expect("under src").to_path_buf();
            let mut parts: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            // Test-only files, and the binary, which is a crate of its own.
            if parts.last().is_some_and(|l| l == "tests") || rel == Path::new("main.rs") {
                continue;
            }
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&p).expect("read file");
            texts.insert(rel.clone(), without_test_modules(&code_only(&text)));
            modules.insert(parts, rel);
        }
        (Self { modules }, texts)
    }

    fn module_of(&self, file: &Path) -> Vec<String> {
        self.modules
            .iter()
            .find(|(_, f)| f.as_path() == file)
            .map(|(m, _)| m.clone())
            .expect("known file")
    }

    /// The file that defines the longest module prefix of `path`.
    fn owner(&self, path: &[String]) -> Option<&PathBuf> {
        (0..=path.len())
            .rev()
            .find_map(|n| self.modules.get(&path[..n]))
    }
}

/// Every module path a file's code names: `crate::a::b`, `super::x`, `self::y`, and the
/// items of `crate::a::{b, c::d}` groups.
fn referenced_paths(module: &[String], code: &str) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let boundary = i == 0 || !ident(code[..i].chars().next_back().unwrap_or(' '));
        let start = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|p| boundary && rest.starts_with(p));
        let Some(prefix) = start else {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let mut base: Vec<String> = match prefix {
            "crate::" => Vec::new(),
            "self::" => module.to_vec(),
            _ => module[..module.len().saturating_sub(1)].to_vec(),
        };
        let mut j = i + prefix.len();
        // further `super::`
        while code[j..].starts_with("super::") {
            base.pop();
            j += "super::".len();
        }
        loop {
            let seg: String = code[j..].chars().take_while(|c| ident(*c)).collect();
            if seg.is_empty() {
                break;
            }
            j += seg.len();
            base.push(seg);
            if code[j..].starts_with("::") && code[j + 2..].starts_with(|c: char| ident(c)) {
                j += 2;
            } else {
                break;
            }
        }
        if code[j..].starts_with("::{") {
            let close = code[j..].find('}').map_or(code.len(), |c| j + c);
            for item in code[j + 3..close].split(',') {
                let first: Vec<String> = item
                    .trim()
                    .split("::")
                    .map(|s| s.trim().to_owned())
                    .take_while(|s| !s.is_empty() && s.chars().all(ident))
                    .collect();
                if !first.is_empty() && first[0] != "self" {
                    out.push([base.clone(), first].concat());
                }
            }
            j = close;
        }
        out.push(base);
        i = j.max(i + 1);
    }
    out
}

/// What is wrong with the tree under `src`: upward or sideways imports, and import circles.
fn violations(src: &Path) -> Vec<String> {
    let (krate, texts) = Crate::read(src);
    let mut edges: BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (file, code) in &texts {
        let module = krate.module_of(file);
        for path in referenced_paths(&module, code) {
            let Some(target) = krate.owner(&path) else {
                continue;
            };
            if target == file || krate.module_of(target).is_empty() {
                continue;
            }
            let name = path.join("::");
            edges
                .entry(file.clone())
                .or_default()
                .entry(target.clone())
                .or_default()
                .insert(name.clone());
            let target_module = krate.module_of(target);
            let (from, to) = (layer(&module), layer(&target_module));
            if let (Some((fr, fname)), Some((tr, tname))) = (from, to)
                && fname != tname
                && tr >= fr
            {
                problems.push(format!(
                    "{} ({fname}) imports `crate::{name}` from {} ({tname}): layers point down only",
                    file.display(),
                    target.display()
                ));
            }
        }
    }
    for circle in circles(&edges) {
        let mut lines = vec![format!("import circle among {} files:", circle.len())];
        for f in &circle {
            for (to, names) in edges.get(f).into_iter().flatten() {
                if circle.contains(to) {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    lines.push(format!(
                        "  {} -> {}: {}",
                        f.display(),
                        to.display(),
                        names.join(", ")
                    ));
                }
            }
        }
        problems.push(lines.join("\n"));
    }
    problems.sort();
    problems.dedup();
    problems
}

/// Strongly connected groups of more than one file (Tarjan).
fn circles(edges: &BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>>) -> Vec<Vec<PathBuf>> {
    struct State<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        on: BTreeSet<&'a PathBuf>,
        stack: Vec<&'a PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a PathBuf) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.edges.get(v).into_iter().flat_map(|m| m.keys()) {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on: BTreeSet::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn imports_in_src_point_down_the_layers_and_never_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = violations(&src);
    assert!(
        problems.is_empty(),
        "the layering rule of ARCHITECTURE.md is broken:\n{}",
        problems.join("\n")
    );
}

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    dir
}

#[test]
fn the_check_reports_an_import_that_runs_back_up() {
    let dir = tree(&[
        ("lib.rs", "pub mod core;\npub mod pipeline;\n"),
        ("core/mod.rs", "pub mod error;\n"),
        ("core/error.rs", "use crate::pipeline::STORE_DOWN;\n"),
        ("pipeline/mod.rs", "pub const STORE_DOWN: &str = \"\";\n"),
    ]);
    let problems = violations(dir.path());
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("core/error.rs (core) imports `crate::pipeline::STORE_DOWN`"),
        "{problems:#?}"
    );
}

#[test]
fn the_check_reports_siblings_importing_each_other_and_circles_inside_a_layer() {
    let dir = tree(&[
        ("lib.rs", "pub mod core;\npub mod infra;\npub mod ops;\n"),
        ("core/mod.rs", "pub mod a;\npub mod b;\n"),
        ("core/a.rs", "use super::b::B;\npub struct A;\n"),
        ("core/b.rs", "pub struct B(crate::core::a::A);\n"),
        ("infra/mod.rs", "use crate::ops::Op;\n"),
        ("ops/mod.rs", "pub struct Op;\n"),
    ]);
    let problems = violations(dir.path()).join("\n");
    assert!(
        problems.contains("infra/mod.rs (infra) imports `crate::ops::Op`"),
        "{problems}"
    );
    assert!(
        problems.contains("import circle among 2 files"),
        "{problems}"
    );
    assert!(
        problems.contains("core/a.rs -> core/b.rs: core::b::B"),
        "{problems}"
    );
}

#[test]
fn the_check_ignores_test_modules_comments_and_strings() {
    let dir = tree(&[
        ("lib.rs", "pub mod core;\npub mod app;\n"),
        (
            "core/mod.rs",
            "//! See [`crate::app::run`].\nconst S: &str = \"crate::app::run\";\n#[cfg(test)]\nmod tests {\n    use crate::app::run;\n    fn f() { let _ = '{'; }\n}\n",
        ),
        ("app/mod.rs", "pub fn run() { crate::core::S; }\n"),
    ]);
    assert_eq!(violations(dir.path()), Vec::<String>::new());
}

/// The seed platform's names: logic that carries one would act on riftwing alone. Its facts
/// belong in `deploy/platform.toml` and the settings (tests and the test double may name it).
const SEED_PLATFORM_NAMES: &[&str] = &[
    "riftwing",
    "rewst",
    "api-1",
    "api-2",
    "worker-1",
    "worker-2",
    "api-gateway",
    "ai-gateway",
    "mcp-server",
    "db-backup",
    "minio",
    "backup.sh",
    "/backups",
];

/// Lines of non-test code under `src` (comments left out, strings kept) that name one.
fn seed_names_in_logic(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for p in rust_files(src) {
        let test_only = p
            .file_name()
            .is_some_and(|n| n == "tests.rs" || n == "fake.rs");
        if test_only {
            continue;
        }
        let text = std::fs::read_to_string(&p).expect("read file");
        let code = without_test_modules(&strip(&text, true));
        for (n, line) in code.lines().enumerate() {
            if let Some(name) = SEED_PLATFORM_NAMES.iter().find(|w| line.contains(*w)) {
                found.push(format!(
                    "{}:{}: `{name}` in {}",
                    p.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    found
}

#[test]
fn the_logic_names_no_service_of_the_seeds_platform() {
    let found = seed_names_in_logic(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        found.is_empty(),
        "platform facts belong in deploy/platform.toml, not in the code:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_name_check_sees_strings_but_not_comments_or_tests() {
    let dir = tree(&[
        (
            "a.rs",
            "// db-backup runs the script\nconst S: &str = \"db-backup\";\n",
        ),
        (
            "b.rs",
            "/// See minio.\nfn f() {}\n#[cfg(test)]\nmod tests {\n    const X: &str = \"api-1\";\n}\n",
        ),
    ]);
    let found = seed_names_in_logic(dir.path());
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("a.rs:2: `db-backup`"), "{found:#?}");
}
