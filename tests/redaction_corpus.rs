//! Redaction against a corpus of realistic platform log lines: secrets masked, the rest untouched.

use container_ops::core::redact::{MASK, Redactor};

const OPEN: char = '⟦';
const CLOSE: char = '⟧';

/// One fixture case: its 1-based line number and the raw line.
fn cases(text: &'static str) -> impl Iterator<Item = (usize, &'static str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
}

/// Splits a marked positive line into (input, expected output, secrets).
fn unmark(line: &str) -> (String, String, Vec<String>) {
    let line = line.replace('⏎', "\n");
    let (mut input, mut expected, mut secrets) = (String::new(), String::new(), Vec::new());
    let mut rest = line.as_str();
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len_utf8()..];
        let end = after.find(CLOSE).expect("unbalanced ⟦⟧ in fixture");
        input.push_str(&rest[..start]);
        expected.push_str(&rest[..start]);
        input.push_str(&after[..end]);
        expected.push_str(MASK);
        secrets.push(after[..end].to_string());
        rest = &after[end + CLOSE.len_utf8()..];
    }
    input.push_str(rest);
    expected.push_str(rest);
    (input, expected, secrets)
}

#[test]
fn every_positive_fixture_line_has_exactly_its_marked_secrets_masked() {
    let redactor = Redactor::new();
    let mut failures = Vec::new();
    let mut count = 0;
    for (n, line) in cases(include_str!("fixtures/redaction/positives.txt")) {
        count += 1;
        let (input, expected, secrets) = unmark(line);
        assert!(!secrets.is_empty(), "positives.txt:{n} marks no secret");
        let got = redactor.redact(&input);
        if got == input {
            failures.push(format!("positives.txt:{n}: unchanged\n  input: {input:?}"));
            continue;
        }
        for s in &secrets {
            if got.contains(s.as_str()) {
                failures.push(format!(
                    "positives.txt:{n}: secret {s:?} survives\n  got:   {got:?}"
                ));
            }
        }
        if got != expected {
            failures.push(format!(
                "positives.txt:{n}: wrong extent\n  input:    {input:?}\n  expected: {expected:?}\n  got:      {got:?}"
            ));
        }
    }
    assert!(count > 50, "positives corpus unexpectedly small: {count}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_negative_fixture_line_is_left_unchanged() {
    let redactor = Redactor::new();
    let mut failures = Vec::new();
    let mut count = 0;
    for (n, line) in cases(include_str!("fixtures/redaction/negatives.txt")) {
        count += 1;
        let got = redactor.redact(line);
        if got != line {
            failures.push(format!(
                "negatives.txt:{n}: changed\n  input: {line:?}\n  got:   {got:?}"
            ));
        }
    }
    assert!(count > 50, "negatives corpus unexpectedly small: {count}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_whole_corpus_redacted_as_one_blob_gives_the_same_result_as_line_by_line() {
    // Chat attachments and audit entries redact many lines at once: no rule may reach
    // across a line into its neighbour.
    let redactor = Redactor::new();
    let (mut blob, mut expected) = (String::new(), String::new());
    for (_, line) in cases(include_str!("fixtures/redaction/positives.txt")) {
        let (input, exp, _) = unmark(line);
        blob.push_str(&input);
        blob.push('\n');
        expected.push_str(&exp);
        expected.push('\n');
    }
    for (_, line) in cases(include_str!("fixtures/redaction/negatives.txt")) {
        blob.push_str(line);
        blob.push('\n');
        expected.push_str(line);
        expected.push('\n');
    }
    let got = redactor.redact(&blob);
    let diff: Vec<_> = got
        .lines()
        .zip(expected.lines())
        .filter(|(g, e)| g != e)
        .map(|(g, e)| format!("  expected: {e:?}\n  got:      {g:?}"))
        .collect();
    assert!(diff.is_empty(), "blob differs:\n{}", diff.join("\n"));
    assert_eq!(got, expected);
}

#[test]
fn negative_lines_survive_even_with_learned_secrets_that_do_not_occur_in_them() {
    let mut redactor = Redactor::new();
    redactor.learn_secret("Zq8vLr2pWx");
    redactor.learn_env(&[("REDIS_PASSWORD".into(), "redis-pass-777".into())]);
    for (n, line) in cases(include_str!("fixtures/redaction/negatives.txt")) {
        assert_eq!(redactor.redact(line), line, "negatives.txt:{n}");
    }
}
