//! Approval cards: a pending destructive request as an embed with Approve / Deny buttons, drawn from its stored state.

use chrono::{DateTime, Utc};

use super::render::{self, Button, ButtonStyle, Embed, Message, discord_len};
use crate::core::approvals::{ApprovalRequest, ApprovalState, ReviewDecision};
use crate::core::report::{Severity, code, escape};

/// Every card button's custom_id starts with this, so other components are never mistaken for one.
const PREFIX: &str = "approval";
/// Budgets of the variable fields; their sum stays far below the 6,000 an embed may hold.
const WHAT: usize = 600;
const TARGETS: usize = 600;
const RESULT: usize = 1_000;
const REVIEWS: usize = 600;

/// What a card button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Click {
    Approve,
    Deny,
}

impl Click {
    fn as_str(self) -> &'static str {
        match self {
            Click::Approve => "approve",
            Click::Deny => "deny",
        }
    }
}

/// `approval:approve:<request id>`: well within Discord's 100 characters for any request id
/// (ids are 8 characters; the approve command caps a typed one at 16).
pub fn custom_id(click: Click, request: &str) -> String {
    format!("{PREFIX}:{}:{request}", click.as_str())
}

/// The click and request id of a card button; `None` for anything else.
pub fn parse_custom_id(s: &str) -> Option<(Click, &str)> {
    let rest = s.strip_prefix(PREFIX)?.strip_prefix(':')?;
    let (what, id) = rest.split_once(':')?;
    let click = match what {
        "approve" => Click::Approve,
        "deny" => Click::Deny,
        _ => return None,
    };
    let ok = !id.is_empty() && id.len() <= 16 && id.chars().all(|c| c.is_ascii_alphanumeric());
    ok.then_some((click, id))
}

/// A Discord user id as a mention; a console name as code.
fn who(id: &str) -> String {
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) {
        format!("<@{id}>")
    } else {
        format!("`{id}`")
    }
}

fn stamp(t: DateTime<Utc>, style: char) -> String {
    format!("<t:{}:{style}>", t.timestamp())
}

const CUT_NOTE: &str = "… (cut here; `/pending` and `/audit` have it whole)";

/// Cuts a field value to `max` UTF-16 units, saying so and where the whole text is.
fn fit(s: &str, max: usize) -> String {
    fit_with(s, max, str::to_owned)
}

/// [`fit`] for text a person typed: shown as inline code, the cut note outside it.
fn fit_code(s: &str, max: usize) -> String {
    fit_with(s, max, code)
}

fn fit_with(s: &str, max: usize, show: impl Fn(&str) -> String) -> String {
    let s = s.trim();
    if s.is_empty() {
        return "-".into();
    }
    if discord_len(&show(s)) <= max {
        return show(s);
    }
    // What `show` adds (fences, and the spaces a backtick at either end needs) is at most
    // what it adds to the whole text, plus those two spaces.
    let overhead = discord_len(&show(s)).saturating_sub(discord_len(s)) + 2;
    let budget = max.saturating_sub(overhead + discord_len(CUT_NOTE));
    let mut out = String::new();
    let mut len = 0;
    for c in s.chars() {
        if len + c.len_utf16() > budget {
            break;
        }
        len += c.len_utf16();
        out.push(c);
    }
    format!("{}{CUT_NOTE}", show(&out))
}

fn roles(req: &ApprovalRequest) -> String {
    req.approver_roles
        .iter()
        .map(|r| format!("`{r}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The card for a request in its current state. Buttons are live only while it is pending.
pub fn card(req: &ApprovalRequest) -> Message {
    let what = format!("/{} {}", req.command, req.args);
    let what = what.trim_end();
    let (title, severity, description) = match req.state {
        ApprovalState::Pending => (
            format!("Approval needed: /{}", req.command),
            Severity::Warning,
            format!(
                "Nothing has run. Needs {} approval(s) from someone other than the requester with the role {}.",
                req.min_approvals,
                roles(req)
            ),
        ),
        ApprovalState::Approved | ApprovalState::Executing => (
            format!("Approved, running: /{}", req.command),
            Severity::Info,
            "Approved; it is running now (once).".to_owned(),
        ),
        ApprovalState::Succeeded => (
            format!("Approved and ran: /{}", req.command),
            Severity::Success,
            "Approved and ran once.".to_owned(),
        ),
        ApprovalState::Failed => (
            format!("Approved, but failed: /{}", req.command),
            Severity::Error,
            "Approved and attempted once; it failed (see the result). It is not retried."
                .to_owned(),
        ),
        ApprovalState::Denied => (
            format!("Denied: /{}", req.command),
            Severity::Error,
            "Denied; it will not run.".to_owned(),
        ),
        ApprovalState::Expired => (
            format!("Expired: /{}", req.command),
            Severity::Info,
            "Nobody approved it in time; nothing ran. Run the command again to ask anew."
                .to_owned(),
        ),
        ApprovalState::Cancelled => (
            format!("Cancelled: /{}", req.command),
            Severity::Info,
            "The requester cancelled it; nothing ran.".to_owned(),
        ),
    };
    let mut fields = vec![
        ("request".to_owned(), format!("`{}`", req.id)),
        ("what".to_owned(), fit_code(what, WHAT)),
        ("targets".to_owned(), fit(&req.targets.join(", "), TARGETS)),
        ("digest".to_owned(), format!("`{}`", req.digest)),
        ("requester".to_owned(), who(&req.requester)),
        (
            if req.state == ApprovalState::Expired {
                "expired"
            } else {
                "expires"
            }
            .to_owned(),
            format!(
                "{} ({})",
                stamp(req.expires_at, 'R'),
                stamp(req.expires_at, 'f')
            ),
        ),
        (
            "approvals".to_owned(),
            format!(
                "{} of {} ({})",
                req.approvals(),
                req.min_approvals,
                roles(req)
            ),
        ),
    ];
    let list = |d: ReviewDecision| -> Vec<String> {
        req.reviews
            .iter()
            .filter(|r| r.decision == d)
            .map(|r| {
                let reason = if r.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", escape(&r.reason))
                };
                format!("{} {}{reason}", who(&r.reviewer), stamp(r.at, 'T'))
            })
            .collect()
    };
    let approved = list(ReviewDecision::Approve);
    if !approved.is_empty() {
        fields.push(("approved by".into(), fit(&approved.join("\n"), REVIEWS)));
    }
    let denied = list(ReviewDecision::Deny);
    if !denied.is_empty() {
        fields.push(("denied by".into(), fit(&denied.join("\n"), REVIEWS)));
    }
    if let Some(r) = &req.result
        && !matches!(req.state, ApprovalState::Pending | ApprovalState::Expired)
    {
        fields.push(("result".into(), fit(r, RESULT)));
    }
    let open = req.state == ApprovalState::Pending;
    Message {
        embeds: vec![Embed {
            title: Some(title),
            description,
            fields,
            colour: render::colour(severity),
            footer: None,
        }],
        buttons: vec![
            Button {
                custom_id: custom_id(Click::Approve, &req.id),
                label: "Approve".into(),
                style: ButtonStyle::Success,
                disabled: !open,
            },
            Button {
                custom_id: custom_id(Click::Deny, &req.id),
                label: "Deny".into(),
                style: ButtonStyle::Danger,
                disabled: !open,
            },
        ],
        ..Message::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::approvals::Review;

    fn request(state: ApprovalState) -> ApprovalRequest {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        ApprovalRequest {
            id: "k7m2x9qa".into(),
            command: "flush-redis".into(),
            args: String::new(),
            targets: vec!["container:0123abcd".into()],
            requester: "1500000000000000001".into(),
            requester_roles: vec!["operator".into()],
            approver_roles: vec!["approver".into()],
            min_approvals: 1,
            channel: "1100000000000000004".into(),
            correlation_id: "c0ffee".into(),
            created_at: now,
            expires_at: now + chrono::Duration::minutes(15),
            digest: "ab".repeat(32),
            state,
            reviews: vec![],
            result: None,
            updated_at: now,
            executor: None,
            lease_until: None,
        }
    }

    #[test]
    fn custom_ids_round_trip_and_foreign_ones_are_ignored() {
        for click in [Click::Approve, Click::Deny] {
            let id = custom_id(click, "k7m2x9qa");
            assert!(id.len() <= 100);
            assert_eq!(parse_custom_id(&id), Some((click, "k7m2x9qa")));
        }
        for bad in [
            "",
            "approval",
            "approval:approve:",
            "approval:launch:k7m2x9qa",
            "other:approve:k7m2x9qa",
            "approval:approve:k7m2 x9qa",
            "approval:approve:aaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(parse_custom_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_pending_card_shows_what_target_digest_requester_expiry_and_live_buttons() {
        let m = card(&request(ApprovalState::Pending));
        assert!(
            render::violations(&m).is_empty(),
            "{:?}",
            render::violations(&m)
        );
        let e = &m.embeds[0];
        let names: Vec<&str> = e.fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "request",
                "what",
                "targets",
                "digest",
                "requester",
                "expires",
                "approvals"
            ]
        );
        assert_eq!(e.fields[4].1, "<@1500000000000000001>");
        assert!(
            e.fields[5].1.starts_with("<t:1800000900:R>"),
            "{}",
            e.fields[5].1
        );
        assert_eq!(e.fields[6].1, "0 of 1 (`approver`)");
        assert!(m.buttons.iter().all(|b| !b.disabled));
        assert_eq!(m.buttons[0].custom_id, "approval:approve:k7m2x9qa");
    }

    #[test]
    fn a_finished_card_names_the_approver_and_result_and_disables_its_buttons() {
        let mut r = request(ApprovalState::Succeeded);
        r.reviews.push(Review {
            reviewer: "1500000000000000002".into(),
            decision: ReviewDecision::Approve,
            reason: String::new(),
            at: r.created_at,
        });
        r.result = Some("Redis flushed".into());
        let m = card(&r);
        let e = &m.embeds[0];
        assert!(e.title.as_deref().unwrap().starts_with("Approved and ran"));
        let field = |n: &str| e.fields.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert!(field("approved by").starts_with("<@1500000000000000002>"));
        assert_eq!(field("result"), "Redis flushed");
        assert!(m.buttons.iter().all(|b| b.disabled));
        let m = card(&request(ApprovalState::Expired));
        assert!(m.buttons.iter().all(|b| b.disabled));
        assert!(m.embeds[0].title.as_deref().unwrap().starts_with("Expired"));
    }

    #[test]
    fn huge_arguments_targets_and_results_still_fit_and_say_they_were_cut() {
        let mut r = request(ApprovalState::Denied);
        r.args = "file:".to_owned() + &"😀".repeat(3_000);
        r.targets = (0..500)
            .map(|i| format!("volume:riftwing_data_{i}"))
            .collect();
        r.result = Some("字".repeat(5_000));
        for i in 0..30 {
            r.reviews.push(Review {
                reviewer: format!("15000000000000000{i:02}"),
                decision: ReviewDecision::Deny,
                reason: "no ".repeat(100),
                at: r.created_at,
            });
        }
        let m = card(&r);
        assert!(
            render::violations(&m).is_empty(),
            "{:?}",
            render::violations(&m)
        );
        let what = &m.embeds[0].fields[1].1;
        assert!(
            what.ends_with("`/pending` and `/audit` have it whole)"),
            "{what}"
        );
    }
}
