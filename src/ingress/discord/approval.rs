//! Approval cards in the channel: posted for a new request, clicks decided by the core, buttons closed at expiry (also after a restart).
//!
//! The card is the interaction's original response. Its place (channel, message) is appended
//! to the audit log when it is posted, so a restarted bot (or another replica) finds the open
//! cards again and re-schedules their expiry. At expiry the card is edited through the channel
//! message route: the interaction token is good for 15 minutes only.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serenity::all::{
    ChannelId as DiscordChannel, CommandInteraction, ComponentInteraction,
    CreateInteractionResponse, CreateInteractionResponseMessage, MessageId,
};
use tokio::sync::oneshot;

use super::cards::{self, Click};
use super::{
    Ack, Acked, Alive, Bot, Key, actor_and_channel, edit_channel_message, edit_message,
    followup_message, grants_from, joined, on_webhook, render, response_message, send_ack,
};
use crate::core::approvals::{ApprovalRequest, ApprovalState};
use crate::core::args::{OptionValue, RawArgs};
use crate::core::error::UserError;
use crate::core::store::{AuditDecision, AuditQuery, NewAuditEntry};
use crate::pipeline::{Core, Invocation};

/// The bot's name in the audit log and timelines when it acts on its own.
const BOT_ACTOR: &str = "container-ops";
/// Audit target naming a posted card: `discord-card:<request>:<channel>:<message>`.
const CARD_TARGET: &str = "discord-card";
/// A timer fires this much after the expiry instant, so the store agrees it has passed.
const SLACK: Duration = Duration::from_millis(300);
/// How often a running approval's card is checked for the "running" state.
const PROGRESS_POLL: Duration = Duration::from_millis(400);
/// Cards posted longer ago than this are not looked at again after a restart.
const LOOK_BACK_HOURS: i64 = 24;

/// Where a card is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CardAt {
    request: String,
    channel: DiscordChannel,
    message: MessageId,
}

impl CardAt {
    fn target(&self) -> String {
        format!(
            "{CARD_TARGET}:{}:{}:{}",
            self.request, self.channel, self.message
        )
    }

    fn parse(s: &str) -> Option<Self> {
        let mut it = s.strip_prefix(CARD_TARGET)?.strip_prefix(':')?.split(':');
        let request = it.next()?.to_owned();
        let channel = it.next()?.parse::<u64>().ok().filter(|n| *n != 0)?;
        let message = it.next()?.parse::<u64>().ok().filter(|n| *n != 0)?;
        (it.next().is_none() && !request.is_empty()).then(|| Self {
            request,
            channel: DiscordChannel::new(channel),
            message: MessageId::new(message),
        })
    }
}

/// Answers the command with the request's card (deferring first unless that is done), then
/// remembers where the card is and schedules its expiry.
pub(super) async fn post_card(
    bot: &Bot,
    c: &CommandInteraction,
    ack: Option<Ack>,
    req: &ApprovalRequest,
) {
    if let Some(ack) = ack {
        let defer = CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new());
        if !send_ack(&bot.http, Some(super::key(c)), ack, defer)
            .await
            .answered()
        {
            return;
        }
    }
    let card = cards::card(req);
    let posted = on_webhook("approval card", || {
        c.edit_response(&*bot.http, edit_message(&card))
    });
    let msg = match posted.await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(approval = %req.id, "posting the approval card failed: {e:#}");
            return;
        }
    };
    let at = CardAt {
        request: req.id.clone(),
        channel: c.channel_id,
        message: msg.id,
    };
    remember(bot, req, &at).await;
    watch(bot, at, req.expires_at);
}

/// Appends the card's place to the audit log, next to the request's own entries.
async fn remember(bot: &Bot, req: &ApprovalRequest, at: &CardAt) {
    let Some(store) = bot.core.store() else {
        return;
    };
    let entry = NewAuditEntry {
        at: Utc::now(),
        actor: BOT_ACTOR.into(),
        roles: Vec::new(),
        channel: at.channel.to_string(),
        command: req.command.clone(),
        args: req.args.clone(),
        target: vec![at.target()],
        decision: AuditDecision::Pending,
        result: format!(
            "approval {}: card posted as message {} in channel {}",
            req.id, at.message, at.channel
        ),
        duration_ms: 0,
        correlation_id: req.correlation_id.clone(),
        via: "discord".into(),
    };
    if let Err(e) = store.append_audit(entry).await {
        // The card works; only a restart would not find it again.
        tracing::error!(approval = %req.id, "card place not recorded: {e:#}");
    }
}

/// At expiry (a past instant fires at once) the card is redrawn from the store's state:
/// expired with its buttons off, or whatever was decided meanwhile (e.g. on the console).
fn watch(bot: &Bot, at: CardAt, expires_at: DateTime<Utc>) {
    let core = bot.core.clone();
    let http = bot.http.clone();
    let alive = bot.alive.rx.clone();
    tokio::spawn(async move {
        let wait = (expires_at - Utc::now()).to_std().unwrap_or_default() + SLACK;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = Alive::stopped(alive) => return,
        }
        close_at_expiry(&core, &http, &at).await;
    });
}

async fn close_at_expiry(core: &Core, http: &serenity::all::Http, at: &CardAt) {
    let Some(approvals) = core.approvals() else {
        return;
    };
    let expired = match approvals.expire_due(Utc::now()).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(approval = %at.request, "expiring approval requests failed: {e:#}");
            return;
        }
    };
    let req = match approvals.get(&at.request).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(approval = %at.request, "reading an approval request failed: {e:#}");
            return;
        }
    };
    if req.state == ApprovalState::Pending {
        tracing::warn!(approval = %req.id, "the timer fired but the store does not see the request expired yet");
        return;
    }
    refresh(http, at, &req).await;
    if expired.contains(&req.id)
        && let Some(store) = core.store()
    {
        let text = format!("approval {} expired: nobody approved it in time", req.id);
        if let Err(e) = crate::ops::incidents::record(
            store.as_ref(),
            &req.channel,
            BOT_ACTOR,
            "approval",
            &text,
        )
        .await
        {
            tracing::warn!("incident timeline: {e:#}");
        }
    }
}

/// Redraws a card through the channel message route.
async fn refresh(http: &serenity::all::Http, at: &CardAt, req: &ApprovalRequest) {
    let edit = edit_channel_message(&cards::card(req));
    if let Err(e) = at.channel.edit_message(http, at.message, edit).await {
        tracing::warn!(approval = %req.id, "could not update the approval card: {e:#}");
    }
}

/// Start-up: cards of requests still pending get their expiry timer again; cards of requests
/// that expired while no bot was watching get their buttons disabled.
pub(super) async fn resume(bot: Arc<Bot>) {
    let (Some(store), Some(approvals)) = (bot.core.store(), bot.core.approvals()) else {
        return;
    };
    let q = AuditQuery {
        actor: Some(BOT_ACTOR.into()),
        decision: Some(AuditDecision::Pending),
        since: Some(Utc::now() - chrono::Duration::hours(LOOK_BACK_HOURS)),
        limit: 1_000,
        ..AuditQuery::default()
    };
    let entries = match store.query_audit(&q).await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("approval cards not resumed: cannot read the audit log: {e:#}");
            return;
        }
    };
    let mut seen = HashSet::new();
    let mut resumed = 0;
    for at in entries
        .iter()
        .flat_map(|e| e.entry.target.iter())
        .filter_map(|t| CardAt::parse(t))
    {
        if !seen.insert(at.request.clone()) {
            continue;
        }
        match approvals.get(&at.request).await {
            Ok(Some(req)) if req.state == ApprovalState::Pending => {
                watch(&bot, at, req.expires_at);
                resumed += 1;
            }
            Ok(Some(req)) if req.state == ApprovalState::Expired => {
                refresh(&bot.http, &at, &req).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(approval = %at.request, "card not resumed: {e:#}"),
        }
    }
    if resumed > 0 {
        tracing::info!(cards = resumed, "open approval cards re-scheduled");
    }
}

fn click_key(c: &ComponentInteraction) -> Key<'_> {
    Key {
        id: c.id,
        token: &c.token,
    }
}

/// The core's `/approve` or `/deny` for a click: the same rules as typing it.
fn click_invocation(
    c: &ComponentInteraction,
    click: Click,
    id: &str,
) -> Result<Invocation, UserError> {
    let (actor, channel, roles) = actor_and_channel(&c.user, c.channel_id, c.member.as_ref())?;
    let id = ("id".to_owned(), OptionValue::Text(id.to_owned()));
    let (command, args) = match click {
        Click::Approve => ("approve", vec![id]),
        Click::Deny => (
            "deny",
            vec![
                id,
                (
                    "reason".to_owned(),
                    OptionValue::Text("denied with the card's Deny button".into()),
                ),
            ],
        ),
    };
    let args = RawArgs::Options(args);
    let mut inv = Invocation::new(actor, channel, command, args);
    inv.platform_roles = roles;
    inv.grants_from = grants_from(c.channel.as_ref());
    inv.via = "discord".into();
    Ok(inv)
}

async fn current(core: &Core, id: &str) -> Option<ApprovalRequest> {
    core.approvals()?.get(id).await.ok().flatten()
}

/// A click on a card. The core decides (never the requester, an approver role needed, a
/// request runs at most once); the card is redrawn when the request changed, and the
/// clicker alone is told when the click was refused.
pub(super) async fn click(bot: Arc<Bot>, c: ComponentInteraction, ack: Ack) {
    let Some((what, id)) = cards::parse_custom_id(&c.data.custom_id) else {
        let m = render::text(
            "This button is not one this bot handles; run the command again.",
            true,
        );
        refuse_click(&bot, &c, ack, &m[0]).await;
        return;
    };
    let id = id.to_owned();
    let inv = match click_invocation(&c, what, &id) {
        Ok(inv) => inv,
        Err(e) => {
            let m = render::error(&e.into());
            refuse_click(&bot, &c, ack, &m[0]).await;
            return;
        }
    };
    let snapshot = |r: &ApprovalRequest| (r.state, r.reviews.len());
    let before = current(&bot.core, &id).await.as_ref().map(snapshot);
    let core = bot.core.clone();
    let mut run = tokio::spawn(async move { core.run(inv).await });
    let mut ack = Some(ack);
    let result = match tokio::time::timeout(bot.config.ack_budget, &mut run).await {
        Ok(r) => joined(r).map(|r| r.report),
        Err(_) => {
            // Approving runs the operation, which takes longer than Discord's 3 seconds.
            let Some(a) = ack.take() else { return };
            if !send_ack(
                &bot.http,
                Some(click_key(&c)),
                a,
                CreateInteractionResponse::Acknowledge,
            )
            .await
            .answered()
            {
                return;
            }
            let (stop, stopped) = oneshot::channel();
            let progress = tokio::spawn(show_running(bot.clone(), c.clone(), id.clone(), stopped));
            let r = joined(run.await).map(|r| r.report);
            let _ = stop.send(());
            let _ = progress.await;
            r
        }
    };
    let after = current(&bot.core, &id).await;
    let changed = after.as_ref().map(snapshot) != before;
    let card = after.as_ref().filter(|_| changed).map(cards::card);
    let ran = after
        .as_ref()
        .is_some_and(|r| r.state == ApprovalState::Succeeded);
    let ending = crate::ops::incidents::ending(result.as_ref());
    let others: Vec<render::Message> = match result {
        // The whole report of the run, for the channel (the card holds its title).
        Ok(report) if ran && changed => render::report(&report),
        Ok(_) if changed => Vec::new(),
        Ok(report) => render::report(&report)
            .into_iter()
            .map(|m| render::Message {
                ephemeral: true,
                ..m
            })
            .collect(),
        Err(e) => render::error(&e),
    };
    answer_click(&bot, &c, ack, card, others).await;
    let text = format!("{} {id} → {ending}", what_word(what));
    super::threads::record(
        &bot,
        &c.channel_id.to_string(),
        &c.user.id.to_string(),
        "approval",
        &text,
    )
    .await;
}

/// The clicker alone is told why a click was not taken: the first answer, or (when the
/// endpoint acknowledged for us) an ephemeral follow-up.
async fn refuse_click(bot: &Bot, c: &ComponentInteraction, ack: Ack, m: &render::Message) {
    let resp = CreateInteractionResponse::Message(response_message(m));
    if send_ack(&bot.http, Some(click_key(c)), ack, resp).await == Acked::Late {
        let sent = on_webhook("follow-up", || {
            c.create_followup(&*bot.http, followup_message(m))
        });
        if let Err(e) = sent.await {
            tracing::error!("follow-up message failed: {e:#}");
        }
    }
}

fn what_word(c: Click) -> &'static str {
    match c {
        Click::Approve => "approve",
        Click::Deny => "deny",
    }
}

/// The card update (type 7, or an edit after a deferral) and the other messages: the first
/// one as the answer when there is no card update and nothing was sent yet, the rest follow.
async fn answer_click(
    bot: &Bot,
    c: &ComponentInteraction,
    ack: Option<Ack>,
    card: Option<render::Message>,
    others: Vec<render::Message>,
) {
    let mut rest = others.as_slice();
    let (ack, card) = match (ack, card) {
        (Some(a), Some(card)) => {
            let resp = CreateInteractionResponse::UpdateMessage(response_message(&card));
            match send_ack(&bot.http, Some(click_key(c)), a, resp).await {
                Acked::Sent => (None, None),
                // The endpoint acknowledged for us: the card update becomes an edit.
                Acked::Late => (None, Some(card)),
                Acked::Failed => return,
            }
        }
        (Some(a), None) => {
            let resp = match others.first() {
                Some(first) if first.files.is_empty() => {
                    rest = &others[1..];
                    CreateInteractionResponse::Message(response_message(first))
                }
                _ => CreateInteractionResponse::Acknowledge,
            };
            match send_ack(&bot.http, Some(click_key(c)), a, resp).await {
                Acked::Sent => {}
                // After the endpoint's acknowledgement the first message follows up instead.
                Acked::Late => rest = &others,
                Acked::Failed => return,
            }
            (None, None)
        }
        other => other,
    };
    match (ack, card) {
        (Some(_), _) => {}
        (None, Some(card)) => {
            let edit = on_webhook("approval card", || {
                c.edit_response(&*bot.http, edit_message(&card))
            });
            if let Err(e) = edit.await {
                tracing::error!("updating the approval card failed: {e:#}");
            }
        }
        (None, None) => {}
    }
    for m in rest {
        let sent = on_webhook("follow-up", || {
            c.create_followup(&*bot.http, followup_message(m))
        });
        if let Err(e) = sent.await {
            tracing::error!("follow-up message failed: {e:#}");
            return;
        }
    }
}

/// While an approved request runs, the card shows it approved and running, buttons off, so
/// nobody else clicks in vain.
async fn show_running(
    bot: Arc<Bot>,
    c: ComponentInteraction,
    id: String,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(PROGRESS_POLL) => {}
        }
        match current(&bot.core, &id).await {
            Some(r) if matches!(r.state, ApprovalState::Approved | ApprovalState::Executing) => {
                if let Err(e) = c
                    .edit_response(&*bot.http, edit_message(&cards::card(&r)))
                    .await
                {
                    tracing::warn!("showing the card as running failed: {e:#}");
                }
                return;
            }
            Some(r) if r.state != ApprovalState::Pending => return,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_place_round_trips_through_its_audit_target() {
        let at = CardAt {
            request: "k7m2x9qa".into(),
            channel: DiscordChannel::new(1_100_000_000_000_000_004),
            message: MessageId::new(1_200_000_000_000_000_001),
        };
        let t = at.target();
        assert_eq!(
            t,
            "discord-card:k7m2x9qa:1100000000000000004:1200000000000000001"
        );
        assert_eq!(CardAt::parse(&t), Some(at));
        for bad in [
            "redis",
            "discord-card:",
            "discord-card:k7m2x9qa:1",
            "discord-card:k7m2x9qa:0:1",
            "discord-card::1:2",
            "discord-card:k7m2x9qa:1:2:3",
        ] {
            assert_eq!(CardAt::parse(bad), None, "{bad}");
        }
    }
}
