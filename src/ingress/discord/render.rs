//! The neutral Report (or a refusal) as Discord messages that respect every Discord limit by construction.

use crate::core::error::PipelineError;
use crate::core::report::{Attachment, Report, Severity, render_markdown};

/// Discord's documented limits. Lengths are counted in UTF-16 code units, which is never
/// less than what Discord counts, so a message within them is always accepted.
pub mod limits {
    pub const CONTENT: usize = 2_000;
    pub const EMBED_TITLE: usize = 256;
    pub const EMBED_DESCRIPTION: usize = 4_096;
    pub const EMBED_FIELDS: usize = 25;
    pub const FIELD_NAME: usize = 256;
    pub const FIELD_VALUE: usize = 1_024;
    pub const FOOTER: usize = 2_048;
    pub const EMBED_TOTAL: usize = 6_000;
    pub const EMBEDS: usize = 10;
    pub const ACTION_ROWS: usize = 5;
    pub const BUTTONS_PER_ROW: usize = 5;
    pub const CUSTOM_ID: usize = 100;
    pub const FILES: usize = 10;
    /// Discord's default per-file limit is 10 MiB; we stay well under it.
    pub const FILE_BYTES: usize = 8 * 1024 * 1024;
    /// Discord accepts 25 MiB per request; we stay under it.
    pub const REQUEST_BYTES: usize = 24 * 1024 * 1024;
}

/// Length as Discord may count it (UTF-16 code units, an upper bound of code points).
pub fn discord_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// One embed; only the fields the bot uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embed {
    pub title: Option<String>,
    pub description: String,
    /// (name, value), shown inline-less in order.
    pub fields: Vec<(String, String)>,
    pub colour: u32,
    pub footer: Option<String>,
}

/// How a button looks; Discord's styles 3 (green) and 4 (red).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonStyle {
    Success,
    Danger,
}

/// A button that sends its `custom_id` back to the bot when clicked.
#[derive(Debug, Clone, PartialEq)]
pub struct Button {
    pub custom_id: String,
    pub label: String,
    pub style: ButtonStyle,
    pub disabled: bool,
}

/// Discord's limit on a button label.
pub const BUTTON_LABEL: usize = 80;

/// A message ready to send: content, embeds, files, buttons (in rows of five) and whether
/// only the invoker sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub content: Option<String>,
    pub embeds: Vec<Embed>,
    pub files: Vec<Attachment>,
    pub buttons: Vec<Button>,
    pub ephemeral: bool,
}

/// The colour of a report's embed, by severity.
pub fn colour(s: Severity) -> u32 {
    match s {
        Severity::Info => 0x3498db,
        Severity::Success => 0x2ecc71,
        Severity::Warning => 0xf1c40f,
        Severity::Error => 0xe74c3c,
    }
}

/// Room kept under the description limit for the UTF-16 margin of emoji and notes.
const DESCRIPTION_BUDGET: usize = limits::EMBED_DESCRIPTION - 96;

/// A report as one or more messages: the first answers the command, the rest follow up
/// (only when files do not fit in one message). Nothing is cut: what does not fit inline
/// is attached whole and the message says so.
pub fn report(r: &Report) -> Vec<Message> {
    let rendered = render_markdown(r, DESCRIPTION_BUDGET);
    let mut description = rendered.text.trim_end().to_owned();
    let mut files = rendered.attachments;
    if discord_len(&description) > limits::EMBED_DESCRIPTION {
        // The Markdown renderer counts characters; a text dense in wide characters can still
        // overflow in UTF-16, so the whole text goes into a file instead.
        files.push(Attachment {
            name: "report.md".into(),
            content_type: "text/markdown".into(),
            body: description.clone(),
        });
        description =
            "📎 The report is too long for one message: `report.md` is attached whole.".into();
    }
    let embed = Embed {
        description,
        colour: colour(r.severity),
        ..Embed::default()
    };
    let mut messages = vec![Message {
        embeds: vec![embed],
        ..Message::default()
    }];
    attach(&mut messages, files);
    messages
}

/// A refusal or failure: short Markdown saying what to do, visible only to the invoker.
pub fn error(e: &PipelineError) -> Vec<Message> {
    text(&e.markdown(), true)
}

/// Plain text as content (ephemeral or not), attached whole if it is longer than a message.
pub fn text(markdown: &str, ephemeral: bool) -> Vec<Message> {
    let markdown = markdown.trim_end();
    if discord_len(markdown) <= limits::CONTENT {
        return vec![Message {
            content: Some(markdown.to_owned()),
            ephemeral,
            ..Message::default()
        }];
    }
    let mut messages = vec![Message {
        content: Some(
            "📎 The answer is too long for one message: `message.md` is attached whole.".into(),
        ),
        ephemeral,
        ..Message::default()
    }];
    attach(
        &mut messages,
        vec![Attachment {
            name: "message.md".into(),
            content_type: "text/markdown".into(),
            body: markdown.to_owned(),
        }],
    );
    messages
}

/// Distributes files over the messages: large files are split on line boundaries into
/// numbered parts, at most `FILES` files and `REQUEST_BYTES` per message; extra files go
/// into follow-up messages that say what they continue.
fn attach(messages: &mut Vec<Message>, files: Vec<Attachment>) {
    let ephemeral = messages.first().is_some_and(|m| m.ephemeral);
    let parts: Vec<Attachment> = files.into_iter().flat_map(split_file).collect();
    let mut current = 0usize;
    let mut bytes = 0usize;
    for part in parts {
        let m = &messages[current];
        if m.files.len() >= limits::FILES || bytes + part.body.len() > limits::REQUEST_BYTES {
            messages.push(Message {
                content: Some("📎 Continued: more attachments of the answer above.".into()),
                ephemeral,
                ..Message::default()
            });
            current = messages.len() - 1;
            bytes = 0;
        }
        bytes += part.body.len();
        messages[current].files.push(part);
    }
}

fn split_file(a: Attachment) -> Vec<Attachment> {
    if a.body.len() <= limits::FILE_BYTES {
        return vec![a];
    }
    let mut chunks: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in a.body.split_inclusive('\n') {
        if !cur.is_empty() && cur.len() + line.len() > limits::FILE_BYTES {
            chunks.push(std::mem::take(&mut cur));
        }
        if line.len() > limits::FILE_BYTES {
            // One enormous line: split at character boundaries.
            let mut rest = line;
            while rest.len() > limits::FILE_BYTES {
                let mut at = limits::FILE_BYTES;
                while !rest.is_char_boundary(at) {
                    at -= 1;
                }
                chunks.push(rest[..at].to_owned());
                rest = &rest[at..];
            }
            cur.push_str(rest);
        } else {
            cur.push_str(line);
        }
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    let n = chunks.len();
    let (stem, ext) = a.name.rsplit_once('.').unwrap_or((&a.name, "txt"));
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, body)| Attachment {
            name: format!("{stem}.part{}of{n}.{ext}", i + 1),
            content_type: a.content_type.clone(),
            body,
        })
        .collect()
}

/// Every Discord limit a message could break, as a list of violations (empty = acceptable).
pub fn violations(m: &Message) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(c) = &m.content
        && discord_len(c) > limits::CONTENT
    {
        v.push(format!("content is {} long", discord_len(c)));
    }
    if m.embeds.len() > limits::EMBEDS {
        v.push(format!("{} embeds", m.embeds.len()));
    }
    let mut total = 0;
    for e in &m.embeds {
        let t = e.title.as_deref().map_or(0, discord_len);
        if t > limits::EMBED_TITLE {
            v.push(format!("embed title is {t} long"));
        }
        let d = discord_len(&e.description);
        if d > limits::EMBED_DESCRIPTION {
            v.push(format!("embed description is {d} long"));
        }
        let f = e.footer.as_deref().map_or(0, discord_len);
        if f > limits::FOOTER {
            v.push(format!("footer is {f} long"));
        }
        if e.fields.len() > limits::EMBED_FIELDS {
            v.push(format!("{} embed fields", e.fields.len()));
        }
        for (name, value) in &e.fields {
            let (n, val) = (discord_len(name), discord_len(value));
            if n == 0 || n > limits::FIELD_NAME {
                v.push(format!("field name `{name}` is {n} long"));
            }
            if val == 0 || val > limits::FIELD_VALUE {
                v.push(format!("field `{name}` value is {val} long"));
            }
            total += n + val;
        }
        total += t + d + f;
    }
    if m.buttons.len() > limits::ACTION_ROWS * limits::BUTTONS_PER_ROW {
        v.push(format!("{} buttons", m.buttons.len()));
    }
    for b in &m.buttons {
        if !(1..=limits::CUSTOM_ID).contains(&discord_len(&b.custom_id)) {
            v.push(format!("custom_id `{}` out of 1..=100", b.custom_id));
        }
        if !(1..=BUTTON_LABEL).contains(&discord_len(&b.label)) {
            v.push(format!("button label `{}` out of 1..=80", b.label));
        }
    }
    if total > limits::EMBED_TOTAL {
        v.push(format!("embeds total {total}"));
    }
    if m.files.len() > limits::FILES {
        v.push(format!("{} files", m.files.len()));
    }
    let mut bytes = 0;
    for f in &m.files {
        if f.body.len() > limits::FILE_BYTES {
            v.push(format!("file {} is {} bytes", f.name, f.body.len()));
        }
        bytes += f.body.len();
    }
    if bytes > limits::REQUEST_BYTES {
        v.push(format!("files total {bytes} bytes"));
    }
    if m.content.as_deref().is_none_or(str::is_empty) && m.embeds.is_empty() && m.files.is_empty() {
        v.push("empty message".into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::UserError;
    use crate::core::report::Block;

    fn all_text(messages: &[Message]) -> String {
        let mut s = String::new();
        for m in messages {
            s.push_str(m.content.as_deref().unwrap_or(""));
            for e in &m.embeds {
                s.push_str(&e.description);
            }
            for f in &m.files {
                s.push_str(&f.body);
            }
        }
        s
    }

    fn assert_ok(messages: &[Message]) {
        assert!(!messages.is_empty());
        for m in messages {
            let v = violations(m);
            assert!(v.is_empty(), "{v:?}");
        }
    }

    /// A deterministic pseudo-random generator so the property tests need no extra crate.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: u64) -> usize {
            (self.next() % n.max(1)) as usize
        }
        fn string(&mut self, max: usize) -> String {
            const ALPHABET: &[&str] = &[
                "a", "b", " ", "\n", "`", "```", "é", "😀", "\u{200b}", "|", "*", "字", "-",
            ];
            let n = self.below(max as u64 + 1);
            (0..n)
                .map(|_| ALPHABET[self.below(ALPHABET.len() as u64)])
                .collect()
        }
    }

    fn random_report(g: &mut Lcg) -> Report {
        let sev = [
            Severity::Info,
            Severity::Success,
            Severity::Warning,
            Severity::Error,
        ][g.below(4)];
        let mut r = Report::new(g.string(400), sev);
        for _ in 0..g.below(12) {
            let size = [10, 300, 3_000, 20_000][g.below(4)];
            let b = match g.below(5) {
                0 => Block::Text(g.string(size)),
                1 => Block::Fields(
                    (0..g.below(40))
                        .map(|_| (g.string(300), g.string(size / 10)))
                        .collect(),
                ),
                2 => Block::Table {
                    headers: vec![g.string(20), g.string(20)],
                    rows: (0..g.below(200))
                        .map(|_| vec![g.string(30), g.string(60)])
                        .collect(),
                },
                3 => Block::Code {
                    name: format!("{}.txt", g.string(10)),
                    lang: String::new(),
                    text: g.string(size),
                },
                _ => Block::List {
                    ordered: g.below(2) == 0,
                    items: (0..g.below(50)).map(|_| g.string(size / 20)).collect(),
                },
            };
            r.push(b);
        }
        if g.below(3) == 0 {
            r.attachments.push(Attachment {
                name: "extra.txt".into(),
                content_type: "text/plain".into(),
                body: g.string(5_000),
            });
        }
        r
    }

    #[test]
    fn short_status_is_one_embed_coloured_by_severity_with_a_code_block_table() {
        let r =
            Report::new("Status of riftwing: 2/2 running", Severity::Success).with(Block::Table {
                headers: vec!["service".into(), "state".into()],
                rows: vec![
                    vec!["api-1".into(), "running".into()],
                    vec!["api-2".into(), "running".into()],
                ],
            });
        let out = report(&r);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].embeds.len(), 1);
        assert_eq!(out[0].embeds[0].colour, colour(Severity::Success));
        assert!(
            out[0].embeds[0]
                .description
                .contains("```\nservice  state\napi-1    running")
        );
        assert!(out[0].files.is_empty());
        assert!(!out[0].ephemeral);
        assert_ne!(colour(Severity::Error), colour(Severity::Success));
    }

    #[test]
    fn five_megabytes_of_logs_arrive_whole_as_an_attachment_with_a_note() {
        let line = "2026-11-30T03:00:00Z api-1 | GET /health 200 in 3ms, all fine here\n";
        let body = line.repeat(5 * 1024 * 1024 / line.len() + 1);
        let r = Report::new("Logs of api-1", Severity::Info).with(Block::Code {
            name: "logs-api-1.txt".into(),
            lang: String::new(),
            text: body.clone(),
        });
        let out = report(&r);
        assert_ok(&out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].files.len(), 1);
        assert_eq!(out[0].files[0].body, body);
        assert!(
            out[0].embeds[0]
                .description
                .contains("`logs-api-1.txt` is attached whole")
        );
    }

    #[test]
    fn a_file_above_the_per_file_limit_is_split_into_numbered_parts_that_rejoin_exactly() {
        let line = "x".repeat(999) + "\n";
        let body = line.repeat(20 * 1024);
        let r = Report::new("Logs", Severity::Info).with(Block::Code {
            name: "logs.txt".into(),
            lang: String::new(),
            text: body.clone(),
        });
        let out = report(&r);
        assert_ok(&out);
        let parts: Vec<&Attachment> = out.iter().flat_map(|m| &m.files).collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].name, "logs.part1of3.txt");
        let joined: String = parts.iter().map(|a| a.body.as_str()).collect();
        assert_eq!(joined, body);
    }

    #[test]
    fn more_files_than_one_message_carries_continue_in_follow_ups() {
        let mut r = Report::new("Many", Severity::Info);
        for i in 0..23 {
            r.attachments.push(Attachment {
                name: format!("f{i}.txt"),
                content_type: "text/plain".into(),
                body: format!("file {i}"),
            });
        }
        let out = report(&r);
        assert_ok(&out);
        assert_eq!(out.len(), 3);
        assert_eq!(out.iter().map(|m| m.files.len()).sum::<usize>(), 23);
        assert!(out[1].content.as_deref().unwrap().contains("Continued"));
    }

    #[test]
    fn denial_is_ephemeral_and_says_what_to_do() {
        let e = PipelineError::from(UserError::Denied {
            actor: crate::core::types::UserId::parse("123").unwrap(),
            roles: vec![],
            command: crate::core::types::CommandName::parse("restart").unwrap(),
            services: vec![],
            channel: crate::core::types::ChannelId::parse("456").unwrap(),
        });
        let out = error(&e);
        assert_eq!(out.len(), 1);
        assert!(out[0].ephemeral);
        let c = out[0].content.as_deref().unwrap();
        assert!(
            c.starts_with("**Denied.**") && c.contains("Ask an admin"),
            "{c}"
        );
    }

    #[test]
    fn an_overlong_error_is_attached_not_cut() {
        let long = "y".repeat(5_000);
        let out = error(&UserError::InvalidArgument(long.clone()).into());
        assert_ok(&out);
        assert!(out[0].ephemeral);
        assert!(out[0].files[0].body.contains(&long));
    }

    #[test]
    fn wide_characters_never_overflow_the_description() {
        let r = Report::new("😀".repeat(200), Severity::Warning)
            .with(Block::Text("😀".repeat(3_900)))
            .with(Block::Text("字".repeat(100)));
        let out = report(&r);
        assert_ok(&out);
        assert!(all_text(&out).contains(&"😀".repeat(3_900)));
    }

    #[test]
    fn random_large_and_odd_reports_always_fit_and_lose_no_block_text() {
        let mut g = Lcg(0x5eed);
        for case in 0..300 {
            let r = random_report(&mut g);
            let out = report(&r);
            assert_ok(&out);
            let all = all_text(&out);
            for b in &r.blocks {
                let probe = match b {
                    Block::Text(t) => t.trim_end().to_owned(),
                    Block::Code { text, .. } => text.trim_end_matches('\n').to_owned(),
                    _ => continue,
                };
                assert!(all.contains(&probe), "case {case}: a block was lost");
            }
        }
    }
}
