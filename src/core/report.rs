//! The neutral report model every operation returns, and its Markdown renderer with a size limit.

use std::fmt::Write as _;

use crate::core::redact::Redactor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Success,
    Warning,
    Error,
}

impl Severity {
    fn icon(self) -> &'static str {
        match self {
            Severity::Info => "ℹ️",
            Severity::Success => "✅",
            Severity::Warning => "⚠️",
            Severity::Error => "❌",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A section heading; `level` 2 is a report's own title, 3 its sections.
    Heading {
        level: u8,
        text: String,
    },
    Text(String),
    /// Quoted observations (log lines, answers), one per line.
    Quote(Vec<String>),
    Fields(Vec<(String, String)>),
    Table {
        headers: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// Preformatted output (logs, env). `name` is used if it has to become an attachment.
    Code {
        name: String,
        lang: String,
        text: String,
    },
    List {
        ordered: bool,
        items: Vec<String>,
    },
}

/// A file that goes with the message. Always whole: never truncated.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub title: String,
    pub severity: Severity,
    pub blocks: Vec<Block>,
    pub attachments: Vec<Attachment>,
}

impl Report {
    pub fn new(title: impl Into<String>, severity: Severity) -> Self {
        Self {
            title: title.into(),
            severity,
            blocks: Vec::new(),
            attachments: Vec::new(),
        }
    }

    pub fn with(mut self, block: Block) -> Self {
        self.blocks.push(block);
        self
    }

    pub fn push(&mut self, block: Block) {
        self.blocks.push(block);
    }

    /// Runs every string through the redactor: the last step before a report leaves the core.
    pub fn redact(&mut self, r: &Redactor) {
        let red = |s: &mut String| *s = r.redact(s);
        red(&mut self.title);
        for b in &mut self.blocks {
            match b {
                Block::Text(t) | Block::Heading { text: t, .. } => red(t),
                Block::Quote(lines) => lines.iter_mut().for_each(red),
                Block::Fields(f) => f.iter_mut().for_each(|(k, v)| {
                    red(k);
                    red(v)
                }),
                Block::Table { headers, rows } => {
                    headers.iter_mut().for_each(red);
                    rows.iter_mut().flatten().for_each(red);
                }
                Block::Code { text, .. } => red(text),
                Block::List { items, .. } => items.iter_mut().for_each(red),
            }
        }
        for a in &mut self.attachments {
            red(&mut a.body);
        }
    }

    /// Every string of the report, for tests that check nothing secret is left.
    pub fn all_text(&self) -> String {
        let mut md = render_block_list(self);
        for a in &self.attachments {
            md.push_str(&a.body);
        }
        md
    }
}

/// A message ready for a text chat: the body fits the limit, the rest is in attachments.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub text: String,
    pub attachments: Vec<Attachment>,
}

/// Markdown of the whole report, with no size limit.
fn render_block_list(r: &Report) -> String {
    let mut s = format!("{} **{}**\n", r.severity.icon(), r.title);
    if !r.blocks.is_empty() {
        s.push('\n');
        s.push_str(&render_blocks(&r.blocks));
    }
    s
}

/// Markdown of a run of blocks: a blank line between blocks, none after a heading.
pub fn render_blocks(blocks: &[Block]) -> String {
    join_blocks(&blocks.iter().collect::<Vec<_>>())
}

fn join_blocks(blocks: &[&Block]) -> String {
    let mut s = String::new();
    for (i, b) in blocks.iter().enumerate() {
        let after_heading = i > 0 && matches!(blocks[i - 1], Block::Heading { .. });
        if i > 0 && (!after_heading || matches!(b, Block::Heading { .. })) {
            s.push('\n');
        }
        s.push_str(&render_block(b));
    }
    s
}

/// Quotes and list items stay one line each: a line break or a fence in a log line must not
/// end the quote or open a code block.
fn quote_line(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    flat.replace("```", "'''")
}

fn render_block(b: &Block) -> String {
    let mut s = String::new();
    match b {
        Block::Heading { level, text } => {
            let _ = writeln!(s, "{} {text}", "#".repeat(usize::from(*level).clamp(1, 6)));
        }
        Block::Text(t) => {
            s.push_str(t);
            s.push('\n');
        }
        Block::Quote(lines) => {
            for l in lines {
                let _ = writeln!(s, "> {}", quote_line(l));
            }
        }
        Block::Fields(f) => {
            for (k, v) in f {
                let _ = writeln!(s, "**{k}:** {v}");
            }
        }
        Block::Table { headers, rows } => s.push_str(&table(headers, rows)),
        Block::Code { lang, text, .. } => {
            let fence = fence_for(text);
            let _ = writeln!(s, "{fence}{lang}\n{}\n{fence}", text.trim_end_matches('\n'));
        }
        Block::List { ordered, items } => {
            for (i, it) in items.iter().enumerate() {
                let it = quote_line(it);
                if *ordered {
                    let _ = writeln!(s, "{}. {it}", i + 1);
                } else {
                    let _ = writeln!(s, "- {it}");
                }
            }
        }
    }
    s
}

/// A table as an aligned monospace block: chat clients render Markdown tables poorly.
fn table(headers: &[String], rows: &[Vec<String>]) -> String {
    let body = text_table(headers, rows);
    let fence = fence_for(&body);
    format!("{fence}\n{body}{fence}\n")
}

/// A code fence no line of `text` can close: more backticks than any run in it, at least three.
fn fence_for(text: &str) -> String {
    "`".repeat(longest_backtick_run(text).max(2) + 1)
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// A value a person typed, as an inline code span nothing in it can end (fenced with more
/// backticks than any run inside, line breaks flattened): chat clients render no link, mention
/// or emphasis in it.
pub fn code(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let fence = "`".repeat(longest_backtick_run(&flat) + 1);
    // A span that starts or ends with a backtick needs a space between it and the fence.
    if flat.starts_with('`') || flat.ends_with('`') || flat.is_empty() {
        format!("{fence} {flat} {fence}")
    } else {
        format!("{fence}{flat}{fence}")
    }
}

/// Prose a person typed (an incident title, a reason), with Markdown's special characters
/// escaped so that it reads as typed and links nothing.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '~' | '|' | '>' | '<' | '[' | ']' | '(' | ')' | '@' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Columns aligned with spaces, one line per row, for terminals and code blocks.
pub fn text_table(headers: &[String], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate().take(cols) {
            if i + 1 == cols {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<width$}  ", width = w[i]);
            }
        }
        l.trim_end().to_owned()
    };
    let mut s = line(headers);
    s.push('\n');
    for r in rows {
        s.push_str(&line(r));
        s.push('\n');
    }
    s
}

fn block_as_attachment(b: &Block, fallback: &str) -> Attachment {
    match b {
        Block::Code { name, text, .. } => Attachment {
            name: name.clone(),
            content_type: "text/plain".into(),
            body: text.clone(),
        },
        other => Attachment {
            name: fallback.to_owned(),
            content_type: "text/markdown".into(),
            body: render_block(other),
        },
    }
}

fn unique_name(name: &str, taken: &[Attachment]) -> String {
    if !taken.iter().any(|a| a.name == name) {
        return name.to_owned();
    }
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, "txt"));
    (2..)
        .map(|i| format!("{stem}-{i}.{ext}"))
        .find(|n| !taken.iter().any(|a| a.name == *n))
        .expect("unbounded")
}

/// Renders within `limit` characters: the largest blocks move, whole, into attachments
/// until the message fits, and the message says which attachment holds what.
pub fn render_markdown(report: &Report, limit: usize) -> Rendered {
    let mut attachments = report.attachments.clone();
    let mut blocks: Vec<Option<Block>> = report.blocks.iter().cloned().map(Some).collect();
    let mut notes: Vec<String> = attachments
        .iter()
        .map(|a| format!("📎 `{}` attached ({}).", a.name, size_of(&a.body)))
        .collect();
    loop {
        let text = assemble(report, &blocks, &notes);
        if text.chars().count() <= limit {
            return Rendered { text, attachments };
        }
        // Move the largest remaining block out.
        let largest = blocks
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.as_ref().map(|b| (i, render_block(b).chars().count())))
            .max_by_key(|(_, n)| *n);
        let Some((i, _)) = largest else { break };
        let b = blocks[i].take().expect("present");
        let mut a = block_as_attachment(&b, &format!("part-{}.md", i + 1));
        a.name = unique_name(&a.name, &attachments);
        notes.push(format!(
            "📎 Output too long for one message: `{}` is attached whole ({}).",
            a.name,
            size_of(&a.body)
        ));
        attachments.push(a);
    }
    // Even the title and notes do not fit: the whole report becomes one attachment.
    let full = Attachment {
        name: unique_name("report.md", &attachments),
        content_type: "text/markdown".into(),
        body: render_block_list(report),
    };
    let head: String = report
        .title
        .chars()
        .take(limit.saturating_sub(120))
        .collect();
    let text = format!(
        "{} **{}**\n📎 The report is too long for one message: `{}` is attached whole.\n",
        report.severity.icon(),
        head,
        full.name
    );
    let mut all = report.attachments.clone();
    all.push(full);
    Rendered {
        text,
        attachments: all,
    }
}

fn assemble(report: &Report, blocks: &[Option<Block>], notes: &[String]) -> String {
    let mut s = format!("{} **{}**\n", report.severity.icon(), report.title);
    let present: Vec<&Block> = blocks.iter().flatten().collect();
    if !present.is_empty() {
        s.push('\n');
        s.push_str(&join_blocks(&present));
    }
    if !notes.is_empty() {
        s.push('\n');
        for n in notes {
            s.push_str(n);
            s.push('\n');
        }
    }
    s
}

fn size_of(body: &str) -> String {
    format!("{} lines, {} bytes", body.lines().count(), body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(n: usize) -> String {
        (0..n)
            .map(|i| {
                format!(
                    "2026-11-30T03:00:{:02}Z api-1 | request {i} handled",
                    i % 60
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn short_report_renders_inline_with_its_blocks() {
        let r = Report::new("Status of riftwing", Severity::Info)
            .with(Block::Table {
                headers: vec!["service".into(), "state".into()],
                rows: vec![vec!["api-1".into(), "running".into()]],
            })
            .with(Block::Fields(vec![("Restarts".into(), "0".into())]))
            .with(Block::List {
                ordered: true,
                items: vec!["check".into(), "restart".into()],
            });
        let out = render_markdown(&r, 2000);
        assert!(out.attachments.is_empty());
        assert!(out.text.contains("api-1    running"), "{}", out.text);
        assert!(out.text.contains("**Restarts:** 0"));
        assert!(out.text.contains("2. restart"));
    }

    #[test]
    fn long_logs_become_a_whole_attachment_and_the_message_says_so() {
        let body = logs(500);
        let r = Report::new("Logs of api-1", Severity::Info)
            .with(Block::Text("500 lines".into()))
            .with(Block::Code {
                name: "logs-api-1.txt".into(),
                lang: String::new(),
                text: body.clone(),
            });
        let out = render_markdown(&r, 2000);
        assert!(out.text.chars().count() <= 2000);
        assert_eq!(out.attachments.len(), 1);
        assert_eq!(out.attachments[0].name, "logs-api-1.txt");
        assert_eq!(
            out.attachments[0].body, body,
            "attachment must be the whole output"
        );
        assert!(
            out.text.contains("`logs-api-1.txt` is attached whole"),
            "{}",
            out.text
        );
        assert!(out.text.contains("500 lines"));
    }

    #[test]
    fn a_huge_title_moves_the_whole_report_to_an_attachment() {
        let r = Report::new("x".repeat(5000), Severity::Warning).with(Block::Text("body".into()));
        let out = render_markdown(&r, 2000);
        assert!(out.text.chars().count() <= 2000);
        let full = out
            .attachments
            .iter()
            .find(|a| a.name == "report.md")
            .unwrap();
        assert!(full.body.contains(&"x".repeat(5000)) && full.body.contains("body"));
    }

    #[test]
    fn typed_values_become_code_spans_nothing_inside_can_end() {
        assert_eq!(code("api-1"), "`api-1`");
        assert_eq!(
            code("[Approve request here](https://evil.example)"),
            "`[Approve request here](https://evil.example)`"
        );
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("``x``"), "``` ``x`` ```");
        assert_eq!(code("two\nlines"), "`two lines`");
        assert_eq!(code(""), "`  `");
    }

    #[test]
    fn typed_prose_is_escaped_so_it_links_and_styles_nothing() {
        assert_eq!(
            escape("[Approve](https://evil.example) **now** @everyone"),
            "\\[Approve\\]\\(https://evil.example\\) \\*\\*now\\*\\* \\@everyone"
        );
        assert_eq!(escape("API 502s since 14:05"), "API 502s since 14:05");
    }

    #[test]
    fn code_blocks_and_tables_are_fenced_longer_than_any_backticks_inside() {
        let r = Report::new("t", Severity::Info)
            .with(Block::Table {
                headers: vec!["k".into()],
                rows: vec![vec!["```\n[x](https://e)".into()]],
            })
            .with(Block::Code {
                name: "a.txt".into(),
                lang: String::new(),
                text: "````".into(),
            });
        let md = render_markdown(&r, 4000).text;
        assert!(md.contains("````\nk"), "{md}");
        assert!(md.contains("`````\n````\n`````"), "{md}");
    }

    #[test]
    fn redaction_reaches_every_block_and_attachment() {
        let mut red = Redactor::new();
        red.learn_secret("hunter2hunter2");
        let mut r = Report::new("t", Severity::Info)
            .with(Block::Text("pw hunter2hunter2".into()))
            .with(Block::Table {
                headers: vec!["k".into()],
                rows: vec![vec!["hunter2hunter2".into()]],
            })
            .with(Block::Code {
                name: "a.txt".into(),
                lang: String::new(),
                text: "x hunter2hunter2".into(),
            });
        r.attachments.push(Attachment {
            name: "b".into(),
            content_type: "text/plain".into(),
            body: "hunter2hunter2".into(),
        });
        r.redact(&red);
        assert!(!r.all_text().contains("hunter2hunter2"));
    }
}
